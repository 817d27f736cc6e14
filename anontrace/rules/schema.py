"""The rule-file format as data: a JSON Schema for editors, and the Markdown reference.

Both are generated from the same declarations the validator reads (each transform's config
fields with their `setting(...)` metadata, and its docstring), so they cannot drift from it;
`docs/rules.md` is this module's `reference()` output, and a test compares them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from typing import Any

from anontrace.labels import MAX_LABEL
from anontrace.leakage.gates import FIGURES
from anontrace.rules.compile import VERSION, WHEN_KEYS, profile_names
from anontrace.rules.filters import DIRECTIONS, PROTOCOLS
from anontrace.transforms import ALWAYS, registry
from anontrace.transforms.base import Transform

SCHEMA_ID = "https://anontrace.invalid/schemas/rules-v1.json"
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type(kind: Any) -> dict[str, Any]:
    if typing.get_origin(kind) is tuple:
        return {"type": "array", "items": _type(typing.get_args(kind)[0])}
    return {"type": JSON_TYPES[kind]}


def _setting(field: dataclasses.Field[Any], kind: Any) -> dict[str, Any]:
    meta = field.metadata
    found = {**_type(kind), "description": meta.get("help", ""), "default": _plain(field.default)}
    target = found["items"] if found["type"] == "array" else found
    if meta.get("choices"):
        target["enum"] = list(meta["choices"])
    if meta.get("minimum") is not None:
        target["minimum"] = meta["minimum"]
    if meta.get("maximum") is not None:
        target["maximum"] = meta["maximum"]
    return found


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _step(transform: type[Transform]) -> dict[str, Any]:
    hints = typing.get_type_hints(transform.Config)
    properties: dict[str, Any] = {"use": {"const": transform.name}}
    if transform not in ALWAYS:
        properties["when"] = {"$ref": "#/$defs/when"}
    for field in dataclasses.fields(transform.Config):
        properties[field.name] = _setting(field, hints[field.name])
    return {"title": transform.name, "description": _doc(transform), "type": "object",
            "properties": properties, "required": ["use"], "additionalProperties": False}


def _doc(transform: type[Transform]) -> str:
    return inspect.cleandoc(transform.__doc__ or "")


def schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a rule file."""
    one_or_list = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 65535},
                             {"type": "array", "items": {"type": "integer", "minimum": 0,
                                                         "maximum": 65535}}]}
    protocols = {"enum": list(PROTOCOLS)}
    conditions: dict[str, Any] = {
        "protocol": {"oneOf": [protocols, {"type": "array", "items": protocols}]},
        "port": one_or_list,
        "network": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "description": "CIDR networks; an address at either end (or, with "
                                   "`direction`, the destination (inbound) or source (outbound))."},
        "direction": {"enum": list(DIRECTIONS)},
    }
    assert set(conditions) == set(WHEN_KEYS)
    when = {
        "description": "Apply the step only to frames matching every condition given, judged on "
                       "the original frame; the first matching step of a transform wins.",
        "type": "object", "minProperties": 1, "additionalProperties": False,
        "properties": conditions,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "anontrace rule file",
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": VERSION},
            "description": {"type": "string"},
            "extends": {"type": "string", "description": "A shipped profile ("
                        + ", ".join(profile_names()) + ") or a rule file, relative to this one."},
            "links_across_runs": {"type": "boolean", "default": False,
                                  "description": "Traces made with these rules must link across "
                                  "runs: a one-time key is refused."},
            "steps": {"type": "array", "items": {"oneOf": [_step(t) for t in registry().values()]}},
            "labels": _labels(),
            "report": _report(),
        },
        "$defs": {"when": when, "label": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL,
                                          "pattern": "^[^\\n\\r]*\\S[^\\n\\r]*$"}},
    }


def _labels() -> dict[str, Any]:
    rule = {"type": "object", "required": ["when", "label"], "additionalProperties": False,
            "properties": {"when": {"$ref": "#/$defs/when"}, "label": {"$ref": "#/$defs/label"}}}
    default = {"type": "object", "required": ["default"], "additionalProperties": False,
               "properties": {"default": {"$ref": "#/$defs/label"}}}
    return {"type": "array", "items": {"oneOf": [rule, default]},
            "description": "Label rules judged on the original frame, first match wins; an optional "
                           "last `default:` item labels the frames no rule matches."}


def _report() -> dict[str, Any]:
    limits = {name: {"type": "number", "description": text} for name, text in FIGURES.items()}
    return {"type": "object", "additionalProperties": False,
            "properties": {"fail_on": {"type": "object", "additionalProperties": False,
                                       "properties": limits,
                                       "description": "Leakage-report figures and the most each may "
                                                      "be for the trace to be published."}}}


INTRO = """\
# Rule files

<!-- Generated by `anontrace rules docs` from the transforms' declared settings: do not edit;
     tests/rules/test_schema.py fails when this file is out of date. -->

A rule file is YAML: `version: 1`, an optional `description`, an optional `extends:` (a shipped
profile, {profiles}, or another rule file, relative to this one), a list of `steps`, each
`- use: TRANSFORM` with that transform's settings, and optional `labels:` and `report:`
sections. `anontrace rules schema` prints a JSON Schema of the format for editors.

- **Always on.** `ip`, `mac` and `names` run on every frame, first, whether or not a step names
  them: a rule keeps an identifier only by saying so in their settings. `payload` runs last and
  cuts payload to 0 bytes unless a step keeps some. Other steps run in file order.
- **`extends:`** starts from a profile: a step here overrides the profile's step of the same
  transform setting by setting; other steps are added.
- **`when:`** limits a step (not `ip`, `mac`, `names`) to matching traffic, judged on the
  ORIGINAL frame: `protocol` ({protocols}), `port` (source or destination),
  `network` (CIDR; an address at either end) and `direction` (`inbound`: destination in `network`; `outbound`:
  source in it). Every condition given must hold; each may be one value or a list. A transform
  may appear several times when the earlier steps have `when:`; per frame the first matching
  step applies. Frames no `payload` step names are still cut to headers.
- **`labels:`** labels frames, judged on the ORIGINAL frame (filters may name your real
  networks; only the labels reach the output): a list of `- when: {{...}}` (as above) with
  `label: TEXT`, first match wins, optionally ending with `- default: TEXT` for every other
  frame. A label is one line of at most {max_label} characters. Labels from `scrub --labels-from
  FILE.csv` take precedence. Labels go to `<out>.labels.csv` and `<out>.flows.csv` and, in
  pcapng output, into each frame's comment.
- **`report: fail_on:`** maps leakage-report figures to the most each may be; when one is above
  its limit (or was not measured) the run fails with exit code 3, the report is written and the
  trace is not published. `--fail-on FIGURE=LIMIT` replaces the gate on that figure. Figures:
{figures}
- A file's `labels:` and `report:` sections replace those of the file it extends; without
  them it inherits the base's. The shipped profiles gate on `residual.total: 0`.
- **`links_across_runs: true`** says traces made with these rules must link across runs: a
  one-time key is then refused.
- **Validation** happens before any packet is read; every error names `file:line:col` and the
  key path. Keys never go in rule files (`--key-file` or `ANONTRACE_KEY_FILE`).
"""


def reference() -> str:
    """docs/rules.md: the format, then every transform with its documentation and settings."""
    figures = "\n".join(f"  - `{name}`: {text}" for name, text in FIGURES.items())
    lines = [INTRO.format(profiles=", ".join(f"`{p}`" for p in profile_names()),
                          protocols=", ".join(PROTOCOLS), max_label=MAX_LABEL, figures=figures)]
    for transform in registry().values():
        lines += [f"## `{transform.name}`", "", _doc(transform), ""]
        fields = dataclasses.fields(transform.Config)
        if not fields:
            continue
        hints = typing.get_type_hints(transform.Config)
        lines += ["| setting | type | default | allowed | what it does |",
                  "| --- | --- | --- | --- | --- |"]
        for field in fields:
            meta = field.metadata
            allowed = ", ".join(f"`{c}`" for c in meta.get("choices") or ())
            bounds = [f"≥ {meta['minimum']}" if meta.get("minimum") is not None else "",
                      f"≤ {meta['maximum']}" if meta.get("maximum") is not None else ""]
            allowed = allowed or " ".join(b for b in bounds if b)
            default = json.dumps(_plain(field.default))
            kind = _type_name(hints[field.name])
            text = " ".join(meta.get("help", "").split())
            lines.append(f"| `{field.name}` | {kind} | `{default}` | {allowed} | {text} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"list of {_type_name(typing.get_args(kind)[0])}"
    return JSON_TYPES[kind]
