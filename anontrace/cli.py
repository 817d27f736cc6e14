"""The command line: parse options, call one library function, render. The only place that
turns errors into messages and exit codes."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from rich.console import Console

from anontrace import __version__
from anontrace.errors import AnontraceError, KeyError_, LeakGateError, OutputError, UsageError
from anontrace.explain import explain
from anontrace.explain import render as explain_render
from anontrace.explain import to_json as explain_json
from anontrace.io.capture import atomic_output
from anontrace.keys import (
    KEY_ENV,
    combine_shares,
    generate,
    read_key_file,
    read_share_file,
    resolve_key,
    split_key,
    write_key_file,
    write_share_files,
)
from anontrace.labels import GroundTruth
from anontrace.leakage.console import summary as report_summary
from anontrace.leakage.gates import merge as gate_merge
from anontrace.leakage.gates import parse_option as parse_gate
from anontrace.leakage.html import render as render_html
from anontrace.leakage.report import names_config, report_files
from anontrace.leakage.residual import kept_by_mappers
from anontrace.manifest import manifest_path_for, verify
from anontrace.parallel import CHUNK_BYTES, Engine, default_workers
from anontrace.render import progress_bar, summary_json, summary_table
from anontrace.rules.audit import RANK, audit, exit_code, render_json, render_sarif, render_text
from anontrace.rules.compile import read_rules
from anontrace.rules.schema import reference, schema
from anontrace.scrub import Bundle, Written, check_report_path, plan, scrub
from anontrace.signing import load_signing_key, write_signing_key
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES: dict[str, int] = {
    "UsageError": EXIT_USAGE, "RuleError": EXIT_USAGE,
    "KeyError_": EXIT_USAGE, "TraceFormatError": EXIT_FAILED, "OutputError": EXIT_FAILED,
    "EngineError": EXIT_FAILED,
    "LeakGateError": EXIT_GATE,
}


class Terminated(BaseException):
    """SIGTERM arrived: unwind like an interrupt so temporary outputs are removed."""


def _on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    """The first SIGINT or SIGTERM unwinds the command, which removes its temporary files; any
    later one is ignored, so that this clean-up is not cut short in turn."""
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _catch_signals() -> None:
    """Stop on SIGINT and SIGTERM by unwinding (exit 130 or 143), not by dying on the spot. A
    signal the parent set to be ignored stays ignored: a shell starts background jobs with
    SIGINT ignored, so that Ctrl-C at the terminal does not reach them."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)


def _fail(code: int, message: str, hint: str = "", notes: list[str] | None = None) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)
    for note in notes or []:
        click.echo(f"  note: {note}", err=True)
    sys.exit(code)


def _notes(exc: BaseException) -> list[str]:
    """What the library added to an error on its way out (e.g. which outputs were finished)."""
    return [str(note) for note in getattr(exc, "__notes__", [])]


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn library errors into one located line, a hint and the documented exit code."""
    try:
        yield
    except AnontraceError as exc:
        if debug:
            raise
        _fail(EXIT_CODES.get(type(exc).__name__, EXIT_FAILED), str(exc), exc.hint, _notes(exc))
    except KeyboardInterrupt as exc:
        _fail(EXIT_INTERRUPTED, "interrupted; no partial output was left behind", notes=_notes(exc))
    except Terminated as exc:
        _fail(EXIT_TERMINATED, "terminated; no partial output was left behind", notes=_notes(exc))
    except click.ClickException:
        raise
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        if debug:
            raise
        _fail(EXIT_FAILED, f"internal error: {type(exc).__name__}: {exc}",
              "this is a bug in anontrace; run again with --debug and report the traceback")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anontrace")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Make network captures safe to share."""
    ctx.obj = {"debug": debug}
    _catch_signals()


RULES_HELP = "Rule file: a shipped profile name (default: `default`) or a path to a YAML file."
MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
KEY_HELP = "Key file (from `anontrace keygen`); else $ANONTRACE_KEY_FILE; else a one-time key."


@cli.command("scrub")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Output file (one input) or directory (several inputs or a directory); `-` is stdout.")
@click.option("-r", "--rules", "rules_spec", help=RULES_HELP)
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=KEY_HELP)
@click.option("--labels-from", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV of ground-truth labels in ORIGINAL terms (see docs/labels.md).")
@click.option("--report", "report_path", metavar="PATH",
              help="Where the leakage report JSON goes (`-`: stdout); default `<output>.report.json`.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="FIGURE=LIMIT",
              help="Withhold the trace (exit 3) when a report figure exceeds LIMIT; repeatable.")
@click.option("--known", "known", multiple=True, metavar="ADDRESS",
              help="An original address the adversary is assumed to know (default: the busiest hosts).")
@click.option("--sign-key", type=click.Path(dir_okay=False, path_type=Path),
              help="Ed25519 private key (PEM) that signs the manifest.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Worker processes (default: the machine's cores); large files are split between them.")
@click.option("--engine", "engine_name", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="Where the work runs: local processes, or a Dask cluster.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler (tcp:// or tls://); default: a local cluster of --workers processes.")
@click.option("--scheduler-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              metavar="SECONDS", help="How long to try to reach the Dask scheduler.")
@click.option("--chunk-size", type=click.IntRange(1), default=CHUNK_BYTES, hidden=True,
              help="Bytes per piece of a split file (for tests).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.pass_context
def scrub_command(ctx: click.Context, inputs: tuple[str, ...], output: str, rules_spec: str | None,
                  key_file: Path | None, labels_from: Path | None, report_path: str | None,
                  fail_on: tuple[str, ...], known: tuple[str, ...], sign_key: Path | None,
                  workers: int | None, engine_name: str, scheduler: str | None, scheduler_timeout: float,
                  chunk_size: int, quiet: bool, as_json: bool) -> None:
    """Anonymize captures (pcap/pcapng, optionally .gz/.zst; `-` for stdin) into shareable ones:
    beside each output go its labels, flows, leakage report and manifest. Exit 0: done; 1: the
    run failed; 2: usage or rule-file error; 3: a report gate failed (trace withheld); 130, 143:
    stopped by SIGINT, SIGTERM (nothing partial is left under an output's name)."""
    with _errors(ctx.obj["debug"]):
        stdout_users = [name for name, used in (("the capture", output == "-"), ("--json", as_json),
                                                ("the report", report_path == "-")) if used]
        if len(stdout_users) > 1:
            raise UsageError("-", f"{' and '.join(stdout_users)} cannot both go to stdout",
                             "write one of them to a file")
        rules = read_rules(rules_spec)
        tasks = plan(list(inputs), output)
        if report_path is not None and len(tasks) > 1:
            raise UsageError("--report", "several outputs have several reports",
                             "leave --report out: each report goes beside its trace")
        check_report_path(report_path, tasks)
        bundle = Bundle(truth=GroundTruth.read(labels_from) if labels_from else None,
                        report=report_path, gates=tuple(parse_gate(g) for g in fail_on),
                        known=tuple(_ip(a, "--known") for a in known),
                        sign_key=load_signing_key(sign_key) if sign_key else None)
        if scheduler is not None and engine_name != "dask":
            raise UsageError("--scheduler", "a scheduler is for the Dask engine", "add --engine dask")
        engine = Engine(workers or default_workers(), engine_name == "dask", scheduler, chunk_size,
                        scheduler_timeout)
        key_path = key_file or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
        key = resolve_key(key_file)
        if key.one_time and rules.links_across_runs:
            raise KeyError_(rules.source, "these rules say traces must link across runs, "
                            "and a one-time key cannot", "give a key with --key-file or ANONTRACE_KEY_FILE")
        if key.one_time and not quiet:
            click.echo(f"anontrace: no key given; using a one-time key (fingerprint {key.fingerprint}): "
                       "the mapping cannot be reversed or linked to other runs", err=True)
        with progress_bar(enabled=not quiet and sys.stderr.isatty()) as advance:
            result = scrub(tasks, rules, key, advance, bundle, engine, str(key_path) if key_path else None)
        if as_json:
            click.echo(json.dumps(summary_json(result), indent=2))
        if not quiet:
            summary_table(result)
            _report_summaries(result.written)
        for line in result.unmatched_rows[:20]:
            click.echo(f"anontrace: {labels_from}:{line}: label row matched no frame", err=True)
        if len(result.unmatched_rows) > 20:
            click.echo(f"anontrace: {labels_from}: {len(result.unmatched_rows) - 20} more rows matched "
                       "no frame", err=True)
        withheld = [w for w in result.written if not w.report["passed"]]
        if withheld:
            failed = _failed_gates(withheld[0].report)
            removed = [path for w in withheld for path in w.removed]
            raise LeakGateError(", ".join(w.task.target for w in withheld),
                                f"withheld: the leakage report failed its gates ({failed})",
                                _withheld_hint(output, report_path, removed))


def _report_summaries(written: list[Written]) -> None:
    """The leakage report's summary on stderr: in full for one trace, one verdict line each for
    several (a directory of captures would otherwise scroll by in summaries)."""
    if len(written) == 1:
        report_summary(written[0].report, Console(stderr=True))
        return
    for trace in written:
        verdict = "PASSED" if trace.report["passed"] else f"FAILED ({_failed_gates(trace.report)})"
        click.echo(f"anontrace: {trace.task.target}: leakage report {verdict}", err=True)


def _withheld_hint(output: str, report_path: str | None, removed: list[str]) -> str:
    if output == "-" and report_path in (None, "-"):
        where = "on stdout above" if report_path == "-" else "nowhere (give --report PATH to keep it)"
        return f"nothing was written to stdout; the report was written {where}"
    where = "beside the output" if report_path is None else report_path
    return (f"see the report {where}; the trace was not published"
            + (f" (an earlier run's {', '.join(removed)} removed)" if removed else ""))


def _failed_gates(report: dict[str, Any]) -> str:
    return "; ".join(f"{g['figure']} = {'not measured' if g['value'] is None else g['value']} "
                     f"> {g['limit']:g}" for g in report["gates"] if not g["passed"])


@cli.command("keygen")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Key file to create (mode 0600).")
@click.option("--shares", type=click.IntRange(2, 255), help="Also split the key into this many shares.")
@click.option("--threshold", type=click.IntRange(2, 255),
              help="How many shares rebuild the key (with --shares).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
def keygen_command(ctx: click.Context, output: Path, shares: int | None, threshold: int | None,
                   force: bool) -> None:
    """Write a new random 32-byte key as 64 hex characters; with --shares N --threshold K, also
    N share files `<output>.share-I-of-N`, any K of which rebuild the key (`anontrace key combine`)."""
    with _errors(ctx.obj["debug"]):
        if (shares is None) != (threshold is None):
            raise UsageError("--shares", "--shares and --threshold go together")
        key = generate()
        pieces = split_key(key, shares, threshold) if shares and threshold else []
        # Shares first: they are never overwritten, so a key (or, with --force, the key it
        # replaces) is written only once its shares are; a key without them would be unguarded.
        written = write_share_files(output, pieces) if pieces else []
        try:
            write_key_file(output, key, force=force)
        except AnontraceError:
            for path in written:
                path.unlink()
            raise
        click.echo(f"anontrace: wrote key {output} (fingerprint {key.fingerprint})", err=True)
        if pieces:
            for path in written:
                click.echo(f"anontrace: wrote share {path}", err=True)
            click.echo(f"anontrace: any {threshold} of the {shares} shares rebuild the key; hand each "
                       "to a different person and delete the key file when it is no longer needed", err=True)


@cli.group("key")
def key_group() -> None:
    """Key custody: split a key into shares, combine shares, make a manifest signing key."""


@key_group.command("split")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--shares", type=click.IntRange(2, 255), required=True, help="How many shares.")
@click.option("--threshold", type=click.IntRange(2, 255), required=True, help="How many rebuild the key.")
@click.pass_context
def key_split_command(ctx: click.Context, key_file: Path, shares: int, threshold: int) -> None:
    """Split an existing key into share files `<KEY_FILE>.share-I-of-N`."""
    with _errors(ctx.obj["debug"]):
        key = read_key_file(key_file)
        for path in write_share_files(key_file, split_key(key, shares, threshold)):
            click.echo(f"anontrace: wrote share {path}", err=True)


@key_group.command("combine")
@click.argument("share_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Key file to create (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
def key_combine_command(ctx: click.Context, share_files: tuple[Path, ...], output: Path, force: bool) -> None:
    """Rebuild a key from enough share files (each holds one share line)."""
    with _errors(ctx.obj["debug"]):
        texts = [read_share_file(path) for path in share_files]
        key = combine_shares(texts)
        write_key_file(output, key, force=force)
        click.echo(f"anontrace: rebuilt key {output} (fingerprint {key.fingerprint})", err=True)


@key_group.command("signing")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private key file to create (PEM, mode 0600); the public key goes to `<output>.pub`.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
def key_signing_command(ctx: click.Context, output: Path, force: bool) -> None:
    """Make an Ed25519 key pair for `scrub --sign-key` and `verify --public-key`."""
    with _errors(ctx.obj["debug"]):
        key_id = write_signing_key(output, force=force)
        click.echo(f"anontrace: wrote {output} and {output}.pub (key id {key_id})", err=True)


@cli.command("report")
@click.argument("captures", nargs=-1, required=True)
@click.option("-r", "--rules", "rules_spec", help="Rule file whose gates (and labels) apply.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The key the trace was scrubbed with: addresses the rules keep are then told apart.")
@click.option("--report", "report_path", metavar="PATH",
              help="Where the report JSON goes (`-`: stdout); default `<ANONYMIZED>.report.json`.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="FIGURE=LIMIT",
              help="Exit 3 when a report figure exceeds LIMIT; repeatable.")
@click.option("--known", "known", multiple=True, metavar="ADDRESS",
              help="An original address the adversary is assumed to know (default: the busiest hosts).")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@click.pass_context
def report_command(ctx: click.Context, captures: tuple[str, ...], rules_spec: str | None,
                   key_file: Path | None, report_path: str | None, fail_on: tuple[str, ...],
                   known: tuple[str, ...], quiet: bool) -> None:
    """Leakage report for ORIGINAL ANONYMIZED (a capture and its anonymized form), or for
    ANONYMIZED alone (the figures that need no original). Exit 0: written, gates passed;
    1: failed (e.g. the captures do not correspond); 2: usage; 3: a gate failed."""
    with _errors(ctx.obj["debug"]):
        if len(captures) > 2:
            raise UsageError(" ".join(captures), "give ORIGINAL ANONYMIZED, or ANONYMIZED alone")
        original, anonymized = (captures[0], captures[1]) if len(captures) == 2 else (None, captures[0])
        if report_path not in (None, "-") and any(
                Path(p).exists() and Path(p).samefile(c) for c in captures
                for p in (report_path, report_path.removesuffix(".json") + ".html")):
            raise UsageError("--report", f"{report_path} would overwrite an input capture",
                             "write the report somewhere else")
        if report_path is None and Path(anonymized + ".manifest.json").exists():
            raise UsageError(anonymized, "its bundle already holds the report its scrub wrote (listed in "
                             "its manifest); writing another there would break `verify`",
                             "give --report PATH (or `-` for stdout)")
        rules = read_rules(rules_spec) if rules_spec else None
        gates = gate_merge(list(rules.gates) if rules else [], [parse_gate(g) for g in fail_on])
        kept, names = None, None
        if key_file is not None:
            transforms = (rules or read_rules(None)).build(read_key_file(key_file))
            kept = kept_by_mappers(next(t for t in transforms if isinstance(t, Ip)).mapper,
                                   next(t for t in transforms if isinstance(t, Mac)).mapper)
            names = names_config(transforms)
        report = report_files(original, anonymized, kept=kept,
                              rules=rules.source if rules else None,
                              key_fingerprint=read_key_file(key_file).fingerprint if key_file else None,
                              gates=gates, known=[_ip(a, "--known") for a in known] or None, names=names)
        text = json.dumps(report, indent=2) + "\n"
        if report_path == "-":
            click.echo(text, nl=False)
        else:
            json_path = report_path or anonymized + ".report.json"
            with atomic_output(json_path) as out:
                out.write(text.encode())
            with atomic_output(json_path.removesuffix(".json") + ".html") as out:
                out.write(render_html(report).encode())
        if not quiet:
            report_summary(report, Console(stderr=True))
        if not report["passed"]:
            raise LeakGateError(anonymized, f"the leakage report failed its gates ({_failed_gates(report)})")


@cli.command("verify")
@click.argument("output")
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The signer's public key (PEM): the signature must be by this key.")
@click.option("--original", "originals", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="An original capture to check against the manifest's input digests; repeatable.")
@click.pass_context
def verify_command(ctx: click.Context, output: str, public_key: Path | None,
                   originals: tuple[Path, ...]) -> None:
    """Check a shared trace against its manifest (OUTPUT is the trace or its .manifest.json):
    every file's digest and size, and the signature. Exit 0: all match; 1: something differs
    (each difference is listed)."""
    with _errors(ctx.obj["debug"]):
        result = verify(manifest_path_for(output), public_key, list(originals))
        for line in result.checked:
            click.echo(f"ok: {line}")
        for line in result.problems:
            click.echo(f"DIFFERS: {line}")
        if result.problems:
            raise OutputError(output, f"{len(result.problems)} difference(s) from the manifest",
                              "the bundle was changed after it was made, or is incomplete")


@cli.command("map")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The key the trace was scrubbed with.")
@click.option("--reverse", is_flag=True, help="Give the original address behind mapped ones.")
@click.option("-r", "--rules", "rules_spec", help=RULES_HELP)
@click.pass_context
def map_command(ctx: click.Context, addresses: tuple[str, ...], key_file: Path, reverse: bool,
                rules_spec: str | None) -> None:
    """Print the mapped (or, with --reverse, original) form of each IPv4/IPv6 address or MAC
    (aa:bb:cc:dd:ee:ff), one per line."""
    with _errors(ctx.obj["debug"]):
        key = read_key_file(key_file)
        rules = read_rules(rules_spec)
        packed = [_address(a) for a in addresses]
        transforms = rules.build(key)
        ips = next(t for t in transforms if isinstance(t, Ip)).mapper
        macs = next(t for t in transforms if isinstance(t, Mac)).mapper
        for value in packed:
            if len(value) == 6:
                result = macs.reverse(value) if reverse else macs.map(value)
                click.echo(":".join(f"{b:02x}" for b in result))
            else:
                result = ips.reverse(value) if reverse else ips.map(value)
                click.echo(str(ipaddress.ip_address(result)))


@cli.command("audit")
@click.argument("rule_files", nargs=-1, required=True)
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True, help="How findings are printed on stdout.")
@click.option("--fail-on", type=click.Choice(list(RANK)), default="warning", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.pass_context
def audit_command(ctx: click.Context, rule_files: tuple[str, ...], output_format: str, fail_on: str) -> None:
    """Review rule files (paths or shipped profile names) without touching a capture: findings
    with a severity and the file:line:col they point at. Exit 0: nothing at or above
    --fail-on; 1: findings at or above it; 2: a rule file is invalid or unreadable."""
    with _errors(ctx.obj["debug"]):
        findings = audit(list(rule_files))
        render = {"text": render_text, "json": render_json, "sarif": render_sarif}[output_format]
        click.echo(render(findings), nl=False)
        code = exit_code(findings, fail_on)
    sys.exit(code)


@cli.command("explain")
@click.argument("source")
@click.option("-r", "--rules", "rules_spec", help=RULES_HELP)
@click.option("-n", "count", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many frames, from the first.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def explain_command(ctx: click.Context, source: str, rules_spec: str | None, count: int,
                    key_file: Path | None, as_json: bool) -> None:
    """Show the first N frames of SOURCE before and after the rules, field by field."""
    with _errors(ctx.obj["debug"]):
        rules = read_rules(rules_spec)
        key = resolve_key(key_file)
        changes = explain(source, rules, key, count)
        if as_json:
            click.echo(json.dumps(explain_json(changes), indent=2))
        else:
            explain_render(changes, Console(highlight=False))


@cli.group("rules")
def rules_group() -> None:
    """The rule-file format: JSON Schema and reference."""


@rules_group.command("schema")
def rules_schema_command() -> None:
    """Print a JSON Schema of rule files (for editors that complete and check YAML)."""
    click.echo(json.dumps(schema(), indent=2))


@rules_group.command("docs")
def rules_docs_command() -> None:
    """Print the rule-file reference (docs/rules.md) generated from the transforms' settings."""
    click.echo(reference(), nl=False)


def _ip(text: str, option: str) -> bytes:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        raise UsageError(option, f"{text!r} is not an IPv4 or IPv6 address") from None


def _address(text: str) -> bytes:
    if MAC_TEXT.fullmatch(text):
        return bytes.fromhex(text.replace(":", "").replace("-", ""))
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an IPv4 or IPv6 address or a MAC",
                                 param_hint="ADDRESSES") from None


def main() -> None:
    """Entry point of the `anontrace` command."""
    cli(prog_name="anontrace")
