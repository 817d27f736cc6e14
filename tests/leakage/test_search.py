"""The search: a leak planted in each channel is found exactly where it was put, once, in its
most specific encoding; bytes that merely equal an address in numeric fields are not leaks."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from anontrace.leakage import residual as residual_module
from anontrace.leakage.residual import Sighting, scan
from anontrace.leakage.search import Searcher
from tests.helpers import write_pcap
from tests.leakage.residual_traces import (
    DNS_NAME,
    FRESH_IP,
    FRESH_MAC,
    IP_A,
    OTHER_IP,
    OTHER_MAC,
    PLANTS,
    collector_of,
    fresh,
    original_packets,
)


@pytest.mark.parametrize("number", range(1, len(PLANTS) + 1), ids=[name for name, _, _ in PLANTS])
def test_a_leak_planted_in_each_channel_is_found_where_it_is(
        planted: tuple[Path, dict[str, Any]], number: int) -> None:
    path, residual = planted
    kind, value, encoding, offset = PLANTS[number - 1][2]
    found = [(f["kind"], f["value"], f["encoding"], f["offset"], f["file"])
             for f in residual["findings"] if f["frame"] == number]
    assert found == [(kind, value, encoding, offset, str(path))]


def test_nothing_but_the_planted_leaks_is_found(planted: tuple[Path, dict[str, Any]]) -> None:
    residual = planted[1]
    assert residual["total"] == len(PLANTS) == len(residual["findings"])
    assert residual["findings_truncated"] is False
    assert residual["distinct"] == len({(k, v) for _, _, (k, v, _, _) in PLANTS})
    assert residual["by_encoding"] == {"binary": 3, "text": 7, "reverse-dns": 3, "eui64": 1, "dns-wire": 2,
                                       "metadata": 0}
    assert residual["by_kind"] == {"ipv4": 4, "ipv6": 4, "mac": 4, "name": 4}
    # broadcast MAC and 255.255.255.255 in the copied frame, "0.0.0.0" inside the ip6.arpa name;
    # the all-zero MAC is not looked for in binary (zero runs are everywhere)
    assert residual["kept_by_rule"] == 3


def test_numbers_that_equal_an_address_are_not_leaks(tmp_path: Path) -> None:
    """IP_A's 4 bytes as a TCP sequence number, and straddling two fresh addresses: chance."""
    sequence = int(ipaddress.IPv4Address(IP_A))
    tcp = (Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
           / TCP(sport=1, dport=2, seq=sequence))
    straddle = (Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src="192.0.2.10", dst="1.2.3.4")
                / UDP(sport=1, dport=2))
    collector = collector_of(original_packets())
    # an identifier made of the last bytes of one address and the first of the next
    collector.addresses[bytes([2, 10, 1, 2])] = Sighting(1, "test")
    path = write_pcap(tmp_path / "numbers.pcap", [tcp, straddle])
    assert bytes([10, 1, 2, 3]) in bytes(tcp) and bytes([2, 10, 1, 2]) in bytes(straddle)
    assert scan(str(path), collector)["total"] == 0
    copied = write_pcap(tmp_path / "copied.pcap", [fresh(bytes([10, 1, 2, 3]))])
    assert scan(str(copied), collector)["total"] == 1  # the same bytes in a payload do count


def test_a_text_only_searcher_finds_the_text_forms_alone() -> None:
    """The same identifiers in binary, DNS wire (a name, a reverse name) and text: a text-only
    searcher reports the text spellings (a reverse name as text is still reverse DNS)."""
    address, name = bytes([10, 1, 2, 3]), DNS_NAME.encode()
    binary = b"<" + address + b">"
    wire = b"\x07printer\x04corp\x07example\x00\x013\x012\x011\x0210\x07in-addr\x04arpa\x00"
    text = b"at " + IP_A.encode() + b" ptr 3.2.1.10.in-addr.arpa host " + DNS_NAME.upper().encode()
    pieces = [binary, wire, text]
    everything = Searcher({address: True}, {name: True})
    assert {(piece, hit[3]) for piece, hits in everything.search_pieces(pieces) for hit in hits} >= {
        (0, "binary"), (1, "dns-wire"), (1, "reverse-dns")}
    text_only = Searcher({address: True}, {name: True}, text_only=True)
    found = [(piece, start, end, identifier, encoding)
             for piece, hits in text_only.search_pieces(pieces) for start, end, identifier, encoding in hits]
    assert sorted(found) == [(2, 3, 11, ("ipv4", address), "text"),
                             (2, 16, 37, ("ipv4", address), "reverse-dns"),
                             (2, 43, 63, ("name", name), "text")]


def test_a_forgotten_name_is_not_found_by_its_first_labels() -> None:
    """Two names share their first label (and so a prefilter key); once one is forgotten (kept
    and found already), its first labels before a compression pointer are no hit of it."""
    kept, other = b"host1.corp.example", b"host1.other.org"
    searcher = Searcher({}, {kept: False, other: False})
    wire = b"xx\x05host1\x04corp\xc0\x0c"
    assert [hits for _, hits in searcher.search_pieces([wire])] == [[(2, 15, ("name", kept), "dns-wire")]]
    searcher.forget([("name", kept)])
    assert searcher.search_pieces([wire]) == []
    assert searcher.search_pieces([b"\x05host1\x05other\x03org\x00"])[0][1][0][2] == ("name", other)


def test_what_is_found_does_not_depend_on_how_frames_are_grouped(
        planted: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, residual = planted
    monkeypatch.setattr(residual_module, "CHUNK_BYTES", 1)  # each frame searched alone, kept ones forgotten
    assert scan(str(path), collector_of(original_packets())) == residual


def test_forgetting_finds_what_a_searcher_built_without_the_forgotten_finds() -> None:
    """The prefilter tables are rebuilt only once half the identifiers are forgotten; until then
    a forgotten identifier still passes the prefilter and must be refused by the exact check.
    Forgetting in steps, each search equals a fresh searcher's over the remaining identifiers,
    for binary, text and DNS-wire forms, across the rebuilds."""
    rng = random.Random(6)
    addresses = [bytes(rng.randrange(1, 224) for _ in range(4)) for _ in range(40)]
    addresses += [bytes([0x20, 0x01]) + rng.randbytes(14) for _ in range(10)]
    addresses += [bytes([0x02]) + rng.randbytes(5) for _ in range(10)]
    names = [f"host{i}.corp{i % 3}.example".encode() for i in range(20)]
    pieces = []
    for raw in addresses:
        text = str(ipaddress.ip_address(raw)).encode() if len(raw) != 6 else raw.hex(":").encode()
        pieces.append(rng.randbytes(7) + raw + b" " + text + b" ")
    for name in names:
        wire = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
        pieces.append(b"q" + wire + b" " + name + b"!")
    identifiers = [(("mac" if len(raw) == 6 else "ipv4" if len(raw) == 4 else "ipv6"), raw)
                   for raw in addresses] + [("name", name) for name in names]
    rng.shuffle(identifiers)
    searcher = Searcher({raw: True for raw in addresses}, {name: True for name in names})
    rebuilt = 0
    for step in range(0, len(identifiers), 7):
        left = identifiers[step:]
        fresh_searcher = Searcher({raw: True for kind, raw in left if kind != "name"},
                                  {raw: True for kind, raw in left if kind == "name"})
        found = searcher.search_pieces(pieces)
        assert found == fresh_searcher.search_pieces(pieces)
        assert {hit[2] for _, hits in found for hit in hits} == set(left)
        before = searcher.tables
        searcher.forget(identifiers[step:step + 7])
        rebuilt += searcher.tables is not before
    assert 1 <= rebuilt < len(identifiers) // 7  # rebuilt, but not on every forget
