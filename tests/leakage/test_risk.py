"""Re-identification risk on traces whose answers are known by how they were built."""

from __future__ import annotations

import io
import ipaddress
import itertools
import json
import math
import pickle
import random
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from anontrace.crypto.cryptopan import CryptoPAn
from anontrace.flows import times
from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.keys import Key
from anontrace.leakage.gates import Gate, evaluate
from anontrace.leakage.risk import INTERVAL_LIMIT, Clock, Intervals, RiskCollector
from anontrace.leakage.schema import SCHEMA
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.pipeline import RunStats, prepare, run
from anontrace.rules.compile import read_rules
from tests.helpers import write_pcap

SECOND = 1_000_000_000
KEY = bytes(range(32))
LINUX = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no MAC lookups while building
WINDOWS = [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None), ("SAckOK", b"")]



def conforms(result: dict[str, Any]) -> None:
    """The section is JSON without NaN or infinities, in the shape the report schema gives it."""
    jsonschema.validate(json.loads(json.dumps(result, allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/risk"})

def batch_of(packets: Sequence[Packet], times_ns: list[int] | None = None) -> Batch:
    """The batch the pipeline would build from `packets`; its output starts equal to the input."""
    times = times_ns if times_ns is not None else [i * 1000 for i in range(len(packets))]
    frames = [Frame(i, t, bytes(p), len(p), 1) for i, (p, t) in enumerate(zip(packets, times, strict=True))]
    return prepare(frames, RunStats())


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
    source = write_pcap(tmp_path / f"{profile}.pcap", list(packets), nano=True)
    reader = open_reader(str(source))
    collector = RiskCollector(pair)
    run(reader, PcapWriter(io.BytesIO(), "mem"), read_rules(profile).build(Key(KEY)),
        observers=[collector])
    reader.stream.close()
    result = collector.result()
    conforms(result)
    return result


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


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


def test_a_host_with_enough_timestamps_has_its_clock_skew_exposed() -> None:
    start = (1 << 32) - 50_000  # the clock wraps 50 s into the capture
    times = [round(i * 120 * SECOND / 39) for i in range(40)]  # 40 samples over 120 s
    packets = [stamped("10.0.0.7", (start + math.floor(t * 1000 * (1 + 50e-6) / SECOND)) % (1 << 32))
               for t in times]
    packets += [stamped("10.0.0.8", 1000 + i * 30_000) for i in range(5)]  # 5 samples: too few
    times += [i * 30 * SECOND for i in range(5)]
    found = collect(batch_of(packets, times), pair=False)["clock_skew"]
    assert (found["min_samples"], found["min_span_s"]) == (20, 60.0)
    assert (found["hosts_with_timestamps"], found["exposed_hosts"]) == (2, 1)
    host = found["hosts"][0]
    assert (host["host"], host["samples"], host["span_s"]) == ("10.0.0.7", 40, 120.0)
    assert abs(host["skew_ppm"] - 50) < 3


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


def sensor_and_noise(period_ns: int) -> list[Packet]:
    """A sensor reporting every `period_ns` (60 reports) among random traffic of other hosts."""
    draw = random.Random(11)
    timed = [(i * period_ns, ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=7000))
             for i in range(60)]
    for talker in range(3):
        t = 0.0
        for _ in range(20):
            t += draw.expovariate(1 / (period_ns * 3))
            timed.append((int(t), ETHER / IP(src=f"10.6.0.{talker}", dst="10.7.0.1") / UDP(dport=9)))
    timed.sort(key=lambda item: item[0])
    for t, packet in timed:
        packet.time = t / SECOND
    return [packet for _, packet in timed]


def test_a_periodic_sensor_survives_exact_times(tmp_path: Path) -> None:
    found = scrub(tmp_path, sensor_and_noise(50_000_000), "default")["timing"]
    assert found["interarrival_correlation"] == 1.0  # default keeps times exactly
    assert (found["periodic_original"], found["periodic_anonymized"]) == (1, 1)
    assert (found["periodic_masked"], found["periodic_exposed"]) == (0, 1)
    (flow,) = found["flows"]
    assert flow["period_s"] == 0.05 and flow["anonymized_cv"] == 0.0 and flow["masked"] is False
    assert flow["original_cv"] is None  # details carry only what the output shows
    assert flow["flow"].startswith("17 ") and "10.5.0." not in flow["flow"]  # named in output terms


def test_strict_noise_masks_a_fast_period_and_the_report_does_not_describe_it(tmp_path: Path) -> None:
    # 10 ms Laplace noise on each time: interval std about 2 * 10 ms, CV about 0.4 on 50 ms
    found = scrub(tmp_path, sensor_and_noise(50_000_000), "strict")["timing"]
    assert (found["periodic_original"], found["periodic_anonymized"]) == (1, 0)
    assert (found["periodic_masked"], found["periodic_exposed"]) == (1, 0)
    assert found["flows"] == []  # what the noise hid is counted, never described: no period, no flow
    assert found["interarrival_correlation"] < 1.0


def test_periodic_flows_are_listed_as_the_output_shows_them() -> None:
    # two sensors, each every 1 s, 0.3 s apart, to ports 8080 and 8443 that the output merges into
    # port 1024: in the output one stream with gaps 0.3 and 0.7 s, not periodic by its gaps
    times, packets = [], []
    for i in range(20):
        for offset, port in ((0, 8080), (300_000_000, 8443)):
            times.append(i * SECOND + offset)
            packets.append(ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=port))
    batch = batch_of(packets, times)
    for out in batch.data:
        out[36:38] = (1024).to_bytes(2, "big")  # the UDP destination port, after 14 + 20 bytes
    found = collect(batch)["timing"]
    assert (found["periodic_original"], found["periodic_masked"], found["periodic_exposed"]) == (2, 0, 2)
    assert (found["periodic_anonymized"], found["flows"]) == (0, [])


def test_without_the_original_periodicity_is_judged_on_the_output() -> None:
    packets = sensor_and_noise(1_000_000_000)
    found = collect(batch_of(packets, [round(float(p.time) * SECOND) for p in packets]), pair=False)["timing"]
    assert found["interarrival_correlation"] is None
    assert (found["periodic_original"], found["periodic_masked"]) == (None, None)
    assert (found["periodic_anonymized"], found["periodic_exposed"]) == (1, 1)
    assert found["flows"] == [{"flow": "17 10.5.0.1 > 10.5.0.2:7000", "period_s": 1.0, "original_cv": None,
                               "anonymized_cv": 0.0, "masked": None}]


def test_a_missed_report_does_not_hide_a_period() -> None:
    # 31 reports 1 s apart but one missing: 29 intervals of 1 s and one of 2 s (CV 0.17 if counted)
    times = [i * SECOND for i in range(32) if i != 16]
    packets = [ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=7000)] * len(times)
    found = collect(batch_of(packets, times), pair=False)["timing"]
    assert found["periodic_exposed"] == 1
    assert found["flows"][0]["period_s"] == 1.0 and found["flows"][0]["anonymized_cv"] == 0.0


def test_interarrival_correlation_of_written_frames() -> None:
    packets = [ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()] * 5
    batch = batch_of(packets, [0, 1, 3, 6, 10])
    batch.ts_ns[:] = [0, 10, 20, 30, 40]
    batch.drop(2, "test")
    # written frames 0, 1, 3, 4: original intervals 1, 5, 4 against output intervals 10, 20, 10
    expected = 150 / math.sqrt(78 * 600)  # sums of deviation products and squares, times 9
    assert math.isclose(collect(batch)["timing"]["interarrival_correlation"], expected)
    reversed_times = batch_of(packets[:4], [0, 1, 3, 6])
    reversed_times.ts_ns[:] = [0, 3, 5, 6]  # intervals 1, 2, 3 against 3, 2, 1
    assert collect(reversed_times)["timing"]["interarrival_correlation"] == -1.0
    assert collect(batch_of(packets[:2]))["timing"]["interarrival_correlation"] is None


def logged(intervals: Intervals) -> dict[int, list[int]]:
    """The intervals kept for each stream, sorted."""
    found: dict[int, list[int]] = {}
    for streams, values in zip(intervals.streams, intervals.values, strict=True):
        for stream, value in zip(streams.tolist(), values.tolist(), strict=True):
            found.setdefault(stream, []).append(value)
    return {stream: sorted(values) for stream, values in found.items()}


def test_intervals_are_taken_per_stream_across_batches() -> None:
    intervals = Intervals()
    intervals.add(np.array([0, 1, 0]), times([10, 5, 30]))
    intervals.add(np.array([1, 0, 1, 2]), times([6, 31, 20, 7]))  # stream 2 has one frame: no interval
    assert logged(intervals) == {0: [1, 20], 1: [1, 14]}
    assert intervals.counts[:3].tolist() == [2, 2, 0]


def test_only_the_first_intervals_of_a_stream_are_kept_and_any_time_fits() -> None:
    intervals = Intervals()
    squares = [i * i for i in range(INTERVAL_LIMIT + 50)]  # intervals 1, 3, 5, ...
    intervals.add(np.zeros(100, np.int64), times(squares[:100]))
    intervals.add(np.zeros(len(squares) - 100, np.int64), times(squares[100:]))
    assert logged(intervals) == {0: [2 * i + 1 for i in range(INTERVAL_LIMIT)]}
    huge = Intervals()
    huge.add(np.array([0, 0]), times([(1 << 64) + 1, (1 << 64) + 4]))
    huge.add(np.array([0]), times([(1 << 64) + 10]))
    assert logged(huge) == {0: [3, 6]}


def test_a_stream_a_hair_from_the_periodic_limit_is_judged_exactly() -> None:
    # nine kept intervals m - d (4), m, m + d (4), and one large one ignored: CV = d * sqrt(8) / (3 * m),
    # below 0.1 exactly when 800 * d * d < 9 * m * m, that is d <= 106066017 for m = 10**9
    m = 10 ** 9

    def stream(d: int) -> list[int]:
        return [m - d] * 4 + [m] + [m + d] * 4 + [5 * m]
    assert 800 * 106066017 ** 2 < 9 * m * m < 800 * 106066018 ** 2
    intervals = Intervals()
    for number, d in enumerate((106066017, 106066018, 0, m // 2)):
        intervals.add(np.full(11, number), times([0, *itertools.accumulate(stream(d))]))
    found = intervals.periodic(4)
    assert sorted(found) == [0, 2]
    assert found[0][1] == 1.0 and 0.1 - found[0][0] < 1e-8
    assert found[2] == (0.0, 1.0)


def test_timestamps_are_read_whatever_the_option_layout() -> None:
    layouts = {"10.0.0.1": [("NOP", None), ("NOP", None), ("Timestamp", (5, 0))],  # the usual one
               "10.0.0.2": [("MSS", 1460), ("Timestamp", (7, 0)), ("NOP", None), ("NOP", None)],
               "10.0.0.3": [("NOP", None), ("NOP", None), ("Timestamp", (0, 0))],  # 0: no reading
               "10.0.0.4": []}
    packets = [ETHER / IP(src=source, dst="192.0.2.99") / TCP(flags="A", options=options)
               for source, options in layouts.items()]
    collector = RiskCollector(False)
    collector.observe(batch_of(packets), [None] * len(packets))
    assert {str(ipaddress.ip_address(host)): clock.last_raw for host, clock in collector.clocks.items()} == \
        {"10.0.0.1": 5, "10.0.0.2": 7}


def test_a_reply_in_a_later_batch_still_names_a_service() -> None:
    question = ETHER / IP(src="10.1.0.1", dst="10.2.0.1") / UDP(sport=5000, dport=53)
    answer = ETHER / IP(src="10.2.0.1", dst="10.1.0.1") / UDP(sport=53, dport=5000)
    collector = RiskCollector(False)
    collector.observe(batch_of([question]), [None])
    assert collector.output.services == {}
    collector.observe(batch_of([answer, question]), [None, None])
    assert collector.output.services == {packed("10.2.0.1"): {(17, 53)}}


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


def test_a_clock_split_anywhere_fits_as_one() -> None:
    hertz, first_tick = 1000.25, (1 << 32) - 7000  # wraps after 7 s
    samples = [(SECOND * n + 1_000_003 * n * n, int(first_tick + hertz * (n + n * n / 1000)))
               for n in range(40)]
    # the least-squares slope of the unwrapped ticks on time, in Hz, computed apart
    n = len(samples)
    t_mean = Fraction(sum(t for t, _ in samples), n)
    v_mean = Fraction(sum(v for _, v in samples), n)
    slope = sum((t - t_mean) * (v - v_mean) for t, v in samples) / sum((t - t_mean) ** 2 for t, _ in samples)
    expected = (float(slope * SECOND) / 1000 - 1) * 1e6
    for cuts in ([1], [7], [20, 21], list(range(1, 40))):
        bounds = [0, *cuts, n]
        clocks = []
        for start, end in itertools.pairwise(bounds):
            (t0, v0), *_ = samples[start:end]
            clock = Clock(t0, v0 % (1 << 32))
            for t, v in samples[start:end]:
                clock.add(t, v % (1 << 32))
            clocks.append(clock)
        for later in clocks[1:]:
            clocks[0].merge(later)
        assert clocks[0].samples == n and clocks[0].tick == samples[-1][1] - samples[0][1]
        assert clocks[0].last_raw == samples[-1][1] % (1 << 32)
        skew = clocks[0].skew_ppm()
        assert skew is not None and math.isclose(skew, expected, rel_tol=1e-9)


def test_intervals_of_a_stream_split_gain_the_one_across_the_cut() -> None:
    earlier, later = Intervals(), Intervals()
    earlier.add(np.array([0, 1, 0]), times([10, 5, 30]))
    later.add(np.array([0, 1, 2, 0]), times([6, 31, 7, 20]))  # its streams 0, 1, 2 are 1, 0, 2 here
    earlier.merge(later, np.array([1, 0, 2]))
    assert logged(earlier) == {0: [1, 20], 1: [1, 14]}  # 31 - 30 and 6 - 5 cross the cut
    assert earlier.counts[:3].tolist() == [2, 2, 0]
    earlier.add(np.array([2, 0]), times([9, 40]))  # and it goes on as one
    assert logged(earlier) == {0: [1, 9, 20], 1: [1, 14], 2: [2]}


def test_merged_intervals_keep_only_the_first_of_each_stream() -> None:
    squares = [i * i for i in range(INTERVAL_LIMIT + 50)]  # intervals 1, 3, 5, ...
    for cut in (1, 100, INTERVAL_LIMIT, INTERVAL_LIMIT + 1, INTERVAL_LIMIT + 20):
        earlier, later = Intervals(), Intervals()
        earlier.add(np.zeros(cut, np.int64), times(squares[:cut]))
        later.add(np.zeros(len(squares) - cut, np.int64), times(squares[cut:]))
        earlier.merge(later, np.array([0]))
        assert logged(earlier) == {0: [2 * i + 1 for i in range(INTERVAL_LIMIT)]}, cut
        assert earlier.counts[0] == len(squares) - 1
    for start in ((1 << 64) + 1, (1 << 63) - 1):  # times beyond int64 on both sides of the cut, or after it
        earlier, later = Intervals(), Intervals()
        earlier.add(np.array([0]), times([start]))
        later.add(np.array([0, 0]), times([start + 3, start + 9]))
        earlier.merge(later, np.array([0]))
        assert logged(earlier) == {0: [3, 6]}


def test_a_periodic_stream_split_is_still_periodic() -> None:
    report = [ETHER / IP(src="10.0.0.88", dst="10.0.0.99") / UDP(sport=7000, dport=5683)] * 12
    stamps = [SECOND * n for n in range(12)]
    pieces = [batch_of(report[start:end], stamps[start:end]) for start, end in ((0, 5), (5, 6), (6, 12))]
    timing = merged(pieces, pair=False).result()["timing"]
    assert timing["periodic_anonymized"] == 1
    assert timing["flows"][0]["period_s"] == 1.0 and timing["flows"][0]["anonymized_cv"] == 0.0
    alone = merged(pieces[2:], pair=False).result()["timing"]
    assert alone["periodic_anonymized"] == 0  # six frames alone give too few intervals


def test_the_interval_across_a_cut_counts_in_the_correlation() -> None:
    packets = [ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()] * 5
    outputs = [0, 10, 20, 30, 40]
    pieces = [batch_of(packets[:2], [0, 1]), batch_of(packets[2:], [3, 6, 10])]
    pieces[0].ts_ns[:] = outputs[:2]
    pieces[1].ts_ns[:] = outputs[2:]
    pieces[1].drop(0, "test")
    # written frames 0, 1, 3, 4: original intervals 1, 5, 4 against output intervals 10, 20, 10
    expected = 150 / math.sqrt(78 * 600)
    assert math.isclose(merged(pieces).result()["timing"]["interarrival_correlation"], expected)
    assert merged(pieces[1:]).result()["timing"]["interarrival_correlation"] is None  # one interval


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
