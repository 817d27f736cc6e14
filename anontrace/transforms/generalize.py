"""generalize: coarsen or re-key the header fields that fingerprint hosts, stacks and flows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from anontrace.crypto.fields import Permuted, Prf
from anontrace.keys import subkey
from anontrace.packet.batch import Batch
from anontrace.packet.layers import Header
from anontrace.transforms.base import Context, Transform, setting

TTL_BUCKETS = (32, 64, 128, 255)
PORT_RANGES = ((0, 1023), (1024, 49151), (49152, 65535))  # system, registered, dynamic (IANA)
# Registered ports that name a service; the tunnels among them (VXLAN, VXLAN-GPE, Geneve, MPLS in
# UDP) are opened by port, by the dissector and by whoever reads the output.
KEEP_PORTS = (1433, 1521, 1701, 1723, 1812, 1813, 1900, 2049, 3306, 3389, 3478, 4500, 4789, 4790,
              5060, 5061, 5353, 5355, 5432, 6081, 6635, 8080, 8443)
EOL, NOP, SACK, TIMESTAMPS = 0, 1, 5, 8
PAD1, PADN = 0, 1
ACK_FLAG = 0x10
HOP_BY_HOP, ROUTING, FRAGMENT, AUTHENTICATION, DESTINATION = 0, 43, 44, 51, 60
MAX_EXTENSION_HEADERS = 16
Handler = Callable[[bytes, bytearray, int, Header], None]


def _no_timestamps(values: Any) -> str | None:
    if TIMESTAMPS in values:
        return "TCP timestamps (kind 8) are governed by `tcp_timestamps`; leave 8 out of this list"
    return None


@dataclass(frozen=True, slots=True)
class GeneralizeConfig:
    ttl: str = setting("bucket", "IPv4 TTL and IPv6 hop limit: `keep`; `bucket` raises it to the next "
                       "of 32, 64, 128, 255 (the usual initial values, so the hop count to the "
                       "sender is hidden but not the OS family); `constant` sets `ttl_constant`.",
                       choices=("keep", "bucket", "constant"))
    ttl_constant: int = setting(64, "The TTL and hop limit written by `ttl: constant`.",
                                minimum=1, maximum=255)
    ip_id: str = setting("permute", "IPv4 identification (and IPv6 fragment identification): "
                         "`keep`; `zero` (fragments of different datagrams can then no longer be "
                         "told apart); `permute` maps it with a keyed one-to-one permutation, "
                         "so ids stay distinct and the fragments of one datagram share one id, "
                         "while a host's id counter (which counts its traffic and links its flows "
                         "across address changes) is hidden.", choices=("keep", "zero", "permute"))
    tos: str = setting("ecn", "IPv4 DSCP/ECN byte and IPv6 traffic class: `keep`; `ecn` keeps the "
                       "two ECN bits and clears DSCP (site QoS policy and application markings); "
                       "`zero` clears both.", choices=("keep", "ecn", "zero"))
    flow_label: str = setting("keyed", "IPv6 flow label: `keep`; `zero`; `keyed` replaces a "
                              "non-zero label with a keyed 20-bit function of the label and the "
                              "source address, so flows stay apart without showing the sender's "
                              "label generator.", choices=("keep", "zero", "keyed"))
    ports: str = setting("map", "TCP and UDP ports from `well_known` up, except `keep_ports`: `keep`; "
                         "`map` applies a keyed permutation within the port's range (1024-49151, "
                         "49152-65535), the same for every host, flow and quoted packet, never onto "
                         "a kept port; `bucket` writes the range's first port. Ephemeral ports "
                         "reveal the client's OS and, with their order, link its connections.",
                         choices=("keep", "map", "bucket"))
    keep_ports: tuple[int, ...] = setting(KEEP_PORTS, "Ports kept as they are: registered ports that "
                                          "name a service, not a host.", minimum=0, maximum=65535)
    well_known: int = setting(1024, "Ports below this are kept (they name services).",
                              minimum=0, maximum=65536)
    tcp_window: str = setting("keep", "TCP window: `keep`; `bucket` rounds it down to a power of two "
                              "(exact window sizes fingerprint the stack and its buffers).",
                              choices=("keep", "bucket"))
    tcp_sequence: str = setting("keep", "TCP sequence and acknowledgement numbers (and SACK "
                                "edges): `keep`; `offset` adds a keyed offset per flow direction, so "
                                "relative numbers stay exact while initial sequence numbers (which "
                                "can reveal the stack, its clock and its secret) are hidden.",
                                choices=("keep", "offset"))
    keep_tcp_options: tuple[int, ...] = setting(
        (0, 1, 2, 3, 4, 5), "TCP option kinds kept (EOL, NOP, MSS, window scale, SACK-permitted, "
        "SACK); every other option is overwritten with NOPs over its whole length, as is the rest "
        "of a malformed option list. Rare options and their order fingerprint the stack and may "
        "carry data (MPTCP keys, TCP-AO, fast-open cookies).", minimum=0, maximum=255,
        check=_no_timestamps)
    tcp_timestamps: str = setting("renumber", "TCP timestamps option: `keep`; `renumber` adds a "
                                  "keyed offset per sending host to TSval, and the peer's to TSecr "
                                  "(zero stays zero), hiding the host's uptime and clock while "
                                  "echoes still match; `remove` overwrites the option with NOPs.",
                                  choices=("keep", "renumber", "remove"))
    keep_ip_options: tuple[int, ...] = setting(
        (0, 1, 7, 68, 131, 137, 148), "IPv4 option kinds kept (EOL, NOP, record route, timestamp, "
        "source routes, router alert: the addresses in them are mapped by `ip`); every other "
        "option is overwritten with NOPs.", minimum=0, maximum=255)
    keep_ipv6_options: tuple[int, ...] = setting(
        (0, 1, 5, 194, 201), "IPv6 hop-by-hop and destination option types kept (Pad1, PadN, "
        "router alert, jumbo payload, home address); any other option becomes padding of the "
        "same length.", minimum=0, maximum=255)


def _fill(out: bytearray, start: int, stop: int, pattern: bytes) -> None:
    """Overwrite [start, stop) with `pattern` (as long as the span), as far as `out` reaches."""
    stop = min(stop, len(out))
    if start < stop:
        out[start:stop] = pattern[:stop - start]


def _ipv6_padding(size: int) -> bytes:
    """IPv6 option padding of `size` bytes: Pad1 for one byte, else PadN options of zeros."""
    padding = b""
    while size:
        chunk = min(size, 257)
        padding += b"\0" if chunk == 1 else bytes([PADN, chunk - 2]) + bytes(chunk - 2)
        size -= chunk
    return padding


def _walk(source: bytes, pos: int, end: int, *, ipv6: bool = False) -> Iterator[tuple[int, int, int]]:
    """(kind, start, length) of each option in [pos, end): IPv4 and TCP options (EOL spans the rest
    of the area), or IPv6 ones (`ipv6`: Pad1 is one byte, a length byte counts only the data). A
    malformed option comes as kind -1 over the rest of the area. Stops where the capture ends."""
    have = min(end, len(source))
    single, extra = (PAD1, 2) if ipv6 else (NOP, 0)
    while pos < have:
        kind = source[pos]
        if kind == EOL and not ipv6:
            yield EOL, pos, end - pos
            return
        if kind == single:
            yield kind, pos, 1
            pos += 1
            continue
        if pos + 1 >= end:
            yield -1, pos, end - pos
            return
        if pos + 1 >= have:
            return
        length = source[pos + 1] + extra
        if length < 2 or pos + length > end:
            yield -1, pos, end - pos
            return
        yield kind, pos, length
        pos += length


class Generalize(Transform):
    """Coarsen or re-key the IP, TCP and UDP header fields that identify a host, its operating
    system or its traffic beyond its address: TTL and hop limit (distance and OS), IP ids (a
    per-host counter), DSCP, IPv6 flow labels, client ports, TCP windows, initial sequence
    numbers, TCP timestamps (uptime) and uncommon TCP, IPv4 and IPv6 options (stack fingerprints
    and hidden data). Every new value is a pure function of the original values and the key, so
    a flow, both of its directions and the ICMP errors quoting it get the same values everywhere
    and relative TCP numbers stay exact. Quoted headers inside ICMP errors are treated like the
    headers they copy. Lengths never change; checksums are fixed afterwards."""

    name = "generalize"
    Config = GeneralizeConfig

    def __init__(self, config: GeneralizeConfig, context: Context) -> None:
        super().__init__(config, context)
        key = context.key
        self.ip_ids = Permuted(subkey(key, "generalize/ip-id", 16), 2)
        self._fragment_id = Permuted(subkey(key, "generalize/ipv6-fragment-id", 16), 4)
        self.ports = Permuted(subkey(key, "generalize/ports", 16), 2, self._port_classes())
        self.flow_labels = Prf(subkey(key, "generalize/flow-label"), 20)
        self.sequences = Prf(subkey(key, "generalize/tcp-sequence"), 32)
        self.clocks = Prf(subkey(key, "generalize/tcp-timestamps"), 32)
        self.kept_ports = frozenset(config.keep_ports)
        self.ttl_table = bytes(self._new_ttl(value) for value in range(256))
        self._handlers: dict[str, Handler] = {"ipv4": self._ipv4, "ipv6": self._ipv6,
                                              "tcp": self._tcp, "udp": self._udp}
        self._counts: Counter[str] = Counter()

    def _new_ttl(self, value: int) -> int:
        mode = self.config.ttl
        if mode == "constant":
            return int(self.config.ttl_constant)
        return next(b for b in TTL_BUCKETS if b >= value) if mode == "bucket" else value

    def _port_classes(self) -> npt.NDArray[np.int64]:
        """`_range` of every port, as an array indexed by port."""
        ports = np.arange(1 << 16, dtype=np.int64)
        classes = np.searchsorted(np.array([last for _, last in PORT_RANGES]), ports).astype(np.int64)
        classes[(ports < self.config.well_known) | np.isin(ports, list(self.config.keep_ports))] = -1
        return classes

    def _range(self, port: int) -> int:
        """The index of the range `port` maps within, or -1 for a kept port."""
        if port < self.config.well_known or port in self.kept_ports:
            return -1
        return next(i for i, (_, last) in enumerate(PORT_RANGES) if port <= last)

    @property
    def columnar(self) -> bool:
        return True

    def apply(self, batch: Batch) -> Batch:
        if batch.table is not None:
            from anontrace.transforms.generalize_table import generalize_table  # it imports this module

            batch.counts.update(generalize_table(self, batch.table))
        handlers = self._handlers
        for _, frame, layers, out in batch.others():
            network: Header | None = None
            for header in layers.headers:
                if header.offset >= len(out):
                    break
                if header.kind in ("ipv4", "ipv6"):
                    network = header
                handler = handlers.get(header.kind)
                if handler is not None and network is not None:
                    handler(frame.data, out, header.offset, network)
        for table in (self.ip_ids, self._fragment_id, self.ports):
            table.flush()
        batch.counts.update(self._counts)
        self._counts.clear()
        return batch

    def _ipv4(self, source: bytes, out: bytearray, o: int, network: Header) -> None:
        config, end = self.config, len(out)
        self._counts["IP headers generalized"] += 1
        if config.tos != "keep" and o + 2 <= end:
            out[o + 1] = source[o + 1] & 0x03 if config.tos == "ecn" else 0
        if config.ip_id == "zero" and o + 6 <= end:
            out[o + 4:o + 6] = bytes(2)
        elif config.ip_id == "permute" and o + 6 <= end:
            self.ip_ids.write(out, o + 4, int.from_bytes(source[o + 4:o + 6], "big"))
        if o + 9 <= end:
            out[o + 8] = self.ttl_table[source[o + 8]]
        keep = config.keep_ip_options
        for kind, start, length in _walk(source, o + 20, o + (source[o] & 0x0F) * 4):
            if kind == EOL and EOL in keep:
                _fill(out, start + 1, start + length, bytes(length))  # padding after EOL is zero
            elif kind != NOP and kind not in keep:
                _fill(out, start, start + length, bytes([NOP]) * length)
                self._counts["options replaced with padding"] += 1

    def _ipv6(self, source: bytes, out: bytearray, o: int, network: Header) -> None:
        config = self.config
        self._counts["IP headers generalized"] += 1
        word = int.from_bytes(source[o:o + 4], "big")
        traffic_class, label = (word >> 20) & 0xFF, word & 0xFFFFF
        if config.tos != "keep":
            traffic_class &= 0x03 if config.tos == "ecn" else 0
        if config.flow_label == "zero":
            label = 0
        elif config.flow_label == "keyed" and label:
            label = self.flow_labels(source[o + 8:o + 24] + label.to_bytes(3, "big")) or 1
        if o + 4 <= len(out):
            out[o:o + 4] = (word & 0xF0000000 | traffic_class << 20 | label).to_bytes(4, "big")
        if o + 8 <= len(out):
            out[o + 7] = self.ttl_table[source[o + 7]]
        self._extension_headers(source, out, source[o + 6], o + 40)

    def _extension_headers(self, source: bytes, out: bytearray, next_header: int, pos: int) -> None:
        for _ in range(MAX_EXTENSION_HEADERS):
            if pos + 8 > len(source):
                return
            if next_header in (HOP_BY_HOP, DESTINATION, ROUTING):
                size = (source[pos + 1] + 1) * 8
                if next_header != ROUTING:
                    self._ipv6_options(source, out, pos + 2, pos + size)
            elif next_header == AUTHENTICATION:
                size = (source[pos + 1] + 2) * 4
            elif next_header == FRAGMENT:
                size = 8
                if self.config.ip_id == "zero" and pos + 8 <= len(out):
                    out[pos + 4:pos + 8] = bytes(4)
                elif self.config.ip_id == "permute" and pos + 8 <= len(out):
                    self._fragment_id.write(out, pos + 4, int.from_bytes(source[pos + 4:pos + 8], "big"))
                if int.from_bytes(source[pos + 2:pos + 4], "big") & 0xFFF8:
                    return  # a later fragment: no headers follow
            else:
                return
            next_header = source[pos]
            pos += size

    def _ipv6_options(self, source: bytes, out: bytearray, pos: int, end: int) -> None:
        keep = self.config.keep_ipv6_options
        for kind, start, length in _walk(source, pos, end, ipv6=True):
            if kind == PADN:
                _fill(out, start + 2, start + length, bytes(length))  # padding carries nothing
            elif kind != PAD1 and (kind < 0 or kind not in keep):
                _fill(out, start, start + length, _ipv6_padding(length))
                self._counts["options replaced with padding"] += 1

    def _udp(self, source: bytes, out: bytearray, o: int, network: Header) -> None:
        self._counts["TCP/UDP headers generalized"] += 1
        self._map_ports(source, out, o)

    def _map_ports(self, source: bytes, out: bytearray, o: int) -> None:
        mode = self.config.ports
        if mode == "keep":
            return
        for field in (o, o + 2):
            if field + 2 > len(out):
                return
            port = int.from_bytes(source[field:field + 2], "big")
            index = self._range(port)
            if index < 0:
                continue
            if mode == "bucket":
                first = max(PORT_RANGES[index][0], self.config.well_known)
                out[field:field + 2] = first.to_bytes(2, "big")
            else:
                self.ports.write(out, field, port)

    def _tcp(self, source: bytes, out: bytearray, o: int, network: Header) -> None:
        config, end = self.config, len(out)
        self._counts["TCP/UDP headers generalized"] += 1
        self._map_ports(source, out, o)
        size = 4 if network.kind == "ipv4" else 16
        first = network.offset + (12 if size == 4 else 8)
        sender, receiver = source[first:first + size], source[first + size:first + 2 * size]
        forward = backward = 0
        if config.tcp_sequence == "offset" and o + 4 <= len(source):
            ports = source[o:o + 4]
            forward = self.sequences(sender + ports[:2] + receiver + ports[2:])
            backward = self.sequences(receiver + ports[2:] + sender + ports[:2])
            _add(out, source, o + 4, forward)
            if o + 14 <= len(source) and source[o + 13] & ACK_FLAG:
                _add(out, source, o + 8, backward)
        if config.tcp_window == "bucket" and o + 16 <= end:
            window = int.from_bytes(source[o + 14:o + 16], "big")
            out[o + 14:o + 16] = (1 << window.bit_length() >> 1).to_bytes(2, "big")
        if o + 13 <= len(source):
            self._tcp_options(source, out, o + 20, o + (source[o + 12] >> 4) * 4,
                              (sender, receiver), backward)

    def _tcp_options(self, source: bytes, out: bytearray, pos: int, end: int,
                     hosts: tuple[bytes, bytes], backward: int) -> None:
        keep, stamps = self.config.keep_tcp_options, self.config.tcp_timestamps
        for kind, start, length in _walk(source, pos, end):
            if kind == EOL and EOL in keep:
                _fill(out, start + 1, start + length, bytes(length))  # padding after EOL is zero
            elif kind == TIMESTAMPS and length == 10 and stamps != "remove":
                if stamps == "renumber":
                    for field, host in ((start + 2, hosts[0]), (start + 6, hosts[1])):
                        if any(source[field:field + 4]):
                            _add(out, source, field, self.clocks(host))
            elif kind == SACK and kind in keep:
                for edge in range(start + 2, start + length - 3, 4):
                    _add(out, source, edge, backward)
            elif kind != NOP and (kind not in keep or kind == TIMESTAMPS):
                _fill(out, start, start + length, bytes([NOP]) * length)
                self._counts["options replaced with padding"] += 1


def _add(out: bytearray, source: bytes, field: int, offset: int) -> None:
    """Add `offset` (mod 2**32) to the 32-bit number at `field`, if it is wholly in `out`."""
    if offset and field + 4 <= len(out):
        value = (int.from_bytes(source[field:field + 4], "big") + offset) & 0xFFFFFFFF
        out[field:field + 4] = value.to_bytes(4, "big")
