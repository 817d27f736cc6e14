"""The keyed Feistel permutation: a bijection, invertible, and keyed."""

from __future__ import annotations

import pytest

from anontrace.crypto.permutation import Permutation


def test_small_width_is_a_bijection_and_inverts() -> None:
    p = Permutation(bytes(16), 10)
    values = list(range(1 << 10))
    out = p.forward(values)
    assert sorted(out) == values
    assert out != values
    assert p.backward(out) == values


def test_wide_values_round_trip_and_depend_on_the_key() -> None:
    values = [0, 1, (1 << 46) - 1, 0x123456789AB]
    a, b = Permutation(bytes(16), 46), Permutation(bytes(15) + b"\x01", 46)
    assert a.backward(a.forward(values)) == values
    assert a.forward(values) != b.forward(values)
    assert all(0 <= v < 1 << 46 for v in a.forward(values))


@pytest.mark.parametrize("bits", [0, 7, 66])
def test_unsupported_widths_are_refused(bits: int) -> None:
    with pytest.raises(ValueError):
        Permutation(bytes(16), bits)
