"""Tunnels: the inner frame's addresses, MACs and checksum scopes are found at the offsets where
scapy put them (and where tshark sees them); what is not understood is cut, whatever the bytes."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.mpls import MPLS, EoMCW
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, GRE_PPTP, Dot1Q, Ether
from scapy.layers.ppp import HDLC, PPP, PPP_LCP_Echo, PPPoE, PPPoED, PPPoED_Tags, PPPoETag
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from anontrace.packet import tunnel
from anontrace.packet.checksum import fix_checksums
from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Builder, Checksum, Layers
from anontrace.packet.link import MAX_DEPTH

OUTER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
OUTER4 = OUTER / IP(src="192.0.2.1", dst="192.0.2.2")
OUTER6 = OUTER / IPv6(src="2001:db8::1", dst="2001:db8::2")
INNER_MAC = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
INNER4 = IP(src="10.1.0.1", dst="10.1.0.2")
INNER6 = IPv6(src="fd00::a", dst="fd00::b")
DATA = Raw(b"payload!")


def udp(port: int) -> UDP:
    return UDP(sport=50000, dport=port)


# Every frame here is understood to its end: the inner layers are all found.
SAMPLES: dict[str, Packet] = {
    "ip-in-ip": OUTER4 / INNER4 / UDP(sport=1000, dport=2000) / DATA,
    "6in4": OUTER4 / INNER6 / TCP(sport=1000, dport=2000) / DATA,
    "4in6": OUTER6 / INNER4 / TCP(sport=1000, dport=2000) / DATA,
    "gre-ipv4": OUTER4 / GRE() / INNER4 / TCP() / DATA,
    "gre-checksum-key-sequence": OUTER4
    / GRE(chksum_present=1, key_present=1, key=7, seqnum_present=1, sequence_number=9)
    / INNER6 / UDP(sport=1000, dport=2000) / DATA,
    "gre-over-ipv6": OUTER6 / GRE(key_present=1, key=3) / INNER4 / UDP(sport=1000, dport=2000) / DATA,
    "gre-bridged": OUTER4 / GRE(proto=0x6558) / INNER_MAC / Dot1Q(vlan=9) / INNER4 / TCP() / DATA,
    "erspan-i": OUTER4 / GRE(proto=0x88BE) / INNER_MAC / INNER4 / TCP() / DATA,
    "erspan-ii": OUTER4 / GRE(proto=0x88BE, seqnum_present=1, sequence_number=4) / ERSPAN_II(session_id=5)
    / INNER_MAC / INNER4 / TCP() / DATA,
    "erspan-iii": OUTER4 / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=5, o=0)
    / INNER_MAC / INNER6 / TCP() / DATA,
    "erspan-iii-platform": OUTER4 / GRE(proto=0x22EB) / ERSPAN_III(o=1) / ERSPAN_PlatformSpecific(platf_id=3)
    / INNER_MAC / INNER4 / UDP(sport=1000, dport=2000) / DATA,
    "gre-mpls": OUTER4 / GRE(proto=0x8847) / MPLS(label=17, s=1) / INNER4 / TCP() / DATA,
    "pptp": OUTER4 / GRE_PPTP(seqnum_present=1, sequence_number=1, call_id=5) / HDLC() / PPP()
    / INNER4 / UDP(sport=1000, dport=2000) / DATA,
    "pptp-ack-ipv6": OUTER4 / GRE_PPTP(seqnum_present=1, acknum_present=1, ack_number=2, call_id=5)
    / PPP(proto=0x0057) / INNER6 / TCP() / DATA,
    "pptp-compressed-protocol": OUTER4 / GRE_PPTP(seqnum_present=1, call_id=5) / PPP(proto=b"\x21")
    / INNER4 / TCP() / DATA,
    "vxlan": OUTER4 / udp(4789) / VXLAN(vni=42) / INNER_MAC / INNER4 / TCP() / DATA,
    "vxlan-over-ipv6": OUTER6 / udp(4789) / VXLAN(vni=42) / INNER_MAC / INNER6 / TCP() / DATA,
    "vxlan-gpe-ipv4": OUTER4 / udp(4790) / VXLAN(flags=0x0C, NextProtocol=1) / INNER4 / TCP() / DATA,
    "vxlan-gpe-ipv6": OUTER4 / udp(4790) / VXLAN(flags=0x0C, NextProtocol=2) / INNER6 / TCP() / DATA,
    "vxlan-gpe-ethernet": OUTER4 / udp(4790) / VXLAN(flags=0x0C, NextProtocol=3) / INNER_MAC / INNER4
    / TCP() / DATA,
    "vxlan-gpe-mpls": OUTER4 / udp(4790) / VXLAN(flags=0x0C, NextProtocol=5) / MPLS(s=1) / INNER4
    / TCP() / DATA,
    "geneve-ethernet": OUTER4 / udp(6081) / GENEVE(proto=0x6558, vni=7) / INNER_MAC / INNER4 / TCP() / DATA,
    "geneve-ipv6": OUTER4 / udp(6081) / GENEVE(proto=0x86DD) / INNER6 / UDP(sport=1000, dport=2000) / DATA,
    "mpls-in-udp": OUTER4 / udp(6635) / MPLS(label=16, s=1) / INNER4 / TCP() / DATA,
    "mpls": OUTER / MPLS(label=100, s=0) / MPLS(label=200, s=1) / INNER4 / TCP() / DATA,
    "mpls-ipv6": OUTER / MPLS(label=2, s=1) / INNER6 / UDP(sport=1000, dport=2000) / DATA,
    "pppoe": OUTER / PPPoE(sessionid=0x1234) / PPP() / INNER4 / UDP(sport=1000, dport=2000) / DATA,
    "pppoe-ipv6": OUTER / PPPoE(sessionid=0x1234) / PPP(proto=0x0057) / INNER6 / TCP() / DATA,
    "nested": OUTER4 / INNER4 / GRE(proto=0x6558) / INNER_MAC / IP(src="10.2.0.1", dst="10.2.0.2")
    / udp(4789) / VXLAN() / Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d") / INNER6 / TCP() / DATA,
}


def start(packet: Packet, layer: Packet) -> int:
    """Where scapy put `layer` (a layer instance of `packet`)."""
    return len(packet) - len(layer)


def instances(packet: Packet, kind: type[Packet]) -> list[Packet]:
    """Every layer of `kind` in `packet`, outermost first (subclasses such as PPPoED excluded)."""
    return [layer for layer in packet.iterpayloads() if type(layer) is kind]


def expected(packet: Packet) -> tuple[list[int], list[int], list[int], set[int]]:
    """IPv4, IPv6 and MAC address offsets and checksum field offsets, from scapy's layers."""
    ipv4 = [start(packet, layer) + field for layer in instances(packet, IP) for field in (12, 16)]
    ipv6 = [start(packet, layer) + field for layer in instances(packet, IPv6) for field in (8, 24)]
    macs = [start(packet, layer) + field for layer in instances(packet, Ether) for field in (0, 6)]
    checksums = {start(packet, layer) + 10 for layer in instances(packet, IP)}
    checksums |= {start(packet, layer) + 16 for layer in instances(packet, TCP)}
    checksums |= {start(packet, layer) + 6 for layer in instances(packet, UDP)}
    checksums |= {start(packet, layer) + 4 for layer in instances(packet, GRE) if layer.chksum_present}
    return ipv4, ipv6, macs, checksums


def text(data: bytes, layers: Layers) -> tuple[list[str], list[str], list[str]]:
    return (
        [str(ipaddress.IPv4Address(data[o:o + 4])) for o in layers.ipv4],
        [str(ipaddress.IPv6Address(data[o:o + 16])) for o in layers.ipv6],
        [data[o:o + 6].hex(":") for o in layers.macs],
    )


def scapy_text(packet: Packet) -> tuple[list[str], list[str], list[str]]:
    return (
        [address for layer in instances(packet, IP) for address in (layer.src, layer.dst)],
        [str(ipaddress.IPv6Address(a)) for layer in instances(packet, IPv6) for a in (layer.src, layer.dst)],
        [address for layer in instances(packet, Ether) for address in (layer.dst, layer.src)],
    )


@pytest.mark.parametrize("name", SAMPLES)
def test_inner_layers_are_found_where_scapy_put_them(name: str) -> None:
    packet = SAMPLES[name]
    data = bytes(packet)
    layers = dissect(data, 1)
    ipv4, ipv6, macs, checksums = expected(packet)
    assert (list(layers.ipv4), list(layers.ipv6), list(layers.macs)) == (ipv4, ipv6, macs)
    assert text(data, layers) == scapy_text(packet)
    assert {c.field for c in layers.checksums} == checksums
    assert layers.cut is None and layers.parsed_to == len(data)
    assert layers.payload == len(data) - len(DATA)


@pytest.mark.parametrize("name", SAMPLES)
def test_checksums_stay_right_when_every_address_changes(name: str) -> None:
    """The recorded scopes (outer, inner and GRE's) are right: after rewriting every address and
    MAC and fixing checksums from them, scapy computes the same checksums from scratch."""
    data = bytes(SAMPLES[name])
    layers = dissect(data, 1)
    out = bytearray(data)
    for size, offsets in ((4, layers.ipv4), (16, layers.ipv6), (6, layers.macs)):
        for offset in offsets:
            out[offset:offset + size] = bytes(b ^ 0x5A for b in data[offset:offset + size])
    fix_checksums(data, out, layers.checksums)
    rebuilt = Ether(bytes(out))
    for layer in rebuilt.iterpayloads():
        if "chksum" in layer.fields:
            layer.chksum = None
    assert bytes(rebuilt) == bytes(out)


def test_gre_checksum_scope_covers_the_gre_packet() -> None:
    packet = SAMPLES["gre-checksum-key-sequence"]
    data = bytes(packet)
    gre = start(packet, packet[GRE])
    layers = dissect(data, 1)
    assert layers.checksums[1] == Checksum(gre + 4, gre, len(data))
    assert layers.network == start(packet, packet[IPv6]) and layers.protocol == 17


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_sees_the_inner_layers_we_record(tmp_path: Path) -> None:
    path = tmp_path / "tunnels.pcap"
    wrpcap(str(path), list(SAMPLES.values()))
    fields = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "eth.src")
    result = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
         *(arg for f in fields for arg in ("-e", f))],
        capture_output=True, text=True, timeout=120, check=True,
    )
    rows = result.stdout.splitlines()
    assert len(rows) == len(SAMPLES)
    for name, row in zip(SAMPLES, rows, strict=True):
        data = bytes(SAMPLES[name])
        ipv4, ipv6, macs = text(data, dissect(data, 1))
        seen = [column.split(",") if column else [] for column in row.split("\t")]
        ours = [ipv4[0::2], ipv4[1::2], ipv6[0::2], ipv6[1::2], macs[1::2]]
        seen[2:4] = [[str(ipaddress.IPv6Address(a)) for a in column] for column in seen[2:4]]
        assert seen == ours, name


ROUTING, LCP = "GRE routing or reserved flags set", "PPP protocol 0xc021 not dissected"
CUTS: dict[str, tuple[Packet, type[Packet] | None, int, str]] = {
    # name: (frame, layer where the cut starts (None: the frame's end), bytes after it kept, reason)
    "gre-routing": (OUTER4 / GRE(routing_present=1) / INNER4, GRE, 0, ROUTING),
    "gre-recursion": (OUTER4 / GRE(recursion_control=1) / INNER4, GRE, 0, ROUTING),
    "gre-version-2": (OUTER4 / GRE(version=2) / INNER4, GRE, 0, "GRE version 2 not dissected"),
    "pptp-without-key": (OUTER4 / GRE_PPTP(key_present=0, payload_len=0, call_id=0) / PPP() / INNER4,
                         GRE_PPTP, 0, "GRE version 1 flags not dissected"),
    "pptp-other-protocol": (OUTER4 / GRE_PPTP(proto=0x0800, call_id=1) / INNER4, GRE_PPTP, 8,
                            "GRE version 1 protocol 0x0800 not dissected"),
    "pptp-lcp": (OUTER4 / GRE_PPTP(seqnum_present=1, call_id=1) / HDLC() / PPP(proto=0xC021) / PPP_LCP_Echo(),
                 HDLC, 4, LCP),
    "gre-unknown-ethertype": (OUTER4 / GRE(proto=0x88B5) / INNER4, GRE, 4, "ethertype 0x88b5 not dissected"),
    "erspan-ii-version-2": (OUTER4 / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(ver=2) / INNER_MAC,
                            ERSPAN_II, 0, "ERSPAN type II version 2 not dissected"),
    "erspan-iii-version-1": (OUTER4 / GRE(proto=0x22EB) / ERSPAN_III(ver=1) / INNER_MAC, ERSPAN_III, 0,
                             "ERSPAN type III version 1 not dissected"),
    "erspan-iii-ip-frame": (OUTER4 / GRE(proto=0x22EB) / ERSPAN_III(ft=2) / INNER4, ERSPAN_III, 0,
                            "ERSPAN type III frame type 2 not dissected"),
    "vxlan-without-i-flag": (OUTER4 / udp(4789) / VXLAN(flags=0) / INNER_MAC / INNER4, VXLAN, 0,
                             "VXLAN I flag not set"),
    "vxlan-gpe-nsh": (OUTER4 / udp(4790) / VXLAN(flags=0x0C, NextProtocol=4) / Raw(bytes(8)), VXLAN, 8,
                      "VXLAN-GPE next protocol 4 not dissected"),
    "vxlan-gpe-version-1": (OUTER4 / udp(4790) / VXLAN(flags=0x1C, NextProtocol=1) / INNER4, VXLAN, 0,
                            "VXLAN-GPE version or flags not dissected"),
    "vxlan-gpe-without-next-protocol": (OUTER4 / udp(4790) / VXLAN(flags=0x08) / INNER_MAC / INNER4, VXLAN, 0,
                                        "VXLAN-GPE version or flags not dissected"),
    "geneve-options": (OUTER4 / udp(6081) / GENEVE(proto=0x6558, options=[GeneveOptions(data=b"opaqueid")])
                       / INNER_MAC / INNER4, GENEVE, 8, "Geneve options not dissected"),
    "geneve-version-1": (OUTER4 / udp(6081) / GENEVE(version=1, proto=0x0800) / INNER4, GENEVE, 0,
                         "Geneve version 1 not dissected"),
    "mpls-pseudowire": (OUTER / MPLS(s=1) / EoMCW() / INNER_MAC / INNER4, EoMCW, 0,
                        "MPLS pseudowire not dissected"),
    "mpls-unknown-payload": (OUTER / MPLS(s=1) / Raw(b"\x50" + bytes(20)), Raw, 0,
                             "MPLS payload of version 5 not dissected"),
    "pppoe-discovery": (OUTER / PPPoED(code=0x09) / PPPoED_Tags(tag_list=[PPPoETag(tag_type=0x0103,
                        tag_value=b"host-uniq")]), PPPoED, 6, "PPPoE discovery tags not dissected"),
    "pppoe-lcp": (OUTER / PPPoE() / PPP(proto=0xC021) / PPP_LCP_Echo(), PPP, 2, LCP),
    "pppoe-code": (OUTER / PPPoE(code=0x65) / PPP() / INNER4, PPPoE, 6,
                   "PPPoE session code 0x65 not dissected"),
    "pppoe-version": (OUTER / PPPoE(version=2) / PPP() / INNER4, PPPoE, 0,
                      "PPPoE version/type 0x21 not dissected"),
}


@pytest.mark.parametrize("name", CUTS)
def test_what_is_not_understood_is_cut(name: str) -> None:
    packet, layer, kept, reason = CUTS[name]
    data = bytes(packet)
    at = start(packet, packet[layer]) + kept if layer else len(data)
    layers = dissect(data, 1)
    assert (layers.parsed_to, layers.cut) == (at, reason)
    ipv4, ipv6, macs, _ = expected(packet)
    assert list(layers.ipv4) == [o for o in ipv4 if o < at]
    assert list(layers.ipv6) == [o for o in ipv6 if o < at]
    assert list(layers.macs) == [o for o in macs if o < at]


def test_pppoe_discovery_without_tags_keeps_no_padding() -> None:
    data = bytes(OUTER / PPPoED(code=0xA7, sessionid=3, len=0) / Raw(bytes(20)))
    layers = dissect(data, 1)
    assert (layers.parsed_to, layers.cut) == (20, "link-layer padding or trailer after the datagram")


def test_pppoe_length_bounds_the_session() -> None:
    packet = OUTER / PPPoE() / PPP() / INNER4 / UDP(sport=1000, dport=2000) / DATA
    data = bytes(packet) + b"trailer!"
    layers = dissect(data, 1)
    assert layers.parsed_to == len(packet)
    assert layers.cut == "link-layer padding or trailer after the datagram"
    longer = bytearray(bytes(packet))
    longer[18:20] = (0xFFFF).to_bytes(2, "big")  # a length beyond the frame: the frame's end bounds it
    assert dissect(bytes(longer), 1).ipv4 == dissect(bytes(packet), 1).ipv4


def test_pptp_payload_length_bounds_the_ppp_frame() -> None:
    ack_only = OUTER4 / GRE_PPTP(acknum_present=1, ack_number=5, call_id=5)
    data = bytes(ack_only)
    layers = dissect(data + bytes(6), 1)
    assert (layers.parsed_to, layers.payload) == (len(data), len(data))
    assert layers.cut == "link-layer padding or trailer after the datagram"


def test_mpls_label_stack_is_capped() -> None:
    stack = [MPLS(label=i, s=0) for i in range(tunnel.MAX_MPLS_LABELS + 1)]
    frame = OUTER
    for entry in stack:
        frame = frame / entry
    data = bytes(frame / INNER4)
    layers = dissect(data, 1)
    assert layers.parsed_to == 14 + 4 * tunnel.MAX_MPLS_LABELS
    assert layers.cut == f"MPLS label stack deeper than {tunnel.MAX_MPLS_LABELS}" and layers.ipv4 == ()
    deepest = OUTER
    for i in range(tunnel.MAX_MPLS_LABELS):
        deepest = deepest / MPLS(label=i, s=int(i == tunnel.MAX_MPLS_LABELS - 1))
    found = dissect(bytes(deepest / INNER4 / UDP()), 1)
    assert found.cut is None and found.ipv4 == (14 + 64 + 12, 14 + 64 + 16)


def test_mpls_stack_without_payload_is_kept() -> None:
    data = bytes(OUTER / MPLS(s=0) / MPLS(s=1))
    layers = dissect(data, 1)
    assert (layers.parsed_to, layers.payload, layers.cut) == (22, 22, None)


def nest(levels: int) -> Packet:
    """`levels` tunnels, alternating IP-in-IP, GRE and VXLAN, around a TCP segment."""
    frame = OUTER4
    for level in range(levels):
        inner = IP(src=f"10.9.{level}.1", dst=f"10.9.{level}.2")
        if level % 3 == 0:
            frame = frame / inner
        elif level % 3 == 1:
            frame = frame / GRE() / inner
        else:
            frame = frame / udp(4789) / VXLAN() / INNER_MAC / inner
    return frame / TCP() / DATA


def test_nesting_up_to_the_cap_is_dissected() -> None:
    packet = nest(MAX_DEPTH)
    layers = dissect(bytes(packet), 1)
    assert layers.cut is None and list(layers.ipv4) == expected(packet)[0]


def test_nesting_beyond_the_cap_is_cut() -> None:
    packet = nest(MAX_DEPTH + 1)  # the last tunnel (level 8) is VXLAN
    layers = dissect(bytes(packet), 1)
    at = start(packet, instances(packet, Ether)[-1])
    assert (layers.parsed_to, layers.cut) == (at, f"VXLAN nested more than {MAX_DEPTH} deep")
    ipv4, _, macs, _ = expected(packet)
    assert list(layers.ipv4) == [o for o in ipv4 if o < at]
    assert list(layers.macs) == [o for o in macs if o < at]
    assert len(layers.ipv4) == 2 * MAX_DEPTH + 2


def test_direct_calls_without_dissect() -> None:
    inner = bytes(INNER_MAC / INNER4 / TCP())
    b = Builder(b"\x08\x00\x00\x00\x00\x00\x2a\x00" + inner)
    tunnel.vxlan(b, 0, len(b.data))
    assert b.macs == [8, 14] and b.ipv4 == [8 + 14 + 12, 8 + 14 + 16] and b.depth == 1
    b = Builder(b"\x00\x00\x65\x58" + inner)
    tunnel.gre(b, 0, (), 4)
    assert b.macs == [4, 10] and b.network == 18
    b = Builder(bytes(MPLS(s=1) / INNER6 / UDP()))
    tunnel.mpls(b, 0)
    assert b.ipv6 == [12, 28] and b.depth == 0
    b = Builder(bytes(HDLC() / PPP() / INNER4))
    tunnel.ppp(b, 0)
    assert b.ipv4 == [16, 20]


@pytest.mark.parametrize("name", [*SAMPLES, *CUTS])
def test_truncation_at_every_byte_never_raises_nor_keeps_a_partial_address(name: str) -> None:
    """A frame cut by the snap length anywhere keeps no address it does not record, and records
    only addresses the whole frame has."""
    packet = SAMPLES[name] if name in SAMPLES else CUTS[name][0]
    data = bytes(packet)
    full = dissect(data, 1)
    for size in range(len(data) + 1):
        layers = dissect(data[:size], 1)
        assert layers.parsed_to <= size
        for width, recorded, whole in ((4, layers.ipv4, full.ipv4), (16, layers.ipv6, full.ipv6),
                                       (6, layers.macs, full.macs)):
            assert set(recorded) <= set(whole)
            kept = {o for o in whole if o + width <= layers.parsed_to}
            assert kept <= set(recorded), (size, width)
            assert not [o for o in whole if o < layers.parsed_to < o + width], (size, width)


@pytest.mark.parametrize("name", SAMPLES)
def test_corrupt_bytes_never_raise(name: str) -> None:
    """Every byte set to each of a few values: lying lengths, flags, versions and next protocols."""
    data = bytes(SAMPLES[name])
    for position in range(len(data)):
        for value in (0x00, 0x01, 0x0F, 0x45, 0x80, 0xFF):
            corrupt = data[:position] + bytes([value]) + data[position + 1:]
            layers = dissect(corrupt, 1)
            assert layers.parsed_to <= len(corrupt)


# Resource bombs (issue 7): a frame of tunnels nested far past the cap costs no more than one nested
# to the cap plus one, and is cut where the tunnel past the cap starts.
ENTERED = {4: "IP-in-IP", 47: "GRE"}


def tunnels(levels: int, protocol: int) -> bytes:
    """An Ethernet/IPv4 frame with `levels` IP-in-IP (4) or GRE (47) tunnels inside, around a TCP
    header; built with struct, innermost first (scapy recurses once per layer, too deep here)."""
    packet, carried = bytes(TCP()), 6
    for level in range(levels, -1, -1):  # level 0 is the outer packet
        address = struct.pack("!HH", 10 << 8 | level >> 8, level & 0xFF)
        packet = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(packet), 0, 0, 64, carried, 0,
                             address, address[:3] + b"\xfe") + packet
        if protocol == 47 and level:
            packet = struct.pack("!HH", 0, 0x0800) + packet  # GRE version 0 carrying IPv4
        carried = protocol
    return bytes(OUTER)[:12] + b"\x08\x00" + packet


@pytest.mark.parametrize("protocol", sorted(ENTERED), ids=list(ENTERED.values()))
@pytest.mark.parametrize("levels", [100, 900])
def test_tunnels_nested_hundreds_deep_are_cut_at_the_cap(levels: int, protocol: int) -> None:
    level_size = 20 if protocol == 4 else 24  # each level: [GRE header,] IPv4 header
    data = tunnels(levels, protocol)
    assert len(data) == 14 + 20 + levels * level_size + 20
    layers = dissect(data, 1)
    beyond = 14 + 20 + MAX_DEPTH * level_size  # where the tunnel past the cap starts its inner packet
    if protocol == 47:
        beyond += 4  # GRE's payload starts after its 4-byte header
    reason = f"{ENTERED[protocol]} nested more than {MAX_DEPTH} deep"
    assert (layers.parsed_to, layers.cut) == (beyond, reason)
    assert [h.kind for h in layers.headers] == ["ipv4"] * (MAX_DEPTH + 1)  # nothing past the cap read
    assert len(layers.ipv4) == 2 * (MAX_DEPTH + 1)
