"""The payload transform cuts after the last understood header, keeping lengths on the wire."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.transforms.base import Context
from anontrace.transforms.ip import Ip, IpConfig
from anontrace.transforms.mac import Mac, MacConfig
from anontrace.transforms.payload import Payload, PayloadConfig
from tests.helpers import make_batch

FRAME = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=9999)
              / Raw(b"0123456789"))


def run(keep: int) -> bytes:
    batch = Payload(PayloadConfig(keep), Context(Key(bytes(32)))).apply(make_batch([FRAME]))
    return bytes(batch.data[0])


def test_cut_to_headers_by_default() -> None:
    assert run(0) == FRAME[:42]


def test_keep_some_payload_and_leave_lengths_alone() -> None:
    out = run(4)
    assert out == FRAME[:46] and out[16:18] == FRAME[16:18] and out[38:40] == FRAME[38:40]


def test_keep_more_than_there_is() -> None:
    assert run(1000) == FRAME


def scrub_payload(payload: bytes, mode: str, headers: list[bytes] | None = None) -> tuple[bytes, Batch]:
    """Run ip (to learn the header addresses) then payload keep 200 over one frame."""
    frame = bytes(Ether(src="00:1b:21:3a:1b:2c", dst="3c:22:fb:10:20:30") / IP(src="10.0.0.1", dst="10.0.0.2")
                  / UDP(sport=40000, dport=9999) / Raw(payload))
    context = Context(Key(bytes(range(32))))
    ip, mac = Ip(IpConfig(), context), Mac(MacConfig(), context)
    payload_step = Payload(PayloadConfig(200, mode), context)
    batch = make_batch([frame])
    for transform in (ip, mac, payload_step):
        batch = transform.apply(batch)
    return bytes(batch.data[0]), batch


@pytest.mark.parametrize("planted", [
    socket.inet_aton("10.0.0.2"),  # a header address, in binary
    b"host 10.0.0.1 said",  # dotted text of any address
    b"via 192.0.2.77 ok",  # an address never seen in a header is still an address
    b"2001:db8::5 is up",
    b"mac 00:1b:21:3a:1b:2c",
    b"lookup 1.0.0.10.in-addr.arpa",
    bytes.fromhex("001b213a1b2c"),  # a header MAC, in binary
])
def test_identifiers_in_kept_payload_are_cut_by_default(planted: bytes) -> None:
    out, batch = scrub_payload(b"abcdefgh" + planted + b"tail", "cut")
    assert b"abcdefgh" in out and planted not in out and not out.endswith(b"tail")
    assert batch.cut == {"payload holds an identifier": 1}


def test_payload_without_identifiers_is_kept() -> None:
    out, batch = scrub_payload(b"GET / HTTP/1.1 version 1.2.3 at 127.0.0.1 ff:ff:ff:ff:ff:ff", "cut")
    assert out.endswith(b"ff:ff:ff:ff:ff:ff") and not batch.cut


def test_rewrite_mode_maps_binary_and_same_length_text() -> None:
    out, _ = scrub_payload(b"<" + socket.inet_aton("10.0.0.2") + b">" + b" 00:1b:21:3a:1b:2c.", "rewrite")
    header_dst = out[30:34]
    assert out[-24:-20] == header_dst and socket.inet_aton("10.0.0.2") not in out
    mapped_mac = out[6:12]
    assert out.endswith(b" " + b":".join(f"{b:02x}".encode() for b in mapped_mac) + b".")


def test_rewrite_mode_cuts_text_whose_mapping_does_not_fit() -> None:
    out, batch = scrub_payload(b"xx 10.0.0.1 yy", "rewrite")  # a 8-character address rarely maps to 8
    mapped = socket.inet_ntoa(out[26:30]).encode()
    if len(mapped) == len(b"10.0.0.1"):
        assert out.endswith(b"xx " + mapped + b" yy")
    else:
        assert out.endswith(b"xx ") and batch.cut == {"payload holds an identifier": 1}


def scrub_from(source: str, payload: bytes) -> tuple[bytes, Batch]:
    """ip then payload (keep 200, rewrite) over one frame whose header source is `source`."""
    frame = bytes(Ether() / IP(src=source, dst="10.0.0.2") / UDP(sport=40000, dport=9999) / Raw(payload))
    context = Context(Key(bytes(range(32))))
    batch = make_batch([frame])
    for transform in (Ip(IpConfig(), context), Payload(PayloadConfig(200, "rewrite"), context)):
        batch = transform.apply(batch)
    return bytes(batch.data[0]), batch


def test_a_binary_and_a_text_identifier_on_the_same_bytes_cut_there() -> None:
    # Found by fuzz/protocols.py: the header address 58.58.56.56 is b"::88" in binary, and "::88"
    # is also IPv6 text; the two hits had the same span, one rewritable and one not (its mapping
    # is longer), and sorting them compared bytes with None (TypeError).
    out, batch = scrub_from("58.58.56.56", b"at ::88 now")
    assert out.endswith(b"at ") and batch.cut == {"payload holds an identifier": 1}


def test_text_running_on_past_a_rewritten_binary_identifier_is_cut() -> None:
    # The header address 97.49.46.50 is b"a1.2" in binary: rewriting it leaves ".3.4" of the text
    # address "1.2.3.4" that starts inside it, which would then be kept.
    out, batch = scrub_from("97.49.46.50", b"see a1.2.3.4 end")
    mapped_source = out[26:30]
    assert out.endswith(b"see " + mapped_source[:1]) and b".3.4" not in out
    assert batch.cut == {"payload holds an identifier": 1}
