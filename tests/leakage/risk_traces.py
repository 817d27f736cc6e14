"""Frames and batches shared by the tests of the re-identification measures (risk, clocks,
contacts, timing): built with scapy, so every answer is known by construction."""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.keys import Key
from anontrace.leakage.schema import SCHEMA
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.pipeline import Observer, RunStats, prepare, run
from anontrace.rules.compile import read_rules
from tests.helpers import write_pcap

SECOND = 1_000_000_000
KEY = bytes(range(32))
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no MAC lookups while building


def conforms(result: dict[str, Any], definition: str = "risk") -> None:
    """The section is JSON without NaN or infinities, in the shape the report schema gives it."""
    jsonschema.validate(json.loads(json.dumps(result, allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def batch_of(packets: Sequence[Packet], times_ns: list[int] | None = None) -> Batch:
    """The batch the pipeline would build from `packets`; its output starts equal to the input."""
    times = times_ns if times_ns is not None else [i * 1000 for i in range(len(packets))]
    frames = [Frame(i, t, bytes(p), len(p), 1) for i, (p, t) in enumerate(zip(packets, times, strict=True))]
    return prepare(frames, RunStats())


def through_profile(tmp_path: Path, packets: Sequence[Packet], profile: str, observer: Observer) -> None:
    """Run `packets` through the real pipeline under a shipped profile, seen by `observer`."""
    source = write_pcap(tmp_path / f"{profile}.pcap", list(packets), nano=True)
    reader = open_reader(str(source))
    run(reader, PcapWriter(io.BytesIO(), "mem"), read_rules(profile).build(Key(KEY)), observers=[observer])
    reader.stream.close()


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed
