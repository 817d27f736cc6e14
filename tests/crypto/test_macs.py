"""The MAC mapping: one-to-one, reversible, keyed, with group/flag bits and the OUI option."""

from __future__ import annotations

import os

from anontrace.crypto.macs import MacMapper, eui64, eui64_mac

KEY = bytes(range(32))


def test_unicast_macs_change_keep_their_flag_bits_and_reverse() -> None:
    m = MacMapper(KEY)
    macs = {os.urandom(6) for _ in range(3000)}
    unicast = [mac for mac in macs if not mac[0] & 1 and any(mac)]
    m.map_many(unicast)
    out = [m.map(mac) for mac in unicast]
    assert len(set(out)) == len(unicast)  # one-to-one
    assert sum(a == b for a, b in zip(unicast, out, strict=True)) == 0
    assert all(a[0] & 3 == b[0] & 3 for a, b in zip(unicast, out, strict=True))
    assert all(m.reverse(b) == a for a, b in zip(unicast[:200], out[:200], strict=True))


def test_same_key_same_mapping_across_instances_other_key_differs() -> None:
    mac = bytes.fromhex("001b213a1b2c")
    assert MacMapper(KEY).map(mac) == MacMapper(KEY).map(mac)
    assert MacMapper(KEY).map(mac) != MacMapper(bytes(32)).map(mac)


def test_group_and_zero_addresses_are_kept_unless_told() -> None:
    for text in ("ffffffffffff", "01005e000001", "333300000001", "0180c2000000", "000000000000"):
        mac = bytes.fromhex(text)
        assert MacMapper(KEY).map(mac) == mac
    moved = MacMapper(KEY, keep_group=False).map(bytes.fromhex("01005e000001"))
    assert moved != bytes.fromhex("01005e000001") and moved[0] & 1


def test_solicited_node_mac_keeps_its_prefix_and_permutes_the_rest() -> None:
    m = MacMapper(KEY)
    mac = bytes.fromhex("3333ff3a1b2c")
    out = m.map(mac)
    assert out[:3] == mac[:3] and out[3:] != mac[3:]
    assert m.reverse(out) == mac


def test_keep_oui_keeps_the_vendor_prefix_only() -> None:
    m = MacMapper(KEY, keep_oui=True)
    mac = bytes.fromhex("001b213a1b2c")
    out = m.map(mac)
    assert out[:3] == mac[:3] and out[3:] != mac[3:]
    assert m.reverse(out) == mac


def test_eui64_round_trip() -> None:
    mac = bytes.fromhex("001b213a1b2c")
    interface_id = eui64(mac)
    assert interface_id.hex() == "021b21fffe3a1b2c"  # RFC 4291 appendix A
    assert eui64_mac(interface_id) == mac
    assert eui64_mac(bytes.fromhex("021b21aaaa3a1b2c")) is None


def test_group_bit_outside_registered_blocks_is_mapped_like_a_host() -> None:
    # a damaged source address: a real MAC with the group bit flipped must not pass through
    flipped = bytes.fromhex("011f29da2d79")
    out = MacMapper(KEY).map(flipped)
    assert out != flipped and out[0] & 3 == flipped[0] & 3
    assert MacMapper(KEY).reverse(out) == flipped
