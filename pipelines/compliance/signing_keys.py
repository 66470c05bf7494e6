"""Which key signs the archive's records, and which keys a verifier trusts.

The private key comes from (first found): a PEM handed over at run time by the caller
(the DAGs read the Airflow connection `ev_signing`, i.e. any secrets backend), the
config's `signing.key_file`, or `$EV_SIGNING_KEY_FILE`; never from the store. Without one,
nothing is committed: an unsigned record would prove nothing.

A verifier trusts the public half of that key plus `signing.public_keys` (keys used
before a rotation, which the operator lists by hand and so trusts whatever the pin says).
With `signing.fingerprint` pinned, a signing key with another fingerprint is neither used
to sign nor trusted, and every verb that reads the key says the change in one line. The public key
published in the bucket (locked as long as the records it verifies) is for outside
verifiers; it is never trusted because the bucket holds it.
"""

from __future__ import annotations

from pathlib import Path

from ev_ingest.store import ArchiveStore, Retention, StoreError
from ev_ingest.store.signing import (
    PUBLIC_KEY_PREFIX,
    Signer,
    SigningError,
    Verifier,
    load_public_key,
    public_pem,
    signer_from_env,
)
from pipelines.config import PipelineConfig


class NoSigningKey(SigningError):
    """No signing key is configured here at all (an outside auditor's machine)."""


class KeyChanged(SigningError):
    """The signing key at hand is not the one `signing.fingerprint` pins."""


_runtime_pem: str | None = None  # set by `use_key_pem` (the DAGs, from a secrets backend)


def use_key_pem(pem: str | None) -> None:
    """Sign with this PEM private key in this process (held in memory only)."""
    global _runtime_pem
    _runtime_pem = pem


def signer_for(config: PipelineConfig) -> Signer:
    signer = Signer.from_pem(_runtime_pem) if _runtime_pem else signer_from_env(config.signing.key_file)
    if signer is None:
        raise NoSigningKey(
            "no signing key: set signing.key_file in the config or EV_SIGNING_KEY_FILE "
            "(`ev-ingest keys init -o FILE` makes one), or the Airflow connection ev_signing"
        )
    pinned = config.signing.fingerprint
    if pinned and signer.fingerprint != pinned:
        raise KeyChanged(
            f"the signing key changed: its fingerprint is {signer.fingerprint[:16]}..., the config pins "
            f"{pinned[:16]}... (signing.fingerprint); restore the key, or pin the new one once you trust it"
        )
    return signer


def verifier_for(config: PipelineConfig, extra: list[Path] | None = None) -> Verifier:
    """Trusts the configured key (when available here) and the listed public keys."""
    keys = [load_public_key(path.read_bytes()) for path in [*config.signing.public_keys, *(extra or [])]]
    try:
        keys.append(signer_for(config).public)
    except SigningError:  # a changed key is never trusted (the verbs say so: `retention.audit_log`)
        if not keys:
            raise
    return Verifier(keys)


def publish_public_key(store: ArchiveStore, signer: Signer, lock: Retention | None = None) -> str:
    """Store the public key (PEM) at `keys/signing/<fingerprint>.pem` unless it is there, locked
    at least until `lock` (a key kept for less time than the records it verifies proves
    nothing to an outside verifier); its key. The audit reports a replaced, planted or
    unlocked copy."""
    key, pem = f"{PUBLIC_KEY_PREFIX}{signer.fingerprint}.pem", public_pem(signer.public)
    latest = store.head(key)  # what an outside verifier fetches
    try:
        ours = latest is not None and store.get_bytes(key, latest.version_id, limit=len(pem) + 1) == pem
    except StoreError:  # larger than a key: a plant
        ours = False
    if latest is None or not ours:
        # Absent, hidden by a delete marker, or replaced: ours is stored again, once (the
        # audit reports what was done to the earlier versions).
        store.put(key, pem, content_type="application/x-pem-file", retention=lock)
        return key
    held = store.get_retention(key, latest.version_id)
    if lock is not None and (held is None or held.until < lock.until):
        mode = "COMPLIANCE" if held is not None and held.mode == "COMPLIANCE" else lock.mode
        store.set_retention(key, latest.version_id, Retention(mode, lock.until))
    return key
