"""A real (non-editable) install gives the `anontrace` command with the shipped rule files."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_installed_package_scrubs_with_shipped_rules(tmp_path: Path) -> None:
    target = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(target)
    python = target / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    for extra in ([], ["-r", "default"]):
        result = subprocess.run(
            [
                str(target / "bin" / "anontrace"),
                "scrub",
                str(ROOT / "sample_pcaps" / "office.pcap"),
                "-o",
                "out.pcap",
                "-q",
                *extra,
            ],
            cwd=elsewhere,
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert (elsewhere / "out.pcap").stat().st_size > 24
    located = subprocess.run(
        [str(python), "-c", "import anontrace; print(anontrace.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(target) in located.stdout  # the installed copy, not the source tree
