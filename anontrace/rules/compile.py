"""Validate a rule file against the transforms' declared settings and build its transforms.

Everything is checked before any packet is read; every message carries `file:line:col`.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from anontrace.errors import RuleError
from anontrace.keys import Key
from anontrace.rules.document import Document, load
from anontrace.transforms import ALWAYS, registry
from anontrace.transforms.base import Context, Transform
from anontrace.transforms.payload import Payload

VERSION = 1
TOP_LEVEL = ("version", "description", "steps")
FORBIDDEN = frozenset({"key", "key_file", "secret", "crypto_key", "cryptopan_key"})
PROFILES = "anontrace.profiles"


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step: which transform, with which settings, written where."""

    transform: type[Transform]
    config: Any
    where: str


@dataclass(frozen=True, slots=True)
class Rules:
    """A validated rule file."""

    source: str
    description: str
    steps: tuple[Step, ...]

    def build(self, key: Key) -> list[Transform]:
        """Instantiate the steps. The identifier transforms (`ip`, `mac`, `names`) always run,
        first, with their default settings unless a step gives others; `payload` always runs
        last, cutting to 0 bytes unless a step says otherwise."""
        context = Context(key, {step.transform.name: step.config for step in self.steps})
        given = {step.transform: step.config for step in self.steps}
        first = [kind(given.get(kind, kind.Config()), context) for kind in ALWAYS]
        middle = [step.transform(step.config, context) for step in self.steps
                  if step.transform not in ALWAYS and step.transform is not Payload]
        return [*first, *middle, Payload(given.get(Payload, Payload.Config()), context)]


def profile_names() -> list[str]:
    """Names of the rule files shipped with anontrace."""
    return sorted(p.name.removesuffix(".yaml") for p in files(PROFILES).iterdir()
                  if p.name.endswith(".yaml"))


def read_rules(spec: str | None) -> Rules:
    """Rules from a shipped profile name (default: `default`) or a path to a YAML file."""
    spec = spec or "default"
    if spec in profile_names():
        text = files(PROFILES).joinpath(f"{spec}.yaml").read_text(encoding="utf-8")
        return parse_rules(text, f"<{spec}>")
    path = Path(spec)
    if not path.suffix and not path.exists():
        raise RuleError(spec, "no such shipped rule file",
                        f"shipped rule files: {', '.join(profile_names())}; or give a path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(spec, f"cannot read rule file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_rules(text, spec)


def parse_rules(text: str, source: str) -> Rules:
    """Validate rule-file text and return its steps."""
    document = load(text, source)
    top = document.value
    if not isinstance(top, dict):
        raise document.error((), "a rule file is a mapping with `version:` and `steps:`")
    _refuse_keys(document, top, ())
    _unknown(document, top, TOP_LEVEL, ())
    if "version" not in top:
        raise document.error((), f"`version: {VERSION}` is missing")
    if top["version"] != VERSION or isinstance(top["version"], bool):
        raise document.error(("version",), f"unsupported version {top['version']!r}",
                             f"this anontrace reads version {VERSION}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise document.error(("description",), "must be text")
    steps = top.get("steps", [])
    if not isinstance(steps, list):
        raise document.error(("steps",), "must be a list of steps, each `- use: TRANSFORM`")
    available = registry()
    compiled: list[Step] = []
    first: dict[str, str] = {}
    for index, raw in enumerate(steps):
        step = _step(document, raw, ("steps", index), available)
        if step.transform.name in first:
            raise document.error(("steps", index, "use"), f"transform {step.transform.name!r} "
                                 f"appears twice (first at {first[step.transform.name]})")
        first[step.transform.name] = step.where
        compiled.append(step)
    return Rules(source, description, tuple(compiled))


def _refuse_keys(document: Document, value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if name in FORBIDDEN:
                raise document.error((*path, name), "keys do not belong in rule files",
                                     "give the key with --key-file or ANONTRACE_KEY_FILE", key=True)
            _refuse_keys(document, item, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_keys(document, item, (*path, index))


def _unknown(document: Document, mapping: dict[str, Any], allowed: typing.Sequence[str],
             path: tuple[str | int, ...]) -> None:
    for name in mapping:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise document.error((*path, name), "unknown key", hint, key=True)


def _step(document: Document, raw: Any, path: tuple[str | int, ...],
          available: dict[str, type[Transform]]) -> Step:
    if not isinstance(raw, dict) or "use" not in raw:
        raise document.error(path, "a step is a mapping starting with `use: TRANSFORM`")
    name = raw["use"]
    if name not in available:
        close = difflib.get_close_matches(str(name), list(available), n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"available: {', '.join(available)}"
        raise document.error((*path, "use"), f"unknown transform {name!r}", hint)
    transform = available[name]
    fields = {f.name: f for f in dataclasses.fields(transform.Config)}
    settings = {k: v for k, v in raw.items() if k != "use"}
    _unknown(document, settings, list(fields), path)
    hints = typing.get_type_hints(transform.Config)
    values = {k: _setting(document, (*path, k), v, hints[k], fields[k]) for k, v in settings.items()}
    return Step(transform, transform.Config(**values), document.where(path))


def _setting(document: Document, path: tuple[str | int, ...], value: Any, kind: Any,
             declared: dataclasses.Field[Any]) -> Any:
    if not _is(value, kind):
        raise document.error(path, f"expected {_describe(kind)}, got {type(value).__name__} {value!r}")
    if isinstance(value, list):
        value = tuple(value)
    numbers = value if isinstance(value, tuple) else (value,)
    minimum, maximum = declared.metadata.get("minimum"), declared.metadata.get("maximum")
    for number in numbers:
        if not isinstance(number, int | float):
            continue
        if minimum is not None and number < minimum:
            raise document.error(path, f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise document.error(path, f"must be at most {maximum}, got {number}")
    choices = declared.metadata.get("choices")
    if choices and any(v not in choices for v in numbers):
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        raise document.error(path, f"must be one of {', '.join(choices)}, got {value!r}", hint)
    check = declared.metadata.get("check")
    problem = check(value) if check else None
    if problem:
        raise document.error(path, problem)
    return value


def _is(value: Any, kind: Any) -> bool:
    """Whether a YAML value fits a declared setting type (bool, int, float, str, tuple of those)."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return bool(kind is str and isinstance(value, str))


def _describe(kind: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    plurals = {int: "whole numbers", float: "numbers", str: "text values", bool: "true/false values"}
    if typing.get_origin(kind) is tuple:
        return f"a list of {plurals[typing.get_args(kind)[0]]}"
    return names.get(kind, str(kind))
