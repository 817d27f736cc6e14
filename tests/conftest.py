"""Fixtures shared by the engine tests (local workers, Dask): the 20,000-frame benchmark trace
and a key file with ground truth, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scrubkit import Material, make_trace, material


@pytest.fixture(scope="session")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_trace(tmp_path_factory.mktemp("trace") / "t20k.pcap", 20_000)


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return material(tmp_path_factory.mktemp("material"))
