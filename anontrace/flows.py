"""Flow keys: the 5-tuple of a frame's outermost IP datagram, read for a whole batch at once.

A flow is bidirectional: frames from A to B and from B to A are one flow, oriented by the frame
that was seen first (its source is the flow's initiator). The key is read from a frame's bytes
at the offsets dissection found; on an output frame the same offsets hold the rewritten values,
because rewriting never moves a field.

Every observer of the report needs the keys of every frame, on both sides of the pair, so they
are read once per batch and kept as columns (`Keys`, shared through `batch.memo`): one numpy
gather over the batch's bytes instead of a Python object per frame. A key is also a fixed-width
row of bytes (`ROW`), which is what flow tables (`flowtable.py`) and the risk measures index by.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from anontrace.packet.batch import Batch
from anontrace.packet.layers import Header, Layers

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PORTED = frozenset({"tcp", "udp"})
# The kind of the header after the outermost IP header, as `Outer.following` codes it.
TCP_KIND, UDP_KIND, ICMP_KIND, ICMPV6_KIND, OTHER_KIND, NO_KIND = 0, 1, 2, 3, 4, -1
KIND_CODES = {"tcp": TCP_KIND, "udp": UDP_KIND, "icmp": ICMP_KIND, "icmpv6": ICMPV6_KIND}
IP_SIZES = {"ipv4": 4, "ipv6": 16}
NOTHING = (-1, 0, NO_KIND, -1)  # the `Outer` facts of a frame without an IP header
PROTOCOL_OF_KIND = np.array([6, 17, 1, 58, -1, -1], np.int64)  # indexed by code; -1: the IP field
# A key row: protocol, address size (4 or 16), source address (zero-padded to 16 bytes), source
# port (big-endian), destination address, destination port. Rows compare like the tuples.
ROW = 38
SOURCE, SOURCE_PORT, DESTINATION, DESTINATION_PORT = 2, 18, 20, 36
PAD = bytes(48)  # past the last frame, so that fixed-width gathers stay inside the buffer

Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Times = npt.NDArray[np.int64] | npt.NDArray[np.object_]  # int64, or Python integers when one does not fit


class FiveTuple(NamedTuple):
    """Protocol number, source address and port, destination address and port (ports are 0
    for protocols without them). Addresses are packed bytes: 4 for IPv4, 16 for IPv6."""

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

    def row(self) -> bytes:
        """The key as a `ROW`-byte row."""
        pad = 16 - len(self.source)
        return (bytes((self.protocol, len(self.source))) + self.source + bytes(pad)
                + self.source_port.to_bytes(2, "big") + self.destination + bytes(pad)
                + self.destination_port.to_bytes(2, "big"))


def key_of(row: bytes) -> FiveTuple:
    """The 5-tuple a `ROW`-byte row holds."""
    size = row[1]
    return FiveTuple(row[0], row[SOURCE:SOURCE + size], int.from_bytes(row[SOURCE_PORT:DESTINATION], "big"),
                     row[DESTINATION:DESTINATION + size], int.from_bytes(row[DESTINATION_PORT:ROW], "big"))


def reversed_row(row: bytes) -> bytes:
    return row[:SOURCE] + row[DESTINATION:ROW] + row[SOURCE:DESTINATION]


def source_of(row: bytes) -> bytes:
    """The source address a `ROW`-byte row holds."""
    return row[SOURCE:SOURCE + row[1]]


def destination_of(row: bytes) -> bytes:
    """The destination address a `ROW`-byte row holds."""
    return row[DESTINATION:DESTINATION + row[1]]


@dataclass(frozen=True, slots=True)
class Outer:
    """Per frame of a batch, read from its layers alone (so the same for the original and the
    output bytes): the outermost IP header that is not inside an ICMP error, and the first such
    header after it."""

    network: Int64s  # offset of the outermost IP header, -1: none
    size: Int64s  # its address size: 4 (IPv4) or 16 (IPv6), 0: none
    following: Int64s  # the next header's kind, coded as in KIND_CODES (NO_KIND: none)
    transport: Int64s  # the next header's offset, -1: none


def _outermost(headers: tuple[Header, ...]) -> tuple[int, int, int, int]:
    """(network, size, following, transport) of one frame's headers (see `Outer`)."""
    if not headers:
        return NOTHING
    first = headers[0]
    if len(headers) == 2 and first.kind in IP_SIZES and not first.quoted and not headers[1].quoted:
        after = headers[1]  # the usual frame: one IP header, one after it
        return first.offset, IP_SIZES[first.kind], KIND_CODES.get(after.kind, OTHER_KIND), after.offset
    for position, header in enumerate(headers):
        if header.quoted or header.kind not in IP_SIZES:
            continue
        size = IP_SIZES[header.kind]
        for after in headers[position + 1:]:
            if not after.quoted:
                return header.offset, size, KIND_CODES.get(after.kind, OTHER_KIND), after.offset
        return header.offset, size, NO_KIND, -1
    return NOTHING


def outer_headers(batch: Batch) -> Outer:
    """The `Outer` facts of a batch, computed once and shared by every observer."""
    found: Outer | None = batch.memo.get("outer")
    if found is None:
        facts = [_outermost(layers.headers) for layers in batch.layers]
        columns = np.array(facts, np.int64).reshape(-1, 4)
        found = batch.memo["outer"] = Outer(*(np.ascontiguousarray(columns[:, i]) for i in range(4)))
    return found


@dataclass(slots=True)
class Frames:
    """The bytes of one side of a batch (`data`, one item per frame) as one buffer too, with where
    each frame starts in it and its length."""

    data: Sequence[bytes | bytearray]
    buffer: npt.NDArray[np.uint8]
    starts: Int64s
    lengths: Int64s

    @classmethod
    def of(cls, data: Sequence[bytes | bytearray]) -> Frames:
        lengths = np.fromiter(map(len, data), np.int64, len(data))
        starts = np.zeros(len(data), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(data, np.frombuffer(b"".join(chain(data, (PAD,))), np.uint8), starts, lengths)

    def take(self, positions: Int64s, offsets: Int64s, width: int) -> npt.NDArray[np.uint8]:
        """`width` bytes at `offsets` in the frames at `positions`, one row each."""
        at = self.starts[positions] + offsets
        taken: npt.NDArray[np.uint8] = self.buffer[at[:, None] + np.arange(width)]
        return taken


@dataclass(slots=True)
class Keys:
    """The 5-tuples of one side of a batch (its ORIGINAL frames, or its written output frames)
    as columns: `positions` are the frames that have one, `rows` their keys (`ROW` bytes)."""

    positions: Int64s
    rows: npt.NDArray[np.uint8]
    frames: Frames
    _directed: list[bytes] | None = field(default=None, repr=False)
    _canonical: list[bytes] | None = field(default=None, repr=False)
    _canonical_rows: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    _forward: Bools | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.positions)

    def directed(self) -> list[bytes]:
        """Each key's row, as bytes."""
        if self._directed is None:
            self._directed = split_rows(self.rows)
        return self._directed

    def row(self, index: int) -> bytes:
        """One key's row, as bytes."""
        return self.rows[index].tobytes() if self._directed is None else self._directed[index]

    def forward(self) -> Bools:
        """Whether each key is its own canonical form (the flow's two directions share that)."""
        if self._forward is None:
            self._canonicalize()
        assert self._forward is not None
        return self._forward

    def canonical(self) -> list[bytes]:
        """Each key's canonical row: the same for both directions of a flow."""
        if self._canonical is None:
            self._canonical = split_rows(self.canonical_rows())
        return self._canonical

    def canonical_rows(self) -> npt.NDArray[np.uint8]:
        """The canonical rows, as an array."""
        if self._canonical_rows is None:
            self._canonicalize()
        assert self._canonical_rows is not None
        return self._canonical_rows

    def _canonicalize(self) -> None:
        rows = self.rows
        here, there = rows[:, SOURCE:DESTINATION], rows[:, DESTINATION:ROW]
        differ = here != there
        first = differ.argmax(axis=1)
        every = np.arange(len(rows))
        self._forward = ~differ.any(axis=1) | (here[every, first] < there[every, first])
        canonical = rows.copy()
        backward = ~self._forward
        canonical[backward, SOURCE:DESTINATION] = there[backward]
        canonical[backward, DESTINATION:ROW] = here[backward]
        self._canonical_rows = canonical

    def tuples(self) -> list[FiveTuple | None]:
        """The 5-tuple of every frame of the batch side, None for frames without one."""
        keys: list[FiveTuple | None] = [None] * (len(self.frames.lengths))
        made: dict[bytes, FiveTuple] = {}
        for position, row in zip(self.positions.tolist(), self.directed(), strict=True):
            key = made.get(row)
            if key is None:
                key = made[row] = key_of(row)
            keys[position] = key
        return keys


def distinct(rows: npt.NDArray[np.uint8]) -> tuple[list[bytes], Int64s]:
    """The distinct rows of a 2-d byte array, as bytes in order of first appearance, and for each
    row the index of its own among them."""
    if not len(rows):
        return [], np.zeros(0, np.int64)
    width = rows.shape[1]
    kind = np.dtype("<u4") if width == 4 else np.dtype("<u8") if width == 8 else np.dtype((np.void, width))
    values: npt.NDArray[Any] = np.ascontiguousarray(rows).view(kind).ravel()  # ints sort faster than blobs
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return split_rows(rows[first[order]]), rank[inverse.ravel()]


def split_rows(rows: npt.NDArray[np.uint8]) -> list[bytes]:
    """Each row of a 2-d byte array as bytes."""
    width = rows.shape[1]
    flat = rows.tobytes()
    return [flat[at:at + width] for at in range(0, len(flat), width)]


def read_keys(frames: Frames, outer: Outer, written: Bools | None = None) -> Keys:
    """The keys of `frames`, whose layers `outer` describes (frames not `written` have none). A
    frame has a key when its outermost IP header holds both addresses; ports are read when the
    TCP or UDP header after it holds them, the protocol from the next header's kind (or the IP
    header's field when the next header is no TCP, UDP, ICMP or ICMPv6)."""
    lengths, network, size = frames.lengths, outer.network, outer.size
    address = network + np.where(size == 4, 12, 8)
    present = (network >= 0) & (address + 2 * size <= lengths)
    if written is not None:
        present &= written
    positions = np.flatnonzero(present)
    sizes = size[positions]
    narrow = np.arange(16) >= sizes[:, None]  # the padding of IPv4 addresses
    source = frames.take(positions, address[positions], 16)
    destination = frames.take(positions, address[positions] + sizes, 16)
    source[narrow] = 0
    destination[narrow] = 0
    kinds = outer.following[positions]
    protocol = PROTOCOL_OF_KIND[kinds]
    field_at = np.flatnonzero(protocol < 0)
    protocol[field_at] = frames.take(positions[field_at], network[positions[field_at]]
                                     + np.where(sizes[field_at] == 4, 9, 6), 1)[:, 0]
    transport = outer.transport[positions]
    ported = ((kinds == TCP_KIND) | (kinds == UDP_KIND)) & (transport + 4 <= lengths[positions])
    ports = frames.take(positions, np.where(ported, transport, 0), 4)
    ports[~ported] = 0
    rows = np.empty((len(positions), ROW), np.uint8)
    rows[:, 0] = protocol
    rows[:, 1] = sizes
    rows[:, SOURCE:SOURCE_PORT] = source
    rows[:, SOURCE_PORT:DESTINATION] = ports[:, :2]
    rows[:, DESTINATION:DESTINATION_PORT] = destination
    rows[:, DESTINATION_PORT:ROW] = ports[:, 2:]
    return Keys(positions, rows, frames)


def original_frames(batch: Batch) -> Frames:
    """The ORIGINAL bytes of a batch as `Frames`, computed once and shared by every observer."""
    frames: Frames | None = batch.memo.get("original_frames")
    if frames is None:
        frames = batch.memo["original_frames"] = Frames.of([frame.data for frame in batch.frames])
    return frames


def written(batch: Batch) -> Bools:
    """Which frames of a batch are written (not dropped)."""
    found = np.ones(len(batch), np.bool_)
    found[list(batch.dropped)] = False
    return found


def original_side(batch: Batch) -> Keys:
    """The keys of the ORIGINAL frames of a batch, computed once and shared by every observer."""
    keys: Keys | None = batch.memo.get("original_side")
    if keys is None:
        keys = batch.memo["original_side"] = read_keys(original_frames(batch), outer_headers(batch))
    return keys


def output_side(batch: Batch) -> Keys:
    """The keys of the written OUTPUT frames of a batch (dropped frames have none), computed once."""
    keys: Keys | None = batch.memo.get("output_side")
    if keys is None:
        frames = Frames.of(batch.data)
        keys = batch.memo["output_side"] = read_keys(frames, outer_headers(batch), written(batch))
    return keys


def counterparts(batch: Batch) -> Int64s:
    """For each key of `output_side(batch)`, the index in `original_side(batch)` of its frame's
    original key, -1 for none; computed once."""
    found: Int64s | None = batch.memo.get("counterparts")
    if found is None:
        slots = np.full(len(batch), -1, np.int64)
        slots[original_side(batch).positions] = np.arange(len(original_side(batch)))
        found = batch.memo["counterparts"] = slots[output_side(batch).positions]
    return found


def five_tuple(data: bytes | bytearray, layers: Layers) -> FiveTuple | None:
    """The 5-tuple of the outermost IPv4/IPv6 datagram of a frame (not of an ICMP error's quoted
    packet), or None when the frame has no IP header with both addresses present."""
    outer = Outer(*(np.array([value], np.int64) for value in _outermost(layers.headers)))
    return read_keys(Frames.of([data]), outer).tuples()[0]


def original_keys(batch: Batch) -> list[FiveTuple | None]:
    """The 5-tuple of each ORIGINAL frame of a batch, computed once and shared by every observer."""
    keys: list[FiveTuple | None] | None = batch.memo.get("original_keys")
    if keys is None:
        keys = batch.memo["original_keys"] = original_side(batch).tuples()
    return keys


def output_keys(batch: Batch) -> list[FiveTuple | None]:
    """The 5-tuple of each OUTPUT frame of a batch (None for dropped frames), computed once."""
    keys: list[FiveTuple | None] | None = batch.memo.get("output_keys")
    if keys is None:
        keys = batch.memo["output_keys"] = output_side(batch).tuples()
    return keys


def times(values: Sequence[int]) -> Times:
    """Nanosecond times as an int64 column, or as Python integers when one does not fit (a
    crafted capture's times can lie anywhere): every use stays exact either way."""
    if values and (min(values) < -(1 << 63) or max(values) >= 1 << 63):
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.int64)


def batch_times(batch: Batch) -> tuple[Times, Times]:
    """The ORIGINAL and the OUTPUT times of a batch's frames, as columns, computed once."""
    found: tuple[Times, Times] | None = batch.memo.get("times")
    if found is None:
        found = batch.memo["times"] = (times([f.ts_ns for f in batch.frames]), times(batch.ts_ns))
    return found


def wire_lengths(batch: Batch) -> Int64s:
    """Each frame's length on the wire, computed once."""
    found: Int64s | None = batch.memo.get("wirelen")
    if found is None:
        found = batch.memo["wirelen"] = np.fromiter((f.wirelen for f in batch.frames), np.int64, len(batch))
    return found
