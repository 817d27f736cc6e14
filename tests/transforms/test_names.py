"""The names transform: keyed same-length label hashes, kept labels, reverse names, remove."""

from __future__ import annotations

import ipaddress

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from anontrace.keys import Key
from anontrace.transforms.base import Context
from anontrace.transforms.ip import Ip, IpConfig
from anontrace.transforms.names import Names, NamesConfig
from tests.helpers import make_batch

KEY = Key(bytes(range(32)))


def query(name: str, qtype: str = "A") -> bytes:
    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=40000, dport=53)
                 / DNS(id=1, qd=DNSQR(qname=name, qtype=qtype)))


def run(frames: list[bytes], config: NamesConfig | None = None) -> tuple[list[bytes], object]:
    batch = Names(config or NamesConfig(), Context(KEY)).apply(make_batch(frames))
    return [bytes(d) for d in batch.data], batch


def qname(frame: bytes) -> str:
    return str(DNS(frame[42:]).qd[0].qname.decode())


def test_labels_are_hashed_same_length_consistently_tld_kept() -> None:
    (one, two), _ = run([query("db1.corp.example.com"), query("web.corp.example.com")])
    first, second = qname(one).split("."), qname(two).split(".")
    assert [len(x) for x in first[:4]] == [3, 4, 7, 3] and first[3] == "com"
    assert first[1:] == second[1:] and first[0] != second[0]  # same labels, same hashes
    assert "corp" not in qname(one) and "example" not in qname(one)


def test_kept_labels_and_service_labels_stay() -> None:
    (out,), _ = run([query("Alice's iPhone._airplay._tcp.local", "PTR")])
    labels = qname(out).split(".")
    assert labels[1:] == ["_airplay", "_tcp", "local", ""] and labels[0] != "Alice's iPhone"


def test_keep_policy_keeps_names() -> None:
    frame = query("db1.corp.example.com")
    (out,), _ = run([frame], NamesConfig(policy="keep"))
    assert out == frame


def test_remove_policy_cuts_the_frame_at_the_name() -> None:
    (out,), batch = run([query("db1.corp.example.com")], NamesConfig(policy="remove"))
    assert len(out) == 42 + 12 and batch.cut == {"host name removed (names: remove)": 1}  # type: ignore[attr-defined]


def test_reverse_names_map_like_the_address_or_cut() -> None:
    context = Context(KEY)
    mapped = Ip(IpConfig(), context).mapper.map(ipaddress.ip_address("2001:db8::7").packed)
    names = Names(NamesConfig(policy="keep"), context)
    v6 = query(ipaddress.ip_address("2001:db8::7").reverse_pointer, "PTR")
    v4 = query("7.0.0.10.in-addr.arpa", "PTR")
    batch = names.apply(make_batch([v6, v4]))
    assert qname(bytes(batch.data[0])) == ipaddress.ip_address(mapped).reverse_pointer + "."
    mapped4 = names.addresses.map(bytes([10, 0, 0, 7]))
    labels = [str(b) for b in reversed(mapped4)]
    if [len(x) for x in labels] == [1, 1, 1, 2]:
        assert qname(bytes(batch.data[1])) == ".".join(labels) + ".in-addr.arpa."
    else:
        assert len(batch.data[1]) == 42 + 12
        assert batch.cut == {"reverse DNS name: the mapped address does not fit its labels": 1}
