"""Link headers that can start anywhere in a frame: Ethernet with VLAN tags, and ethertype dispatch.

A capture's own link layer starts at offset 0; a tunnel (VXLAN, Geneve, GRE bridging, ERSPAN)
starts another Ethernet frame further in, and the same parsers read it.
"""

from __future__ import annotations

import struct

from anontrace.packet.layers import MAX_DEPTH, Builder, enter
from anontrace.packet.network import NETWORKS

__all__ = ["MAX_DEPTH", "enter", "ethernet", "ethertype"]

VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100})
MAX_VLAN_TAGS = 8


def ethertype(b: Builder, offset: int, kind: int) -> None:
    """Dissect what an ethertype announces at `offset`, or stop there."""
    parser = NETWORKS.get(kind)
    if parser is None:
        b.ethertype = kind
        b.stop(offset, f"ethertype 0x{kind:04x} not dissected")
        return
    parser(b, offset)


def ethernet(b: Builder, offset: int = 0) -> None:
    """An Ethernet II header at `offset`, its VLAN tags, and what its ethertype announces."""
    data = b.data
    if b.end - offset < 14:
        b.stop(offset, "Ethernet header cut short")
        return
    b.macs += (offset, offset + 6)
    position, kind = offset + 14, struct.unpack_from("!H", data, offset + 12)[0]
    for _ in range(MAX_VLAN_TAGS):
        if kind not in VLAN_TAGS:
            break
        if b.end < position + 4:
            b.stop(position - 2, "VLAN tag cut short")
            return
        kind = struct.unpack_from("!H", data, position + 2)[0]
        position += 4
    if kind < 0x0600:
        b.stop(position, "IEEE 802.3 length field (LLC frame) not dissected")
        return
    ethertype(b, position, kind)
