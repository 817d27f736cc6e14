"""The address-mapping policy: kept ranges, kept prefixes, cycle-walking, reversal, cache."""

from __future__ import annotations

import ipaddress
import os

from anontrace.crypto.cryptopan import CryptoPAn
from anontrace.crypto.macs import MacMapper
from anontrace.crypto.mapping import AddressMapper
from tests.crypto.cryptopan_reference import REFERENCE_KEY

N = ipaddress.ip_network
KEEP = [N("127.0.0.0/8"), N("224.0.0.0/4"), N("ff00::/8")]
KEEP_PREFIX = [N("169.254.0.0/16"), N("fe80::/64")]


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def mapper() -> AddressMapper:
    return AddressMapper(REFERENCE_KEY, keep=KEEP, keep_prefix=KEEP_PREFIX)


def test_no_special_ranges_is_plain_cryptopan() -> None:
    plain = AddressMapper(REFERENCE_KEY)
    assert plain.map(packed("128.11.68.132")) == packed("135.242.180.132")


def test_kept_ranges_pass_through() -> None:
    m = mapper()
    for address in ("127.0.0.1", "239.1.2.3", "ff02::1"):
        assert m.map(packed(address)) == packed(address)
        assert m.reverse(packed(address)) == packed(address)


def test_kept_prefix_maps_host_bits_only() -> None:
    m = mapper()
    for address, network in (("169.254.10.20", "169.254.0.0/16"), ("fe80::21b:21ff:fe3a:1b2c", "fe80::/64")):
        result = m.map(packed(address))
        assert result != packed(address)
        assert ipaddress.ip_address(result) in N(network)
        assert m.reverse(result) == packed(address)


def test_hosts_never_land_in_special_ranges() -> None:
    cipher = CryptoPAn(REFERENCE_KEY)
    # Find real addresses whose plain Crypto-PAn image is multicast or link-local: the mapper
    # must walk them out again, and still reverse them.
    candidates = [os.urandom(4) for _ in range(4000)]
    walked = [
        a
        for a, e in zip(candidates, cipher.encrypt(candidates), strict=True)
        if ipaddress.ip_address(e) in N("224.0.0.0/4")
        and ipaddress.ip_address(a) not in N("224.0.0.0/4")
        and not ipaddress.ip_address(a).is_loopback
        and ipaddress.ip_address(a) not in N("169.254.0.0/16")
    ]
    assert len(walked) > 50
    m = mapper()
    m.map_many(walked)
    for address in walked:
        result = m.map(address)
        assert m.special(result) is None
        assert m.reverse(result) == address


def test_one_to_one_and_reversible_over_many_addresses() -> None:
    m = mapper()
    addresses = list({os.urandom(4) for _ in range(5000)} | {os.urandom(16) for _ in range(500)})
    m.map_many(addresses)
    results = [m.map(a) for a in addresses]
    assert len(set(results)) == len(addresses)
    assert all(m.reverse(r) == a for a, r in zip(addresses[:300], results[:300], strict=True))
    assert m.distinct == len(addresses)


def test_cache_restarts_without_changing_answers(monkeypatch: object) -> None:
    import anontrace.crypto.mapping as mapping

    m = mapper()
    first = m.map(packed("192.0.2.1"))
    monkeypatch.setattr(mapping, "CACHE_LIMIT", 2)  # type: ignore[attr-defined]
    batch = [packed("192.0.2.1"), packed("192.0.2.2"), packed("192.0.2.3")]
    m.map_many(batch)
    assert m.evicted
    assert all(a in m.lookup() for a in batch)  # a restart keeps everything the batch asked for
    assert m.map(packed("192.0.2.1")) == first


def full_mapper() -> tuple[AddressMapper, MacMapper]:
    macs = MacMapper(bytes(range(32)))
    return AddressMapper(REFERENCE_KEY, keep=KEEP, keep_prefix=KEEP_PREFIX, macs=macs), macs


def test_eui64_interface_id_follows_the_mac_mapping() -> None:
    m, macs = full_mapper()
    mac = bytes.fromhex("001b213a1b2c")
    for address in ("fe80::21b:21ff:fe3a:1b2c", "2001:db8:5:6:21b:21ff:fe3a:1b2c"):
        result = m.map(packed(address))
        # the interface id is exactly the modified EUI-64 of the MAC's mapping (RFC 4291 app. A)
        mapped_mac = macs.map(mac)
        expected_id = bytes([mapped_mac[0] ^ 2]) + mapped_mac[1:3] + b"\xff\xfe" + mapped_mac[3:]
        assert result[8:] == expected_id and mapped_mac != mac
        assert mac[1:3] not in result[8:] or mac[3:] not in result[8:]
        assert m.reverse(result) == packed(address)
    # the /64 part is still Crypto-PAn's, prefix-preserving with other addresses of the subnet
    other = m.map(packed("2001:db8:5:6::1"))
    assert other[:8] == m.map(packed("2001:db8:5:6:21b:21ff:fe3a:1b2c"))[:8]


def test_embedded_ipv4_follows_the_ipv4_mapping() -> None:
    m, _ = full_mapper()
    v4 = m.map(packed("198.51.100.7"))
    assert m.map(packed("::ffff:198.51.100.7")) == packed("::ffff:0:0") [:12] + v4
    assert m.map(packed("64:ff9b::198.51.100.7")) == packed("64:ff9b::")[:12] + v4
    six = m.map(packed("2002:c633:6407:1::5"))
    assert six[:2] == b"\x20\x02" and six[2:6] == v4
    assert m.map(packed("2002:c633:6407:2::5"))[:6] == six[:6]  # same site, same /48
    # Teredo: server in bytes 4-8, client inverted in bytes 12-16; flags and port kept
    server, client = m.map(packed("192.0.2.45")), m.map(packed("203.0.113.9"))
    teredo = packed("2001:0:c000:22d:8000:f227:" + "34ff:8ef6")  # client 203.0.113.9 inverted
    result = m.map(teredo)
    assert result[4:8] == server and result[8:12] == teredo[8:12]
    assert bytes(b ^ 0xFF for b in result[12:]) == client
    for address in ("::ffff:198.51.100.7", "64:ff9b::198.51.100.7", "2002:c633:6407:1::5"):
        assert m.reverse(m.map(packed(address))) == packed(address)
    assert m.reverse(result) == teredo


def test_solicited_node_multicast_agrees_with_its_mac() -> None:
    m, macs = full_mapper()
    address = packed("ff02::1:ff3a:1b2c")
    result = m.map(address)
    assert result[:13] == address[:13] and result[13:] != address[13:]
    assert macs.map(bytes.fromhex("3333ff3a1b2c")) == b"\x33\x33\xff" + result[13:]
    assert m.reverse(result) == address
    assert m.map(packed("ff02::1:2")) == packed("ff02::1:2")  # other multicast is kept


def test_plain_addresses_never_land_in_embedding_ranges() -> None:
    m, _ = full_mapper()
    addresses = [os.urandom(16) for _ in range(3000)]
    m.map_many(addresses)
    for address in addresses:
        found = m.special(address)
        if found is None:
            assert m.special(m.map(address)) is None
