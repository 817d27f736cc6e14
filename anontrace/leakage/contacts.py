"""Sweeps: sources that contacted many addresses, whose order of contact reveals the mapping.

A scanner that steps through a range one address at a time tells an adversary which output
address stands for which original one: every address it swept is exposed. The report counts
sweeps and the addresses they expose; in pair mode a sweep whose targets were not in order in
the ORIGINAL exposes nothing, but which sweeps were in order stays unsaid (the report travels
with the trace).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterable
from itertools import pairwise
from typing import Any

SEQUENTIAL_FRACTION = 0.8

Contact = tuple[bytes, bytes, bytes | None, bytes | None]  # source, target, flow, original target


class Contacts:
    """Who contacted whom first, kept as the contacts that can decide it, in frame order.

    The first frame of a flow other than TCP is a contact only if no earlier frame belongs to
    the flow, which a piece of a capture cannot know of the pieces before it; such a contact
    names its flow, and a merge drops those of flows the earlier pieces saw. Once a source has
    contacted a target otherwise (by a SYN), nothing later between them matters, so memory
    grows with pairs of hosts and with flows, not with frames."""

    def __init__(self) -> None:
        self.events: list[Contact] = []
        self.settled: set[tuple[bytes, bytes]] = set()

    def add(self, source: bytes, target: bytes, flow: bytes | None, original: bytes | None) -> None:
        if (source, target) not in self.settled:
            self.events.append((source, target, flow, original))
            if flow is None:
                self.settled.add((source, target))

    def merge(self, later: Contacts, flows: Container[bytes]) -> None:
        """Take in `later`'s contacts, made after these, but those of `flows` (seen here)."""
        for event in later.events:
            if event[2] is None or event[2] not in flows:
                self.add(*event)

    def by_source(self) -> dict[bytes, dict[bytes, bytes | None]]:
        """Source -> target -> the target's original address (pair mode), in order of first contact."""
        found: dict[bytes, dict[bytes, bytes | None]] = {}
        for source, target, _, original in self.events:
            targets = found.setdefault(source, {})
            if target not in targets:
                targets[target] = original
        return found

    def sweeps(self, min_targets: int, pair: bool, listed: int) -> dict[str, Any]:
        """The report's `risk.scans`: sources with at least `min_targets` targets (the first
        `listed` of them named by their output address)."""
        details: list[dict[str, Any]] = []
        exposed = 0
        for source, targets in self.by_source().items():
            if len(targets) < min_targets:
                continue
            sequential = _sequential(targets.values()) if pair else None
            if sequential is not False:
                exposed += len(targets)
            details.append({"source": str(ipaddress.ip_address(source)), "targets": len(targets),
                            "sequential_in_original": None})  # the original order stays unsaid
        return {"min_targets": min_targets, "sweeps": len(details), "addresses_exposed": exposed,
                "details": details[:listed]}


def _sequential(originals: Iterable[bytes | None]) -> bool:
    """Whether targets, in order of first contact, mostly step up by one address."""
    values = [int.from_bytes(a, "big") for a in originals if a is not None]
    steps = sum(1 for a, b in pairwise(values) if b == a + 1)
    return len(values) > 1 and steps >= SEQUENTIAL_FRACTION * (len(values) - 1)
