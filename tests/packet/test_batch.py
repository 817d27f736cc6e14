"""Batches: a dropped frame keeps its first reason."""

from __future__ import annotations

from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.packet.layers import Layers


def test_drop_keeps_first_reason() -> None:
    frame = Frame(0, 0, b"ab", 2, 1)
    batch = Batch([frame], [Layers()], [bytearray(b"ab")], [0])
    batch.drop(0, "first")
    batch.drop(0, "second")
    assert batch.dropped == {0: "first"} and len(batch) == 1
