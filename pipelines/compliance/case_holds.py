"""Legal holds from exacqVision cases, for a whole site at once: the one owner of the hold sync.

exacqVision's cases hold video through their bookmarks. A bookmark lives on one recording
server, but its items may name cameras of another server of the same site (the seed's
item calls name "the server with the item"; issue 25). So the sync first lists every
server's cases and bookmarks (`list_cases`), then decides every archived object of the
site against all of them (`sync_legal_holds`):

- an object whose server and camera a bookmark of an open case names, over an overlapping
  interval, is held (and placed again when its hold was removed behind the pipeline's back);
- the holds the sync placed are released only when no case of any server covers the object
  any more, and only when every server of the site was listed: a server that could not be
  answered may hold a case over it (its holds wait; its objects are never let go blind);
- what could make a hold miss silently is a **gap**, reported (the run fails, the audit
  finds it) instead of placing nothing quietly: open cases none of whose bookmarks the list
  shows (real servers may leave case bookmarks out of the bookmark list), an item naming
  a server the site does not archive, a server that could not be listed.

Each change of the gaps is recorded (`hold-sync`, signed, in the audit trail); a sync
whose gaps are the last one's writes nothing new. Who holds what is replayed from the
signed audit trail (`retention.holders`), never from tags. A bookmark item names its
server by the site's server name (`server` in the item: GUESS, no public client shows
the shape of a cross-server item; an item in any other shape names the server that
lists it). Objects archived before the server was part of their identity (server "")
are held when a bookmark of any server names their camera, and never released here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ev_ingest.client import Bookmark, Case, ExacqClient, ExacqError
from ev_ingest.store import ArchiveStore, AuditLog, ManifestEntry
from pipelines.compliance.holds import HOLD_TAG, SYNC_ACTION, Holders, holders, last_sync_gaps
from pipelines.compliance.records import OBJECT_ERRORS, error_line, manifests
from pipelines.config import SiteConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseListing:
    """One recording server's open cases and bookmarks, as the sync reads them."""

    server: str
    cases: list[Case]
    bookmarks: list[Bookmark]


@dataclass(frozen=True)
class Gap:
    """Something that could make a hold miss: reported, never passed over."""

    server: str
    problem: str  # unlisted-case-bookmarks | unknown-server | unlisted-server
    detail: str


@dataclass(frozen=True)
class Cover:
    """One camera interval a case's bookmark names."""

    case: str
    server: str
    camera_id: int
    start: datetime
    end: datetime


@dataclass
class SyncResult:
    held: int = 0
    restored: int = 0
    released: int = 0
    unreadable: int = 0
    deferred: int = 0  # releases left for a sync that can list every server
    gaps: list[Gap] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "held": self.held,
            "restored": self.restored,
            "released": self.released,
            "unreadable": self.unreadable,
            "deferred": self.deferred,
            "gaps": len(self.gaps),
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.counts(), "gaps": [asdict(g) for g in self.gaps]}


def list_cases(client: ExacqClient, server: str) -> CaseListing:
    """`server`'s open cases and its bookmarks. Raises (before anything changes) for a
    bookmark of an open case that names no camera in a shape this client knows."""
    listing = CaseListing(server, client.cases.list(), client.bookmarks.list())
    open_cases = {c.guid for c in listing.cases}
    for mark in listing.bookmarks:
        if mark.case in open_cases:
            mark.cameras(server)
    return listing


def listings_of(site: SiteConfig) -> list[CaseListing]:
    """The cases and bookmarks of every server of `site` that could be listed (`list_site`
    through the configured connections)."""
    from pipelines import connections  # the one place a configured server is connected

    servers = {s.name: s for s in site.servers}
    return list_site(list(servers), lambda name: connections.connect(servers[name]))


def sync_site(store: ArchiveStore, site: SiteConfig, audit_log: AuditLog) -> SyncResult:
    """List every server of the site, then sync its holds: the one path of `retention apply
    --holds` and `archive --holds`."""
    return sync_legal_holds(listings_of(site), store, site.name, audit_log, [s.name for s in site.servers])


def list_site(
    servers: Sequence[str], connect: Callable[[str], AbstractContextManager[ExacqClient]]
) -> list[CaseListing]:
    """Every server's listing that could be read (`connect`: a server's name to its client);
    a server that could not be reached or answered is left out, which `coverage` reports."""
    found = []
    for server in servers:
        try:
            with connect(server) as client:
                found.append(list_cases(client, server))
        except ExacqError as exc:
            log.error("cases of %s could not be listed: %s", server, error_line(exc))
    return found


def coverage(listings: Sequence[CaseListing], servers: Sequence[str]) -> tuple[list[Cover], list[Gap]]:
    """What the open cases of every listed server cover, and the gaps: the listing of a
    server in `servers` that is missing, cases whose bookmarks the list leaves out, items
    naming a server outside `servers`."""
    covers: list[Cover] = []
    gaps: list[Gap] = []
    listed = {listing.server for listing in listings}
    gaps += [
        Gap(s, "unlisted-server", "its cases and bookmarks could not be listed") for s in servers if s not in listed
    ]
    for listing in listings:
        open_cases = {c.guid: c for c in listing.cases}
        marks = [m for m in listing.bookmarks if m.case in open_cases]
        if open_cases and not marks:
            names = ", ".join(sorted(c.name or c.guid for c in open_cases.values()))
            gaps.append(
                Gap(listing.server, "unlisted-case-bookmarks", f"open case(s) {names}: no listed bookmark names any")
            )
        for mark in marks:
            if mark.start is None or mark.end is None or mark.case is None:
                continue
            for server, camera_id in mark.cameras(listing.server):
                if server not in servers:
                    gaps.append(
                        Gap(
                            listing.server,
                            "unknown-server",
                            f"bookmark {mark.name or mark.guid!r} of case {open_cases[mark.case].name!r} names "
                            f"camera {camera_id} on server {server!r}, which site does not archive",
                        )
                    )
                    continue
                covers.append(Cover(mark.case, server, camera_id, mark.start, mark.end))
    return covers, gaps


def covering(entry: ManifestEntry, covers: Sequence[Cover]) -> list[str]:
    """Guids of the cases whose bookmarks name this entry's server and camera over an
    overlapping interval (an entry of no server: any server's)."""
    return sorted(
        {
            c.case
            for c in covers
            if c.camera_id == entry.camera_id
            and entry.server in (c.server, "")
            and c.start < entry.end
            and c.end > entry.start
        }
    )


def sync_legal_holds(
    listings: Sequence[CaseListing],
    store: ArchiveStore,
    site: str | None,
    audit_log: AuditLog,
    servers: Sequence[str],
) -> SyncResult:
    """Hold what the open cases of the site's servers cover; release the sync's holds that
    no case covers any more (only when every server in `servers` was listed). Records the
    sync and its gaps in the audit trail."""
    covers, gaps = coverage(listings, servers)
    cases = {c.guid: c for listing in listings for c in listing.cases}
    result = SyncResult(gaps=gaps)
    lost: list[str] = []
    read = manifests(store, audit_log.verifier, site, lost)
    result.unreadable = len(lost)
    trail = audit_log.trusted()
    holding = holders(trail)
    may_release = not any(g.problem == "unlisted-server" for g in gaps)
    for manifest in read:
        for entry in manifest.entries:
            try:
                outcome = _sync_one(
                    store,
                    entry,
                    covering(entry, covers),
                    cases,
                    audit_log,
                    holding.get((entry.key, entry.version_id), Holders()),
                    may_release,
                )
            except OBJECT_ERRORS as exc:
                outcome = "unreadable"
                log.error("hold of %s@%s not synced: %s", entry.key, entry.version_id, error_line(exc))
            if outcome:
                setattr(result, outcome, getattr(result, outcome) + 1)
    for gap in gaps:
        log.error("legal holds of %s may miss video: %s: %s", gap.server, gap.problem, gap.detail)
    if [asdict(g) for g in gaps] != last_sync_gaps(site, trail):
        # Only when the gaps change (a rerun writes nothing new); the audit reports the latest.
        audit_log.record(SYNC_ACTION, site=site, servers=sorted(servers), **result.as_json())
    return result


def _sync_one(
    store: ArchiveStore,
    entry: ManifestEntry,
    covering: list[str],
    cases: dict[str, Case],
    audit_log: AuditLog,
    holding: Holders,
    may_release: bool,
) -> str | None:
    """One object: its case holders made what the cases say. Only the sync's own case holds
    are added or removed (`holding`, from the trail, never from tags: anyone can write a
    tag); the object's legal hold is let go only when no holder remains."""
    held = store.get_legal_hold(entry.key, entry.version_id)
    if covering:
        same_cases = set(holding.cases) == set(covering)
        if held and same_cases:
            return None
        store.set_legal_hold(entry.key, entry.version_id, True)
        tags = store.tags(entry.key, entry.version_id)
        store.set_tags(entry.key, entry.version_id, {**tags, HOLD_TAG: "+".join(covering)})  # a hint for people
        restored = same_cases and not held
        audit_log.record(
            "legal-hold",
            key=entry.key,
            version_id=entry.version_id,
            cases=covering,
            case_names=[cases[guid].name or guid for guid in covering],
            restored=restored,
        )
        if restored:
            log.warning("%s@%s: its legal hold had been removed; placed again", entry.key, entry.version_id)
        return "restored" if restored else "held"
    if holding.cases and entry.server:
        if not may_release:
            return "deferred"
        if not holding.people:
            store.set_legal_hold(entry.key, entry.version_id, False)
        tags = store.tags(entry.key, entry.version_id)
        store.set_tags(entry.key, entry.version_id, {k: v for k, v in tags.items() if k != HOLD_TAG})
        audit_log.record(
            "legal-hold-release",
            key=entry.key,
            version_id=entry.version_id,
            cases=sorted(holding.cases),
            reason="no case covers it (case or bookmark deleted)",
            still_held_by=holding.people,
        )
        return "released"
    return None
