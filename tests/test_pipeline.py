"""The pipeline: every frame counted, cut where dissection stopped, checksums fixed last."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.pipeline import RunStats, run
from anontrace.rules.compile import parse_rules, read_rules
from anontrace.transforms.base import Context, Transform
from tests.helpers import write_pcap

PACKETS = [
    Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP() / Raw(b"secret payload"),
    Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / ICMP(type=3) / IP(src="198.51.100.1") / TCP(),
    Ether(type=0x88B5) / Raw(b"local experimental ethertype"),
    Ether() / IP(src="192.0.2.9", dst="198.51.100.1") / UDP(sport=9, dport=9) / Raw(b"x"),
]


class DropUdp(Transform):
    """Test transform: drops UDP frames."""

    name = "drop_udp"

    def apply(self, batch: Batch) -> Batch:
        for position, layers in enumerate(batch.layers):
            if layers.protocol == 17:
                batch.drop(position, "udp not wanted")
        return batch


def scrub_to_bytes(tmp_path: Path, extra: list[Transform]) -> tuple[RunStats, bytes]:
    source = write_pcap(tmp_path / "in.pcap", PACKETS)
    reader = open_reader(str(source))
    out = io.BytesIO()
    transforms = read_rules(None).build(Key(bytes(32))) + extra
    stats = run(reader, PcapWriter(out, "mem"), transforms)
    return stats, out.getvalue()


def test_every_frame_is_counted_with_its_reason(tmp_path: Path) -> None:
    stats, data = scrub_to_bytes(tmp_path, [DropUdp(None, Context(Key(bytes(32))))])
    assert stats.frames_in == 4 and stats.frames_out == 3
    assert stats.dropped == {"udp not wanted": 1}
    assert stats.cut == {"ethertype 0x88b5 not dissected": 1}
    assert stats.counts["payloads cut"] == 2  # TCP and UDP; the UDP frame was dropped later
    assert b"secret payload" not in data and b"experimental" not in data


def test_output_depends_only_on_input_rules_and_key(tmp_path: Path) -> None:
    _, first = scrub_to_bytes(tmp_path, [])
    _, second = scrub_to_bytes(tmp_path, [])
    assert first == second


def test_batch_size_does_not_change_output(tmp_path: Path, monkeypatch: object) -> None:
    import anontrace.pipeline as pipeline

    _, whole = scrub_to_bytes(tmp_path, [])
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 1)  # type: ignore[attr-defined]
    seen: list[int] = []
    original = pipeline.batches
    monkeypatch.setattr(
        pipeline,
        "batches",  # type: ignore[attr-defined]
        lambda frames, size: (seen.append(len(c)) or c for c in original(frames, size)),
    )
    _, single = scrub_to_bytes(tmp_path, [])
    assert seen == [1, 1, 1, 1] and whole == single


def test_stats_merge() -> None:
    a, b = RunStats(frames_in=2, frames_out=1), RunStats(frames_in=3, frames_out=3)
    a.dropped["x"] += 1
    b.dropped["x"] += 2
    a.merge(b)
    assert (a.frames_in, a.frames_out, a.dropped["x"]) == (5, 4, 3)


def test_payload_search_does_not_depend_on_batching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An address first seen in a header of a LATER frame is not yet known when an earlier frame's
    payload is searched, whether both frames share a batch or not."""
    import anontrace.pipeline as pipeline

    packets = [Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=9, dport=9)
               / Raw(b"x" + socket.inet_aton("203.0.113.77") + b"y"),
               Ether() / IP(src="203.0.113.77", dst="198.51.100.1") / UDP(sport=9, dport=9)
               / Raw(b"z" + socket.inet_aton("192.0.2.1") + b"w")]
    source = write_pcap(tmp_path / "in.pcap", packets)
    rules = parse_rules("version: 1\nsteps:\n  - use: payload\n    keep: 100\n", "r.yaml")

    def once() -> bytes:
        out = io.BytesIO()
        run(open_reader(str(source)), PcapWriter(out, "mem"), rules.build(Key(bytes(32))))
        return out.getvalue()

    whole = once()
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 1)
    assert once() == whole
    first, second = (bytes(p) for p in rdpcap(io.BytesIO(whole)))
    assert first.endswith(b"x" + socket.inet_aton("203.0.113.77") + b"y")  # not known yet: kept
    assert second.endswith(b"z")  # 192.0.2.1 was seen in frame 1's header: cut before it
