"""The one reader of signed records: verified manifests and the audit log, for every
decision of compliance (policy, holds, audit, disposal, status).

- `manifests`: only manifests signed by a trusted key, at the place their chain names;
  any other is logged (and returned to the caller who asks) and decides nothing.
- `audit_log`: the signed, chained audit log; without a signing key only read-only.
- `OBJECT_ERRORS` and `error_line`: what can go wrong reading one object, said in one line.
"""

from datetime import timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, Retention, StoreError
from ev_ingest.store.records import (
    verified_manifests,
)
from ev_ingest.store.signing import (
    Signer,
    Verifier,
)
from pipelines.compliance import signing_keys
from pipelines.config import PipelineConfig

# What can go wrong reading one object: each becomes a finding, never the end of the audit.
OBJECT_ERRORS = (ClientError, BotoCoreError, StoreError, ValueError, KeyError, OSError, RecursionError)


def error_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def records_lock(config: PipelineConfig) -> Retention:
    """The lock of audit records: as long as the longest any object they describe can be kept."""
    policy = config.retention
    days = max(policy.longest(site.name) for site in config.sites)
    return Retention(policy.mode, (clock.now() + timedelta(days=days)).replace(microsecond=0))


def audit_log(
    store: ArchiveStore, config: PipelineConfig, *, read_only: bool = False, extra: list[Path] | None = None
) -> AuditLog:
    """The signed, chained audit log. Without a signing key it refuses to exist, unless
    `read_only`: then it checks records with the public keys alone (`signing.public_keys`,
    `extra`) and refuses to write one (an outside auditor's status, audit and audit log)."""
    try:
        signer: Signer | None = signing_keys.signer_for(config)
    except signing_keys.NoSigningKey:  # none configured at all; a bad or changed key is an error, always
        if not read_only:
            raise
        signer = None
    return AuditLog(store, records_lock(config), signer, signing_keys.verifier_for(config, extra))


def manifests(
    store: ArchiveStore, verifier: Verifier, site: str | None = None, untrusted: list[str] | None = None
) -> list[Manifest]:
    """The manifests every decision here rests on: verified (`verified_manifests`: signed by a
    trusted key, at the place its chain names). Any other is logged, and with `untrusted`
    its key and problem are appended there; it never decides anything."""
    found = verified_manifests(store, verifier, site)
    if untrusted is not None:
        untrusted.extend(f"{p.key}: {p.problem}" for p in found.problems)
    return found.manifests
