"""The address mapping: Crypto-PAn, plus special ranges that are kept whole or keep their prefix.

- An address in a `keep` range is passed through unchanged (loopback, multicast, ...).
- An address in a `keep_prefix` range keeps the range's network bits; its host bits are
  Crypto-PAn's bits for the whole address, so the mapping stays one-to-one inside the range.
- Any other address is encrypted; if the result falls inside a special range it is encrypted
  again (cycle-walking) until it does not, so no host is ever disguised as, or merged with, a
  special address. The mapping stays one-to-one and reversible.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from anontrace.crypto.cryptopan import CryptoPAn

CACHE_LIMIT = 1 << 20  # distinct addresses remembered; beyond it the cache restarts (output unchanged)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """A network given special treatment: kept whole, or with its prefix kept."""

    network: Network
    keep_prefix: bool

    def contains(self, value: int, size: int) -> bool:
        net = self.network
        if size * 8 != net.max_prefixlen:
            return False
        host_bits = net.max_prefixlen - net.prefixlen
        return value >> host_bits == int(net.network_address) >> host_bits


class AddressMapper:
    """Map (and reverse) IPv4/IPv6 addresses given as packed bytes, caching every answer."""

    def __init__(self, key: bytes, keep: Iterable[Network] = (),
                 keep_prefix: Iterable[Network] = ()) -> None:
        self._cipher = CryptoPAn(key)
        self._ranges = sorted(
            [SpecialRange(n, False) for n in keep] + [SpecialRange(n, True) for n in keep_prefix],
            key=lambda r: -r.network.prefixlen)
        self._cache: dict[bytes, bytes] = {}
        self.distinct = 0
        self.evicted = False

    def special(self, address: bytes) -> SpecialRange | None:
        """The most specific special range holding `address`, if any."""
        value = int.from_bytes(address, "big")
        for candidate in self._ranges:
            if candidate.contains(value, len(address)):
                return candidate
        return None

    def map_many(self, addresses: Iterable[bytes]) -> None:
        """Make sure every address is in the cache, encrypting the new ones together."""
        cache = self._cache
        wanted = set(addresses)
        todo = {a for a in wanted if a not in cache}
        if not todo:
            return
        if len(cache) + len(todo) > CACHE_LIMIT:
            cache.clear()  # restart; every address asked for must be there afterwards
            self.evicted = True
            todo = wanted
        for size in (4, 16):
            family = [a for a in todo if len(a) == size]
            if family:
                cache.update(zip(family, self._encrypt_family(family), strict=True))
        self.distinct += len(todo)

    def map(self, address: bytes) -> bytes:
        """The mapped form of one address."""
        found = self._cache.get(address)
        if found is None:
            self.map_many((address,))
            found = self._cache[address]
        return found

    def lookup(self) -> dict[bytes, bytes]:
        """The live cache, for hot loops that already called `map_many` on their addresses."""
        return self._cache

    def _encrypt_family(self, addresses: Sequence[bytes]) -> list[bytes]:
        result: dict[bytes, bytes] = {}
        plain: list[bytes] = []
        for address in addresses:
            found = self.special(address)
            if found is None:
                plain.append(address)
            elif found.keep_prefix:
                encrypted = self._cipher.encrypt([address])[0]
                result[address] = _splice(found.network, address, encrypted)
            else:
                result[address] = address
        pending = dict(zip(plain, self._cipher.encrypt(plain), strict=True))
        while pending:
            walking = {a: e for a, e in pending.items() if self.special(e) is not None}
            result.update((a, e) for a, e in pending.items() if a not in walking)
            pending = dict(zip(walking, self._cipher.encrypt(list(walking.values())), strict=True))
        return [result[a] for a in addresses]

    def reverse(self, address: bytes) -> bytes:
        """The original address behind a mapped one (needs the same key and ranges)."""
        found = self.special(address)
        if found is not None and not found.keep_prefix:
            return address
        if found is not None:
            return self._cipher.decrypt([address], known_bits=found.network.prefixlen)[0]
        original = self._cipher.decrypt([address])[0]
        while self.special(original) is not None:
            original = self._cipher.decrypt([original])[0]
        return original


def _splice(network: Network, address: bytes, encrypted: bytes) -> bytes:
    """The network bits of `address` followed by the host bits of `encrypted`."""
    bits = network.max_prefixlen
    host_mask = (1 << (bits - network.prefixlen)) - 1
    value = (int.from_bytes(address, "big") & ~host_mask) | (int.from_bytes(encrypted, "big") & host_mask)
    return value.to_bytes(len(address), "big")
