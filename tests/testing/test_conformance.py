"""Every registered transform passes the shared conformance suite; the suite can fail."""

from __future__ import annotations

import pytest

from anontrace.packet.batch import Batch
from anontrace.testing.conformance import (
    ConformanceError,
    check_all,
    check_behaviour,
    check_config,
    edge_frames,
    make_batch,
)
from anontrace.transforms import registry
from anontrace.transforms.base import Transform


@pytest.mark.parametrize("name", list(registry()))
def test_every_registered_transform_conforms(name: str) -> None:
    check_all(registry()[name])


def test_edge_frames_dissect_and_hold_good_checksums() -> None:
    batch = make_batch(edge_frames())
    assert batch.layers[0].cut is None and batch.layers[0].headers[-1].kind == "tcp"
    assert batch.layers[3].headers[-1].quoted  # the ICMP error quotes a packet


class Random(Transform):
    """Changes output with a counter: not deterministic."""

    name = "random_test"
    calls = 0

    def apply(self, batch: Batch) -> Batch:
        Random.calls += 1
        for out in batch.data:
            if out:
                out[-1] ^= Random.calls & 0xFF or 1
        return batch


class Grows(Transform):
    """Appends a byte to every frame."""

    name = "grows_test"

    def apply(self, batch: Batch) -> Batch:
        for out in batch.data:
            out.append(0)
        return batch


class Undocumented(Transform):
    name = "undocumented_test"

    def apply(self, batch: Batch) -> Batch:
        return batch


@pytest.mark.parametrize(("transform", "what"), [(Random, "differ"), (Grows, "grew")])
def test_the_suite_catches_broken_transforms(transform: type[Transform], what: str) -> None:
    with pytest.raises(ConformanceError, match=what):
        check_behaviour(transform)


def test_the_suite_wants_a_docstring() -> None:
    with pytest.raises(ConformanceError, match="docstring"):
        check_config(Undocumented)
