"""tests/ mirrors anontrace/ file for file: a module without a test file fails here."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_module_has_a_test_file() -> None:
    missing = []
    for module in sorted((ROOT / "anontrace").rglob("*.py")):
        if module.name in ("__init__.py", "__main__.py"):
            continue
        relative = module.relative_to(ROOT / "anontrace")
        expected = ROOT / "tests" / relative.parent / f"test_{module.name}"
        if not expected.exists():
            missing.append(str(expected.relative_to(ROOT)))
    assert not missing, f"modules without tests: {missing}"
