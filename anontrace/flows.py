"""Flows: the 5-tuple of a frame's outermost IP datagram, and per-flow totals in both directions.

A flow is bidirectional: frames from A to B and from B to A are one flow, oriented by the frame
that was seen first (its source is the flow's initiator). The key is read from a frame's bytes
at the offsets dissection found; on an output frame the same offsets hold the rewritten values,
because rewriting never moves a field.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from anontrace.packet.batch import Batch
from anontrace.packet.layers import Layers

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PORTED = frozenset({"tcp", "udp"})


class FiveTuple(NamedTuple):
    """Protocol number, source address and port, destination address and port (ports are 0
    for protocols without them). Addresses are packed bytes: 4 for IPv4, 16 for IPv6. A named
    tuple, because every frame hashes and compares a few of them."""

    protocol: int
    source: bytes
    source_port: int
    destination: bytes
    destination_port: int

    def reversed(self) -> FiveTuple:
        return FiveTuple(self.protocol, self.destination, self.destination_port, self.source,
                         self.source_port)

    def canonical(self) -> FiveTuple:
        """The same key for both directions."""
        if (self.source, self.source_port) <= (self.destination, self.destination_port):
            return self
        return self.reversed()

    def text(self) -> tuple[str, str, str, str, str]:
        return (str(self.protocol), str(ipaddress.ip_address(self.source)), str(self.source_port),
                str(ipaddress.ip_address(self.destination)), str(self.destination_port))


def five_tuple(data: bytes | bytearray, layers: Layers) -> FiveTuple | None:
    """The 5-tuple of the outermost IPv4/IPv6 datagram of a frame (not of an ICMP error's quoted
    packet), or None when the frame has no IP header with both addresses present."""
    headers = layers.headers
    for position, header in enumerate(headers):
        if header.kind not in ("ipv4", "ipv6") or header.quoted:
            continue
        size, at = (4, 12) if header.kind == "ipv4" else (16, 8)
        start = header.offset + at
        if start + 2 * size > len(data):
            return None
        source = bytes(data[start:start + size])
        destination = bytes(data[start + size:start + 2 * size])
        following = next((h for h in headers[position + 1:] if not h.quoted), None)
        if following is not None and following.kind in PROTOCOL_NUMBERS:
            protocol = PROTOCOL_NUMBERS[following.kind]
            ports = (0, 0)
            if following.kind in PORTED and following.offset + 4 <= len(data):
                ports = struct.unpack_from("!HH", data, following.offset)
        else:
            protocol = data[header.offset + (9 if header.kind == "ipv4" else 6)]
            ports = (0, 0)
        return FiveTuple(protocol, source, ports[0], destination, ports[1])
    return None


def original_keys(batch: Batch) -> list[FiveTuple | None]:
    """The 5-tuple of each ORIGINAL frame of a batch, computed once and shared by every observer."""
    keys: list[FiveTuple | None] | None = batch.memo.get("original_keys")
    if keys is None:
        keys = batch.memo["original_keys"] = [
            five_tuple(frame.data, layers) if layers.headers else None
            for frame, layers in zip(batch.frames, batch.layers, strict=True)]
    return keys


def output_keys(batch: Batch) -> list[FiveTuple | None]:
    """The 5-tuple of each OUTPUT frame of a batch (None for dropped frames), computed once."""
    keys: list[FiveTuple | None] | None = batch.memo.get("output_keys")
    if keys is None:
        dropped = batch.dropped
        keys = batch.memo["output_keys"] = [
            None if position in dropped or not layers.headers else five_tuple(out, layers)
            for position, (out, layers) in enumerate(zip(batch.data, batch.layers, strict=True))]
    return keys


@dataclass(slots=True)
class Flow:
    """Totals of one flow; `forward` counts frames from the initiator, `backward` the replies."""

    key: FiveTuple  # oriented from the initiator
    first_ns: int
    last_ns: int
    forward_packets: int = 0
    forward_bytes: int = 0
    backward_packets: int = 0
    backward_bytes: int = 0
    label: str | None = None

    @property
    def packets(self) -> int:
        return self.forward_packets + self.backward_packets

    @property
    def bytes(self) -> int:
        return self.forward_bytes + self.backward_bytes


@dataclass(slots=True)
class FlowTable:
    """Flows in order of first appearance. Memory grows with the number of flows, not frames."""

    flows: dict[FiveTuple, Flow] = field(default_factory=dict)

    def add(self, key: FiveTuple, ts_ns: int, length: int, label: str | None = None) -> Flow:
        """Count one frame of `length` bytes (its original length on the wire) at `ts_ns`. A flow
        takes the label of its first labelled frame."""
        canonical = key.canonical()
        flow = self.flows.get(canonical)
        if flow is None:
            flow = self.flows[canonical] = Flow(key, ts_ns, ts_ns)
        flow.first_ns = min(flow.first_ns, ts_ns)
        flow.last_ns = max(flow.last_ns, ts_ns)
        if key == flow.key:
            flow.forward_packets += 1
            flow.forward_bytes += length
        else:
            flow.backward_packets += 1
            flow.backward_bytes += length
        if flow.label is None:
            flow.label = label
        return flow

    def __len__(self) -> int:
        return len(self.flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())
