"""Load YAML into plain values while remembering where each value and key was written.

Anchors and aliases are refused (a rule file is read by people; `extends:` is the way to share),
as are duplicate keys, which YAML would otherwise resolve silently to the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from anontrace.errors import RuleError

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Document:
    """A rule file's values plus the `line:col` of every value and mapping key, by key path."""

    source: str
    value: Any
    values: dict[Path, str] = field(default_factory=dict)
    keys: dict[Path, str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)  # nodes converted: a second visit is an alias

    def where(self, path: Path, *, key: bool = False) -> str:
        """`file:line:col` of the value (or the key) at `path`, or of its nearest parent."""
        marks = self.keys if key else self.values
        while path not in marks and path:
            path = path[:-1]
        return marks.get(path, f"{self.source}:1:1")

    def error(self, path: Path, what: str, hint: str = "", *, key: bool = False) -> RuleError:
        dotted = ".".join(str(p) for p in path)
        return RuleError(self.where(path, key=key), f"{dotted}: {what}" if dotted else what, hint)


def _mark(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def load(text: str, source: str) -> Document:
    """Parse one YAML document; any syntax problem becomes a located `RuleError`."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = Document(source, None)
        document.value = _convert(loader, node, (), document) if node is not None else None
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise RuleError(where, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RuleError(source, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, document: Document) -> Any:
    document.values[path] = _mark(document.source, node)
    if id(node) in document.seen:
        raise RuleError(document.values[path], "YAML aliases are not allowed in rule files",
                        "write the value out, or start from a shipped profile")
    document.seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RuleError(_mark(document.source, key_node), "mapping keys must be plain words")
            key = str(loader.construct_object(key_node))
            if key in result:
                raise RuleError(_mark(document.source, key_node),
                                f"key {key!r} appears twice (first at {document.keys[(*path, key)]})")
            document.keys[(*path, key)] = _mark(document.source, key_node)
            result[key] = _convert(loader, value_node, (*path, key), document)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), document) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:timestamp":
        return str(node.value)  # a time is text to the rules (ISO 8601), not a Python datetime
    return loader.construct_object(node)
