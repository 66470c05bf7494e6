"""Which key signs the archive's records, and which keys a verifier trusts.

The private key comes from (first found): a PEM handed over at run time by the caller
(the DAGs read the Airflow connection `ev_signing`, i.e. any secrets backend), the
config's `signing.key_file`, or `$EV_SIGNING_KEY_FILE`; never from the store. Without one,
nothing is committed: an unsigned record would prove nothing.

A verifier trusts the public half of that key plus `signing.public_keys` (keys used
before a rotation). The public key published in the bucket is for outside verifiers; it
is never trusted because the bucket holds it.
"""

from __future__ import annotations

from pathlib import Path

from ev_ingest.store import ArchiveStore
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

_runtime_pem: str | None = None  # set by `use_key_pem` (the DAGs, from a secrets backend)


def use_key_pem(pem: str | None) -> None:
    """Sign with this PEM private key in this process (held in memory only)."""
    global _runtime_pem
    _runtime_pem = pem


def signer_for(config: PipelineConfig) -> Signer:
    if _runtime_pem:
        return Signer.from_pem(_runtime_pem)
    signer = signer_from_env(config.signing.key_file)
    if signer is None:
        raise SigningError(
            "no signing key: set signing.key_file in the config or EV_SIGNING_KEY_FILE "
            "(`ev-ingest keys init -o FILE` makes one), or the Airflow connection ev_signing"
        )
    return signer


def verifier_for(config: PipelineConfig, extra: list[Path] | None = None) -> Verifier:
    """Trusts the configured key (when available here) and the listed public keys."""
    keys = [load_public_key(path.read_bytes()) for path in [*config.signing.public_keys, *(extra or [])]]
    try:
        keys.append(signer_for(config).public)
    except SigningError:
        if not keys:
            raise
    return Verifier(keys)


def publish_public_key(store: ArchiveStore, signer: Signer) -> str:
    """Store the public key (PEM) at `keys/signing/<fingerprint>.pem` unless it is there; its key."""
    key = f"{PUBLIC_KEY_PREFIX}{signer.fingerprint}.pem"
    if store.head(key) is None:
        store.put(key, public_pem(signer.public), content_type="application/x-pem-file")
    return key
