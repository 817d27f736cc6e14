"""Benchmark traces: generated once by make_trace.py, cached in the work dir, and counted.

The cache key holds the packet count, the seed and a hash of the generator, so a
changed generator never reuses a stale trace. The generator streams to disk, so
a 5M-packet trace (about 2.8 GB) costs no more memory than a small one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "make_trace.py"


@dataclass(frozen=True)
class Trace:
    path: Path
    packets: int
    size: int  # bytes
    sha256: str
    seed: int
    generated_in_s: float | None  # None when reused from the cache

    def as_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "packets": self.packets,
            "bytes": self.size,
            "sha256": self.sha256,
            "seed": self.seed,
            "generated_in_s": self.generated_in_s,
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_trace(workdir: Path, packets: int, seed: int) -> Trace:
    """Generate the trace, or reuse the cached one made by the same generator."""
    gen_id = sha256_file(GENERATOR)[:12]
    path = workdir / f"trace-{packets}p-seed{seed}-{gen_id}.pcap"
    took: float | None = None
    if not path.exists():
        print(f"generating {packets} packets -> {path}", file=sys.stderr)
        partial = path.with_suffix(".partial")
        started = time.perf_counter()
        cmd = [sys.executable, str(GENERATOR), "--packets", str(packets)]
        cmd += ["--seed", str(seed), "-q", "-o", str(partial)]
        subprocess.run(cmd, check=True)
        took = time.perf_counter() - started
        partial.replace(path)
    else:
        print(f"reusing cached trace {path}", file=sys.stderr)
    return Trace(path, packets, path.stat().st_size, sha256_file(path), seed, took)


def count_packets(path: Path) -> int | None:
    """Records in a classic pcap or pcapng file; None if neither. Streams the file."""
    with path.open("rb") as f:
        head = f.read(24)
        if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            return _count_records(f, "<I", 16, 8, 0)
        if head[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            return _count_records(f, ">I", 16, 8, 0)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            f.seek(0)
            fmt = "<I" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">I"
            return _count_records(f, fmt, 8, 4, -8)
    return None


def _count_records(f: BinaryIO, fmt: str, head_len: int, len_at: int, len_adjust: int) -> int:
    """Walk length-prefixed records: pcap (caplen after a 16-byte header) or pcapng
    blocks (total length includes the 8-byte head; counts packet blocks 2, 3, 6)."""
    count, unpack = 0, struct.Struct(fmt).unpack_from
    pcapng = len_adjust != 0
    while len(head := f.read(head_len)) == head_len:
        length = unpack(head, len_at)[0] + len_adjust
        if pcapng:
            count += unpack(head, 0)[0] in (2, 3, 6)
            length = max(length, 4)
        else:
            count += 1
        f.seek(length, os.SEEK_CUR)
    return count
