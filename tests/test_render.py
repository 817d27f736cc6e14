"""The run summary as JSON for scripts, and on one screen for people."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from anontrace.pipeline import RunStats
from anontrace.render import summary_json, summary_table
from anontrace.scrub import ScrubResult, Task


def result() -> ScrubResult:
    stats = RunStats(
        frames_in=10,
        frames_out=9,
        bytes_in=1000,
        bytes_out=400,
        seconds=0.5,
        dropped=Counter({"bad": 1}),
        cut=Counter({"ethertype 0x88cc not dissected": 2}),
        counts=Counter({"payloads cut": 4}),
        notices=Counter({"custom blocks left out": 1}),
    )
    scrubbed = ScrubResult(
        "00ff",
        False,
        "<default>",
        [(Task("in.pcap", "out.pcap"), stats)],
        stats,
        {"distinct addresses mapped": 3},
    )
    return scrubbed


def test_json_summary_has_every_count() -> None:
    data = summary_json(result())
    assert json.loads(json.dumps(data)) == data
    assert data["frames_in"] == 10 and data["frames_out"] == 9 and data["frames_dropped"] == {"bad": 1}
    assert data["frames_cut"] == {"ethertype 0x88cc not dissected": 2}
    assert data["transforms"] == {"payloads cut": 4, "distinct addresses mapped": 3}
    assert data["input_notices"] == {"custom blocks left out": 1}
    assert data["files"] == [{"input": "in.pcap", "output": "out.pcap", "frames_in": 10, "frames_out": 9}]


def test_table_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    summary_table(result())
    captured = capsys.readouterr()
    assert captured.out == ""
    for text in ("10 / 9", "dropped: bad", "ethertype 0x88cc", "payloads cut", "00ff", "20 frames/s"):
        assert text in captured.err
