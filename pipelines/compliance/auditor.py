"""Compliance retention: policies, legal holds from exacqVision cases, the audit, disposal.

- `apply_policy`: every object a manifest lists carries at least the retention its
  policy demands (extended, never shortened: S3 refuses that anyway for COMPLIANCE).
- holds from cases are synced by `pipelines.case_holds` (a site at once: bookmarks may
  name another server's cameras); this module replays who holds what from the signed
  trail (`holders`) and audits it, including the gaps the latest sync reported.
  (exacqVision cases have no status a client can read: the seed's Update Case takes name
  and description only.) Holds placed by people are never released automatically.
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

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, ManifestEntry, Retention, StoreError
from ev_ingest.store import checkpoint as checkpoints
from ev_ingest.store import keys as store_keys
from ev_ingest.store.checkpoint import ChainState
from ev_ingest.store.records import (
    AUDIT_CHAIN,
    CHAIN_PREFIX,
    MAX_RECORD_BYTES,
    Chain,
    RecordVersion,
    manifest_chain,
    read_version,
    verified_manifests,
    verify_chain,
)
from ev_ingest.store.signing import (
    AUDIT,
    MANIFEST,
    PUBLIC_KEY_PREFIX,
    Signer,
    Verifier,
    decode,
    fingerprint,
    load_public_key,
    public_pem,
)
from pipelines import keys
from pipelines.config import PipelineConfig, RetentionPolicy

log = logging.getLogger(__name__)
HOLD_TAG = "ev_hold"  # marks holds the pipeline placed (value: the case guids)
HOLD_ACTIONS = ("legal-hold", "legal-hold-release")
SYNC_ACTION = "hold-sync"  # the record of each hold sync (`pipelines.case_holds`), with its gaps
UNLISTED_PREFIXES = ("exports/", "motion/")  # what manifests list: anything else there is unaccounted for
CHECKPOINT_PROBLEMS = ("truncated", "rewritten", "checkpoint")
# What can go wrong reading one object: each becomes a finding, never the end of the audit.
OBJECT_ERRORS = (ClientError, BotoCoreError, StoreError, ValueError, KeyError, OSError, RecursionError)


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
    checkpoint: dict[str, Any] | None = None  # signed, of every chain read: keep it outside the bucket
    claims: dict[str, dict[int, str | None]] = field(default_factory=dict, repr=False)  # chain -> place -> hash
    # fingerprint -> how long the objects of the manifests it signed are kept (None: unlocked)
    signed_until: dict[str, datetime | None] = field(default_factory=dict, repr=False)

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
            "checkpoint": self.checkpoint,
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


def audit_log(
    store: ArchiveStore, config: PipelineConfig, *, read_only: bool = False, extra: list[Path] | None = None
) -> AuditLog:
    """The signed, chained audit log. Without a signing key it refuses to exist, unless
    `read_only`: then it checks records with the public keys alone (`signing.public_keys`,
    `extra`) and refuses to write one (an outside auditor's status, audit and audit log)."""
    try:
        signer: Signer | None = keys.signer_for(config)
    except keys.NoSigningKey:  # none configured at all; a bad or changed key is an error, always
        if not read_only:
            raise
        signer = None
    return AuditLog(store, records_lock(config), signer, keys.verifier_for(config, extra))


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


@dataclass
class Holders:
    """Who holds one object version, as the signed audit trail says (tags are only hints)."""

    cases: dict[str, str] = field(default_factory=dict)  # guid -> name: the hold sync's
    people: list[str] = field(default_factory=list)  # the reasons of manual holds in force

    def __bool__(self) -> bool:
        return bool(self.cases or self.people)

    def describe(self) -> str:
        """For people: the case names (else guids) and the manual reasons."""
        parts = [f"case(s) {', '.join(self.cases.values())}"] if self.cases else []
        return " and ".join(parts + [repr(reason) for reason in self.people]) or "nobody"


def holders(trail: list[dict[str, Any]]) -> dict[tuple[str, str | None], Holders]:
    """(key, version) -> its holders, replayed from the trusted trail in chain order: a sync's
    hold sets the object's case holders, its release removes them and leaves people's; a
    person's hold adds a holder, a person's release (checked or forced) removes every one."""
    found: dict[tuple[str, str | None], Holders] = {}
    for record in sorted(trail, key=lambda r: (r.get("sequence") or 0, str(r.get("at")))):
        if record.get("action") not in HOLD_ACTIONS or not isinstance(record.get("key"), str):
            continue
        current = found.setdefault((record["key"], record.get("version_id")), Holders())
        # A hold naming no case is a person's, whoever wrote it (`manual` or not): never one
        # the sync may take away.
        manual = bool(record.get("manual")) or not record.get("cases")
        if record["action"] == "legal-hold" and manual:
            current.people.append(str(record.get("reason") or "manual"))
        elif record["action"] == "legal-hold":
            cases = [str(c) for c in record.get("cases") or []]
            names = [str(n) for n in record.get("case_names") or cases]
            current.cases = dict(zip(cases, names, strict=False)) | {c: c for c in cases[len(names) :]}
        elif manual:
            current.cases, current.people = {}, []
        else:
            current.cases = {}
    return {k: h for k, h in found.items() if h}


def set_hold(
    store: ArchiveStore,
    key: str,
    on: bool,
    reason: str,
    audit_log: AuditLog,
    version_id: str | None = None,
    *,
    force: bool = False,
    holds: dict[tuple[str, str | None], Holders] | None = None,
) -> str | None:
    """A manual hold or release of one object version, audited; the version id.

    A release of a version the audit trail says is held (for a case, or by a person) is
    refused unless `force`, with a reason of its own. `holds`: the trail's required holds,
    when the caller has read them already (they cost a read of the whole trail)."""
    info = store.head(key, version_id)
    if info is None:
        raise ValueError(f"no object {key!r} in bucket {store.bucket!r}")
    if not on:
        known = holds if holds is not None else holders(audit_log.trusted())
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
    holds: dict[tuple[str, str | None], Holders],
) -> None:
    holding = holds.get((key, version_id))
    if holding and not force:
        raise HoldRefused(
            f"{key} is held for {holding.describe()}: release it with --force --reason '...' (audited); "
            "a case's hold is placed again by the next sync while the case is open"
        )
    if force and (not reason or reason == "manual"):
        raise HoldRefused("a forced release needs --reason: it is kept in the audit trail")


def select_entries(
    store: ArchiveStore,
    verifier: Verifier,
    site: str | None,
    server: str | None,
    camera: int | None,
    start: datetime | None,
    end: datetime | None,
) -> list[ManifestEntry]:
    """The archived exports (as verified manifests list them) of a camera (or of every
    camera) that overlap [start, end)."""
    found: dict[tuple[str, str | None], ManifestEntry] = {}
    for manifest in manifests(store, verifier, site):
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
    holds = None if on else holders(audit_log.trusted())
    if holds is not None:
        for entry in entries:
            _check_release(entry.key, entry.version_id, reason, force, holds)
    for entry in entries:
        set_hold(store, entry.key, on, reason, audit_log, entry.version_id, force=force, holds=holds)
    return [e.key for e in entries]


# --- the audit ----------------------------------------------------------------------


def _versions(store: ArchiveStore, prefix: str, report: AuditReport) -> Iterator[RecordVersion]:
    """Every stored version under `prefix`, read back one by one; a delete marker, an
    oversized or an unreadable version is a finding about it alone."""
    for version in store.all_versions(prefix):
        if version.deleted:
            report.findings.append(
                Finding(version.key, "deleted", f"a delete marker hides it (version {version.version_id})")
            )
            continue
        if version.size > MAX_RECORD_BYTES:
            report.findings.append(
                Finding(
                    version.key,
                    "oversized",
                    f"{version.version_id}: {version.size} bytes, more than a record may have ({MAX_RECORD_BYTES}); "
                    "not read",
                )
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
    claims = Chain(store, name).read_claims()
    report.findings.extend(
        Finding(c.key, "claim", f"place {c.sequence} of {name}: {c.problem}") for c in claims if c.problem
    )
    claimed = {c.sequence: c.sha256 for c in claims}
    report.claims[name] = claimed
    problems, head = verify_chain(name, versions, claimed, verifier)
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
    checkpoint: dict[str, Any] | None = None,
) -> AuditReport:
    """Check every record and every object they list. Never raises on what it finds or
    cannot read; stores its own signed record when given the audit log, and then makes the
    signed checkpoint of every chain it read (`report.checkpoint`: keep it outside the
    bucket). `checkpoint`: an earlier one; whatever was lost or rewritten since is a finding.

    Without `deep`, every object's size and the store's own checksum are checked, and a
    rotating sample is re-hashed: each object on one day of every `rehash_days`, decided by
    the hash of its key and the date, so every object is re-read within that period."""
    now = now or clock.now()
    verifier = verifier or keys.verifier_for(config)
    report = AuditReport(site)
    trail: list[dict[str, Any]] = []
    report.guard("audit/", lambda: _audit_trail(store, verifier, report, trail))
    report.guard("manifests/", lambda: _audit_records(store, config, site, deep, verifier, now, report, trail))
    report.guard("audit/", lambda: _check_holds(store, trail))
    report.guard("audit/", lambda: _check_hold_sync(site, trail))
    report.guard("audit/", lambda: _check_disposals(trail))
    report.guard(PUBLIC_KEY_PREFIX, lambda: _check_public_keys(store, report.signed_until))
    report.guard("chain/", lambda: _truncation(site, trail, report))
    if checkpoint is not None:
        report.guard("checkpoint", lambda: _check_checkpoint(store, checkpoint, verifier, site, report))
    if audit_log and audit_log.signer:  # read-only (public keys alone): checked, not recorded
        report.audit_key = audit_log.record(
            "audit",
            site=site,
            checked=report.checked,
            records=report.records,
            deep=deep,
            rehashed=report.verified,
            heads=report.heads,
            findings=[asdict(f) for f in report.findings],
        )
        report.guard("checkpoint", lambda: _make_checkpoint(store, audit_log, report, now))
    return report


def _make_checkpoint(store: ArchiveStore, audit_log: AuditLog, report: AuditReport, now: datetime) -> None:
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


def _check_checkpoint(
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


def _audit_records(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str | None,
    deep: bool,
    verifier: Verifier,
    now: datetime,
    report: AuditReport,
    trail: list[dict[str, Any]],
) -> None:
    prefix = list_manifests_prefix(site)
    by_chain: dict[str, list[RecordVersion]] = {}
    by_key: dict[str, list[RecordVersion]] = {}
    signers: dict[tuple[str, str | None], str | None] = {}  # (key, version) -> the trusted key that signed it
    for version in _versions(store, prefix, report):  # oldest first per key
        chain = "site=" + version.key.split("site=", 1)[1].split("/", 1)[0] if "site=" in version.key else "?"
        by_chain.setdefault(chain, []).append(version)
        opened = version.open(verifier, MANIFEST)
        if opened.ok:
            by_key.setdefault(version.key, []).append(version)
            signers[(version.key, version.version_id)] = opened.keyid
    # A chain whose records are all gone still has its claims: list the chains too.
    names = {manifest_chain(site)} if site else set()
    if site is None:
        names |= {p.removeprefix(CHAIN_PREFIX).rstrip("/") for p in store.list_prefixes(CHAIN_PREFIX)}
    names = (names - {AUDIT_CHAIN}) | set(by_chain)
    for name in sorted(names):
        report.guard(
            f"{CHAIN_PREFIX}{name}/",
            lambda n=name: _check_chain(store, n, by_chain.get(n, []), verifier, report),
        )
    disposed = {(r.get("key"), r.get("version_id")) for r in trail if r.get("action") == "dispose"}
    placed = set(holders(trail))
    day = now.date().toordinal()
    listed: set[str] = set()
    for key, versions in sorted(by_key.items()):
        # What the archive last committed at this key is its highest place, whatever was
        # written after it: an older record stored again (a rollback) is found, not believed.
        current = max(versions, key=lambda v: v.sequence or 0)
        if current is not versions[-1]:
            report.findings.append(
                Finding(
                    key,
                    "rollback",
                    f"the latest version {versions[-1].version_id} is place {versions[-1].sequence}, but place "
                    f"{current.sequence} was committed at this key: an older record was stored again",
                )
            )
        try:
            manifest = Manifest.model_validate(current.document)
        except ValueError as exc:
            report.findings.append(Finding(key, "unreadable", one_line(exc)))
            continue
        report.guard(key, lambda m=manifest, v=current: _check_record_lock(store, m, v))
        _needs_key(report.signed_until, signers[(current.key, current.version_id)], manifest)
        for entry in manifest.entries:
            listed.add(entry.key)
            report.checked += 1
            rehash = deep or rehash_day(entry.key, config.retention.rehash_days) == day % config.retention.rehash_days
            report.guard(
                entry.key,
                lambda e=entry, m=manifest, r=rehash: _check(
                    store,
                    config.retention,
                    m.site,
                    e,
                    r,
                    now,
                    disposed=(e.key, e.version_id) in disposed,
                    placed=(e.key, e.version_id) in placed,
                ),
            )
            report.verified += rehash
    for area in UNLISTED_PREFIXES:
        scoped = area if site is None else f"{area}site={store_keys.safe_part(site)}/"
        report.guard(scoped, lambda p=scoped: _unlisted(store, p, listed))


def _needs_key(signed_until: dict[str, datetime | None], keyid: str | None, manifest: Manifest) -> None:
    """The key `keyid` signed `manifest`: it must stay published as long as what it lists."""
    if keyid is None:
        return
    until = max((e.retain_until for e in manifest.entries if e.retain_until), default=None)
    known = signed_until.get(keyid)
    signed_until[keyid] = max((d for d in (known, until) if d is not None), default=None)


def rehash_day(key: str, period: int) -> int:
    """The day (0..period-1) of every `period` days on which the daily audit re-hashes `key`:
    from the key's hash, so the sample is spread evenly and the same on every host."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % period


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
    """Every object the (trusted) audit trail says someone holds is actually held."""
    found = []
    for (key, version), holding in sorted(holders(trail).items(), key=lambda kv: kv[0][0]):
        try:
            held = store.get_legal_hold(key, version)
        except OBJECT_ERRORS as exc:
            found.append(Finding(key, "legal-hold", f"held for {holding.describe()}, but unreadable: {one_line(exc)}"))
            continue
        if not held:
            found.append(
                Finding(key, "legal-hold", f"held for {holding.describe()} in the audit trail, not in the store")
            )
    return found


def _check_hold_sync(site: str | None, trail: list[dict[str, Any]]) -> list[Finding]:
    """The gaps the latest hold sync (of the site) recorded: holds that may miss video
    (case bookmarks not listed, items on a server the site does not archive, a server that
    could not be listed) stay a finding until a sync without them."""
    return [
        Finding(f"holds/{gap.get('server')}", "hold-gap", f"{gap.get('problem')}: {gap.get('detail')}")
        for gap in last_sync_gaps(site, trail)
    ]


def last_sync_gaps(site: str | None, trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gaps the latest hold sync of the site recorded (none before the first)."""
    syncs = [r for r in trail if r.get("action") == SYNC_ACTION and (site is None or r.get("site") == site)]
    if not syncs:
        return []
    latest = max(syncs, key=lambda r: (r.get("sequence") or 0, str(r.get("at"))))
    gaps = latest.get("gaps") if isinstance(latest.get("gaps"), list) else []
    return [gap for gap in gaps if isinstance(gap, dict)]


def _check_public_keys(store: ArchiveStore, signed_until: dict[str, datetime | None]) -> list[Finding]:
    """Each published public key (what outside verifiers fetch): one version, not hidden,
    exactly the PEM of the key its name says, and locked at least as long as the objects
    listed by the manifests it signed (`signed_until`, by fingerprint: every key that
    signed a verified manifest must be published). Each key is read alone: junk in one
    hides no other."""
    found: list[Finding] = []
    versions: dict[str, list[Any]] = {}
    for version in store.all_versions(PUBLIC_KEY_PREFIX):
        versions.setdefault(version.key, []).append(version)
    for keyid, needed in sorted(signed_until.items()):
        key = f"{PUBLIC_KEY_PREFIX}{keyid}.pem"
        kept = [v for v in versions.get(key, []) if not v.deleted]
        if not kept:
            found.append(Finding(key, "public-key", "the key that signed the archive's manifests is not published"))
            continue
        held = store.get_retention(key, kept[-1].version_id)  # the latest: what a verifier fetches
        if needed is not None and (held is None or held.until < needed - timedelta(seconds=1)):
            found.append(
                Finding(
                    key,
                    "public-key",
                    f"kept until {held.until if held else None}, but verifies objects kept until {needed}",
                )
            )
    for key, listed in sorted(versions.items()):
        kept = [v for v in listed if not v.deleted]
        if len(kept) < len(listed):
            found.append(Finding(key, "public-key", "a delete marker hides the published key"))
        if len(kept) > 1:
            found.append(Finding(key, "public-key", f"{len(kept)} versions: the published key was replaced"))
        for version in kept:
            try:
                pem = store.get_bytes(key, version.version_id, limit=16 * 1024)
                public = load_public_key(pem)
                named = fingerprint(public)
                if key != f"{PUBLIC_KEY_PREFIX}{named}.pem":
                    found.append(Finding(key, "public-key", f"holds the key {named[:16]}..., not the one named"))
                elif pem != public_pem(public):  # a second key or junk around ours
                    found.append(Finding(key, "public-key", "holds more than the key's PEM"))
            except OBJECT_ERRORS as exc:
                found.append(Finding(key, "public-key", f"not a public key: {one_line(exc)}"))
    return found


def _check_disposals(trail: list[dict[str, Any]]) -> list[Finding]:
    """A disposal the trail records is lawful only when its retention had run out by then
    (the record says both); the objects of lawful ones are not reported missing."""
    found = []
    for record in trail:
        if record.get("action") != "dispose":
            continue
        until, at = record.get("retain_until"), record.get("at")
        if isinstance(until, str) and isinstance(at, str) and until > at:
            found.append(
                Finding(str(record.get("key")), "disposal", f"disposed of at {at}, but retained until {until}")
            )
    return found


def _audit_trail(store: ArchiveStore, verifier: Verifier, report: AuditReport, trail: list[dict[str, Any]]) -> None:
    """The audit records' chain; `trail` receives the trusted records (what the hold and
    truncation checks rely on), before the chain is checked: a broken chain hides no hold."""
    versions = list(_versions(store, "audit/", report))
    opened = (v.open(verifier, AUDIT) for v in versions)
    trail.extend(o.document for o in opened if o.document is not None)
    report.guard(f"{CHAIN_PREFIX}{AUDIT_CHAIN}/", lambda: _check_chain(store, AUDIT_CHAIN, versions, verifier, report))


def _truncation(site: str | None, trail: list[dict[str, Any]], report: AuditReport) -> list[Finding]:
    """A chain shorter than the last audit saw lost records from its end (which no link
    within the chain can show): each audit's signed record is the other chains' anchor.
    A checkpoint kept outside the bucket (`--checkpoint`) is the anchor that survives the
    audit chain itself being cut."""
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
    store: ArchiveStore,
    policy: RetentionPolicy,
    site: str,
    entry: ManifestEntry,
    deep: bool,
    now: datetime,
    *,
    disposed: bool = False,
    placed: bool = False,
) -> list[Finding]:
    """One listed object against its entry and the policy. `disposed`: the trail records its
    lawful disposal; `placed`: the trail says somebody holds it."""
    info = store.head(entry.key, entry.version_id)
    if info is None:
        # A lawful disposal is a signed record of the trail (`dispose`): that version is gone by design.
        return [] if disposed else [Finding(entry.key, "missing", f"version {entry.version_id} is gone")]
    found = []
    if info.size != entry.size:
        found.append(Finding(entry.key, "size", f"{info.size} bytes, manifest says {entry.size}"))
    if info.sha256 != entry.sha256:
        found.append(Finding(entry.key, "sha256-tag", f"tag {info.sha256}, manifest {entry.sha256}"))
    held = _store_checksum(info.checksum_sha256)
    if held is not None and held != entry.sha256:
        found.append(Finding(entry.key, "checksum", f"the store's own SHA-256 is {held}, manifest {entry.sha256}"))
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
    if info.legal_hold and not placed and not entry.legal_hold:
        # Not destruction, but unaudited: whoever placed it did so around the pipeline, and no
        # decision here (release, disposal) can know who to ask.
        found.append(Finding(entry.key, "unplaced-hold", "held, but nobody in the signed audit trail placed this hold"))
    return found


def _store_checksum(checksum: str | None) -> str | None:
    """The store's SHA-256 of a single-part object as hex; None for a composite (multipart,
    "-N": a hash of part hashes, not comparable) or absent one."""
    if not checksum or "-" in checksum:
        return None
    try:
        return base64.b64decode(checksum, validate=True).hex()
    except ValueError:
        return None


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
