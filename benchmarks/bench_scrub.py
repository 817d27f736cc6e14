#!/usr/bin/env python3
"""Wall-time and memory benchmark: ``anontrace scrub`` against peer tools.

All tools run as subprocesses on the same synthetic trace (see make_trace.py)
in the same invocation, interleaved round by round (A B C A B C ...), so that
machine noise hits every tool alike. Reported per tool: median wall time,
packets/s, MB/s of input, peak RSS of the child (from ``os.wait4``), and the
time ratios to anontrace.

    python benchmarks/bench_scrub.py --packets 1000000
    python benchmarks/bench_scrub.py --packets 20000 --repeat 3 --anontrace "python -m anontrace"

Nothing is installed by this script: a missing tool is skipped with a hint.
Benchmarks are not tests and never run in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "make_trace.py"
BENCH_KEY_TEXT = b"anontrace benchmark key"  # fixed, so runs are comparable
MB = 1_000_000
MIB = 1024 * 1024

# pktanon profile as close to anontrace's default as pktanon allows: keyed hashes
# (pktanon has no Crypto-PAn) on IPv4/IPv6/ARP addresses, payload cut to 0 bytes,
# every other field kept.
PKTANON_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<pktanon-config>
  <anonymizations>
    <packet protocol="ethernet">
      <field name="mac-source" anon="AnonIdentity"/>
      <field name="mac-dest" anon="AnonIdentity"/>
      <field name="ethertype" anon="AnonIdentity"/>
    </packet>
    <packet protocol="arp">
{arp}
      <field name="sender-ip" anon="AnonHashHmacSha1" key="{key}"/>
      <field name="target-ip" anon="AnonHashHmacSha1" key="{key}"/>
    </packet>
    <packet protocol="ip">
{ip}
      <field name="src-ip" anon="AnonHashHmacSha1" key="{key}"/>
      <field name="dest-ip" anon="AnonHashHmacSha1" key="{key}"/>
    </packet>
    <packet protocol="ipv6">
{ipv6}
      <field name="src-ip" anon="AnonHashHmacSha1" key="{key}"/>
      <field name="dest-ip" anon="AnonHashHmacSha1" key="{key}"/>
    </packet>
    <packet protocol="tcp">
{tcp}
    </packet>
    <packet protocol="udp">
{udp}
    </packet>
    <packet protocol="icmp">
{icmp}
    </packet>
    <packet protocol="icmpv6">
{icmp}
      <field name="target-address" anon="AnonHashHmacSha1" key="{key}"/>
    </packet>
    <packet protocol="payload">
      <field name="payload" anon="AnonShorten" newlen="0"/>
    </packet>
  </anonymizations>
</pktanon-config>
"""
PKTANON_KEPT_FIELDS = {
    "arp": "hardware-type protocol-type hardware-size protocol-size opcode sender-mac target-mac",
    "ip": "tos identification flags fragment ttl protocol options",
    "ipv6": "traffic-class flow-label hop-limit next-header",
    "tcp": "source-port dest-port seq ack flags window-size urgent-pointer options",
    "udp": "source-port dest-port",
    "icmp": "type code rest",
}


# (name, Debian package, command template, what it does to the trace)
PEERS = (
    (
        "tcprewrite",
        "tcpreplay",
        "tcprewrite --seed=42 --fixcsum -i {trace} -o {out}",
        "seeded IP address scramble, checksums fixed, payload kept",
    ),
    (
        "editcap",
        "tshark",
        "editcap -F pcap -s 96 {trace} {out}",
        "truncate every frame to 96 bytes, no address change",
    ),
    (
        "pktanon",
        "pktanon",
        "pktanon -c {profile} {trace} {out}",
        "HMAC-SHA1 addresses, payload cut (profile in workdir)",
    ),
    (
        "traceanon",
        "libtrace-tools",
        "traceanon -s -d -f {key} pcapfile:{trace} pcapfile:{out}",
        "Crypto-PAn src+dst IPv4, checksums fixed, payload kept",
    ),
)


@dataclass
class Trace:
    path: Path
    packets: int
    size: int
    sha256: str
    seed: int
    generated_in_s: float | None  # None when reused from the cache


@dataclass
class Tool:
    name: str
    argv: list[str]
    output: Path
    does: str  # one line: what the command does to the trace
    package: str | None = None  # Debian package that ships it
    version: str | None = None
    runs: list[tuple[float, int]] = field(default_factory=list)  # (seconds, max RSS KiB)
    failed: str | None = None


# -- trace -----------------------------------------------------------------------
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


def _count_records(f: Any, fmt: str, head_len: int, len_at: int, len_adjust: int) -> int:
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


# -- tools -----------------------------------------------------------------------
def anontrace_tool(cmd: list[str], workdir: Path, trace: Path) -> Tool | None:
    """``anontrace scrub`` with a key made once by ``anontrace keygen``."""
    resolved = resolve_shim(cmd[0])
    if resolved is None:
        print(
            f"SKIP anontrace: command not found: {cmd[0]!r}. Install the package "
            "(`pip install -e .` at the repository root) or pass e.g. "
            "--anontrace 'python -m anontrace'.",
            file=sys.stderr,
        )
        return None
    cmd = [resolved, *cmd[1:]]
    key = workdir / "anontrace.key"
    key.unlink(missing_ok=True)
    keygen = subprocess.run([*cmd, "keygen", "-o", str(key)], capture_output=True, text=True)
    if keygen.returncode != 0 or not key.exists():
        detail = (keygen.stderr or keygen.stdout).strip().splitlines()[-3:]
        print(
            f"SKIP anontrace: `{shlex.join([*cmd, 'keygen', '-o', str(key)])}` failed "
            f"(exit {keygen.returncode}): {' | '.join(detail)}",
            file=sys.stderr,
        )
        return None
    out = workdir / "out-anontrace.pcap"
    argv = [*cmd, "scrub", str(trace), "-o", str(out), "-q", "--key-file", str(key)]
    does = "default profile: Crypto-PAn IPv4/IPv6, payload cut, checksums fixed"
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True).stdout
    return Tool("anontrace", argv, out, does, version=version.strip() or None)


def resolve_shim(name: str) -> str | None:
    """Full path of a command; a pyenv shim is replaced by the real executable,
    so that the shim's own start-up (a shell script, ~50 ms) is not measured."""
    path = shutil.which(name)
    if path is None or "/.pyenv/shims/" not in path:
        return path
    real = subprocess.run(["pyenv", "which", name], capture_output=True, text=True)
    return real.stdout.strip() if real.returncode == 0 and real.stdout.strip() else path


def peer_tools(workdir: Path, trace: Path) -> list[Tool]:
    """The peer commands, with their key and profile files written to ``workdir``."""
    key = workdir / "traceanon.key"
    key.write_bytes(hashlib.sha256(BENCH_KEY_TEXT).digest())  # traceanon wants 32 bytes
    profile = workdir / "pktanon-profile.xml"
    profile.write_text(pktanon_profile())
    tools = []
    for name, package, template, does in PEERS:
        out = workdir / f"out-{name}.pcap"
        fill = {"trace": trace, "out": out, "key": key, "profile": profile}
        argv = [part.format(**fill) for part in shlex.split(template)]
        tools.append(Tool(name, argv, out, does, package))
    return tools


def pktanon_profile() -> str:
    kept = {
        proto: "\n".join(f'      <field name="{f}" anon="AnonIdentity"/>' for f in names.split())
        for proto, names in PKTANON_KEPT_FIELDS.items()
    }
    return PKTANON_PROFILE.format(key=BENCH_KEY_TEXT.decode(), **kept)


def available_tools(args: argparse.Namespace, workdir: Path, trace: Path) -> list[Tool]:
    tools: list[Tool] = []
    anon = anontrace_tool(shlex.split(args.anontrace), workdir, trace)
    if anon is not None:
        tools.append(anon)
    for tool in peer_tools(workdir, trace):
        if shutil.which(tool.argv[0]) is None:
            extra = " (editcap comes with it, from wireshark-common)" if tool.name == "editcap" else ""
            print(
                f"SKIP {tool.name}: not installed; install with `apt-get install {tool.package}`{extra}",
                file=sys.stderr,
            )
        else:
            tool.version = package_version(tool.package)
            tools.append(tool)
    return tools


# -- measurement -----------------------------------------------------------------
def gnu_time() -> str | None:
    """Path of GNU time, if installed (Debian package ``time``)."""
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if path is None:
        return None
    probe = subprocess.run([path, "--version"], capture_output=True, text=True)
    return path if "GNU" in probe.stdout + probe.stderr else None


def reset_own_peak_rss() -> None:
    """Lower this process's RSS high-water mark to its current RSS (Linux >= 4.0).

    A child's ru_maxrss starts at the high-water mark of the process it was forked
    from, so a fat parent inflates every child's figure.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Runner:
    """Runs a command once; measures wall time and the child's peak RSS.

    With GNU time the command is started by ``time -f %M``, a ~1 MiB C process
    whose own wait4() on the command gives its true peak RSS. Without it we use
    our own os.wait4(), whose ru_maxrss cannot go below this Python process's RSS
    (``floor_kib``, measured on ``true``).
    """

    workdir: Path
    timeout: float
    time_bin: str | None = field(default_factory=gnu_time)
    floor_kib: int = 0

    def __post_init__(self) -> None:
        if self.time_bin is None:
            self.floor_kib = self.run(["true"], self.workdir / "stderr-true.txt")[1]

    @property
    def method(self) -> str:
        if self.time_bin:
            return f"GNU time %M ({self.time_bin}): wait4 in a small C launcher"
        floor = f"{self.floor_kib / 1024:.1f} MiB"
        return f"os.wait4 in the harness; a value <= {floor} means 'at most {floor}'"

    def run(self, argv: list[str], stderr_path: Path) -> tuple[float, int, int]:
        """(wall seconds, peak RSS in KiB, exit code)."""
        rss_file = self.workdir / "rss.txt"
        prefix = [self.time_bin, "-f", "%M", "-o", str(rss_file)] if self.time_bin else []
        rss_file.unlink(missing_ok=True)
        reset_own_peak_rss()
        with stderr_path.open("wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # so a timeout can kill the launcher and the tool
            )
            killer = threading.Timer(self.timeout, os.killpg, (proc.pid, signal.SIGKILL))
            killer.start()
            _, status, usage = os.wait4(proc.pid, 0)  # rusage of this very child
            elapsed = time.perf_counter() - started
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kib = usage.ru_maxrss
        if self.time_bin:
            lines = rss_file.read_text().split() if rss_file.exists() else []
            rss_kib = int(lines[-1]) if lines and lines[-1].isdigit() else -1
        return elapsed, rss_kib, proc.returncode


def measure(tools: list[Tool], repeat: int, warmup: int, runner: Runner) -> None:
    """Interleave the tools round by round; the warm-up rounds are not recorded."""
    for rnd in range(warmup + repeat):
        label = f"warm-up {rnd + 1}" if rnd < warmup else f"round {rnd - warmup + 1}/{repeat}"
        for tool in tools:
            if tool.failed:
                continue
            stderr_path = runner.workdir / f"stderr-{tool.name}.txt"
            tool.output.unlink(missing_ok=True)
            seconds, rss_kib, code = runner.run(tool.argv, stderr_path)
            if code != 0 or not tool.output.exists():
                tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
                why = f"timed out after {runner.timeout:g}s" if seconds >= runner.timeout else ""
                tool.failed = (why or f"exit {code}") + ": " + " | ".join(tail)
                print(f"FAIL {tool.name}: {shlex.join(tool.argv)}\n  {tool.failed}", file=sys.stderr)
                continue
            print(
                f"{label:>12}  {tool.name:<10} {seconds:8.3f}s  {rss_kib / 1024:8.1f} MiB",
                file=sys.stderr,
            )
            if rnd >= warmup:
                tool.runs.append((seconds, rss_kib))


# -- results ---------------------------------------------------------------------
def package_version(package: str | None) -> str | None:
    if package is None or shutil.which("dpkg-query") is None:
        return None
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return query.stdout.strip() or None


def summarize(tool: Tool, trace: Trace, keep_outputs: bool) -> dict[str, Any]:
    times = [s for s, _ in tool.runs]
    median = statistics.median(times) if times else None
    result: dict[str, Any] = {
        "name": tool.name,
        "command": shlex.join(tool.argv),
        "does": tool.does,
        "version": tool.version,
        "failed": tool.failed,
        "times_s": times,
        "median_s": median,
        "min_s": min(times) if times else None,
        "packets_per_s": trace.packets / median if median else None,
        "mb_per_s": trace.size / MB / median if median else None,
        "peak_rss_mib": max(r for _, r in tool.runs) / 1024 if tool.runs else None,
        "output_bytes": tool.output.stat().st_size if tool.output.exists() else None,
        "output_packets": count_packets(tool.output) if tool.output.exists() else None,
    }
    if not keep_outputs:
        tool.output.unlink(missing_ok=True)
    return result


def add_ratios(results: list[dict[str, Any]]) -> None:
    """peer/anontrace > 1: anontrace is faster; anontrace/peer > 1: it is slower."""
    anon = next((r for r in results if r["name"] == "anontrace" and r["median_s"]), None)
    for r in results:
        ok = anon is not None and r["median_s"]
        r["peer_over_anontrace"] = r["median_s"] / anon["median_s"] if ok and anon else None
        r["anontrace_over_peer"] = anon["median_s"] / r["median_s"] if ok and anon else None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": None,
        "mem_total_kib": None,
    }
    for path, prefix, key in (
        ("/proc/cpuinfo", "model name", "cpu_model"),
        ("/proc/meminfo", "MemTotal", "mem_total_kib"),
    ):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        value = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), None)
        info[key] = int(value.split()[0]) if key == "mem_total_kib" and value else value
    return info


# -- report ----------------------------------------------------------------------
COLUMNS = (
    "tool",
    "median s",
    "min s",
    "packets/s",
    "MB/s",
    "peak RSS MiB",
    "peer/anon",
    "anon/peer",
)


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = []
    for r in results:
        if r["failed"] or r["median_s"] is None:
            rows.append([r["name"], "FAILED", *["-"] * (len(COLUMNS) - 2)])
            continue
        rows.append(
            [
                r["name"],
                fmt(r["median_s"], ".3f"),
                fmt(r["min_s"], ".3f"),
                fmt(r["packets_per_s"], ",.0f"),
                fmt(r["mb_per_s"], ".1f"),
                fmt(r["peak_rss_mib"], ".1f"),
                fmt(r["peer_over_anontrace"], ".2f"),
                fmt(r["anontrace_over_peer"], ".2f"),
            ]
        )
    return rows


def print_table(results: list[dict[str, Any]], trace: Trace, repeat: int, rss_note: str) -> None:
    title = (
        f"anontrace scrub vs peers: {trace.packets:,} packets, "
        f"{trace.size / MB:.1f} MB, median of {repeat} runs"
    )
    rows = table_rows(results)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
        print(title)
        print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
        for row in rows:
            print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    else:
        table = Table(title=title)
        for col in COLUMNS:
            table.add_column(col, justify="left" if col == "tool" else "right")
        for row in rows:
            table.add_row(*row)
        Console(width=None if sys.stdout.isatty() else 120).print(table)
    print("peer/anon = peer time / anontrace time (> 1: anontrace is faster);")
    print("anon/peer = anontrace time / peer time (> 1: anontrace is slower).")
    print("MB/s = input bytes (10^6) per second of median time.")
    print(f"peak RSS: {rss_note}.")
    print("The tools do different work:")
    for r in results:
        print(f"  {r['name']:<10} {r['does']}")


# -- main ------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="trace size")
    parser.add_argument("--seed", type=int, default=1, help="trace generator seed")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    parser.add_argument("--json", type=Path, default=None, help="results file (default WORKDIR/results.json)")
    parser.add_argument(
        "--anontrace",
        default="anontrace",
        help="command to run anontrace, e.g. 'python -m anontrace'",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the tools' outputs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.packets < 1:
        parser.error("need --repeat >= 1, --warmup >= 0, --packets >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    trace = ensure_trace(workdir, args.packets, args.seed)
    tools = available_tools(args, workdir, trace.path)
    if not tools:
        print("nothing to benchmark: no tool available", file=sys.stderr)
        return 1
    runner = Runner(workdir, args.timeout)
    measure(tools, args.repeat, args.warmup, runner)
    results = [summarize(t, trace, args.keep_outputs) for t in tools]
    add_ratios(results)
    print_table(results, trace, args.repeat, runner.method)
    report = {
        "machine": machine_info(),
        "trace": {
            "path": str(trace.path),
            "packets": trace.packets,
            "bytes": trace.size,
            "sha256": trace.sha256,
            "seed": trace.seed,
            "generated_in_s": trace.generated_in_s,
        },
        "repeat": args.repeat,
        "warmup": args.warmup,
        "rss_method": runner.method,
        "tools": results,
    }
    json_path: Path = args.json or workdir / "results.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {json_path}")
    return 0 if all(not t.failed for t in tools) else 2


if __name__ == "__main__":
    sys.exit(main())
