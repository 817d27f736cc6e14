"""residual: every original identifier still present in an anonymized capture, in any encoding.

The collector notes each address, MAC and host name the dissector finds in the ORIGINAL frames
(with the first frame it was seen in); `scan` then reads the anonymized file and looks for each
of them in every frame and in the file's metadata, counting what the rules keep apart from what
leaked. How bytes are searched (every binary, text, reverse DNS and DNS wire form, and which
binary matches are chance) is `leakage.search`; which file bytes are metadata, `leakage.metadata`.
Texts that travel with the capture (labels in labels.csv, flows.csv, the manifest and the report)
are searched by `scan_texts` for the text forms, and `merge_residual` adds what it finds.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, TypeVar

from anontrace.crypto.macs import MULTICAST, MacMapper, eui64_mac
from anontrace.crypto.mapping import SOLICITED, AddressMapper
from anontrace.io.capture import Reader, open_reader
from anontrace.leakage.metadata import file_metadata
from anontrace.leakage.search import Hit, Identifier, Searcher, is_chance, kind_of, most_specific, service_at
from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Layers, Name
from anontrace.transforms.names import NamesConfig, name_labels

KINDS = ("ipv4", "ipv6", "mac", "name")
ENCODINGS = ("binary", "text", "reverse-dns", "eui64", "dns-wire", "metadata")
FINDINGS_LIMIT = 1000
MIN_NAME = 4  # shorter names are too common as text to be evidence of anything
CHUNK_BYTES = 1 << 20  # frames (or metadata) searched as one buffer; searching takes ~12 bytes per byte

Kept = Callable[[bytes], bool]
Tag = TypeVar("Tag")


def _kept_labels(config: NamesConfig) -> frozenset[bytes]:
    return frozenset(label.lower().encode() for label in config.keep_labels)


DEFAULT_KEPT_LABELS = _kept_labels(NamesConfig())


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
        self.kept_labels = _kept_labels(config)
        self.keep_top_level = config.keep_top_level
        self.names_kept = config.policy == "keep"  # the rules keep every name as it is
        # the bytes of names read already that hold all their labels (no compression pointer):
        # the same bytes elsewhere name the same, so they are not decoded again
        self._read: tuple[set[bytes], set[bytes]] = set(), set()  # DNS wire names, text names

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
        read, span = self._read[name.base < 0], data[name.offset:name.end]
        if span in read:
            return
        labels = name_labels(data, name)
        if labels is not None and (name.base < 0 or _whole(data, name, labels)):
            read.add(span)
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

    def merge(self, later: IdentifierCollector) -> None:
        """Take in the identifiers `later` collected from the frames right after these: an
        identifier seen here keeps its sighting, new ones follow in `later`'s order. (What one
        identifier brings with it, the MAC of an EUI-64 id or an embedded IPv4 address, depends on
        it alone: if it was seen here, so was all it brings.)"""
        for kind in ("addresses", "names"):
            known: dict[bytes, Sighting] = getattr(self, kind)
            for raw, seen in getattr(later, kind).items():
                known.setdefault(raw, seen)
        for read, more in zip(self._read, later._read, strict=True):
            read |= more

    def sighting(self, identifier: Identifier) -> Sighting:
        """Where an identifier collected was first seen."""
        kind, raw = identifier
        return (self.names if kind == "name" else self.addresses)[raw]

    def counts(self) -> dict[str, int]:
        """Distinct identifiers of each kind."""
        found = Counter(kind_of(raw) for raw in self.addresses)
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


def _whole(data: bytes, name: Name, labels: list[tuple[int, bytes]]) -> bool:
    """Whether a DNS wire name's labels follow one another from its first byte to the zero byte
    that ends it, its last: then they are a function of its bytes alone."""
    position = name.offset
    for start, text in labels:
        if start != position + 1:
            return False
        position = start + len(text)
    return position + 1 == name.end and data[position] == 0


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
    service = service_at(data, inner.offset) if inner.kind in ("udp", "tcp") else None
    return ("quoted " if inner.quoted else "") + (service or inner.kind)


def _address_where(data: bytes, layers: Layers, offset: int, width: int) -> str:
    for header in layers.headers:
        if (header.kind, offset - header.offset) in (("ipv4", 12), ("ipv4", 16), ("ipv6", 8), ("ipv6", 24)):
            return ("quoted " if header.quoted else "") + f"{header.kind} header"
    kind = kind_of(bytes(width))
    return f"{kind}{'' if kind == 'mac' else ' address'} in {_context(data, layers, offset)}"


def _name_where(data: bytes, layers: Layers, name: Name) -> str:
    if name.base < 0:
        return "dhcp host name"
    context = _context(data, layers, name.offset).removeprefix("quoted ")
    if context.startswith("dhcp"):
        return f"{context} name"
    return "icmpv6 dns search list" if context == "icmpv6" else "dns name"


# ------------------------------------------------------------------------------------------
# Which identifiers may stay


PUBLIC_IPV4 = tuple(ipaddress.IPv4Network(n) for n in ("0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8",
                                                        "224.0.0.0/4"))
PUBLIC_IPV6 = tuple(ipaddress.IPv6Network(n) for n in ("::/128", "::1/128", "ff00::/8"))


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
        return any(v6 in network for network in PUBLIC_IPV6) and v6 not in SOLICITED
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
# Scanning the anonymized file: frames and everything else


class Section(dict[str, Any]):
    """A RESIDUAL section: the JSON object itself, carrying the identifiers behind its `distinct`
    (`found`) and `kept_by_rule` (`kept`) counts, so that `merge_residual` counts an identifier
    found in both of two sections once (the findings alone may be capped)."""

    __slots__ = ("found", "kept")

    def __init__(self, content: Mapping[str, Any], found: Set[Identifier], kept: Set[Identifier]) -> None:
        super().__init__(content)
        self.found = frozenset(found)
        self.kept = frozenset(kept)


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

    def secret_hits(self, hits: Iterable[Hit], searcher: Searcher) -> list[Hit]:
        """The hits of secret identifiers; those the rules keep are noted in `kept` instead."""
        found = []
        for hit in hits:
            if searcher.secret(hit[2]):
                found.append(hit)
            else:
                self.kept.add(hit[2])
        return found

    def add(self, identifier: Identifier, encoding: str, frame: int | None, offset: int,
            file: str | None = None) -> None:
        """Count one hit; `file` names where it is when that is not `path`."""
        kind, raw = identifier
        self.total += 1
        self.distinct.add(identifier)
        self.by_kind[kind] += 1
        self.by_encoding[encoding] += 1
        if len(self.findings) < self.limit:
            seen = self.collector.sighting(identifier)
            self.findings.append({"kind": kind, "value": _text(kind, raw), "encoding": encoding,
                                  "file": self.path if file is None else file, "frame": frame,
                                  "offset": offset,
                                  "first_seen": {"frame": seen.frame, "where": seen.where}})

    def result(self) -> Section:
        return Section({"identifiers_checked": self.collector.counts(), "kept_by_rule": len(self.kept),
                        "total": self.total, "distinct": len(self.distinct),
                        "by_kind": {kind: self.by_kind[kind] for kind in KINDS},
                        "by_encoding": {encoding: self.by_encoding[encoding] for encoding in ENCODINGS},
                        "findings": self.findings, "findings_truncated": self.total > len(self.findings)},
                       self.distinct, self.kept)


def _text(kind: str, raw: bytes) -> str:
    if kind == "ipv4":
        return str(ipaddress.IPv4Address(raw))
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(raw))
    if kind == "mac":
        return ":".join(f"{b:02x}" for b in raw)
    return raw.decode("ascii", "backslashreplace")


def scan(path: str, collector: IdentifierCollector, kept: Kept | None = None,
         limit: int = FINDINGS_LIMIT, keep_names: bool = False) -> Section:
    """The RESIDUAL section of the report: every identifier of `collector` found in the capture
    at `path`. `kept` says which addresses and MACs the rules keep (default `PUBLIC`); with
    `keep_names` (or a collector built with `names: keep`) the rules keep host names. Kept
    identifiers found count once each in `kept_by_rule`; every other hit counts, the first
    `limit` listed as findings."""
    return merge_residual(scan_frames(open_reader(path), collector, kept, limit, keep_names),
                          scan_metadata(path, collector, kept, limit, keep_names), limit)


def scan_frames(reader: Reader, collector: IdentifierCollector, kept: Kept | None = None,
                limit: int = FINDINGS_LIMIT, keep_names: bool = False) -> Section:
    """The frames' part of `scan`, for the frames `reader` gives (numbered as it numbers them:
    a piece of a split file gives the numbers it has in the whole file). Scans of consecutive
    pieces joined with `merge_residual` are the scan of the whole: a kept identifier counts once
    in the union, and overlapping hits are only ever weighed within one identifier."""
    searcher = _searcher(collector, kept, keep_names)
    tally = Tally(reader.stream.name, collector, limit)
    try:
        _scan_frames(reader, searcher, tally)
    finally:
        reader.stream.close()
    return tally.result()


def scan_metadata(path: str, collector: IdentifierCollector, kept: Kept | None = None,
                  limit: int = FINDINGS_LIMIT, keep_names: bool = False) -> Section:
    """The part of `scan` outside frames: the file's metadata (pcapng blocks and options)."""
    searcher = _searcher(collector, kept, keep_names)
    tally = Tally(path, collector, limit)
    _scan_metadata(path, searcher, tally)
    return tally.result()


def scan_texts(texts: Mapping[str, Iterable[str]], collector: IdentifierCollector, kept: Kept | None = None,
               keep_names: bool = False, limit: int = FINDINGS_LIMIT) -> Section:
    """A RESIDUAL section for texts that travel with the capture, such as its labels: every
    identifier of `collector` written in one of `texts`' values in a text form (dotted or colon
    address, MAC text, reverse DNS name, host name; bytes equal to a binary form are chance in
    text). A finding's `file` is the key of its text, `frame` null, `offset` the character offset
    in that text. `kept`, `keep_names` and `limit` are as for `scan`."""
    searcher = None  # made for the first text: there are often none
    tally = Tally("", collector, limit)
    pieces = ((text.encode("utf-8", "replace"), key) for key, values in texts.items() for text in values)
    for run, keys in _chunks(pieces):
        searcher = searcher or _searcher(collector, kept, keep_names, text_only=True)
        for piece, hits in searcher.search_pieces(run):
            for start, _, identifier, encoding in most_specific(tally.secret_hits(hits, searcher)):
                characters = len(run[piece][:start].decode("utf-8", "replace"))
                tally.add(identifier, encoding, None, characters, file=keys[piece])
        searcher.forget(tally.kept)
    return tally.result()


def merge_residual(a: Section, b: Section, limit: int = FINDINGS_LIMIT) -> Section:
    """Two RESIDUAL sections of one collector as one (`scan` of a capture and `scan_texts` of its
    labels): occurrences added up, an identifier found (or kept) in both counted once, the
    findings of `a` then those of `b` up to `limit`."""
    total = a["total"] + b["total"]
    findings = [*a["findings"], *b["findings"]][:limit]
    found, kept = a.found | b.found, a.kept | b.kept
    return Section({"identifiers_checked": dict(a["identifiers_checked"]), "kept_by_rule": len(kept),
                    "total": total, "distinct": len(found),
                    "by_kind": {kind: a["by_kind"][kind] + b["by_kind"][kind] for kind in KINDS},
                    "by_encoding": {encoding: a["by_encoding"][encoding] + b["by_encoding"][encoding]
                                    for encoding in ENCODINGS},
                    "findings": findings, "findings_truncated": total > len(findings)}, found, kept)


def _searcher(collector: IdentifierCollector, kept: Kept | None, keep_names: bool,
              text_only: bool = False) -> Searcher:
    """A searcher for the collector's identifiers, each marked secret unless the rules keep it."""
    keeps = kept or PUBLIC
    return Searcher({raw: not keeps(raw) for raw in collector.addresses},
                    dict.fromkeys(collector.names, not (keep_names or collector.names_kept)), text_only)


def _chunks(pieces: Iterable[tuple[bytes, Tag]]) -> Iterator[tuple[list[bytes], list[Tag]]]:
    """Pieces (with a tag each) in runs of about `CHUNK_BYTES`, each run searched as one buffer."""
    run: list[bytes] = []
    tags: list[Tag] = []
    size = 0
    for piece, tag in pieces:
        run.append(piece)
        tags.append(tag)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield run, tags
            run, tags, size = [], [], 0
    if run:
        yield run, tags


def _scan_frames(reader: Reader, searcher: Searcher, tally: Tally) -> None:
    frames = ((frame.data, (frame.linktype, frame.index + 1)) for frame in reader)
    for pieces, tags in _chunks(frames):
        for piece, hits in searcher.search_pieces(pieces):
            linktype, number = tags[piece]
            found = tally.secret_hits(_not_chance(hits, pieces[piece], linktype), searcher)
            for start, _, identifier, encoding in most_specific(found):
                tally.add(identifier, encoding, number, start)
        searcher.forget(tally.kept)  # kept identifiers count once: no need to look further


def _not_chance(hits: list[Hit], data: bytes, linktype: int) -> list[Hit]:
    """The hits of a frame but binary ones that `is_chance` (the frame dissected only if needed)."""
    layers: Layers | None = None
    found = []
    for hit in hits:
        if hit[3] in ("binary", "eui64"):
            layers = layers or dissect(data, linktype)
            if is_chance(layers, data, hit[0], hit[1]):
                continue
        found.append(hit)
    return found


def _scan_metadata(path: str, searcher: Searcher, tally: Tally) -> None:
    for pieces, offsets in _chunks((data, offset) for offset, data in file_metadata(path)):
        for piece, hits in searcher.search_pieces(pieces):
            for start, _, identifier, _ in most_specific(tally.secret_hits(hits, searcher)):
                tally.add(identifier, "metadata", None, offsets[piece] + start)
        searcher.forget(tally.kept)
