"""residual: every original identifier still present in an anonymized capture, in any encoding.

The collector notes each address, MAC and host name the dissector finds in the ORIGINAL frames
(with the first frame it was seen in); `scan` then reads the anonymized file and looks for each
of them in every frame and in every byte of the file that is not frame data, as binary (4-byte
IPv4, 16-byte IPv6, 6-byte MAC, a MAC's 8-byte EUI-64 interface id), as text (dotted IPv4, IPv6
in any form `ipaddress` reads, MAC with `:`, `-`, `.` or no separator, host names), as reverse
DNS names (`in-addr.arpa`, `ip6.arpa`) and as DNS wire labels.

Speed comes from one prefilter for all forms: every 4-byte window of a batch of frames (as one
buffer, lowered for case-insensitive text) is hashed with numpy into two small bitmask tables
that mark the 4-byte keys of the forms looked for; only windows passing both reach Python, which
checks them exactly. IPv6 text has too many spellings for keys: it is found from colon pairs.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from anontrace.crypto.macs import MULTICAST, MacMapper, eui64, eui64_mac
from anontrace.crypto.mapping import AddressMapper
from anontrace.io.capture import open_reader
from anontrace.io.stream import CHUNK, open_input
from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Layers, Name
from anontrace.transforms.names import NamesConfig, name_labels

KINDS = ("ipv4", "ipv6", "mac", "name")
ENCODINGS = ("binary", "text", "reverse-dns", "eui64", "dns-wire", "metadata")
# When one identifier is found at one place in several encodings, the first of these is reported.
SPECIFICITY = {"reverse-dns": 0, "dns-wire": 1, "eui64": 2, "binary": 3, "text": 4, "metadata": 5}
FINDINGS_LIMIT = 1000
MIN_NAME = 4  # shorter names are too common as text to be evidence of anything
DEFAULT_KEPT_LABELS = frozenset(label.encode() for label in NamesConfig().keep_labels)
SERVICES = {53: "dns", 5353: "mdns", 5355: "llmnr", 67: "dhcp", 68: "dhcp", 546: "dhcpv6", 547: "dhcpv6"}

Identifier = tuple[str, bytes]  # (kind, value): 4/16-byte address, 6-byte MAC, lowercased name
Kept = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where an identifier was first seen: 1-based original frame number and the field."""

    frame: int
    where: str


# ------------------------------------------------------------------------------------------
# Collecting the original identifiers


class IdentifierCollector:
    """An `Observer` that keeps every distinct identifier the dissector locates in the ORIGINAL
    frames, with its first sighting: addresses and MACs (and the MAC inside an EUI-64 interface
    id, and the IPv4 address inside an IPv6 address that embeds one), full-length prefixes,
    the addresses of reverse DNS names, and the identifying part of host names (what the run's
    `names` settings, the defaults unless given, rewrite)."""

    def __init__(self, names: NamesConfig | None = None) -> None:
        self.addresses: dict[bytes, Sighting] = {}  # 4-byte IPv4, 16-byte IPv6, 6-byte MAC
        self.names: dict[bytes, Sighting] = {}
        config = names or NamesConfig()
        self.kept_labels = frozenset(label.lower().encode() for label in config.keep_labels)
        self.keep_top_level = config.keep_top_level
        self.names_kept = config.policy == "keep"  # the rules keep every name as it is

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        for frame, layers in zip(batch.frames, batch.layers, strict=True):
            self.add_frame(frame.data, layers, frame.index + 1)

    def add_frame(self, data: bytes, layers: Layers, number: int) -> None:
        """Note the identifiers of one original frame (`number` is 1-based)."""
        known = self.addresses
        for offset in layers.ipv4:
            raw = data[offset:offset + 4]
            if raw not in known and len(raw) == 4:
                self._add(raw, number, _address_where(data, layers, offset, 4))
        for offset in layers.macs:
            raw = data[offset:offset + 6]
            if raw not in known and len(raw) == 6:
                self._add(raw, number, _address_where(data, layers, offset, 6))
        for offset in layers.ipv6:
            raw = data[offset:offset + 16]
            if raw not in known and len(raw) == 16:
                self._add(raw, number, _address_where(data, layers, offset, 16))
        for prefix in layers.prefixes:
            raw = data[prefix.offset:prefix.offset + prefix.size]
            if prefix.size == prefix.family == len(raw) and prefix.length == 8 * prefix.family \
                    and raw not in known:
                self._add(raw, number, f"full-length prefix in {_context(data, layers, prefix.offset)}")
        for name in layers.names:
            self._name(data, layers, name, number)

    def _add(self, raw: bytes, number: int, where: str) -> None:
        self.addresses[raw] = Sighting(number, where)
        if len(raw) != 16:
            return
        mac = eui64_mac(raw[8:])
        if mac is not None and mac not in self.addresses:
            self.addresses[mac] = Sighting(number, f"mac in the eui-64 interface id of {where}")
        for inner, how in _embedded_ipv4(raw):
            if inner not in self.addresses:
                self.addresses[inner] = Sighting(number, f"ipv4 inside the {how} address of {where}")

    def _name(self, data: bytes, layers: Layers, name: Name, number: int) -> None:
        labels = name_labels(data, name)
        if not labels:
            return
        texts = [text.lower() for _, text in labels]
        if texts[-1] == b"arpa":
            raw = _reverse_address(texts)
            if raw is not None and raw not in self.addresses:
                self._add(raw, number, f"reverse dns name in {_context(data, layers, name.offset)}")
            return
        identifying = identifying_part(texts, self.kept_labels, self.keep_top_level)
        if identifying is not None and identifying not in self.names:
            self.names[identifying] = Sighting(number, _name_where(data, layers, name))

    def counts(self) -> dict[str, int]:
        """Distinct identifiers of each kind."""
        found = Counter(_kind(raw) for raw in self.addresses)
        return {"ipv4": found["ipv4"], "ipv6": found["ipv6"], "mac": found["mac"], "name": len(self.names)}


def identifying_part(labels: Sequence[bytes], kept: frozenset[bytes] = DEFAULT_KEPT_LABELS,
                     keep_top_level: bool = True) -> bytes | None:
    """A name from its first label that the `names` transform rewrites (not kept by design: a
    service label `_x`, a label in `kept`, the last label of several with `keep_top_level`) to
    its end; None if no label is rewritten or the result is too short to be evidence."""
    last = len(labels) - 1
    for index, label in enumerate(labels):
        if not label or label.startswith(b"_") or label in kept or (keep_top_level and 0 < index == last):
            continue
        name = b".".join(labels[index:])
        return name if len(name) >= MIN_NAME else None
    return None


def _reverse_address(texts: list[bytes]) -> bytes | None:
    """The whole address a reverse DNS name stands for (a shorter one names a prefix: None)."""
    if texts[-2:] == [b"in-addr", b"arpa"] and len(texts) >= 6:
        octets = texts[-6:-2]
        if all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets):
            return bytes(int(o) for o in reversed(octets))
    if texts[-2:] == [b"ip6", b"arpa"] and len(texts) >= 34:
        nibbles = texts[-34:-2]
        if all(len(n) == 1 and n in b"0123456789abcdef" for n in nibbles):
            return bytes.fromhex(b"".join(reversed(nibbles)).decode())
    return None


def _embedded_ipv4(raw: bytes) -> list[tuple[bytes, str]]:
    """The IPv4 addresses an IPv6 address carries (the ranges `crypto.mapping` maps alike)."""
    if raw[:12] == bytes(10) + b"\xff\xff":
        return [(raw[12:], "ipv4-mapped")]
    if raw[:12] == b"\x00\x64\xff\x9b" + bytes(8):
        return [(raw[12:], "nat64")]
    if raw[:2] == b"\x20\x02":
        return [(raw[2:6], "6to4")]
    if raw[:4] == b"\x20\x01\x00\x00":
        return [(raw[4:8], "teredo server"), (bytes(b ^ 0xFF for b in raw[12:]), "teredo client")]
    return []


def _context(data: bytes, layers: Layers, offset: int) -> str:
    """The protocol around `offset`: the innermost header before it, named by port if known."""
    inner = None
    for header in layers.headers:
        if header.offset <= offset:
            inner = header
    if inner is None:
        return "arp" if layers.ethertype == 0x0806 else "link header"
    quoted = "quoted " if inner.quoted else ""
    if inner.kind in ("udp", "tcp") and len(data) >= inner.offset + 4:
        source, destination = struct.unpack_from("!HH", data, inner.offset)
        service = SERVICES.get(destination) or SERVICES.get(source)
        if service is not None:
            return quoted + service
    return quoted + inner.kind


def _address_where(data: bytes, layers: Layers, offset: int, width: int) -> str:
    for header in layers.headers:
        if (header.kind, offset - header.offset) in (("ipv4", 12), ("ipv4", 16), ("ipv6", 8), ("ipv6", 24)):
            return ("quoted " if header.quoted else "") + f"{header.kind} header"
    kind = _kind(bytes(width))
    return f"{kind}{'' if kind == 'mac' else ' address'} in {_context(data, layers, offset)}"


def _name_where(data: bytes, layers: Layers, name: Name) -> str:
    if name.base < 0:
        return "dhcp host name"
    context = _context(data, layers, name.offset).removeprefix("quoted ")
    if context.startswith("dhcp"):
        return f"{context} name"
    return "icmpv6 dns search list" if context == "icmpv6" else "dns name"


def _kind(raw: bytes) -> str:
    return {4: "ipv4", 16: "ipv6", 6: "mac"}[len(raw)]


# ------------------------------------------------------------------------------------------
# Which identifiers may stay


PUBLIC_IPV4 = tuple(ipaddress.IPv4Network(n) for n in ("0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8",
                                                        "224.0.0.0/4"))
PUBLIC_IPV6 = tuple(ipaddress.IPv6Network(n) for n in ("::/128", "::1/128", "ff00::/8"))
SOLICITED_NODE = ipaddress.IPv6Network("ff02::1:ff00:0/104")


def is_public(raw: bytes) -> bool:
    """Identifiers that name no host, for a pair compared without the run's rules: unspecified,
    broadcast, loopback and multicast addresses (but solicited-node multicast, which carries 24
    bits of a host's address), the all-zero MAC and group MACs of the registered multicast
    blocks (but 33:33:ff, the solicited-node MACs)."""
    if len(raw) == 4:
        v4 = ipaddress.IPv4Address(raw)
        return any(v4 in network for network in PUBLIC_IPV4)
    if len(raw) == 16:
        v6 = ipaddress.IPv6Address(raw)
        return any(v6 in network for network in PUBLIC_IPV6) and v6 not in SOLICITED_NODE
    if raw == bytes(6):
        return True
    return bool(raw[0] & 1) and raw.startswith(MULTICAST) and not raw.startswith(b"\x33\x33\xff")


PUBLIC: Kept = is_public


def kept_by_mappers(ip_mapper: AddressMapper, mac_mapper: MacMapper) -> Kept:
    """Identifiers the run's rules keep: those the run's mappings map to themselves."""

    def kept(raw: bytes) -> bool:
        if len(raw) == 6:
            return mac_mapper.map(raw) == raw
        return ip_mapper.map(raw) == raw

    return kept


# ------------------------------------------------------------------------------------------
# Searching bytes

# Prefilter bits: four binary forms, each keyed by 4 bytes at `rel` from its start and checked
# again on 4 more bytes at `second`; text and DNS wire forms keyed by their first 4 bytes.
IPV4_BIT, MAC_BIT, EUI_BIT, IPV6_BIT, TEXT_BIT, WIRE_BIT = 1, 2, 4, 8, 16, 32
# bit -> (kind, encoding, width, key offset, second key offset or -1)
BINARY = {IPV4_BIT: ("ipv4", "binary", 4, 0, -1), MAC_BIT: ("mac", "binary", 6, 2, 0),
          EUI_BIT: ("mac", "eui64", 8, 4, 0), IPV6_BIT: ("ipv6", "binary", 16, 12, 8)}
# text parsers, by flag
DOTTED, MAC_TEXT, REVERSE4, REVERSE6, NAME_TEXT, REVERSE4_WIRE, REVERSE6_WIRE, NAME_WIRE = (
    1 << n for n in range(8))
TABLE_BITS = 20
HASH1, HASH2 = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77)
SHIFT = np.uint32(32 - TABLE_BITS)

DOTTED_AT = re.compile(rb"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9])")
REVERSE4_AT = re.compile(rb"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.in-addr\.arpa")
REVERSE6_AT = re.compile(rb"((?:[0-9a-f]\.){32})ip6\.arpa")
REVERSE4_WIRE_AT = re.compile(rb"((?:\x01[0-9]|\x02[0-9]{2}|\x03[0-9]{3}){4})(?:\x07in-addr|[\xc0-\xff])")
REVERSE6_WIRE_AT = re.compile(rb"((?:\x01[0-9a-f]){32})(?:\x03ip6|[\xc0-\xff])")
MAC_AT = re.compile(rb"([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2"
                    rb"([0-9a-f]{2})(?![0-9a-f])|([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})(?![0-9a-f])"
                    rb"|([0-9a-f]{12})(?![0-9a-f])")
IPV6_RUN = re.compile(rb"[0-9a-f:.]+")
DIGITS, HEX = frozenset(b"0123456789"), frozenset(b"0123456789abcdef")
NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-")
RUN_CHARS = frozenset(b"0123456789abcdef:.")

Hit = tuple[int, int, Identifier, str]  # (start, end, identifier, encoding), offsets in the buffer


def _hash(values: npt.NDArray[np.uint32], multiplier: np.uint32) -> npt.NDArray[np.uint32]:
    hashed: npt.NDArray[np.uint32] = (values * multiplier) >> SHIFT
    return hashed


def windows(buffer: bytes) -> npt.NDArray[np.uint32]:
    """The little-endian value of every 4-byte window of `buffer` (one per start offset)."""
    count = len(buffer) - 3
    if count <= 0:
        return np.empty(0, np.uint32)
    out = np.empty((count + 3) // 4 * 4, np.uint32)
    lanes = out.reshape(-1, 4)
    for lane in range(4):
        view = np.frombuffer(buffer, dtype="<u4", count=(len(buffer) - lane) // 4, offset=lane)
        size = min(len(view), len(lanes))
        lanes[:size, lane] = view[:size]
    return out[:count]


def _wire(labels: Iterable[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels)


OCTETS = [str(value).encode() for value in range(256)]
NIBBLES = [bytes([c]) for c in b"0123456789abcdef"]


def text_keys(kind: str, raw: bytes) -> list[tuple[int, bytes]]:
    """The first 4 bytes of each canonical text or wire form of an identifier, with the flag of
    the parser that reads it from there (in any spelling the parser accepts)."""
    if kind == "name":
        return [(NAME_TEXT, raw[:4]), (NAME_WIRE, _wire(raw.split(b".", 2)[:2])[:4])]
    if kind == "ipv4":
        a, b, c, d = (OCTETS[octet] for octet in raw)
        return [(DOTTED, (a + b"." + b + b"." + c)[:4]), (REVERSE4, (d + b"." + c + b"." + b)[:4]),
                (REVERSE4_WIRE, _wire((d, c))[:4])]
    if kind == "ipv6":
        low, high = NIBBLES[raw[15] & 15], NIBBLES[raw[15] >> 4]
        return [(REVERSE6, low + b"." + high + b"."), (REVERSE6_WIRE, b"\x01" + low + b"\x01" + high)]
    digits = raw[:2].hex().encode()
    return [(MAC_TEXT, digits[:2] + b":" + digits[2:3]), (MAC_TEXT, digits[:2] + b"-" + digits[2:3]),
            (MAC_TEXT, digits)]


def _zero_padded(raw: bytes) -> bool:
    """One byte and zeros (0.0.0.1, 10.0.0.0, 02:00:00:00:00:00): zero runs are everywhere, so
    such a value in binary is no evidence; it is still looked for as text."""
    return len(raw) in (4, 6) and raw.count(0) >= len(raw) - 1


def _lanes(raws: list[bytes], width: int, at: int) -> npt.NDArray[np.uint32]:
    """The (lowered) 4 bytes at `at` of each same-width value, as window values."""
    if not raws:
        return np.empty(0, np.uint32)
    grid = np.frombuffer(b"".join(raws).lower(), np.uint8).reshape(-1, width)
    lanes: npt.NDArray[np.uint32] = np.ascontiguousarray(grid[:, at:at + 4]).view("<u4").ravel()
    return lanes


@dataclass(slots=True)
class Searcher:
    """The prefilter tables and exact lookups for a set of identifiers. `addresses` and `names`
    map each identifier looked for to whether it is secret; `forget` stops looking for some
    (kept identifiers count once, so once found they need not be looked for)."""

    addresses: dict[bytes, bool]  # IPv4, IPv6 address or MAC -> secret
    names: dict[bytes, bool]
    eui64s: dict[bytes, bytes] = field(init=False)  # EUI-64 interface id -> MAC
    prefixes: dict[bytes, bytes] = field(init=False)  # first labels of a name -> the name
    name_lengths: list[int] = field(init=False)  # longest first
    texts: dict[int, int] = field(init=False)  # text/wire key -> parser flags
    owners: dict[Identifier, int] = field(init=False)
    active: npt.NDArray[np.bool_] = field(init=False)
    entries: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint32],
                   npt.NDArray[np.int64]] = field(init=False)  # key, bit, second key, owner
    second: dict[int, npt.NDArray[np.uint32]] = field(init=False)  # binary bit -> second keys
    ipv4_keys: npt.NDArray[np.uint32] = field(init=False)
    text_keys: npt.NDArray[np.uint32] = field(init=False)
    tables: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] = field(init=False)

    def __post_init__(self) -> None:
        identifiers = [(_kind(raw), raw) for raw in self.addresses] + [("name", n) for n in self.names]
        self.owners = {identifier: index for index, identifier in enumerate(identifiers)}
        self.active = np.ones(len(identifiers), np.bool_)
        self.eui64s = {eui64(raw): raw for raw in self.addresses if len(raw) == 6}
        self.prefixes = {}
        self.name_lengths = sorted({len(name) for name in self.names}, reverse=True)
        for name in self.names:
            labels = name.split(b".")
            for end in range(1, len(labels)):
                self.prefixes.setdefault(b".".join(labels[:end]), name)
        parts = [self._binary_entries(bit, identifiers) for bit in BINARY]
        parts.append(self._text_entries(identifiers))
        self.entries = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))
        self._tables()

    def _binary_entries(self, bit: int, identifiers: list[Identifier]) -> tuple[
            npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        kind, _, width, rel, other = BINARY[bit]
        chosen = [(index, raw) for index, (k, raw) in enumerate(identifiers)
                  if k == kind and (bit == EUI_BIT or not _zero_padded(raw))]
        forms = [eui64(raw) if bit == EUI_BIT else raw for _, raw in chosen]
        keys = _lanes(forms, width, rel)
        seconds = _lanes(forms, width, other) if other >= 0 else np.zeros(len(forms), np.uint32)
        return (keys, np.full(len(forms), bit, np.uint8), seconds,
                np.array([index for index, _ in chosen], np.int64))

    def _text_entries(self, identifiers: list[Identifier]) -> tuple[
            npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        keys, bits, owners = [], [], []
        texts = self.texts = {}
        for index, (kind, raw) in enumerate(identifiers):
            for flag, start in text_keys(kind, raw):  # lowercase already
                key = int.from_bytes(start, "little")
                texts[key] = texts.get(key, 0) | flag
                keys.append(key)
                bits.append(WIRE_BIT if flag >= REVERSE4_WIRE else TEXT_BIT)
                owners.append(index)
        return (np.array(keys, np.uint32), np.array(bits, np.uint8), np.zeros(len(keys), np.uint32),
                np.array(owners, np.int64))

    def forget(self, identifiers: Iterable[Identifier]) -> None:
        """Stop looking for these identifiers."""
        for identifier in identifiers:
            kind, raw = identifier
            if (self.names if kind == "name" else self.addresses).pop(raw, None) is not None:
                self.active[self.owners[identifier]] = False
        self._tables()

    def _tables(self) -> None:
        keys, bits, seconds, owners = self.entries
        live = self.active[owners]
        keys, bits, seconds = keys[live], bits[live], seconds[live]
        tables = []
        for multiplier in (HASH1, HASH2):
            table = np.zeros(1 << TABLE_BITS, np.uint8)
            np.bitwise_or.at(table, _hash(keys, multiplier), bits)
            tables.append(table)
        self.tables = (tables[0], tables[1])
        self.second = {bit: np.unique(seconds[bits == bit]) for bit in BINARY}
        self.ipv4_keys = np.unique(keys[bits == IPV4_BIT])
        self.text_keys = np.unique(keys[(bits & (TEXT_BIT | WIRE_BIT)) != 0])

    def search(self, buffer: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
               ) -> list[tuple[int, Hit]]:
        """Every hit in `buffer`, which holds pieces at [starts[i], ends[i]); no hit crosses a
        piece's bounds. Returns (piece index, hit) with offsets in the buffer."""
        if not (self.addresses or self.names):
            return []
        low = buffer.lower()
        values = windows(low)
        first = self.tables[0][_hash(values, HASH1)]
        where = np.flatnonzero(first)
        values_at = values[where]
        bits = first[where] & self.tables[1][_hash(values_at, HASH2)]
        passing = bits != 0
        where, values_at, bits = where[passing], values_at[passing], bits[passing]
        hits: list[tuple[int, Hit]] = []
        for bit, (kind, encoding, width, rel, other) in BINARY.items():
            chosen = (bits & bit) != 0
            begin = where[chosen] - rel
            inside = begin >= 0
            begin = begin[inside]
            if other >= 0:
                begin = begin[np.isin(values[begin + other], self.second[bit])]
            else:
                begin = begin[np.isin(values_at[chosen][inside], self.ipv4_keys)]
            hits += self._binary(buffer, begin, width, kind, encoding, starts, ends)
        chosen = ((bits & (TEXT_BIT | WIRE_BIT)) != 0) & np.isin(values_at, self.text_keys)
        positions = where[chosen]
        pieces = np.searchsorted(starts, positions, side="right") - 1
        for position, piece, value in zip(positions.tolist(), pieces.tolist(), values_at[chosen].tolist(),
                                          strict=True):
            for hit in self._parse(low, position, int(starts[piece]), int(ends[piece]), self.texts[value]):
                hits.append((piece, hit))
        hits += self._ipv6_text(low, starts, ends)
        return hits

    def _binary(self, buffer: bytes, begin: npt.NDArray[np.int64], width: int, kind: str, encoding: str,
                starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> list[tuple[int, Hit]]:
        pieces = np.searchsorted(starts, begin, side="right") - 1
        fits = (pieces >= 0) & (begin + width <= ends[np.maximum(pieces, 0)])
        found = []
        for start, piece in zip(begin[fits].tolist(), pieces[fits].tolist(), strict=True):
            raw = buffer[start:start + width]
            target = self.eui64s.get(raw) if encoding == "eui64" else raw
            if target is not None and target in self.addresses:
                found.append((piece, (start, start + width, (kind, target), encoding)))
        return found

    def _parse(self, low: bytes, at: int, lo: int, hi: int, flags: int) -> Iterator[Hit]:
        before = low[at - 1] if at > lo else -1
        if flags & DOTTED and before not in DIGITS:
            match = DOTTED_AT.match(low, at, hi)
            if match is not None:
                yield from self._address(_octets(match.groups()), at, match.end(), "ipv4", "text")
        if flags & REVERSE4 and before not in DIGITS:
            match = REVERSE4_AT.match(low, at, hi)
            if match is not None:
                raw = _octets(match.groups()[::-1])
                yield from self._address(raw, at, match.end(), "ipv4", "reverse-dns")
        if flags & REVERSE6 and before not in NAME_CHARS:
            match = REVERSE6_AT.match(low, at, hi)
            if match is not None:
                raw = bytes.fromhex(match.group(1).replace(b".", b"")[::-1].decode())
                yield from self._address(raw, at, match.end(), "ipv6", "reverse-dns")
        if flags & MAC_TEXT and before not in HEX:
            match = MAC_AT.match(low, at, hi)
            if match is not None:
                digits = re.sub(rb"[^0-9a-f]", b"", match.group())
                yield from self._address(bytes.fromhex(digits.decode()), at, match.end(), "mac", "text")
        if flags & REVERSE4_WIRE:
            match = REVERSE4_WIRE_AT.match(low, at, hi)
            if match is not None:
                labels = _wire_labels(match.group(1))
                yield from self._address(_octets(labels[::-1]), at, match.end(1), "ipv4", "reverse-dns")
        if flags & REVERSE6_WIRE:
            match = REVERSE6_WIRE_AT.match(low, at, hi)
            if match is not None:
                raw = bytes.fromhex(b"".join(_wire_labels(match.group(1)))[::-1].decode())
                yield from self._address(raw, at, match.end(1), "ipv6", "reverse-dns")
        if flags & NAME_TEXT and before not in NAME_CHARS:
            yield from self._name_text(low, at, hi)
        if flags & NAME_WIRE:
            yield from self._name_wire(low, at, hi)

    def _address(self, raw: bytes | None, start: int, end: int, kind: str, encoding: str) -> Iterator[Hit]:
        if raw is not None and raw in self.addresses:
            yield (start, end, (kind, raw), encoding)

    def _name_text(self, low: bytes, at: int, hi: int) -> Iterator[Hit]:
        """The longest name spelled from `at` (what follows may be glued to it: a DHCP option
        code after a host name is often a letter or digit)."""
        for length in self.name_lengths:
            if at + length <= hi and low[at:at + length] in self.names:
                yield (at, at + length, ("name", low[at:at + length]), "text")
                return

    def _name_wire(self, low: bytes, at: int, hi: int) -> Iterator[Hit]:
        """A name's labels from `at`: the whole name, or its first labels then a compression
        pointer (to the rest, presumably). The longest match is reported."""
        labels: list[bytes] = []
        position, best = at, None
        while position < hi and 0 < low[position] <= 63 and position + 1 + low[position] <= hi:
            labels.append(low[position + 1:position + 1 + low[position]])
            position += 1 + low[position]
            text = b".".join(labels)
            if text in self.names:
                best = (text, position)
            elif position < hi and low[position] >= 0xC0 and text in self.prefixes:
                best = (self.prefixes[text], position + 2)
        if best is not None:
            yield (at, min(best[1], hi), ("name", best[0]), "dns-wire")

    def _ipv6_text(self, low: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
                   ) -> list[tuple[int, Hit]]:
        """IPv6 text: runs of hex digits, ':' and '.' around two colons at most 5 bytes apart."""
        if not any(len(raw) == 16 for raw in self.addresses):
            return []
        colons = np.flatnonzero(np.frombuffer(low, np.uint8) == 0x3A)
        close = colons[:-1][np.diff(colons) <= 5]
        pieces = np.searchsorted(starts, close, side="right") - 1
        hits: list[tuple[int, Hit]] = []
        done = -1
        for colon, piece in zip(close.tolist(), pieces.tolist(), strict=True):
            if colon < done:
                continue
            lo, hi = int(starts[piece]), int(ends[piece])
            start = colon
            while start > lo and low[start - 1] in RUN_CHARS:
                start -= 1
            match = IPV6_RUN.match(low, start, hi)
            if match is None:
                continue
            done = match.end()
            hit = self._ipv6_run(match.group(), start)
            if hit is not None:
                hits.append((piece, hit))
        return hits

    def _ipv6_run(self, run: bytes, start: int) -> Hit | None:
        """An IPv6 address in any textual form, possibly glued to up to 4 hex digits or a
        stray ':' or '.' on either side."""
        if b"::" not in run and run.count(b":") < 6:
            return None
        for left in range(5):
            for right in range(5):
                candidate = run[left:len(run) - right]
                try:
                    raw = ipaddress.IPv6Address(candidate.decode()).packed
                except ValueError:
                    continue
                if raw in self.addresses:
                    return (start + left, start + left + len(candidate), ("ipv6", raw), "text")
                return None
        return None


def _octets(groups: Sequence[bytes]) -> bytes | None:
    values = [int(group) for group in groups]
    return bytes(values) if all(value <= 255 for value in values) else None


def _wire_labels(wire: bytes) -> list[bytes]:
    labels, offset = [], 0
    while offset < len(wire):
        labels.append(wire[offset + 1:offset + 1 + wire[offset]])
        offset += 1 + wire[offset]
    return labels


# ------------------------------------------------------------------------------------------
# Chance matches in binary


def is_chance(layers: Layers, data: bytes, start: int, end: int) -> bool:
    """Whether a binary match at [start, end) of an OUTPUT frame is bytes that merely equal an
    identifier, judged on the output's own dissection. Not chance: a match exactly at an address
    field of its width (or where an IPv6 address holds an EUI-64 id or an IPv4 address). Chance:
    a match that shares bytes with an address, MAC or name field without being one (the mapped
    bytes there are pseudo-random, and a copied address lands on a field, not across one), and a
    match wholly inside the fixed numeric fields of headers (lengths, checksums, sequence
    numbers, DNS and DHCP transaction ids)."""
    if start in _aligned(layers, end - start):
        return False
    fields = [(o, o + 4) for o in layers.ipv4] + [(o, o + 16) for o in layers.ipv6]
    fields += [(o, o + 6) for o in layers.macs] + [(n.offset, n.end) for n in layers.names]
    fields += [(p.offset, p.offset + p.size) for p in layers.prefixes]
    if any(low < end and start < high for low, high in fields):
        return True
    return any(low <= start and end <= high for low, high in _merged(_numeric(layers, data)))


def _aligned(layers: Layers, width: int) -> set[int]:
    if width == 4:
        return {*layers.ipv4, *(o + d for o in layers.ipv6 for d in (2, 4, 12)),
                *(p.offset for p in layers.prefixes if p.size == 4)}
    if width == 16:
        return {*layers.ipv6, *(p.offset for p in layers.prefixes if p.size == 16)}
    return set(layers.macs) if width == 6 else {o + 8 for o in layers.ipv6}


def _numeric(layers: Layers, data: bytes) -> list[tuple[int, int]]:
    """Spans of fixed numeric header fields: link header, IPv4 header but addresses, IPv6 first
    8 bytes, TCP header with options, UDP, ICMP and ICMPv6 headers, ARP's fixed part, and the
    header of a DNS or DHCP message."""
    spans = [(0, layers.network if layers.network >= 0 else 0)]
    if layers.ethertype == 0x0806 and layers.network >= 0:
        spans.append((layers.network, layers.network + 8))
    for header in layers.headers:
        offset = header.offset
        if header.kind == "ipv4" and len(data) > offset:
            spans.append((offset, offset + max(20, (data[offset] & 0x0F) * 4)))
        elif header.kind == "tcp" and len(data) > offset + 12:
            size = max(20, (data[offset + 12] >> 4) * 4)
            spans.append((offset, offset + size))
            spans.append(_message_header(data, offset, offset + size + 2))
        elif header.kind == "udp":
            spans.append((offset, offset + 8))
            spans.append(_message_header(data, offset, offset + 8))
        else:
            spans.append((offset, offset + 8))
    return spans


def _message_header(data: bytes, transport: int, start: int) -> tuple[int, int]:
    if len(data) < transport + 4:
        return (0, 0)
    source, destination = struct.unpack_from("!HH", data, transport)
    service = SERVICES.get(destination) or SERVICES.get(source) or ""
    size = {"dns": 12, "mdns": 12, "llmnr": 12, "dhcp": 12, "dhcpv6": 4}.get(service, 0)
    return (start, start + size)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(s for s in spans if s[1] > s[0]):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def most_specific(hits: list[Hit]) -> list[Hit]:
    """One hit per identifier and place: of overlapping hits of the same identifier, the one in
    the most specific encoding (then the earliest)."""
    ordered = sorted(hits, key=lambda h: (h[2], h[0]))
    kept: list[Hit] = []
    cluster_end = -1
    for hit in ordered:
        if kept and kept[-1][2] == hit[2] and hit[0] < cluster_end:
            cluster_end = max(cluster_end, hit[1])
            if SPECIFICITY[hit[3]] < SPECIFICITY[kept[-1][3]]:
                kept[-1] = hit
            continue
        kept.append(hit)
        cluster_end = hit[1]
    return sorted(kept, key=lambda h: h[0])


# ------------------------------------------------------------------------------------------
# The file: frames and everything else


def file_metadata(path: str) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of what the (decompressed) capture holds besides frame data and block
    structure: for pcapng every option value (comments, interface names and descriptions,
    `if_MACaddr`, `shb_os` ...), and the whole body of name resolution, decryption secrets,
    custom and unknown blocks; for classic pcap the header's time zone and accuracy fields (the
    rest of its header and record headers are magic, lengths and times)."""
    stream = open_input(path)
    try:
        head = stream.read(24)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            yield from _pcapng_metadata(stream.read, head)
        elif len(head) == 24:
            yield 8, head[8:16]
    finally:
        stream.close()


PCAPNG_FIXED = {0x0A0D0D0A: 16, 1: 8, 5: 12}  # SHB, IDB, ISB: numeric fields before the options
PACKET_BLOCKS = (2, 6)  # OPB, EPB: 20 bytes of numbers, then the data, then options


def _pcapng_metadata(read: Callable[[int], bytes], head: bytes) -> Iterator[tuple[int, bytes]]:
    data, base, position, order = head, 0, 0, "<"
    while True:
        if len(data) - position < 12:
            data, base, position = data[position:] + read(CHUNK), base + position, 0
            if len(data) < 12:
                if data:
                    yield base, data
                return
        if data[position:position + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[position + 8:position + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, length = struct.unpack_from(order + "II", data, position)
        if kind in PACKET_BLOCKS and 32 <= length <= len(data) - position \
                and length - 32 == (struct.unpack_from(order + "I", data, position + 20)[0] + 3) & ~3:
            position += length  # a packet block without options: nothing but numbers and data
            continue
        if len(data) - position < length:
            data, base, position = data[position:] + read(max(CHUNK, length)), base + position, 0
        if length < 12 or length % 4 or len(data) - position < length:
            yield base + position, data[position:] + read(-1)
            return
        yield from _block_metadata(kind, data, position + 8, position + length - 4, base, order)
        position += length


def _block_metadata(kind: int, data: bytes, start: int, end: int, base: int, order: str,
                    ) -> Iterator[tuple[int, bytes]]:
    if kind in PACKET_BLOCKS and end - start >= 20:
        caplen = struct.unpack_from(order + "I", data, start + 12)[0]
        options = start + 20 + (caplen + 3) // 4 * 4
    elif kind == 3:  # SPB: original length, then the data
        return
    elif kind in PCAPNG_FIXED:
        options = start + PCAPNG_FIXED[kind]
    else:
        yield base + start, data[start:end]
        return
    while options + 4 <= end:
        code, size = struct.unpack_from(order + "HH", data, options)
        if code == 0:
            options += 4
            break
        if options + 4 + size > end:
            break
        yield base + options + 4, data[options + 4:options + 4 + size]
        options += 4 + (size + 3) // 4 * 4
    if options < end:
        yield base + options, data[options:end]


CHUNK_BYTES = 4 << 20


@dataclass(slots=True)
class Tally:
    """Counts every residual hit; keeps the first `limit` as findings."""

    path: str
    collector: IdentifierCollector
    limit: int
    total: int = 0
    distinct: set[Identifier] = field(default_factory=set)
    kept: set[Identifier] = field(default_factory=set)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_encoding: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def add(self, identifier: Identifier, encoding: str, frame: int | None, offset: int) -> None:
        kind, raw = identifier
        self.total += 1
        self.distinct.add(identifier)
        self.by_kind[kind] += 1
        self.by_encoding[encoding] += 1
        if len(self.findings) < self.limit:
            seen = (self.collector.names if kind == "name" else self.collector.addresses)[raw]
            self.findings.append({"kind": kind, "value": _text(kind, raw), "encoding": encoding,
                                  "file": self.path, "frame": frame, "offset": offset,
                                  "first_seen": {"frame": seen.frame, "where": seen.where}})

    def result(self) -> dict[str, Any]:
        return {"identifiers_checked": self.collector.counts(), "kept_by_rule": len(self.kept),
                "total": self.total, "distinct": len(self.distinct),
                "by_kind": {kind: self.by_kind[kind] for kind in KINDS},
                "by_encoding": {encoding: self.by_encoding[encoding] for encoding in ENCODINGS},
                "findings": self.findings, "findings_truncated": self.total > len(self.findings)}


def _text(kind: str, raw: bytes) -> str:
    if kind == "ipv4":
        return str(ipaddress.IPv4Address(raw))
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(raw))
    if kind == "mac":
        return ":".join(f"{b:02x}" for b in raw)
    return raw.decode("ascii", "backslashreplace")


def scan(path: str, collector: IdentifierCollector, kept: Kept | None = None,
         limit: int = FINDINGS_LIMIT, keep_names: bool = False) -> dict[str, Any]:
    """The RESIDUAL section of the report: every identifier of `collector` found in the capture
    at `path`. `kept` says which addresses and MACs the rules keep (default `PUBLIC`); with
    `keep_names` (or a collector built with `names: keep`) the rules keep host names. Kept
    identifiers found count once each in `kept_by_rule`; every other hit counts, the first
    `limit` listed as findings."""
    keeps = kept or PUBLIC
    searcher = Searcher({raw: not keeps(raw) for raw in collector.addresses},
                        dict.fromkeys(collector.names, not (keep_names or collector.names_kept)))
    tally = Tally(path, collector, limit)
    _scan_frames(path, searcher, tally)
    _scan_metadata(path, searcher, tally)
    return tally.result()


def _concatenate(pieces: list[bytes]) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """One buffer with a newline between pieces (a boundary for every text form), and where
    each piece starts and ends in it."""
    lengths = np.fromiter((len(p) for p in pieces), np.int64, len(pieces))
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])).astype(np.int64)
    return b"\n".join(pieces), starts, starts + lengths


def _scan_frames(path: str, searcher: Searcher, tally: Tally) -> None:
    reader = open_reader(path)
    try:
        pieces: list[bytes] = []
        linktypes: list[int] = []
        size, first = 0, 1
        for frame in reader:
            pieces.append(frame.data)
            linktypes.append(frame.linktype)
            size += len(frame.data)
            if size >= CHUNK_BYTES:
                _frames_chunk(pieces, linktypes, first, searcher, tally)
                first += len(pieces)
                pieces, linktypes, size = [], [], 0
        if pieces:
            _frames_chunk(pieces, linktypes, first, searcher, tally)
    finally:
        reader.stream.close()


def _frames_chunk(pieces: list[bytes], linktypes: list[int], first: int, searcher: Searcher,
                  tally: Tally) -> None:
    buffer, starts, ends = _concatenate(pieces)
    by_piece: dict[int, list[Hit]] = {}
    for piece, (start, end, identifier, encoding) in searcher.search(buffer, starts, ends):
        base = int(starts[piece])
        by_piece.setdefault(piece, []).append((start - base, end - base, identifier, encoding))
    for piece in sorted(by_piece):
        data, layers = pieces[piece], None
        found = []
        for hit in by_piece[piece]:
            if hit[3] in ("binary", "eui64"):
                layers = layers or dissect(data, linktypes[piece])
                if is_chance(layers, data, hit[0], hit[1]):
                    continue
            if _secret(searcher, hit[2]):
                found.append(hit)
            else:
                tally.kept.add(hit[2])
        for start, _, identifier, encoding in most_specific(found):
            tally.add(identifier, encoding, first + piece, start)
    _forget_kept(searcher, tally)


def _secret(searcher: Searcher, identifier: Identifier) -> bool:
    kind, raw = identifier
    return (searcher.names if kind == "name" else searcher.addresses)[raw]


def _forget_kept(searcher: Searcher, tally: Tally) -> None:
    """Kept identifiers count once: once found they need not be looked for any more."""
    found = [i for i in tally.kept if i[1] in (searcher.names if i[0] == "name" else searcher.addresses)]
    if found:
        searcher.forget(found)


def _scan_metadata(path: str, searcher: Searcher, tally: Tally) -> None:
    pieces: list[bytes] = []
    offsets: list[int] = []
    size = 0
    for offset, data in file_metadata(path):
        pieces.append(data)
        offsets.append(offset)
        size += len(data)
        if size >= CHUNK_BYTES:
            _metadata_chunk(pieces, offsets, searcher, tally)
            pieces, offsets, size = [], [], 0
    if pieces:
        _metadata_chunk(pieces, offsets, searcher, tally)


def _metadata_chunk(pieces: list[bytes], offsets: list[int], searcher: Searcher, tally: Tally) -> None:
    buffer, starts, ends = _concatenate(pieces)
    by_piece: dict[int, list[Hit]] = {}
    for piece, (start, end, identifier, encoding) in searcher.search(buffer, starts, ends):
        if not _secret(searcher, identifier):
            tally.kept.add(identifier)
            continue
        base = int(starts[piece])
        by_piece.setdefault(piece, []).append((start - base, end - base, identifier, encoding))
    for piece in sorted(by_piece):
        for start, _, identifier, _ in most_specific(by_piece[piece]):
            tally.add(identifier, "metadata", None, offsets[piece] + start)
    _forget_kept(searcher, tally)
