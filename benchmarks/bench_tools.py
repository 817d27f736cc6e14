"""The commands under test: ``anontrace scrub`` (one and two workers) and its peers.

A ToolSpec is a command template that does not depend on the trace; binding it
to a trace gives a Tool, which collects that command's runs. The scaling mode
binds the same specs to several traces.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench_trace import Trace

BENCH_KEY_TEXT = b"anontrace benchmark key"  # fixed, so runs are comparable
WORKER_COUNTS = (1, 2)

# The pktanon peer: HMAC-SHA1 on IPv4/IPv6 addresses AND on MAC addresses
# (Ethernet and ARP), payload cut to 0 bytes, every other field kept. Field and
# class names are those of pktanon's sample profile
# (/usr/share/doc/pktanon/examples/profiles/profile.xml) and of its config parser
# (vlan: priority, cfi, id).
PKTANON_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<pktanon-config>
  <anonymizations>
    <packet protocol="ethernet">
{hmac_ethernet}
      <field name="ethertype" anon="AnonIdentity"/>
    </packet>
    <packet protocol="vlan">
{vlan}
    </packet>
    <packet protocol="arp">
{arp}
{hmac_arp}
    </packet>
    <packet protocol="ip">
{ip}
{hmac_ip}
    </packet>
    <packet protocol="ipv6">
{ipv6}
{hmac_ip}
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
{hmac_icmpv6}
    </packet>
    <packet protocol="payload">
      <field name="payload" anon="AnonShorten" newlen="0"/>
    </packet>
  </anonymizations>
</pktanon-config>
"""
PKTANON_KEPT_FIELDS = {
    "vlan": "priority cfi id",
    "arp": "hardware-type protocol-type hardware-size protocol-size opcode",
    "ip": "tos identification flags fragment ttl protocol options",
    "ipv6": "traffic-class flow-label hop-limit next-header",
    "tcp": "source-port dest-port seq ack flags window-size urgent-pointer options",
    "udp": "source-port dest-port",
    "icmp": "type code rest",
}
PKTANON_HMAC_FIELDS = {
    "hmac_ethernet": "mac-source mac-dest",
    "hmac_arp": "sender-mac sender-ip target-mac target-ip",
    "hmac_ip": "src-ip dest-ip",
    "hmac_icmpv6": "target-address",
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
        "HMAC-SHA1 on IPv4/IPv6 and MAC addresses, payload cut, checksums fixed",
    ),
    (
        "traceanon",
        "libtrace-tools",
        "traceanon -s -d -f {key} pcapfile:{trace} pcapfile:{out}",
        "Crypto-PAn src+dst IPv4, checksums fixed, payload kept",
    ),
)


GATE_LIFTED = 10**12  # above any residual count a benchmark trace can reach


@dataclass(frozen=True)
class ToolSpec:
    """A command with ``{trace}`` and ``{out}`` placeholders left in its argv."""

    name: str
    template: tuple[str, ...]
    does: str  # one line: what the command does to the trace
    package: str | None = None  # Debian package that ships it
    version: str | None = None

    def bind(self, trace: Trace, workdir: Path) -> Tool:
        out = workdir / f"out-{self.name}-{trace.packets}p.pcap"
        argv = [part.replace("{trace}", str(trace.path)).replace("{out}", str(out)) for part in self.template]
        return Tool(self, trace, argv, out)


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_kib: int  # peak RSS of the largest process in the tree (wait4 / GNU time %M)
    tree_kib: int  # sampled peak of the tree's summed RSS; 0 when no sample caught it


@dataclass
class Tool:
    spec: ToolSpec
    trace: Trace
    argv: list[str]
    output: Path
    runs: list[Run] = field(default_factory=list)
    failed: str | None = None
    output_bytes: int | None = None
    output_packets: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return f"{self.name}-{self.trace.packets}p"


# -- anontrace -------------------------------------------------------------------
@dataclass(frozen=True)
class Anontrace:
    """The resolved anontrace command, its key, and whether scrub has --workers."""

    cmd: tuple[str, ...]
    key: Path
    version: str | None
    has_workers: bool

    def specs(self) -> list[ToolSpec]:
        # The leakage gate is lifted: a key under which a few output addresses happen to equal
        # original ones makes the report count them and withhold the trace (exit 3); the work
        # measured is the same either way (see README, "The leakage gate").
        base = (*self.cmd, "scrub", "{trace}", "-o", "{out}", "-q", "--key-file", str(self.key),
                "--fail-on", f"residual.total={GATE_LIFTED}")
        does = "default profile: Crypto-PAn IPv4/IPv6, payload cut, checksums fixed"
        if not self.has_workers:
            return [ToolSpec("anontrace", base, does, version=self.version)]
        return [
            ToolSpec(
                f"anontrace-{n}",
                (*base, "--workers", str(n)),
                f"{does}; {n} worker{'s' if n > 1 else ''}",
                version=self.version,
            )
            for n in WORKER_COUNTS
        ]


def setup_anontrace(cmd_text: str, workdir: Path) -> Anontrace | None:
    """Resolve the command, make a key with ``anontrace keygen``, probe for --workers."""
    cmd = shlex.split(cmd_text)
    resolved = resolve_shim(cmd[0])
    if resolved is None:
        skip(
            "anontrace",
            f"command not found: {cmd[0]!r}. Install the package (`pip install -e .` at the "
            "repository root) or pass e.g. --anontrace 'python -m anontrace'.",
        )
        return None
    cmd = [resolved, *cmd[1:]]
    key = workdir / "anontrace.key"
    key.unlink(missing_ok=True)
    keygen = subprocess.run([*cmd, "keygen", "-o", str(key)], capture_output=True, text=True)
    if keygen.returncode != 0 or not key.exists():
        detail = (keygen.stderr or keygen.stdout).strip().splitlines()[-3:]
        skip("anontrace", f"`{shlex.join([*cmd, 'keygen', '-o', str(key)])}` failed: {' | '.join(detail)}")
        return None
    help_text = subprocess.run([*cmd, "scrub", "--help"], capture_output=True, text=True).stdout
    has_workers = "--workers" in help_text
    if not has_workers:
        print(
            "NOTE anontrace: `scrub --help` has no --workers; measuring one `anontrace` "
            "without the flag (targets for two workers are skipped)",
            file=sys.stderr,
        )
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True).stdout.strip()
    return Anontrace(tuple(cmd), key, version or None, has_workers)


def resolve_shim(name: str) -> str | None:
    """Full path of a command; a pyenv shim is replaced by the real executable,
    so that the shim's own start-up (a shell script, ~50 ms) is not measured."""
    path = shutil.which(name)
    if path is None or "/.pyenv/shims/" not in path:
        return path
    real = subprocess.run(["pyenv", "which", name], capture_output=True, text=True)
    return real.stdout.strip() if real.returncode == 0 and real.stdout.strip() else path


# -- peers -----------------------------------------------------------------------
def peer_specs(workdir: Path) -> list[ToolSpec]:
    """The installed peers, with their key and profile files written to ``workdir``;
    a missing one is skipped with the command that installs it."""
    key = workdir / "traceanon.key"
    key.write_bytes(hashlib.sha256(BENCH_KEY_TEXT).digest())  # traceanon wants 32 bytes
    profile = workdir / "pktanon-profile.xml"
    profile.write_text(pktanon_profile())
    specs = []
    for name, package, template, does in PEERS:
        argv = shlex.split(template.replace("{key}", str(key)).replace("{profile}", str(profile)))
        if shutil.which(argv[0]) is None:
            extra = " (editcap comes with it, from wireshark-common)" if name == "editcap" else ""
            skip(name, f"not installed; install with `apt-get install {package}`{extra}")
            continue
        specs.append(ToolSpec(name, tuple(argv), does, package, package_version(package)))
    return specs


def pktanon_profile() -> str:
    def fields(names: str, anon: str) -> str:
        return "\n".join(f'      <field name="{f}" anon={anon}/>' for f in names.split())

    hmac = f'"AnonHashHmacSha1" key="{BENCH_KEY_TEXT.decode()}"'
    kept = {proto: fields(names, '"AnonIdentity"') for proto, names in PKTANON_KEPT_FIELDS.items()}
    hashed = {slot: fields(names, hmac) for slot, names in PKTANON_HMAC_FIELDS.items()}
    return PKTANON_PROFILE.format(**kept, **hashed)


def package_version(package: str | None) -> str | None:
    if package is None or shutil.which("dpkg-query") is None:
        return None
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return query.stdout.strip() or None


def skip(name: str, why: str) -> None:
    print(f"SKIP {name}: {why}", file=sys.stderr)
