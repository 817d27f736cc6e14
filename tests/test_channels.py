"""Every identifier channel of issue 3, end to end, judged by tshark on the output.

Each frame is built with scapy around the same hosts (one MAC, one IPv4 and one IPv6 address per
host). After a scrub, tshark reads the output: the original identifier must be gone, the value in
the channel must equal what the same host became in the ordinary headers, and every checksum
tshark can verify must still be good.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import DUID_LL, DHCP6_Solicit, DHCP6OptClientId, DHCP6OptIA_NA, DHCP6OptIAAddress
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT, EDNS0ClientSubnet
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

from anontrace.cli import cli
from tests.helpers import write_pcap

KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
MAC_A, MAC_B, MAC_R = "00:1b:21:3a:1b:2c", "3c:22:fb:10:20:30", "00:0c:29:aa:bb:cc"
V4_A, V4_B, V4_R, V4_DNS = "10.20.30.40", "192.168.7.9", "10.20.30.1", "172.16.5.53"
V6_A, V6_B = "2001:db8:1:2::40", "2001:db8:1:2::9"
LINK_A = "fe80::21b:21ff:fe3a:1b2c"  # EUI-64 of MAC_A
TSHARK_CHECKS = ("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                 "-o", "udp.check_checksum:TRUE")


def frames() -> dict[str, Packet]:
    """One frame per channel, named; frame 'base' carries each host in ordinary headers."""
    eth_a = Ether(src=MAC_A, dst=MAC_B)
    return {
        "base4": eth_a / IP(src=V4_A, dst=V4_B) / TCP(sport=40000, dport=443),
        "base6": eth_a / IPv6(src=V6_A, dst=V6_B) / TCP(sport=40000, dport=443),
        "router": Ether(src=MAC_R, dst=MAC_A) / IP(src=V4_R, dst=V4_A) / TCP(sport=179, dport=40001),
        "arp": Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=MAC_A, psrc=V4_A, hwdst="00:00:00:00:00:00", pdst=V4_R),
        "icmp_error": Ether(src=MAC_R, dst=MAC_A) / IP(src=V4_R, dst=V4_A) / ICMP(type=3, code=1)
        / IP(src=V4_A, dst=V4_B) / UDP(sport=40002, dport=9999),
        "nd": Ether(src=MAC_A, dst="33:33:ff:00:00:09") / IPv6(src=LINK_A, dst="ff02::1:ff00:9")
        / ICMPv6ND_NS(tgt=V6_B) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A),
        "na": Ether(src=MAC_B, dst=MAC_A) / IPv6(src=V6_B, dst=LINK_A)
        / ICMPv6ND_NA(tgt=V6_B) / ICMPv6NDOptDstLLAddr(lladdr=MAC_B),
        "dns": Ether(src=MAC_R, dst=MAC_A) / IP(src=V4_DNS, dst=V4_A) / UDP(sport=53, dport=40003)
        / DNS(id=7, qr=1, qd=DNSQR(qname="db1.corp.example.com"),
              an=[DNSRR(rrname="db1.corp.example.com", type="A", rdata=V4_B),
                  DNSRR(rrname="db1.corp.example.com", type="AAAA", rdata=V6_B)]),
        "ptr6": Ether(src=MAC_A, dst=MAC_R) / IP(src=V4_A, dst=V4_DNS) / UDP(sport=40004, dport=53)
        / DNS(id=8, rd=1, qd=DNSQR(qname=ipaddress.ip_address(V6_B).reverse_pointer, qtype="PTR")),
        "dhcp": Ether(src=MAC_R, dst=MAC_A) / IP(src=V4_R, dst=V4_A) / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=bytes.fromhex(MAC_A.replace(":", "")) + bytes(10), yiaddr=V4_A)
        / DHCP(options=[("message-type", "ack"), ("router", V4_R), ("hostname", b"alice-laptop"),
                        "end"]),
        "dhcp6": Ether(src=MAC_A, dst="33:33:00:01:00:02") / IPv6(src=LINK_A, dst="ff02::1:2")
        / UDP(sport=546, dport=547) / DHCP6_Solicit(trid=5)
        / DHCP6OptClientId(duid=DUID_LL(lladdr=MAC_A))
        / DHCP6OptIA_NA(iaid=1, ianaopts=[DHCP6OptIAAddress(addr=V6_A)]),
        "ra": Ether(src=MAC_R, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_RA()
        / ICMPv6NDOptPrefixInfo(prefixlen=64, prefix="2001:db8:1:2::"),
        "ecs": Ether(src=MAC_A, dst=MAC_R) / IP(src=V4_A, dst=V4_DNS) / UDP(sport=40011, dport=53)
        / DNS(id=9, rd=1, qd=DNSQR(qname="example.org"),
              ar=DNSRROPT(rdata=[EDNS0ClientSubnet(source_plen=24, address="10.20.30.0")])),
        "six_to_four": eth_a / IPv6(src="2002:0a14:1e28:1::1", dst=V6_B) / TCP(sport=40005, dport=80),
        "teredo": eth_a / IPv6(src="2001:0:ac10:535:8000:f227:f5eb:e1d7", dst=V6_B)
        / TCP(sport=40006, dport=80),  # server 172.16.5.53, client 10.20.30.40 (inverted)
        "vxlan": Ether(src=MAC_R, dst=MAC_B) / IP(src=V4_R, dst=V4_B) / UDP(sport=40007, dport=4789)
        / VXLAN(vni=42) / Ether(src=MAC_A, dst=MAC_B) / IP(src=V4_A, dst=V4_B) / TCP(sport=40008, dport=22),
        "gre": Ether(src=MAC_R, dst=MAC_B) / IP(src=V4_R, dst=V4_DNS) / GRE()
        / IP(src=V4_A, dst=V4_B) / UDP(sport=40009, dport=9999),
        "ipip": Ether(src=MAC_R, dst=MAC_B) / IP(src=V4_R, dst=V4_DNS) / IP(src=V4_A, dst=V4_B)
        / TCP(sport=40010, dport=80),
    }


NAMES = list(frames())
View = dict[str, dict[str, list[str]]]  # frame name -> tshark field -> values


def tshark(path: Path, *fields: str) -> list[dict[str, list[str]]]:
    args = ["tshark", "-r", str(path), *TSHARK_CHECKS, "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=|", "-E", "separator=\t"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append({name: [v for v in value.split("|") if v]
                     for name, value in zip(fields, values, strict=True)})
    return rows


@pytest.fixture(scope="module")
def scrubbed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("channels")
    source = write_pcap(folder / "in.pcap", list(frames().values()))
    key = folder / "key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    target = folder / "out.pcap"
    result = CliRunner().invoke(cli, ["scrub", str(source), "-o", str(target), "--key-file", str(key), "-q"])
    assert result.exit_code == 0, result.output
    return source, target


FIELDS = ("eth.src", "eth.dst", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "arp.src.hw_mac",
          "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "icmpv6.opt.linkaddr", "icmpv6.nd.ns.target_address",
          "icmpv6.nd.na.target_address", "dns.a", "dns.aaaa", "dns.qry.name", "dns.resp.name",
          "dhcp.hw.mac_addr", "dhcp.ip.your", "dhcp.option.router", "dhcp.option.hostname",
          "dhcpv6.duidll.link_layer_addr", "dhcpv6.iaaddr.ip", "ipv6.src_6to4_gw_ipv4", "ipv6.src_ts_ipv4",
          "ipv6.tc_ipv4", "icmpv6.opt.prefix", "dns.opt.client.addr4", "_ws.malformed",
          "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status",
          "icmpv6.checksum.status")


@pytest.fixture(scope="module")
def views(scrubbed: tuple[Path, Path]) -> tuple[View, View]:
    before, after = (dict(zip(NAMES, tshark(path, *FIELDS), strict=True)) for path in scrubbed)
    return before, after


def first(view: View, frame: str, field: str, index: int = 0) -> str:
    return view[frame][field][index]


def test_every_frame_decodes_cleanly_with_good_checksums(views: tuple[View, View]) -> None:
    before, after = views
    for name in NAMES:
        assert not after[name]["_ws.malformed"], name
        for field in FIELDS:
            if field.endswith("checksum.status"):
                assert after[name][field] == before[name][field], (name, field)


def test_no_original_identifier_survives_anywhere(scrubbed: tuple[Path, Path]) -> None:
    raw = scrubbed[1].read_bytes()
    for mac in (MAC_A, MAC_B, MAC_R):
        assert bytes.fromhex(mac.replace(":", "")) not in raw, mac
    for address in (V4_A, V4_B, V4_R, V4_DNS, V6_A, V6_B, LINK_A):
        assert ipaddress.ip_address(address).packed not in raw, address
    assert bytes.fromhex("1b213a1b2c")[1:] not in raw  # the MAC's bytes inside the EUI-64 id
    for text in (b"alice", b"corp", b"db1", b"example", b"9.0.0.0.0.0.0.0"):
        assert text not in raw, text


def test_arp_addresses_follow_the_header_mapping(views: tuple[View, View]) -> None:
    _, after = views
    assert first(after, "arp", "arp.src.hw_mac") == first(after, "base4", "eth.src")
    assert first(after, "arp", "arp.src.proto_ipv4") == first(after, "base4", "ip.src")
    assert first(after, "arp", "arp.dst.proto_ipv4") == first(after, "router", "ip.src")


def test_icmp_quoted_packet_follows_the_header_mapping(views: tuple[View, View]) -> None:
    _, after = views
    assert after["icmp_error"]["ip.src"][1] == first(after, "base4", "ip.src")
    assert after["icmp_error"]["ip.dst"][1] == first(after, "base4", "ip.dst")


def test_neighbour_discovery_and_eui64_follow_the_mac_mapping(views: tuple[View, View]) -> None:
    before, after = views
    mac = first(after, "base4", "eth.src")
    assert first(after, "nd", "icmpv6.opt.linkaddr") == mac
    assert first(after, "nd", "icmpv6.nd.ns.target_address") == first(after, "base6", "ipv6.dst")
    octets = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([octets[0] ^ 2]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    link = ipaddress.ip_address(first(after, "nd", "ipv6.src")).packed
    assert link[:8] == bytes.fromhex("fe80000000000000") and link[8:] == eui
    assert first(after, "na", "icmpv6.opt.linkaddr") == first(after, "na", "eth.src")
    assert first(after, "nd", "ipv6.dst") != first(before, "nd", "ipv6.dst")  # solicited-node moved
    assert first(after, "nd", "ipv6.dst").startswith("ff02::1:ff")


def test_dns_records_and_reverse_names_follow_the_mapping(views: tuple[View, View]) -> None:
    before, after = views
    assert first(after, "dns", "dns.a") == first(after, "base4", "ip.dst")
    assert first(after, "dns", "dns.aaaa") == first(after, "base6", "ipv6.dst")
    name, original = first(after, "dns", "dns.qry.name"), first(before, "dns", "dns.qry.name")
    assert len(name) == len(original) and name != original and name.endswith(".com")
    assert [len(label) for label in name.split(".")] == [3, 4, 7, 3]
    mapped = ipaddress.ip_address(first(after, "base6", "ipv6.dst"))
    assert first(after, "ptr6", "dns.qry.name") == mapped.reverse_pointer


def test_dhcp_fields_follow_the_mapping(views: tuple[View, View]) -> None:
    before, after = views
    assert first(after, "dhcp", "dhcp.hw.mac_addr") == first(after, "base4", "eth.src")
    assert first(after, "dhcp", "dhcp.ip.your") == first(after, "base4", "ip.src")
    assert first(after, "dhcp", "dhcp.option.router") == first(after, "router", "ip.src")
    hostname = first(after, "dhcp", "dhcp.option.hostname")
    assert len(hostname) == len("alice-laptop") and hostname != first(before, "dhcp", "dhcp.option.hostname")
    assert first(after, "dhcp6", "dhcpv6.duidll.link_layer_addr") == first(after, "base4", "eth.src")
    assert first(after, "dhcp6", "dhcpv6.iaaddr.ip") == first(after, "base6", "ipv6.src")


def test_ipv4_embedded_in_ipv6_follows_the_ipv4_mapping(views: tuple[View, View]) -> None:
    _, after = views
    assert first(after, "six_to_four", "ipv6.src_6to4_gw_ipv4") == first(after, "base4", "ip.src")
    assert first(after, "teredo", "ipv6.src_ts_ipv4") == first(after, "dns", "ip.src")
    assert first(after, "teredo", "ipv6.tc_ipv4") == first(after, "base4", "ip.src")


@pytest.mark.parametrize("tunnel", ["vxlan", "gre", "ipip"])
def test_tunnelled_frames_follow_the_same_mapping(views: tuple[View, View], tunnel: str) -> None:
    _, after = views
    assert after[tunnel]["ip.src"][-1] == first(after, "base4", "ip.src")
    assert after[tunnel]["ip.dst"][-1] == first(after, "base4", "ip.dst")
    if tunnel == "vxlan":
        assert after[tunnel]["eth.src"][-1] == first(after, "base4", "eth.src")


def test_prefixes_follow_the_addresses_inside_them(views: tuple[View, View]) -> None:
    _, after = views
    host6 = ipaddress.ip_address(first(after, "base6", "ipv6.src")).packed
    prefix = ipaddress.ip_address(first(after, "ra", "icmpv6.opt.prefix")).packed
    assert prefix == host6[:8] + bytes(8)
    host4 = ipaddress.ip_address(first(after, "base4", "ip.src")).packed
    subnet = ipaddress.ip_address(first(after, "ecs", "dns.opt.client.addr4")).packed
    assert subnet == host4[:3] + b"\0"
