"""Steps scoped with `when:`: one transform per filter, the first matching filter wins per frame."""

from __future__ import annotations

from collections.abc import Sequence

from anontrace.packet.batch import Batch
from anontrace.rules.filters import Filter
from anontrace.transforms.base import Transform


class Scoped(Transform):
    """Run each frame through the first of `choices` whose filter matches its ORIGINAL bytes (a
    filter of None matches everything); frames no filter matches are left as they are."""

    name = "scoped"

    def __init__(self, choices: Sequence[tuple[Filter | None, Transform]]) -> None:
        first = choices[0][1]
        super().__init__(first.config, first.context)
        self.choices = list(choices)

    def apply(self, batch: Batch) -> Batch:
        chosen: list[list[int]] = [[] for _ in self.choices]
        for position, (frame, layers) in enumerate(zip(batch.frames, batch.layers, strict=True)):
            for index, (condition, _) in enumerate(self.choices):
                if condition is None or condition.matches(frame.data, layers):
                    chosen[index].append(position)
                    break
        for positions, (_, transform) in zip(chosen, self.choices, strict=True):
            if positions:
                _apply_to(transform, batch, positions)
        return batch

    def steps(self) -> list[Transform]:
        """The transforms it chooses between."""
        return [transform for _, transform in self.choices]

    @property
    def carries_state(self) -> bool:
        return any(transform.carries_state for _, transform in self.choices)

    def reset(self) -> None:
        for _, transform in self.choices:
            transform.reset()

    def stats(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, transform in self.choices:
            found.update(transform.stats())
        return found


def _apply_to(transform: Transform, batch: Batch, positions: list[int]) -> None:
    """Apply `transform` to some frames of `batch` through a sub-batch sharing their output bytes."""
    part = Batch([batch.frames[p] for p in positions], [batch.layers[p] for p in positions],
                 [batch.data[p] for p in positions], [batch.ts_ns[p] for p in positions])
    part = transform.apply(part)
    for index, position in enumerate(positions):
        batch.data[position] = part.data[index]
        batch.ts_ns[position] = part.ts_ns[index]
    for index, reason in part.dropped.items():
        batch.drop(positions[index], reason)
    batch.counts.update(part.counts)
    batch.cut.update(part.cut)
