"""The mac transform rewrites every MAC field dissection found, consistently, and nothing else."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from anontrace.crypto.macs import MacMapper
from anontrace.keys import Key, subkey
from anontrace.transforms.base import Context
from anontrace.transforms.mac import Mac, MacConfig
from tests.helpers import make_batch

KEY = Key(bytes(range(32)))
MAC_A = bytes.fromhex("001b213a1b2c")


def test_every_mac_field_gets_the_keyed_mapping() -> None:
    frames = [bytes(Ether(src="00:1b:21:3a:1b:2c", dst="3c:22:fb:10:20:30") / IP() / TCP()),
              bytes(Ether(src="00:1b:21:3a:1b:2c", dst="ff:ff:ff:ff:ff:ff")
                    / ARP(hwsrc="00:1b:21:3a:1b:2c", hwdst="00:00:00:00:00:00"))]
    batch = Mac(MacConfig(), Context(KEY)).apply(make_batch(frames))
    expected = MacMapper(subkey(KEY, "mac")).map(MAC_A)  # the documented subkey, independently built
    ip, arp = (bytes(d) for d in batch.data)
    assert ip[6:12] == expected and arp[6:12] == expected and arp[22:28] == expected
    assert arp[0:6] == b"\xff" * 6 and arp[32:38] == bytes(6)  # broadcast and "unknown" kept
    assert ip[0:6] != bytes.fromhex("3c22fb102030")
    assert batch.counts["MAC fields rewritten"] == 6


def test_only_mac_bytes_change() -> None:
    frame = bytes(Ether(src="00:1b:21:3a:1b:2c", dst="3c:22:fb:10:20:30") / IP() / TCP())
    out = Mac(MacConfig(), Context(KEY)).apply(make_batch([frame])).data[0]
    assert out[12:] == frame[12:] and out[:12] != frame[:12]


def test_keep_oui_setting_reaches_the_mapping() -> None:
    frame = bytes(Ether(src="00:1b:21:3a:1b:2c", dst="3c:22:fb:10:20:30") / IP() / TCP())
    out = Mac(MacConfig(keep_oui=True), Context(KEY)).apply(make_batch([frame])).data[0]
    assert out[6:9] == MAC_A[:3] and out[9:12] != MAC_A[3:]


def test_the_mapping_is_shared_by_the_run() -> None:
    context = Context(KEY, {"mac": MacConfig(keep_oui=True)})
    assert Mac(MacConfig(keep_oui=True), context).mapper is Mac(MacConfig(keep_oui=True), context).mapper
