"""Timestamp unit conversions: exact round trips for every resolution a capture can declare."""

from __future__ import annotations

import pytest

from anontrace.packet.frame import Interface, ns_to_units, units_to_ns


@pytest.mark.parametrize(
    "tsresol,units,ns",
    [
        (6, 1_500_000, 1_500_000_000),
        (9, 7, 7),
        (3, 2, 2_000_000),
        (0x80 | 10, 1024, 1_000_000_000),
        (12, 1_000_999, 1_000),
    ],
)
def test_units_to_ns(tsresol: int, units: int, ns: int) -> None:
    assert units_to_ns(units, tsresol) == ns


@pytest.mark.parametrize("tsresol", [0, 3, 6, 9, 0x80 | 1, 0x80 | 10, 0x80 | 20, 0x80 | 29])
def test_round_trip_is_exact(tsresol: int) -> None:
    for units in (0, 1, 3, 999_999, 1_700_000_000_123_457, (1 << 63) + 12345):
        assert ns_to_units(units_to_ns(units, tsresol), tsresol) == units


def test_finer_than_microseconds() -> None:
    assert not Interface(1, tsresol=6).finer_than_microseconds
    assert Interface(1, tsresol=9).finer_than_microseconds
    assert Interface(1, tsresol=0x80 | 20).finer_than_microseconds
    assert not Interface(1, tsresol=0x80 | 10).finer_than_microseconds
