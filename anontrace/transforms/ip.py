"""ip: encrypt IPv4 and IPv6 addresses with prefix-preserving Crypto-PAn."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from anontrace.crypto.mapping import AddressMapper, Network
from anontrace.packet.batch import Batch
from anontrace.transforms.base import Context, Transform, setting

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


class Ip(Transform):
    """Encrypt every IPv4 and IPv6 address in the headers dissected (IP source and destination,
    IPv4 route options, IPv6 routing headers and home address, ARP, ICMP redirect, neighbour
    discovery targets) with Crypto-PAn: two addresses that share a k-bit prefix still share a
    k-bit prefix afterwards, so subnets remain visible without revealing which they are. The
    mapping is keyed, one-to-one and reversible by the key holder (`anontrace map --reverse`).
    No address outside the special ranges is ever mapped into one of them."""

    name = "ip"
    Config = IpConfig

    def __init__(self, config: IpConfig, context: Context) -> None:
        super().__init__(config, context)
        self.mapper = AddressMapper(context.key.secret, keep=parse_networks(config.keep),
                                    keep_prefix=parse_networks(config.keep_prefix))

    def apply(self, batch: Batch) -> Batch:
        seen: set[bytes] = set()
        for frame, layers in zip(batch.frames, batch.layers, strict=True):
            source = frame.data
            seen.update(source[offset:offset + 4] for offset in layers.ipv4)
            seen.update(source[offset:offset + 16] for offset in layers.ipv6)
        self.mapper.map_many(seen)
        mapped = self.mapper.lookup()
        rewritten = 0
        for frame, layers, out in zip(batch.frames, batch.layers, batch.data, strict=True):
            source, length = frame.data, len(out)
            for size, offsets in ((4, layers.ipv4), (16, layers.ipv6)):
                for offset in offsets:
                    end = offset + size
                    if end <= length:
                        out[offset:end] = mapped[source[offset:end]]
                        rewritten += 1
        batch.counts["address fields rewritten"] += rewritten
        return batch

    def stats(self) -> dict[str, int]:
        if self.mapper.evicted:  # the cache restarted: addresses seen again were counted again
            return {"addresses encrypted (cache restarted, repeats counted)": self.mapper.distinct}
        return {"distinct addresses mapped": self.mapper.distinct}
