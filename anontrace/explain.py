"""explain: the first frames of a capture before and after the rules, field by field."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from anontrace import pipeline
from anontrace.io.capture import open_reader
from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.packet.checksum import fix_checksums
from anontrace.packet.layers import Header, Layers, Name
from anontrace.packet.network import ARP
from anontrace.packet.transport import TCP_PORTS, UDP_PORTS
from anontrace.rules.compile import Rules
from anontrace.transforms.names import name_labels

ETHERNET = 1
Format = Callable[[int], str]


def _hex(width: int) -> Format:
    return lambda value: f"0x{value:0{width}x}"


# Header fields a rule step may change, per header kind: (name, offset in the header, size, format).
HEADER_FIELDS: dict[str, tuple[tuple[str, int, int, Format], ...]] = {
    "ipv4": (("TOS", 1, 1, _hex(2)), ("id", 4, 2, str), ("TTL", 8, 1, str), ("checksum", 10, 2, _hex(4))),
    "ipv6": (("traffic class", 0, 4, lambda v: f"0x{(v >> 20) & 0xFF:02x}"),
             ("flow label", 0, 4, lambda v: f"0x{v & 0xFFFFF:05x}"), ("hop limit", 7, 1, str)),
    "tcp": (("source port", 0, 2, str), ("destination port", 2, 2, str), ("seq", 4, 4, str),
            ("ack", 8, 4, str), ("window", 14, 2, str), ("checksum", 16, 2, _hex(4))),
    "udp": (("source port", 0, 2, str), ("destination port", 2, 2, str), ("checksum", 6, 2, _hex(4))),
    "icmp": (("checksum", 2, 2, _hex(4)),),
    "icmpv6": (("checksum", 2, 2, _hex(4)),),
}
# Identifier fields with a fixed place, by (layer kind, offset from the layer's start).
FIXED_NAMES = {
    ("eth", 0): "destination", ("eth", 6): "source",
    ("arp", 8): "sender MAC", ("arp", 14): "sender address", ("arp", 18): "target MAC",
    ("arp", 24): "target address",
    ("ipv4", 12): "source", ("ipv4", 16): "destination", ("ipv6", 8): "source", ("ipv6", 24): "destination",
    ("icmp", 4): "gateway", ("icmpv6", 8): "target",
    ("dhcp", 20): "client address", ("dhcp", 24): "your address", ("dhcp", 28): "server address",
    ("dhcp", 32): "relay address", ("dhcp", 36): "client hardware address",
}
DNS_RECORDS = {1: "A record", 28: "AAAA record"}
TCP_OPTIONS = {0: "EOL", 1: "NOP", 2: "MSS", 3: "WS", 4: "SACK_PERM", 5: "SACK", 8: "TS", 29: "AO",
               30: "MPTCP", 34: "TFO"}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a frame before and after the rules, as text; `layer` says where it lies."""

    layer: str
    name: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class FrameChange:
    """One frame before and after the rules. `after` values are None when the frame was dropped;
    `fields` lists only fields present both in the original and in the output."""

    index: int
    ts_ns_before: int
    ts_ns_after: int | None
    captured_before: int
    captured_after: int | None
    wire_length: int
    cut: str | None  # why the dissector cut the frame, if it did
    dropped: str | None
    fields: tuple[Field, ...]


def explain(source: str, rules: Rules, key: Key, count: int) -> list[FrameChange]:
    """Run the first `count` frames of `source` through `rules` exactly as a scrub does (the same
    transforms, batches, cuts and checksum fix-up) and describe what changed; `count` < 1 gives
    no frames. A damaged capture raises `TraceFormatError`, as the scrub does."""
    transforms = rules.build(key)
    reader = open_reader(source)
    changes: list[FrameChange] = []
    try:
        stats = pipeline.RunStats()
        for frames in pipeline.batches(islice(iter(reader), max(count, 0)), pipeline.BATCH_FRAMES):
            batch = pipeline.prepare(frames, stats)
            for transform in transforms:
                batch = transform.apply(batch)
            changes += [_change(batch, position) for position in range(len(batch))]
    finally:
        reader.stream.close()
    return changes


def _change(batch: Batch, position: int) -> FrameChange:
    frame, layers, out = batch.frames[position], batch.layers[position], batch.data[position]
    dropped = batch.dropped.get(position)
    if dropped is not None:
        return FrameChange(frame.index, frame.ts_ns, None, len(frame.data), None, frame.wirelen,
                           layers.cut, dropped, ())
    fix_checksums(frame.data, out, layers.checksums)
    after = bytes(out)
    return FrameChange(frame.index, frame.ts_ns, batch.ts_ns[position], len(frame.data), len(after),
                       frame.wirelen, layers.cut, None, _fields(frame.data, after, layers, frame.linktype))


class _Places:
    """Names the places in one frame: each header's label, and which layer holds an offset."""

    def __init__(self, data: bytes, layers: Layers, linktype: int) -> None:
        self.data, self.layers, self.linktype = data, layers, linktype
        self.labels: list[tuple[Header, str, str | None]] = []  # header, label, what follows it
        seen: dict[tuple[str, bool], int] = {}
        for header in layers.headers:
            number = seen[header.kind, header.quoted] = seen.get((header.kind, header.quoted), 0) + 1
            label = header.kind + (" (quoted)" if header.quoted else "")
            label += f" #{number}" if number > 1 else ""
            self.labels.append((header, label, self._application(header)))

    def _application(self, header: Header) -> str | None:
        """What the dissector read after a TCP or UDP header, by its port tables (dns, dhcp, ...)."""
        table = {"udp": UDP_PORTS, "tcp": TCP_PORTS}.get(header.kind)
        if table is None or header.offset + 4 > len(self.data):
            return None
        ports = sorted(struct.unpack_from("!HH", self.data, header.offset))
        parser = table.get(ports[0]) or table.get(ports[1])
        return None if parser is None else parser.__name__.removesuffix("_udp").removesuffix("_tcp")

    def name(self, offset: int, size: int, what: str) -> tuple[str, str]:
        """(layer, field name) for an identifier of `size` bytes at `offset`."""
        layer, kind, start = self._owner(offset)
        fixed = FIXED_NAMES.get((kind, offset - start))
        if fixed is not None:
            return layer, fixed
        if kind == "dns" and offset >= start + 10 and size in (4, 16):
            record, length = struct.unpack_from("!H6xH", self.data, offset - 10)
            if length == size and record in DNS_RECORDS:
                return layer, f"{DNS_RECORDS[record]} at offset {offset}"
        if kind == "ipv4" and offset >= start + 20:
            return layer, f"option {what} at offset {offset}"
        if kind == "ipv6" and offset >= start + 40:
            return layer, f"extension header {what} at offset {offset}"
        if kind == "icmpv6" and what == "MAC":
            return layer, f"link-layer address option at offset {offset}"
        return layer, f"{what} at offset {offset}"

    def _owner(self, offset: int) -> tuple[str, str, int]:
        """The layer holding `offset`: its label, kind and first byte."""
        layers = self.layers
        if self.linktype == ETHERNET and offset < 12:
            return "eth", "eth", 0
        owner = ("link", "link", 0)
        for header, label, application in self.labels:
            if header.offset <= offset:
                owner = (label, header.kind, header.offset)
                if application is not None and offset >= header.offset + 8:  # after a TCP/UDP header
                    owner = (application, application, header.offset)
        if layers.ethertype == ARP and owner[2] <= layers.network <= offset:
            owner = ("arp", "arp", layers.network)
        return owner


def _fields(before: bytes, after: bytes, layers: Layers, linktype: int) -> tuple[Field, ...]:
    """Every identifier and header field present in both `before` and `after`, in wire order."""
    places = _Places(before, layers, linktype)
    present = min(len(before), len(after))
    found: list[tuple[int, Field]] = []

    def add(offset: int, size: int, layer: str, name: str, show: Callable[[bytes], str]) -> None:
        if offset + size <= present:
            found.append((offset, Field(layer, name, show(before[offset:offset + size]),
                                        show(after[offset:offset + size]))))

    for offsets, size, what, show in ((layers.macs, 6, "MAC", _mac), (layers.ipv4, 4, "address", _address),
                                      (layers.ipv6, 16, "address", _address)):
        for offset in offsets:
            add(offset, size, *places.name(offset, size, what), show)
    for prefix in layers.prefixes:
        add(prefix.offset, prefix.size, *places.name(prefix.offset, prefix.size, "prefix"),
            _prefix(prefix.family, prefix.length))
    for name in layers.names:
        if name.end <= present:
            layer, label = places.name(name.offset, name.end - name.offset, "name")
            found.append((name.offset, Field(layer, label, _name(before, name), _name(after, name))))
    for header, label, _ in places.labels:
        for field, start, size, show_value in HEADER_FIELDS[header.kind]:
            add(header.offset + start, size, label, field, _number(show_value))
        if header.kind == "tcp" and header.offset + 13 <= len(before):
            options = (before[header.offset + 12] >> 4) * 4 - 20
            if options > 0:
                add(header.offset + 20, options, label, "options", _tcp_options)
    found.sort(key=lambda item: item[0])
    return tuple(field for _, field in found)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _prefix(width: int, length: int) -> Callable[[bytes], str]:
    return lambda raw: f"{_address(raw.ljust(width, bytes(1)))}/{length}"


def _number(show: Format) -> Callable[[bytes], str]:
    return lambda raw: show(int.from_bytes(raw, "big"))


def _printable(raw: bytes) -> str:
    """Text as it is, except bytes that are not printable ASCII (a terminal must not act on them)."""
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02x}" for b in raw)


def _name(data: bytes, name: Name) -> str:
    labels = name_labels(data, name)
    if labels is None:
        return "(not readable)"
    return ".".join(_printable(text) for _, text in labels) or "."


def _tcp_options(raw: bytes) -> str:
    """The kinds of the TCP options, in order (`MSS,NOP,WS`); `?` where the list is malformed."""
    kinds, position = [], 0
    while position < len(raw):
        kind = raw[position]
        kinds.append(TCP_OPTIONS.get(kind, str(kind)))
        if kind == 0:
            break  # the rest is padding
        if kind == 1:
            position += 1
            continue
        if position + 1 >= len(raw) or raw[position + 1] < 2:
            kinds.append("?")
            break
        position += raw[position + 1]
    return ",".join(kinds)


def _time(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    seconds, fraction = divmod(abs(ts_ns), 1_000_000_000)
    return f"{'-' if ts_ns < 0 else ''}{seconds}.{fraction:09d}"


def _length(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(changes: Sequence[FrameChange], console: Console) -> None:
    """One small table per frame: field, before, after; changed values highlighted, the rest dimmed."""
    for change in changes:
        title = Text(f"frame {change.index}")
        if change.cut is not None:
            title.append(f"  cut: {change.cut}", style="yellow")
        if change.dropped is not None:
            title.append(f"  dropped: {change.dropped}", style="bold red")
        table = Table(title=title, title_justify="left")
        for column in ("layer", "field", "before", "after"):
            table.add_column(column)
        rows = [Field("frame", "time", _time(change.ts_ns_before), _time(change.ts_ns_after)),
                Field("frame", "captured length", str(change.captured_before),
                      _length(change.captured_after)),
                Field("frame", "wire length", str(change.wire_length), str(change.wire_length)),
                *change.fields]
        for row in rows:
            style = "bold yellow" if row.changed else "dim"
            table.add_row(Text(row.layer), Text(row.name), Text(row.before), Text(row.after, style=style),
                          style=None if row.changed else "dim")
        console.print(table)


def to_json(changes: Sequence[FrameChange]) -> list[dict[str, Any]]:
    """The changes as plain data, for `--json`."""
    return [{"index": c.index, "ts_ns_before": c.ts_ns_before, "ts_ns_after": c.ts_ns_after,
             "captured_before": c.captured_before, "captured_after": c.captured_after,
             "wire_length": c.wire_length, "cut": c.cut, "dropped": c.dropped,
             "fields": [{"layer": f.layer, "name": f.name, "before": f.before, "after": f.after,
                         "changed": f.changed} for f in c.fields]} for c in changes]
