"""Who contacted whom first, across pieces, and which sources swept enough targets to be sweeps."""

from __future__ import annotations

import ipaddress

from anontrace.leakage.contacts import Contacts
from tests.leakage.risk_traces import conforms


def address(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


S, T, U = address("10.9.0.1"), address("10.0.0.1"), address("10.0.0.2")
FLOW = b"flow"


def test_first_contacts_keep_their_order_and_their_first_original() -> None:
    contacts = Contacts()
    contacts.add(S, U, None, address("192.0.2.2"))
    contacts.add(S, T, FLOW, address("192.0.2.1"))
    contacts.add(S, U, None, address("192.0.2.9"))  # settled by the first: not kept at all
    contacts.add(T, S, None, None)
    assert contacts.by_source() == {S: {U: address("192.0.2.2"), T: address("192.0.2.1")}, T: {S: None}}
    assert len(contacts.events) == 3


def test_a_merge_drops_the_contacts_of_flows_seen_before() -> None:
    earlier, later = Contacts(), Contacts()
    later.add(S, T, FLOW, None)  # the first frame of its piece, not of its flow
    later.add(S, U, b"other flow", None)
    earlier.merge(later, {FLOW})
    assert earlier.by_source() == {S: {U: None}}


def sweep(contacts: Contacts, source: bytes, originals: list[str]) -> None:
    """`source` contacts one target per original address, by a SYN, in that order."""
    for number, original in enumerate(originals):
        contacts.add(source, address(f"10.{source[3]}.{number >> 8}.{number & 255}"), None, address(original))


def test_sweeps_count_the_addresses_that_sequential_ones_expose() -> None:
    contacts = Contacts()
    stepped = [f"192.0.2.{i}" for i in range(1, 41)]  # in order in the original: exposed
    shuffled = [f"198.51.100.{(i * 37) % 200}" for i in range(40)]  # steps of 37: not exposed
    sweep(contacts, address("10.9.0.1"), stepped)
    sweep(contacts, address("10.9.0.2"), shuffled)
    sweep(contacts, address("10.9.0.3"), stepped[:3])  # too few targets: no sweep
    found = contacts.sweeps(4, True, 50)
    conforms(found, "scans")
    assert (found["min_targets"], found["sweeps"], found["addresses_exposed"]) == (4, 2, 40)
    assert found["details"] == [{"source": "10.9.0.1", "targets": 40, "sequential_in_original": None},
                                {"source": "10.9.0.2", "targets": 40, "sequential_in_original": None}]
    alone = contacts.sweeps(4, False, 1)  # without the original every sweep exposes its targets
    assert (alone["sweeps"], alone["addresses_exposed"]) == (2, 80)
    assert [d["source"] for d in alone["details"]] == ["10.9.0.1"]


def test_a_sweep_that_is_mostly_in_order_exposes_its_targets() -> None:
    # 11 targets, 10 steps: 8 steps of one address (80%) are enough, 7 are not. An address out of
    # place breaks the steps into and out of it; the last one only the step into it.
    for replaced, exposed in (([2], 11), ([2, 10], 0)):
        originals = [f"192.0.2.{i}" for i in range(1, 12)]
        for position in replaced:
            originals[position] = "203.0.113.99"
        contacts = Contacts()
        sweep(contacts, address("10.9.0.1"), originals)
        assert contacts.sweeps(11, True, 50)["addresses_exposed"] == exposed, replaced
