"""Planning a scrub job: which output each input becomes, and what is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from anontrace.errors import OutputError, UsageError
from anontrace.scrub import Task, plan


@pytest.fixture
def captures(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.pcap", "b.pcapng.gz", "notes.txt"):
        (folder / name).write_bytes(b"x")
    return folder


def test_one_file_to_one_file(captures: Path, tmp_path: Path) -> None:
    assert plan([str(captures / "a.pcap")], str(tmp_path / "o.pcap")) == [
        Task(str(captures / "a.pcap"), str(tmp_path / "o.pcap"))
    ]


def test_directory_expands_to_its_captures(captures: Path, tmp_path: Path) -> None:
    tasks = plan([str(captures)], str(tmp_path / "out"))
    assert [Path(t.target).name for t in tasks] == ["a.pcap", "b.pcapng.gz"]
    assert all(Path(t.target).parent == tmp_path / "out" for t in tasks)


def test_one_file_into_an_existing_directory(captures: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert plan([str(captures / "a.pcap")], str(tmp_path / "out"))[0].target == str(
        tmp_path / "out" / "a.pcap"
    )


@pytest.mark.parametrize(
    "inputs,output,message",
    [
        (["-", "a.pcap"], "o", "stdin can only be the single input"),
        (["a.pcap", "b.pcapng.gz"], "-", "several inputs need an output directory, not stdout"),
        (["a.pcap", "b.pcapng.gz"], "a.pcap", "this is a file"),
    ],
)
def test_refused_plans(
    captures: Path, monkeypatch: pytest.MonkeyPatch, inputs: list[str], output: str, message: str
) -> None:
    monkeypatch.chdir(captures)
    with pytest.raises(UsageError, match=message):
        plan(inputs, output)


def test_same_names_from_two_places_are_refused(captures: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.pcap").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"two inputs are named 'a\.pcap'"):
        plan([str(captures / "a.pcap"), str(other / "a.pcap")], str(tmp_path / "out"))


def test_missing_output_directory(captures: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        plan([str(captures / "a.pcap")], str(tmp_path / "no" / "o.pcap"))
