"""Validate a rule file against the transforms' declared settings and build its transforms.

Everything is checked before any packet is read; every message carries `file:line:col`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import ipaddress
import math
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from anontrace.errors import RuleError
from anontrace.keys import Key
from anontrace.labels import LabelRule, LabelRules, label_problem
from anontrace.leakage.gates import FIGURES, Gate
from anontrace.rules.document import Document, load
from anontrace.rules.filters import DIRECTIONS, PROTOCOLS, Filter
from anontrace.transforms import ALWAYS, registry
from anontrace.transforms.base import Context, Transform
from anontrace.transforms.payload import Payload
from anontrace.transforms.scoped import Scoped

VERSION = 1
TOP_LEVEL = ("version", "description", "extends", "links_across_runs", "steps", "labels", "report")
LABEL_KEYS = ("when", "label")
REPORT_KEYS = ("fail_on",)
WHEN_KEYS = ("protocol", "port", "network", "direction")
MAX_EXTENDS = 8
FORBIDDEN = frozenset({"key", "key_file", "secret", "crypto_key", "cryptopan_key"})
PROFILES = "anontrace.profiles"
MAX_RULE_FILE = 1 << 20  # a rule file is read by people: a megabyte is already absurd


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step: which transform, with which settings, for which traffic (`when`),
    written where; `locations` holds the `file:line:col` of each setting the file gives (settings
    left at their default have none)."""

    transform: type[Transform]
    config: Any
    where: str
    when: Filter | None = None
    locations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rules:
    """A validated rule file, with the profile it extends already merged in."""

    source: str
    description: str
    steps: tuple[Step, ...]
    links_across_runs: bool = False
    digest: str = ""  # SHA-256 of the rule file's text (the files it extends have their own)
    labels: LabelRules | None = None
    gates: tuple[Gate, ...] = ()  # `report: fail_on:`, each with the `file:line:col` that set it

    def build(self, key: Key) -> list[Transform]:
        """Instantiate the steps. The identifier transforms (`ip`, `mac`, `names`) always run,
        first, with their default settings unless a step gives others; other steps follow in file
        order; `payload` always runs last, cutting to 0 bytes unless a step says otherwise.
        Steps of one transform with `when:` filters become one `Scoped` transform: per frame the
        first matching step applies."""
        unscoped = {s.transform.name: s.config for s in self.steps if s.when is None}
        context = Context(key, unscoped)
        groups: dict[type[Transform], list[Step]] = {}
        for step in self.steps:
            groups.setdefault(step.transform, []).append(step)
        first = [kind(unscoped.get(kind.name, kind.Config()), context) for kind in ALWAYS]
        middle = [_scoped(steps, context) for kind, steps in groups.items()
                  if kind not in ALWAYS and kind is not Payload]
        payload = groups.get(Payload, [])
        if not payload or payload[-1].when is not None:  # frames no step names: payload cut
            payload = [*payload, Step(Payload, Payload.Config(), self.source)]
        return [*first, *middle, _scoped(payload, context)]


def _scoped(steps: list[Step], context: Context) -> Transform:
    if len(steps) == 1 and steps[0].when is None:
        return steps[0].transform(steps[0].config, context)
    return Scoped([(step.when, step.transform(step.config, context)) for step in steps])


def profile_names() -> list[str]:
    """Names of the rule files shipped with anontrace."""
    return sorted(p.name.removesuffix(".yaml") for p in files(PROFILES).iterdir()
                  if p.name.endswith(".yaml"))


def read_rules(spec: str | None, _chain: tuple[str, ...] = ()) -> Rules:
    """Rules from a shipped profile name (default: `default`) or a path to a YAML file."""
    spec = spec or "default"
    if spec in profile_names():
        text = files(PROFILES).joinpath(f"{spec}.yaml").read_text(encoding="utf-8")
        return parse_rules(text, f"<{spec}>", _chain)
    return parse_rules(_read_text(spec), spec, _chain)


def _read_text(spec: str) -> str:
    """The text of the rule file at path `spec`: a regular file (a device or a pipe, which
    `extends:` could name too, may never end) of at most MAX_RULE_FILE bytes, read no further."""
    path = Path(spec)
    try:
        if not path.suffix and not path.exists():
            raise RuleError(spec, "no such shipped rule file",
                            f"shipped rule files: {', '.join(profile_names())}; or give a path")
        if path.is_dir():
            raise RuleError(spec, "is a directory, not a rule file")
        if not stat.S_ISREG(path.stat().st_mode):
            raise RuleError(spec, "is not a regular file", "give the path of a YAML rule file")
        with path.open("rb") as stream:
            data = stream.read(MAX_RULE_FILE + 1)
        if len(data) > MAX_RULE_FILE:
            raise RuleError(spec, f"rule file is larger than {MAX_RULE_FILE // 1024} KiB")
        return data.decode("utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, or text not UTF-8
        raise RuleError(spec, f"cannot read rule file: {getattr(exc, 'strerror', None) or exc}") from None


def parse_rules(text: str, source: str, _chain: tuple[str, ...] = ()) -> Rules:
    """Validate rule-file text and return its steps (merged over the profile it extends)."""
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
    links = top.get("links_across_runs", False)
    if not isinstance(links, bool):
        raise document.error(("links_across_runs",), "must be true or false")
    steps = top.get("steps", [])
    if not isinstance(steps, list):
        raise document.error(("steps",), "must be a list of steps, each `- use: TRANSFORM`")
    available = registry()
    compiled: list[Step] = []
    for index, raw in enumerate(steps):
        step = _step(document, raw, ("steps", index), available)
        _reachable(document, ("steps", index), step, compiled)
        compiled.append(step)
    labels = _labels(document, top["labels"]) if "labels" in top else None
    gates = _report(document, top["report"]) if "report" in top else ()
    base = _extends(document, top, source, _chain)
    if base is not None:
        compiled = _merge(base.steps, compiled)
        description = description or base.description
        links = links or base.links_across_runs
        labels = labels if "labels" in top else base.labels  # a section given replaces the base's
        gates = gates if "report" in top else base.gates
    return Rules(source, description, tuple(compiled), links, hashlib.sha256(text.encode()).hexdigest(),
                 labels, gates)


def _reachable(document: Document, path: tuple[str | int, ...], step: Step, before: list[Step]) -> None:
    """Refuse a step no frame can reach, or a scoped identifier step."""
    name = step.transform.name
    if step.when is not None and step.transform in ALWAYS:
        raise document.error((*path, "when"), f"{name!r} applies to every frame and takes no `when:`",
                             "keep addresses, MACs or names with the transform's own settings")
    for earlier in before:
        if earlier.transform is step.transform and (earlier.when is None or step.transform in ALWAYS):
            raise document.error((*path, "use"), f"transform {name!r} appears twice (first at "
                                 f"{earlier.where}, which applies to all traffic)",
                                 "give the earlier step a `when:`, or merge the two")


def _extends(document: Document, top: dict[str, Any], source: str, chain: tuple[str, ...]) -> Rules | None:
    if "extends" not in top:
        return None
    name = top["extends"]
    if not isinstance(name, str):
        raise document.error(("extends",), "must name a shipped profile or a rule file")
    if name in chain or name == source or len(chain) >= MAX_EXTENDS:
        raise document.error(("extends",), f"`extends` cycle or chain too long: "
                             f"{' -> '.join((*chain, source, name))}")
    if name not in profile_names() and not Path(name).is_absolute() and not source.startswith("<"):
        name = str(Path(source).parent / name)  # a file path is relative to the extending file
    return read_rules(name, (*chain, source))


def _merge(base: tuple[Step, ...], own: list[Step]) -> list[Step]:
    """The profile's steps, each unscoped one overridden setting by setting by this file's
    unscoped step of the same transform; this file's other steps follow."""
    merged = list(base)
    for step in own:
        at = next((i for i, b in enumerate(merged) if b.transform is step.transform
                   and b.when is None and step.when is None), None)
        if at is None:
            merged.append(step)
            continue
        given = {name: getattr(step.config, name) for name in step.locations}
        config = dataclasses.replace(merged[at].config, **given)
        merged[at] = Step(step.transform, config, step.where, None,
                          {**merged[at].locations, **step.locations})
    return merged


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
    if not isinstance(name, str) or name not in available:
        close = difflib.get_close_matches(str(name), list(available), n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"available: {', '.join(available)}"
        raise document.error((*path, "use"), f"unknown transform {name!r}", hint)
    transform = available[name]
    fields = {f.name: f for f in dataclasses.fields(transform.Config)}
    settings = {k: v for k, v in raw.items() if k not in ("use", "when")}
    _unknown(document, settings, [*fields, "when"], path)
    hints = typing.get_type_hints(transform.Config)
    values = {k: _setting(document, (*path, k), v, hints[k], fields[k]) for k, v in settings.items()}
    when = _when(document, (*path, "when"), raw["when"]) if "when" in raw else None
    locations = {k: document.where((*path, k)) for k in settings}
    try:
        config = transform.Config(**values)
    except RuleError as exc:  # a check across settings, made by the config itself
        raise document.error(path, exc.what, exc.hint) from None
    return Step(transform, config, document.where(path), when, locations)


def _when(document: Document, path: tuple[str | int, ...], raw: Any) -> Filter:
    """A `when:` mapping: protocol, port, network (each one value or a list), direction."""
    if not isinstance(raw, dict) or not raw:
        raise document.error(path, f"`when:` is a mapping of {', '.join(WHEN_KEYS)}")
    _unknown(document, raw, WHEN_KEYS, path)

    def listed(key: str) -> list[Any]:
        value = raw.get(key, [])
        return value if isinstance(value, list) else [value]
    protocols = listed("protocol")
    for value in protocols:
        if value not in PROTOCOLS:
            raise document.error((*path, "protocol"), f"unknown protocol {value!r}",
                                 f"one of {', '.join(PROTOCOLS)}")
    ports = listed("port")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in ports):
        raise document.error((*path, "port"), "ports are whole numbers from 0 to 65535")
    networks = []
    for value in listed("network"):
        try:
            networks.append(ipaddress.ip_network(str(value)))
        except ValueError as exc:
            raise document.error((*path, "network"),
                                 f"{value!r} is not a network in CIDR form ({exc})") from None
    direction = raw.get("direction")
    if direction is not None and (direction not in DIRECTIONS or not networks):
        raise document.error((*path, "direction"), f"`direction` is {' or '.join(DIRECTIONS)}, "
                             "relative to the `network` given")
    return Filter(tuple(protocols), tuple(ports), tuple(networks), direction)


def _labels(document: Document, raw: Any) -> LabelRules | None:
    """`labels:`: `{when: FILTER, label: TEXT}` items, first match wins, and an optional last
    `{default: TEXT}` for frames no item matches. An empty list means no labels."""
    if not isinstance(raw, list):
        raise document.error(("labels",), "must be a list of `- when: {...}` / `label: TEXT` items, "
                             "optionally ending with `- default: TEXT`")
    rules: list[LabelRule] = []
    default: str | None = None
    for index, item in enumerate(raw):
        path: tuple[str | int, ...] = ("labels", index)
        if default is not None:
            raise document.error(path, "comes after the `default:` item, which must be last")
        if isinstance(item, dict) and "default" in item:
            if len(item) > 1:
                raise document.error(path, "a `default:` item gives the default label and nothing else",
                                     "put `when:` and `label:` in an item of their own")
            default = _label_text(document, (*path, "default"), item["default"])
            continue
        if not isinstance(item, dict):
            raise document.error(path, "a label item is a mapping: `when: {...}` and `label: TEXT`, "
                                 "or `default: TEXT`")
        _unknown(document, item, LABEL_KEYS, path)
        for name in LABEL_KEYS:
            if name not in item:
                raise document.error(path, f"`{name}:` is missing", "a label item gives `when:` and `label:`")
        when = _when(document, (*path, "when"), item["when"])
        label = _label_text(document, (*path, "label"), item["label"])
        rules.append(LabelRule(when, label, document.where(path)))
    return LabelRules(tuple(rules), default) if rules or default is not None else None


def _label_text(document: Document, path: tuple[str | int, ...], value: Any) -> str:
    if not isinstance(value, str):
        raise document.error(path, f"a label is text, got {type(value).__name__} {value!r}",
                             "quote it if it looks like a number or true/false")
    problem = label_problem(value)
    if problem:
        raise document.error(path, problem)
    return value


def _report(document: Document, raw: Any) -> tuple[Gate, ...]:
    """`report: fail_on: {FIGURE: LIMIT}`: gates the leakage report must pass for the trace to be
    published, each remembering where it was written."""
    if not isinstance(raw, dict):
        raise document.error(("report",), "must be a mapping with `fail_on:`")
    _unknown(document, raw, REPORT_KEYS, ("report",))
    limits = raw.get("fail_on", {})
    path: tuple[str | int, ...] = ("report", "fail_on")
    if not isinstance(limits, dict):
        raise document.error(path, "must be a mapping of report figure to limit",
                             "for example `residual.total: 0`")
    gates = []
    for name, limit in limits.items():
        if name not in FIGURES:
            close = difflib.get_close_matches(name, list(FIGURES), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"figures: {', '.join(FIGURES)}"
            raise document.error((*path, name), f"unknown report figure {name!r}", hint, key=True)
        if not isinstance(limit, int | float) or isinstance(limit, bool) or not math.isfinite(limit):
            raise document.error((*path, name), f"the limit is a number, got {limit!r}")
        gates.append(Gate(name, float(limit), document.where((*path, name), key=True)))
    return tuple(gates)


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
