"""Compliance retention: policies, legal holds from exacqVision cases, and the audit.

- `apply_policy`: every object a manifest lists carries at least the retention its
  policy demands (retention is extended, never shortened: S3 refuses that anyway for
  COMPLIANCE).
- `sync_legal_holds`: an archived object whose camera and interval overlap a bookmark in
  an open case is put under legal hold; when the case is closed (or the bookmark is
  gone) the holds the pipeline placed are released. Holds placed by people (not tagged
  by the pipeline) are never released automatically.
- `audit`: every manifest entry exists at its version, matches its SHA-256 (with
  `deep=True` the bytes are re-read and re-hashed), carries the retention its policy
  demands and its holds, and has not been superseded by a newer version written
  behind the pipeline's back. Findings are returned and written to the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ev_ingest import clock
from ev_ingest.client import Bookmark, Case, ExacqClient
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, ManifestEntry, Retention, read_manifest
from ev_ingest.store.records import list_manifests
from pipelines.config import RetentionPolicy

log = logging.getLogger(__name__)
HOLD_TAG = "ev_hold"  # marks holds the pipeline placed (value: the case guids)
CLOSED_STATES = {"closed", "released", "archived"}


@dataclass
class Finding:
    key: str
    problem: str
    detail: str = ""


@dataclass
class AuditReport:
    site: str | None
    checked: int = 0
    verified: int = 0
    findings: list[Finding] = field(default_factory=list)
    audit_key: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "checked": self.checked,
            "verified": self.verified,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "audit_key": self.audit_key,
        }


def audit_log(store: ArchiveStore, policy: RetentionPolicy) -> AuditLog:
    """The audit log, its records locked like the archive they describe (the policy's default)."""
    until = (clock.now() + timedelta(days=policy.days)).replace(microsecond=0)
    return AuditLog(store, Retention(policy.mode, until))


def manifests(store: ArchiveStore, site: str | None = None) -> list[Manifest]:
    return [read_manifest(store, key) for key in list_manifests(store, site)]


def required(policy: RetentionPolicy, site: str, entry: ManifestEntry) -> Retention:
    mode, until = policy.until(site, entry.server, entry.camera_id, entry.end)
    return Retention(mode, until)


def apply_policy(
    store: ArchiveStore, policy: RetentionPolicy, site: str | None = None, audit_log: AuditLog | None = None
) -> int:
    """Extend retention where it is shorter than the policy demands; returns how many changed."""
    changed = 0
    for manifest in manifests(store, site):
        for entry in manifest.entries:
            want = required(policy, manifest.site, entry)
            have = store.get_retention(entry.key, entry.version_id)
            if have is not None and have.until >= want.until and (have.mode == "COMPLIANCE" or want.mode == have.mode):
                continue
            mode = "COMPLIANCE" if have is not None and have.mode == "COMPLIANCE" else want.mode
            until = max(want.until, have.until) if have else want.until
            store.set_retention(entry.key, entry.version_id, Retention(mode, until))
            changed += 1
            if audit_log:
                audit_log.record(
                    "retention",
                    key=entry.key,
                    version_id=entry.version_id,
                    mode=mode,
                    until=until.isoformat(),
                    previous=asdict(have) if have else None,
                )
    return changed


def _covering(entry: ManifestEntry, bookmarks: list[Bookmark], open_cases: dict[str, Case]) -> list[str]:
    """Guids of open cases with a bookmark on this entry's camera that overlaps its interval."""
    found = []
    for mark in bookmarks:
        if mark.case not in open_cases or entry.camera_id not in mark.camera_ids:
            continue
        if mark.start is not None and mark.end is not None and mark.start < entry.end and mark.end > entry.start:
            found.append(mark.case)
    return sorted(set(found))


def sync_legal_holds(
    client: ExacqClient,
    store: ArchiveStore,
    server: str,
    site: str | None = None,
    audit_log: AuditLog | None = None,
) -> dict[str, int]:
    """Hold what the open cases of recording server `server` cover; release the pipeline's
    holds that no open case of it covers any more.

    A bookmark names cameras by their id on its own server, so only that server's objects
    are considered. Objects archived before the server was part of the identity (server
    "") are held when a bookmark covers them, but never released here: another server's
    case may be what holds them."""
    cases = client.cases.list()
    open_cases = {c.guid: c for c in cases if (c.status or "open").lower() not in CLOSED_STATES}
    bookmarks = client.bookmarks.list()
    held = released = 0
    for manifest in manifests(store, site):
        for entry in manifest.entries:
            if entry.server not in (server, ""):
                continue
            covering = _covering(entry, bookmarks, open_cases)
            tags = store.tags(entry.key, entry.version_id)
            ours = HOLD_TAG in tags
            if covering and not (ours and tags[HOLD_TAG] == "+".join(covering)):
                store.set_legal_hold(entry.key, entry.version_id, True)
                store.set_tags(entry.key, entry.version_id, {**tags, HOLD_TAG: "+".join(covering)})
                held += 1
                if audit_log:
                    audit_log.record("legal-hold", key=entry.key, version_id=entry.version_id, cases=covering)
            elif not covering and ours and entry.server == server:
                store.set_legal_hold(entry.key, entry.version_id, False)
                store.set_tags(entry.key, entry.version_id, {k: v for k, v in tags.items() if k != HOLD_TAG})
                released += 1
                if audit_log:
                    audit_log.record(
                        "legal-hold-release",
                        key=entry.key,
                        version_id=entry.version_id,
                        reason="no open case covers it",
                    )
    return {"held": held, "released": released}


def set_hold(
    store: ArchiveStore,
    key: str,
    on: bool,
    reason: str,
    audit_log: AuditLog | None = None,
    version_id: str | None = None,
) -> None:
    """A manual hold or release of one object (by key), recorded in the audit log."""
    info = store.head(key, version_id)
    if info is None:
        raise KeyError(f"no object {key!r} in bucket {store.bucket!r}")
    store.set_legal_hold(key, info.version_id, on)
    if audit_log:
        audit_log.record(
            "legal-hold" if on else "legal-hold-release",
            key=key,
            version_id=info.version_id,
            reason=reason,
            manual=True,
        )


def audit(
    store: ArchiveStore,
    policy: RetentionPolicy,
    site: str | None = None,
    *,
    deep: bool = False,
    audit_log: AuditLog | None = None,
    now: datetime | None = None,
) -> AuditReport:
    """Check every manifest entry; `deep` re-reads and re-hashes every object."""
    now = now or clock.now()
    report = AuditReport(site)
    for manifest in manifests(store, site):
        for entry in manifest.entries:
            report.checked += 1
            report.findings.extend(_check(store, policy, manifest.site, entry, deep, now))
            report.verified += deep
    if audit_log:
        report.audit_key = audit_log.record(
            "audit", site=site, checked=report.checked, deep=deep, findings=[asdict(f) for f in report.findings]
        )
    return report


def _check(
    store: ArchiveStore, policy: RetentionPolicy, site: str, entry: ManifestEntry, deep: bool, now: datetime
) -> list[Finding]:
    info = store.head(entry.key, entry.version_id)
    if info is None:
        return [Finding(entry.key, "missing", f"version {entry.version_id} is gone")]
    found = []
    if info.size != entry.size:
        found.append(Finding(entry.key, "size", f"{info.size} bytes, manifest says {entry.size}"))
    if info.sha256 != entry.sha256:
        found.append(Finding(entry.key, "sha256-tag", f"tag {info.sha256}, manifest {entry.sha256}"))
    if deep:
        verification = store.verify(entry.key, entry.sha256, entry.version_id)
        if not verification.ok:
            found.append(Finding(entry.key, "sha256", f"bytes hash to {verification.actual}"))
    latest = store.versions(entry.key)
    if latest and latest[0] != entry.version_id:
        found.append(
            Finding(
                entry.key,
                "superseded",
                f"a newer version {latest[0]} was written after the archived {entry.version_id}",
            )
        )
    want = required(policy, site, entry)
    have = info.retention
    if want.until > now + timedelta(minutes=5):
        if have is None:
            found.append(
                Finding(entry.key, "retention", f"no retention; policy demands {want.mode} until {want.until}")
            )
        elif have.until < want.until - timedelta(seconds=1):
            found.append(Finding(entry.key, "retention", f"retained until {have.until}, policy demands {want.until}"))
    if entry.legal_hold and not info.legal_hold:
        found.append(Finding(entry.key, "legal-hold", "the manifest records a hold the object no longer has"))
    return found
