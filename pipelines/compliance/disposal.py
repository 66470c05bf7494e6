"""Disposal: the versions whose retention has run out and that nothing holds (`expired`);
deleted only when asked (`dispose`), each re-checked just before and each deletion audited.
"""

from dataclasses import dataclass
from datetime import datetime

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog
from pipelines.compliance.holds import holders


@dataclass(frozen=True)
class ExpiredVersion:
    key: str
    version_id: str | None
    retain_until: datetime | None
    size: int


def expired(
    store: ArchiveStore, prefixes: tuple[str, ...] = ("exports/", "motion/", "thumbnails/", "reports/")
) -> list[ExpiredVersion]:
    """Versions whose retention has run out and that no legal hold keeps (the store's own
    state, read per version)."""
    now = clock.now()
    found = []
    for prefix in prefixes:
        for version in store.all_versions(prefix):
            if version.deleted:
                continue
            info = store.head(version.key, version.version_id)
            if info is None or info.legal_hold:
                continue
            if info.retention is not None and info.retention.until > now:
                continue
            found.append(
                ExpiredVersion(
                    version.key, version.version_id, info.retention.until if info.retention else None, info.size
                )
            )
    return found


def dispose(store: ArchiveStore, candidates: list[ExpiredVersion], audit_log: AuditLog) -> int:
    """Delete expired versions for good, each re-checked just before and audited."""
    deleted = 0
    held = holders(audit_log.trusted())
    for item in candidates:
        info = store.head(item.key, item.version_id)
        if info is None or info.legal_hold or (item.key, item.version_id) in held:
            continue
        if info.retention is not None and info.retention.until > clock.now():
            continue
        store.delete_version(item.key, item.version_id)
        audit_log.record(
            "dispose",
            key=item.key,
            version_id=item.version_id,
            size=info.size,
            retain_until=info.retention.until.isoformat() if info.retention else None,
        )
        deleted += 1
    return deleted
