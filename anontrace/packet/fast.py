"""Dissection of a whole batch at once for the common frames, with numpy columns.

Most frames of a capture are Ethernet (with at most one VLAN tag) carrying IPv4 without options
or IPv6 without extension headers, then TCP, UDP or an ICMP message that quotes nothing, with
no application the dissector reads (DNS, DHCP, tunnels, ...). For a batch, the fields that
decide this are gathered as numpy columns from one buffer of all the frames; the frames that
qualify get their `Layers` from those columns, the others go through `dissect.dissect`. The
result is the same `Layers`, field for field, as `dissect` gives (the differential tests compare
them over the corpus, the benchmark trace and every truncation of crafted frames), so nothing
downstream can tell which path a frame took.

The offsets of a frame's layers follow from a few numbers (the link header's length, the
transport header's, where the datagram ends), so the `Checksum` and `Header` records are shared
between frames through small caches rather than built frame by frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from anontrace.packet import dissect as dissect_module
from anontrace.packet import link, network, transport
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame
from anontrace.packet.layers import Checksum, Header, Layers

ETHERNET = 1
IPV4, IPV6 = network.IPV4, network.IPV6
TCP, UDP, ICMP, ICMPV6 = transport.TCP, transport.UDP, transport.ICMP, transport.ICMPV6
PADDING = "link-layer padding or trailer after the datagram"
# ICMP types whose body holds more than an opaque message (redirect gateway, quoted packets,
# router lists), and ICMPv6 types with address fields or options: these take the full path.
ICMP_SPECIAL = np.array(sorted({5, 9, *transport.ICMP_ERRORS}), np.int64)
ICMPV6_SPECIAL = np.array(sorted({*transport.ICMPV6_ERRORS, *transport.MLD, transport.MLD2_REPORT,
                                  *transport.NEIGHBOUR_DISCOVERY}), np.int64)
Ints = npt.NDArray[np.int64]


def _tables_are_core() -> bool:
    """The columns below encode what the core parsers do; if a module replaced one, say no."""
    return (dissect_module.LINKS.get(ETHERNET) is link.ethernet
            and network.NETWORKS.get(IPV4) is network.ipv4 and network.NETWORKS.get(IPV6) is network.ipv6
            and transport.TRANSPORTS.get(TCP) is transport.tcp
            and transport.TRANSPORTS.get(UDP) is transport.udp
            and transport.TRANSPORTS.get(ICMP) is transport.icmp
            and transport.TRANSPORTS_V6.get(TCP) is transport.tcp
            and transport.TRANSPORTS_V6.get(UDP) is transport.udp
            and transport.TRANSPORTS_V6.get(ICMPV6) is transport.icmpv6)


class _Columns:
    """Bytes at per-frame offsets of a batch, read from one buffer (0 past a frame's end)."""

    def __init__(self, datas: Sequence[bytes]) -> None:
        self.lengths = np.fromiter(map(len, datas), np.int64, len(datas))
        self.starts = np.zeros(len(datas), np.int64)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        joined = b"".join(datas)
        self.buffer = np.frombuffer(joined + b"\0\0", np.uint8)  # two spare bytes: no read past the end
        self._last = len(joined)

    def u8(self, offset: Ints) -> Ints:
        inside = offset < self.lengths
        found = self.buffer[np.minimum(self.starts + offset, self._last)].astype(np.int64)
        return np.where(inside, found, 0)

    def u16(self, offset: Ints) -> Ints:
        return (self.u8(offset) << 8) | self.u8(offset + 1)


@dataclass(frozen=True, slots=True)
class Common:
    """The frames of a batch the columns describe (`positions`, ascending), with the columns
    that place their headers, and the joined buffer they were gathered from."""

    positions: Ints
    starts: Ints  # where each frame begins in `buffer`
    lengths: Ints  # captured length
    network: Ints  # offset of the IP header
    is4: npt.NDArray[np.bool_]
    protocol: Ints
    payload: Ints  # first byte after the transport header
    end: Ints  # where the datagram ends, as far as captured
    buffer: npt.NDArray[np.uint8]


def dissect_batch(frames: Sequence[Frame]) -> list[Layers]:
    """The layers of every frame, as `dissect` finds them."""
    return dissect_common(frames)[0]


def dissect_common(frames: Sequence[Frame]) -> tuple[list[Layers], Common | None]:
    """The layers of every frame, and the columns of the frames described by them (None when
    the dissector's tables are not the core ones)."""
    layers, common = common_layers(frames)
    return [found if found is not None else dissect(frame.data, frame.linktype)
            for frame, found in zip(frames, layers, strict=True)], common


def common_layers(frames: Sequence[Frame]) -> tuple[list[Layers | None], Common | None]:
    """The layers of the frames the columns can describe (None for the others), and their columns."""
    layers: list[Layers | None] = [None] * len(frames)
    if not frames or not _tables_are_core():
        return layers, None
    return layers, _common(frames, layers)


def _common(frames: Sequence[Frame], layers: list[Layers | None]) -> Common:
    columns = _Columns([frame.data for frame in frames])
    lengths = columns.lengths
    size = len(frames)
    ok = np.fromiter((frame.linktype == ETHERNET for frame in frames), np.bool_, size) & (lengths >= 14)
    kind = columns.u16(np.full(size, 12, np.int64))
    tagged = np.isin(kind, (0x8100, 0x88A8, 0x9100))
    ok &= ~tagged | (lengths >= 18)
    network_at = np.where(tagged, 18, 14)
    kind = np.where(tagged, columns.u16(np.full(size, 16, np.int64)), kind)
    is4, is6 = kind == IPV4, kind == IPV6
    ok &= is4 | is6
    first = columns.u8(network_at)
    total = columns.u16(network_at + 2)  # IPv4: total length
    fragment = columns.u16(network_at + 6) & 0x1FFF
    ok &= ~is4 | ((first == 0x45) & (total >= 20) & (fragment == 0) & (lengths - network_at >= 20))
    payload_length = columns.u16(network_at + 4)  # IPv6
    ok &= ~is6 | (((first >> 4) == 6) & (lengths - network_at >= 40))
    protocol = np.where(is4, columns.u8(network_at + 9), columns.u8(network_at + 6))
    ok &= np.where(is4, np.isin(protocol, (TCP, UDP, ICMP)), np.isin(protocol, (TCP, UDP, ICMPV6)))
    transport_at = np.where(is4, network_at + 20, network_at + 40)
    end = np.minimum(np.where(is4, network_at + total, network_at + 40 + payload_length), lengths)
    held = end - transport_at  # bytes of the transport header and its data, as captured
    payload = _payload(columns, protocol, transport_at, end, held, ok)
    ok &= payload >= 0
    chosen = np.flatnonzero(ok)
    found = map(_layers, network_at[chosen].tolist(), is4[chosen].tolist(), protocol[chosen].tolist(),
                payload[chosen].tolist(), end[chosen].tolist(), lengths[chosen].tolist())
    for position, one in zip(chosen.tolist(), found, strict=True):
        layers[position] = one
    return Common(chosen, columns.starts[chosen], lengths[chosen], network_at[chosen], is4[chosen],
                  protocol[chosen], payload[chosen], end[chosen], columns.buffer)


def _payload(columns: _Columns, protocol: Ints, at: Ints, end: Ints, held: Ints,
             ok: npt.NDArray[np.bool_]) -> Ints:
    """Where each frame's payload starts, as the transport parsers find it; -1 where the frame
    needs the full path (an application to dissect, an ICMP message with fields, a bad header)."""
    payload = np.full(len(at), -1, np.int64)
    tcp = ok & (protocol == TCP)
    header = (columns.u8(at + 12) >> 4) * 4
    whole = held >= 20
    tcp_payload = np.where(whole, np.minimum(at + header, end), end)
    tcp &= ~whole | (header >= 20)
    tcp &= (tcp_payload >= end) | ~_announced(columns, at, transport.TCP_PORTS)
    payload[tcp] = tcp_payload[tcp]
    udp = ok & (protocol == UDP)
    udp_payload = np.minimum(at + 8, end)
    udp &= (held < 8) | (udp_payload >= end) | ~_announced(columns, at, transport.UDP_PORTS)
    payload[udp] = udp_payload[udp]
    kind = columns.u8(at)
    icmp = ok & (protocol == ICMP)
    icmp &= (held < 8) | ~np.isin(kind, ICMP_SPECIAL)
    payload[icmp] = np.where(held < 8, end, at + 8)[icmp]
    icmpv6 = ok & (protocol == ICMPV6)
    icmpv6 &= (held < 4) | ~np.isin(kind, ICMPV6_SPECIAL)
    payload[icmpv6] = np.where(held < 4, end, np.minimum(at + 8, end))[icmpv6]
    return payload


def _announced(columns: _Columns, at: Ints, table: Mapping[int, object]) -> npt.NDArray[np.bool_]:
    """Whether either port of each TCP/UDP header names an application the dissector reads."""
    ports = np.array(sorted(table), np.int64)
    return np.isin(columns.u16(at), ports) | np.isin(columns.u16(at + 2), ports)


@lru_cache(maxsize=1 << 16)  # frames of one shape and size share one (immutable) Layers
def _layers(network_at: int, is4: bool, protocol: int, payload: int, end: int, length: int) -> Layers:
    transport_at = network_at + (20 if is4 else 40)
    return Layers(network_at, IPV4 if is4 else IPV6, transport_at, protocol, payload, end,
                  (network_at + 12, network_at + 16) if is4 else (),
                  () if is4 else (network_at + 8, network_at + 24),
                  _checksums(network_at, is4, protocol, end), None if end == length else PADDING,
                  (0, 6), (), (), _headers(network_at, is4, protocol))


@lru_cache(maxsize=4096)
def _checksums(network_at: int, is4: bool, protocol: int, end: int) -> tuple[Checksum, ...]:
    at = network_at + (20 if is4 else 40)
    pseudo, size = ((network_at + 12, network_at + 16), 4) if is4 else ((network_at + 8, network_at + 24), 16)
    if protocol == TCP:
        carried = Checksum(at + 16, at, end, pseudo, size)
    elif protocol == UDP:
        carried = Checksum(at + 6, at, end, pseudo, size, zero_is_none=True)
    elif protocol == ICMP:
        carried = Checksum(at + 2, at, end)
    else:
        carried = Checksum(at + 2, at, end, pseudo, size)
    return (Checksum(network_at + 10, network_at, network_at + 20), carried) if is4 else (carried,)


@lru_cache(maxsize=64)
def _headers(network_at: int, is4: bool, protocol: int) -> tuple[Header, ...]:
    name = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "icmpv6"}[protocol]
    return (Header("ipv4" if is4 else "ipv6", network_at), Header(name, network_at + (20 if is4 else 40)))
