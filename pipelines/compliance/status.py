"""What is protected: per site, server, camera and local day, the mode, retain-until, holds
and who holds them, read from the store (each object's own state), not from what the
pipeline intended (`ev-ingest retention status`).
"""

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from ev_ingest.store import ArchiveStore, AuditLog
from pipelines.compliance.holds import holders
from pipelines.compliance.records import OBJECT_ERRORS, manifests
from pipelines.config import PipelineConfig


@dataclass
class StatusRow:
    """One camera-day of one server: what protects its archived exports."""

    site: str
    server: str
    camera_id: int
    camera_name: str
    day: str  # the site's local day of the footage
    objects: int = 0
    size: int = 0
    modes: list[str] = field(default_factory=list)
    retain_until: str | None = None  # the earliest of the day's objects, in the site's time zone
    held: int = 0
    holders: list[str] = field(default_factory=list)  # cases (or manual reasons) holding them
    missing: int = 0
    no_footage: int = 0  # chunks the server said it recorded nothing in (accounted for, not archived)
    failed: int = 0  # chunks a run planned and did not archive (see the manifest's failures)


@dataclass
class _CameraDays:
    """The status row of a camera's local day (made on first use), or None for another day."""

    rows: dict[tuple[str, str, int, str], StatusRow]
    site: str
    zone: tzinfo | None
    day: str | None

    def __call__(self, server: str, camera_id: int, camera_name: str, start: datetime) -> StatusRow | None:
        local = (start.astimezone(self.zone) if self.zone else start).strftime("%Y-%m-%d")
        if self.day and local != self.day:
            return None
        row = self.rows.setdefault(
            (self.site, server, camera_id, local), StatusRow(self.site, server, camera_id, camera_name, local)
        )
        row.camera_name = row.camera_name or camera_name
        return row


def status(
    store: ArchiveStore,
    config: PipelineConfig,
    audit_log: AuditLog,
    site: str | None = None,
    day: str | None = None,
    unreadable: list[str] | None = None,
) -> list[StatusRow]:
    """Per site, server, camera and local day: mode, retain-until, holds and who holds them,
    read from the store (each object's own state), not from what the pipeline intended.
    Only verified manifests are shown; `unreadable` receives every other (junk, oversized,
    unsigned, rolled back) with its problem: the rest is still shown."""
    holds = holders(audit_log.trusted())
    rows: dict[tuple[str, str, int, str], StatusRow] = {}
    for manifest in manifests(store, audit_log.verifier, site, unreadable):
        zone = config.site(manifest.site).zone if manifest.site in {s.name for s in config.sites} else None
        camera_day = _CameraDays(rows, manifest.site, zone, day)
        for quiet in manifest.no_footage:
            row = camera_day(quiet.server, quiet.camera_id, quiet.camera_name, quiet.start)
            if row is not None:
                row.no_footage += 1
        for failed in manifest.failures:
            if failed.kind != "conflict":  # a conflict is a finding about a stored object, not a chunk lost
                row = camera_day(failed.server, failed.camera_id, "", failed.start)
                if row is not None:
                    row.failed += 1
        for entry in manifest.exports():
            row = camera_day(entry.server, entry.camera_id, entry.camera_name, entry.start)
            if row is None:
                continue
            try:
                info = store.head(entry.key, entry.version_id)
            except OBJECT_ERRORS:
                info = None
            if info is None:
                row.missing += 1
                continue
            row.objects += 1
            row.size += info.size
            if info.retention:
                if info.retention.mode not in row.modes:
                    row.modes.append(info.retention.mode)
                until = info.retention.until.astimezone(zone).isoformat() if zone else info.retention.until.isoformat()
                row.retain_until = min(filter(None, [row.retain_until, until]))
            if info.legal_hold:
                row.held += 1
                holding = holds.get((entry.key, entry.version_id))
                holder = holding.describe() if holding else "a hold nobody in the audit trail placed"
                if holder not in row.holders:
                    row.holders.append(holder)
    return sorted(rows.values(), key=lambda r: (r.site, r.server, r.camera_id, r.day))
