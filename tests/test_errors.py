"""Errors carry where, what and a hint; only the CLI maps them to exit codes."""

from __future__ import annotations

from anontrace.cli import EXIT_CODES
from anontrace.errors import AnontraceError, RuleError


def test_message_names_the_place_first() -> None:
    error = RuleError("r.yaml:3:5", "steps.0.use: unknown transform 'x'", "available: ip")
    assert str(error) == "r.yaml:3:5: steps.0.use: unknown transform 'x'" and error.hint == "available: ip"


def test_every_error_kind_has_an_exit_code() -> None:
    kinds = {cls.__name__ for cls in AnontraceError.__subclasses__()}
    assert kinds == set(EXIT_CODES)
    assert {EXIT_CODES[k] for k in ("RuleError", "UsageError", "KeyError_")} == {2}
    assert {EXIT_CODES[k] for k in ("TraceFormatError", "OutputError")} == {1}
