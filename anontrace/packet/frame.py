"""The records that flow through the pipeline: capture interfaces and frames."""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_SECOND = 1_000_000_000
_POWERS: tuple[int, ...] = tuple(10**n for n in range(128))


@dataclass(frozen=True, slots=True)
class Interface:
    """A capture interface: link type, snap length and time resolution (pcapng `if_tsresol` byte)."""

    linktype: int
    snaplen: int = 262144
    tsresol: int = 6

    @property
    def finer_than_microseconds(self) -> bool:
        """Whether timestamps carry digits below the microsecond."""
        if self.tsresol & 0x80:
            return (self.tsresol & 0x7F) > 19
        return self.tsresol > 6


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame as read: time in integer nanoseconds, captured bytes, original length."""

    index: int
    ts_ns: int
    data: bytes
    wirelen: int
    linktype: int
    iface: int = 0
    comment: str | None = None


def units_to_ns(units: int, tsresol: int) -> int:
    """Convert a timestamp in interface units to nanoseconds (floor for resolutions finer than ns)."""
    if tsresol & 0x80:
        return (units * NS_PER_SECOND) >> (tsresol & 0x7F)
    exponent = tsresol
    if exponent <= 9:
        return units * _POWERS[9 - exponent]
    return units // _POWERS[exponent - 9]


def ns_to_units(ts_ns: int, tsresol: int) -> int:
    """Convert nanoseconds back to interface units; exact for any value `units_to_ns` produced."""
    if tsresol & 0x80:
        return -((-ts_ns << (tsresol & 0x7F)) // NS_PER_SECOND)
    exponent = tsresol
    if exponent <= 9:
        return ts_ns // _POWERS[9 - exponent]
    return ts_ns * _POWERS[exponent - 9]
