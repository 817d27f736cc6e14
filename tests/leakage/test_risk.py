"""Re-identification risk on traces whose answers are known by how they were built: host profiles
and prefix disclosure here, and the collector's wiring of clocks, sweeps and timing (each measured
on its own in test_clocks, test_contacts and test_timing)."""

from __future__ import annotations

import ipaddress
import pickle
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet

from anontrace.crypto.cryptopan import CryptoPAn
from anontrace.leakage.gates import Gate, evaluate
from anontrace.leakage.risk import RiskCollector
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.pipeline import RunStats, prepare
from tests.leakage.risk_traces import ETHER, KEY, batch_of, conforms, packed, through_profile

LINUX = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
WINDOWS = [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None), ("SAckOK", b"")]


def map_addresses(batch: Batch, mapping: dict[bytes, bytes] | None = None) -> Batch:
    """Rewrite every IP address field of the output with `mapping`, or with Crypto-PAn under KEY."""
    cipher = CryptoPAn(KEY)
    for layers, out in zip(batch.layers, batch.data, strict=True):
        for offsets, size in ((layers.ipv4, 4), (layers.ipv6, 16)):
            for offset in offsets:
                address = bytes(out[offset:offset + size])
                new = mapping[address] if mapping is not None else cipher.encrypt([address])[0]
                out[offset:offset + size] = new
    return batch


def collect(batch: Batch, pair: bool = True, **options: Any) -> dict[str, Any]:
    collector = RiskCollector(pair, **options)
    collector.observe(batch, [None] * len(batch))
    result = collector.result()
    conforms(result)  # JSON-safe in every test
    return result


def scrub(tmp_path: Path, packets: Sequence[Packet], profile: str, pair: bool = True) -> dict[str, Any]:
    """Run `packets` through the real pipeline under a shipped profile, observed by the collector."""
    collector = RiskCollector(pair)
    through_profile(tmp_path, packets, profile, collector)
    result = collector.result()
    conforms(result)
    return result


def syn(source: str, ttl: int, window: int, options: list[Any], flags: str = "S") -> Packet:
    return (ETHER / IP(src=source, dst="192.0.2.200", ttl=ttl)
            / TCP(sport=40000, dport=80, flags=flags, window=window, options=options))


FINGERPRINTED = [syn("10.0.0.1", 64, 29200, LINUX), syn("10.0.0.2", 64, 29200, LINUX),
                 syn("10.0.0.3", 64, 29200, LINUX), syn("10.0.0.4", 128, 64240, WINDOWS),
                 syn("10.0.0.5", 128, 64240, WINDOWS), syn("10.0.0.6", 255, 64000, WINDOWS)]


def test_hosts_with_shared_fingerprints_have_their_k() -> None:
    # k per host as built: 3, 3, 3, 2, 2, 1 (the last host's TTL and window are its own)
    found = collect(batch_of(FINGERPRINTED))["fingerprints"]
    assert found["features"] == ["ttl", "tcp_window", "tcp_options", "mss"]
    assert (found["hosts"], found["unique"]) == (6, 1)
    assert found["unique_fraction"] == 1 / 6
    assert found["k_histogram"] == [{"k": 1, "hosts": 1}, {"k": 2, "hosts": 2}, {"k": 3, "hosts": 3}]
    assert found["original"] == {"hosts": 6, "unique": 1, "unique_fraction": 1 / 6}


def test_each_feature_separates_hosts_and_syn_acks_count() -> None:
    packets = [syn("10.0.0.1", 64, 29200, LINUX), syn("10.0.0.2", 64, 29200, LINUX[:-1]),  # options
               syn("10.0.0.3", 64, 29200, [("MSS", 1380), *LINUX[1:]]),  # MSS
               syn("10.0.0.4", 64, 29200, LINUX, flags="SA"),  # a server's SYN/ACK: same stack as .1
               syn("10.0.0.5", 64, 29200, LINUX, flags="A"),  # not a SYN: not fingerprinted
               ETHER / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64)  # hop limit as TTL
               / TCP(flags="S", window=29200, options=LINUX)]
    found = collect(batch_of(packets))["fingerprints"]
    assert found["k_histogram"] == [{"k": 1, "hosts": 2}, {"k": 3, "hosts": 3}]


def test_strict_output_fingerprints_collapse(tmp_path: Path) -> None:
    # strict writes one TTL, buckets windows (64240 and 64000 -> 32768) and removes timestamps:
    # the third stack becomes the second; the first still differs by its options
    found = scrub(tmp_path, FINGERPRINTED, "strict")["fingerprints"]
    assert found["original"]["unique"] == 1
    assert (found["hosts"], found["unique"]) == (6, 0)
    assert found["k_histogram"] == [{"k": 3, "hosts": 6}]
    kept = scrub(tmp_path, FINGERPRINTED, "default")["fingerprints"]  # buckets only TTLs, all usual
    assert kept["unique"] == 1


def handshake(client: str, server: str, port: int) -> list[Packet]:
    return [ETHER / IP(src=client, dst=server) / TCP(sport=50000, dport=port, flags="S"),
            ETHER / IP(src=server, dst=client) / TCP(sport=port, dport=50000, flags="SA")]


def test_hosts_serving_the_same_ports_hide_among_each_other() -> None:
    packets = [*handshake("10.1.0.1", "10.2.0.1", 80), *handshake("10.1.0.1", "10.2.0.1", 443),
               *handshake("10.1.0.2", "10.2.0.2", 443), *handshake("10.1.0.2", "10.2.0.2", 80),
               *handshake("10.1.0.3", "10.2.0.3", 22),
               ETHER / IP(src="10.1.0.1", dst="10.2.0.4") / TCP(sport=50001, dport=25, flags="S")]
    found = collect(batch_of(packets))["services"]
    assert (found["hosts"], found["unique"]) == (3, 1)  # {80, 443} twice, {22}; .4 never answered
    assert found["k_histogram"] == [{"k": 1, "hosts": 1}, {"k": 2, "hosts": 2}]
    assert found["original"] == {"hosts": 3, "unique": 1, "unique_fraction": 1 / 3}


def test_a_udp_service_is_a_port_that_answers() -> None:
    def udp(source: str, destination: str, sport: int, dport: int) -> Packet:
        return ETHER / IP(src=source, dst=destination) / UDP(sport=sport, dport=dport)
    packets = [udp("10.1.0.1", "10.2.0.1", 5000, 53), udp("10.2.0.1", "10.1.0.1", 53, 5000),
               udp("10.1.0.1", "10.2.0.2", 5001, 53), udp("10.2.0.2", "10.1.0.1", 53, 5001),
               udp("10.1.0.1", "10.2.0.3", 5002, 123), udp("10.2.0.3", "10.1.0.1", 123, 5002),
               udp("10.1.0.1", "10.2.0.4", 5003, 161)]  # no reply: .4 serves nothing seen
    found = collect(batch_of(packets), pair=False)["services"]
    assert (found["hosts"], found["unique"]) == (3, 1)
    assert found["original"] is None


def test_strict_changes_service_profiles_only_where_ports_are_high(tmp_path: Path) -> None:
    # strict buckets ports from 1024 up: 8080 and 8443 both become 1024, so two profiles merge
    packets = [*handshake("10.1.0.1", "10.2.0.1", 8080), *handshake("10.1.0.1", "10.2.0.2", 8443),
               *handshake("10.1.0.1", "10.2.0.3", 22)]
    found = scrub(tmp_path, packets, "strict")["services"]
    assert found["original"]["unique"] == 3
    assert (found["hosts"], found["unique"]) == (3, 1)


KNOWN = "10.1.2.3"


def flipped(address: str, bit: int) -> str:
    """`address` with bit `bit` (0 = most significant) flipped: their common prefix is `bit` bits."""
    ip = ipaddress.ip_address(address)
    return str(ipaddress.ip_address(int(ip) ^ (1 << (ip.max_prefixlen - 1 - bit))))


def disclosure_packets() -> list[Packet]:
    packets: list[Packet] = []
    for bit in (8, 16, 24, 31):
        packets += [ETHER / IP(src=flipped(KNOWN, bit), dst=KNOWN) / UDP()] * 2
    for bit in (20, 64, 127):
        packets.append(ETHER / IPv6(src=flipped("2001:db8::1", bit), dst="2001:db8::1") / UDP())
    return packets


def test_prefix_disclosure_reveals_the_common_prefix_with_known_hosts_and_the_next_bit() -> None:
    # a common prefix of p bits also says that bit p + 1 differs: p + 1 bits, at most the width
    known = [packed(KNOWN), packed("2001:db8::1")]
    found = collect(map_addresses(batch_of(disclosure_packets())), known=known)["prefix_disclosure"]
    assert found["ipv4"] == {"known_hosts": 1, "known_missing": 0, "hosts": 4, "mean_bits": 20.75,
                             "median_bits": 21.0, "max_bits": 32,
                             "histogram": [{"bits": b, "hosts": 1} for b in (9, 17, 25, 32)]}
    assert found["ipv6"]["histogram"] == [{"bits": b, "hosts": 1} for b in (21, 65, 128)]
    assert (found["ipv6"]["known_hosts"], found["ipv6"]["max_bits"]) == (1, 128)


def test_without_the_original_the_busiest_hosts_are_the_known_ones() -> None:
    batch = map_addresses(batch_of(disclosure_packets()))
    anonymized = prepare([Frame(i, 0, bytes(out), len(out), 1) for i, out in enumerate(batch.data)],
                         RunStats())  # what `report ANONYMIZED` feeds: the output as the frames
    found = collect(anonymized, pair=False, known_hosts=1)["prefix_disclosure"]
    assert found["ipv4"]["histogram"] == [{"bits": b, "hosts": 1} for b in (9, 17, 25, 32)]
    assert found["ipv6"]["histogram"] == [{"bits": b, "hosts": 1} for b in (21, 65, 128)]
    assert (found["ipv4"]["known_hosts"], found["ipv6"]["known_hosts"]) == (1, 1)


def test_only_truly_revealed_bits_count_when_the_mapping_does_not_preserve_prefixes() -> None:
    near, far, kept = flipped(KNOWN, 24), flipped(KNOWN, 8), flipped(KNOWN, 16)  # share 24, 8, 16
    mapping = {packed(KNOWN): packed("172.16.0.0"),
               packed(near): packed(flipped("172.16.0.0", 4)),  # output shares 4: 4 bits right
               packed(far): packed(flipped("172.16.0.0", 30)),  # output shares 30: only 8 right
               packed(kept): packed(flipped("172.16.0.0", 16)),  # shares 16 on both sides: 17 right
               packed("224.0.0.251"): packed("224.0.0.251")}  # multicast: no host
    packets = [ETHER / IP(src=near, dst=KNOWN) / UDP(), ETHER / IP(src=far, dst=KNOWN) / UDP(),
               ETHER / IP(src=kept, dst=KNOWN) / UDP(), ETHER / IP(src=KNOWN, dst="224.0.0.251") / UDP()]
    found = collect(map_addresses(batch_of(packets), mapping), known_hosts=1)["prefix_disclosure"]
    assert found["ipv4"]["histogram"] == [{"bits": b, "hosts": 1} for b in (4, 8, 17)]
    assert found["ipv4"]["known_hosts"] == 1
    assert found["ipv6"] == {"known_hosts": 0, "known_missing": 0, "hosts": 0, "mean_bits": None,
                             "median_bits": None, "max_bits": None, "histogram": []}


def test_known_addresses_never_seen_leave_disclosure_unmeasured_and_its_gate_failing() -> None:
    absent = [packed("192.0.2.77"), packed("192.0.2.78"), packed("2001:db8::99")]
    batch = map_addresses(batch_of(disclosure_packets()))
    found = collect(batch, known=absent)["prefix_disclosure"]
    # 5 IPv4 hosts (KNOWN and its 4 neighbours) and 4 IPv6 ones, none of them known
    assert found["ipv4"] == {"known_hosts": 0, "known_missing": 2, "hosts": 5, "mean_bits": None,
                             "median_bits": None, "max_bits": None, "histogram": []}
    assert (found["ipv6"]["known_missing"], found["ipv6"]["hosts"], found["ipv6"]["max_bits"]) == (1, 4, None)
    gates = [Gate("risk.prefix_disclosure.ipv4.max_bits", 32, "--fail-on")]
    assert evaluate({"risk": {"prefix_disclosure": found}}, gates)[0]["passed"] is False
    one_seen = collect(batch, known=[packed(KNOWN), *absent])["prefix_disclosure"]["ipv4"]
    assert (one_seen["known_hosts"], one_seen["known_missing"], one_seen["max_bits"]) == (1, 2, 32)


def test_a_known_host_alone_in_its_family_measures_nothing() -> None:
    packets = [ETHER / IP(src=KNOWN, dst="224.0.0.251") / UDP()]  # the multicast group is no host
    found = collect(batch_of(packets), known=[packed(KNOWN)])["prefix_disclosure"]["ipv4"]
    assert (found["known_hosts"], found["hosts"]) == (1, 0)
    assert (found["mean_bits"], found["median_bits"], found["max_bits"]) == (None, None, None)


def stamped(source: str, ticks: int) -> Packet:
    return (ETHER / IP(src=source, dst="192.0.2.99")
            / TCP(sport=40000, dport=443, flags="A", options=[("Timestamp", (ticks, 0))]))


def test_strict_removes_timestamps_and_with_them_the_clock(tmp_path: Path) -> None:
    packets = [stamped("10.0.0.7", 3000 * i) for i in range(30)]  # 1000 Hz, 87 s
    for i, packet in enumerate(packets):
        packet.time = 3 * i
    assert scrub(tmp_path, packets, "default")["clock_skew"]["exposed_hosts"] == 1  # renumbered only
    found = scrub(tmp_path, packets, "strict")["clock_skew"]
    assert (found["hosts_with_timestamps"], found["exposed_hosts"]) == (0, 0)


def sweep(source: str, targets: list[str]) -> list[Packet]:
    return [ETHER / IP(src=source, dst=t) / TCP(sport=33000, dport=22, flags="S") for t in targets]


def scan_packets() -> list[Packet]:
    chosen = random.Random(5).sample(range(1, 1 << 16), 40)
    packets = sweep("10.9.0.1", [f"10.0.0.{i}" for i in range(1, 65)])
    packets += sweep("10.9.0.2", [f"10.20.{n >> 8}.{n & 255}" for n in chosen])
    packets += sweep("10.9.0.3", [f"10.30.0.{i}" for i in range(1, 32)])  # 31 targets: no sweep
    packets += [ETHER / IP(src="10.9.0.4", dst=f"10.50.0.{i}") / ICMP(type=8) for i in range(1, 41)]
    # answers contact no one: a server's SYN/ACKs and a host's echo replies to 40 others
    packets += [ETHER / IP(src="10.0.0.5", dst=f"10.40.0.{i}") / TCP(flags="SA") for i in range(40)]
    return packets + [ETHER / IP(src="10.0.0.6", dst=f"10.40.1.{i}") / ICMP(type=0) for i in range(40)]


def test_a_sequential_sweep_reveals_the_range_it_swept_but_its_details_do_not_say_which() -> None:
    found = collect(map_addresses(batch_of(scan_packets())))["scans"]
    anonymized = [str(ipaddress.ip_address(CryptoPAn(KEY).encrypt([packed(a)])[0]))
                  for a in ("10.9.0.1", "10.9.0.2", "10.9.0.4")]
    # the sweeps of .1 (64 targets) and .4 (40) stepped up one address at a time; .2's did not
    assert (found["min_targets"], found["sweeps"], found["addresses_exposed"]) == (32, 3, 104)
    # the report travels with the trace: which sweep was in order in the ORIGINAL stays unsaid
    assert found["details"] == [{"source": anonymized[0], "targets": 64, "sequential_in_original": None},
                                {"source": anonymized[1], "targets": 40, "sequential_in_original": None},
                                {"source": anonymized[2], "targets": 40, "sequential_in_original": None}]


def test_without_the_original_every_sweep_counts_as_exposed() -> None:
    found = collect(batch_of(scan_packets()), pair=False)["scans"]
    assert (found["sweeps"], found["addresses_exposed"]) == (3, 144)
    assert [d["sequential_in_original"] for d in found["details"]] == [None, None, None]


def test_a_reply_in_a_later_batch_still_names_a_service() -> None:
    question = ETHER / IP(src="10.1.0.1", dst="10.2.0.1") / UDP(sport=5000, dport=53)
    answer = ETHER / IP(src="10.2.0.1", dst="10.1.0.1") / UDP(sport=53, dport=5000)
    collector = RiskCollector(False)
    collector.observe(batch_of([question]), [None])
    assert collector.output.services == {}
    collector.observe(batch_of([answer, question]), [None, None])
    assert collector.output.services == {packed("10.2.0.1"): {(17, 53)}}


def test_timing_is_measured_on_the_written_frames() -> None:
    packets = [ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()] * 4
    batch = batch_of(packets, [0, 1, 3, 4])
    batch.ts_ns[:] = [0, 10, 30, 40]
    batch.drop(3, "test")
    # written frames 0, 1, 2: original intervals 1, 2 against output intervals 10, 20
    assert collect(batch)["timing"]["interarrival_correlation"] == 1.0
    assert collect(batch, pair=False)["timing"]["interarrival_correlation"] is None


# ------------------------------------------------------------------------------------------
# Collectors of consecutive pieces of a capture, merged


def merged(pieces: Sequence[Batch], pair: bool = True, **options: Any) -> RiskCollector:
    """One fresh collector per batch, merged in order into the first."""
    collectors = []
    for batch in pieces:
        collector = RiskCollector(pair, **options)
        collector.observe(batch, [None] * len(batch))
        collectors.append(collector)
    for later in collectors[1:]:
        collectors[0].merge(later)
    return collectors[0]


def test_a_reply_in_a_later_piece_names_the_server_not_the_client() -> None:
    question = ETHER / IP(src="10.1.0.1", dst="10.2.0.1") / UDP(sport=5000, dport=53)
    answer = ETHER / IP(src="10.2.0.1", dst="10.1.0.1") / UDP(sport=53, dport=5000)
    collector = merged([batch_of([question]), batch_of([answer, answer])], pair=False)
    assert collector.output.services == {packed("10.2.0.1"): {(17, 53)}}
    # the answer opened no flow: only the question contacted a host
    assert collector.contacts.by_source() == {packed("10.1.0.1"): {packed("10.2.0.1"): None}}


def test_a_contact_that_was_none_does_not_hide_a_later_one() -> None:
    sweeper, peer = "10.0.0.66", "10.9.0.7"
    reply = ETHER / IP(src=sweeper, dst=peer) / UDP(sport=5000, dport=161)
    first = batch_of([ETHER / IP(src=peer, dst=sweeper) / UDP(sport=161, dport=5000)])
    later = batch_of([reply, ETHER / IP(src=sweeper, dst="10.9.0.8") / ICMP(),
                      ETHER / IP(src=sweeper, dst=peer) / TCP(sport=1, dport=2, flags="S")])
    targets = merged([first, later], pair=False).contacts.by_source()[packed(sweeper)]
    assert list(targets) == [packed("10.9.0.8"), packed(peer)]  # the peer by its SYN, after the ping


def test_only_the_first_fingerprints_of_a_host_are_kept_across_pieces() -> None:
    syns = [syn("10.0.0.1", 64, 1000 + n, LINUX) for n in range(40)]
    collector = merged([batch_of(syns[:10]), batch_of(syns[5:25]), batch_of(syns[25:])])
    kept = collector.output.fingerprints[packed("10.0.0.1")]
    assert sorted(window for _, window, _, _ in kept) == list(range(1000, 1032))


def test_collectors_merged_measure_what_one_collector_measures() -> None:
    packets = [*FINGERPRINTED, *(syn(f"10.0.{n}.9", 64, 29200, LINUX, "SA") for n in range(3))]
    batch = map_addresses(batch_of(packets))
    one = RiskCollector(True)
    one.observe(batch, [None] * len(batch))
    stamps = [n * 1000 for n in range(len(packets))]
    pieces = [map_addresses(batch_of(packets[start:end], stamps[start:end]))
              for start, end in ((0, 4), (4, len(packets)))]
    assert merged(pieces).result() == one.result()
    copy = pickle.loads(pickle.dumps(merged(pieces)))
    assert copy.result() == one.result()
