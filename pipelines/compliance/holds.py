"""Legal holds, as the signed audit trail says (never tags, which anyone with write access
can change).

- holds from cases are synced by `pipelines.compliance.case_holds` (a site at once:
  bookmarks may name another server's cameras); `holders` replays who holds what from the
  signed trail, and `last_sync_gaps` reads the gaps the latest sync reported.
  (exacqVision cases have no status a client can read: the seed's Update Case takes name
  and description only.) Holds placed by people are never released automatically.
- `set_hold` / `hold_range`: manual holds, by key or by camera and time range; a release
  of an object the audit trail says a case or a person holds is refused unless forced,
  with a reason, and audited.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ev_ingest.store import ArchiveStore, AuditLog, ManifestEntry
from ev_ingest.store.signing import (
    Verifier,
)
from pipelines.compliance.records import manifests

HOLD_TAG = "ev_hold"  # marks holds the pipeline placed (value: the case guids)
HOLD_ACTIONS = ("legal-hold", "legal-hold-release")
SYNC_ACTION = "hold-sync"  # the record of each hold sync (`pipelines.compliance.case_holds`), with its gaps


class HoldRefused(ValueError):
    """A release the audit trail forbids without --force and a reason."""


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


def last_sync_gaps(site: str | None, trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gaps the latest hold sync of the site recorded (none before the first)."""
    syncs = [r for r in trail if r.get("action") == SYNC_ACTION and (site is None or r.get("site") == site)]
    if not syncs:
        return []
    latest = max(syncs, key=lambda r: (r.get("sequence") or 0, str(r.get("at"))))
    gaps = latest.get("gaps") if isinstance(latest.get("gaps"), list) else []
    return [gap for gap in gaps if isinstance(gap, dict)]
