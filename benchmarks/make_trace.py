#!/usr/bin/env python3
"""Deterministic synthetic pcap generator for the anontrace benchmarks.

Writes a classic (microsecond, little-endian) pcap with Ethernet link type.
The traffic mix is roughly: 85% IPv4, 12% IPv6, 3% ARP; about 10% of frames
carry an 802.1Q tag; TCP ~70% (complete flows of a few dozen segments with
SYN/ACK/data/FIN and coherent sequence numbers), UDP ~25% (half of it DNS
queries and responses on port 53), ICMP/ICMPv6 echo ~2% plus a few
port-unreachable errors quoting the offending datagram.

Every IPv4 header checksum and every TCP, UDP, ICMP and ICMPv6 checksum is
valid. Payload bytes are slices of one seeded random pool whose 16-bit word
prefix sums are precomputed, so a payload checksum costs O(1).

The output depends only on the arguments: same ``--packets`` and ``--seed``
give a byte-identical file (no wall clock, no hash-ordered iteration).

    python benchmarks/make_trace.py --packets 1000000 -o trace.pcap
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import numpy as np

START_EPOCH_US = 1_700_000_000 * 1_000_000  # fixed start time, never the wall clock
MEAN_GAP_US = 10.0  # ~100k packets per second
POOL_SIZE = 1 << 20
SNAPLEN = 65535

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN = 0x0800, 0x86DD, 0x0806, 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

P_ARP = 0.03
P_IPV6_OF_IP = 0.12 / 0.97
P_VLAN = 0.10
# Shares of the non-ARP frames, so that overall TCP ~70%, UDP ~25%, ICMP ~2%.
P_TCP_OF_IP, P_UDP_OF_IP = 0.70 / 0.97, 0.25 / 0.97
P_ICMP_ERROR_OF_ICMP = 0.08
ACTIVE_TCP_FLOWS = 256
ACTIVE_UDP_FLOWS = 64

# MSS 1460, NOP, window scale 7, NOP, NOP, SACK permitted: 12 bytes.
SYN_OPTIONS = bytes.fromhex("020405b40103030701010402")
SYN_OPTIONS_SUM = sum(struct.unpack("!6H", SYN_OPTIONS))
# Payloads are random bytes, so servers listen on ports whose registered tshark
# dissector accepts opaque data (TLS, ESP over UDP). Unregistered ports would let
# tshark's heuristic dissectors (RTCP, CIGI, Thrift, ...) now and then claim a
# random payload and report it as malformed.
TCP_SERVER_PORTS = (443, 443, 443, 443, 993, 995, 853, 636)
UDP_SERVER_PORTS = (4500,)
DNS_NAMES = (
    "example.com",
    "www.example.org",
    "mail.example.net",
    "cdn.example.com",
    "api.example.org",
    "static.example.net",
    "login.example.com",
    "ntp.example.org",
)
PING_PAYLOAD = bytes(range(0x10, 0x38)) + bytes(16)  # 56 bytes, like ping(8)


def word_sum(data: bytes) -> int:
    """Sum of big-endian 16-bit words (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold(total: int) -> int:
    """One's-complement checksum from a plain sum of 16-bit words."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_fold(total: int) -> int:
    """Like fold() but a computed zero is sent as 0xFFFF (RFC 768)."""
    return fold(total) or 0xFFFF


@dataclass(frozen=True)
class Host:
    ip: bytes  # 4 or 16 bytes
    mac: bytes
    wsum: int  # word_sum(ip), for pseudo-headers and IPv4 header checksums


@dataclass
class Endpoint:
    """One side of a conversation: its L2 prefix already built."""

    host: Host
    port: int
    l2: bytes  # Ethernet (+ optional 802.1Q) header up to the EtherType
    seq: int = 0


@dataclass
class TcpFlow:
    client: Endpoint
    server: Endpoint
    script: deque[tuple[bool, int, int]] = field(default_factory=deque)


class PayloadPool:
    """Random bytes with 16-bit word prefix sums for O(1) payload checksums."""

    def __init__(self, rng: Random, size: int = POOL_SIZE) -> None:
        self.data = rng.randbytes(size)
        words = np.frombuffer(self.data, dtype=">u2").astype(np.int64)
        self.prefix: list[int] = [0, *np.cumsum(words).tolist()]
        self.rng = rng

    def take(self, length: int) -> tuple[bytes, int]:
        """A payload of ``length`` bytes and its word sum."""
        off = 2 * self.rng.randrange((len(self.data) - length) // 2)
        end = off + length
        total = self.prefix[end // 2] - self.prefix[off // 2]
        if length % 2:
            total += self.data[end - 1] << 8
        return self.data[off:end], total


def unique_hosts(count: int, make: Callable[[], Host]) -> list[Host]:
    """``count`` hosts with distinct addresses, in a deterministic order."""
    hosts: list[Host] = []
    seen: set[bytes] = set()
    while len(hosts) < count:
        candidate = make()
        if candidate.ip not in seen:
            seen.add(candidate.ip)
            hosts.append(candidate)
    return hosts


def make_hosts(rng: Random) -> tuple[list[Host], list[Host], list[Host], list[Host]]:
    """(IPv4 clients, IPv4 servers, IPv6 clients, IPv6 servers)."""

    def host(ip: bytes) -> Host:
        mac = b"\x02" + rng.randbytes(5)  # locally administered unicast
        return Host(ip, mac, word_sum(ip))

    subnets = [bytes([10, rng.randrange(256), rng.randrange(256)]) for _ in range(40)]
    v4_clients = unique_hosts(2500, lambda: host(rng.choice(subnets) + bytes([rng.randrange(1, 255)])))

    def public_v4() -> Host:
        first = rng.choice([n for n in range(1, 224) if n not in (10, 100, 127, 169, 172, 192)])
        return host(bytes([first]) + rng.randbytes(2) + bytes([rng.randrange(1, 255)]))

    v4_servers = unique_hosts(600, public_v4)
    prefixes6 = [b"\x20\x01\x0d\xb8" + rng.randbytes(4) for _ in range(20)]
    v6_clients = [host(rng.choice(prefixes6) + rng.randbytes(8)) for _ in range(400)]
    v6_servers = [host(b"\x2a" + rng.randbytes(15)) for _ in range(150)]
    return v4_clients, v4_servers, v6_clients, v6_servers


def dns_query(name: str, qtype: int) -> bytes:
    """DNS query with ID 0 (the ID is added per packet)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def dns_response(query: bytes, qtype: int, rng: Random) -> bytes:
    """Answer to ``query`` with one A or AAAA record."""
    rdata = rng.randbytes(4 if qtype == 1 else 16)
    answer = struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, len(rdata)) + rdata
    return query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + query[12:] + answer


class TraceGenerator:
    """Produces Ethernet frames one at a time from a seeded RNG."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self.pool = PayloadPool(self.rng)
        self.v4c, self.v4s, self.v6c, self.v6s = make_hosts(self.rng)
        self.tcp_flows = [self.new_tcp_flow() for _ in range(ACTIVE_TCP_FLOWS)]
        self.udp_flows = [self.new_endpoints(UDP_SERVER_PORTS) for _ in range(ACTIVE_UDP_FLOWS)]
        self.dns_pending: deque[tuple[Endpoint, Endpoint, bytes]] = deque()
        self.echo_pending: deque[tuple[Endpoint, Endpoint, int, int]] = deque()
        self.ip_id = self.rng.randrange(65536)
        self.dns_templates: dict[tuple[str, int], tuple[bytes, int]] = {}
        for name in DNS_NAMES:
            for qtype in (1, 28):
                query = dns_query(name, qtype)
                self.dns_templates[(name, qtype)] = (query, word_sum(query))

    # -- addressing --------------------------------------------------------
    def l2(self, src: Host, dst: Host, ethertype: int, vlan: int) -> bytes:
        tag = struct.pack("!HH", ETH_VLAN, vlan) if vlan else b""
        return dst.mac + src.mac + tag + struct.pack("!H", ethertype)

    def new_endpoints(self, ports: tuple[int, ...]) -> tuple[Endpoint, Endpoint]:
        rng = self.rng
        v6 = rng.random() < P_IPV6_OF_IP
        client = rng.choice(self.v6c if v6 else self.v4c)
        server = rng.choice(self.v6s if v6 else self.v4s)
        vlan = rng.randrange(2, 4000) if rng.random() < P_VLAN else 0
        ethertype = ETH_IPV6 if v6 else ETH_IPV4
        c = Endpoint(client, rng.randrange(32768, 61000), self.l2(client, server, ethertype, vlan))
        s = Endpoint(server, rng.choice(ports), self.l2(server, client, ethertype, vlan))
        return c, s

    # -- IP layer ------------------------------------------------------------
    def ip(self, src: Endpoint, dst: Endpoint, proto: int, l4: bytes) -> bytes:
        """Complete frame: L2 prefix + IPv4/IPv6 header + ``l4``."""
        if len(src.host.ip) == 16:
            hdr = struct.pack("!IHBB", 0x60000000, len(l4), proto, 64)
            return src.l2 + hdr + src.host.ip + dst.host.ip + l4
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        total = 20 + len(l4)
        csum = fold(0x4500 + total + self.ip_id + 0x4000 + (64 << 8 | proto) + src.host.wsum + dst.host.wsum)
        hdr = struct.pack("!HHHHBBH", 0x4500, total, self.ip_id, 0x4000, 64, proto, csum)
        return src.l2 + hdr + src.host.ip + dst.host.ip + l4

    def pseudo(self, src: Endpoint, dst: Endpoint, proto: int, length: int) -> int:
        return src.host.wsum + dst.host.wsum + proto + length

    # -- TCP -----------------------------------------------------------------
    def new_tcp_flow(self) -> TcpFlow:
        client, server = self.new_endpoints(TCP_SERVER_PORTS)
        client.seq, server.seq = self.rng.getrandbits(32), self.rng.getrandbits(32)
        flow = TcpFlow(client, server)
        flow.script.extend(self.tcp_script(len(client.host.ip) == 16))
        return flow

    def tcp_script(self, v6: bool) -> Iterator[tuple[bool, int, int]]:
        """(from_client, flags, payload_length) steps of one connection."""
        rng, mss = self.rng, 1440 if v6 else 1460
        yield from ((True, SYN, 0), (False, SYN | ACK, 0), (True, ACK, 0))
        if rng.random() < 0.2:  # interactive: small segments both ways
            for _ in range(rng.randrange(6, 20)):
                yield True, PSH | ACK, rng.randrange(1, 200)
                yield False, PSH | ACK, rng.randrange(1, 400)
            yield True, ACK, 0
        else:  # request then bulk response (or upload)
            upload = rng.random() < 0.2
            yield True, PSH | ACK, rng.randrange(80, 700)
            yield False, ACK, 0
            segments = rng.randrange(6, 40)
            for i in range(segments):
                last = i == segments - 1
                size = rng.randrange(100, mss) if last or rng.random() < 0.15 else mss
                yield upload, (PSH | ACK) if last else ACK, size
                if i % 2 or last:
                    yield not upload, ACK, 0
        yield from ((True, FIN | ACK, 0), (False, FIN | ACK, 0), (True, ACK, 0))

    def tcp_packet(self) -> bytes:
        idx = self.rng.randrange(len(self.tcp_flows))
        flow = self.tcp_flows[idx]
        from_client, flags, length = flow.script.popleft()
        if not flow.script:
            self.tcp_flows[idx] = self.new_tcp_flow()
        src, dst = (flow.client, flow.server) if from_client else (flow.server, flow.client)
        payload, psum = self.pool.take(length) if length else (b"", 0)
        opts = SYN_OPTIONS if flags & SYN else b""
        seq, ack = src.seq, dst.seq if flags & ACK else 0
        src.seq = (seq + length + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        offset_flags = ((20 + len(opts)) // 4) << 12 | flags
        window = 64240 if flags & SYN else 501
        seg_len = 20 + len(opts) + length
        total = (
            self.pseudo(src, dst, PROTO_TCP, seg_len)
            + src.port
            + dst.port
            + (seq >> 16)
            + (seq & 0xFFFF)
            + (ack >> 16)
            + (ack & 0xFFFF)
            + offset_flags
            + window
            + (SYN_OPTIONS_SUM if opts else 0)
            + psum
        )
        hdr = struct.pack("!HHIIHHHH", src.port, dst.port, seq, ack, offset_flags, window, fold(total), 0)
        return self.ip(src, dst, PROTO_TCP, hdr + opts + payload)

    # -- UDP -----------------------------------------------------------------
    def udp(self, src: Endpoint, dst: Endpoint, payload: bytes, psum: int) -> bytes:
        length = 8 + len(payload)
        total = self.pseudo(src, dst, PROTO_UDP, length) + src.port + dst.port + length + psum
        hdr = struct.pack("!HHHH", src.port, dst.port, length, udp_fold(total))
        return self.ip(src, dst, PROTO_UDP, hdr + payload)

    def dns_query_packet(self) -> tuple[bytes, Endpoint, Endpoint, bytes]:
        """(frame, client, server, query) for a fresh DNS query."""
        client, server = self.new_endpoints((53,))
        qtype = 28 if len(client.host.ip) == 16 and self.rng.random() < 0.5 else 1
        template, tsum = self.dns_templates[(self.rng.choice(DNS_NAMES), qtype)]
        qid = self.rng.randrange(65536)
        query = struct.pack("!H", qid) + template[2:]
        return self.udp(client, server, query, tsum + qid), client, server, query

    def udp_packet(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.5:
            if self.dns_pending and rng.random() < 0.5:
                client, server, query = self.dns_pending.popleft()
                qtype = struct.unpack_from("!H", query, len(query) - 4)[0]
                response = dns_response(query, qtype, rng)
                return self.udp(server, client, response, word_sum(response))
            frame, client, server, query = self.dns_query_packet()
            self.dns_pending.append((client, server, query))
            return frame
        idx = rng.randrange(len(self.udp_flows))
        client, server = self.udp_flows[idx]
        if rng.random() < 0.02:
            self.udp_flows[idx] = self.new_endpoints(UDP_SERVER_PORTS)
        size = rng.choice((rng.randrange(160, 220), rng.randrange(20, 1200)))
        payload, psum = self.pool.take(size)
        src, dst = (client, server) if rng.random() < 0.5 else (server, client)
        return self.udp(src, dst, payload, psum)

    # -- ICMP / ICMPv6 ---------------------------------------------------------
    def icmp(self, src: Endpoint, dst: Endpoint, type_code: int, rest: int, body: bytes) -> bytes:
        """ICMP (IPv4) or ICMPv6 message; ``rest`` is the 32-bit rest-of-header."""
        v6 = len(src.host.ip) == 16
        proto = PROTO_ICMPV6 if v6 else PROTO_ICMP
        length = 8 + len(body)
        total = type_code + (rest >> 16) + (rest & 0xFFFF) + word_sum(body)
        if v6:
            total += self.pseudo(src, dst, proto, length)
        hdr = struct.pack("!HHI", type_code, fold(total), rest)
        return self.ip(src, dst, proto, hdr + body)

    def icmp_error(self) -> bytes:
        """Port unreachable from a server, quoting the whole DNS query sent to it."""
        frame, client, server, _ = self.dns_query_packet()
        quoted = frame[len(client.l2) :]
        type_code = 0x0104 if len(client.host.ip) == 16 else 0x0303
        return self.icmp(server, client, type_code, 0, quoted)

    def icmp_packet(self) -> bytes:
        rng = self.rng
        if rng.random() < P_ICMP_ERROR_OF_ICMP:
            return self.icmp_error()
        if self.echo_pending and rng.random() < 0.5:
            client, server, ident, seq = self.echo_pending.popleft()
            reply = 0x8100 if len(client.host.ip) == 16 else 0x0000
            return self.icmp(server, client, reply, ident << 16 | seq, PING_PAYLOAD)
        client, server = self.new_endpoints((0,))
        ident, seq = rng.randrange(65536), rng.randrange(1, 100)
        self.echo_pending.append((client, server, ident, seq))
        request = 0x8000 if len(client.host.ip) == 16 else 0x0800
        return self.icmp(client, server, request, ident << 16 | seq, PING_PAYLOAD)

    # -- ARP -------------------------------------------------------------------
    def arp_packet(self) -> bytes:
        rng = self.rng
        a, b = rng.choice(self.v4c), rng.choice(self.v4c)
        vlan = rng.randrange(2, 4000) if rng.random() < P_VLAN else 0
        if rng.random() < 0.6:  # who-has, broadcast
            bcast = Host(b"", b"\xff" * 6, 0)
            body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + a.mac + a.ip + bytes(6) + b.ip
            frame = self.l2(a, bcast, ETH_ARP, vlan) + body
        else:  # is-at, unicast
            body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + b.mac + b.ip + a.mac + a.ip
            frame = self.l2(b, a, ETH_ARP, vlan) + body
        return frame + bytes(max(0, 60 - len(frame)))  # minimum Ethernet frame

    # -- driver ----------------------------------------------------------------
    def frames(self, count: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``count`` (timestamp_us, frame) pairs with increasing timestamps."""
        rng, ts = self.rng, START_EPOCH_US
        for _ in range(count):
            ts += 1 + int(rng.expovariate(1.0 / (MEAN_GAP_US - 1)))
            r = rng.random()
            if r < P_ARP:
                yield ts, self.arp_packet()
                continue
            r = rng.random()
            if r < P_TCP_OF_IP:
                yield ts, self.tcp_packet()
            elif r < P_TCP_OF_IP + P_UDP_OF_IP:
                yield ts, self.udp_packet()
            else:
                yield ts, self.icmp_packet()


def write_pcap(path: Path, frames: Iterator[tuple[int, bytes]], chunk: int = 8192) -> int:
    """Write classic microsecond pcap (linktype 1); return number of records."""
    record = struct.Struct("<IIII").pack
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))
        buf: list[bytes] = []
        for ts, frame in frames:
            sec, usec = divmod(ts, 1_000_000)
            buf.append(record(sec, usec, len(frame), len(frame)))
            buf.append(frame)
            count += 1
            if len(buf) >= chunk:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="number of packets")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="pcap to write")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    args = parser.parse_args(argv)
    if args.packets < 0:
        parser.error("--packets must be >= 0")
    started = time.perf_counter()  # only for the summary line, never in the output
    count = write_pcap(args.output, TraceGenerator(args.seed).frames(args.packets))
    if not args.quiet:
        size = args.output.stat().st_size
        elapsed = time.perf_counter() - started
        print(
            f"wrote {count} packets, {size} bytes to {args.output} in {elapsed:.1f}s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
