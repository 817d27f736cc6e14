"""Signing keys: Ed25519 PEM files only, private ones readable by their owner only; the scheme."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anontrace.errors import KeyError_
from anontrace.signing import canonical, key_id, load_public_key, load_signing_key, sign, write_signing_key


def pem(key: Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        encryption: serialization.KeySerializationEncryption | None = None) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption or serialization.NoEncryption())


def key_file(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "sign.pem"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_written_key_pair_loads_and_has_the_right_modes(tmp_path: Path) -> None:
    path = tmp_path / "sign.pem"
    identity = write_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sign.pem.pub").stat().st_mode) == 0o644
    private = load_signing_key(path)
    public = load_public_key(tmp_path / "sign.pem.pub")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw == private.public_key().public_bytes_raw()
    assert identity == hashlib.sha256(raw).hexdigest()[:16] == key_id(public)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_existing_key_files_are_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "sign.pem"
    first = write_signing_key(path)
    before = path.read_bytes()
    with pytest.raises(KeyError_, match="file exists"):
        write_signing_key(path)
    assert path.read_bytes() == before
    (tmp_path / "other.pem.pub").write_text("someone's public key")
    with pytest.raises(KeyError_, match="file exists"):
        write_signing_key(tmp_path / "other.pem")
    assert not (tmp_path / "other.pem").exists()
    assert write_signing_key(path, force=True) != first


def test_openssl_style_key_is_accepted(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    loaded = load_signing_key(key_file(tmp_path, pem(private)))
    assert loaded.sign(b"m") == private.sign(b"m")  # Ed25519 signatures are deterministic


@pytest.mark.parametrize(
    "data,mode,message",
    ids=["rsa", "ec", "garbage", "empty", "readable-by-others", "encrypted", "public-key"],
    argvalues=[
        (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), 0o600,
         "signing keys are Ed25519, not RSA"),
        (pem(ec.generate_private_key(ec.SECP256R1())), 0o600, "signing keys are Ed25519, not EC"),
        (b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", 0o600,
         "not a PEM private key"),
        (b"", 0o600, "not a PEM private key"),
        (pem(Ed25519PrivateKey.generate()), 0o644, "accessible to others (mode 644)"),
        (pem(Ed25519PrivateKey.generate(), serialization.BestAvailableEncryption(b"pass")), 0o600,
         "encrypted with a passphrase"),
        (Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o600,
         "not a PEM private key"),
    ],
)
def test_bad_signing_keys_are_refused(tmp_path: Path, data: bytes, mode: int, message: str) -> None:
    path = key_file(tmp_path, data, mode)
    with pytest.raises(KeyError_) as error:
        load_signing_key(path)
    assert message in error.value.what and error.value.where == str(path)
    if mode == 0o644:
        assert error.value.hint == f"run `chmod 600 {path}`"


def test_missing_or_odd_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="cannot read key file"):
        load_signing_key(tmp_path / "absent.pem")
    with pytest.raises(KeyError_, match="not a regular file"):
        load_signing_key(tmp_path)
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    path = tmp_path / "rsa.pub"
    path.write_bytes(rsa_public.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(KeyError_, match="this public key is not"):
        load_public_key(path)
    path.write_text("nonsense")
    with pytest.raises(KeyError_, match="not a PEM public key"):
        load_public_key(path)


def test_sign_covers_everything_but_the_signature() -> None:
    private = Ed25519PrivateKey.generate()
    document = {"b": [1, "é"], "a": {"z": None, "y": 1.5}}
    signed = sign(document, private)
    expected = b'{"a":{"y":1.5,"z":null},"b":[1,"\xc3\xa9"]}'  # sorted, compact, UTF-8
    assert canonical(document) == expected == canonical(signed)
    private.public_key().verify(base64.b64decode(signed["signature"]["value"]), expected)
    resigned = sign(signed, private)  # an old signature is replaced, not signed over
    assert resigned == signed and json.dumps(resigned)
    assert {k: v for k, v in signed.items() if k != "signature"} == document
