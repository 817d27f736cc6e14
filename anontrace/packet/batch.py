"""A run of frames moving through the transforms together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anontrace.packet.frame import Frame
from anontrace.packet.layers import Layers

if TYPE_CHECKING:
    from anontrace.packet.table import Table

HELD = bytearray()  # the output of a frame still held as a row of the batch's table


@dataclass(slots=True)
class Batch:
    """Frames as read, their layers, and the output being built from them.

    `frames` and `layers` describe the ORIGINAL frames and are never changed. Transforms edit
    `data` (one bytearray per frame, same layout as the original, possibly shorter) and `ts_ns`
    in place, drop frames with `drop`, and count what they did in `counts`.

    While `table` is set, the common frames' output is held in it as rows of byte matrices
    (see `packet.table`), for transforms that rewrite columns; such a transform edits the table
    and goes frame by frame through `others()`. Reading `data` turns the rows into bytearrays
    and ends the table.
    """

    frames: list[Frame]
    layers: list[Layers]
    _data: list[bytearray]
    ts_ns: list[int]
    dropped: dict[int, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)  # frames a transform cut short, by reason
    memo: dict[str, Any] = field(default_factory=dict)  # what observers compute once and share
    table: Table | None = None
    rest: list[int] = field(default_factory=list)  # while `table` is set, the positions not in it

    @property
    def data(self) -> list[bytearray]:
        """Every frame's output."""
        if self.table is not None:
            self.table.materialize(self.frames, self._data)
            self.table = None
        return self._data

    def others(self) -> Iterator[tuple[int, Frame, Layers, bytearray]]:
        """Position, frame, layers and output of each frame not held in the table, in order."""
        if self.table is None:
            yield from zip(range(len(self.frames)), self.frames, self.layers, self._data, strict=True)
            return
        frames, layers, data = self.frames, self.layers, self._data
        for position in self.rest:
            yield position, frames[position], layers[position], data[position]

    def drop(self, position: int, reason: str) -> None:
        """Leave frame `position` out of the output, counted under `reason`."""
        if position not in self.dropped:
            self.dropped[position] = reason

    def cut_at(self, position: int, offset: int, reason: str) -> None:
        """Keep nothing of frame `position` from `offset` on (a transform could not rewrite what
        lies there), counted under `reason`."""
        out = self._data[position]
        if out is HELD:
            out = self.data[position]
        if offset < len(out):
            del out[offset:]
            self.cut[reason] += 1

    def __len__(self) -> int:
        return len(self.frames)
