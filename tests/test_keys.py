"""Key files: 64 hex characters, mode 0600, refused when others can read them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from anontrace.errors import KeyError_
from anontrace.keys import Key, generate, read_key_file, resolve_key, subkey, write_key_file


def test_written_key_reads_back_with_mode_0600(tmp_path: Path) -> None:
    key = generate()
    path = tmp_path / "k"
    write_key_file(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.secret.hex() and len(key.secret) == 32
    assert read_key_file(path) == key


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_key_file(path, generate())
    with pytest.raises(KeyError_, match="file exists"):
        write_key_file(path, generate())
    write_key_file(path, generate(), force=True)


@pytest.mark.parametrize(
    "content,mode,message",
    ids=["readable", "short", "not-hex", "empty"],
    argvalues=[
        ("5e" * 32, 0o644, "accessible to others (mode 644)"),
        ("5e" * 31, 0o600, "exactly 64 hex characters"),
        ("5z" * 32, 0o600, "exactly 64 hex characters"),
        ("", 0o600, "exactly 64 hex characters"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: str, mode: int, message: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(KeyError_) as error:
        read_key_file(path)
    assert message in error.value.what
    assert "5e5e" not in f"{error.value} {error.value.hint}"  # the key never shows in a message


def test_environment_and_one_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    write_key_file(path, Key(bytes(32)))
    monkeypatch.setenv("ANONTRACE_KEY_FILE", str(path))
    assert resolve_key(None) == Key(bytes(32))
    monkeypatch.delenv("ANONTRACE_KEY_FILE")
    first, second = resolve_key(None), resolve_key(None)
    assert first.one_time and first != second


def test_fingerprint_and_subkeys_are_not_the_key() -> None:
    key = Key(bytes(range(32)))
    assert len(key.fingerprint) == 16 and key.fingerprint not in key.secret.hex()
    assert subkey(key, "mac") != subkey(key, "timing") and len(subkey(key, "mac")) == 32
    assert key.secret.hex() not in repr(key)
