"""explain: the first frames before and after the rules, field by field, as the scrub makes them."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap

import anontrace.pipeline as pipeline
from anontrace.cli import cli
from anontrace.errors import TraceFormatError
from anontrace.explain import Field, FrameChange, explain, render, to_json
from anontrace.keys import Key
from anontrace.rules.compile import Rules, Step, read_rules
from anontrace.transforms.base import NoConfig
from anontrace.transforms.ip import Ip
from tests.helpers import write_pcap
from tests.test_pipeline import DropUdp

SAMPLES = Path(__file__).parent.parent / "sample_pcaps"
OFFICE, DUALSTACK = SAMPLES / "office.pcap", SAMPLES / "dualstack.pcapng"
KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
KEY = Key(bytes.fromhex(KEY_HEX))
KEPT = [ipaddress.ip_network(n) for n in ("0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8", "224.0.0.0/4",
                                          "::/128", "::1/128", "ff00::/8")]
ADDRESS_FIELDS = ("source", "destination", "sender address", "target address", "target")
ADDRESS_PREFIXES = ("A record", "AAAA record", "option address", "address at")


@dataclass(frozen=True)
class Scrubbed:
    changes: list[FrameChange]
    packets: list[Packet]
    path: Path


def scrub_with_cli(source: Path, folder: Path) -> Path:
    key, target = folder / "key", folder / f"out{source.suffix}"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    result = CliRunner().invoke(cli, ["scrub", str(source), "-o", str(target), "--key-file", str(key), "-q"])
    assert result.exit_code == 0, result.output
    return target


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Scrubbed:
    target = scrub_with_cli(OFFICE, tmp_path_factory.mktemp("office"))
    return Scrubbed(explain(str(OFFICE), read_rules(None), KEY, 100), list(rdpcap(str(target))), target)


@pytest.fixture(scope="module")
def dualstack(tmp_path_factory: pytest.TempPathFactory) -> Scrubbed:
    target = scrub_with_cli(DUALSTACK, tmp_path_factory.mktemp("dualstack"))
    return Scrubbed(explain(str(DUALSTACK), read_rules(None), KEY, 100), list(rdpcap(str(target))), target)


def fields(changes: list[FrameChange], layer: str, name: str) -> list[Field]:
    return [f for c in changes for f in c.fields if f.layer == layer and f.name == name]


def hex4(value: int) -> str:
    return f"0x{value:04x}"


def _ip(kind: type[Packet]) -> dict[str, Callable[[Packet], str]]:
    return {"TOS": lambda p: f"0x{p[kind].tos:02x}", "id": lambda p: str(p[kind].id),
            "TTL": lambda p: str(p[kind].ttl), "checksum": lambda p: hex4(p[kind].chksum),
            "source": lambda p: p[kind].src, "destination": lambda p: p[kind].dst}


def _ports(kind: type[Packet]) -> dict[str, Callable[[Packet], str]]:
    return {"source port": lambda p: str(p[kind].sport), "destination port": lambda p: str(p[kind].dport),
            "checksum": lambda p: hex4(p[kind].chksum)}


SCAPY_OPTIONS = {"MSS": "MSS", "SAckOK": "SACK_PERM", "WScale": "WS", "NOP": "NOP", "EOL": "EOL",
                 "Timestamp": "TS", "SAck": "SACK"}
# What scapy reads from the scrubbed capture, per (layer, field) that explain reports.
SCAPY: dict[str, dict[str, Callable[[Packet], str]]] = {
    "eth": {"destination": lambda p: p[Ether].dst, "source": lambda p: p[Ether].src},
    "arp": {"sender MAC": lambda p: p[ARP].hwsrc, "sender address": lambda p: p[ARP].psrc,
            "target MAC": lambda p: p[ARP].hwdst, "target address": lambda p: p[ARP].pdst},
    "ipv4": _ip(IP),
    "ipv4 (quoted)": _ip(IPerror),
    "tcp": {**_ports(TCP), "seq": lambda p: str(p[TCP].seq), "ack": lambda p: str(p[TCP].ack),
            "window": lambda p: str(p[TCP].window),
            "options": lambda p: ",".join(SCAPY_OPTIONS[o[0]] for o in p[TCP].options)},
    "udp": _ports(UDP),
    "udp (quoted)": _ports(UDPerror),
    "icmp": {"checksum": lambda p: hex4(p[ICMP].chksum)},
}


def dns_names(packet: Packet) -> set[str]:
    dns = packet[DNS]
    names = {q.qname for q in dns.qd} | {r.rrname for r in dns.an}
    names |= {r.rdata for r in dns.an if r.type == 12}
    return {n.decode().rstrip(".") for n in names}


def expected_from_scrub(packet: Packet, field: Field) -> str:
    """The value of `field` as scapy reads it from the capture `anontrace scrub` wrote."""
    getter = SCAPY.get(field.layer, {}).get(field.name)
    if getter is not None:
        return getter(packet)
    if field.layer == "dns" and field.name.startswith("name at offset"):
        names = dns_names(packet)
        return field.after if field.after in names else f"not among {sorted(names)}"
    offset = int(field.name.rsplit(" ", 1)[1])  # "A record at offset 102", "option address at offset 37"
    return str(ipaddress.ip_address(packet.original[offset:offset + 4]))


def test_reports_the_first_n_frames() -> None:
    changes = explain(str(OFFICE), read_rules(None), KEY, 5)
    assert [c.index for c in changes] == [0, 1, 2, 3, 4]
    assert len(explain(str(OFFICE), read_rules(None), KEY, 1)) == 1


def test_whole_file_when_n_is_larger(office: Scrubbed) -> None:
    assert [c.index for c in office.changes] == list(range(28))
    assert all(c.dropped is None and c.cut is None for c in office.changes)


def test_every_address_changes_except_kept_special_ones(office: Scrubbed) -> None:
    checked = kept = 0
    for change in office.changes:
        for field in change.fields:
            if field.layer == "eth" or not (field.name in ADDRESS_FIELDS
                                            or field.name.startswith(ADDRESS_PREFIXES)):
                continue
            address = ipaddress.ip_address(field.before)
            if any(address in network for network in KEPT):
                assert field.after == field.before and not field.changed, field
                kept += 1
            else:
                assert field.after != field.before and field.changed, field
                checked += 1
    assert checked > 60 and kept > 0  # record-route slots hold 0.0.0.0


def test_after_values_are_what_scrub_writes(office: Scrubbed) -> None:
    assert len(office.packets) == len(office.changes)
    compared: set[tuple[str, str]] = set()
    for change, packet in zip(office.changes, office.packets, strict=True):
        assert change.captured_after == len(packet.original)
        for field in change.fields:
            assert field.after == expected_from_scrub(packet, field), (change.index, field)
            compared.add((field.layer, field.name.split(" at offset")[0]))
    assert {("eth", "source"), ("arp", "sender address"), ("ipv4", "checksum"), ("ipv4 (quoted)", "source"),
            ("udp (quoted)", "checksum"), ("tcp", "options"), ("dns", "A record"), ("dns", "name"),
            ("ipv4", "option address"), ("icmp", "checksum")} <= compared


def test_checksums_after_are_valid_for_tshark(office: Scrubbed) -> None:
    args = ["tshark", "-r", str(office.path), "-o", "ip.check_checksum:TRUE", "-T", "fields",
            "-E", "occurrence=f", "-e", "ip.checksum", "-e", "ip.checksum.status"]
    rows = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    found = [row.split("\t") for row in rows]
    ours = [[f.after for f in c.fields if f.layer == "ipv4" and f.name == "checksum"] for c in office.changes]
    for (checksum, status), mine in zip(found, ours, strict=True):
        assert mine == ([checksum] if checksum else [])
        assert status in ("", "1")  # 1: good
    assert sum(1 for _, status in found if status == "1") > 20


def test_unchanged_fields_are_marked_unchanged(office: Scrubbed) -> None:
    for layer, name in (("tcp", "seq"), ("tcp", "ack"), ("tcp", "window")):  # the default keeps these
        found = fields(office.changes, layer, name)
        assert found and all(not f.changed and f.before == f.after for f in found)
    broadcast = [f for f in fields(office.changes, "eth", "destination") if f.before == "ff:ff:ff:ff:ff:ff"]
    assert broadcast and not any(f.changed for f in broadcast)
    assert all(f.changed for f in fields(office.changes, "ipv4", "checksum"))


def test_names_are_decoded(office: Scrubbed) -> None:
    question = office.changes[2].fields
    name = next(f for f in question if f.layer == "dns" and f.name == "name at offset 54")
    assert name.before == "www.example.com" and name.changed
    assert [len(label) for label in name.after.split(".")] == [3, 7, 3] and name.after.endswith(".com")
    # This reverse name's mapped address does not fit its labels: the frame is cut before it, so
    # the name is not listed (it is not in the output).
    assert office.changes[4].captured_after == 54
    assert not [f for f in office.changes[4].fields if f.layer == "dns"]


def test_reverse_names_follow_the_address_mapping(tmp_path: Path) -> None:
    mapper = next(t for t in read_rules(None).build(KEY) if isinstance(t, Ip)).mapper
    for step in range(1, 5000):  # an address whose mapping fits its reverse name's labels
        host = ipaddress.IPv4Address(0x64000000 + step * 0x9E3779)
        mapped = ipaddress.ip_address(mapper.map(host.packed))
        if [len(x) for x in str(mapped).split(".")] == [len(x) for x in str(host).split(".")]:
            break
    else:
        pytest.fail("no address found whose mapping fits its labels")
    packet = (Ether() / IP(src="192.0.2.1", dst="192.0.2.53") / UDP(sport=40000, dport=53)
              / DNS(rd=1, qd=DNSQR(qname=host.reverse_pointer, qtype="PTR")))
    (change,) = explain(str(write_pcap(tmp_path / "ptr.pcap", [packet])), read_rules(None), KEY, 1)
    name = next(f for f in change.fields if f.name.startswith("name"))
    assert (name.layer, name.before, name.after) == ("dns", host.reverse_pointer, mapped.reverse_pointer)


def test_times_and_lengths(office: Scrubbed) -> None:
    for change, packet in zip(office.changes, office.packets, strict=True):
        assert change.ts_ns_after == change.ts_ns_before == int(packet.time * 1_000_000_000)
        assert change.wire_length == packet.wirelen
    http = office.changes[9]
    assert (http.captured_before, http.captured_after) == (119, 54)  # payload cut by the default rules


def test_ipv6_and_pcapng(dualstack: Scrubbed) -> None:
    assert len(dualstack.changes) == 31
    for change, packet in zip(dualstack.changes, dualstack.packets, strict=True):
        for field in change.fields:
            if field.layer == "ipv6" and field.name in ("source", "destination"):
                assert field.after == getattr(packet[IPv6], "src" if field.name == "source" else "dst")
            if field.layer == "ipv6" and field.name == "flow label":
                assert int(field.after, 16) == packet[IPv6].fl  # keyed by generalize
    labels = {(f.layer, f.name.split(" at offset")[0]) for c in dualstack.changes for f in c.fields}
    assert {("ipv6", "hop limit"), ("ipv6", "traffic class"), ("icmpv6", "target"), ("icmpv6", "prefix"),
            ("icmpv6", "link-layer address option"), ("ipv6 (quoted)", "source"),
            ("dns", "AAAA record")} <= labels
    prefix = next(f for c in dualstack.changes for f in c.fields if f.name.startswith("prefix"))
    assert prefix.before == "2001:db8:1:2::/64" and prefix.after.endswith("::/64") and prefix.changed


def test_batch_size_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = to_json(explain(str(OFFICE), read_rules(None), KEY, 20))
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 1)
    single = to_json(explain(str(OFFICE), read_rules(None), KEY, 20))
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 3)
    threes = to_json(explain(str(OFFICE), read_rules(None), KEY, 20))
    assert json.dumps(whole) == json.dumps(single) == json.dumps(threes)
    assert len(whole) == 20


def test_json_shape(office: Scrubbed) -> None:
    data = json.loads(json.dumps(to_json(office.changes[:4])))
    assert [frame["index"] for frame in data] == [0, 1, 2, 3]
    frame = data[3]
    assert set(frame) == {"index", "ts_ns_before", "ts_ns_after", "captured_before", "captured_after",
                          "wire_length", "cut", "dropped", "fields"}
    assert frame["ts_ns_before"] == 1710408413012282000 and frame["cut"] is None and frame["dropped"] is None
    first = frame["fields"][0]
    assert first == {"layer": "eth", "name": "destination", "before": "00:14:22:01:23:17",
                     "after": office.changes[3].fields[0].after, "changed": True}
    assert any(not f["changed"] for f in frame["fields"])


def test_rich_render_shows_rows(office: Scrubbed) -> None:
    console = Console(record=True, width=120)
    render(office.changes[2:4], console)
    text = console.export_text()
    source = next(f for f in office.changes[3].fields if f.layer == "ipv4" and f.name == "source")
    lines = text.splitlines()
    assert any(line.startswith("frame 3") for line in lines)
    assert any("ipv4" in line and "source" in line and "198.51.100.53" in line and source.after in line
               for line in lines)
    assert any("A record at offset 102" in line and "203.0.113.80" in line for line in lines)
    assert any("captured length" in line for line in lines)
    styled = Console(record=True, width=120)
    render(office.changes[3:4], styled)
    rows = styled.export_text(styles=True).splitlines()
    window = next(row for row in rows if "TOS" in row)
    changed = next(row for row in rows if "198.51.100.53" in row)
    assert window.count("\x1b[2m") >= 2 and "\x1b[2m" not in changed  # unchanged rows dimmed
    assert f"\x1b[1;33m{source.after}" in changed  # changed highlighted


def test_dropped_and_cut_frames(tmp_path: Path) -> None:
    packets = [Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=9, dport=9) / Raw(b"x"),
               Ether(type=0x88B5) / Raw(b"local experimental ethertype"),
               Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP(sport=1, dport=2)]
    source = write_pcap(tmp_path / "in.pcap", packets)
    default = read_rules(None)
    rules = Rules("test", "", (*default.steps, Step(DropUdp, NoConfig(), "test")))
    dropped, cut, tcp = explain(str(source), rules, KEY, 10)
    assert dropped.dropped == "udp not wanted" and dropped.fields == ()
    assert dropped.ts_ns_after is None and dropped.captured_after is None
    assert cut.cut == "ethertype 0x88b5 not dissected" and cut.captured_after == 14
    assert [f.name for f in cut.fields] == ["destination", "source"]
    assert tcp.dropped is None and tcp.cut is None and fields([tcp], "tcp", "checksum")[0].changed
    data = to_json([dropped])[0]
    assert data["dropped"] == "udp not wanted" and data["ts_ns_after"] is None and data["fields"] == []
    console = Console(record=True, width=120)
    render([dropped, cut], console)
    text = console.export_text()
    assert "dropped: udp not wanted" in text and "cut: ethertype 0x88b5 not dissected" in text


def test_only_fields_present_in_both_are_listed(tmp_path: Path) -> None:
    whole = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP(sport=1234, dport=80))
    source = tmp_path / "short.pcap"
    write_pcap(source, [Ether(whole[:40])])  # the TCP header cut after 6 bytes by a snap length
    (change,) = explain(str(source), read_rules(None), KEY, 1)
    tcp = [f.name for f in change.fields if f.layer == "tcp"]
    assert tcp == ["source port", "destination port"]
    assert [f.name for f in change.fields if f.layer == "ipv4"] == [
        "TOS", "id", "TTL", "checksum", "source", "destination"]


def test_names_from_the_capture_cannot_drive_the_terminal(tmp_path: Path) -> None:
    name = b"\x1b[31m[bold]evil.example.com"
    packet = (Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=40000, dport=53)
              / DNS(qd=DNSQR(qname=name), an=DNSRR(rrname="x.example.com", rdata="192.0.2.7")))
    source = write_pcap(tmp_path / "dns.pcap", [packet])
    (change,) = explain(str(source), read_rules(None), KEY, 1)
    question = next(f for f in change.fields if f.name.startswith("name"))
    assert question.before == "\\x1b[31m[bold]evil.example.com"
    console = Console(record=True, width=160)
    render([change], console)
    assert "\\x1b[31m[bold]evil.example.com" in console.export_text()
    assert "\x1b" not in console.export_text()


def test_damaged_capture_fails_as_the_scrub_does(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(OFFICE.read_bytes()[:300])  # ends inside a record
    with pytest.raises(TraceFormatError) as raised:
        explain(str(damaged), read_rules(None), KEY, 28)
    result = CliRunner().invoke(cli, ["scrub", str(damaged), "-o", str(tmp_path / "out.pcap"), "-q"])
    assert result.exit_code == 1
    assert f"Error: {raised.value}" in result.output
    assert "frame" in str(raised.value)
    assert len(explain(str(damaged), read_rules(None), KEY, 2)) == 2  # the damage lies further on
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all")
    with pytest.raises(TraceFormatError, match="not a pcap or pcapng file"):
        explain(str(garbage), read_rules(None), KEY, 1)
