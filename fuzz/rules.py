"""Fuzz target: any text as a rule file. Only `RuleError` may come out of `parse_rules`, a rule
set it accepts must build and run (`harness.check_rules`: a few frames labelled and transformed),
and every input must be answered within libFuzzer's `-timeout` (YAML alias bombs, deep nesting
and `extends:` of files that never end included).

Input: the bytes as UTF-8 (invalid sequences replaced, as no rule file read from disk has them).
Run: `python fuzz/rules.py [libFuzzer options] [corpus directories]` (see fuzz/README.md).
"""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["anontrace", "yaml"]):
    from harness import check_rules, fuzz

    from anontrace.errors import RuleError
    from anontrace.rules.compile import parse_rules


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        rules = parse_rules(text, "fuzz.yaml")
    except RuleError as error:
        assert error.where and error.what, error  # located, and says what is wrong
        return
    check_rules(rules)


if __name__ == "__main__":
    fuzz(test_one_input)
