"""The ip transform rewrites every address dissection found, consistently, and nothing else."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import ICMPv6ND_NA, IPv6
from scapy.layers.l2 import ARP, Ether

from anontrace.keys import Key
from anontrace.transforms.base import Context
from anontrace.transforms.ip import Ip, IpConfig, check_networks
from tests.crypto.cryptopan_reference import REFERENCE_KEY
from tests.helpers import make_batch

NO_SPECIALS = IpConfig(keep=(), keep_prefix=())


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_rewrites_headers_with_the_reference_mapping() -> None:
    frames = [
        bytes(Ether() / IP(src="128.11.68.132", dst="129.118.74.4") / TCP()),
        bytes(Ether() / ARP(psrc="24.5.0.80", pdst="128.11.68.132")),
        bytes(Ether() / IPv6(src="::1", dst="2001:db8::1") / ICMPv6ND_NA(tgt="::1")),
    ]
    batch = Ip(NO_SPECIALS, Context(Key(REFERENCE_KEY))).apply(make_batch(frames))
    ip, arp, nd = (bytes(d) for d in batch.data)
    assert ip[26:30] == packed("135.242.180.132") and ip[30:34] == packed("134.136.186.123")
    assert arp[28:32] == packed("100.9.15.210") and arp[38:42] == packed("135.242.180.132")
    assert nd[22:38] == packed("78ff:f001:9fc0:20df:8380:b1f1:704:ed")
    assert nd[38:54] == packed("4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e")
    assert nd[62:78] == nd[22:38]
    assert batch.counts["address fields rewritten"] == 7


def test_only_address_bytes_change() -> None:
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP(sport=4444, dport=80))
    batch = Ip(IpConfig(), Context(Key(bytes(range(32))))).apply(make_batch([frame]))
    changed = [i for i, (a, b) in enumerate(zip(frame, batch.data[0], strict=True)) if a != b]
    assert changed and all(26 <= i < 34 for i in changed)  # checksums are the pipeline's job


def test_default_keeps_multicast_and_loopback() -> None:
    frame = bytes(Ether() / IP(src="127.0.0.1", dst="239.255.255.250") / TCP())
    batch = Ip(IpConfig(), Context(Key(bytes(32)))).apply(make_batch([frame]))
    assert bytes(batch.data[0]) == frame


def test_same_key_same_mapping_across_instances() -> None:
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP())
    first = Ip(IpConfig(), Context(Key(bytes(32)))).apply(make_batch([frame])).data[0]
    second = Ip(IpConfig(), Context(Key(bytes(32)))).apply(make_batch([frame])).data[0]
    other = Ip(IpConfig(), Context(Key(bytes(31) + b"\1"))).apply(make_batch([frame])).data[0]
    assert first == second and first != other


def test_check_networks() -> None:
    assert check_networks(("10.0.0.0/8", "fe80::/64")) is None
    assert "not a network" in (check_networks(("10.0.0.1/8",)) or "")


def test_summary_says_when_the_count_includes_repeats(monkeypatch: object) -> None:
    import anontrace.crypto.mapping as mapping

    transform = Ip(IpConfig(), Context(Key(bytes(32))))
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP())
    transform.apply(make_batch([frame]))
    assert transform.stats() == {"distinct addresses mapped": 2}
    monkeypatch.setattr(mapping, "CACHE_LIMIT", 2)  # type: ignore[attr-defined]
    transform.apply(make_batch([bytes(Ether() / IP(src="192.0.2.7", dst="198.51.100.1") / TCP())]))
    assert transform.stats() == {"addresses encrypted (cache restarted, repeats counted)": 4}
