"""DNS, mDNS and LLMNR messages: every name, address and client subnet by offset; what is cut and why."""

from __future__ import annotations

import random
import re
import shutil
import socket
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.dns import (
    DNS,
    DNSQR,
    DNSRR,
    DNSRRMX,
    DNSRRNSEC,
    DNSRROPT,
    DNSRRSOA,
    DNSRRSRV,
    EDNS0COOKIE,
    EDNS0PADDING,
    EDNS0TLV,
    EDNS0ClientSubnet,
    dns_compress,
)
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet
from scapy.utils import wrpcap

from anontrace.packet import dns
from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Builder, Layers, Name, Prefix

RAW = 101  # link type: raw IP
UDP_START = 28  # first byte of a DNS message after a 20-byte IPv4 header and the UDP header
TCP_START = 42  # ... after IPv4, a 20-byte TCP header and the 2-byte length prefix
REASONS = re.compile(
    r"DNS header cut short|DNS header not dissected|DNS name cut short|DNS name malformed"
    r"|DNS question cut short|DNS record cut short|DNS over TCP segment is not one message"
    r"|DNS record type \d+ data (not dissected|cut short|malformed)"
    r"|DNS EDNS option \d+ (not dissected|malformed)"
)


def udp(message: Packet | bytes, sport: int = 40000, dport: int = 53) -> bytes:
    return bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=dport) / message)


def tcp(message: Packet | bytes, sport: int = 40000, dport: int = 53) -> bytes:
    return bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport, dport=dport, flags="PA") / message)


Transport = Callable[[Packet | bytes, int, int], bytes]


def decode(data: bytes, offset: int, base: int) -> str:
    """Test-only: the name at `offset`, following pointers (which must point backwards) from `base`."""
    labels = []
    for _ in range(128):
        size = data[offset]
        if size >= 0xC0:
            target = base + ((size & 0x3F) << 8 | data[offset + 1])
            assert target < offset, "pointer does not point backwards"
            offset = target
        elif size == 0:
            return ".".join(labels) + "."
        else:
            labels.append(data[offset + 1:offset + 1 + size].decode("latin-1"))
            offset += size + 1
    raise AssertionError("name does not end")


def decoded(data: bytes, layers: Layers) -> list[str]:
    return [decode(data, name.offset, name.base) for name in layers.names]


def header(questions: int = 1, answers: int = 0, flags: int = 0x8180) -> bytes:
    return struct.pack("!6H", 0x1234, flags, questions, answers, 0, 0)


def record(owner: bytes, kind: int, rdata: bytes, size: int | None = None) -> bytes:
    return owner + struct.pack("!HHIH", kind, 1, 60, len(rdata) if size is None else size) + rdata


def full_response() -> DNS:
    """A response holding every record type understood, with EDNS client subnets of both families."""
    return DNS(id=7, qr=1, aa=1, qd=DNSQR(qname="www.example.com"), an=[
        DNSRR(rrname="www.example.com", type="CNAME", rdata="web.example.com"),
        DNSRR(rrname="web.example.com", type="A", rdata="192.0.2.1"),
        DNSRR(rrname="web.example.com", type="AAAA", rdata="2001:db8::1"),
        DNSRR(rrname="1.2.0.192.in-addr.arpa", type="PTR", rdata="web.example.com"),
        DNSRRMX(rrname="example.com", preference=10, exchange="mail.example.com"),
        DNSRRSRV(rrname="_sip._tcp.example.com", priority=1, weight=2, port=5060, target="sip.example.com"),
        DNSRR(rrname="old.example.com", type="DNAME", rdata="new.example.net"),
        DNSRRNSEC(rrname="web.example.com", nextname="www.example.com", typebitmaps=[1, 28, 47]),
    ], ns=[
        DNSRR(rrname="example.com", type="NS", rdata="ns1.example.com"),
        DNSRRSOA(rrname="example.com", mname="ns1.example.com", rname="hostmaster.example.com"),
    ], ar=[DNSRROPT(rdata=[
        EDNS0ClientSubnet(source_plen=24, address="198.51.100.0"),
        EDNS0ClientSubnet(family=2, source_plen=56, address="2001:db8:1:200::"),
        EDNS0TLV(optcode=11, optdata=b"\x00\x64"),
        EDNS0PADDING(padding=b"\x00" * 5),
    ])])


FULL_NAMES = [
    "www.example.com.", "www.example.com.", "web.example.com.", "web.example.com.", "web.example.com.",
    "1.2.0.192.in-addr.arpa.", "web.example.com.", "example.com.", "mail.example.com.",
    "_sip._tcp.example.com.", "sip.example.com.", "old.example.com.", "new.example.net.",
    "web.example.com.", "www.example.com.", "example.com.", "ns1.example.com.", "example.com.",
    "ns1.example.com.", "hostmaster.example.com.", ".",
]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_every_name_and_address_of_a_response(compress: bool) -> None:
    message = dns_compress(full_response()) if compress else full_response()
    data = udp(message, sport=53, dport=40000)
    layers = dissect(data, RAW)
    assert layers.cut is None and layers.parsed_to == layers.payload == len(data)
    assert decoded(data, layers) == FULL_NAMES
    assert {name.base for name in layers.names} == {UDP_START}
    assert [data[o:o + 4] for o in layers.ipv4] == [socket.inet_aton(a) for a in ("10.0.0.1", "10.0.0.2",
                                                                               "192.0.2.1")]
    assert [data[o:o + 16] for o in layers.ipv6] == [socket.inet_pton(socket.AF_INET6, "2001:db8::1")]
    assert [(data[p.offset:p.offset + p.size], p.family, p.length) for p in layers.prefixes] == [
        (bytes([198, 51, 100]), 4, 24), (bytes.fromhex("20010db8000102"), 16, 56)]
    if compress:
        assert sum(name.end - name.offset == 2 for name in layers.names) >= 8


NAME_FIELDS = {
    "dns.qry.name", "dns.resp.name", "dns.srv.name", "dns.cname", "dns.ptr.domain_name",
    "dns.mx.mail_exchange", "dns.srv.target", "dns.dname", "dns.nsec.next_domain_name", "dns.ns",
    "dns.soa.mname", "dns.soa.rname",
}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_finds_the_same_fields(tmp_path: Path) -> None:
    data = udp(dns_compress(full_response()), sport=53, dport=40000)
    path = tmp_path / "dns.pcap"
    wrpcap(str(path), [IP(data)])
    pdml = subprocess.run(["tshark", "-r", str(path), "-T", "pdml"], capture_output=True, check=True,
                          timeout=120).stdout
    spans: dict[str, set[tuple[int, int]]] = {}
    for field in ElementTree.fromstring(pdml).iter("field"):
        name = field.get("name", "")
        if name.startswith("dns."):
            start = int(field.get("pos", "0"))
            spans.setdefault(name, set()).add((start, start + int(field.get("size", "0"))))
    layers = dissect(data, RAW)
    assert {(n.offset, n.end) for n in layers.names} == set().union(*(spans[f] for f in NAME_FIELDS))
    assert {(o, o + 4) for o in layers.ipv4[2:]} == spans["dns.a"]
    assert {(o, o + 16) for o in layers.ipv6} == spans["dns.aaaa"]
    assert {(p.offset, p.offset + p.size) for p in layers.prefixes} == (
        spans["dns.opt.client.addr4"] | spans["dns.opt.client.addr6"])


def test_query_name_offsets_from_scapy() -> None:
    question = DNSQR(qname="host.example.org", qtype="AAAA")
    data = udp(DNS(rd=1, qd=question))
    layers = dissect(data, RAW)
    assert layers.names == (Name(UDP_START + 12, UDP_START + 12 + len(bytes(question)) - 4, UDP_START),)
    assert layers.cut is None and layers.payload == len(data)


def test_direct_call_on_a_bare_message() -> None:
    message = bytes(DNS(qr=1, qd=DNSQR(qname="a.example"), an=DNSRR(rrname="a.example", rdata="192.0.2.9")))
    b = Builder(message)
    dns.dns_udp(b, 0, b.end)
    assert [n.base for n in b.names] == [0, 0] and b.ipv4 == [len(message) - 4]
    assert b.cut is None and b.payload == len(message)


def test_client_subnet_prefix_lengths() -> None:
    options = [EDNS0ClientSubnet(source_plen=20, address="203.0.112.0"),
               EDNS0ClientSubnet(family=2, source_plen=0, address="::"),
               EDNS0ClientSubnet(family=2, source_plen=128, address="2001:db8::7")]
    data = udp(DNS(qd=DNSQR(qname="example.com"), ar=DNSRROPT(rdata=options)))
    layers = dissect(data, RAW)
    assert layers.cut is None
    assert [(p.size, p.family, p.length) for p in layers.prefixes] == [(3, 4, 20), (16, 16, 128)]
    assert data[layers.prefixes[0].offset:layers.prefixes[0].offset + 3] == bytes([203, 0, 112])


def _client_subnet(family: int, source: int, address: bytes) -> bytes:
    """A query whose OPT record holds one client subnet option, written octet by octet."""
    option = struct.pack("!HHHBB", 8, 4 + len(address), family, source, 0) + address
    return bytes(DNS(qd=DNSQR(qname="example.com"), arcount=1)) + record(b"\x00", 41, option)


@pytest.mark.parametrize(("family", "source", "address"), [
    (1, 24, b"\xc6\x33"),  # fewer octets than the prefix needs
    (1, 16, b"\xc6\x33\x64"),  # more
    (1, 33, b"\xc6\x33\x64\x01\x00"),  # longer than an IPv4 address
    (2, 129, bytes(17)),
    (3, 8, b"\x0a"),  # no such family
    (1, 20, b"\xcb\x00\x71"),  # bits set past the prefix
], ids=["short", "long", "v4-over-32", "v6-over-128", "family", "stray-bits"])
def test_malformed_client_subnet_is_cut_at_the_option(family: int, source: int, address: bytes) -> None:
    message = _client_subnet(family, source, address)
    data = udp(message)
    layers = dissect(data, RAW)
    option = UDP_START + len(message) - len(address) - 8
    assert (layers.parsed_to, layers.cut) == (option, "DNS EDNS option 8 malformed")
    assert layers.prefixes == () and layers.names[-1] == Name(option - 11, option - 10, UDP_START)


def test_cookie_option_is_cut_after_the_options_before_it() -> None:
    options = [EDNS0ClientSubnet(source_plen=24, address="198.51.100.0"), EDNS0COOKIE(client_cookie=b"c" * 8),
               EDNS0PADDING(padding=b"\x00" * 4)]
    data = udp(DNS(qd=DNSQR(qname="example.com"), ar=DNSRROPT(rdata=options)))
    layers = dissect(data, RAW)
    cookie = len(data) - 8 - 12
    assert (layers.parsed_to, layers.cut) == (cookie, "DNS EDNS option 10 not dissected")
    assert layers.prefixes == (Prefix(cookie - 3, 3, 4, 24),)


def test_keepalive_of_a_wrong_length_is_cut() -> None:
    data = udp(DNS(qd=DNSQR(qname="example.com"), ar=DNSRROPT(rdata=[EDNS0TLV(optcode=11, optdata=b"\x00")])))
    layers = dissect(data, RAW)
    assert (layers.parsed_to, layers.cut) == (len(data) - 5, "DNS EDNS option 11 malformed")


def test_txt_record_is_cut_at_its_data() -> None:
    response = DNS(qr=1, qd=DNSQR(qname="a.example", qtype="TXT"), an=[
        DNSRR(rrname="a.example", rdata="192.0.2.1"),
        DNSRR(rrname="a.example", type="TXT", rdata=["user=alice"]),
        DNSRR(rrname="a.example", rdata="192.0.2.2"),
    ])
    data = udp(response, sport=53, dport=40000)
    layers = dissect(data, RAW)
    txt = data.index(b"\x0auser=alice")  # the record data: a length octet, then the text
    assert (layers.parsed_to, layers.cut) == (txt, "DNS record type 16 data not dissected")
    assert layers.ipv4[2:] == (data.index(socket.inet_aton("192.0.2.1")),)
    assert decoded(data, layers) == ["a.example."] * 3


def test_tcp_message_with_length_prefix() -> None:
    data = tcp(dns_compress(full_response()), sport=53)
    assert struct.unpack_from("!H", data, 40)[0] == len(data) - TCP_START
    layers = dissect(data, RAW)
    assert layers.cut is None and layers.payload == len(data)
    assert decoded(data, layers) == FULL_NAMES and {n.base for n in layers.names} == {TCP_START}
    assert len(layers.ipv4) == 3 and len(layers.ipv6) == 1 and len(layers.prefixes) == 2


@pytest.mark.parametrize("segment", [
    struct.pack("!H", 29) + bytes(DNS(qd=DNSQR(qname="example.com"))) * 2,  # two messages
    struct.pack("!H", 4) + bytes(DNS(qd=DNSQR(qname="example.com"))),  # a message's end and more
    b"\x00",  # one byte: no whole length prefix
], ids=["two-messages", "continuation", "one-byte"])
def test_tcp_segment_that_is_not_one_message_is_cut(segment: bytes) -> None:
    layers = dissect(tcp(segment), RAW)
    assert (layers.parsed_to, layers.cut) == (40, "DNS over TCP segment is not one message")
    assert layers.names == ()


def test_tcp_message_longer_than_the_segment_is_parsed_as_far_as_captured() -> None:
    answer = DNSRR(rrname="example.com", rdata="192.0.2.1")
    message = bytes(DNS(qr=1, qd=DNSQR(qname="example.com"), an=answer))
    data = tcp(struct.pack("!H", len(message) + 100) + message)
    layers = dissect(data, RAW)
    assert layers.cut is None and layers.payload == len(data) and len(layers.names) == 2
    assert data[layers.ipv4[-1]:layers.ipv4[-1] + 4] == socket.inet_aton("192.0.2.1")


def test_direct_tcp_call() -> None:
    message = bytes(DNS(qd=DNSQR(qname="example.com")))
    b = Builder(struct.pack("!H", len(message)) + message)
    dns.dns_tcp(b, 0, b.end)
    assert b.names == [Name(14, 14 + 13, 2)] and b.cut is None


def test_mdns_response_with_cache_flush_and_txt_cut() -> None:
    response = DNS(qr=1, aa=1, qd=[], an=[
        DNSRR(rrname="_ipp._tcp.local", type="PTR", rdata="printer._ipp._tcp.local"),
        DNSRRSRV(rrname="printer._ipp._tcp.local", cacheflush=1, target="printer.local", port=631),
        DNSRR(rrname="printer.local", type="A", cacheflush=1, rdata="192.168.1.20"),
        DNSRR(rrname="printer.local", type="AAAA", cacheflush=1, rdata="fe80::20"),
        DNSRR(rrname="printer._ipp._tcp.local", type="TXT", cacheflush=1, rdata=["rp=ipp/print"]),
    ])
    data = udp(dns_compress(response), sport=5353, dport=5353)
    layers = dissect(data, RAW)
    assert layers.cut == "DNS record type 16 data not dissected" and layers.parsed_to == len(data) - 13
    service, host = "printer._ipp._tcp.local.", "printer.local."
    assert decoded(data, layers) == ["_ipp._tcp.local.", service, service, host, host, host, service]
    assert data[layers.ipv4[2]:layers.ipv4[2] + 4] == socket.inet_aton("192.168.1.20")
    assert data[layers.ipv6[0]:layers.ipv6[0] + 16] == socket.inet_pton(socket.AF_INET6, "fe80::20")


def test_mdns_question_with_unicast_response_bit() -> None:
    query = DNS(qd=[DNSQR(qname="_ipp._tcp.local", qtype="PTR", unicastresponse=1),
                    DNSQR(qname="printer.local", qtype="A", unicastresponse=1)])
    data = bytes(IPv6(src="fe80::1", dst="ff02::fb") / UDP(sport=5353, dport=5353) / query)
    layers = dissect(data, RAW)
    assert layers.cut is None and decoded(data, layers) == ["_ipp._tcp.local.", "printer.local."]
    assert data[48 + 12 + 17 + 2] & 0x80  # the class's top bit is set


@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
def test_llmnr_query(transport: Transport) -> None:
    data = transport(DNS(qd=DNSQR(qname="workstation7")), 40000, 5355)
    layers = dissect(data, RAW)
    assert layers.cut is None and decoded(data, layers) == ["workstation7."]


def test_ports_registered() -> None:
    assert set(dns.UDP_PORTS) == {53, 5353, 5355} and set(dns.TCP_PORTS) == {53, 5355}
    assert not (dns.LINKS or dns.ETHERTYPES or dns.IP_PROTOCOLS)


def test_other_opcodes_are_cut_at_the_header() -> None:
    update = DNS(opcode=5, qd=DNSQR(qname="example.com", qtype="SOA"),
                 ns=DNSRR(rrname="host.example.com", rdata="192.0.2.7"))
    layers = dissect(udp(update), RAW)
    assert (layers.parsed_to, layers.cut) == (UDP_START, "DNS header not dissected")
    assert layers.names == () and layers.ipv4 == (12, 16)


def test_short_header_is_cut() -> None:
    layers = dissect(udp(header()[:11]), RAW)
    assert (layers.parsed_to, layers.cut) == (UDP_START, "DNS header cut short")


def test_data_after_the_message_is_cut() -> None:
    message = bytes(DNS(qd=DNSQR(qname="example.com")))
    layers = dissect(udp(message + b"trailing secret"), RAW)
    assert (layers.parsed_to, layers.cut) == (UDP_START + len(message), "data after the DNS message")


def test_counts_larger_than_the_data_end_where_the_data_ends() -> None:
    data = udp(header(questions=500, answers=900) + b"\x01a\x00\x00\x01\x00\x01")
    layers = dissect(data, RAW)
    assert layers.cut is None and layers.payload == len(data) and len(layers.names) == 1


QUESTION = b"\x03www\x07example\x03com\x00"  # at message offset 12


@pytest.mark.parametrize(("message", "at", "reason"), [
    (header() + b"\xc0\x0c\x00\x01\x00\x01", 12, "DNS name malformed"),  # points at itself
    (header(2) + b"\x01a\xc0\x14\x00\x01\x00\x01" + QUESTION + b"\x00\x01\x00\x01", 12,
     "DNS name malformed"),  # points forward
    (header() + b"\xc0\x02\x00\x01\x00\x01", 12, "DNS name malformed"),  # into the header
    (header() + b"\x01a\xc3\xff\x00\x01\x00\x01", 12, "DNS name malformed"),  # past the end
    (header(2) + QUESTION + b"\x00\x01\x00\x01\xc0\x0d\x00\x01\x00\x01", 33,
     "DNS name malformed"),  # into the middle of a label
    (header(1, 2) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 1, b"\x01b\x00\x00")
     + record(b"\xc0\x2d", 1, b"\x01\x02\x03\x04"), 49, "DNS name malformed"),  # into an address
    (header() + b"\x41abc\x00\x00\x01\x00\x01", 12, "DNS name malformed"),  # label type 0x40
    (header() + b"\x81abc\x00\x00\x01\x00\x01", 12, "DNS name malformed"),  # label type 0x80
    (header() + (b"\x3f" + b"x" * 63) * 4 + b"\x00\x00\x01\x00\x01", 12, "DNS name malformed"),  # 257
    (header() + b"\x03www\x3fabc", 12, "DNS name cut short"),  # label runs past the end
    (header() + b"\x03www\xc0", 12, "DNS name cut short"),  # pointer cut in half
    (header() + b"\x03www", 12, "DNS name cut short"),  # no terminator
    (header() + QUESTION + b"\x00\x01\x00", 29, "DNS question cut short"),
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01\xc0\x0c" + bytes(8), 35, "DNS record cut short"),
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 1, b"\x01\x02\x03\x04\x05"), 45,
     "DNS record type 1 data malformed"),  # data length 5 for an address
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 1, b"\x01\x02\x03\x04", 9), 45,
     "DNS record type 1 data cut short"),  # data length past the end
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 28, bytes(15)), 45,
     "DNS record type 28 data malformed"),
    (header(1, 2) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 5, b"\x01x\xc0\x0c", 3)
     + record(b"\xc0\x0c", 1, bytes(4)), 45, "DNS record type 5 data malformed"),  # name past data
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 15, b"\x00\x0a\xc0\x0c\x00"), 45,
     "DNS record type 15 data malformed"),  # octet left over after the name
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 6, b"\xc0\x0c\xc0\x0c" + bytes(19)),
     45, "DNS record type 6 data malformed"),
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 47, b"\xc0\x0c\x00\x21" + bytes(33)),
     45, "DNS record type 47 data malformed"),  # bitmap window longer than 32
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 41, b"\x00\x0c\x00\x09abc"), 45,
     "DNS record type 41 data malformed"),  # option longer than the data
    (header(1, 1) + QUESTION + b"\x00\x01\x00\x01" + record(b"\xc0\x0c", 13, b"\x01a\x01b"), 45,
     "DNS record type 13 data not dissected"),  # HINFO
], ids=[
    "self-pointer", "forward-pointer", "into-header", "past-end", "mid-label", "into-rdata", "label-0x40",
    "label-0x80", "over-255", "label-past-end", "half-pointer", "no-terminator", "question-short",
    "record-short", "a-long", "a-past-end", "aaaa-short", "cname-past-data", "mx-left-over", "soa-short",
    "nsec-window", "opt-option-long", "hinfo",
])
def test_malformed_message_is_cut(message: bytes, at: int, reason: str) -> None:
    data = udp(message)
    layers = dissect(data, RAW)
    assert (layers.parsed_to, layers.cut) == (UDP_START + at, reason)
    assert all(name.end <= layers.parsed_to for name in layers.names)
    assert all(offset + 4 <= layers.parsed_to for offset in layers.ipv4)
    assert all(offset + 16 <= layers.parsed_to for offset in layers.ipv6)
    b = Builder(message)
    dns.dns_udp(b, 0, b.end)
    assert (b.end, b.cut) == (at, reason)


def test_pointer_to_an_earlier_label_start_is_accepted() -> None:
    message = header(2) + QUESTION + b"\x00\x01\x00\x01" + b"\x04mail\xc0\x10\x00\x01\x00\x01"
    data = udp(message)
    layers = dissect(data, RAW)
    assert layers.cut is None and decoded(data, layers) == ["www.example.com.", "mail.example.com."]


def test_name_of_exactly_255_octets_is_accepted() -> None:
    name = (b"\x3f" + b"x" * 63) * 3 + b"\x3d" + b"y" * 61 + b"\x00"
    assert len(name) == 255
    layers = dissect(udp(header() + name + b"\x00\x01\x00\x01"), RAW)
    assert layers.cut is None and layers.names == (Name(UDP_START + 12, UDP_START + 12 + 255, UDP_START),)


def test_chain_of_pointers_is_cut_when_the_name_passes_255_octets() -> None:
    # record i at 19 + 16 i: its CNAME data at 31 + 16 i is "x" and a pointer to record i - 1's,
    # so it decodes to 5 + 2 i octets: record 126 is the first whose name passes 255
    records = b"".join(record(b"\xc0\x0c", 5, b"\x01x" + struct.pack("!H", 0xC000 | (31 + 16 * (i - 1) if i
                                                                                     else 12)))
                       for i in range(200))
    layers = dissect(udp(header(1, 200) + b"\x01a\x00\x00\x01\x00\x01" + records), RAW)
    assert (layers.parsed_to, layers.cut) == (UDP_START + 31 + 16 * 126, "DNS name malformed")
    assert len(layers.names) == 1 + 2 * 126 + 1


def test_64_kib_of_pointers_is_dissected_whole() -> None:
    count = (65507 - 12 - 7) // 14
    message = header(1, count) + b"\x01a\x00\x00\x05\x00\x01" + record(b"\xc0\x0c", 5, b"\xc0\x0c") * count
    data = udp(message)
    layers = dissect(data, RAW)
    assert layers.cut is None and layers.payload == len(data) and len(layers.names) == 1 + 2 * count


def _invariants(data: bytes, layers: Layers) -> None:
    assert layers.payload <= layers.parsed_to <= len(data)
    cut = layers.cut or ""
    assert not cut.startswith("DNS") or REASONS.fullmatch(cut), cut
    for name in layers.names:
        assert name.end <= layers.parsed_to
        decode(data[:layers.parsed_to], name.offset, name.base)
    assert all(offset + 4 <= layers.parsed_to for offset in layers.ipv4)
    assert all(offset + 16 <= layers.parsed_to for offset in layers.ipv6)
    assert all(p.offset + p.size <= layers.parsed_to for p in layers.prefixes)


@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
def test_message_truncated_at_every_byte(transport: Transport) -> None:
    data = transport(dns_compress(full_response()), 53, 40000)
    whole = dissect(data, RAW)
    for size in range(len(data)):
        layers = dissect(data[:size], RAW)
        _invariants(data, layers)
        assert layers.parsed_to <= size
        assert layers.names == whole.names[:len(layers.names)]
        assert layers.ipv4 == whole.ipv4[:len(layers.ipv4)] and layers.ipv6 == whole.ipv6[:len(layers.ipv6)]
        assert layers.prefixes == whole.prefixes[:len(layers.prefixes)]


def test_message_declared_shorter_by_the_udp_and_ip_lengths() -> None:
    message = bytes(dns_compress(full_response()))
    for size in range(0, len(message), 7):
        data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=40000) / message[:size]) \
            + message[size:]
        layers = dissect(data, RAW)
        _invariants(data, layers)
        assert layers.parsed_to <= UDP_START + size


def test_random_damage_never_raises() -> None:
    generator = random.Random(1035)
    frames = [bytearray(udp(dns_compress(full_response()), 53, 40000)),
              bytearray(tcp(full_response(), 53, 40000))]
    for _ in range(3000):
        data = bytearray(generator.choice(frames))
        for _ in range(generator.randint(1, 4)):
            position = generator.randrange(UDP_START, len(data))
            data[position] = generator.choice((0, 1, 0x3F, 0x40, 0xC0, 0xFF, generator.randrange(256)))
        layers = dissect(bytes(data), RAW)
        _invariants(bytes(data), layers)
