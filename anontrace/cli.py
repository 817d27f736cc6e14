"""The command line: parse options, call one library function, render. The only place that
turns errors into messages and exit codes."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
from rich.console import Console

from anontrace import __version__
from anontrace.errors import AnontraceError, KeyError_, OutputError
from anontrace.explain import explain
from anontrace.explain import render as explain_render
from anontrace.explain import to_json as explain_json
from anontrace.keys import generate, read_key_file, resolve_key, write_key_file
from anontrace.render import progress_bar, summary_json, summary_table
from anontrace.rules.audit import RANK, audit, exit_code, render_json, render_sarif, render_text
from anontrace.rules.compile import read_rules
from anontrace.rules.schema import reference, schema
from anontrace.scrub import plan, scrub
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_CODES: dict[str, int] = {
    "UsageError": EXIT_USAGE, "RuleError": EXIT_USAGE,
    "KeyError_": EXIT_USAGE, "TraceFormatError": EXIT_FAILED, "OutputError": EXIT_FAILED,
}


class Terminated(BaseException):
    """SIGTERM arrived: unwind like an interrupt so temporary outputs are removed."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


def _fail(code: int, message: str, hint: str = "") -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)
    sys.exit(code)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn library errors into one located line, a hint and the documented exit code."""
    try:
        yield
    except AnontraceError as exc:
        if debug:
            raise
        _fail(EXIT_CODES.get(type(exc).__name__, EXIT_FAILED), str(exc), exc.hint)
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted; no output was left behind")
    except Terminated:
        _fail(EXIT_TERMINATED, "terminated; no output was left behind")
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
    signal.signal(signal.SIGTERM, _on_sigterm)


RULES_HELP = "Rule file: a shipped profile name (default: `default`) or a path to a YAML file."
MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
KEY_HELP = "Key file (from `anontrace keygen`); else $ANONTRACE_KEY_FILE; else a one-time key."


@cli.command("scrub")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Output file (one input) or directory (several inputs or a directory); `-` is stdout.")
@click.option("-r", "--rules", "rules_spec", help=RULES_HELP)
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=KEY_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.pass_context
def scrub_command(ctx: click.Context, inputs: tuple[str, ...], output: str, rules_spec: str | None,
                  key_file: Path | None, quiet: bool, as_json: bool) -> None:
    """Anonymize captures (pcap/pcapng, optionally .gz/.zst; `-` for stdin) into shareable ones."""
    with _errors(ctx.obj["debug"]):
        if as_json and output == "-":
            raise OutputError("-", "--json prints on stdout, which already carries the capture",
                              "write the capture to a file")
        rules = read_rules(rules_spec)
        tasks = plan(list(inputs), output)
        key = resolve_key(key_file)
        if key.one_time and rules.links_across_runs:
            raise KeyError_(rules.source, "these rules say traces must link across runs, "
                            "and a one-time key cannot", "give a key with --key-file or ANONTRACE_KEY_FILE")
        if key.one_time and not quiet:
            click.echo(f"anontrace: no key given; using a one-time key (fingerprint {key.fingerprint}): "
                       "the mapping cannot be reversed or linked to other runs", err=True)
        with progress_bar(enabled=not quiet and sys.stderr.isatty()) as advance:
            result = scrub(tasks, rules, key, advance)
        if as_json:
            click.echo(json.dumps(summary_json(result), indent=2))
        if not quiet:
            summary_table(result)


@cli.command("keygen")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Key file to create (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
def keygen_command(ctx: click.Context, output: Path, force: bool) -> None:
    """Write a new random 32-byte key as 64 hex characters."""
    with _errors(ctx.obj["debug"]):
        key = generate()
        write_key_file(output, key, force=force)
        click.echo(f"anontrace: wrote key {output} (fingerprint {key.fingerprint})", err=True)


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
