"""The address mapping: Crypto-PAn, plus the IPv6 forms that carry other identifiers.

- An address in a `keep` range is passed through unchanged (loopback, multicast, ...).
- An address in a `keep_prefix` range keeps the range's network bits; its host bits are
  Crypto-PAn's bits for the whole address, so the mapping stays one-to-one inside the range.
- IPv6 addresses that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4, Teredo)
  carry it mapped with the IPv4 mapping, so both forms of one host stay consistent.
- An IPv6 interface id built from a MAC (modified EUI-64) becomes the EUI-64 id of the MAC's
  mapping, so it agrees with the MAC wherever that appears and never reveals it. A
  solicited-node multicast address (ff02::1:ffXX:XXXX) has its 24 host bits permuted like the
  matching 33:33:ff:XX:XX:XX MAC.
- Any other address is encrypted; if the result falls inside a special range it is encrypted
  again (cycle-walking) until it does not, so no host is ever disguised as, or merged with, a
  special address. The mapping stays one-to-one and reversible.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from anontrace.crypto.cryptopan import CryptoPAn
from anontrace.crypto.macs import MacMapper, eui64, eui64_mac

CACHE_LIMIT = 1 << 20  # distinct addresses remembered; beyond it the cache restarts (output unchanged)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 ranges whose addresses embed an IPv4 address: where it sits is handled per kind.
V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
TEREDO = ipaddress.IPv6Network("2001::/32")
EMBEDDING = (V4_MAPPED, NAT64, SIX_TO_FOUR, TEREDO)
SOLICITED = ipaddress.IPv6Network("ff02::1:ff00:0/104")


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """A network given special treatment: kept whole, or with its prefix kept."""

    network: Network
    keep_prefix: bool
    embeds_ipv4: bool = False

    def contains(self, value: int, size: int) -> bool:
        net = self.network
        if size * 8 != net.max_prefixlen:
            return False
        host_bits = net.max_prefixlen - net.prefixlen
        return value >> host_bits == int(net.network_address) >> host_bits


class AddressMapper:
    """Map (and reverse) IPv4/IPv6 addresses given as packed bytes, caching every answer."""

    def __init__(self, key: bytes, keep: Iterable[Network] = (),
                 keep_prefix: Iterable[Network] = (), macs: MacMapper | None = None) -> None:
        self._cipher = CryptoPAn(key)
        self._macs = macs
        self._ranges = sorted(
            [SpecialRange(n, False) for n in keep] + [SpecialRange(n, True) for n in keep_prefix]
            + [SpecialRange(n, False, embeds_ipv4=True) for n in EMBEDDING],
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
        prefixed: list[tuple[bytes, SpecialRange]] = []
        embedded: list[tuple[bytes, SpecialRange]] = []
        solicited: list[bytes] = []
        for address in addresses:
            if len(address) == 16 and self._macs is not None and _inside(SOLICITED, address):
                solicited.append(address)
                continue
            found = self.special(address)
            if found is None:
                plain.append(address)
            elif found.embeds_ipv4:
                embedded.append((address, found))
            elif found.keep_prefix:
                prefixed.append((address, found))
            else:
                result[address] = address
        if solicited:
            assert self._macs is not None
            lows = self._macs.solicited(int.from_bytes(a[13:], "big") for a in solicited)
            for address, low in zip(solicited, lows, strict=True):
                result[address] = address[:13] + low.to_bytes(3, "big")
        if prefixed:
            encrypted = self._cipher.encrypt([a for a, _ in prefixed])
            for (address, found), cipher in zip(prefixed, encrypted, strict=True):
                out = _splice(found.network, address, cipher)
                result[address] = self._interface_id(address, out) if found.network.prefixlen <= 64 else out
        if embedded:
            result.update(self._embedded(embedded))
        pending = dict(zip(plain, self._cipher.encrypt(plain), strict=True))
        while pending:
            walking = {a: e for a, e in pending.items() if self.special(e) is not None}
            result.update((a, self._interface_id(a, e)) for a, e in pending.items() if a not in walking)
            pending = dict(zip(walking, self._cipher.encrypt(list(walking.values())), strict=True))
        return [result[a] for a in addresses]

    def _interface_id(self, original: bytes, mapped: bytes) -> bytes:
        """`mapped`, with the interface id of a MAC-derived IPv6 address taken from the MAC mapping."""
        if len(original) != 16 or self._macs is None:
            return mapped
        mac = eui64_mac(original[8:])
        if mac is None:
            return mapped
        return mapped[:8] + eui64(self._macs.map(mac))

    def _embedded(self, items: list[tuple[bytes, SpecialRange]]) -> dict[bytes, bytes]:
        """IPv6 addresses embedding IPv4 ones: the IPv4 part mapped like any IPv4 address."""
        inner = {_embedded_v4(a, r.network) for a, r in items}
        inner |= {bytes(b ^ 0xFF for b in a[12:]) for a, r in items if r.network == TEREDO}
        ordered = sorted(inner)
        mapped = dict(zip(ordered, self._encrypt_family(ordered), strict=True))
        six_to_four = [a for a, r in items if r.network == SIX_TO_FOUR]
        below = dict(zip(six_to_four, self._cipher.encrypt(six_to_four), strict=True))
        result = {}
        for address, found in items:
            v4 = mapped[_embedded_v4(address, found.network)]
            if found.network == SIX_TO_FOUR:  # 2002:V4:subnet:iid; subnet and id prefix-preserving
                result[address] = self._interface_id(address, address[:2] + v4 + below[address][6:])
            elif found.network == TEREDO:  # 2001:0:server:flags:port:~client
                client = bytes(b ^ 0xFF for b in mapped[bytes(b ^ 0xFF for b in address[12:])])
                result[address] = address[:4] + v4 + address[8:12] + client
            else:
                result[address] = address[:12] + v4
        return result

    def reverse(self, address: bytes) -> bytes:
        """The original address behind a mapped one (needs the same key, ranges and MAC mapping).

        Every reading of the mapped address is undone and the one that maps forward to it again
        is the answer, so the MAC-derived and embedded forms need no marker in the output.
        """
        candidates = self._candidates(address)
        for candidate in candidates:
            if self.map(candidate) == address:
                return candidate
        return candidates[-1]

    def _candidates(self, address: bytes) -> list[bytes]:
        found = self.special(address)
        if len(address) == 16 and self._macs is not None and _inside(SOLICITED, address):
            low = self._macs.solicited([int.from_bytes(address[13:], "big")], reverse=True)[0]
            return [address[:13] + low.to_bytes(3, "big")]
        if found is not None and found.embeds_ipv4:
            return self._reverse_embedded(address, found.network)
        if found is not None and not found.keep_prefix:
            return [address]
        if found is not None:
            original = self._cipher.decrypt([address], known_bits=found.network.prefixlen)[0]
        else:
            original = self._cipher.decrypt([address])[0]
            while self.special(original) is not None:
                original = self._cipher.decrypt([original])[0]
        mac = eui64_mac(address[8:]) if len(address) == 16 and self._macs is not None else None
        if mac is None:
            return [original]
        assert self._macs is not None
        return [original[:8] + eui64(self._macs.reverse(mac)), original]

    def _reverse_embedded(self, address: bytes, network: Network) -> list[bytes]:
        v4 = self.reverse(_embedded_v4(address, network))
        if network == SIX_TO_FOUR:
            below = self._cipher.decrypt([address[:2] + v4 + address[6:]], known_bits=48)[0]
            mac = eui64_mac(address[8:]) if self._macs is not None else None
            if mac is None:
                return [below]
            assert self._macs is not None
            return [below[:8] + eui64(self._macs.reverse(mac)), below]
        if network == TEREDO:
            client = self.reverse(bytes(b ^ 0xFF for b in address[12:]))
            return [address[:4] + v4 + address[8:12] + bytes(b ^ 0xFF for b in client)]
        return [address[:12] + v4]


def _inside(network: Network, address: bytes) -> bool:
    host_bits = network.max_prefixlen - network.prefixlen
    return int.from_bytes(address, "big") >> host_bits == int(network.network_address) >> host_bits


def _embedded_v4(address: bytes, network: Network) -> bytes:
    """Where each embedding range keeps its IPv4 address: 6to4 after 2002:, Teredo's server
    after 2001:0:, the others in the low 32 bits."""
    if network == SIX_TO_FOUR:
        return address[2:6]
    if network == TEREDO:
        return address[4:8]
    return address[12:]


def _splice(network: Network, address: bytes, encrypted: bytes) -> bytes:
    """The network bits of `address` followed by the host bits of `encrypted`."""
    bits = network.max_prefixlen
    host_mask = (1 << (bits - network.prefixlen)) - 1
    value = (int.from_bytes(address, "big") & ~host_mask) | (int.from_bytes(encrypted, "big") & host_mask)
    return value.to_bytes(len(address), "big")
