"""The MAC address mapping: a keyed permutation of the host-identifying bits, cached.

- Group addresses (broadcast, multicast) of the registered multicast blocks (`MULTICAST`) name
  no host and pass through when `keep_group` is set, except 33:33:ff:xx:xx:xx, the Ethernet
  form of an IPv6 solicited-node address, whose low 24 bits are a host's: they are permuted
  exactly like the low 24 bits of the solicited-node address itself (`solicited`), so the two
  stay consistent. Any other address with the group bit set (a damaged or forged host address
  is one bit away from a real one) is mapped like a host's, its group bit kept.
- The all-zero address (ARP's "unknown") passes through.
- Any other address keeps its I/G and U/L bits (so it stays unicast and universal or local); the
  other 46 bits are permuted, or only the low 24 when `keep_oui` keeps the vendor prefix.
The mapping is one-to-one, so consistent across files and runs with the same key, and
reversible by the key holder.
"""

from __future__ import annotations

from collections.abc import Iterable

from anontrace.crypto.permutation import Permutation

FLAG_BITS = 0x03 << 40  # I/G and U/L, the two low bits of the first byte
LOW_24 = (1 << 24) - 1
SOLICITED_MAC = 0x3333FF << 24
CACHE_LIMIT = 1 << 20
# Multicast blocks whose addresses name groups or protocols, never a host (IEEE/IANA registries).
MULTICAST = (
    b"\xff\xff\xff\xff\xff\xff",  # broadcast
    b"\x01\x00\x5e",  # IPv4 multicast (RFC 1112)
    b"\x33\x33",  # IPv6 multicast (RFC 2464)
    b"\x01\x80\xc2",  # IEEE 802.1 reserved: STP, LLDP, LACP, PAUSE, 802.1X
    b"\x01\x1b\x19",  # IEEE 1588 PTP
    b"\x01\x00\x0c",  # Cisco CDP, VTP, PVST+
    b"\x01\x0c\xcd",  # IEC 61850 GOOSE, sampled values
    b"\x09\x00\x2b",  # DEC
    b"\x09\x00\x07",  # AppleTalk
    b"\x03\x00\x00",  # IEEE 802.5 functional addresses (NetBIOS, ...)
    b"\xab\x00\x00",  # DEC MOP, DECnet
    b"\x01\x00\x81",  # Nortel/SynOptics autodiscovery
)


class MacMapper:
    """Map and reverse 6-byte MAC addresses."""

    def __init__(self, key: bytes, *, keep_oui: bool = False, keep_group: bool = True) -> None:
        self.keep_oui = keep_oui
        self.keep_group = keep_group
        self._host = Permutation(key[:16], 46)
        self._nic = Permutation(key[16:], 24)
        self._solicited = Permutation(bytes(a ^ 0x5C for a in key[:16]), 24)
        self._cache: dict[bytes, bytes] = {}
        self.distinct = 0

    def _kept(self, value: int) -> bool:
        if value == 0:
            return True
        if not self.keep_group or value >> 24 == SOLICITED_MAC >> 24:
            return False
        raw = value.to_bytes(6, "big")
        return any(raw.startswith(block) for block in MULTICAST)

    def solicited(self, values: Iterable[int], reverse: bool = False) -> list[int]:
        """Permute the 24 host bits of solicited-node addresses (shared with the IPv6 mapping)."""
        values = list(values)
        return self._solicited.backward(values) if reverse else self._solicited.forward(values)

    def _apply(self, values: list[int], reverse: bool) -> list[int]:
        result = list(values)
        solicited = [i for i, v in enumerate(values) if v >> 24 == SOLICITED_MAC >> 24]
        other = [i for i, v in enumerate(values) if not self._kept(v) and v >> 24 != SOLICITED_MAC >> 24]
        for i, low in zip(solicited, self.solicited((values[i] & LOW_24 for i in solicited), reverse),
                          strict=True):
            result[i] = SOLICITED_MAC | low
        if self.keep_oui:
            step = self._nic.backward if reverse else self._nic.forward
            for i, low in zip(other, step([values[i] & LOW_24 for i in other]), strict=True):
                result[i] = values[i] & ~LOW_24 | low
        else:
            step = self._host.backward if reverse else self._host.forward
            squeezed = [(values[i] >> 42) << 40 | (values[i] & ((1 << 40) - 1)) for i in other]
            for i, bits in zip(other, step(squeezed), strict=True):
                result[i] = (bits >> 40) << 42 | values[i] & FLAG_BITS | bits & ((1 << 40) - 1)
        return result

    def map_many(self, macs: Iterable[bytes]) -> None:
        """Make sure every MAC is in the cache, mapping the new ones together."""
        wanted = set(macs)
        todo = [m for m in wanted if m not in self._cache]
        if not todo:
            return
        if len(self._cache) + len(todo) > CACHE_LIMIT:
            self._cache.clear()  # bound memory; answers do not depend on the cache
            todo = list(wanted)
        mapped = self._apply([int.from_bytes(m, "big") for m in todo], reverse=False)
        self._cache.update((m, v.to_bytes(6, "big")) for m, v in zip(todo, mapped, strict=True))
        self.distinct += len(todo)

    def map(self, mac: bytes) -> bytes:
        found = self._cache.get(mac)
        if found is None:
            found = self._apply([int.from_bytes(mac, "big")], reverse=False)[0].to_bytes(6, "big")
        return found

    def lookup(self) -> dict[bytes, bytes]:
        """The live cache, for hot loops that already called `map_many` on their MACs."""
        return self._cache

    def reverse(self, mac: bytes) -> bytes:
        """The original MAC behind a mapped one (needs the same key and settings)."""
        return self._apply([int.from_bytes(mac, "big")], reverse=True)[0].to_bytes(6, "big")


def eui64_mac(interface_id: bytes) -> bytes | None:
    """The MAC inside a modified EUI-64 interface id (ff:fe in the middle), or None."""
    if interface_id[3:5] != b"\xff\xfe":
        return None
    return bytes([interface_id[0] ^ 0x02]) + interface_id[1:3] + interface_id[5:8]


def eui64(mac: bytes) -> bytes:
    """The modified EUI-64 interface id built from a MAC (RFC 4291 appendix A)."""
    return bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
