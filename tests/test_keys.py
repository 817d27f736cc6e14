"""Key files: 64 hex characters, mode 0600, refused when others can read them; key shares."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anontrace.errors import KeyError_, UsageError
from anontrace.keys import (
    Key,
    combine_shares,
    generate,
    read_key_file,
    read_share_file,
    resolve_key,
    split_key,
    subkey,
    write_key_file,
    write_share_files,
)


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


# Key shares. The field arithmetic below is written independently of anontrace.keys (bit by bit,
# no tables), so the shares are checked against the mathematics, not against the code that made them.

def gf_multiply(a: int, b: int) -> int:
    """Multiply in GF(2^8) modulo x^8+x^4+x^3+x+1, shift and add."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return product


def gf_inverse(a: int) -> int:
    return next(b for b in range(1, 256) if gf_multiply(a, b) == 1)


def interpolate_at_zero(points: list[tuple[int, int]]) -> int:
    value = 0
    for x, y in points:
        weight = 1
        for other, _ in points:
            if other != x:
                weight = gf_multiply(weight, gf_multiply(other, gf_inverse(other ^ x)))
        value ^= gf_multiply(y, weight)
    return value


def evaluate(coefficients: list[int], x: int) -> int:
    value, power = 0, 1
    for coefficient in coefficients:
        value ^= gf_multiply(coefficient, power)
        power = gf_multiply(power, x)
    return value


def fields(share: str) -> tuple[int, int, str, bytes]:
    """threshold, index, fingerprint, y bytes of a share line, parsed here by hand."""
    _, _, threshold, index, fingerprint, values, _ = share.split(":")
    return int(threshold), int(index), fingerprint, bytes.fromhex(values)


def with_check(body: str) -> str:
    return f"{body}:{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def test_share_lines_are_polynomial_values_of_the_key() -> None:
    key = Key(bytes(range(100, 132)))
    shares = split_key(key, 5, 3)
    assert len(shares) == 5
    for number, share in enumerate(shares, 1):
        body, _, check = share.rpartition(":")
        assert check == hashlib.sha256(body.encode()).hexdigest()[:8]
        assert fields(share)[:3] == (3, number, key.fingerprint)
    points = [fields(s) for s in shares[1:4]]
    rebuilt = bytes(interpolate_at_zero([(index, values[i]) for _, index, _, values in points])
                    for i in range(32))
    assert rebuilt == key.secret
    assert split_key(key, 5, 3) != shares  # fresh random coefficients every time


def test_every_threshold_subset_rebuilds_and_every_smaller_one_is_refused() -> None:
    key = generate()
    shares = split_key(key, 5, 3)
    for size in (3, 4, 5):
        for subset in itertools.combinations(shares, size):
            assert combine_shares(list(subset)) == key
    for subset in itertools.combinations(shares, 2):
        with pytest.raises(KeyError_) as error:
            combine_shares(list(subset))
        assert error.value.what == "2 shares given, 3 needed" and error.value.hint == "ask for 1 more share"
    assert combine_shares(list(reversed(shares))).one_time is False


def test_fewer_than_threshold_shares_are_consistent_with_every_key_byte() -> None:
    """Two shares of a 3-of-5 split fit exactly one polynomial for each possible secret byte: every
    key is as likely as every other, so the two holders learn nothing."""
    shares = split_key(generate(), 5, 3)
    (_, x1, _, y1), (_, x2, _, y2) = fields(shares[1]), fields(shares[3])
    inverse_square = gf_inverse(gf_multiply(x1, x1))
    for position in (0, 31):
        for secret in range(256):
            consistent = []
            for c1 in range(256):  # c2 follows from the first share; the second must then fit
                rest = y1[position] ^ secret ^ gf_multiply(c1, x1)
                c2 = gf_multiply(rest, inverse_square)
                if evaluate([secret, c1, c2], x2) == y2[position]:
                    consistent.append([secret, c1, c2])
            assert len(consistent) == 1
            assert evaluate(consistent[0], x1) == y1[position] and evaluate(consistent[0], 0) == secret


def test_threshold_forged_down_is_caught_by_the_fingerprint() -> None:
    key = generate()
    shares = split_key(key, 5, 3)
    forged = [with_check(s.rpartition(":")[0].replace("anontrace-share:v1:3:", "anontrace-share:v1:2:"))
              for s in shares[:2]]
    points = [fields(s) for s in forged]
    wrong = bytes(interpolate_at_zero([(index, values[i]) for _, index, _, values in points])
                  for i in range(32))
    assert wrong != key.secret  # a line through two points of a random parabola misses its value at 0
    with pytest.raises(KeyError_) as error:
        combine_shares(forged)
    assert error.value.what.startswith("the shares do not fit together")
    assert key.secret.hex() not in f"{error.value} {error.value.hint}"


def test_shares_of_different_keys_or_splits_are_refused() -> None:
    key = generate()
    first, second = split_key(key, 3, 2), split_key(key, 3, 2)
    with pytest.raises(KeyError_, match="do not fit together"):
        combine_shares([first[0], second[1]])  # same key, same fingerprint, different polynomials
    other = split_key(generate(), 3, 2)
    with pytest.raises(KeyError_, match="is a share of key") as error:
        combine_shares([first[0], other[1]])
    assert error.value.where == "share 2"
    with pytest.raises(KeyError_, match="says 3 shares are needed"):
        combine_shares([first[0], split_key(key, 3, 3)[1]])
    with pytest.raises(KeyError_, match="share number 1 is given twice"):
        combine_shares([first[0], first[0], first[1]])
    with pytest.raises(KeyError_, match="no shares given"):
        combine_shares([])


@pytest.mark.parametrize("position", [21, 30, 50, -3],
                         ids=["index", "fingerprint-digit", "value-digit", "check-digit"])
def test_a_typo_in_a_share_is_refused(position: int) -> None:
    shares = split_key(generate(), 3, 2)
    line = shares[1]
    typo = line[:position] + ("7" if line[position] != "7" else "8") + line[position + 1:]
    with pytest.raises(KeyError_) as error:
        combine_shares([shares[0], typo])
    assert error.value.where == "share 2"
    assert "mistyped or damaged" in error.value.what or "not a key share" in error.value.what


def test_malformed_shares_are_refused() -> None:
    key = generate()
    good = split_key(key, 3, 2)[0]
    for bad in ("", "hello", good.replace("v1", "v2"), good + ":00", good[:-1],
                with_check(f"anontrace-share:v1:2:0:{key.fingerprint}:{'00' * 32}"),
                with_check(f"anontrace-share:v1:1:1:{key.fingerprint}:{'00' * 32}"),
                with_check(f"anontrace-share:v1:2:256:{key.fingerprint}:{'00' * 32}")):
        with pytest.raises(KeyError_) as error:
            combine_shares([bad, good])
        assert error.value.where == "share 1"
    shares = split_key(key, 3, 2)
    assert combine_shares([f"  {shares[0].upper()}\n", shares[2]]) == key  # case and spaces forgiven


def test_edge_cases_of_threshold_and_count() -> None:
    key = generate()
    all_needed = split_key(key, 4, 4)
    assert combine_shares(all_needed) == key
    with pytest.raises(KeyError_, match="3 shares given, 4 needed"):
        combine_shares(all_needed[1:])
    pairs = split_key(key, 3, 2)
    assert all(combine_shares(list(pair)) == key for pair in itertools.combinations(pairs, 2))
    most = split_key(key, 255, 2)
    assert [fields(s)[1] for s in most] == list(range(1, 256))
    assert combine_shares([most[254], most[126]]) == key
    for shares, threshold in ((256, 2), (5, 1), (3, 4), (1, 1), (0, 0)):
        with pytest.raises(UsageError, match="cannot split"):
            split_key(key, shares, threshold)


def test_share_files(tmp_path: Path) -> None:
    key = generate()
    shares = split_key(key, 3, 2)
    paths = write_share_files(tmp_path / "team.key", shares)
    assert [p.name for p in paths] == [f"team.key.share-{i}-of-3" for i in (1, 2, 3)]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    assert [p.read_text() for p in paths] == [s + "\n" for s in shares]
    assert combine_shares([read_share_file(paths[2]), read_share_file(paths[0])]) == key
    (tmp_path / "again.share-3-of-3").write_text("taken")
    with pytest.raises(KeyError_, match="file exists"):
        write_share_files(tmp_path / "again", shares)
    assert sorted(p.name for p in tmp_path.glob("again*")) == ["again.share-3-of-3"]
    with pytest.raises(KeyError_, match="cannot read share file"):
        read_share_file(tmp_path / "absent")


# Unbounded inputs: devices, pipes and large files are refused before they are read.


@contextlib.contextmanager
def no_blocking(seconds: int = 5) -> Iterator[None]:
    """Fail, rather than hang, if the body blocks (opening a pipe for reading waits for a writer)."""

    def stop(signum: int, frame: object) -> None:
        raise AssertionError("blocked")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("read", [read_key_file, read_share_file], ids=["key", "share"])
def test_devices_and_pipes_are_refused_unread(tmp_path: Path, read: Callable[[Path], object]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    for path in (Path("/dev/zero"), fifo, tmp_path):
        with no_blocking(), pytest.raises(KeyError_) as error:
            read(path)
        assert error.value.where == str(path) and "not a regular file" in error.value.what


@pytest.mark.parametrize(("read", "limit", "text"), ids=["key", "share"], argvalues=[
    (read_key_file, 256, Key(bytes(range(32))).secret.hex()),
    (read_share_file, 512, split_key(Key(bytes(range(32))), 2, 2)[0])])
def test_large_files_are_refused(tmp_path: Path, read: Callable[[Path], object], limit: int,
                                 text: str) -> None:
    path = tmp_path / "padded"
    path.write_text(text + " " * (limit - len(text)))
    path.chmod(0o600)
    read(path)  # at the limit, whitespace around the value is fine
    path.write_text(text + " " * (limit + 1 - len(text)))
    with pytest.raises(KeyError_, match="too large"):
        read(path)


def test_the_key_files_mode_is_checked_before_it_is_opened(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    path.write_text("5e" * 32)
    path.chmod(0o640)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the key file was opened")

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(KeyError_, match=r"accessible to others \(mode 640\)"):
        read_key_file(path)
