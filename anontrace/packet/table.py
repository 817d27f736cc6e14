"""A batch's common frames as rows of two byte matrices, for transforms that work on columns.

The common frames of a batch (see `fast`) whose transport header is captured whole are held
here until something needs their output as bytes. Each row holds a frame's headers (everything
before its payload, at most `WIDTH` bytes) twice: `original`, as read, and `out`, being
rewritten; with the row's output `length` and the offsets of its IP and transport headers.
Transforms that know the table rewrite `out` with numpy, a field being a gather or a scatter at
per-row offsets. No transform changes a table row's payload, so payload bytes are never copied
into the matrices: a row's output is `out[:header]` followed by the frame's own bytes up to
`length`. `materialize` turns the rows into the batch's bytearrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anontrace.packet import transport
from anontrace.packet.fast import Common
from anontrace.packet.frame import Frame

WIDTH = 128  # Ethernet with a VLAN tag (18) + IPv6 (40) + TCP with 40 bytes of options (60) = 118
TCP, UDP, ICMP, ICMPV6 = transport.TCP, transport.UDP, transport.ICMP, transport.ICMPV6
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Bytes = npt.NDArray[np.uint8]
COLUMNS = np.arange(WIDTH, dtype=np.int64)


@dataclass(slots=True)
class Table:
    """The rows; every array has one entry per row, in batch order."""

    positions: Ints  # the rows' positions in the batch
    original: Bytes  # (rows, WIDTH): the headers as read, zero after `header`
    out: Bytes  # (rows, WIDTH): the headers being rewritten
    header: Ints  # where the payload starts: the bytes of the row held in the matrices
    length: Ints  # the output's length (at least `header`)
    network: Ints  # offset of the IP header
    is4: Bools
    protocol: Ints

    @classmethod
    def of(cls, common: Common) -> Table:
        """The rows of `common` whose transport header is captured whole (the others, cut inside
        their headers, stay frame by frame)."""
        transport_at = common.network + np.where(common.is4, 20, 40)
        held = common.end - transport_at
        last = len(common.buffer) - 1
        offset = np.minimum(common.starts + transport_at + 12, last)
        tcp_header = (common.buffer[offset].astype(np.int64) >> 4) * 4
        whole = np.where(common.protocol == TCP, (held >= 20) & (tcp_header >= 20) & (tcp_header <= held),
                         held >= 8)
        whole &= common.payload <= WIDTH
        keep = np.flatnonzero(whole)
        header = common.payload[keep]
        at = np.minimum(common.starts[keep, None] + COLUMNS, last)
        original = np.where(header[:, None] > COLUMNS, common.buffer[at], 0).astype(np.uint8)
        return cls(common.positions[keep], original, original.copy(), header, common.end[keep],
                   common.network[keep], common.is4[keep], common.protocol[keep])

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def transport(self) -> Ints:
        return self.network + np.where(self.is4, 20, 40)

    def read(self, rows: Ints, offset: Ints, size: int) -> Bytes:
        """(len(rows), size) bytes of `rows` from per-row `offset`, of the original headers."""
        found: Bytes = self.original[rows[:, None], offset[:, None] + COLUMNS[:size]]
        return found

    def write(self, rows: Ints, offset: Ints, values: Bytes) -> None:
        """Write (len(rows), size) bytes into the output headers of `rows` at per-row `offset`."""
        self.out[rows[:, None], offset[:, None] + COLUMNS[:values.shape[1]]] = values

    def number(self, rows: Ints, offset: Ints, size: int) -> Ints:
        """The big-endian numbers of `size` bytes (at most 7) at `offset` of the original headers."""
        found = self.read(rows, offset, size).astype(np.int64)
        value = np.zeros(len(rows), np.int64)
        for column in range(size):
            value = (value << 8) | found[:, column]
        return value

    def put_number(self, rows: Ints, offset: Ints, size: int, value: Ints) -> None:
        """Write `value` as big-endian numbers of `size` bytes at `offset` of the output headers."""
        self.write(rows, offset, big_endian(value, size))

    def values(self, rows: Ints, offset: Ints, size: int, count: int) -> Values:
        """The `count` adjacent `size`-byte fields of `rows` at `offset` (as an IP header's
        two addresses are), as distinct byte strings to map and the way back to the fields."""
        return Values(self, rows, offset, size, count)

    def fix_checksums(self, skip: Bools) -> None:
        """Fold the changes between the original and output headers into the checksums that
        cover them, as `checksum.fix_checksums` does frame by frame (rows in `skip` are left).
        A row's payload is the same in both, so its share of a sum cancels out; every span
        starts at an even offset, so the words line up."""
        rows = np.flatnonzero(~skip)
        if not len(rows):
            return
        network, is4, protocol = self.network[rows], self.is4[rows], self.protocol[rows]
        at = network + np.where(is4, 20, 40)
        stop = np.minimum(self.header[rows], self.length[rows])
        field = at + np.select([protocol == TCP, protocol == UDP], [16, 6], 2)
        pseudo = ~(is4 & (protocol == ICMP))
        first = network + np.where(is4, 12, 8)
        spans = [(at, stop), (np.where(pseudo, first, 0), np.where(pseudo, first + np.where(is4, 8, 32), 0))]
        self._fix(rows, field, spans, protocol == UDP)
        v4 = rows[is4]
        self._fix(v4, self.network[v4] + 10, [(self.network[v4], self.network[v4] + 20)],
                  np.zeros(len(v4), np.bool_))

    def _fix(self, rows: Ints, field: Ints, spans: list[tuple[Ints, Ints]], zero_is_none: Bools) -> None:
        if not len(rows):
            return
        width = max(int(stop.max()) for _, stop in spans)
        width += width & 1
        every = len(rows) == len(self)
        before = (self.original if every else self.original[rows])[:, :width]
        after = (self.out if every else self.out[rows])[:, :width]
        words = COLUMNS[:width:2]
        inside = np.zeros((len(rows), len(words)), np.bool_)
        for start, stop in spans:  # every span starts and stops at an even offset
            inside |= (start[:, None] <= words) & (stop[:, None] > words)
        old_words = np.ascontiguousarray(before).view(">u2")
        new_words = np.ascontiguousarray(after).view(">u2")
        changed = ((old_words != new_words) & inside).any(axis=1)
        old = np.where(inside, old_words, 0).sum(axis=1, dtype=np.int64) % 0xFFFF
        new = np.where(inside, new_words, 0).sum(axis=1, dtype=np.int64) % 0xFFFF
        current = self.number(rows, field, 2)  # the transforms never write a checksum field
        changed &= ~(zero_is_none & (current == 0))
        total = (~current & 0xFFFF) + (~old & 0xFFFF) + new
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        value = ~total & 0xFFFF
        value = np.where(zero_is_none & (value == 0), 0xFFFF, value)
        chosen = np.flatnonzero(changed)
        self.put_number(rows[chosen], field[chosen], 2, value[chosen])

    def materialize(self, frames: list[Frame], data: list[bytearray]) -> None:
        """Give every row its bytearray in `data`."""
        heads = self.out.tobytes()
        at = 0
        for position, header, length in zip(self.positions.tolist(), self.header.tolist(),
                                            self.length.tolist(), strict=True):
            if length <= header:
                data[position] = bytearray(heads[at:at + length])
            else:
                out = bytearray(frames[position].data[:length])
                out[:header] = heads[at:at + header]
                data[position] = out
            at += WIDTH


def big_endian(values: Ints, size: int) -> Bytes:
    """Each value as `size` big-endian bytes, one row per value."""
    shifts = np.arange(size - 1, -1, -1, dtype=np.int64) * 8
    found: Bytes = ((values[:, None] >> shifts) & 0xFF).astype(np.uint8)
    return found


class Values:
    """Fields read by `Table.values`: `distinct` lists their different values as bytes;
    `put(mapping)` writes each field's mapped value into the table's output headers."""

    def __init__(self, table: Table, rows: Ints, offset: Ints, size: int, count: int) -> None:
        self._table, self._rows, self._offset, self._size = table, rows, offset, size
        fields = np.ascontiguousarray(table.read(rows, offset, size * count)).reshape(-1, size)
        unique, inverse = np.unique(fields.view(f"V{size}").ravel(), return_inverse=True)
        self._inverse = inverse.ravel()
        self.distinct: list[bytes] = [value.tobytes() for value in unique]

    def put(self, mapping: Mapping[bytes, bytes]) -> None:
        if not self.distinct:
            return
        mapped = np.frombuffer(b"".join(mapping[value] for value in self.distinct), np.uint8)
        fields = mapped.reshape(-1, self._size)[self._inverse]
        self._table.write(self._rows, self._offset, fields.reshape(len(self._rows), -1))
