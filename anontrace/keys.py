"""Key files, per-purpose subkeys and the public key fingerprint."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anontrace.errors import KeyError_

KEY_BYTES = 32
KEY_ENV = "ANONTRACE_KEY_FILE"


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


def read_key_file(path: Path) -> Key:
    """Read a key file, refusing one that others can read or that is not 64 hex characters."""
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise KeyError_(str(path), f"cannot read key file: {exc.strerror}",
                        "make one with `anontrace keygen -o FILE`") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(str(path), f"key file is accessible to others (mode {info.st_mode & 0o777:o})",
                        f"run `chmod 600 {path}`")
    value = text.strip()
    if len(value) != 2 * KEY_BYTES or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise KeyError_(str(path), f"a key file holds exactly {2 * KEY_BYTES} hex characters",
                        "make one with `anontrace keygen -o FILE`")
    return Key(bytes.fromhex(value))


def resolve_key(path: Path | None) -> Key:
    """The key named by `--key-file`, else by $ANONTRACE_KEY_FILE, else a one-time key."""
    if path is None and os.environ.get(KEY_ENV):
        path = Path(os.environ[KEY_ENV])
    return read_key_file(path) if path is not None else one_time()
