"""Crypto-PAn against the published reference sample, in both directions."""

from __future__ import annotations

import ipaddress
import os

import pytest

from anontrace.crypto.cryptopan import CryptoPAn
from tests.crypto.cryptopan_reference import (
    IPV4_PAIRS,
    IPV6_PAIRS,
    REFERENCE_KEY,
    SUPPLEMENTARY_IPV4_PAIRS,
)


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def text(value: bytes) -> str:
    return str(ipaddress.ip_address(value))


@pytest.fixture(scope="module")
def cipher() -> CryptoPAn:
    return CryptoPAn(REFERENCE_KEY)


ALL_PAIRS = [*IPV4_PAIRS, *SUPPLEMENTARY_IPV4_PAIRS, *IPV6_PAIRS]


def test_reference_sample_is_complete() -> None:
    assert len(IPV4_PAIRS) == 70
    assert ("128.11.68.132", "135.242.180.132") in IPV4_PAIRS
    assert ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed") in IPV6_PAIRS


@pytest.mark.parametrize("family", [4, 6])
def test_encrypts_every_reference_pair_in_one_batch(cipher: CryptoPAn, family: int) -> None:
    pairs = [p for p in ALL_PAIRS if ipaddress.ip_address(p[0]).version == family]
    result = cipher.encrypt([packed(a) for a, _ in pairs])
    assert [text(r) for r in result] == [str(ipaddress.ip_address(b)) for _, b in pairs]


@pytest.mark.parametrize("original,expected", ALL_PAIRS, ids=[a for a, _ in ALL_PAIRS])
def test_reference_pair_both_directions(cipher: CryptoPAn, original: str, expected: str) -> None:
    assert cipher.encrypt([packed(original)]) == [packed(expected)]
    assert cipher.decrypt([packed(expected)]) == [packed(original)]


def test_batching_does_not_change_results(cipher: CryptoPAn) -> None:
    addresses = [os.urandom(4) for _ in range(1500)]  # spans several internal chunks
    together = cipher.encrypt(addresses)
    assert together == [cipher.encrypt([a])[0] for a in addresses[:50]] + together[50:]
    assert cipher.decrypt(together) == addresses


def test_preserves_prefixes(cipher: CryptoPAn) -> None:
    a, b = packed("10.20.30.40"), packed("10.20.31.7")  # share exactly 23 bits
    x, y = (int.from_bytes(v, "big") for v in cipher.encrypt([a, b]))
    assert (x ^ y).bit_length() == 32 - 23


def test_refuses_short_key() -> None:
    with pytest.raises(ValueError):
        CryptoPAn(bytes(16))
