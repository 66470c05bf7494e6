"""The audit: finds, never crashes.

Every manifest version and audit record must carry a trusted signature and its place in
its chain; every entry exists at its version with its size (and SHA-256 with `deep`), the
retention its policy demands and the holds the audit trail requires; objects under
`exports/` and `motion/` that no manifest lists are reported. Every error on an object is
a finding and the audit carries on; it always stores its own signed record, and makes the
signed checkpoint of every chain it read (`keep_checkpoint`: kept outside the bucket).

The required holds are read from the signed audit trail (the last hold or release record
of each object version), never from tags.
"""

import base64
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, ManifestEntry
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import (
    AUDIT_CHAIN,
    CHAIN_PREFIX,
    MAX_RECORD_BYTES,
    Chain,
    RecordVersion,
    manifest_chain,
    read_version,
    verify_chain,
)
from ev_ingest.store.signing import (
    AUDIT,
    MANIFEST,
    PUBLIC_KEY_PREFIX,
    Verifier,
    fingerprint,
    load_public_key,
    public_pem,
)
from pipelines.compliance import signing_keys
from pipelines.compliance.audit_checkpoint import check_checkpoint, make_checkpoint
from pipelines.compliance.findings import AuditReport, Finding
from pipelines.compliance.holds import holders, last_sync_gaps
from pipelines.compliance.policy import required
from pipelines.compliance.records import OBJECT_ERRORS, error_line
from pipelines.config import PipelineConfig, RetentionPolicy

log = logging.getLogger(__name__)
UNLISTED_PREFIXES = ("exports/", "motion/")  # what manifests list: anything else there is unaccounted for


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
            report.findings.append(Finding(version.key, "unreadable", f"{version.version_id}: {error_line(exc)}"))


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
    verifier = verifier or signing_keys.verifier_for(config)
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
        report.guard("checkpoint", lambda: check_checkpoint(store, checkpoint, verifier, site, report))
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
        report.guard("checkpoint", lambda: make_checkpoint(store, audit_log, report, now))
    return report


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
            report.findings.append(Finding(key, "unreadable", error_line(exc)))
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
            found.append(
                Finding(key, "legal-hold", f"held for {holding.describe()}, but unreadable: {error_line(exc)}")
            )
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
                found.append(Finding(key, "public-key", f"not a public key: {error_line(exc)}"))
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
