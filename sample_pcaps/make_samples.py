"""Regenerate the sample captures in ``sample_pcaps/``.

Deterministic: fixed timestamps, addresses and payloads, no randomness, no
wall clock, so running it twice gives byte-identical files.  Packets are
built with scapy (which fills in lengths and checksums); the classic pcap and
pcapng containers are written by hand with ``struct`` so that every header
field and option is explicit.

    python sample_pcaps/make_samples.py
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PadN,
    RouterAlert,
    fragment6,
)
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

OUT_DIR = Path(__file__).resolve().parent
T0_NS = 1_710_408_413_000_000_000  # 2024-03-14 09:26:53 UTC

# Hosts (vendor OUIs: Dell, Cisco, Polycom, HP, Juniper).
CLIENT_MAC, GW_MAC = "00:14:22:01:23:17", "00:1b:54:0a:b0:01"
PHONE_MAC, SWITCH_MAC, EDGE_MAC = "00:04:f2:3c:10:45", "3c:d9:2b:0a:10:fa", "00:05:85:7e:00:64"
CLIENT4, GW4, DNS4 = "10.1.2.23", "10.1.2.1", "198.51.100.53"
WEB4, WEB4_ALT, PING4, DEAD4 = "203.0.113.80", "203.0.113.81", "192.0.2.10", "192.0.2.20"
CLIENT6, CLIENT6_LL = "2001:db8:1:2::23", "fe80::214:22ff:fe01:2317"  # EUI-64 of CLIENT_MAC
GW6_LL, GW6 = "fe80::21b:54ff:fe0a:b001", "2001:db8:1:2::1"
DNS6, WEB6, DEAD6 = "2001:db8:53::53", "2001:db8:80::80", "2001:db8:53::54"
HTTP_GET = b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n"
SYSLOG = b"<134>Mar 14 09:27:01 sep0004f23c1045 sip: registered ext 4417 from 10.1.10.45"
COMMENT = "PMTU drop seen by alice@ws-023.corp.example (ticket 4417)"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<p>hello</p>\n"


@dataclass(frozen=True)
class Frame:
    ts_ns: int
    data: bytes
    iface: int = 0
    comment: str = ""


@dataclass
class Timeline:
    """Collects frames, advancing a fixed clock by ``gap_ns`` before each one."""

    now_ns: int = T0_NS
    frames: list[Frame] = field(default_factory=list)

    def add(self, pkt: Packet, gap_ns: int = 1_000_000, iface: int = 0, comment: str = "") -> None:
        self.now_ns += gap_ns
        self.frames.append(Frame(self.now_ns, bytes(pkt), iface, comment))


def eth(src: str, dst: str) -> Ether:
    return Ether(src=src, dst=dst)


def tcp_exchange(tl: Timeline, l2c: Packet, l2s: Packet, ipc: Packet, ips: Packet,
                 sport: int, request: bytes, response: bytes) -> None:
    """Handshake, one request/response, FIN from both sides and the last ACK."""
    c_isn, s_isn, dport = 0x1F3A_5C01, 0x6B2E_9D40, 80
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    c, s = c_isn + 1, s_isn + 1

    def cli(flags: str, seq: int, ack: int, data: bytes = b"", win: int = 502) -> Packet:
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win)
        return l2c / ipc / tcp / Raw(data)

    def srv(flags: str, seq: int, ack: int, data: bytes = b"", win: int = 509) -> Packet:
        tcp = TCP(sport=dport, dport=sport, flags=flags, seq=seq, ack=ack, window=win)
        return l2s / ips / tcp / Raw(data)

    syn, syn_ack = cli("S", c_isn, 0, win=64240), srv("SA", s_isn, c, win=65160)
    syn[TCP].options = syn_ack[TCP].options = opts
    tl.add(syn)
    tl.add(syn_ack, gap_ns=18_412_000)
    tl.add(cli("A", c, s), gap_ns=61_000)
    tl.add(cli("PA", c, s, request), gap_ns=87_000)
    tl.add(srv("A", s, c + len(request)), gap_ns=18_903_000)
    tl.add(srv("PA", s, c + len(request), response), gap_ns=1_204_000)
    c, s = c + len(request), s + len(response)
    tl.add(cli("A", c, s), gap_ns=44_000)
    tl.add(cli("FA", c, s), gap_ns=512_000)
    tl.add(srv("FA", s, c + 1), gap_ns=18_377_000)
    tl.add(cli("A", c + 1, s + 1), gap_ns=39_000)


def office() -> list[Frame]:
    """Ethernet/IPv4 office LAN: ARP, DNS (A + PTR), HTTP over TCP, ICMP echo and
    port-unreachable (RFC 792 quote: IP header + 8 bytes), VLAN 10 and QinQ
    frames, Record Route option (addresses inside IP options) and a fragmented
    UDP datagram."""
    tl = Timeline()
    c2g, g2c = eth(CLIENT_MAC, GW_MAC), eth(GW_MAC, CLIENT_MAC)
    tl.add(eth(CLIENT_MAC, "ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=CLIENT_MAC, psrc=CLIENT4, hwdst="00:00:00:00:00:00", pdst=GW4))
    tl.add(g2c / ARP(op=2, hwsrc=GW_MAC, psrc=GW4, hwdst=CLIENT_MAC, pdst=CLIENT4), 412_000)
    a_q = DNS(id=0x3B1C, rd=1, qd=DNSQR(qname="www.example.com.", qtype="A"))
    a_r = DNS(id=0x3B1C, qr=1, rd=1, ra=1, qd=a_q.qd, an=[
        DNSRR(rrname="www.example.com.", type="A", ttl=300, rdata=WEB4),
        DNSRR(rrname="www.example.com.", type="A", ttl=300, rdata=WEB4_ALT)])
    ptr = "80.113.0.203.in-addr.arpa."
    p_q = DNS(id=0x3B1D, rd=1, qd=DNSQR(qname=ptr, qtype="PTR"))
    p_r = DNS(id=0x3B1D, qr=1, rd=1, ra=1, qd=p_q.qd,
              an=DNSRR(rrname=ptr, type="PTR", ttl=3600, rdata="www.example.com."))
    for n, (q, r) in enumerate([(a_q, a_r), (p_q, p_r)]):
        sport = 51_334 + 1_000 * n
        tl.add(c2g / IP(src=CLIENT4, dst=DNS4, id=0x4C01 + n) / UDP(sport=sport, dport=53) / q)
        tl.add(g2c / IP(src=DNS4, dst=CLIENT4, id=0x9A10 + n, ttl=57)
               / UDP(sport=53, dport=sport) / r, 9_870_000)
    tcp_exchange(tl, c2g, g2c, IP(src=CLIENT4, dst=WEB4, id=0x4D00, flags="DF"),
                 IP(src=WEB4, dst=CLIENT4, id=0, flags="DF", ttl=52), 44_218, HTTP_GET, HTTP_OK)
    tl.add(c2g / IP(src=CLIENT4, dst=PING4, id=0x4E01) / ICMP(id=0x0B1D, seq=1) / Raw(b"ping!" * 8))
    tl.add(g2c / IP(src=PING4, dst=CLIENT4, id=0x1F00, ttl=61)
           / ICMP(type=0, id=0x0B1D, seq=1) / Raw(b"ping!" * 8), 2_301_000)
    probe = IP(src=CLIENT4, dst=DEAD4, id=0x4E02) / UDP(sport=40_001, dport=33_434)
    probe /= Raw(b"\0" * 32)
    tl.add(c2g / probe)
    tl.add(g2c / IP(src=DEAD4, dst=CLIENT4, id=0x1F01, ttl=61)
           / ICMP(type=3, code=3) / Raw(bytes(probe)[:28]), 2_118_000)
    # Voice VLAN 10: phone ARPs for the syslog server, then sends a message.
    v10 = Dot1Q(prio=5, vlan=10)
    tl.add(eth(PHONE_MAC, "ff:ff:ff:ff:ff:ff") / v10 / ARP(
        op=1, hwsrc=PHONE_MAC, psrc="10.1.10.45", hwdst="00:00:00:00:00:00", pdst="10.1.10.250"))
    tl.add(eth(SWITCH_MAC, PHONE_MAC) / v10 / ARP(
        op=2, hwsrc=SWITCH_MAC, psrc="10.1.10.250", hwdst=PHONE_MAC, pdst="10.1.10.45"), 301_000)
    tl.add(eth(PHONE_MAC, SWITCH_MAC) / v10 / IP(src="10.1.10.45", dst="10.1.10.250", id=7)
           / UDP(sport=514, dport=514) / Raw(SYSLOG))
    # Provider QinQ: S-tag 100 (0x88a8) carrying C-tag 10 (0x8100).
    tl.add(eth(EDGE_MAC, GW_MAC) / Dot1AD(vlan=100) / Dot1Q(vlan=10)
           / IP(src="10.1.10.45", dst=GW4, id=8) / ICMP(id=0x0C01, seq=1) / Raw(b"qinq" * 8))
    # ping -R: empty Record Route slots out, filled ones back.
    rr_out = IPOption_RR(pointer=4, routers=["0.0.0.0"] * 9)
    hops = [GW4, "192.0.2.1", PING4, "192.0.2.1", GW4]
    rr_back = IPOption_RR(pointer=4 + 4 * len(hops), routers=hops + ["0.0.0.0"] * 4)
    tl.add(c2g / IP(src=CLIENT4, dst=PING4, id=0x4E03, options=[rr_out]) / ICMP(id=0x0B1E, seq=1))
    tl.add(g2c / IP(src=PING4, dst=CLIENT4, id=0x1F02, ttl=61, options=[rr_back])
           / ICMP(type=0, id=0x0B1E, seq=1), 2_450_000)
    big = IP(src=CLIENT4, dst=PING4, id=0x4E04) / UDP(sport=48_000, dport=48_001)
    big /= Raw(b"anontrace-fragment." * 100)
    for frag in fragment(big, fragsize=1480):  # type: ignore[no-untyped-call]
        tl.add(c2g / frag, 12_000)
    return tl.frames


def dualstack() -> list[Frame]:
    """Dual-stack client. Interface 0 (Ethernet, usec): NS/NA, RA, DNS AAAA over
    IPv6, HTTP over IPv6 TCP, Hop-by-Hop + Destination-Options header, ICMPv6
    port-unreachable (full quote), packet-too-big (truncated quote) followed by
    the same datagram re-sent as a fragment pair, plus IPv4 DNS and ping.
    Interface 1 (Linux SLL, nsec): an IPv4 TCP handshake and an ICMPv6 ping."""
    tl = Timeline(now_ns=T0_NS + 3_600_000_000_000)
    c2g, g2c = eth(CLIENT_MAC, GW_MAC), eth(GW_MAC, CLIENT_MAC)
    tl.add(eth(CLIENT_MAC, "33:33:ff:0a:b0:01")
           / IPv6(src=CLIENT6_LL, dst="ff02::1:ff0a:b001", hlim=255)
           / ICMPv6ND_NS(tgt=GW6_LL) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))
    tl.add(g2c / IPv6(src=GW6_LL, dst=CLIENT6_LL, hlim=255)
           / ICMPv6ND_NA(R=1, S=1, O=1, tgt=GW6_LL) / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC), 388_000)
    tl.add(eth(GW_MAC, "33:33:00:00:00:01") / IPv6(src=GW6_LL, dst="ff02::1", hlim=255)
           / ICMPv6ND_RA(chlim=64, routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=GW_MAC)
           / ICMPv6NDOptMTU(mtu=1500) / ICMPv6NDOptPrefixInfo(
               prefixlen=64, L=1, A=1, validlifetime=2_592_000, preferredlifetime=604_800,
               prefix="2001:db8:1:2::"))
    q = DNS(id=0x71A0, rd=1, qd=DNSQR(qname="www.example.com.", qtype="AAAA"))
    r = DNS(id=0x71A0, qr=1, rd=1, ra=1, qd=q.qd,
            an=DNSRR(rrname="www.example.com.", type="AAAA", ttl=300, rdata=WEB6))
    tl.add(c2g / IPv6(src=CLIENT6, dst=DNS6) / UDP(sport=53_011, dport=53) / q)
    tl.add(g2c / IPv6(src=DNS6, dst=CLIENT6, hlim=57) / UDP(sport=53, dport=53_011) / r, 11_204_000)
    tcp_exchange(tl, c2g, g2c, IPv6(src=CLIENT6, dst=WEB6, fl=0x3A1F2),
                 IPv6(src=WEB6, dst=CLIENT6, hlim=52, fl=0x0C55E), 45_502, HTTP_GET, HTTP_OK)
    tl.add(c2g / IPv6(src=CLIENT6, dst=WEB6) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
           / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
           / UDP(sport=48_010, dport=48_011) / Raw(b"extension headers"))
    probe = IPv6(src=CLIENT6, dst=DEAD6) / UDP(sport=48_020, dport=33_434) / Raw(b"\0" * 24)
    tl.add(c2g / probe)
    tl.add(g2c / IPv6(src=DEAD6, dst=CLIENT6, hlim=60) / ICMPv6DestUnreach(code=4)
           / Raw(bytes(probe)), 1_930_000)
    big = IPv6(src=CLIENT6, dst=WEB6) / UDP(sport=48_030, dport=48_031)
    big /= Raw(b"anontrace-v6-frag." * 80)
    tl.add(c2g / big)
    tl.add(g2c / IPv6(src=GW6, dst=CLIENT6, hlim=64) / ICMPv6PacketTooBig(mtu=1280)
           / Raw(bytes(big)[:1232]), 402_000, comment=COMMENT)
    unfragmented = IPv6(src=CLIENT6, dst=WEB6) / IPv6ExtHdrFragment(id=0x5A5A0001) / big[UDP]
    for frag in fragment6(unfragmented, 1280):  # type: ignore[no-untyped-call]
        tl.add(c2g / frag, 15_000)
    tl.add(c2g / IP(src=CLIENT4, dst=DNS4, id=0x5001) / UDP(sport=53_012, dport=53)
           / DNS(id=0x71A1, rd=1, qd=DNSQR(qname="www.example.com.", qtype="A")))
    tl.add(g2c / IP(src=DNS4, dst=CLIENT4, id=0x9B00, ttl=57) / UDP(sport=53, dport=53_012)
           / DNS(id=0x71A1, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.com.", qtype="A"),
                 an=DNSRR(rrname="www.example.com.", type="A", ttl=300, rdata=WEB4)), 9_412_000)
    tl.add(c2g / IP(src=CLIENT4, dst=PING4, id=0x5002) / ICMP(id=0x0B20, seq=1) / Raw(b"dual" * 8))
    tl.add(g2c / IP(src=PING4, dst=CLIENT4, id=0x2000, ttl=61) / ICMP(type=0, id=0x0B20, seq=1)
           / Raw(b"dual" * 8), 2_287_000)
    # Interface 1: "any" device (SLL); pkttype 4 = outgoing, 0 = addressed to us.
    out, inn = CookedLinux(pkttype=4, src=CLIENT_MAC), CookedLinux(pkttype=0, src=GW_MAC)
    ssh_c = out / IP(src=CLIENT4, dst="192.0.2.25", id=0x5100, flags="DF")
    ssh_s = inn / IP(src="192.0.2.25", dst=CLIENT4, flags="DF", ttl=61)
    ping6 = IPv6(src=CLIENT6, dst=WEB6), IPv6(src=WEB6, dst=CLIENT6, hlim=52)
    for pkt, gap in [
        (ssh_c / TCP(sport=50_022, dport=22, flags="S", seq=1000, window=64240), 1_234_567),
        (ssh_s / TCP(sport=22, dport=50_022, flags="SA", seq=5000, ack=1001), 3_141_593),
        (ssh_c / TCP(sport=50_022, dport=22, flags="A", seq=1001, ack=5001, window=502), 27_183),
        (out / ping6[0] / ICMPv6EchoRequest(id=0x0C00, seq=1, data=b"nsec"), 1_414_214),
        (inn / ping6[1] / ICMPv6EchoReply(id=0x0C00, seq=1, data=b"nsec"), 17_320_508),
    ]:
        tl.add(pkt, gap, iface=1)
    return tl.frames


def nanosecond() -> list[Frame]:
    """Ethernet/IPv4 at nanosecond resolution with sub-microsecond timestamp
    digits; DNS over UDP and a short HTTP exchange whose response is larger
    than the 96-byte snaplen, so its record is truncated (caplen < wirelen)."""
    tl = Timeline(now_ns=T0_NS + 7_200_000_000_123)
    c2g, g2c = eth(CLIENT_MAC, GW_MAC), eth(GW_MAC, CLIENT_MAC)
    q = DNS(id=0x0D01, rd=1, qd=DNSQR(qname="example.com.", qtype="A"))
    r = DNS(id=0x0D01, qr=1, rd=1, ra=1, qd=q.qd,
            an=DNSRR(rrname="example.com.", ttl=60, rdata=WEB4))
    r = r.compress()  # type: ignore[no-untyped-call]  # name compression: frame fits in 96 bytes
    tl.add(c2g / IP(src=CLIENT4, dst=DNS4, id=0x6001) / UDP(sport=53_020, dport=53) / q, 1_001)
    tl.add(g2c / IP(src=DNS4, dst=CLIENT4, id=0x9C00, ttl=57) / UDP(sport=53, dport=53_020) / r,
           8_765_432)
    cli = c2g / IP(src=CLIENT4, dst=WEB4, id=0x6002, flags="DF")
    srv = g2c / IP(src=WEB4, dst=CLIENT4, flags="DF", ttl=52)
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n" + b"x" * 400
    get = Raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    for pkt, gap in [
        (cli / TCP(sport=44_300, dport=80, flags="S", seq=7000, window=64240), 2_000_017),
        (srv / TCP(sport=80, dport=44_300, flags="SA", seq=9000, ack=7001), 18_000_251),
        (cli / TCP(sport=44_300, dport=80, flags="A", seq=7001, ack=9001, window=502), 60_999),
        (cli / TCP(sport=44_300, dport=80, flags="PA", seq=7001, ack=9001) / get, 77_777),
        (srv / TCP(sport=80, dport=44_300, flags="PA", seq=9001, ack=7028, window=509) / Raw(body),
         19_000_003),
        (cli / TCP(sport=44_300, dport=80, flags="A", seq=7028, ack=9001 + len(body), window=502),
         41_009),
    ]:
        tl.add(pkt, gap)
    return tl.frames


def write_pcap(path: Path, frames: list[Frame], *, nanosec: bool, snaplen: int = 262_144) -> None:
    """Classic pcap, little-endian, linktype 1; records longer than snaplen are cut."""
    magic, div = (0xA1B23C4D, 1) if nanosec else (0xA1B2C3D4, 1_000)
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, 1)]
    for f in frames:
        sec, frac = divmod(f.ts_ns, 1_000_000_000)
        assert frac % div == 0, "timestamp not representable"
        data = f.data[:snaplen]
        out.append(struct.pack("<IIII", sec, frac // div, len(data), len(f.data)) + data)
    path.write_bytes(b"".join(out))


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _options(*opts: tuple[int, bytes]) -> bytes:
    """TLV options (32-bit padded) followed by opt_endofopt; empty if none."""
    if not opts:
        return b""
    return b"".join(struct.pack("<HH", code, len(v)) + _pad(v) for code, v in opts) + b"\0" * 4


def _block(btype: int, body: bytes) -> bytes:
    body = _pad(body)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_pcapng(path: Path, frames: list[Frame]) -> None:
    """SHB (hardware/os/userappl), IDB 0 Ethernet usec, IDB 1 Linux SLL nsec,
    an NRB with host names, then one EPB per frame (optionally with a comment)."""
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(
        (2, b"Dell Latitude 7420 (Intel Core i7-1185G7)"), (3, b"Linux 6.1.0-18-amd64"),
        (4, b"anontrace sample_pcaps/make_samples.py"))
    idb0 = struct.pack("<HHI", 1, 0, 262_144) + _options(
        (2, b"enp0s31f6"), (6, bytes.fromhex(CLIENT_MAC.replace(":", ""))))
    idb1 = struct.pack("<HHI", 113, 0, 262_144) + _options((2, b"any"), (9, b"\x09"))
    nrb = b""  # nrb_record_ipv4 = 1, nrb_record_ipv6 = 2: address then NUL-terminated name
    for addr, name in [(WEB4, "www.example.com"), (CLIENT4, "ws-023.corp.example"),
                       (WEB6, "www.example.com")]:
        ip = ip_address(addr)
        value = ip.packed + name.encode() + b"\0"
        nrb += struct.pack("<HH", 1 if ip.version == 4 else 2, len(value)) + _pad(value)
    nrb += b"\0" * 4  # nrb_record_end
    out = [_block(0x0A0D0D0A, shb), _block(1, idb0), _block(1, idb1), _block(4, nrb)]
    units_ns = {0: 1_000, 1: 1}
    for f in sorted(frames, key=lambda f: f.ts_ns):
        ts, rem = divmod(f.ts_ns, units_ns[f.iface])
        assert rem == 0, "timestamp not representable"
        opts = _options((1, f.comment.encode())) if f.comment else b""
        epb = struct.pack("<IIIII", f.iface, ts >> 32, ts & 0xFFFFFFFF, len(f.data), len(f.data))
        out.append(_block(6, epb + _pad(f.data) + opts))
    path.write_bytes(b"".join(out))


def main() -> None:
    write_pcap(OUT_DIR / "office.pcap", office(), nanosec=False)
    write_pcapng(OUT_DIR / "dualstack.pcapng", dualstack())
    write_pcap(OUT_DIR / "nanosecond.pcap", nanosecond(), nanosec=True, snaplen=96)
    for name in ("office.pcap", "dualstack.pcapng", "nanosecond.pcap"):
        print(f"{name}: {(OUT_DIR / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
