"""DHCP, BOOTP and DHCPv6: every address, MAC and name recorded by offset; what is not understood cut."""

from __future__ import annotations

import shutil
import socket
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DUID_EN,
    DUID_LL,
    DUID_LLT,
    DUID_UUID,
    DHCP6_RelayForward,
    DHCP6_Reply,
    DHCP6_Solicit,
    DHCP6OptClientFQDN,
    DHCP6OptClientId,
    DHCP6OptClientLinkLayerAddr,
    DHCP6OptDNSDomains,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIA_PD,
    DHCP6OptIA_TA,
    DHCP6OptIAAddress,
    DHCP6OptIAPrefix,
    DHCP6OptInfoRefreshTime,
    DHCP6OptOptReq,
    DHCP6OptPref,
    DHCP6OptRapidCommit,
    DHCP6OptReconfAccept,
    DHCP6OptRelayMsg,
    DHCP6OptServerId,
    DHCP6OptSIPDomains,
    DHCP6OptSIPServers,
    DHCP6OptSNTPServers,
    DHCP6OptStatusCode,
    DHCP6OptUnknown,
    DHCP6OptVendorClass,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from anontrace.packet.dhcp import UDP_PORTS, dhcp, dhcpv6
from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Builder, Layers
from anontrace.packet.link import MAX_DEPTH

ETHERNET = 1
V4, V6 = 42, 62  # where the UDP data starts in Ethernet/IPv4/UDP and Ethernet/IPv6/UDP
MAC = "02:00:5e:10:20:30"
MAC_BYTES = bytes.fromhex(MAC.replace(":", ""))
COOKIE = bytes((99, 130, 83, 99))
FQDN_WIRE = b"\x04host\x07example\x03com\x00"


def frame4(message: Packet | bytes) -> bytes:
    return bytes(
        Ether(src="00:11:22:33:44:55", dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=68, dport=67) / message
    )


def frame6(message: Packet | bytes, port: int = 547) -> bytes:
    return bytes(
        Ether(src="00:11:22:33:44:55", dst="33:33:00:01:00:02")
        / IPv6(src="fe80::1", dst="ff02::1:2") / UDP(sport=546, dport=port) / message
    )


def bootp(**fields: Any) -> Packet:
    fields.setdefault("chaddr", MAC_BYTES)
    return BOOTP(**fields)


def ipv4s(data: bytes, layers: Layers) -> list[str]:
    return [socket.inet_ntop(socket.AF_INET, data[o:o + 4]) for o in layers.ipv4]


def ipv6s(data: bytes, layers: Layers) -> list[str]:
    return [socket.inet_ntop(socket.AF_INET6, data[o:o + 16]) for o in layers.ipv6]


def macs(data: bytes, layers: Layers) -> list[str]:
    return [data[o:o + 6].hex(":") for o in layers.macs]


def names(data: bytes, layers: Layers) -> list[tuple[bytes, bool]]:
    """Each name's bytes, and whether it is wire format whose base is its own start."""
    return [(data[n.offset:n.end], n.base == n.offset) for n in layers.names]


def direct(parser: object, message: bytes) -> Layers:
    """Call a port's parser on the message alone, as the UDP dispatcher would."""
    b = Builder(message)
    assert callable(parser)
    parser(b, 0, len(message))
    return b.freeze()


def assert_within(layers: Layers) -> None:
    """Nothing recorded lies past what is kept."""
    assert 0 <= layers.payload <= layers.parsed_to
    fields = [(o, 4) for o in layers.ipv4] + [(o, 16) for o in layers.ipv6] + [(o, 6) for o in layers.macs]
    fields += [(p.offset, p.size) for p in layers.prefixes]
    fields += [(n.offset, n.end - n.offset) for n in layers.names]
    assert all(offset + size <= layers.parsed_to for offset, size in fields)


# DHCPv4 ---------------------------------------------------------------------------------------------

RICH_OPTIONS: list[object] = [
    ("message-type", "ack"),
    "pad",
    ("subnet_mask", "255.255.255.0"),
    ("router", "10.1.0.1", "10.1.0.2"),
    ("name_server", "192.0.2.53", "192.0.2.54"),
    ("time_server", "192.0.2.7"),
    ("log_server", "192.0.2.8"),
    ("NTP_server", "192.0.2.9"),
    ("NetBIOS_server", "192.0.2.10"),
    ("broadcast_address", "10.1.255.255"),
    ("router-solicitation-address", "10.1.0.3"),
    ("server_id", "10.1.0.254"),
    ("subnet-selection", "10.1.0.0"),
    (5, b"\xc0\x00\x02\x0b"),  # IEN 116 name server
    ("requested_addr", "10.1.2.3"),
    ("hostname", b"laptop-42"),
    ("domain", b"corp.example"),
    ("client_id", b"\x01" + MAC_BYTES),
    ("client_FQDN", b"\x05\x00\x00" + FQDN_WIRE),
    ("lease_time", 3600),
    ("renewal_time", 1800),
    ("rebinding_time", 3000),
    ("param_req_list", [1, 3, 6, 15]),
    ("max_dhcp_size", 1500),
    ("interface-mtu", 1500),
    ("time_zone", 0),
    ("boot-size", 8),
    ("ip-forwarding", 0),
    ("default_ttl", 64),
    "end",
    "pad",
    "pad",
]
RICH_ADDRESSES = [
    "10.1.0.1", "10.1.0.2", "192.0.2.53", "192.0.2.54", "192.0.2.7", "192.0.2.8", "192.0.2.9", "192.0.2.10",
    "10.1.255.255", "10.1.0.3", "10.1.0.254", "10.1.0.0", "192.0.2.11", "10.1.2.3",
]


def rich4() -> bytes:
    fixed = bootp(op=2, ciaddr="10.1.1.1", yiaddr="10.1.1.2", siaddr="10.1.1.3", giaddr="10.1.1.4",
                  sname=b"tftp.example", file=b"pxelinux.0")
    return frame4(fixed / DHCP(options=RICH_OPTIONS))


def option_spans4(first: int) -> list[tuple[int, int]]:
    """Where each of RICH_OPTIONS lies, as scapy encodes them one at a time."""
    spans, pos = [], first
    for option in RICH_OPTIONS:
        size = len(bytes(DHCP(options=[option])))
        spans.append((pos, pos + size))
        pos += size
    return spans


def test_dhcp_records_every_address_mac_and_name() -> None:
    data = rich4()
    layers = dissect(data, ETHERNET)
    assert ipv4s(data, layers) == ["10.0.0.1", "10.0.0.2", "10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4",
                                   *RICH_ADDRESSES]
    assert macs(data, layers) == ["ff:ff:ff:ff:ff:ff", "00:11:22:33:44:55", MAC, MAC]
    assert layers.macs[2] == V4 + 28
    assert names(data, layers) == [(b"tftp.example", False), (b"pxelinux.0", False), (b"laptop-42", False),
                                   (b"corp.example", False), (FQDN_WIRE, True)]
    assert [n.base for n in layers.names[:4]] == [-1] * 4
    assert layers.cut is None and layers.payload == layers.parsed_to == len(data)


def test_dhcp_is_dispatched_on_both_ports_and_directly() -> None:
    assert UDP_PORTS[67] is UDP_PORTS[68] is dhcp and UDP_PORTS[546] is UDP_PORTS[547] is dhcpv6
    data = rich4()
    full = dissect(data, ETHERNET)
    alone = direct(dhcp, data[V4:])
    assert [o + V4 for o in alone.ipv4] == list(full.ipv4[2:])
    assert [o + V4 for o in alone.macs] == list(full.macs[2:])
    assert alone.payload == alone.parsed_to == len(data) - V4 and alone.cut is None
    server = bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=67, dport=68)
                   / bootp(yiaddr="10.9.9.9") / DHCP(options=[("message-type", "offer"), "end"]))
    assert ipv4s(server, dissect(server, ETHERNET))[2:4] == ["0.0.0.0", "10.9.9.9"]


def test_dhcp_ascii_fqdn_is_plain_text() -> None:
    data = frame4(bootp() / DHCP(options=[("client_FQDN", b"\x01\x00\x00host.example.com"), "end"]))
    layers = dissect(data, ETHERNET)
    assert names(data, layers) == [(b"host.example.com", False)] and layers.names[0].base == -1
    assert layers.cut is None


@pytest.mark.parametrize(("fqdn", "reason"), [
    (b"\x04\x00\x00\x04host\xc0\x0c", "DHCP client FQDN name not dissected"),  # compression pointer
    (b"\x04\x00\x00\x04host\x07example", "DHCP client FQDN name not dissected"),  # no root label
    (b"\x04\x00\x00\x09host\x00", "DHCP client FQDN name not dissected"),  # label past the option
    (b"\x04\x00\x00\x04host\x00\x00", "DHCP client FQDN name not dissected"),  # bytes after the name
    (b"\x04\x00", "DHCP option 81 malformed"),
])
def test_dhcp_bad_fqdn_is_cut_at_the_option(fqdn: bytes, reason: str) -> None:
    data = frame4(bootp() / DHCP(options=[("message-type", "request"), ("client_FQDN", fqdn), "end"]))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == V4 + 240 + 3 and layers.cut == reason and layers.names == ()


def test_dhcp_empty_wire_fqdn_is_understood() -> None:
    data = frame4(bootp() / DHCP(options=[("client_FQDN", b"\x04\x00\x00"), "end"]))
    layers = dissect(data, ETHERNET)
    assert layers.cut is None and layers.names == ()


@pytest.mark.parametrize(("option", "reason"), [
    (("vendor_class_id", b"MSFT 5.0"), "DHCP option 60 not dissected"),
    ((82, b"\x01\x04port"), "DHCP option 82 not dissected"),
    ((119, b"\x07example\x00"), "DHCP option 119 not dissected"),
    ((43, b"\x01\x02ab"), "DHCP option 43 not dissected"),
    (("client_id", b"\xff" + bytes(13)), "DHCP client identifier type 255 not dissected"),
    (("client_id", b"\x00abc"), "DHCP client identifier type 0 not dissected"),
    (("client_id", b"\x01" + MAC_BYTES + b"\x00"), "DHCP client identifier type 1 not dissected"),
    (("client_id", b"\x01"), "DHCP option 61 malformed"),
    ((6, b"\x01\x02\x03\x04\x05"), "DHCP option 6 malformed"),
    ((54, b"\x01\x02"), "DHCP option 54 malformed"),
    ((1, b"\xff\xff\xff\x00" + MAC_BYTES), "DHCP option 1 of 10 bytes, not 4"),
    ((57, b"\x05"), "DHCP option 57 of 1 bytes, not 2"),
])
def test_dhcp_option_not_understood_is_cut_there(option: object, reason: str) -> None:
    options = [("message-type", "request"), ("requested_addr", "10.1.2.3"), option, ("hostname", b"h"), "end"]
    data = frame4(bootp() / DHCP(options=options))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == layers.payload == V4 + 240 + 3 + 6 and layers.cut == reason
    assert ipv4s(data, layers)[-1] == "10.1.2.3" and layers.names == ()


def test_a_damaged_length_cannot_hide_identifiers_in_a_kept_option() -> None:
    """Seen with a bit flip in a real capture: the message-type option's length 1 became 0, so
    its value byte read as option 1 (subnet mask) whose "length" swallowed the client id and host
    name. A kept option of the wrong size is cut, with all that follows."""
    whole = bytes(DHCP(options=[("message-type", "request"), ("client_id", b"\x01" + MAC_BYTES),
                                ("hostname", b"alice-laptop"), "end"]))
    damaged = whole.replace(b"\x35\x01\x03", b"\x35\x00\x01", 1)
    data = frame4(bootp() / Raw(COOKIE + damaged))
    layers = dissect(data, ETHERNET)
    assert layers.cut == "DHCP option 53 of 0 bytes, not 1"
    assert layers.parsed_to == V4 + 240
    assert macs(data, layers) == ["ff:ff:ff:ff:ff:ff", "00:11:22:33:44:55", MAC]  # chaddr, not client id
    assert layers.names == ()


def test_dhcp_overload_cuts_at_sname() -> None:
    options = [("message-type", "ack"), ("router", "10.1.0.1"), ("hostname", b"h"),
               ("dhcp-option-overload", 3), ("server_id", "10.1.0.254"), "end"]
    data = frame4(bootp(ciaddr="10.1.1.1", sname=b"\x0c\x01h\xff", file=b"x") / DHCP(options=options))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == layers.payload == V4 + 44
    assert layers.cut == "DHCP options overloading sname and file not dissected"
    assert ipv4s(data, layers)[2:] == ["10.1.1.1", "0.0.0.0", "0.0.0.0", "0.0.0.0"]
    assert layers.names == () and macs(data, layers)[2:] == [MAC]


@pytest.mark.parametrize(("field", "offset"), [("sname", 44), ("file", 108)])
def test_dhcp_text_field_with_data_after_its_text_is_cut(field: str, offset: int) -> None:
    data = frame4(bootp(**{field: b"name\x00secret"}) / DHCP(options=[("message-type", "ack"), "end"]))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == V4 + offset and layers.cut == f"DHCP {field} field holds more than text"


def test_dhcp_text_field_filling_its_field_is_a_name() -> None:
    data = frame4(bootp(sname=b"s" * 64, file=b"f" * 128) / DHCP(options=["end"]))
    layers = dissect(data, ETHERNET)
    assert names(data, layers) == [(b"s" * 64, False), (b"f" * 128, False)] and layers.cut is None


@pytest.mark.parametrize(("htype", "hlen"), [(6, 6), (1, 16), (32, 0), (0, 0)])
def test_dhcp_other_hardware_is_cut_at_chaddr(htype: int, hlen: int) -> None:
    data = frame4(bootp(htype=htype, hlen=hlen, ciaddr="10.1.1.1") / DHCP(options=["end"]))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == V4 + 28 and layers.cut == f"DHCP hardware address type {htype} not dissected"
    assert ipv4s(data, layers)[2] == "10.1.1.1" and len(layers.macs) == 2


def test_bootp_without_cookie_ends_its_header_before_the_vendor_area() -> None:
    data = frame4(bootp(ciaddr="10.1.1.1", options=b"vendor data" + bytes(53)))
    layers = dissect(data, ETHERNET)
    assert layers.payload == V4 + 236 and layers.parsed_to == len(data) and layers.cut is None
    assert len(layers.ipv4) == 6 and len(layers.macs) == 3


def test_dhcp_data_after_the_end_option_is_cut() -> None:
    data = frame4(bootp() / DHCP(options=[("message-type", "ack"), "end"]) / Raw(b"\x00\x00secret"))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == layers.payload == V4 + 240 + 3 + 1 + 2
    assert layers.cut == "DHCP data after the end option"


def test_dhcp_without_end_option_is_understood_to_the_end() -> None:
    data = frame4(bootp() / DHCP(options=[("message-type", "ack"), ("router", "10.1.0.1")]))
    layers = dissect(data, ETHERNET)
    assert layers.cut is None and layers.payload == len(data) and ipv4s(data, layers)[-1] == "10.1.0.1"


def test_dhcp_option_length_past_the_end_is_cut_at_every_option() -> None:
    data = rich4()
    for start, _ in option_spans4(V4 + 240):
        if data[start] in (0, 255):
            continue
        lying = bytearray(data)
        lying[start + 1] = len(data) - start - 1  # one byte more than the frame holds
        layers = dissect(bytes(lying), ETHERNET)
        assert (layers.parsed_to, layers.cut) == (start, "DHCP option cut short"), start
        assert_within(layers)


def expected_cut4(n: int) -> int:
    """Where a DHCP frame cut by the capture at `n` bytes must be cut: inside a field that cannot
    be kept in part (an address, a MAC, an option), at its start."""
    atoms = [(V4 + f, V4 + f + 4) for f in (12, 16, 20, 24)] + [(V4 + 28, V4 + 34)] + option_spans4(V4 + 240)
    return next((start for start, end in atoms if start < n < end), n)


def test_dhcp_cut_by_the_capture_at_every_byte() -> None:
    data = rich4()
    full = dissect(data, ETHERNET)
    for n in range(len(data)):
        layers = dissect(data[:n], ETHERNET)
        assert_within(layers)
        assert layers.ipv4 == tuple(o for o in full.ipv4 if o + 4 <= layers.parsed_to)
        assert layers.macs == tuple(o for o in full.macs if o + 6 <= layers.parsed_to)
        if n >= V4:
            assert layers.parsed_to == expected_cut4(n), n
            assert layers.cut in (None, "DHCP header cut short", "DHCP option cut short"), n
        alone = direct(dhcp, data[V4:n])
        assert_within(alone)


def test_dhcp_text_fields_cut_by_the_capture_keep_the_text_present() -> None:
    data = rich4()[:V4 + 44 + 4]
    layers = dissect(data, ETHERNET)
    assert names(data, layers) == [(b"tftp", False)] and layers.parsed_to == len(data)


def test_dhcp_parser_never_raises_on_noise() -> None:
    data = rich4()
    for seed in range(200):
        noisy = bytearray(data)
        for k in range(8):
            noisy[V4 + (seed * 7919 + k * 104729) % (len(data) - V4)] = (seed * 31 + k * 17) % 256
        assert_within(dissect(bytes(noisy), ETHERNET))


# DHCPv6 ---------------------------------------------------------------------------------------------

def solicit() -> Packet:
    return (
        DHCP6_Solicit(trid=0x123456)
        / DHCP6OptClientId(duid=DUID_LLT(lladdr=MAC, timeval=12345))
        / DHCP6OptElapsedTime()
        / DHCP6OptRapidCommit()
        / DHCP6OptOptReq(reqopts=[23, 24])
        / DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr="2001:db8::10",
                                                             iaaddropts=[DHCP6OptStatusCode(statuscode=0)])])
        / DHCP6OptIA_TA(iaid=8, iataopts=[DHCP6OptIAAddress(addr="2001:db8::11")])
        / DHCP6OptIA_PD(iaid=9, iapdopt=[DHCP6OptIAPrefix(prefix="2001:db8:100::", plen=56),
                                         DHCP6OptStatusCode()])
        / DHCP6OptClientFQDN(flags=1, fqdn="host.example.com")
        / DHCP6OptReconfAccept()
        / DHCP6OptUnknown(optcode=82, data=b"\x00\x00\x00\x3c")
    )


def reply() -> Packet:
    return (
        DHCP6_Reply(trid=0x654321)
        / DHCP6OptServerId(duid=DUID_LL(lladdr="02:00:00:00:00:99"))
        / DHCP6OptClientId(duid=DUID_LLT(lladdr=MAC))
        / DHCP6OptPref(prefval=255)
        / DHCP6OptDNSServers(dnsservers=["2001:db8::53", "2001:db8::54"])
        / DHCP6OptDNSDomains(dnsdomains=["example.com", "corp.example.org"])
        / DHCP6OptSIPServers(sipservers=["2001:db8::5060"])
        / DHCP6OptSIPDomains(sipdomains=["sip.example.com"])
        / DHCP6OptSNTPServers(sntpservers=["2001:db8::123"])
        / DHCP6OptInfoRefreshTime()
        / DHCP6OptStatusCode(statuscode=0)
    )


def test_dhcpv6_solicit_records_duid_addresses_prefix_and_name() -> None:
    data = frame6(solicit())
    layers = dissect(data, ETHERNET)
    assert ipv6s(data, layers) == ["fe80::1", "ff02::1:2", "2001:db8::10", "2001:db8::11"]
    assert macs(data, layers)[2:] == [MAC] and layers.macs[2] == V6 + 4 + 4 + 8
    (prefix,) = layers.prefixes
    assert (prefix.size, prefix.family, prefix.length) == (16, 16, 56)
    assert socket.inet_ntop(socket.AF_INET6, data[prefix.offset:prefix.offset + 16]) == "2001:db8:100::"
    assert names(data, layers) == [(FQDN_WIRE, True)]
    assert layers.cut is None and layers.payload == layers.parsed_to == len(data)


def test_dhcpv6_reply_records_servers_and_domain_lists() -> None:
    data = frame6(reply(), port=546)
    layers = dissect(data, ETHERNET)
    assert ipv6s(data, layers)[2:] == ["2001:db8::53", "2001:db8::54", "2001:db8::5060", "2001:db8::123"]
    assert macs(data, layers)[2:] == ["02:00:00:00:00:99", MAC]
    assert names(data, layers) == [(b"\x07example\x03com\x00", True),
                                   (b"\x04corp\x07example\x03org\x00", True),
                                   (b"\x03sip\x07example\x03com\x00", True)]
    assert layers.cut is None and layers.payload == len(data)
    alone = direct(dhcpv6, data[V6:])
    assert [o + V6 for o in alone.ipv6] == list(layers.ipv6[2:]) and alone.payload == len(data) - V6


def relayed(levels: int, inner: Packet, link_layer: bool = True) -> Packet:
    """`levels` relay-forward messages around `inner`, the outermost first, each with the client's
    link-layer address unless `link_layer` is False."""
    message = inner
    for level in reversed(range(levels)):
        relay = DHCP6_RelayForward(hopcount=level, linkaddr=f"2001:db8:{level}::1",
                                   peeraddr=f"fe80::{level + 1}")
        if link_layer:
            relay /= DHCP6OptClientLinkLayerAddr(clladdr=MAC)
        message = relay / DHCP6OptRelayMsg(message=message)
    return message


def test_dhcpv6_relay_forward_records_relay_addresses_and_the_inner_message() -> None:
    data = frame6(relayed(2, solicit()))
    layers = dissect(data, ETHERNET)
    assert ipv6s(data, layers) == ["fe80::1", "ff02::1:2", "2001:db8::1", "fe80::1", "2001:db8:1::1",
                                   "fe80::2", "2001:db8::10", "2001:db8::11"]
    assert macs(data, layers)[2:] == [MAC, MAC, MAC]
    assert layers.ipv6[2:4] == (V6 + 2, V6 + 18)
    assert layers.cut is None and layers.payload == len(data) and len(layers.names) == 1


def test_dhcpv6_relays_nested_up_to_the_cap_are_understood() -> None:
    data = frame6(relayed(MAX_DEPTH, DHCP6_Solicit()))
    layers = dissect(data, ETHERNET)
    assert layers.cut is None and len(layers.ipv6) == 2 + 2 * MAX_DEPTH


def test_dhcpv6_relays_nested_beyond_the_cap_are_cut() -> None:
    packet = frame6(relayed(MAX_DEPTH + 1, DHCP6_Solicit()))
    too_deep = Ether(packet).getlayer(DHCP6OptRelayMsg, nb=MAX_DEPTH + 1)
    assert too_deep is not None
    start = len(packet) - len(bytes(too_deep)) + 4  # the message that option holds
    layers = dissect(packet, ETHERNET)
    assert layers.parsed_to == start
    assert layers.cut == f"DHCPv6 relay message nested more than {MAX_DEPTH} deep"
    assert len(layers.ipv6) == 2 + 2 * (MAX_DEPTH + 1) and layers.payload == start


def test_dhcpv6_thousands_of_nested_relays_never_raise() -> None:
    message = b"\x01\x00\x00\x00"
    for _ in range(1500):
        message = b"\x0c\x00" + bytes(32) + b"\x00\x09" + len(message).to_bytes(2, "big") + message
    layers = direct(dhcpv6, message)
    assert layers.parsed_to == 38 * (MAX_DEPTH + 1) and layers.cut is not None
    assert dissect(frame6(message), ETHERNET).cut == f"DHCPv6 relay message nested more than {MAX_DEPTH} deep"


@pytest.mark.parametrize(("duid", "reason"), [
    (DUID_EN(enterprisenum=9, id=b"secret"), "DHCPv6 DUID type 2 not dissected"),
    (DUID_UUID(uuid=b"u" * 16), "DHCPv6 DUID type 4 not dissected"),
    (DUID_LLT(hwtype=6, lladdr=MAC), "DHCPv6 DUID hardware type 6 not dissected"),
    (DUID_LL(hwtype=32, lladdr=MAC), "DHCPv6 DUID hardware type 32 not dissected"),
    (DUID_LL(lladdr=MAC) / Raw(b"xx"), "DHCPv6 option 1 malformed"),
    (Raw(b"\x00\x03"), "DHCPv6 option 1 malformed"),
])
def test_dhcpv6_bad_duid_is_cut_at_the_option(duid: Packet, reason: str) -> None:
    data = frame6(DHCP6_Solicit() / DHCP6OptElapsedTime() / DHCP6OptClientId(duid=duid)
                  / DHCP6OptRapidCommit())
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == layers.payload == V6 + 4 + 6 and layers.cut == reason
    assert len(layers.macs) == 2


@pytest.mark.parametrize(("option", "reason"), [
    (DHCP6OptVendorClass(), "DHCPv6 option 16 not dissected"),
    (DHCP6OptUnknown(optcode=56, data=b"\x00\x01\x00\x10" + bytes(16)), "DHCPv6 option 56 not dissected"),
    (DHCP6OptIAAddress(addr="2001:db8::1"), "DHCPv6 option 5 not dissected"),
    (DHCP6OptUnknown(optcode=23, data=bytes(17)), "DHCPv6 option 23 malformed"),
    (DHCP6OptUnknown(optcode=3, data=bytes(11)), "DHCPv6 option 3 malformed"),
    (DHCP6OptUnknown(optcode=13, data=b"\x00"), "DHCPv6 option 13 malformed"),
    (DHCP6OptUnknown(optcode=9, data=b""), "DHCPv6 option 9 malformed"),
    (DHCP6OptUnknown(optcode=39, data=b""), "DHCPv6 option 39 malformed"),
    (DHCP6OptUnknown(optcode=24, data=b"\x07example\xc0\x0c"), "DHCPv6 domain list not dissected"),
    (DHCP6OptUnknown(optcode=21, data=b"\x07example"), "DHCPv6 domain list not dissected"),
    (DHCP6OptUnknown(optcode=21, data=b"\x41" + b"a" * 65 + b"\x00"), "DHCPv6 domain list not dissected"),
    (DHCP6OptUnknown(optcode=24, data=b"\x3f" + b"a" * 63), "DHCPv6 domain list not dissected"),
    (DHCP6OptUnknown(optcode=39, data=b"\x00" + FQDN_WIRE + b"\x00"),
     "DHCPv6 client FQDN name not dissected"),
    (DHCP6OptUnknown(optcode=39, data=b"\x00" + (b"\x3f" + b"a" * 63) * 4 + b"\x00"),
     "DHCPv6 client FQDN name not dissected"),
    (DHCP6OptClientLinkLayerAddr(lltype=6, clladdr=MAC), "DHCPv6 link-layer address type 6 not dissected"),
    (DHCP6OptUnknown(optcode=79, data=b"\x00\x01abc"), "DHCPv6 link-layer address type 1 not dissected"),
    (DHCP6OptUnknown(optcode=79, data=b"\x00"), "DHCPv6 option 79 malformed"),
])
def test_dhcpv6_option_not_understood_is_cut_there(option: Packet, reason: str) -> None:
    data = frame6(DHCP6_Solicit() / DHCP6OptElapsedTime() / option
                  / DHCP6OptDNSServers(dnsservers=["2001:db8::9"]))
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == layers.payload == V6 + 4 + 6 and layers.cut == reason
    assert len(layers.ipv6) == 2 and layers.names == ()


def test_dhcpv6_wire_name_of_the_largest_size_is_understood() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"  # 255 bytes
    data = frame6(DHCP6_Solicit() / DHCP6OptUnknown(optcode=39, data=b"\x00" + name))
    layers = dissect(data, ETHERNET)
    assert layers.cut is None and names(data, layers) == [(name, True)]


@pytest.mark.parametrize(("inner", "reason", "where"), [
    (DHCP6OptIA_NA(ianaopts=[DHCP6OptIA_NA()]), "DHCPv6 option 3 not dissected", 16),
    (DHCP6OptIA_NA(ianaopts=[DHCP6OptIAPrefix()]), "DHCPv6 option 26 not dissected", 16),
    (DHCP6OptIA_PD(iapdopt=[DHCP6OptIAAddress()]), "DHCPv6 option 5 not dissected", 16),
    (DHCP6OptIA_TA(iataopts=[DHCP6OptStatusCode(statusmsg=b"ok")]),
     "DHCPv6 status message not dissected", 8 + 6),
    (DHCP6OptIA_NA(ianaopts=[DHCP6OptIAAddress(iaaddropts=[DHCP6OptIAAddress()])]),
     "DHCPv6 option 5 not dissected", 16 + 28),
    (DHCP6OptIA_PD(iapdopt=[DHCP6OptIAPrefix(plen=129)]), "DHCPv6 option 26 malformed", 16),
    (DHCP6OptStatusCode(statuscode=2, statusmsg=b"No addresses for 00:11:22:33:44:55"),
     "DHCPv6 status message not dissected", 6),
])
def test_dhcpv6_sub_options_not_understood_are_cut_inside(inner: Packet, reason: str, where: int) -> None:
    data = frame6(DHCP6_Reply() / DHCP6OptRapidCommit() / inner)
    layers = dissect(data, ETHERNET)
    assert layers.parsed_to == V6 + 4 + 4 + where and layers.cut == reason


def test_dhcpv6_sub_option_past_its_container_is_cut_at_the_sub_option() -> None:
    message = DHCP6_Reply() / DHCP6OptIA_NA(ianaopts=[DHCP6OptIAAddress()]) / DHCP6OptRapidCommit()
    data = bytearray(frame6(message))
    data[V6 + 4 + 16 + 3] += 4  # the IAADDR claims 4 bytes its IA_NA does not hold
    layers = dissect(bytes(data), ETHERNET)
    assert (layers.parsed_to, layers.cut) == (V6 + 4 + 16, "DHCPv6 option cut short")


@pytest.mark.parametrize(("kind", "reason"), [
    (0, "DHCPv6 message type 0 not dissected"),
    (14, "DHCPv6 message type 14 not dissected"),
    (20, "DHCPv6 message type 20 not dissected"),
])
def test_dhcpv6_unknown_message_type_is_cut_at_the_message(kind: int, reason: str) -> None:
    data = frame6(bytes([kind]) + bytes(3) + bytes(DHCP6OptElapsedTime()))
    layers = dissect(data, ETHERNET)
    assert (layers.parsed_to, layers.cut) == (V6, reason)


def option_spans6(message: Packet, first: int) -> list[tuple[int, int]]:
    """Where each top-level option of `message` lies, from scapy's encoding of the message."""
    spans, option = [], message.payload
    end = first + len(bytes(option))
    while isinstance(option, Packet) and not isinstance(option, Raw) and len(bytes(option)):
        start = end - len(bytes(option))
        spans.append((start, start + len(bytes(option)) - len(bytes(option.payload))))
        option = option.payload
    return spans


def test_dhcpv6_option_length_past_the_end_is_cut_at_every_option() -> None:
    for message in (solicit(), reply()):
        data = frame6(message)
        for start, _ in option_spans6(message, V6 + 4):
            lying = bytearray(data)
            lying[start + 2:start + 4] = (len(data) - start - 3).to_bytes(2, "big")
            layers = dissect(bytes(lying), ETHERNET)
            assert (layers.parsed_to, layers.cut) == (start, "DHCPv6 option cut short"), start
            assert_within(layers)


def test_dhcpv6_cut_by_the_capture_at_every_byte() -> None:
    message = relayed(1, solicit())
    data = frame6(message)
    inner = len(data) - len(bytes(solicit()))
    atoms = [(V6 + 2, V6 + 18), (V6 + 18, V6 + 34), *option_spans6(message, V6 + 34)]
    atoms += option_spans6(solicit(), inner + 4)
    full = dissect(data, ETHERNET)
    for n in range(len(data)):
        layers = dissect(data[:n], ETHERNET)
        assert_within(layers)
        assert layers.ipv6 == tuple(o for o in full.ipv6 if o + 16 <= layers.parsed_to)
        if n >= V6:
            # a cut inside the relay message option cuts at that option: its length runs past the capture
            expected = next((start for start, end in atoms if start < n < end), n)
            assert layers.parsed_to == expected, n
            assert layers.cut in (None, "DHCPv6 relay header cut short", "DHCPv6 option cut short"), n
        assert_within(direct(dhcpv6, data[V6:n]))


def test_dhcpv6_relay_header_cut_inside_the_relay_message() -> None:
    relay = DHCP6_RelayForward(linkaddr="2001:db8::1", peeraddr="fe80::2")
    data = frame6(relay / DHCP6OptRelayMsg(message=Raw(b"\x0c\x00" + bytes(20))) / DHCP6OptRapidCommit())
    layers = dissect(data, ETHERNET)
    assert (layers.parsed_to, layers.cut) == (V6 + 34 + 4 + 18, "DHCPv6 relay header cut short")
    assert layers.ipv6[2:] == (V6 + 2, V6 + 18, V6 + 34 + 4 + 2)


def test_dhcpv6_parser_never_raises_on_noise() -> None:
    data = frame6(relayed(2, solicit()))
    for seed in range(200):
        noisy = bytearray(data)
        for k in range(8):
            noisy[V6 + (seed * 7919 + k * 104729) % (len(data) - V6)] = (seed * 31 + k * 17) % 256
        assert_within(dissect(bytes(noisy), ETHERNET))


def test_direct_calls_on_empty_messages() -> None:
    assert direct(dhcpv6, b"").parsed_to == 0 and direct(dhcp, b"").parsed_to == 0


# tshark agrees on where each identifier lies --------------------------------------------------------

TSHARK_FIELDS = {
    "ipv4": {"dhcp.ip.client", "dhcp.ip.your", "dhcp.ip.server", "dhcp.ip.relay", "dhcp.option.router",
             "dhcp.option.domain_name_server", "dhcp.option.time_server", "dhcp.option.log_server",
             "dhcp.option.ntp_server", "dhcp.option.netbios_over_tcpip_name_server",
             "dhcp.option.broadcast_address", "dhcp.option.router_solicitation_address",
             "dhcp.option.dhcp_server_id", "dhcp.option.subnet_selection_option", "dhcp.option.name_server",
             "dhcp.option.requested_ip_address"},
    "ipv6": {"dhcpv6.linkaddr", "dhcpv6.peeraddr", "dhcpv6.iaaddr.ip", "dhcpv6.dns_server",
             "dhcpv6.sip_server_a", "dhcpv6.sntp_server"},
    "mac": {"dhcp.hw.mac_addr", "dhcpv6.duidllt.link_layer_addr", "dhcpv6.duidll.link_layer_addr",
            "dhcpv6.client_linklayer_addr"},
    "prefix": {"dhcpv6.iaprefix.pref_addr"},
    "name": {"dhcp.option.hostname", "dhcp.option.domain_name", "dhcp.fqdn.name", "dhcp.server", "dhcp.file",
             "dhcpv6.client_domain", "dhcpv6.domain", "dhcpv6.search_list_entry",
             "dhcpv6.sip_server_domain_search_fqdn"},
}


def recorded(layers: Layers, first: int) -> dict[str, set[int]]:
    return {kind: {o for o in offsets if o >= first} for kind, offsets in {
        "ipv4": layers.ipv4, "ipv6": layers.ipv6, "mac": layers.macs,
        "prefix": tuple(p.offset for p in layers.prefixes), "name": tuple(n.offset for n in layers.names),
    }.items()}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_finds_the_same_fields(tmp_path: Path) -> None:
    # tshark 4.0 shows no field for the address in a client link-layer address option (79)
    frames = [(rich4(), V4), (frame6(reply(), port=546), V6), (frame6(relayed(2, solicit(), False)), V6)]
    capture = tmp_path / "dhcp.pcap"
    wrpcap(str(capture), [Ether(data) for data, _ in frames])
    pdml = subprocess.run(["tshark", "-r", str(capture), "-T", "pdml"], capture_output=True, check=True,
                          timeout=120).stdout
    packets = ElementTree.fromstring(pdml).findall("packet")
    assert len(packets) == len(frames)
    for packet, (data, first) in zip(packets, frames, strict=True):
        found: dict[str, set[int]] = {kind: set() for kind in TSHARK_FIELDS}
        for field in packet.iter("field"):
            for kind, fields in TSHARK_FIELDS.items():
                if field.get("name") in fields:
                    found[kind].add(int(field.get("pos", "-1")))
        assert found == recorded(dissect(data, ETHERNET), first)
