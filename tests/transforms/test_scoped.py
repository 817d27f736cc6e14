"""Scoped steps: per frame the first matching step applies; drops and cuts map back."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.rules.compile import parse_rules
from anontrace.rules.filters import Filter
from anontrace.transforms.base import Context, Transform
from anontrace.transforms.scoped import Scoped
from tests.helpers import make_batch


def frame(port: int) -> bytes:
    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=port)
                 / Raw(b"0123456789"))


def test_first_matching_step_applies_and_the_rest_is_cut() -> None:
    rules = parse_rules("version: 1\nsteps:\n  - use: payload\n    keep: 6\n    when: {port: 9999}\n"
                        "  - use: payload\n    keep: 3\n    when: {port: [9998, 9999]}\n", "r.yaml")
    payload = rules.build(Key(bytes(32)))[-1]
    batch = payload.apply(make_batch([frame(9999), frame(9998), frame(9997)]))
    assert [len(d) - 42 for d in batch.data] == [6, 3, 0]
    assert batch.counts["payloads cut"] == 3


class DropAll(Transform):
    name = "drop_all"

    def apply(self, batch: Batch) -> Batch:
        for position in range(len(batch)):
            batch.drop(position, "dropped by test")
            batch.ts_ns[position] += 1
        return batch


def test_drops_and_times_of_a_sub_batch_land_on_the_right_frames() -> None:
    context = Context(Key(bytes(32)))
    scoped = Scoped([(Filter(ports=(9998,)), DropAll(None, context))])
    batch = make_batch([frame(9999), frame(9998), frame(9997)])
    times = list(batch.ts_ns)
    scoped.apply(batch)
    assert batch.dropped == {1: "dropped by test"}
    assert batch.ts_ns == [times[0], times[1] + 1, times[2]]
