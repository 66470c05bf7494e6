"""Compliance retention: policies, legal holds from exacqVision cases, the audit, disposal.

- `apply_policy`: every object a manifest lists carries at least the retention its
  policy demands (extended, never shortened: S3 refuses that anyway for COMPLIANCE).
- `sync_legal_holds`: an archived object whose camera and interval overlap a bookmark in
  a case is put under legal hold, judged by the object's *actual* hold (a hold removed
  behind the pipeline's back is placed again); when the case or the bookmark is deleted,
  the holds the pipeline placed are released. (exacqVision cases have no status a client
  can read: the seed's Update Case takes name and description only.) Holds placed by people are
  never released automatically.
- `set_hold` / `hold_range`: manual holds, by key or by camera and time range; a release
  of an object the audit trail says a case or a person holds is refused unless forced,
  with a reason, and audited.
- `audit`: finds, never crashes. Every manifest version and audit record must carry a
  trusted signature and its place in its chain; every entry exists at its version with
  its size (and SHA-256 with `deep`), the retention its policy demands and the holds the
  audit trail requires; objects under `exports/` and `motion/` that no manifest lists are
  reported. Every error on an object is a finding and the audit carries on; it always
  stores its own signed record.
- `dispose`: the versions whose retention has run out and that nothing holds; deleted
  only when asked, each deletion audited.

The required holds are read from the signed audit trail (the last hold or release record
of each object version), never from tags, which anyone with write access can change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ev_ingest import clock
from ev_ingest.client import Bookmark, Case, ExacqClient
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, ManifestEntry, Retention, StoreError
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import (
    AUDIT_CHAIN,
    CHAIN_PREFIX,
    Chain,
    RecordVersion,
    list_manifests,
    manifest_chain,
    read_manifest,
    read_version,
    verify_chain,
)
from ev_ingest.store.signing import Verifier
from pipelines import keys
from pipelines.config import PipelineConfig, RetentionPolicy

log = logging.getLogger(__name__)
HOLD_TAG = "ev_hold"  # marks holds the pipeline placed (value: the case guids)
HOLD_ACTIONS = ("legal-hold", "legal-hold-release")
UNLISTED_PREFIXES = ("exports/", "motion/")  # what manifests list: anything else there is unaccounted for
# What can go wrong reading one object: each becomes a finding, never the end of the audit.
OBJECT_ERRORS = (ClientError, BotoCoreError, StoreError, ValueError, KeyError, OSError)


class HoldRefused(ValueError):
    """A release the audit trail forbids without --force and a reason."""


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
    records: int = 0  # manifest versions and audit records whose signature and place were checked
    findings: list[Finding] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)  # chain -> last place seen
    audit_key: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "checked": self.checked,
            "verified": self.verified,
            "records": self.records,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "heads": self.heads,
            "audit_key": self.audit_key,
        }

    def guard(self, key: str, step: Callable[[], list[Finding] | None]) -> None:
        """Run one check; whatever it raises becomes a finding about `key`."""
        try:
            self.findings.extend(step() or [])
        except OBJECT_ERRORS as exc:
            self.findings.append(Finding(key, "unreadable", one_line(exc)))


def one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def records_lock(config: PipelineConfig) -> Retention:
    """The lock of audit records: as long as the longest any object they describe can be kept."""
    policy = config.retention
    days = max(policy.longest(site.name) for site in config.sites)
    return Retention(policy.mode, (clock.now() + timedelta(days=days)).replace(microsecond=0))


def audit_log(store: ArchiveStore, config: PipelineConfig) -> AuditLog:
    """The signed, chained audit log (refuses to exist without a signing key)."""
    return AuditLog(store, records_lock(config), keys.signer_for(config), keys.verifier_for(config))


def manifests(store: ArchiveStore, site: str | None = None, unreadable: list[str] | None = None) -> list[Manifest]:
    """The latest version of every manifest; with `unreadable`, one that cannot be read is
    logged and its key appended there instead of ending the caller's run."""
    found = []
    for key in list_manifests(store, site):
        try:
            found.append(read_manifest(store, key))
        except OBJECT_ERRORS as exc:
            if unreadable is None:
                raise
            unreadable.append(key)
            log.error("manifest %s is unreadable: %s", key, one_line(exc))
    return found


def required(policy: RetentionPolicy, site: str, entry: ManifestEntry) -> Retention:
    mode, until = policy.until(site, entry.server, entry.camera_id, entry.end)
    return Retention(mode, until)


def apply_policy(
    store: ArchiveStore, policy: RetentionPolicy, site: str | None = None, audit_log: AuditLog | None = None
) -> dict[str, int]:
    """Extend retention where it is shorter than the policy demands. A missing or unreadable
    object is counted and logged (the audit reports it), never the end of the run."""
    changed = 0
    lost: list[str] = []
    manifests_read = manifests(store, site, lost)
    missing = len(lost)
    for manifest in manifests_read:
        for entry in manifest.entries:
            try:
                changed += _extend(store, policy, manifest.site, entry, audit_log)
            except OBJECT_ERRORS as exc:
                missing += 1
                log.error("retention of %s@%s not checked: %s", entry.key, entry.version_id, one_line(exc))
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


def covering(entry: ManifestEntry, bookmarks: list[Bookmark], open_cases: dict[str, Case]) -> list[str]:
    """Guids of the cases with a bookmark on this entry's camera that overlaps its interval."""
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
    """Hold what the cases of recording server `server` cover; release the pipeline's
    holds that no case of it covers any more.

    Judged by each object's actual hold: one removed behind the pipeline's back is placed
    again (`restored`). A bookmark names cameras by their id on its own server, so only
    that server's objects are considered. Objects archived before the server was part of
    the identity (server "") are held when a bookmark covers them, but never released
    here: another server's case may be what holds them."""
    open_cases = {c.guid: c for c in client.cases.list()}
    bookmarks = client.bookmarks.list()
    for mark in bookmarks:
        if mark.case in open_cases:
            mark.camera_ids  # noqa: B018 - raises for a bookmark naming no camera, before anything changes
    lost: list[str] = []
    manifests_read = manifests(store, site, lost)
    counts = {"held": 0, "restored": 0, "released": 0, "unreadable": len(lost)}
    for manifest in manifests_read:
        for entry in manifest.entries:
            if entry.server not in (server, ""):
                continue
            try:
                outcome = _sync_one(store, entry, server, covering(entry, bookmarks, open_cases), open_cases, audit_log)
            except OBJECT_ERRORS as exc:
                outcome = "unreadable"
                log.error("hold of %s@%s not synced: %s", entry.key, entry.version_id, one_line(exc))
            if outcome:
                counts[outcome] += 1
    return counts


def _sync_one(
    store: ArchiveStore,
    entry: ManifestEntry,
    server: str,
    covering: list[str],
    open_cases: dict[str, Case],
    audit_log: AuditLog | None,
) -> str | None:
    tags = store.tags(entry.key, entry.version_id)
    ours = HOLD_TAG in tags
    if covering:
        held = store.get_legal_hold(entry.key, entry.version_id)
        same_cases = ours and tags[HOLD_TAG] == "+".join(covering)
        if held and same_cases:
            return None
        store.set_legal_hold(entry.key, entry.version_id, True)
        store.set_tags(entry.key, entry.version_id, {**tags, HOLD_TAG: "+".join(covering)})
        restored = same_cases and not held
        if audit_log:
            audit_log.record(
                "legal-hold",
                key=entry.key,
                version_id=entry.version_id,
                cases=covering,
                case_names=[open_cases[guid].name or guid for guid in covering],
                restored=restored,
            )
        if restored:
            log.warning("%s@%s: its legal hold had been removed; placed again", entry.key, entry.version_id)
        return "restored" if restored else "held"
    if ours and entry.server == server:
        store.set_legal_hold(entry.key, entry.version_id, False)
        store.set_tags(entry.key, entry.version_id, {k: v for k, v in tags.items() if k != HOLD_TAG})
        if audit_log:
            audit_log.record(
                "legal-hold-release",
                key=entry.key,
                version_id=entry.version_id,
                reason="no case covers it (case or bookmark deleted)",
            )
        return "released"
    return None


def required_holds(trail: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(key, version) -> the hold record the audit trail says is in force."""
    last: dict[tuple[str, str | None], dict[str, Any]] = {}
    for record in sorted(trail, key=lambda r: (str(r.get("at")), r.get("sequence") or 0)):
        if record.get("action") in HOLD_ACTIONS and record.get("key"):
            last[(record["key"], record.get("version_id"))] = record
    return {k: r for k, r in last.items() if r["action"] == "legal-hold"}


def set_hold(
    store: ArchiveStore,
    key: str,
    on: bool,
    reason: str,
    audit_log: AuditLog,
    version_id: str | None = None,
    *,
    force: bool = False,
    holds: dict[tuple[str, str | None], dict[str, Any]] | None = None,
) -> str | None:
    """A manual hold or release of one object version, audited; the version id.

    A release of a version the audit trail says is held (for a case, or by a person) is
    refused unless `force`, with a reason of its own. `holds`: the trail's required holds,
    when the caller has read them already (they cost a read of the whole trail)."""
    info = store.head(key, version_id)
    if info is None:
        raise ValueError(f"no object {key!r} in bucket {store.bucket!r}")
    if not on:
        known = holds if holds is not None else required_holds(audit_log.trusted())
        _check_release(key, info.version_id, reason, force, known)
    store.set_legal_hold(key, info.version_id, on)
    audit_log.record(
        "legal-hold" if on else "legal-hold-release",
        key=key,
        version_id=info.version_id,
        reason=reason,
        manual=True,
        forced=force,
    )
    return info.version_id


def _check_release(
    key: str,
    version_id: str | None,
    reason: str,
    force: bool,
    holds: dict[tuple[str, str | None], dict[str, Any]],
) -> None:
    holding = holds.get((key, version_id))
    if holding and not force:
        raise HoldRefused(
            f"{key} is held for {_holder(holding)}: release it with --force --reason '...' (audited); "
            "a case's hold is placed again by the next sync while the case is open"
        )
    if force and (not reason or reason == "manual"):
        raise HoldRefused("a forced release needs --reason: it is kept in the audit trail")


def select_entries(
    store: ArchiveStore,
    site: str | None,
    server: str | None,
    camera: int | None,
    start: datetime | None,
    end: datetime | None,
) -> list[ManifestEntry]:
    """The archived exports of a camera (or of every camera) that overlap [start, end)."""
    found: dict[tuple[str, str | None], ManifestEntry] = {}
    for manifest in manifests(store, site):
        for entry in manifest.exports():
            if server is not None and entry.server != server:
                continue
            if camera is not None and entry.camera_id != camera:
                continue
            if (start is not None and entry.end <= start) or (end is not None and entry.start >= end):
                continue
            found[(entry.key, entry.version_id)] = entry
    return sorted(found.values(), key=lambda e: (e.server, e.camera_id, e.start))


def hold_range(
    store: ArchiveStore, entries: list[ManifestEntry], on: bool, reason: str, audit_log: AuditLog, force: bool = False
) -> list[str]:
    """Hold (or release) every listed export; the keys changed."""
    if not entries:
        raise ValueError("no archived export matches that camera and time range")
    # The trail is read once, and a release is checked for every object before any changes:
    # a refusal leaves the whole range as it was.
    holds = None if on else required_holds(audit_log.trusted())
    if holds is not None:
        for entry in entries:
            _check_release(entry.key, entry.version_id, reason, force, holds)
    for entry in entries:
        set_hold(store, entry.key, on, reason, audit_log, entry.version_id, force=force, holds=holds)
    return [e.key for e in entries]


# --- the audit ----------------------------------------------------------------------


def _versions(store: ArchiveStore, prefix: str, report: AuditReport) -> Iterator[RecordVersion]:
    """Every stored version under `prefix`, read back; a delete marker or an unreadable
    version is a finding."""
    for version in store.all_versions(prefix):
        if version.deleted:
            report.findings.append(
                Finding(version.key, "deleted", f"a delete marker hides it (version {version.version_id})")
            )
            continue
        try:
            yield read_version(store, version.key, version.version_id)
        except OBJECT_ERRORS as exc:
            report.findings.append(Finding(version.key, "unreadable", f"{version.version_id}: {one_line(exc)}"))


def _check_chain(
    store: ArchiveStore, name: str, versions: list[RecordVersion], verifier: Verifier, report: AuditReport
) -> None:
    report.records += len(versions)
    claims = Chain(store, name).claimed()
    problems, head = verify_chain(name, versions, claims, verifier)
    report.findings.extend(Finding(p.key, p.problem, p.detail) for p in problems)
    report.heads[name] = head


def audit(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str | None = None,
    *,
    deep: bool = False,
    audit_log: AuditLog | None = None,
    verifier: Verifier | None = None,
    now: datetime | None = None,
) -> AuditReport:
    """Check every record and every object they list. Never raises on what it finds or
    cannot read; stores its own signed record when given the audit log."""
    now = now or clock.now()
    verifier = verifier or keys.verifier_for(config)
    report = AuditReport(site)
    trail: list[dict[str, Any]] = []
    report.guard("audit/", lambda: _audit_trail(store, verifier, report, trail))
    report.guard("manifests/", lambda: _audit_records(store, config, site, deep, verifier, now, report))
    report.guard("audit/", lambda: _check_holds(store, trail))
    report.guard("chain/", lambda: _truncation(site, trail, report))
    if audit_log:
        report.audit_key = audit_log.record(
            "audit",
            site=site,
            checked=report.checked,
            records=report.records,
            deep=deep,
            heads=report.heads,
            findings=[asdict(f) for f in report.findings],
        )
    return report


def _audit_records(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str | None,
    deep: bool,
    verifier: Verifier,
    now: datetime,
    report: AuditReport,
) -> None:
    prefix = list_manifests_prefix(site)
    by_chain: dict[str, list[RecordVersion]] = {}
    latest: dict[str, RecordVersion] = {}
    for version in _versions(store, prefix, report):
        chain = "site=" + version.key.split("site=", 1)[1].split("/", 1)[0] if "site=" in version.key else "?"
        by_chain.setdefault(chain, []).append(version)
        if version.document is not None and verifier.check(version.document) is None:
            latest[version.key] = version  # oldest first: the last trusted version wins
    for name, versions in sorted(by_chain.items()):
        _check_chain(store, name, versions, verifier, report)
    listed: set[str] = set()
    for key, version in sorted(latest.items()):
        try:
            manifest = Manifest.model_validate(version.document)
        except ValueError as exc:
            report.findings.append(Finding(key, "unreadable", one_line(exc)))
            continue
        report.guard(key, lambda m=manifest, v=version: _check_record_lock(store, m, v))
        for entry in manifest.entries:
            listed.add(entry.key)
            report.checked += 1
            report.guard(entry.key, lambda e=entry, m=manifest: _check(store, config.retention, m.site, e, deep, now))
            report.verified += deep
    for area in UNLISTED_PREFIXES:
        scoped = area if site is None else f"{area}site={store_keys.safe_part(site)}/"
        report.guard(scoped, lambda p=scoped: _unlisted(store, p, listed))


def list_manifests_prefix(site: str | None) -> str:
    return "manifests/" if site is None else f"manifests/site={store_keys.safe_part(site)}/"


def _check_record_lock(store: ArchiveStore, manifest: Manifest, version: RecordVersion) -> list[Finding]:
    """A manifest is kept at least as long as the longest-kept object it lists."""
    longest = max((e.retain_until for e in manifest.entries if e.retain_until), default=None)
    if longest is None:
        return []
    info = store.head(version.key, version.version_id)
    have = info.retention.until if info and info.retention else None
    if have is None or have < longest - timedelta(seconds=1):
        return [Finding(version.key, "record-retention", f"kept until {have}, but lists objects kept until {longest}")]
    return []


def _unlisted(store: ArchiveStore, prefix: str, listed: set[str]) -> list[Finding]:
    return [
        Finding(key, "unlisted", "no manifest lists this object: not archived by ev-ingest")
        for key in store.list_keys(prefix)
        if key not in listed
    ]


def _check_holds(store: ArchiveStore, trail: list[dict[str, Any]]) -> list[Finding]:
    """Every hold the (trusted) audit trail says is in force is actually on the object."""
    found = []
    for (key, version), record in sorted(required_holds(trail).items(), key=lambda kv: kv[0][0]):
        try:
            held = store.get_legal_hold(key, version)
        except OBJECT_ERRORS as exc:
            found.append(Finding(key, "legal-hold", f"held for {_holder(record)}, but unreadable: {one_line(exc)}"))
            continue
        if not held:
            found.append(Finding(key, "legal-hold", f"held for {_holder(record)} in the audit trail, not in the store"))
    return found


def _holder(record: dict[str, Any]) -> str:
    """Who holds an object, for people: the case names (else guids), or the manual reason."""
    if record.get("cases"):
        return f"case(s) {', '.join(record.get('case_names') or record['cases'])}"
    return repr(record.get("reason", "manual"))


def _audit_trail(store: ArchiveStore, verifier: Verifier, report: AuditReport, trail: list[dict[str, Any]]) -> None:
    """The audit records' chain; `trail` receives the trusted records (what the hold and
    truncation checks rely on)."""
    versions = list(_versions(store, "audit/", report))
    _check_chain(store, AUDIT_CHAIN, versions, verifier, report)
    trail.extend(v.document for v in versions if v.document and verifier.check(v.document) is None)


def _truncation(site: str | None, trail: list[dict[str, Any]], report: AuditReport) -> list[Finding]:
    """A chain shorter than the last audit saw lost records from its end (which no link
    within the chain can show): each audit's signed record is the other chains' anchor."""
    audits = [d for d in trail if d.get("action") == "audit"]
    if not audits:
        return []
    last = max(audits, key=lambda d: d.get("sequence") or 0)
    in_scope = {AUDIT_CHAIN, *report.heads} if site else None
    if site:
        in_scope.add(manifest_chain(site))
    found = []
    for name, head in (last.get("heads") or {}).items():
        if in_scope is not None and name not in in_scope:
            continue
        if isinstance(head, int) and report.heads.get(name, 0) < head:
            found.append(
                Finding(
                    f"{CHAIN_PREFIX}{name}/",
                    "truncated",
                    f"the audit of {last.get('at')} saw {head} records, now {report.heads.get(name, 0)}",
                )
            )
    return found


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


# --- disposal -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expired:
    key: str
    version_id: str | None
    retain_until: datetime | None
    size: int


def expired(
    store: ArchiveStore, prefixes: tuple[str, ...] = ("exports/", "motion/", "thumbnails/", "reports/")
) -> list[Expired]:
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
                Expired(version.key, version.version_id, info.retention.until if info.retention else None, info.size)
            )
    return found


def dispose(store: ArchiveStore, candidates: list[Expired], audit_log: AuditLog) -> int:
    """Delete expired versions for good, each re-checked just before and audited."""
    deleted = 0
    held = required_holds(audit_log.trusted())
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


# --- what is protected ----------------------------------------------------------------


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


def status(
    store: ArchiveStore, config: PipelineConfig, audit_log: AuditLog, site: str | None = None, day: str | None = None
) -> list[StatusRow]:
    """Per site, server, camera and local day: mode, retain-until, holds and who holds them,
    read from the store (each object's own state), not from what the pipeline intended."""
    holds = required_holds(audit_log.trusted())
    rows: dict[tuple[str, str, int, str], StatusRow] = {}
    for manifest in manifests(store, site):
        zone = config.site(manifest.site).zone if manifest.site in {s.name for s in config.sites} else None
        for entry in manifest.exports():
            local = entry.start.astimezone(zone) if zone else entry.start
            if day and local.strftime("%Y-%m-%d") != day:
                continue
            group = (manifest.site, entry.server, entry.camera_id, local.strftime("%Y-%m-%d"))
            row = rows.setdefault(group, StatusRow(*group[:3], entry.camera_name, group[3]))
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
                record = holds.get((entry.key, entry.version_id))
                holder = _holder(record) if record else "a hold not placed by ev-ingest"
                if holder not in row.holders:
                    row.holders.append(holder)
    return sorted(rows.values(), key=lambda r: (r.site, r.server, r.camera_id, r.day))
