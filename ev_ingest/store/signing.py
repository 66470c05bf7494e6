"""Ed25519 signatures of the archive's records (manifests, audit records, case packages).

A signed record is a JSON object with a `signature` member:
`{"alg": "ed25519", "key": <fingerprint>, "sig": <base64>}`, the signature over the
record's canonical form (`canonical()`: the object without `signature`, keys sorted,
no whitespace, UTF-8). Anyone holding the public key checks it offline; nobody without
the private key can write a record that passes.

Where the keys live:
- The private key never comes from the store: a PEM file of mode 0600 or stricter
  (`EV_SIGNING_KEY_FILE`, or the config's `signing.key_file`), or PEM text handed over by
  the caller (the DAGs read it from the Airflow connection `ev_signing` / a secrets
  backend). `ev-ingest keys init` makes one.
- The public key is published in the bucket (`keys/signing/<fingerprint>.pem`, locked)
  for verifiers, and printed by `ev-ingest keys show`. A verifier trusts a key it was
  given (the config, `--public-key`), never one only because the bucket holds it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
KEY_FILE_ENV = "EV_SIGNING_KEY_FILE"
PUBLIC_KEY_PREFIX = "keys/signing/"


class SigningError(ValueError):
    """A key that cannot be used, or a record whose signature does not verify."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the record without `signature`, canonical JSON."""
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: the key's name everywhere."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SigningError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("the public key is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Signer:
    """A private key that signs records. Its repr names the fingerprint only."""

    private: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"Signer({self.fingerprint[:16]})"

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, record: dict[str, Any]) -> dict[str, Any]:
        """`record` with its `signature` member (replacing any earlier one)."""
        signature = self.private.sign(canonical(record))
        body = {k: v for k, v in record.items() if k != "signature"}
        return {
            **body,
            "signature": {"alg": ALGORITHM, "key": self.fingerprint, "sig": base64.b64encode(signature).decode()},
        }

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Signer:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"the signing key is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError("the signing key is not an Ed25519 key")
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """A PEM key file that only its owner can read (mode 0600 or stricter)."""
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise SigningError(f"signing key file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningError(f"signing key file {path} is readable by others (mode {mode & 0o777:o}): chmod 600 it")
        return cls.from_pem(path.read_bytes())

    def write(self, path: Path) -> None:
        """Write the private key as PEM to a new file of mode 0600 (never overwrites)."""
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SigningError(f"{path} exists: a signing key is never overwritten") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)


def signer_from_env(key_file: Path | None = None) -> Signer | None:
    """The signer of `key_file`, else of $EV_SIGNING_KEY_FILE; None when neither is set."""
    path = key_file or (Path(os.environ[KEY_FILE_ENV]) if os.environ.get(KEY_FILE_ENV) else None)
    return Signer.from_file(path.expanduser()) if path else None


class Verifier:
    """Checks record signatures against the public keys it was given (by fingerprint)."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {fingerprint(k): k for k in keys}

    def check(self, record: dict[str, Any]) -> str | None:
        """None when `record` carries a valid signature by a trusted key; else the problem."""
        signature = record.get("signature")
        if not isinstance(signature, dict):
            return "unsigned"
        if signature.get("alg") != ALGORITHM:
            return f"signed with unknown algorithm {signature.get('alg')!r}"
        key = self.keys.get(str(signature.get("key")))
        if key is None:
            return f"signed by an untrusted key {str(signature.get('key'))[:16]}"
        try:
            key.verify(base64.b64decode(str(signature.get("sig")), validate=True), canonical(record))
        except (InvalidSignature, ValueError):
            return "signature does not match the content"
        return None
