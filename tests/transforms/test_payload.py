"""The payload transform cuts after the last understood header, keeping lengths on the wire."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.keys import Key
from anontrace.transforms.base import Context
from anontrace.transforms.payload import Payload, PayloadConfig
from tests.helpers import make_batch

FRAME = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"0123456789"))


def run(keep: int) -> bytes:
    batch = Payload(PayloadConfig(keep), Context(Key(bytes(32)))).apply(make_batch([FRAME]))
    return bytes(batch.data[0])


def test_cut_to_headers_by_default() -> None:
    assert run(0) == FRAME[:42]


def test_keep_some_payload_and_leave_lengths_alone() -> None:
    out = run(4)
    assert out == FRAME[:46] and out[16:18] == FRAME[16:18] and out[38:40] == FRAME[38:40]


def test_keep_more_than_there_is() -> None:
    assert run(1000) == FRAME
