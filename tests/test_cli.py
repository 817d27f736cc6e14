"""The command line as a user meets it: exit codes, one-line located errors, no partial outputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.keys import Key, write_key_file
from tests.crypto.cryptopan_reference import IPV4_PAIRS, IPV6_PAIRS, REFERENCE_KEY
from tests.helpers import anontrace, read_packets, write_pcap

SAMPLES = Path(__file__).parent.parent / "sample_pcaps"
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def record(data: bytes, caplen: int | None = None, wirelen: int | None = None) -> bytes:
    return (
        struct.pack(
            "<IIII", 1, 0, len(data) if caplen is None else caplen, len(data) if wirelen is None else wirelen
        )
        + data
    )


FRAME = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=9, dport=9) / Raw(b"hello"))
SECOND = 24 + 16 + len(FRAME)  # byte offset of the second record


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "reference.key"
    write_key_file(path, Key(REFERENCE_KEY))
    return path


def assert_failed(result: object, code: int, *parts: str) -> str:
    stderr = result.stderr.decode()  # type: ignore[attr-defined]
    assert result.returncode == code, stderr  # type: ignore[attr-defined]
    assert stderr.startswith("Error: "), stderr
    assert "Traceback" not in stderr
    for part in parts:
        assert part in stderr, stderr
    return stderr


def assert_nothing_left(directory: Path, *keep: str) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(keep)


BAD_CAPTURES = {
    "truncated-last-record": (
        PCAP_HEADER + record(FRAME) + record(FRAME)[:-3],
        f"frame 2 at byte {SECOND}",
        "file ends inside the record",
    ),
    "truncated-record-header": (
        PCAP_HEADER + record(FRAME) + record(FRAME)[:9],
        f"frame 2 at byte {SECOND}",
        "file ends inside a record header",
    ),
    "caplen-over-256MiB": (
        PCAP_HEADER + record(b"", caplen=300 << 20),
        "frame 1 at byte 24",
        "record claims 314572800 bytes",
    ),
    "caplen-over-snaplen": (
        PCAP_HEADER + record(b"", caplen=300_000),
        "frame 1 at byte 24",
        "more than the snaplen",
    ),
    "wrong-magic": (b"GIF89a" + bytes(40), "byte 0", "not a pcap or pcapng file"),
    "empty-file": (b"", "file is empty", ""),
    "unknown-link-type": (
        PCAP_HEADER[:20] + struct.pack("<I", 65000),
        "byte 20",
        "link type 65000 is not registered",
    ),
    "pcapng-bad-block-length": (
        struct.pack("<IIIHHq", 0x0A0D0D0A, 27, 0x1A2B3C4D, 1, 0, -1),
        "at byte 0",
        "block length 27 is invalid",
    ),
}


@pytest.mark.parametrize("name", BAD_CAPTURES)
def test_bad_captures_fail_located_with_no_output(tmp_path: Path, name: str) -> None:
    content, where, what = BAD_CAPTURES[name]
    source = tmp_path / "in.pcap"
    source.write_bytes(content)
    result = anontrace("scrub", str(source), "-o", str(tmp_path / "out.pcap"), "-q")
    assert_failed(result, 1, f"{source}", where, what)
    assert_nothing_left(tmp_path, "in.pcap")


def test_missing_input_and_empty_directory_are_usage_errors(tmp_path: Path) -> None:
    result = anontrace("scrub", str(tmp_path / "nope.pcap"), "-o", str(tmp_path / "o.pcap"))
    assert_failed(result, 2, "nope.pcap: no such file or directory")
    (tmp_path / "empty").mkdir()
    result = anontrace("scrub", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert_failed(result, 2, "directory holds no capture files")
    assert_nothing_left(tmp_path, "empty")


def test_malformed_rule_file_is_located_before_any_packet(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nsteps:\n  - use: payload\n    keep: lots\n")
    result = anontrace(
        "scrub", str(SAMPLES / "office.pcap"), "-o", str(tmp_path / "o.pcap"), "-r", str(rules)
    )
    assert_failed(result, 2, f"{rules}:4:11: steps.0.keep: expected a whole number")
    assert_nothing_left(tmp_path, "r.yaml")


def test_damage_inside_a_packet_is_cut_and_counted(tmp_path: Path, key_file: Path) -> None:
    bad = bytearray(bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP() / Raw(b"secret")))
    bad[14 + 20 + 12] = 0x10  # TCP data offset of 4 bytes
    source = write_pcap(tmp_path / "in.pcap", [Ether(bytes(bad)), Ether(FRAME)])
    result = anontrace(
        "scrub", str(source), "-o", str(tmp_path / "out.pcap"), "--json", "-q", "--key-file", str(key_file)
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames_in"] == summary["frames_out"] == 2
    assert summary["frames_cut"] == {"TCP data offset 4 is shorter than a TCP header": 1}
    out = read_packets(tmp_path / "out.pcap")
    assert len(bytes(out[0])) == 34 and b"secret" not in bytes(out[0])


def test_map_matches_reference_vectors_and_reverses(tmp_path: Path, key_file: Path) -> None:
    rules = tmp_path / "plain.yaml"
    rules.write_text("version: 1\nsteps:\n  - use: ip\n    keep: []\n    keep_prefix: []\n")
    pairs = IPV4_PAIRS[:20] + IPV6_PAIRS
    result = anontrace("map", "--key-file", str(key_file), "-r", str(rules), *[a for a, _ in pairs])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [b for _, b in pairs]
    back = anontrace(
        "map", "--key-file", str(key_file), "-r", str(rules), "--reverse", *[b for _, b in pairs]
    )
    assert back.stdout.decode().split() == [a for a, _ in pairs]


def test_map_needs_valid_addresses(key_file: Path) -> None:
    result = anontrace("map", "--key-file", str(key_file), "not-an-address")
    assert result.returncode == 2 and b"is not an IPv4 or IPv6 address" in result.stderr


def test_keygen_and_group_readable_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    assert anontrace("keygen", "-o", str(path)).returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_text().strip()) == 64
    assert_failed(anontrace("keygen", "-o", str(path)), 2, "file exists")
    path.chmod(0o640)
    result = anontrace(
        "scrub", str(SAMPLES / "office.pcap"), "-o", str(tmp_path / "o.pcap"), "--key-file", str(path)
    )
    assert_failed(result, 2, "accessible to others", f"chmod 600 {path}")


def test_one_time_key_is_announced(tmp_path: Path) -> None:
    result = anontrace("scrub", str(SAMPLES / "office.pcap"), "-o", str(tmp_path / "o.pcap"))
    assert result.returncode == 0
    assert b"one-time key" in result.stderr and b"frames in / out" in result.stderr
    assert result.stdout == b""


def test_stdin_to_stdout(tmp_path: Path, key_file: Path) -> None:
    data = (SAMPLES / "nanosecond.pcap").read_bytes()
    result = anontrace("scrub", "-", "-o", "-", "-q", "--key-file", str(key_file), stdin=data)
    assert result.returncode == 0, result.stderr
    (tmp_path / "o.pcap").write_bytes(result.stdout)
    assert result.stdout[:4] == struct.pack("<I", 0xA1B23C4D)  # still nanosecond
    assert len(read_packets(tmp_path / "o.pcap")) == len(read_packets(SAMPLES / "nanosecond.pcap"))


def test_several_inputs_into_a_directory_share_one_mapping(tmp_path: Path, key_file: Path) -> None:
    out = tmp_path / "out"
    result = anontrace(
        "scrub",
        str(SAMPLES / "office.pcap"),
        str(SAMPLES / "nanosecond.pcap"),
        "-o",
        str(out),
        "-q",
        "--key-file",
        str(key_file),
    )
    assert result.returncode == 0, result.stderr
    bundle = (".labels.csv", ".flows.csv", ".report.json", ".report.html", ".manifest.json")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}{suffix}" for name in ("nanosecond.pcap", "office.pcap") for suffix in ("", *bundle))
    result = anontrace(
        "scrub", str(SAMPLES), "-o", str(tmp_path / "again"), "-q", "--key-file", str(key_file)
    )
    assert result.returncode == 0
    assert (tmp_path / "again" / "office.pcap").read_bytes() == (out / "office.pcap").read_bytes()


def test_output_format_follows_extension(tmp_path: Path, key_file: Path) -> None:
    result = anontrace(
        "scrub",
        str(SAMPLES / "office.pcap"),
        "-o",
        str(tmp_path / "o.pcapng.gz"),
        "-q",
        "--key-file",
        str(key_file),
    )
    assert result.returncode == 0
    import gzip

    assert gzip.decompress((tmp_path / "o.pcapng.gz").read_bytes())[:4] == b"\x0a\x0d\x0d\x0a"


def test_usage_errors(tmp_path: Path) -> None:
    result = anontrace("scrub", str(SAMPLES / "office.pcap"), str(SAMPLES / "nanosecond.pcap"), "-o", "-")
    assert_failed(result, 2, "several inputs need an output directory")
    result = anontrace("scrub", str(SAMPLES / "office.pcap"), "-o", str(SAMPLES / "office.pcap"))
    assert_failed(result, 2, "output would overwrite the input")
    result = anontrace("scrub", str(SAMPLES / "office.pcap"), "-o", str(tmp_path / "missing" / "o.pcap"))
    assert_failed(result, 1, "o.pcap: the output's directory does not exist")


def test_version_and_module_entry_point() -> None:
    result = anontrace("--version")
    assert result.returncode == 0 and result.stdout.startswith(b"anontrace, version ")


def test_map_maps_and_reverses_macs(key_file: Path) -> None:
    forward = anontrace("map", "--key-file", str(key_file), "00:1b:21:3a:1b:2c", "ff:ff:ff:ff:ff:ff")
    assert forward.returncode == 0, forward.stderr
    mapped, broadcast = forward.stdout.decode().split()
    assert mapped != "00:1b:21:3a:1b:2c" and broadcast == "ff:ff:ff:ff:ff:ff"
    back = anontrace("map", "--key-file", str(key_file), "--reverse", mapped)
    assert back.stdout.decode().strip() == "00:1b:21:3a:1b:2c"


def test_rules_that_link_across_runs_refuse_a_one_time_key(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nlinks_across_runs: true\n")
    source = write_pcap(tmp_path / "in.pcap", [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()])
    result = anontrace("scrub", str(source), "-o", str(tmp_path / "out.pcap"), "-r", str(rules))
    assert_failed(result, 2, "link across runs")
    assert not (tmp_path / "out.pcap").exists()


def test_audit_command_formats_and_exit_codes(tmp_path: Path) -> None:
    weak = tmp_path / "weak.yaml"
    weak.write_text("version: 1\nsteps:\n  - use: mac\n    keep_oui: true\n")
    result = anontrace("audit", str(weak))
    assert result.returncode == 1 and f"{weak}:4:15: warning:".encode() in result.stdout
    assert anontrace("audit", str(weak), "--fail-on", "error").returncode == 0
    sarif = json.loads(anontrace("audit", str(weak), "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nsteps: [\n")
    assert anontrace("audit", str(broken)).returncode == 2


def test_explain_command(tmp_path: Path, key_file: Path) -> None:
    source = write_pcap(tmp_path / "in.pcap", [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()])
    result = anontrace("explain", str(source), "-n", "1", "--key-file", str(key_file), "--json")
    assert result.returncode == 0, result.stderr
    (frame,) = json.loads(result.stdout)
    source_field = next(f for f in frame["fields"] if f["name"] == "source" and f["layer"] == "ipv4")
    assert source_field["before"] == "10.0.0.1" and source_field["after"] != "10.0.0.1"
    assert anontrace("explain", str(source), "-n", "0").returncode == 2


def test_rules_schema_command() -> None:
    result = anontrace("rules", "schema")
    assert result.returncode == 0 and json.loads(result.stdout)["title"] == "anontrace rule file"
