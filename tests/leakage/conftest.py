"""Fixtures shared by the leakage tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from anontrace.leakage.residual import scan
from tests.helpers import write_pcap
from tests.leakage.residual_traces import PLANTS, collector_of, original_packets


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The trace with one leak planted per frame (`PLANTS`), and its residual section."""
    path = write_pcap(tmp_path_factory.mktemp("residual") / "planted.pcap", [p for _, p, _ in PLANTS])
    return path, scan(str(path), collector_of(original_packets()))
