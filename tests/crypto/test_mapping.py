"""The address-mapping policy: kept ranges, kept prefixes, cycle-walking, reversal, cache."""

from __future__ import annotations

import ipaddress
import os

from anontrace.crypto.cryptopan import CryptoPAn
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
