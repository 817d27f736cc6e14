"""A run of frames moving through the transforms together."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from anontrace.packet.frame import Frame
from anontrace.packet.layers import Layers


@dataclass(slots=True)
class Batch:
    """Frames as read, their layers, and the output being built from them.

    `frames` and `layers` describe the ORIGINAL frames and are never changed. Transforms edit
    `data` (one bytearray per frame, same layout as the original, possibly shorter) and `ts_ns`
    in place, drop frames with `drop`, and count what they did in `counts`.
    """

    frames: list[Frame]
    layers: list[Layers]
    data: list[bytearray]
    ts_ns: list[int]
    dropped: dict[int, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)  # frames a transform cut short, by reason
    memo: dict[str, Any] = field(default_factory=dict)  # what observers compute once and share

    def drop(self, position: int, reason: str) -> None:
        """Leave frame `position` out of the output, counted under `reason`."""
        if position not in self.dropped:
            self.dropped[position] = reason

    def cut_at(self, position: int, offset: int, reason: str) -> None:
        """Keep nothing of frame `position` from `offset` on (a transform could not rewrite what
        lies there), counted under `reason`."""
        out = self.data[position]
        if offset < len(out):
            del out[offset:]
            self.cut[reason] += 1

    def __len__(self) -> int:
        return len(self.frames)
