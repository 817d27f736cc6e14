"""Shared test helpers: write captures built with scapy, run the CLI, read outputs with scapy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scapy.packet import Packet
from scapy.utils import PcapNgWriter, PcapWriter, rdpcap

from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame


def write_pcap(path: Path, packets: list[Packet], nano: bool = False, linktype: int | None = None) -> Path:
    with PcapWriter(str(path), nano=nano, linktype=linktype, sync=True) as writer:
        for packet in packets:
            writer.write(packet)
    return path


def write_pcapng(path: Path, packets: list[Packet]) -> Path:
    with PcapNgWriter(str(path)) as writer:
        for packet in packets:
            writer.write(packet)
    return path


def read_packets(path: Path) -> list[Packet]:
    return list(rdpcap(str(path)))


def anontrace(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "anontrace", *args], input=stdin, capture_output=True, timeout=120, check=False
    )


def make_batch(frames: list[bytes], linktype: int = 1) -> Batch:
    """A batch as the pipeline builds it, from raw frame bytes."""
    records = [Frame(i, i * 1000, data, len(data), linktype) for i, data in enumerate(frames)]
    layers = [dissect(f.data, f.linktype) for f in records]
    data = [bytearray(f.data[: found.parsed_to]) for f, found in zip(records, layers, strict=True)]
    return Batch(records, layers, data, [f.ts_ns for f in records])
