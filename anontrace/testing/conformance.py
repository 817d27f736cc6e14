"""The conformance suite: what every registered transform must do, whoever wrote it.

A plug-in author runs `check_all(MyTransform)` in their own tests; anontrace's suite runs it
for every transform in the registry. The checks: a declared config (every setting with help
and a default), bad settings refused with a located error, determinism, the same output for
any batch size, frame count and order kept (drops counted with a reason), no frame grown, and
checksums that were right in the input still right in the output, on a set of edge-case frames
built here from bytes (no third-party packet library).
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from collections.abc import Callable, Iterable

from anontrace.errors import RuleError
from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.packet.checksum import fix_checksums, ones_sum
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame
from anontrace.rules.compile import parse_rules
from anontrace.transforms.base import Context, Transform

KEY = Key(bytes(range(32)))
OTHER_KEY = Key(bytes(range(1, 33)))
MAC_A, MAC_B = bytes.fromhex("001b213a1b2c"), bytes.fromhex("3c22fb102030")


class ConformanceError(AssertionError):
    """A transform broke the contract; the message says which check and how."""


def _checksum(data: bytes) -> int:
    return ~ones_sum(data) & 0xFFFF


def _ipv4(source: bytes, destination: bytes, protocol: int, body: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x1234, 0x4000, ttl, protocol, 0,
                         source, destination)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + body


def _ipv6(source: bytes, destination: bytes, next_header: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60012345, len(body), next_header, 64, source, destination) + body


def _segment(source: bytes, destination: bytes, protocol: int, header: bytes, payload: bytes) -> bytes:
    """A TCP or UDP segment with a correct checksum over its pseudo-header."""
    body = header + payload
    pseudo = source + destination + struct.pack("!HH", protocol, len(body))
    field = 16 if protocol == 6 else 6
    value = _checksum(pseudo + body) or (0xFFFF if protocol == 17 else 0)
    return body[:field] + struct.pack("!H", value) + body[field + 2:]


def _tcp(source: bytes, destination: bytes, payload: bytes) -> bytes:
    options = bytes([2, 4, 5, 180, 1, 3, 3, 7, 8, 10]) + bytes(range(8)) + bytes([1, 1])
    header = struct.pack("!HHIIBBHHH", 40000, 443, 1000, 2000, (5 + len(options) // 4) << 4, 0x18,
                         64240, 0, 0) + options
    return _segment(source, destination, 6, header, payload)


def _udp(source: bytes, destination: bytes, payload: bytes) -> bytes:
    header = struct.pack("!HHHH", 40001, 9999, 8 + len(payload), 0)
    return _segment(source, destination, 17, header, payload)


def _ether(kind: int, body: bytes, source: bytes = MAC_A) -> bytes:
    return MAC_B + source + struct.pack("!H", kind) + body


def edge_frames() -> list[bytes]:
    """Frames every transform must handle: ordinary, tiny, truncated, nested, odd."""
    v4a, v4b = bytes([10, 1, 2, 3]), bytes([192, 0, 2, 9])
    v6a = bytes.fromhex("20010db8000000010000000000000001")
    v6b = bytes.fromhex("20010db8000000020000000000000002")
    tcp4 = _ether(0x0800, _ipv4(v4a, v4b, 6, _tcp(v4a, v4b, b"GET / HTTP/1.1\r\n")))
    udp4 = _ether(0x0800, _ipv4(v4b, v4a, 17, _udp(v4b, v4a, b"hello 10.1.2.3")))
    tcp6 = _ether(0x86DD, _ipv6(v6a, v6b, 6, _tcp(v6a, v6b, b"payload")))
    quoted = _ipv4(v4a, v4b, 17, _udp(v4a, v4b, b""))[:28]
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    error = _ether(0x0800, _ipv4(v4b, v4a, 1, icmp))
    arp = _ether(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, v4a, bytes(6), v4b))
    vlan = MAC_B + MAC_A + struct.pack("!HH", 0x8100, 7) + tcp4[12:]
    return [tcp4, udp4, tcp6, error, arp, vlan,
            b"", b"\x00", tcp4[:13], tcp4[:30], tcp4[:54], udp4 + b"\0" * 6,
            _ether(0x88B5, b"local experimental ethertype"), bytes(64)]


def make_batch(frames: Iterable[bytes], first_index: int = 0) -> Batch:
    """A batch as the pipeline builds it: dissected, each frame cut where dissection stopped."""
    records = [Frame(first_index + i, (first_index + i) * 1_000_003, data, len(data), 1)
               for i, data in enumerate(frames)]
    layers = [dissect(f.data, f.linktype) for f in records]
    data = [bytearray(f.data[:found.parsed_to]) for f, found in zip(records, layers, strict=True)]
    return Batch(records, layers, data, [f.ts_ns for f in records])


Build = Callable[[Key], Transform]


def _run(build: Build, frames: list[bytes], size: int, key: Key = KEY) -> list[tuple[bytes, int] | str]:
    """Each frame's output (bytes after the checksum fix-up, time) or its drop reason."""
    transform = build(key)
    transform.reset()
    results: list[tuple[bytes, int] | str] = []
    for start in range(0, len(frames), size):
        batch = transform.apply(make_batch(frames[start:start + size], start))
        if len(batch) != len(frames[start:start + size]):
            raise ConformanceError(f"{transform.name}: a batch of {len(frames[start:start + size])} "
                                   f"frames came back with {len(batch)}")
        for position, frame in enumerate(batch.frames):
            if position in batch.dropped:
                results.append(batch.dropped[position])
                continue
            out = batch.data[position]
            fix_checksums(frame.data, out, batch.layers[position].checksums)
            results.append((bytes(out), batch.ts_ns[position]))
    return results


def check_config(transform: type[Transform]) -> None:
    """Every setting is declared: a default and help text a reviewer can read."""
    if not transform.__doc__ or not transform.name:
        raise ConformanceError(f"{transform.__name__}: a name and a docstring (its user doc) are required")
    if not dataclasses.is_dataclass(transform.Config):
        raise ConformanceError(f"{transform.name}: Config must be a dataclass")
    for field in dataclasses.fields(transform.Config):
        if field.default is dataclasses.MISSING or not field.metadata.get("help"):
            raise ConformanceError(f"{transform.name}.{field.name}: declare it with setting(default, help)")


def check_bad_settings_refused(transform: type[Transform]) -> None:
    """An unknown setting and a value of the wrong type are refused with file:line:col."""
    attempts = ["    no_such_setting: 1\n"]
    hints = typing.get_type_hints(transform.Config)
    for field in dataclasses.fields(transform.Config):
        wrong = "[1, 2]" if hints[field.name] in (bool, int, float, str) else "{a: 1}"
        attempts.append(f"    {field.name}: {wrong}\n")
    for attempt in attempts:
        text = f"version: 1\nsteps:\n  - use: {transform.name}\n{attempt}"
        try:
            parse_rules(text, "conformance.yaml")
        except RuleError as exc:
            if not exc.where.startswith("conformance.yaml:4:"):
                raise ConformanceError(f"{transform.name}: error not located at line 4: {exc}") from None
            continue
        raise ConformanceError(f"{transform.name}: accepted {attempt.strip()!r}")


def check_behaviour(transform: type[Transform], build: Build | None = None) -> None:
    """Deterministic, key-dependent or not but never random, batch-size invariant, frames kept in
    count and order, none grown, good checksums kept good."""
    build = build or (lambda key: transform(transform.Config(), Context(key)))
    frames = edge_frames() * 3
    first = _run(build, frames, 4096)
    if _run(build, frames, 4096) != first:
        raise ConformanceError(f"{transform.name}: two runs with the same key differ")
    for size in (1, 5):
        if _run(build, frames, size) != first:
            raise ConformanceError(f"{transform.name}: output depends on the batch size ({size})")
    for original, result in zip(frames, first, strict=True):
        if isinstance(result, str):
            if not result:
                raise ConformanceError(f"{transform.name}: a frame dropped without a reason")
            continue
        data, _ = result
        if len(data) > len(original):
            raise ConformanceError(f"{transform.name}: a frame grew from {len(original)} "
                                   f"to {len(data)} bytes")
        _check_sums(transform.name, original, data)


def _check_sums(name: str, original: bytes, data: bytes) -> None:
    """IPv4 header checksums right in the input stay right in the output."""
    if len(data) >= 34 and data[12:14] == b"\x08\x00" and len(original) >= 34:
        header = (original[14] & 0x0F) * 4
        if ones_sum(original[14:14 + header]) == 0 and ones_sum(data[14:14 + header]) != 0:
            raise ConformanceError(f"{name}: a good IPv4 header checksum turned bad")


def check_all(transform: type[Transform], build: Build | None = None) -> None:
    """Every check, in order; raises ConformanceError on the first failure."""
    check_config(transform)
    check_bad_settings_refused(transform)
    check_behaviour(transform, build)
