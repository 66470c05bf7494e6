"""Ed25519 signatures of the archive's records (manifests, audit records, package indexes):
the signed envelope, how it is written, and the one place it is opened.

A record is stored as a DSSE envelope (secure-systems-lab/dsse, the envelope in-toto
and Sigstore sign inside):
`{"payloadType": <type>, "payload": base64(<the record's exact bytes>),
"signatures": [{"keyid": <fingerprint>, "sig": base64(...)}]}`. The signature covers the
pre-authentication encoding `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body)
SP body`, so it is over exactly the stored payload bytes (nothing is re-serialised before
checking) and over the payload type: each kind of record has its own (`MANIFEST`,
`AUDIT`, `CHECKPOINT`, `PACKAGE_INDEX`), and a signature made for one kind is refused when
presented as another.

`open_envelope` (also `Verifier.open`) is the one reader: it checks the type and the
signature against the keys the verifier was given and returns the payload it checked.
`decode` reads the record inside without any check (for displays and data access that
never decide anything).

Records written before issue 24 are signed JSON (`{..., "signature": {"alg": "ed25519",
"key": <fingerprint>, "sig": ...}}` over the record's canonical form, `canonical()`).
They are still read and verified (they carry no type: one is accepted only as a kind
whose members it has, `LEGACY_SHAPES`); nothing writes them any more (`Signer.sign` stays,
so that tests can make the old records an archive already holds).

Where the keys live:
- The private key never comes from the store: a PEM file of mode 0600 or stricter
  (`EV_SIGNING_KEY_FILE`, or the config's `signing.key_file`), or PEM text handed over by
  the caller (the DAGs read it from the Airflow connection `ev_signing` / a secrets
  backend). `ev-ingest keys init` makes one.
- The public key is published in the bucket (`keys/signing/<fingerprint>.pem`, locked)
  for verifiers, and printed by `ev-ingest keys show`. A verifier trusts a key it was
  given (the config, `--public-key`, `--key`, a pinned fingerprint), never one only
  because the bucket or the package holds it.
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

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
KEY_FILE_ENV = "EV_SIGNING_KEY_FILE"
PUBLIC_KEY_PREFIX = "keys/signing/"

# One payload type per kind of record: the type is inside the signed bytes (PAE), so a
# manifest's signature cannot be passed off as an audit record's, a checkpoint's or a
# package index's.
MANIFEST = "application/vnd.ev-ingest.manifest+json"
AUDIT = "application/vnd.ev-ingest.audit+json"
CHECKPOINT = "application/vnd.ev-ingest.checkpoint+json"
PACKAGE_INDEX = "application/vnd.ev-ingest.package-index+json"
PAYLOAD_TYPES = (MANIFEST, AUDIT, CHECKPOINT, PACKAGE_INDEX)
# Old signed JSON carries no type: a legacy record is accepted as a kind only if it has
# that kind's members (a legacy manifest has no `action`, a legacy audit record no `entries`).
LEGACY_SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # type -> (required, forbidden)
    MANIFEST: (("run_id", "entries"), ("action", "files")),
    AUDIT: (("action", "at"), ("entries", "files")),
    PACKAGE_INDEX: (("format", "files", "footage"), ("action", "entries")),
    CHECKPOINT: (("type", "bucket", "chains"), ("action", "entries", "files")),
}


class SigningError(ValueError):
    """A key that cannot be used, or a record whose signature does not verify."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a legacy signature covers: the record without `signature`, canonical JSON."""
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object hook that refuses a key given twice (readers disagree on which counts)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} is given twice")
        found[key] = value
    return found


MAX_JSON_ITEMS = 4_000_000  # values in one record: Python spends ~60 bytes on each, so ~250 MB at most


def strict_loads(data: bytes | str) -> Any:
    """JSON as a record is read: a key given twice in one object is a ValueError, never
    "the last one wins" (another reader may take the first); more than `MAX_JSON_ITEMS`
    values is a ValueError before anything is parsed (64 MB of `[[],[],...` or of
    `["ab","ab",...` would take 1.2 to 1.8 GB)."""
    raw = data.encode() if isinstance(data, str) else data
    items = raw.count(b",") + raw.count(b":") + raw.count(b"[") + raw.count(b"{")  # an upper bound
    if items > MAX_JSON_ITEMS:
        raise ValueError(f"{items} JSON values or more, more than a record may hold ({MAX_JSON_ITEMS})")
    return json.loads(raw, object_pairs_hook=unique_pairs)


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: what an envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def record_bytes(document: dict[str, Any]) -> bytes:
    """A record's payload bytes: JSON, keys sorted, no whitespace, UTF-8 (any bytes would
    do: the signature covers these exact bytes, and readers decode them, never rebuild them)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def kind_name(payload_type: str) -> str:
    """ "manifest" of "application/vnd.ev-ingest.manifest+json", for messages."""
    return payload_type.rsplit(".", 1)[-1].removesuffix("+json")


ENVELOPE_MEMBERS = {"payloadType", "payload", "signatures"}  # DSSE's, and nothing else


def is_envelope(obj: Any) -> bool:
    return isinstance(obj, dict) and "payloadType" in obj and "payload" in obj


def decode(obj: Any) -> dict[str, Any] | None:
    """The record inside a stored object, unchecked: an envelope's payload, a legacy record
    as it is; None when it is neither. For displays and data access, never for a decision."""
    if is_envelope(obj):
        try:
            document = strict_loads(base64.b64decode(str(obj.get("payload")), validate=True))
        except ValueError:
            return None
        return document if isinstance(document, dict) else None
    return obj if isinstance(obj, dict) else None


@dataclass(frozen=True)
class Opened:
    """What `open_envelope` found: the record it checked and who signed it, or the problem."""

    document: dict[str, Any] | None  # the verified payload, decoded (None unless verified)
    keyid: str | None = None  # the fingerprint of the trusted key whose signature holds
    problem: str | None = None
    legacy: bool = False  # old signed JSON (no payload type)

    @property
    def ok(self) -> bool:
        return self.problem is None


def open_envelope(obj: Any, payload_type: str, verifier: Verifier) -> Opened:
    """The one check of a stored record: an envelope of `payload_type` signed by a key
    `verifier` trusts (or a legacy signed record of that kind's shape). Never raises."""
    if payload_type not in PAYLOAD_TYPES:
        raise ValueError(f"unknown payload type {payload_type!r}")  # a programming error, not a finding
    if not isinstance(obj, dict):
        return Opened(None, problem="not a JSON object")
    if not is_envelope(obj):
        return _open_legacy(obj, payload_type, verifier)
    unsigned = set(obj) - ENVELOPE_MEMBERS
    if unsigned:  # members beside the signed payload that a naive reader could believe
        return Opened(None, problem=f"envelope members outside the signature: {', '.join(sorted(unsigned))[:80]}")
    if obj.get("payloadType") != payload_type:
        return Opened(
            None,
            problem=f"payload type {str(obj.get('payloadType'))[:80]!r}, not of the kind {kind_name(payload_type)}",
        )
    try:
        body = base64.b64decode(str(obj.get("payload")), validate=True)
    except ValueError:
        return Opened(None, problem="payload is not base64")
    signatures = obj.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        return Opened(None, problem="unsigned")
    message = pae(payload_type, body)
    untrusted = []
    for signature in signatures:
        if not isinstance(signature, dict):
            continue
        keyid = str(signature.get("keyid"))
        key = verifier.keys.get(keyid)
        if key is None:
            untrusted.append(keyid[:16])
            continue
        try:
            key.verify(base64.b64decode(str(signature.get("sig")), validate=True), message)
        except (InvalidSignature, ValueError):
            continue
        try:
            document = strict_loads(body)
        except ValueError:
            return Opened(None, keyid, "signed payload is not JSON (or gives a key twice)")
        if not isinstance(document, dict):
            return Opened(None, keyid, "signed payload is not a JSON object")
        return Opened(document, keyid)
    if untrusted and len(untrusted) == len(signatures):
        return Opened(None, problem=f"signed by an untrusted key {', '.join(untrusted)}")
    return Opened(None, problem="signature does not match the content")


def _open_legacy(record: dict[str, Any], payload_type: str, verifier: Verifier) -> Opened:
    signature = record.get("signature")
    if not isinstance(signature, dict):
        return Opened(None, problem="unsigned")
    if signature.get("alg") != ALGORITHM:
        return Opened(None, problem=f"signed with unknown algorithm {str(signature.get('alg'))[:40]!r}")
    keyid = str(signature.get("key"))
    key = verifier.keys.get(keyid)
    if key is None:
        return Opened(None, problem=f"signed by an untrusted key {keyid[:16]}", legacy=True)
    try:
        key.verify(base64.b64decode(str(signature.get("sig")), validate=True), canonical(record))
    except (InvalidSignature, ValueError):
        return Opened(None, problem="signature does not match the content", legacy=True)
    required, forbidden = LEGACY_SHAPES[payload_type]
    if any(k not in record for k in required) or any(k in record for k in forbidden):
        return Opened(
            None, keyid, f"a legacy signed record that is not of the kind {kind_name(payload_type)}", legacy=True
        )
    return Opened(record, keyid, legacy=True)


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
    except (ValueError, UnsupportedAlgorithm) as exc:  # the latter: a key of an algorithm not supported here
        raise SigningError(f"not a PEM public key: {str(exc)[:200]}") from None
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

    def envelope(self, payload_type: str, body: bytes) -> dict[str, Any]:
        """The signed envelope of `body`, exactly these bytes, as a record of `payload_type`."""
        if payload_type not in PAYLOAD_TYPES:
            raise ValueError(f"unknown payload type {payload_type!r}")
        signature = self.private.sign(pae(payload_type, body))
        return {
            "payloadType": payload_type,
            "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": self.fingerprint, "sig": base64.b64encode(signature).decode()}],
        }

    def sign(self, record: dict[str, Any]) -> dict[str, Any]:
        """Legacy signed JSON (`record` with its `signature` member), as records were written
        before issue 24. No writer uses it; tests make the old records an archive holds."""
        signature = self.private.sign(canonical(record))
        body = {k: v for k, v in record.items() if k != "signature"}
        return {
            **body,
            "signature": {"alg": ALGORITHM, "key": self.fingerprint, "sig": base64.b64encode(signature).decode()},
        }

    def seal(self, payload_type: str, document: dict[str, Any]) -> dict[str, Any]:
        """The envelope of `document` (serialised once, by `record_bytes`)."""
        return self.envelope(payload_type, record_bytes(document))

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

    def open(self, stored: Any, payload_type: str) -> Opened:
        """`open_envelope(stored, payload_type, self)`."""
        return open_envelope(stored, payload_type, self)

    def check(self, stored: Any, payload_type: str) -> str | None:
        """None when `stored` is a record of `payload_type` signed by a trusted key; else the problem."""
        return open_envelope(stored, payload_type, self).problem
