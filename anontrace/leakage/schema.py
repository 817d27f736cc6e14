"""The leakage report's JSON Schema (draft 2020-12), shipped beside the code as package data.

The schema is a JSON file rather than Python so that tools outside anontrace (a CI job, a
dashboard) can take it as it is. It is only loaded here: validating a report needs `jsonschema`,
which is a test dependency, and the report builders are what keep reports in shape.
`docs/report.md` says what each figure means and when `VERSION` changes.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

FORMAT = "anontrace-report"
VERSION = 1
RESOURCE = "report-schema.json"


def load() -> dict[str, Any]:
    """The schema as parsed JSON, read from the installed package."""
    text = resources.files("anontrace.leakage").joinpath(RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


SCHEMA: dict[str, Any] = load()
