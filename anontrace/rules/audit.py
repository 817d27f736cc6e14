"""Review rule files without a capture: validity first, then settings that let identifiers through.

Every finding has a severity (`error`: the file cannot be used; `warning`: an identifier or a host
fingerprint reaches the output; `info`: a choice worth knowing about), a stable rule id, a message,
the `file:line:col` of the setting responsible (the step, or the file's first line when the step is
missing) and a hint. `RULES` lists every rule id with what it means.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from anontrace import __version__
from anontrace.errors import AnontraceError, UsageError
from anontrace.rules.compile import PROFILES, Rules, Step, read_rules
from anontrace.rules.document import Document, load
from anontrace.transforms.ip import parse_networks
from anontrace.transforms.names import NamesConfig

Severity = Literal["error", "warning", "info"]
RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
JSON_VERSION = 1
INVALID = "invalid-rule-file"

RULES: dict[str, str] = {
    INVALID: "The rule file cannot be read or is not valid; nothing can be scrubbed with it.",
    "payload-kept-unscoped": "Payload bytes are kept for all traffic.",
    "payload-kept-personal-data": "Payload bytes are kept for protocols that carry personal data.",
    "payload-identifiers-rewritten": "Identifiers found in kept payload are rewritten rather than cut.",
    "ip-kept-global-ipv6": "Global IPv6 addresses, or IPv4 ones embedded in IPv6, pass through unmapped.",
    "ip-kept-beyond-special-purpose": "Non-special-purpose addresses are kept, or keep their prefix.",
    "ip-kept-link-local": "IPv6 link-local addresses are kept whole, interface ids included.",
    "mac-vendor-kept": "The vendor part (OUI) of every MAC address is kept.",
    "mac-group-mapped": "Broadcast and multicast MAC addresses are mapped like host addresses.",
    "names-kept": "Host and domain names are kept as captured.",
    "names-labels-kept": "Name labels beyond the protocol ones are kept wherever they appear.",
    "generalize-missing": "No generalize step: header fields that fingerprint hosts are kept.",
    "generalize-ttl-kept": "IP TTL / hop limit values are kept.",
    "generalize-ip-id-kept": "IPv4 identification values are kept.",
    "generalize-ports-kept": "TCP and UDP port numbers are kept.",
    "generalize-tcp-options-kept": "TCP options beyond the basic ones are kept.",
    "generalize-tcp-timestamps-kept": "TCP timestamp values are kept.",
    "generalize-flow-label-kept": "IPv6 flow labels are kept.",
    "timing-missing": "No timing step: capture times are kept to the nanosecond.",
    "timing-untouched": "The timing step changes nothing.",
    "timing-noise-small": "Timing noise is too small to blur inter-arrival times.",
    "links-across-runs-needs-key": "The rules promise traces that link across runs, which needs a key file.",
    "residual-gate-missing": "No report gate withholds a trace in which original identifiers remain.",
}

# Ranges that name no host (IANA special-purpose registries): passing them through reveals nothing.
SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/32", "127.0.0.0/8", "169.254.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "100::/64", "2001:db8::/32", "3fff::/20",
    "fe80::/10", "ff00::/8"))
# Global unicast IPv6 and the forms that carry an IPv4 address (IPv4-compatible and -mapped, NAT64).
GLOBAL_IPV6 = tuple(ipaddress.ip_network(n) for n in (
    "2000::/3", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))
LINK_LOCAL_IPV6 = ipaddress.ip_network("fe80::/10")
PERSONAL_PORTS = {21: "FTP", 23: "telnet", 25: "SMTP", 67: "DHCP", 68: "DHCP", 80: "HTTP", 110: "POP3",
                  143: "IMAP", 389: "LDAP", 445: "SMB", 587: "SMTP submission", 993: "IMAPS", 995: "POP3S",
                  5060: "SIP", 8080: "HTTP"}
NAME_PORTS = {53: "DNS", 5353: "mDNS", 5355: "LLMNR"}  # personal data once names are kept
PORTLESS = frozenset({"arp", "icmp", "icmpv6"})
BASIC_TCP_OPTIONS = frozenset({0, 1, 2, 3, 4, 5})  # EOL, NOP, MSS, window scale, SACK-permitted, SACK
MIN_NOISE_US = 100.0
WHERE = re.compile(r"^(.*):(\d+):(\d+)$")
RESIDUAL_FIGURES = ("residual.total", "residual.distinct")  # either at 0 means no identifier left


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a reviewer should know about a rule file."""

    severity: Severity
    rule: str
    message: str
    where: str
    hint: str = ""


def audit(paths: list[str]) -> list[Finding]:
    """Findings for each rule file (a path or a shipped profile name), in the order given; within a
    file, by location. A file that cannot be read or validated gives one `error` finding."""
    found: list[Finding] = []
    for spec in paths:
        try:
            rules = read_rules(spec)
        except AnontraceError as error:
            found.append(Finding("error", INVALID, error.what, error.where or spec,
                                 error.hint or "fix the rule file and audit it again"))
            continue
        found.extend(sorted(_Review(rules).findings(), key=_position))
    return found


def invalid(findings: list[Finding]) -> bool:
    """Whether some rule file could not be read or validated."""
    return any(f.rule == INVALID for f in findings)


def exit_code(findings: list[Finding], fail_on: str) -> int:
    """2 if a rule file is invalid, 1 if a finding is at or above `fail_on`, else 0."""
    if fail_on not in RANK:
        raise UsageError("--fail-on", f"unknown severity {fail_on!r}", "one of error, warning, info")
    if invalid(findings):
        return 2
    return 1 if any(RANK[f.severity] >= RANK[fail_on] for f in findings) else 0


class _Locator:
    """Finds where a value inside a setting was written, by reading again the rule file that a
    setting's `file:line:col` names (Steps only keep the location of each setting as a whole)."""

    def __init__(self) -> None:
        self._documents: dict[str, Document | None] = {}

    def within(self, where: str, *path: str | int) -> str:
        """The location of `path` below the value written at `where` (or its nearest parent)."""
        match = WHERE.match(where)
        document = self._document(match.group(1)) if match else None
        if document is None:
            return where
        base = next((p for p, mark in document.values.items() if mark == where), None)
        return where if base is None else document.where((*base, *path))

    def key(self, source: str, name: str) -> str:
        """Where top-level key `name` is written in `source`, or the file's first line."""
        document = self._document(source)
        return document.keys.get((name,), f"{source}:1:1") if document else f"{source}:1:1"

    def _document(self, source: str) -> Document | None:
        if source not in self._documents:
            try:
                if source.startswith("<") and source.endswith(">"):
                    text = files(PROFILES).joinpath(f"{source[1:-1]}.yaml").read_text(encoding="utf-8")
                else:
                    text = Path(source).read_text(encoding="utf-8")
                self._documents[source] = load(text, source)
            except (OSError, UnicodeDecodeError, AnontraceError):
                self._documents[source] = None
        return self._documents[source]


class _Review:
    """The checks on one valid rule file."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.top = f"{rules.source}:1:1"
        self.locate = _Locator()
        self.found: list[Finding] = []

    def findings(self) -> list[Finding]:
        checks = {"ip": self._ip, "mac": self._mac, "names": self._names, "payload": self._payload,
                  "generalize": self._generalize, "timing": self._timing}
        for step in self.rules.steps:
            if step.transform.name in checks:
                checks[step.transform.name](step)
        self._missing("generalize", "header fields that fingerprint hosts and their software (TTL, IP id, "
                      "ports, TCP options and timestamps, flow labels) are kept as captured",
                      "add `- use: generalize` (its defaults bucket TTLs and map ports and IP ids)")
        self._missing("timing", "capture times are kept to the nanosecond: they tell when the capture "
                      "was made, and inter-arrival times and clock skew fingerprint hosts",
                      "add `- use: timing` with `shift: keyed`, and `precision: ms` or noise")
        if self.rules.links_across_runs:
            self._add("info", "links-across-runs-needs-key", "the rules say traces must link across runs: "
                      "that holds only when every run uses the same key",
                      self.locate.key(self.rules.source, "links_across_runs"),
                      "scrub with --key-file (or ANONTRACE_KEY_FILE); a run with a one-time key is refused")
        self._residual_gate()
        return self.found

    def _add(self, severity: Severity, rule: str, message: str, where: str, hint: str) -> None:
        self.found.append(Finding(severity, rule, message, where, hint))

    @staticmethod
    def _at(step: Step, setting: str) -> str:
        return step.locations.get(setting, step.where)

    def _missing(self, name: str, what: str, hint: str) -> None:
        steps = [s for s in self.rules.steps if s.transform.name == name]
        if any(s.when is None for s in steps):
            return
        if steps:  # every step has a `when:`
            self._add("warning", f"{name}-missing", f"the {name} step applies only to the traffic its "
                      f"`when:` names: for other frames {what}", steps[0].where, hint)
        else:
            self._add("warning", f"{name}-missing", f"no {name} step: {what}", self.top, hint)

    def _residual_gate(self) -> None:
        gates = [g for g in self.rules.gates if g.figure in RESIDUAL_FIGURES]
        if not gates:
            self._add("info", "residual-gate-missing", "no `report: fail_on:` gate on `residual.total`: a "
                      "trace in which the leakage report finds original identifiers is published all the "
                      "same", self.locate.key(self.rules.source, "report"),
                      "add `report: {fail_on: {residual.total: 0}}`, as the shipped profiles have")
            return
        tightest = min(gates, key=lambda g: g.limit)
        if tightest.limit >= 1:
            self._add("info", "residual-gate-missing", f"the {tightest.figure} gate lets a trace with up to "
                      f"{tightest.limit:g} original identifiers left in it be published", tightest.source,
                      f"set `{tightest.figure}: 0`")

    def _payload(self, step: Step) -> None:
        keep = getattr(step.config, "keep", 0)
        if keep <= 0:
            return
        if getattr(step.config, "identifiers", None) == "rewrite":
            self._add("info", "payload-identifiers-rewritten", "identifiers found in kept payload are "
                      "rewritten, not cut: binary false positives (any 4, 6 or 16 bytes that equal an "
                      "address or MAC seen) are changed in place and the bytes around them are kept",
                      self._at(step, "identifiers"), "use `identifiers: cut` to end the payload before them")
        names_kept = self._names_policy() == "keep"
        personal = {**PERSONAL_PORTS, **(NAME_PORTS if names_kept else {})}
        carriers = ", ".join(sorted(set(personal.values())))
        if step.when is None:
            self._add("warning", "payload-kept-unscoped", f"{keep} bytes of payload are kept for all "
                      f"traffic, including protocols that carry personal data ({carriers})",
                      self._at(step, "keep"),
                      "add a `when:` naming the protocols or ports you need, or set `keep: 0`")
            return
        if not step.when.ports:
            if step.when.protocols and all(p in PORTLESS for p in step.when.protocols):
                return
            self._add("warning", "payload-kept-personal-data", f"{keep} bytes of payload are kept on every "
                      f"port of the traffic the `when:` names, including {carriers}",
                      self.locate.within(step.where, "when"), "name the ports you need in `when: port:`")
            return
        hits = [(i, p) for i, p in enumerate(step.when.ports) if p in personal]
        if hits:
            named = ", ".join(f"{p} ({personal[p]})" for _, p in hits)
            self._add("warning", "payload-kept-personal-data", f"{keep} bytes of payload are kept on port "
                      f"{named}, where personal data travels (names, mail and web addresses, user names, "
                      "passwords)", self.locate.within(step.where, "when", "port", hits[0][0]),
                      "keep payload only for protocols that carry no personal data, or set `keep: 0`")

    def _names_policy(self) -> str:
        step = next((s for s in self.rules.steps if s.transform.name == "names"), None)
        return str(getattr(step.config, "policy", "")) if step else NamesConfig().policy

    def _ip(self, step: Step) -> None:
        for setting in ("keep", "keep_prefix"):
            for index, network in enumerate(parse_networks(getattr(step.config, setting, ()))):
                self._network(step, setting, index, network)

    def _network(self, step: Step, setting: str, index: int, network: Any) -> None:
        where = self.locate.within(self._at(step, setting), index)
        if setting == "keep" and network.version == 6 and network.overlaps(LINK_LOCAL_IPV6):
            self._add("warning", "ip-kept-link-local", f"ip.keep keeps link-local addresses in {network} "
                      "whole: an IPv6 interface id often embeds the host's MAC address (EUI-64)", where,
                      f"move {LINK_LOCAL_IPV6} to `keep_prefix`, which maps the host part")
        if any(network.version == s.version and network.subnet_of(s) for s in SPECIAL):
            return
        if setting == "keep" and any(network.version == g.version and network.overlaps(g)
                                     for g in GLOBAL_IPV6):
            self._add("warning", "ip-kept-global-ipv6", f"ip.keep passes {network} through unmapped: it "
                      "covers global IPv6 addresses (and IPv4 addresses embedded in 6to4, Teredo, NAT64 or "
                      "IPv4-mapped forms), which name hosts and their networks", where,
                      "remove it: keep only ranges that name no host (loopback, multicast, unspecified)")
            return
        effect = "passes" if setting == "keep" else "keeps the prefix of addresses in"
        self._add("warning", "ip-kept-beyond-special-purpose", f"ip.{setting} {effect} {network}, which is "
                  "not a special-purpose range: it reveals internal addressing and the networks hosts are in",
                  where, "keep only the special-purpose ranges (127.0.0.0/8, 224.0.0.0/4, ff00::/8, ...)")

    def _mac(self, step: Step) -> None:
        if getattr(step.config, "keep_oui", False):
            self._add("warning", "mac-vendor-kept", "mac.keep_oui keeps the vendor part of every MAC: the "
                      "vendor narrows down which device, and often which person, a host is",
                      self._at(step, "keep_oui"), "set `keep_oui: false`")
        if getattr(step.config, "keep_group", True) is False:
            self._add("info", "mac-group-mapped", "mac.keep_group: broadcast and multicast MACs are mapped "
                      "like host MACs: they name groups, not hosts, and become unrecognisable",
                      self._at(step, "keep_group"), "set `keep_group: true` unless group MACs are sensitive")

    def _names(self, step: Step) -> None:
        if getattr(step.config, "policy", None) == "keep":
            self._add("warning", "names-kept", "names.policy: keep copies host and domain names (DNS, "
                      "DHCP, mDNS) to the output: they name people, devices and organisations",
                      self._at(step, "policy"), "use `policy: hash` (keyed, same length) or `remove`")
        labels = getattr(step.config, "keep_labels", ())
        usual = NamesConfig().keep_labels
        extra = [(i, label) for i, label in enumerate(labels) if label.lower() not in usual]
        if extra:
            kept = ", ".join(label for _, label in extra)
            self._add("info", "names-labels-kept", f"names.keep_labels keeps {kept} "
                      "wherever it appears: a kept label can name an organisation or a host",
                      self.locate.within(self._at(step, "keep_labels"), extra[0][0]),
                      "keep only protocol labels (arpa, in-addr, ip6, local)")

    def _generalize(self, step: Step) -> None:
        kept = {
            "ttl": ("generalize-ttl-kept", "initial TTLs (64, 128, 255) tell the operating system and the "
                    "remainder tells how many hops away a host is", "use `ttl: bucket` or `constant`"),
            "ip_id": ("generalize-ip-id-kept", "IP ids count per host on many systems: they tell hosts "
                      "behind one address apart and link their packets", "use `ip_id: permute`"),
            "ports": ("generalize-ports-kept", "ephemeral ports follow each operating system's allocator "
                      "and link connections", "use `ports: map` or `bucket`"),
            "tcp_timestamps": ("generalize-tcp-timestamps-kept", "TCP timestamps reveal a host's uptime and "
                               "clock skew, a fingerprint that survives address changes",
                               "use `tcp_timestamps: renumber` or `remove`"),
            "flow_label": ("generalize-flow-label-kept", "IPv6 flow labels are per-flow values, some derived "
                           "from addresses and ports without a key: they link flows and can reveal hosts",
                           "use `flow_label: keyed`"),
        }
        for setting, (rule, why, hint) in kept.items():
            if getattr(step.config, setting, None) == "keep":
                self._add("warning", rule, f"generalize.{setting}: keep: {why}", self._at(step, setting),
                          hint)
        options = getattr(step.config, "keep_tcp_options", ())
        extra = [(i, kind) for i, kind in enumerate(options) if kind not in BASIC_TCP_OPTIONS]
        if extra:
            self._add("warning", "generalize-tcp-options-kept", "generalize.keep_tcp_options keeps option "
                      f"kinds {', '.join(str(k) for _, k in extra)}: the options a stack sends, their order "
                      "and values fingerprint its operating system",
                      self.locate.within(self._at(step, "keep_tcp_options"), extra[0][0]),
                      "keep only 0, 1, 2, 3, 4 and 5 (EOL, NOP, MSS, window scale, SACK)")

    def _timing(self, step: Step) -> None:
        config = step.config
        if (getattr(config, "shift", None), getattr(config, "noise", None),
                getattr(config, "precision", None)) == ("none", "none", "ns"):
            self._add("warning", "timing-untouched", "the timing step keeps every time as captured: it tells "
                      "when the capture was made, and clock skew and exact intervals fingerprint hosts",
                      step.where, "set `shift: keyed`, and `precision: ms` or `noise: laplace`")
        scale = getattr(config, "noise_scale_us", None)
        noisy = getattr(config, "noise", "none") != "none"
        if noisy and isinstance(scale, int | float) and scale < MIN_NOISE_US:
            self._add("info", "timing-noise-small", f"timing noise of {scale} µs is below network jitter "
                      f"({MIN_NOISE_US:g} µs): it does not blur inter-arrival times",
                      self._at(step, "noise_scale_us"), "raise `noise_scale_us`, or coarsen `precision`")


def _counts(findings: list[Finding]) -> dict[str, int]:
    return {severity: sum(f.severity == severity for f in findings)
            for severity in ("error", "warning", "info")}


def render_text(findings: list[Finding]) -> str:
    """One line per finding (`where: severity: message [rule]`), its hint below, then a count line."""
    lines: list[str] = []
    for f in findings:
        lines.append(f"{f.where}: {f.severity}: {f.message} [{f.rule}]")
        if f.hint:
            lines.append(f"    hint: {f.hint}")
    counts = _counts(findings)
    total = len(findings)
    lines.append(f"{total} finding{'s' * (total != 1)}: " + ", ".join(
        f"{n} {severity}{'s' * (n != 1 and severity != 'info')}" for severity, n in counts.items())
        if total else "no findings")
    return "\n".join(lines) + "\n"


def render_json(findings: list[Finding]) -> str:
    """`{"version": 1, "findings": [...], "counts": {"error": n, "warning": n, "info": n}}`. Each
    finding holds `severity`, `rule`, `message`, `where` (file:line:col), `hint`, and `file`, `line`
    and `column` taken from `where` (`line` and `column` are null when the file has none)."""
    rows = []
    for f in findings:
        file, line, column = _split(f.where)
        rows.append({**asdict(f), "file": file, "line": line, "column": column})
    document = {"version": JSON_VERSION, "findings": rows, "counts": _counts(findings)}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_sarif(findings: list[Finding]) -> str:
    """SARIF 2.1.0: one run of the anontrace driver, every rule id described, one result per finding."""
    ids = list(RULES)
    rules = [{"id": rule, "shortDescription": {"text": text}} for rule, text in RULES.items()]
    results = []
    for f in findings:
        file, line, column = _split(f.where)
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(file)}}
        if line is not None:
            physical["region"] = {"startLine": line, "startColumn": column}
        text = f"{f.message} (hint: {f.hint})" if f.hint else f.message
        results.append({"ruleId": f.rule, "ruleIndex": ids.index(f.rule), "level": SARIF_LEVEL[f.severity],
                        "message": {"text": text}, "locations": [{"physicalLocation": physical}]})
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "anontrace", "version": __version__, "rules": rules}},
        "columnKind": "unicodeCodePoints", "results": results}]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _split(where: str) -> tuple[str, int | None, int | None]:
    match = WHERE.match(where)
    return (match.group(1), int(match.group(2)), int(match.group(3))) if match else (where, None, None)


def _position(finding: Finding) -> tuple[str, int, int]:
    file, line, column = _split(finding.where)
    return file, line or 0, column or 0


def _uri(file: str) -> str:
    """A URI reference for a rule file: absolute paths as file: URIs, others percent-encoded."""
    path = Path(file)
    return path.as_uri() if path.is_absolute() else quote(path.as_posix())
