"""Load YAML into plain values while remembering where each value and key was written.

Aliases are refused where they are written (a rule file is read by people; `extends:` is the
way to share), before anything is composed from them, so an alias bomb costs no more than its
text; so is nesting deeper than any rule file needs, which YAML would compose recursively.
Duplicate keys, which YAML would otherwise resolve silently to the last one, are refused too.
Every refusal, and every value YAML cannot construct, is a `RuleError` with `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from anontrace.errors import RuleError

Path = tuple[str | int, ...]
MAX_NESTING = 32  # mappings and lists inside one another; the shipped rule files nest 4 deep
MAX_INTEGER_BITS = 64
MAX_INTEGER_TEXT = 3 + MAX_INTEGER_BITS  # sign, 0b and 64 binary digits: no 64-bit integer is longer


@dataclass(slots=True)
class Document:
    """A rule file's values plus the `line:col` of every value and mapping key, by key path."""

    source: str
    value: Any
    values: dict[Path, str] = field(default_factory=dict)
    keys: dict[Path, str] = field(default_factory=dict)

    def where(self, path: Path, *, key: bool = False) -> str:
        """`file:line:col` of the value (or the key) at `path`, or of its nearest parent."""
        marks = self.keys if key else self.values
        while path not in marks and path:
            path = path[:-1]
        return marks.get(path, f"{self.source}:1:1")

    def error(self, path: Path, what: str, hint: str = "", *, key: bool = False) -> RuleError:
        dotted = ".".join(str(p) for p in path)
        return RuleError(self.where(path, key=key), f"{dotted}: {what}" if dotted else what, hint)


def _mark(source: str, mark: yaml.Mark | None) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing an alias or a node nested too deep before composing it."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        alias = self.check_event(yaml.AliasEvent)  # peeks: the event is now `current_event`
        mark = self.current_event.start_mark
        if alias:
            raise RuleError(_mark(self.source, mark), "YAML aliases are not allowed in rule files",
                            "write the value out, or start from a shipped profile")
        if self.depth >= MAX_NESTING:
            raise RuleError(_mark(self.source, mark),
                            f"mappings and lists nested more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load(text: str, source: str) -> Document:
    """Parse one YAML document; any syntax problem becomes a located `RuleError`."""
    try:
        loader = _Loader(text, source)
    except yaml.reader.ReaderError as exc:  # checked before parsing: a character YAML forbids
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise RuleError(f"{source}:{line}:{column}",
                        f"not valid YAML: character U+{exc.character:04X} is not allowed") from None
    try:
        node = loader.get_single_node()
        document = Document(source, None)
        document.value = _convert(loader, node, (), document) if node is not None else None
        return document
    except yaml.MarkedYAMLError as exc:
        raise RuleError(_mark(source, exc.problem_mark or exc.context_mark),
                        f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RuleError(source, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, document: Document) -> Any:
    document.values[path] = _mark(document.source, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RuleError(_mark(document.source, key_node.start_mark),
                                "mapping keys must be plain words")
            key = str(_scalar(loader, key_node, document))
            if key in result:
                raise RuleError(_mark(document.source, key_node.start_mark),
                                f"key {key!r} appears twice (first at {document.keys[(*path, key)]})")
            document.keys[(*path, key)] = _mark(document.source, key_node.start_mark)
            result[key] = _convert(loader, value_node, (*path, key), document)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), document) for i, item in enumerate(node.value)]
    return _scalar(loader, node, document)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node, document: Document) -> Any:
    """A scalar's value. One YAML cannot construct (`!!int` of nothing, `!!bool x`) is refused where
    it is written, as is an integer wider than 64 bits: no setting needs one, and Python refuses
    to print one of thousands of digits (so no message could quote it)."""
    if node.tag == "tag:yaml.org,2002:timestamp":
        return str(node.value)  # a time is text to the rules (ISO 8601), not a Python datetime
    where, text = _mark(document.source, node.start_mark), str(node.value)[:40]
    too_large = RuleError(where, f"number {text!r} is too large", "numbers in rule files fit in 64 bits")
    if node.tag == "tag:yaml.org,2002:int" and len(str(node.value).replace("_", "")) > MAX_INTEGER_TEXT:
        raise too_large  # refused before Python converts (and refuses) thousands of digits
    try:
        value = loader.construct_object(node)
    except yaml.YAMLError:
        raise
    except Exception:  # PyYAML's constructors raise whatever their conversion raises
        kind = node.tag.rsplit(":", 1)[-1]
        raise RuleError(where, f"{text!r} is not a valid {kind} value",
                        f"write a {kind} value, or drop the `!!{kind}` tag") from None
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise too_large
    return value
