"""Retention policy: every object a verified manifest lists carries at least the retention
its policy demands (`apply_policy`: extended, never shortened; S3 refuses that anyway for
COMPLIANCE), each change audited.
"""

import logging
from dataclasses import asdict

from ev_ingest.store import ArchiveStore, AuditLog, ManifestEntry, Retention
from pipelines.compliance.records import OBJECT_ERRORS, error_line, manifests
from pipelines.config import RetentionPolicy

log = logging.getLogger(__name__)


def required(policy: RetentionPolicy, site: str, entry: ManifestEntry) -> Retention:
    mode, until = policy.until(site, entry.server, entry.camera_id, entry.end)
    return Retention(mode, until)


def apply_policy(store: ArchiveStore, policy: RetentionPolicy, site: str | None, audit_log: AuditLog) -> dict[str, int]:
    """Extend retention where it is shorter than the policy demands, for what verified
    manifests list. A missing or unreadable object is counted and logged (the audit reports
    it), never the end of the run."""
    changed = 0
    lost: list[str] = []
    manifests_read = manifests(store, audit_log.verifier, site, lost)
    missing = len(lost)
    for manifest in manifests_read:
        for entry in manifest.entries:
            try:
                changed += _extend(store, policy, manifest.site, entry, audit_log)
            except OBJECT_ERRORS as exc:
                missing += 1
                log.error("retention of %s@%s not checked: %s", entry.key, entry.version_id, error_line(exc))
    return {"retention_extended": changed, "unreadable": missing}


def _extend(
    store: ArchiveStore, policy: RetentionPolicy, site: str, entry: ManifestEntry, audit_log: AuditLog | None
) -> int:
    want = required(policy, site, entry)
    info = store.head(entry.key, entry.version_id)
    if info is None:
        raise KeyError(f"{entry.key}@{entry.version_id} is gone")
    have = info.retention
    if have is not None and have.until >= want.until and (have.mode == "COMPLIANCE" or want.mode == have.mode):
        return 0
    mode = "COMPLIANCE" if have is not None and have.mode == "COMPLIANCE" else want.mode
    until = max(want.until, have.until) if have else want.until
    store.set_retention(entry.key, entry.version_id, Retention(mode, until))
    if audit_log:
        audit_log.record(
            "retention",
            key=entry.key,
            version_id=entry.version_id,
            mode=mode,
            until=until.isoformat(),
            previous=asdict(have) if have else None,
        )
    return 1
