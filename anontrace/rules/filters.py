"""`when:` filters: which frames a rule step applies to, judged on the ORIGINAL frame.

A filter names traffic the way a reviewer thinks of it (a protocol, a port, a network and a
direction), so a rule such as "keep 64 bytes of DNS payload" reads as it is meant; matching
happens before anything is rewritten, on the addresses and ports as captured.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from anontrace.crypto.mapping import Network
from anontrace.packet.layers import Header, Layers

PROTOCOLS = ("arp", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6")
DIRECTIONS = ("inbound", "outbound")
TRANSPORT_KINDS = frozenset({"tcp", "udp", "icmp", "icmpv6"})


@dataclass(frozen=True, slots=True)
class Filter:
    """Every condition given must hold: any of `protocols`, any of `ports` (source or
    destination), an address in any of `networks` (source or destination; with `direction`,
    `inbound` means the destination is in them and `outbound` the source)."""

    protocols: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    networks: tuple[Network, ...] = ()
    direction: str | None = None

    def matches(self, data: bytes, layers: Layers) -> bool:
        outer = [h for h in layers.headers if not h.quoted]
        if self.protocols and not self._protocol(outer, layers):
            return False
        if self.ports and not self._port(data, outer):
            return False
        return not self.networks or self._network(data, outer)

    def _protocol(self, outer: list[Header], layers: Layers) -> bool:
        kinds = {h.kind for h in outer}
        if layers.ethertype == 0x0806:
            kinds.add("arp")
        return any(p in kinds for p in self.protocols)

    def _port(self, data: bytes, outer: list[Header]) -> bool:
        for header in outer:
            if header.kind in ("tcp", "udp") and header.offset + 4 <= len(data):
                source, destination = struct.unpack_from("!HH", data, header.offset)
                if source in self.ports or destination in self.ports:
                    return True
        return False

    def _network(self, data: bytes, outer: list[Header]) -> bool:
        first = next((h for h in outer if h.kind in ("ipv4", "ipv6")), None)
        if first is None:
            return False
        size, at = (4, 12) if first.kind == "ipv4" else (16, 8)
        source = data[first.offset + at:first.offset + at + size]
        destination = data[first.offset + at + size:first.offset + at + 2 * size]
        if len(destination) < size:
            return False
        ends = {"inbound": (destination,), "outbound": (source,)}.get(self.direction or "",
                                                                      (source, destination))
        addresses = [ipaddress.ip_address(raw) for raw in ends]
        return any(a in n for a in addresses for n in self.networks if a.version == n.version)
