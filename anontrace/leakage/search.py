"""search: find a set of identifiers in bytes, in every encoding they can take.

A `Searcher` looks for addresses, MACs and host names as binary (4-byte IPv4, 16-byte IPv6,
6-byte MAC, a MAC's 8-byte EUI-64 interface id), as text (dotted IPv4, IPv6 in any form
`ipaddress` reads, MAC with `:`, `-`, `.` or no separator, host names), as reverse DNS names
(`in-addr.arpa`, `ip6.arpa`) and as DNS wire labels; `most_specific` keeps one hit per place.
`is_chance` says which binary hits in a frame are bytes that merely equal an identifier.

Speed comes from one prefilter for all forms: every 4-byte window of a batch of pieces (as one
buffer, lowered for case-insensitive text) is hashed with numpy into two small bitmask tables
that mark the 4-byte keys of the forms looked for; only windows passing both reach Python, which
checks them exactly. IPv6 text has too many spellings for keys: it is found from colon pairs.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from anontrace.crypto.macs import eui64
from anontrace.packet.layers import Layers

# When one identifier is found at one place in several encodings, the first of these is reported.
SPECIFICITY = {"reverse-dns": 0, "dns-wire": 1, "eui64": 2, "binary": 3, "text": 4, "metadata": 5}
SERVICES = {53: "dns", 5353: "mdns", 5355: "llmnr", 67: "dhcp", 68: "dhcp", 546: "dhcpv6", 547: "dhcpv6"}
MESSAGE_HEADERS = {"dns": 12, "mdns": 12, "llmnr": 12, "dhcp": 12, "dhcpv6": 4}  # service -> header size

Identifier = tuple[str, bytes]  # (kind, value): 4/16-byte address, 6-byte MAC, lowercased name
Hit = tuple[int, int, Identifier, str]  # (start, end, identifier, encoding), offsets in the buffer


def kind_of(raw: bytes) -> str:
    """The kind of an address or MAC, by its width."""
    return {4: "ipv4", 16: "ipv6", 6: "mac"}[len(raw)]


def service_at(data: bytes, transport: int) -> str | None:
    """The service a TCP or UDP header at `transport` talks to, by destination port, else by
    source port; None if neither port is known or the ports are cut off."""
    if len(data) < transport + 4:
        return None
    source, destination = struct.unpack_from("!HH", data, transport)
    return SERVICES.get(destination) or SERVICES.get(source)


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

def _hash(values: npt.NDArray[np.uint32], multiplier: np.uint32) -> npt.NDArray[np.uint32]:
    hashed: npt.NDArray[np.uint32] = values * multiplier
    hashed >>= SHIFT  # in place: a buffer's windows are 4 bytes per byte searched
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
    (kept identifiers count once, so once found they need not be looked for). `text_only` looks
    for the text forms alone (dotted and colon addresses, MAC text, reverse DNS names, host names):
    in text a person wrote, such as a label, bytes that equal a binary or DNS wire form are chance."""

    addresses: dict[bytes, bool]  # IPv4, IPv6 address or MAC -> secret
    names: dict[bytes, bool]
    text_only: bool = False
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
    live: int = field(init=False)  # identifiers looked for when the tables were built
    stale: int = field(init=False)  # of those, forgotten since

    def __post_init__(self) -> None:
        identifiers = [(kind_of(raw), raw) for raw in self.addresses] + [("name", n) for n in self.names]
        self.owners = {identifier: index for index, identifier in enumerate(identifiers)}
        self.active = np.ones(len(identifiers), np.bool_)
        self.eui64s = {eui64(raw): raw for raw in self.addresses if len(raw) == 6}
        self.prefixes = {}
        self.name_lengths = sorted({len(name) for name in self.names}, reverse=True)
        for name in self.names:
            labels = name.split(b".")
            for end in range(1, len(labels)):
                self.prefixes.setdefault(b".".join(labels[:end]), name)
        parts = [] if self.text_only else [self._binary_entries(bit, identifiers) for bit in BINARY]
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
                if self.text_only and flag >= REVERSE4_WIRE:
                    continue
                key = int.from_bytes(start, "little")
                texts[key] = texts.get(key, 0) | flag
                keys.append(key)
                bits.append(WIRE_BIT if flag >= REVERSE4_WIRE else TEXT_BIT)
                owners.append(index)
        return (np.array(keys, np.uint32), np.array(bits, np.uint8), np.zeros(len(keys), np.uint32),
                np.array(owners, np.int64))

    def secret(self, identifier: Identifier) -> bool:
        """Whether an identifier looked for is secret (else the rules keep it)."""
        kind, raw = identifier
        return self._looked_for(kind)[raw]

    def forget(self, identifiers: Iterable[Identifier]) -> None:
        """Stop looking for these identifiers (those already forgotten are skipped). Every hit
        is checked against `addresses` and `names`, so the prefilter tables may still hold a
        forgotten identifier; they are rebuilt once half their entries are forgotten, which
        keeps the rebuilds' cost in proportion to the identifiers (not to the searches)."""
        for identifier in identifiers:
            kind, raw = identifier
            if self._looked_for(kind).pop(raw, None) is not None:
                self.active[self.owners[identifier]] = False
                self.stale += 1
        if self.stale * 2 > self.live:
            self._tables()

    def _looked_for(self, kind: str) -> dict[bytes, bool]:
        return self.names if kind == "name" else self.addresses

    def _tables(self) -> None:
        keys, bits, seconds, owners = self.entries
        live = self.active[owners]
        self.live, self.stale = int(self.active.sum()), 0
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

    def search_pieces(self, pieces: list[bytes]) -> list[tuple[int, list[Hit]]]:
        """The hits in each of `pieces`, searched as one buffer: (piece index, its hits with
        offsets in the piece), in piece order; pieces without a hit are left out."""
        buffer, starts, ends = _concatenate(pieces)
        by_piece: dict[int, list[Hit]] = {}
        for piece, (start, end, identifier, encoding) in self.search(buffer, starts, ends):
            base = int(starts[piece])
            by_piece.setdefault(piece, []).append((start - base, end - base, identifier, encoding))
        return [(piece, by_piece[piece]) for piece in sorted(by_piece)]

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
                begin = begin[_among(values[begin + other], self.second[bit])]
            else:
                begin = begin[_among(values_at[chosen][inside], self.ipv4_keys)]
            hits += self._binary(buffer, begin, width, kind, encoding, starts, ends)
        chosen = ((bits & (TEXT_BIT | WIRE_BIT)) != 0) & _among(values_at, self.text_keys)
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
        pointer (to the rest, presumably). The longest match is reported; a name `forget` dropped
        is not (its first labels may still be another's)."""
        labels: list[bytes] = []
        position, best = at, None
        while position < hi and 0 < low[position] <= 63 and position + 1 + low[position] <= hi:
            labels.append(low[position + 1:position + 1 + low[position]])
            position += 1 + low[position]
            text = b".".join(labels)
            if text in self.names:
                best = (text, position)
            elif position < hi and low[position] >= 0xC0 and self.prefixes.get(text) in self.names:
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


def _among(values: npt.NDArray[np.uint32], keys: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """`np.isin(values, keys)` for sorted, distinct `keys`, in time growing with len(values)
    (times log len(keys)), not with len(keys): the keys grow with the capture's hosts."""
    if not len(keys):
        return np.zeros(len(values), np.bool_)
    at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    found: npt.NDArray[np.bool_] = keys[at] == values
    return found


def _octets(groups: Sequence[bytes]) -> bytes | None:
    values = [int(group) for group in groups]
    return bytes(values) if all(value <= 255 for value in values) else None


def _wire_labels(wire: bytes) -> list[bytes]:
    labels, offset = [], 0
    while offset < len(wire):
        labels.append(wire[offset + 1:offset + 1 + wire[offset]])
        offset += 1 + wire[offset]
    return labels


def _concatenate(pieces: list[bytes]) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """One buffer with a newline between pieces (a boundary for every text form), and where
    each piece starts and ends in it."""
    lengths = np.fromiter((len(p) for p in pieces), np.int64, len(pieces))
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])).astype(np.int64)
    return b"\n".join(pieces), starts, starts + lengths


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
    return (start, start + MESSAGE_HEADERS.get(service_at(data, transport) or "", 0))


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(s for s in spans if s[1] > s[0]):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
