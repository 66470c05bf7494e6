"""The audit's checkpoint: the signed size and tree hash of every chain an audit read,
made by each audit that can sign, checked by the next one given it (whatever was lost or
rewritten since is a finding), and kept outside the bucket (`keep_checkpoint`)."""

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ev_ingest.store import ArchiveStore, AuditLog
from ev_ingest.store import checkpoint as checkpoints
from ev_ingest.store.checkpoint import ChainState
from ev_ingest.store.records import (
    AUDIT_CHAIN,
    CHAIN_PREFIX,
    Chain,
    manifest_chain,
)
from ev_ingest.store.signing import (
    Verifier,
    decode,
)
from pipelines.compliance.findings import AuditReport, Finding

log = logging.getLogger(__name__)
CHECKPOINT_PROBLEMS = ("truncated", "rewritten", "checkpoint")


def make_checkpoint(store: ArchiveStore, audit_log: AuditLog, report: AuditReport, now: datetime) -> None:
    # The audit's own record is part of the checkpoint: the audit chain read before it plus
    # the place it just took (read again in full only if another writer came in between).
    claims = dict(report.claims.get(AUDIT_CHAIN, {}))
    sequence, sha = Chain(store, AUDIT_CHAIN).head()
    if sequence == max(claims, default=0) + 1:
        claims[sequence] = sha
    else:
        claims = Chain(store, AUDIT_CHAIN).claimed()
    states = [ChainState.of(name, c) for name, c in report.claims.items() if name != AUDIT_CHAIN]
    states.append(ChainState.of(AUDIT_CHAIN, claims))
    assert audit_log.signer is not None  # only a log that can sign makes checkpoints
    report.checkpoint = checkpoints.make(store.bucket, now.isoformat(), report.audit_key, states, audit_log.signer)


def check_checkpoint(
    store: ArchiveStore, document: dict[str, Any], verifier: Verifier, site: str | None, report: AuditReport
) -> list[Finding]:
    """The chains of the checkpoint that this audit covers, as they are now; a chain this
    audit did not read (all its records gone) is read from its claims."""
    chains = document.get("chains") if isinstance(document.get("chains"), dict) else {}
    scope = {AUDIT_CHAIN, manifest_chain(site)} if site else None
    current = dict(report.claims)
    for name in chains:
        if name not in current and (scope is None or name in scope):
            current[name] = Chain(store, name).claimed()
    return [
        Finding(f"{CHAIN_PREFIX}{name}/" if name else "checkpoint", problem, detail)
        for name, problem, detail in checkpoints.check(document, store.bucket, verifier, current)
    ]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file (one-line `ValueError` when it is not one)."""
    try:
        return checkpoints.load(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def keep_checkpoint(report: AuditReport, path: Path | None) -> Path | None:
    """Write the audit's checkpoint to `path` (atomically); the path, or None when nothing
    was written. An earlier checkpoint the audit found broken is never overwritten: it is
    the evidence."""
    if path is None or report.checkpoint is None:
        return None
    if any(f.problem in CHECKPOINT_PROBLEMS for f in report.findings) and path.exists():
        log.error("%s is kept: the audit found the archive changed since it was made", path)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report.checkpoint, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def checkpoint_lines(checkpoint: dict[str, Any] | None, kept: Path | None) -> list[str]:
    """The checkpoint for people: each chain's size, head and tree hash (worth writing down)."""
    if checkpoint is None:
        return ["no checkpoint: the audit needs the signing key to sign one"]
    document = decode(checkpoint) or {}  # the audit signed it a moment ago
    chains = document.get("chains") or {}
    lines = [
        f"checkpoint {document.get('at')}: "
        + (f"written to {kept}" if kept else "not kept (--checkpoint-out FILE, or retention.checkpoint_file)")
    ]
    lines += [f"  {name:<16} size {c['size']:>6}  root {c['root']}" for name, c in sorted(chains.items())]
    return lines
