"""Opening captures by magic, choosing output formats by name, and atomic outputs."""

from __future__ import annotations

import gc
import gzip
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from capbuild import (
    NS,
    convert,
    epb,
    idb,
    pcap_header,
    pcap_record,
    read_all,
    same_frames,
    scapy_pcap,
    scapy_pcapng,
    shb,
    tsresol,
)

from anontrace.errors import OutputError, TraceFormatError
from anontrace.io.capture import atomic_output, make_writer, open_reader, output_format
from anontrace.io.pcap import PcapReader, PcapWriter
from anontrace.io.pcapng import PcapngReader, PcapngWriter

GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


def _pcap() -> bytes:
    records = [pcap_record("<", 1_700_000_000 + n, 1000 * n, bytes([n]) * (20 + n), wirelen=100)
               for n in range(12)]
    return pcap_header("<", nano=True, snaplen=65535, network=1) + b"".join(records)


def _pcapng() -> bytes:
    return (shb("<") + idb("<", 1, 0) + idb("<", 113, 0, tsresol(9))
            + b"".join(epb("<", n % 2, 1_700_000_000_000_000 + n, bytes([n]) * (30 + n)) for n in range(12)))


# --- opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "reader_type"), [(_pcap, PcapReader), (_pcapng, PcapngReader)])
@pytest.mark.parametrize("name", ["capture.pcap", "capture.pcapng", "capture"])
def test_format_is_found_by_magic_not_by_name(tmp_path: Path, make: Callable[[], bytes], reader_type: type,
                                              name: str) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    reader = open_reader(str(path))
    try:
        assert type(reader) is reader_type
    finally:
        reader.stream.close()


@pytest.mark.parametrize("content", [b"", gzip.compress(b""), zstandard.ZstdCompressor().compress(b"")],
                         ids=["plain", "gzip", "zstd"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(content)
    with pytest.raises(TraceFormatError) as caught:
        open_reader(str(path))
    assert (caught.value.where, caught.value.what) == (str(path), "file is empty")


@pytest.mark.parametrize(
    "content",
    [b"GIF89a\x01\x00\x01\x00", b"\xd4\xc3", b"\xd4\xc3\xb2", b"\x0a\x0d\x0d", b"\x00" * 64,
     b"\xa1\xb2\xc3\xd5" + bytes(20), b"PK\x03\x04" + bytes(30)],
    ids=["gif", "2-bytes", "3-bytes-of-pcap-magic", "3-bytes-of-pcapng-magic", "zeros", "near-magic", "zip"],
)
def test_wrong_magic(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pcap"
    path.write_bytes(content)
    with pytest.raises(TraceFormatError) as caught:
        open_reader(str(path))
    assert caught.value.where == f"{path}: byte 0"
    assert content[:4].hex() in caught.value.what


@pytest.mark.parametrize(
    "content",
    [pcap_header("<", network=65000), pcap_header("<")[:10], shb("<")[:6], shb("<") + idb("<", 65000)],
    ids=["pcap-unknown-link-type", "pcap-short-header", "pcapng-short-header", "pcapng-unknown-link-type"],
)
def test_refused_file_is_closed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "refused"
    path.write_bytes(content)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        try:
            read_all(path)
        except TraceFormatError:
            pass
        else:
            pytest.fail("the file was accepted")
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []


# --- output names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "input_format", "expected"),
    [
        ("out.pcap", "pcapng", ("pcap", "")),
        ("out.cap", "pcapng", ("pcap", "")),
        ("out.dmp", "pcapng", ("pcap", "")),
        ("out.pcapng", "pcap", ("pcapng", "")),
        ("out.ntar", "pcap", ("pcapng", "")),
        ("OUT.PCAPNG", "pcap", ("pcapng", "")),
        ("out.pcap.gz", "pcapng", ("pcap", ".gz")),
        ("out.pcapng.zst", "pcap", ("pcapng", ".zst")),
        ("Out.PcapNG.GZ", "pcap", ("pcapng", ".gz")),
        ("out.gz", "pcapng", ("pcapng", ".gz")),
        ("out.zst", "pcap", ("pcap", ".zst")),
        ("out", "pcapng", ("pcapng", "")),
        ("out.txt", "pcap", ("pcap", "")),
        ("out.pcap.bak", "pcapng", ("pcapng", "")),
        ("dir.pcap/out", "pcapng", ("pcapng", "")),
        ("some/dir/trace.v2.pcapng.gz", "pcap", ("pcapng", ".gz")),
        ("-", "pcapng", ("pcapng", "")),
    ],
)
def test_output_format(path: str, input_format: str, expected: tuple[str, str]) -> None:
    assert output_format(path, input_format) == expected


@pytest.mark.parametrize(("make", "capture_format", "writer_type"), [
    (_pcap, "pcap", PcapWriter), (_pcap, "pcapng", PcapngWriter),
    (_pcapng, "pcap", PcapWriter), (_pcapng, "pcapng", PcapngWriter)])
def test_make_writer_follows_the_format(tmp_path: Path, make: Callable[[], bytes], capture_format: str,
                                       writer_type: type) -> None:
    path = tmp_path / "in"
    path.write_bytes(make())
    reader = open_reader(str(path))
    try:
        with (tmp_path / "out").open("wb") as out:
            assert type(make_writer(out, "out", capture_format, reader)) is writer_type
    finally:
        reader.stream.close()


# --- atomic outputs --------------------------------------------------------------------------


def test_success_leaves_only_the_final_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    with atomic_output(str(target)) as out:
        out.write(b"complete")
        assert not target.exists()  # nothing under the final name before the end
    assert target.read_bytes() == b"complete"
    assert os.listdir(tmp_path) == ["out.pcap"]


class Boom(Exception):
    pass


@pytest.mark.parametrize("name", ["out.pcap", "out.pcapng.gz", "out.pcap.zst"])
def test_failure_leaves_nothing(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    with pytest.raises(Boom), atomic_output(str(target)) as out:
        out.write(b"partial" * 1000)
        raise Boom
    assert os.listdir(tmp_path) == []


def test_failure_keeps_an_existing_file_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    target.write_bytes(b"previous run")
    with pytest.raises(Boom), atomic_output(str(target)) as out:
        out.write(b"partial")
        raise Boom
    assert target.read_bytes() == b"previous run"
    assert os.listdir(tmp_path) == ["out.pcap"]


def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    with pytest.raises(KeyboardInterrupt), atomic_output(str(target)) as out:
        out.write(b"partial")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_success_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    target.write_bytes(b"previous run")
    with atomic_output(str(target)) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.pcap"]


def test_directory_in_the_way_is_an_output_error(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    target.mkdir()
    with pytest.raises(OutputError) as caught, atomic_output(str(target)) as out:
        out.write(b"data")
    assert caught.value.where == str(target)
    assert os.listdir(tmp_path) == ["out.pcap"]
    assert target.is_dir()


def test_missing_directory_is_an_output_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.pcap"
    with pytest.raises(OutputError) as caught, atomic_output(str(target)):
        pytest.fail("the block must not run")
    assert caught.value.where == str(target)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_output_mode_follows_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    os.umask(mask)
    target = tmp_path / "out.pcap"
    with atomic_output(str(target)) as out:
        out.write(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == mode


def _decompress(name: str, data: bytes) -> bytes:
    if name.lower().endswith(".gz"):
        assert data.startswith(GZIP_MAGIC)
        return gzip.decompress(data)
    if name.lower().endswith(".zst"):
        assert data.startswith(ZSTD_MAGIC)
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert not data.startswith((GZIP_MAGIC, ZSTD_MAGIC))
    return data


@pytest.mark.parametrize("name", ["out.pcap", "out.pcap.gz", "out.pcap.zst", "OUT.PCAP.GZ"])
def test_compressed_pcap_outputs(tmp_path: Path, name: str) -> None:
    source, target, plain = tmp_path / "in.pcap", tmp_path / name, tmp_path / "plain.pcap"
    source.write_bytes(_pcap())

    convert(source, target, "pcap")

    plain.write_bytes(_decompress(name, target.read_bytes()))
    theirs = scapy_pcap(plain)
    assert (theirs.linktype, theirs.nano) == (1, True)
    assert [(s * NS + f, d) for s, f, _, _, d in theirs.records] == [
        (frame.ts_ns, frame.data) for frame in read_all(source).frames]
    same_frames(read_all(target).frames, read_all(source).frames)


@pytest.mark.parametrize("name", ["out.pcapng.gz", "out.pcapng.zst"])
def test_compressed_pcapng_outputs(tmp_path: Path, name: str) -> None:
    source, target, plain = tmp_path / "in.pcapng", tmp_path / name, tmp_path / "plain.pcapng"
    source.write_bytes(_pcapng())

    convert(source, target, "pcapng")

    plain.write_bytes(_decompress(name, target.read_bytes()))
    packets, described = scapy_pcapng(plain)
    assert sorted(described) == [(1, 10**6), (113, 10**9)]
    assert [p.data for p in packets] == [frame.data for frame in read_all(source).frames]
    same_frames(read_all(target).frames, read_all(source).frames)


@pytest.mark.parametrize("name", ["out.pcap", "out.pcap.gz", "out.pcap.zst"])
def test_outputs_are_byte_identical_across_runs(tmp_path: Path, name: str) -> None:
    source = tmp_path / "in.pcap"
    source.write_bytes(_pcap())
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    first.parent.mkdir()
    second.parent.mkdir()
    convert(source, first, "pcap")
    convert(source, second, "pcap")
    assert first.read_bytes() == second.read_bytes()


def test_dash_writes_stdout_only_when_finished(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with atomic_output("-") as out:
        out.write(b"to stdout")
        assert capsysbinary.readouterr().out == b""  # staged, not yet published
    assert capsysbinary.readouterr().out == b"to stdout"


def test_dash_output_that_fails_writes_nothing(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with pytest.raises(Boom), atomic_output("-") as out:
        out.write(b"half")
        raise Boom
    assert capsysbinary.readouterr().out == b""
