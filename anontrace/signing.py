"""Ed25519 signing keys for manifests: key files, key ids, and the signature scheme.

A signature covers the canonical JSON of a document without its `signature` member (keys
sorted, no spaces, UTF-8), so anyone can check it with any Ed25519 library and a JSON encoder,
without anontrace. Signing keys are ordinary OpenSSL PEM files, so a team can keep them where it
keeps its other keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from anontrace.errors import KeyError_

MAX_KEY_FILE = 64 << 10
MAKE_KEY_HINT = "make one with `openssl genpkey -algorithm ed25519 -out KEY.pem` (see docs/manifest.md)"


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the document without `signature`, as canonical JSON."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short public name for a signing key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return raw_key_id(raw_public_key(public_key))


def raw_key_id(raw: bytes) -> str:
    """The key id of a public key given as its raw bytes."""
    return hashlib.sha256(raw).hexdigest()[:16]


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(document: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The document with an Ed25519 `signature` over its canonical JSON (any old one replaced)."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    public = private_key.public_key()
    return {**unsigned, "signature": {
        "algorithm": "ed25519",
        "public_key": base64.b64encode(raw_public_key(public)).decode(),
        "key_id": key_id(public),
        "value": base64.b64encode(private_key.sign(canonical(unsigned))).decode(),
    }}


def _read_key_bytes(path: Path, private: bool) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEY_FILE:
            raise KeyError_(str(path), "not a key file (not a regular file, or too large)", MAKE_KEY_HINT)
        if private and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyError_(str(path), f"signing key is accessible to others (mode {info.st_mode & 0o777:o})",
                            f"run `chmod 600 {path}`")
        return path.read_bytes()
    except OSError as exc:
        raise KeyError_(str(path), f"cannot read key file: {exc.strerror}", MAKE_KEY_HINT) from None


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PEM (PKCS#8) Ed25519 private key, refused when others can read it."""
    data = _read_key_bytes(path, private=True)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyError_(str(path), "signing key is encrypted with a passphrase",
                        f"write an unencrypted copy with `openssl pkey -in {path} -out NEW.pem`, "
                        "mode 0600") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyError_(str(path), "not a PEM private key", MAKE_KEY_HINT) from None
    if not isinstance(key, Ed25519PrivateKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey")
        raise KeyError_(str(path), f"signing keys are Ed25519, not {kind}", MAKE_KEY_HINT)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM (SubjectPublicKeyInfo) Ed25519 public key, as `openssl pkey -pubout` writes it."""
    data = _read_key_bytes(path, private=False)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyError_(str(path), "not a PEM public key",
                        "the public key is the `.pub` file beside the signing key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(str(path), "signing keys are Ed25519; this public key is not",
                        "the public key is the `.pub` file beside the signing key")
    return key


def public_key_path(path: Path) -> Path:
    """Where `write_signing_key` puts the public half of the key at `path`."""
    return path.with_name(path.name + ".pub")


def _create(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyError_(str(path), "file exists", "choose another name or pass --force") from None
    except OSError as exc:
        raise KeyError_(str(path), f"cannot create key file: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)


def write_signing_key(path: Path, *, force: bool = False) -> str:
    """Write a new Ed25519 signing key (PEM PKCS#8, mode 0600) and its public key beside it
    (`<path>.pub`, mode 0644, for recipients); return the key id."""
    key = Ed25519PrivateKey.generate()
    public = public_key_path(path)
    if not force and public.exists():
        raise KeyError_(str(public), "file exists", "choose another name or pass --force")
    _create(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()), 0o600, force)
    try:
        _create(public, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644, force)
    except KeyError_:
        path.unlink()
        raise
    return key_id(key.public_key())
