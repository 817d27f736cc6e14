"""ip: encrypt IPv4 and IPv6 addresses with prefix-preserving Crypto-PAn."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import numpy as np

from anontrace.crypto.mapping import AddressMapper, Network
from anontrace.packet.batch import Batch
from anontrace.packet.layers import Prefix
from anontrace.transforms.base import Context, Transform, setting
from anontrace.transforms.mac import mac_mapper

KEEP = ("0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8", "224.0.0.0/4",
        "::/128", "::1/128", "ff00::/8")
KEEP_PREFIX = ("169.254.0.0/16", "fe80::/64")


def parse_networks(values: tuple[str, ...]) -> list[Network]:
    """Networks from CIDR strings (already checked by `check_networks`)."""
    return [ipaddress.ip_network(v) for v in values]


def check_networks(values: Any) -> str | None:
    """Refuse anything that is not a list of CIDR networks with no host bits set."""
    for value in values:
        try:
            ipaddress.ip_network(value)
        except ValueError as exc:
            return f"{value!r} is not a network in CIDR form ({exc})"
    return None


@dataclass(frozen=True, slots=True)
class IpConfig:
    keep: tuple[str, ...] = setting(
        KEEP, "Networks whose addresses pass through unchanged. The default keeps the "
        "unspecified, broadcast, loopback and multicast ranges, which name no host.",
        check=check_networks)
    keep_prefix: tuple[str, ...] = setting(
        KEEP_PREFIX, "Networks whose prefix is kept while the host part is encrypted, so a "
        "link-local address stays recognisably link-local without revealing the host (an "
        "IPv6 interface id can be a MAC address).", check=check_networks)


def address_mapper(context: Context, config: IpConfig | None = None) -> AddressMapper:
    """The run's address mapping, shared by every transform that meets an address; built from
    `config`, or the `ip` step's settings, by whichever transform asks first."""
    config = config or context.config(Ip.name, IpConfig())
    return context.shared("ip", lambda: AddressMapper(
        context.key.secret, keep=parse_networks(config.keep),
        keep_prefix=parse_networks(config.keep_prefix), macs=mac_mapper(context)))


def _mask(address: bytes, length: int) -> bytes:
    """`address` with every bit after the first `length` cleared."""
    bits = len(address) * 8
    value = int.from_bytes(address, "big") >> (bits - length) << (bits - length) if length else 0
    return value.to_bytes(len(address), "big")


def _network(source: bytes, prefix: Prefix) -> bytes:
    """The prefix's network address: its bytes, zero-filled to a full address, host bits cleared."""
    raw = source[prefix.offset:prefix.offset + prefix.size].ljust(prefix.family, b"\0")
    return _mask(raw[:prefix.family], prefix.length)


class Ip(Transform):
    """Encrypt every IPv4 and IPv6 address the dissector finds (IP headers and their options, IPv6
    routing headers and home address, ARP, ICMP redirects and quoted packets, neighbour
    discovery, DNS records and client subnets, DHCP and DHCPv6, tunnelled frames) with
    Crypto-PAn: two addresses that share a k-bit prefix still share a k-bit prefix afterwards, so
    subnets remain visible without revealing which they are. The mapping is keyed, one-to-one
    and reversible by the key holder (`anontrace map --reverse`). No address outside the special
    ranges is ever mapped into one of them. IPv6 addresses that embed an IPv4 address
    (IPv4-mapped, NAT64, 6to4, Teredo) carry it mapped like IPv4; an interface id built from a
    MAC (EUI-64) is rebuilt from the MAC's mapping (see `mac`); prefixes (router advertisements,
    DHCPv6 delegations, EDNS client subnet) map like the addresses inside them."""

    name = "ip"
    Config = IpConfig

    def __init__(self, config: IpConfig, context: Context) -> None:
        super().__init__(config, context)
        self.mapper = address_mapper(context, config)

    @property
    def columnar(self) -> bool:
        return True

    def apply(self, batch: Batch) -> Batch:
        seen: set[bytes] = set()
        table = batch.table
        fields = []
        if table is not None:
            for is4, first, size in ((True, 12, 4), (False, 8, 16)):
                rows = np.flatnonzero(table.is4 == is4)
                fields.append(table.values(rows, table.network[rows] + first, size, 2))
                seen.update(fields[-1].distinct)
        others = list(batch.others())
        for _, frame, layers, _ in others:
            source = frame.data
            seen.update(source[offset:offset + 4] for offset in layers.ipv4)
            seen.update(source[offset:offset + 16] for offset in layers.ipv6)
            seen.update(_network(source, prefix) for prefix in layers.prefixes)
        self.mapper.map_many(seen)
        mapped = self.mapper.lookup()
        rewritten = 2 * len(table) if table is not None else 0
        for found in fields:
            found.put(mapped)
        for _, frame, layers, out in others:
            source, length = frame.data, len(out)
            for size, offsets in ((4, layers.ipv4), (16, layers.ipv6)):
                for offset in offsets:
                    end = offset + size
                    if end <= length:
                        out[offset:end] = mapped[source[offset:end]]
                        rewritten += 1
            for prefix in layers.prefixes:
                end = prefix.offset + prefix.size
                if end <= length:
                    network = _mask(mapped[_network(source, prefix)], prefix.length)
                    out[prefix.offset:end] = network[:prefix.size]
                    rewritten += 1
        batch.counts["address fields rewritten"] += rewritten
        return batch

    def stats(self) -> dict[str, int]:
        if self.mapper.evicted:  # the cache restarted: addresses seen again were counted again
            return {"addresses encrypted (cache restarted, repeats counted)": self.mapper.distinct}
        return {"distinct addresses mapped": self.mapper.distinct}
