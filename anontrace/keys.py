"""Key files, per-purpose subkeys, the public key fingerprint, and key shares."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anontrace.errors import KeyError_, UsageError

KEY_BYTES = 32
KEY_ENV = "ANONTRACE_KEY_FILE"
MAX_KEY_FILE = 256  # 64 hex characters and a line break, with room for stray whitespace


@dataclass(frozen=True, slots=True)
class Key:
    """A 32-byte secret; `one_time` when it was drawn for this run only."""

    secret: bytes
    one_time: bool = False

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint!r}, one_time={self.one_time})"

    @property
    def fingerprint(self) -> str:
        """A public name for the key: traces that share it share an address mapping."""
        return subkey(self, "fingerprint", 8).hex()


def subkey(key: Key, purpose: str, length: int = 32) -> bytes:
    """Derive an independent subkey for one use with HKDF-SHA256 (info names the purpose)."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
               info=f"anontrace/{purpose}/v1".encode())
    return kdf.derive(key.secret)


def generate() -> Key:
    """Draw a fresh key from the operating system's random source."""
    return Key(secrets.token_bytes(KEY_BYTES))


def one_time() -> Key:
    """A random key for this run only: consistent within it, unlinkable after it."""
    return Key(secrets.token_bytes(KEY_BYTES), one_time=True)


def write_key_file(path: Path, key: Key, *, force: bool = False) -> None:
    """Write the key as 64 hex characters, created with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyError_(str(path), "file exists", "choose another name or pass --force") from None
    except OSError as exc:
        raise KeyError_(str(path), f"cannot create key file: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(key.secret.hex() + "\n")


def _read_small(path: Path, limit: int, what: str, private: bool) -> str:
    """The text of a small regular file, read no further than `limit` bytes. The file's type (a
    device or a pipe may never end, and opening a pipe waits for a writer) and, if `private`, its
    mode are checked before it is opened."""
    hint = "make one with `anontrace keygen -o FILE`" if what == "key file" else ""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyError_(str(path), f"not a {what}: not a regular file", hint)
        if private and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyError_(str(path), f"{what} is accessible to others (mode {info.st_mode & 0o777:o})",
                            f"run `chmod 600 {path}`")
        if info.st_size > limit:
            raise KeyError_(str(path), f"too large to be a {what} ({info.st_size} bytes)", hint)
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise KeyError_(str(path), f"cannot read {what}: {getattr(exc, 'strerror', None) or exc}",
                        hint) from None
    if len(data) > limit:  # it grew after the check
        raise KeyError_(str(path), f"too large to be a {what}", hint)
    return data.decode("ascii", errors="replace")


def read_key_file(path: Path) -> Key:
    """Read a key file, refusing one that is not a small regular file, that others can read, or
    that is not 64 hex characters."""
    value = _read_small(path, MAX_KEY_FILE, "key file", private=True).strip()
    # What is wrong is said without quoting the file: what it holds may be most of a key.
    if not value:
        wrong = "key file is empty"
    elif len(value) != 2 * KEY_BYTES:
        wrong = f"key file holds {len(value)} characters"
    elif any(c not in "0123456789abcdefABCDEF" for c in value):
        wrong = "key file holds characters that are not hex digits"
    else:
        return Key(bytes.fromhex(value))
    raise KeyError_(str(path), f"{wrong}; a key file holds exactly {2 * KEY_BYTES} hex characters",
                    "make one with `anontrace keygen -o FILE`")


def resolve_key(path: Path | None) -> Key:
    """The key named by `--key-file`, else by $ANONTRACE_KEY_FILE, else a one-time key."""
    if path is None and os.environ.get(KEY_ENV):
        path = Path(os.environ[KEY_ENV])
    return read_key_file(path) if path is not None else one_time()


# Key shares: Shamir's secret sharing over GF(2^8), byte by byte. Each byte of the key is the
# constant term of its own random polynomial of degree threshold-1; share i holds every
# polynomial's value at x = i. Any `threshold` shares fix the polynomials (and so the key) by
# interpolation; fewer are consistent with every possible key, equally often, so they reveal
# nothing about it beyond the public fingerprint.

SHARE_PREFIX = "anontrace-share:v1"
MAX_SHARES = 255  # x runs over the nonzero field elements
SHARE_LINE = re.compile(r"anontrace-share:v1:([1-9][0-9]{0,2}):([1-9][0-9]{0,2}):([0-9a-f]{16}):"
                        r"([0-9a-f]{64}):([0-9a-f]{8})")
MAX_SHARE_FILE = 512  # a share line is at most 117 characters


def _tables() -> tuple[list[int], list[int]]:
    """Exponent and logarithm tables of GF(2^8) modulo x^8+x^4+x^3+x+1 with generator 3."""
    exp, log = [0] * 510, [0] * 256
    value = 1
    for power in range(255):
        exp[power] = exp[power + 255] = value
        log[value] = power
        value ^= (value << 1) ^ (0x11B if value & 0x80 else 0)  # times 3 = times 2 plus itself
    return exp, log


EXP, LOG = _tables()


def _multiply(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def _divide(a: int, b: int) -> int:
    return 0 if a == 0 else EXP[LOG[a] - LOG[b] + 255]


def _evaluate(coefficients: bytes, x: int) -> int:
    """The polynomial with these coefficients (constant first) at x, by Horner's rule."""
    value = 0
    for coefficient in reversed(coefficients):
        value = _multiply(value, x) ^ coefficient
    return value


def _check(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:8]


def split_key(key: Key, shares: int, threshold: int) -> list[str]:
    """Split the key into `shares` lines of text, any `threshold` of which rebuild it."""
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise UsageError("--shares/--threshold", f"cannot split into {shares} shares with threshold "
                         f"{threshold}", f"2 <= threshold <= shares <= {MAX_SHARES}")
    polynomials = [bytes([byte]) + secrets.token_bytes(threshold - 1) for byte in key.secret]
    lines = []
    for x in range(1, shares + 1):
        values = bytes(_evaluate(polynomial, x) for polynomial in polynomials)
        body = f"{SHARE_PREFIX}:{threshold}:{x}:{key.fingerprint}:{values.hex()}"
        lines.append(f"{body}:{_check(body)}")
    return lines


@dataclass(frozen=True, slots=True)
class Share:
    """One parsed share: the threshold of its split, its x, the key's fingerprint, its y bytes."""

    threshold: int
    index: int
    fingerprint: str
    values: bytes


def parse_share(text: str, where: str) -> Share:
    """A share line, refused when malformed or when its check digits do not match."""
    line = text.strip().lower()
    found = SHARE_LINE.fullmatch(line)
    if found is None:
        raise KeyError_(where, "not a key share", f"a share is one line `{SHARE_PREFIX}:THRESHOLD:INDEX:"
                        "FINGERPRINT:64 HEX:8 HEX`, as `anontrace keygen --shares` wrote it")
    threshold, index, fingerprint, values, check = found.groups()
    if _check(line.rpartition(":")[0]) != check:
        raise KeyError_(where, "share check digits do not match: the share was mistyped or damaged",
                        "copy the share line again exactly as written")
    if not 2 <= int(threshold) <= MAX_SHARES or int(index) > MAX_SHARES:
        raise KeyError_(where, f"share threshold {threshold} or index {index} is out of range")
    return Share(int(threshold), int(index), fingerprint, bytes.fromhex(values))


def combine_shares(texts: list[str]) -> Key:
    """Rebuild the key from at least `threshold` shares of one split (Lagrange interpolation at
    x = 0), checked against the fingerprint the shares carry."""
    shares = [parse_share(text, f"share {n}") for n, text in enumerate(texts, 1)]
    if not shares:
        raise KeyError_("shares", "no shares given")
    first = shares[0]
    seen: set[int] = set()
    for n, share in enumerate(shares, 1):
        if share.fingerprint != first.fingerprint:
            raise KeyError_(f"share {n}", f"is a share of key {share.fingerprint}, share 1 of key "
                            f"{first.fingerprint}", "give shares of one key only")
        if share.threshold != first.threshold:
            raise KeyError_(f"share {n}", f"says {share.threshold} shares are needed, share 1 says "
                            f"{first.threshold}", "give shares of one split only")
        if share.index in seen:
            raise KeyError_(f"share {n}", f"share number {share.index} is given twice",
                            "give shares of different holders")
        seen.add(share.index)
    if len(shares) < first.threshold:
        missing = first.threshold - len(shares)
        raise KeyError_("shares", f"{len(shares)} shares given, {first.threshold} needed",
                        f"ask for {missing} more share{'s' * (missing != 1)}")
    used = shares[:first.threshold]
    weights = []
    for share in used:
        weight = 1
        for other in used:
            if other is not share:
                weight = _multiply(weight, _divide(other.index, other.index ^ share.index))
        weights.append(weight)
    secret = bytearray(KEY_BYTES)
    for share, weight in zip(used, weights, strict=True):
        for position, value in enumerate(share.values):
            secret[position] ^= _multiply(value, weight)
    key = Key(bytes(secret))
    if key.fingerprint != first.fingerprint:
        raise KeyError_("shares", f"the shares do not fit together: they rebuild a key with fingerprint "
                        f"{key.fingerprint}, not {first.fingerprint}",
                        "a share was altered, or shares of different splits of the key were mixed")
    return key


def write_share_files(path: Path, shares: list[str]) -> list[Path]:
    """Write each share to `<path>.share-<i>-of-<n>` (mode 0600), one file per holder; nothing
    is written when any of the files exists already."""
    total = len(shares)
    named = [(path.with_name(f"{path.name}.share-{parse_share(text, f'share {n}').index}-of-{total}"), text)
             for n, text in enumerate(shares, 1)]
    written: list[Path] = []
    try:
        for target, text in named:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written.append(target)
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text.strip() + "\n")
    except OSError as exc:
        for done in written:
            done.unlink()
        what = ("file exists" if isinstance(exc, FileExistsError)
                else f"cannot create share file: {exc.strerror}")
        raise KeyError_(str(exc.filename or path), what, "choose another name") from None
    return written


def read_share_file(path: Path) -> str:
    """The share line in a share file (a small regular file)."""
    return _read_small(path, MAX_SHARE_FILE, "share file", private=False).strip()
