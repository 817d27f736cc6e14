"""What the frame targets share: one frame through the whole per-frame path, checked as it goes.

A target imports this module inside `atheris.instrument_imports`, so anontrace is imported (and
its bytecode instrumented for coverage) here, after the instrumentation hook is in place.

`check_frame(data, linktype)` runs what `pipeline.run` runs on every frame - dissection, the cut
at `parsed_to`, every transform of the shipped profiles and of a rule set with scoped steps,
the checksum fix-up - plus the 5-tuple the report's observers read, and asserts what must hold
whatever the bytes (see `check_layers` and `check_output`). Any exception is a crash.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable

from wrappers import BY_NAME, ipv4

from anontrace.crypto.mapping import EMBEDDING, SOLICITED
from anontrace.flows import five_tuple
from anontrace.keys import Key
from anontrace.packet.checksum import fix_checksums
from anontrace.packet.dissect import LINKS, dissect
from anontrace.packet.frame import Frame
from anontrace.packet.layers import Layers
from anontrace.pipeline import RunStats, prepare
from anontrace.rules.compile import Rules, parse_rules, read_rules
from anontrace.transforms.base import Transform

LINKTYPES = tuple(sorted(LINKS))  # the first byte of a dissect input picks one of these
TS_NS = 1_700_000_000_123_456_789
KEY = Key(bytes(32))
# Scoped steps (`when:` filters, so `transforms.scoped` and `rules.filters` run) and payload kept,
# so the payload's identifier search runs over fuzzed bytes too.
SCOPED_RULES = """\
version: 1
steps:
  - use: names
    policy: remove
  - use: generalize
    when: {protocol: [tcp, icmp, icmpv6], network: [10.0.0.0/8, "2001:db8::/32"], direction: inbound}
    ttl: constant
    tcp_sequence: offset
    tcp_timestamps: remove
  - use: generalize
    when: {protocol: udp, port: [53, 67, 547, 4789]}
    ports: bucket
  - use: payload
    when: {protocol: udp, port: 53}
    keep: 512
    identifiers: rewrite
  - use: payload
    when: {network: 192.168.0.0/16, direction: outbound}
    keep: 64
  - use: payload
    keep: 32
"""


# What the strict profile passes through unchanged (its `ip: keep:`, and the all-zero MAC), and
# the forms whose mapping keeps part of the address by design: an embedded IPv4 address may be a
# kept one, and a solicited-node address (IPv6 or MAC) has only 24 bits permuted (a fixed point,
# at 2**-24, is then too likely over a fuzzing run to count as a leak).
STRICT_KEPT = tuple(ipaddress.ip_network(n) for n in ("0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8",
                                                        "::/128", "::1/128"))
PARTLY_KEPT = (*EMBEDDING, SOLICITED)
KEPT_MAC, SOLICITED_MAC = bytes(6), b"\x33\x33\xff"


PROFILES = {name: read_rules(name).build(KEY) for name in ("default", "strict", "research")}
SCOPED = parse_rules(SCOPED_RULES, "<fuzz scoped>")


def _spans(layers: Layers) -> list[tuple[str, int, int]]:
    spans = [("ipv4", o, o + 4) for o in layers.ipv4] + [("ipv6", o, o + 16) for o in layers.ipv6]
    spans += [("mac", o, o + 6) for o in layers.macs]
    spans += [("name", n.offset, n.end) for n in layers.names]
    spans += [("prefix", p.offset, p.offset + p.size) for p in layers.prefixes]
    return spans


def check_layers(data: bytes, layers: Layers) -> None:
    """What dissection promises: offsets inside the frame, and fail closed (a frame not understood
    to its end says why, so the pipeline cuts it)."""
    size = len(data)
    assert 0 <= layers.payload <= layers.parsed_to <= size, (layers.payload, layers.parsed_to, size)
    assert layers.cut is not None or layers.parsed_to == size, ("not cut", layers.parsed_to, size)
    for kind, start, end in _spans(layers):
        assert 0 <= start <= end <= size, (kind, start, end, size)
        assert not start < layers.parsed_to < end, (kind, start, end, "split by", layers.parsed_to)
    for name in layers.names:
        assert name.base == -1 or 0 <= name.base <= name.offset, name
    for prefix in layers.prefixes:
        assert prefix.family in (4, 16) and prefix.size <= prefix.family, prefix
        assert 0 <= prefix.length <= prefix.family * 8, prefix
    for checksum in layers.checksums:  # a scope may run past the bytes captured (a snap length)
        assert 0 <= checksum.start <= min(checksum.end, size) and checksum.start <= checksum.field, checksum
        for offset in checksum.pseudo:
            assert offset >= 0 and offset + checksum.address_size <= size, checksum
    for header in layers.headers:
        assert 0 <= header.offset <= size, header


def check_rewritten(original: bytes, layers: Layers, out: bytes) -> None:
    """Under the strict profile no address or MAC found in the frame is left as it was: every one
    wholly in the output differs from the original (a keyed permutation of 32 or more bits has a
    fixed point with probability 2**-32 or less, never seen in a fuzzing run)."""
    fields = [(o, 4) for o in layers.ipv4] + [(o, 16) for o in layers.ipv6] + [(o, 6) for o in layers.macs]
    for offset, size in fields:
        if offset + size > len(out) or out[offset:offset + size] != original[offset:offset + size]:
            continue
        raw = original[offset:offset + size]
        if size == 6 and (raw == KEPT_MAC or raw.startswith(SOLICITED_MAC)):
            continue
        if size != 6:
            address = ipaddress.ip_address(raw)
            if any(address in network for network in (*STRICT_KEPT, *PARTLY_KEPT)
                   if network.version == address.version):
                continue
        raise AssertionError(f"identifier {raw.hex()} at {offset} left as it was")


def _run_once(frame: Frame, transforms: list[Transform]) -> tuple[bytes, int, str | None]:
    for transform in transforms:
        transform.reset()
    batch = prepare([frame], RunStats())
    for transform in transforms:
        batch = transform.apply(batch)
    out = batch.data[0]
    if 0 not in batch.dropped:
        fix_checksums(frame.data, out, batch.layers[0].checksums)
    five_tuple(out, batch.layers[0])
    return bytes(out), batch.ts_ns[0], batch.dropped.get(0)


def check_output(frame: Frame, layers: Layers) -> None:
    """Every rule set: the output is never longer than what was understood, the same frame gives
    the same output (transforms reset in between, as at the start of a capture file), and under
    `strict` no identifier is left as it was."""
    five_tuple(frame.data, layers)
    # The scoped set is built afresh (under a millisecond): its payload step remembers the
    # identifiers of every frame it saw, so a crash it finds replays from its input alone.
    for name, transforms in {**PROFILES, "scoped": SCOPED.build(KEY)}.items():
        first = _run_once(frame, transforms)
        assert len(first[0]) <= layers.parsed_to, (name, len(first[0]), layers.parsed_to)
        if name == "strict":
            check_rewritten(frame.data, layers, first[0])
        second = _run_once(frame, transforms)
        assert first == second, (name, "not deterministic", first, second)


# Frames an accepted rule set is run on: a DNS query, a TCP SYN with options, and the same DNS
# query over IPv6 (the rule target checks that every rule set the validator accepts also runs).
DNS_QUERY = bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")
TCP_OPTIONS = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01" "030307")
RULE_FRAMES = tuple(Frame(index, TS_NS + 1000 * index, data, len(data), 1) for index, data in enumerate((
    BY_NAME["dns-udp"].build(DNS_QUERY),
    ipv4(6, bytes.fromhex("9c40005000000001000000008002ffff00000000") + TCP_OPTIONS),
    BY_NAME["mdns-ipv6"].build(DNS_QUERY),
)))


def check_rules(rules: Rules) -> None:
    """An accepted rule set builds, labels and transforms frames, never past what was understood."""
    transforms = rules.build(KEY)
    for frame in RULE_FRAMES:
        layers = dissect(frame.data, frame.linktype)
        if rules.labels is not None:
            rules.labels.label(frame.data, layers)
        out = _run_once(frame, transforms)[0]
        assert len(out) <= layers.parsed_to, (len(out), layers.parsed_to)


def check_frame(data: bytes, linktype: int) -> None:
    """One frame through dissection and every rule set, with every invariant checked."""
    layers = dissect(data, linktype)
    check_layers(data, layers)
    assert dissect(data, linktype) == layers, "dissection not deterministic"
    check_output(Frame(0, TS_NS, data, len(data), linktype), layers)


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Hand `test_one_input` to libFuzzer with this process's arguments (corpus dirs, -runs, ...)."""
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
