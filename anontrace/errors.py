"""Typed errors raised by the library; only `anontrace.cli` turns them into exit codes."""

from __future__ import annotations


class AnontraceError(Exception):
    """Base of every error the tool reports: a location, what went wrong, and how to fix it."""

    def __init__(self, where: str, what: str, hint: str = "") -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.where = where
        self.what = what
        self.hint = hint

    def __reduce__(self) -> tuple[type[AnontraceError], tuple[str, str, str]]:
        """Pickled by its parts: an error raised in a worker process is re-raised by the main one."""
        return type(self), (self.where, self.what, self.hint)


class UsageError(AnontraceError):
    """The command line asks for something impossible (found before any packet is read)."""


class RuleError(AnontraceError):
    """A rule file is invalid; `where` is `file:line:col`."""


class TraceFormatError(AnontraceError):
    """A capture cannot be read or written: `where` names the file, packet index and byte offset."""


class KeyError_(AnontraceError):
    """A key file is missing, malformed or too widely readable."""


class OutputError(AnontraceError):
    """An output cannot be created or finished (missing directory, permissions, disk full)."""


class EngineError(AnontraceError):
    """Parallel work failed: a worker process died, or the Dask scheduler cannot be reached."""


class LeakGateError(AnontraceError):
    """The leakage report failed a gate: the report was written, the trace withheld (exit 3)."""
