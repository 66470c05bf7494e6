"""The recorder's horizon: how far back each recording server still holds video, what of it
the archive still owes, and how long before the server overwrites it (issue 25 item 5).

An exacqVision server overwrites its oldest video when its disk fills, so after an outage
of a few nights the footage nearest that edge is lost first. Three parts, one owner:

- **Learning the edge** (`learn_edge`, called by the planner). The planner already makes one
  search per camera; it starts that search `horizon.margin_hours` and a day before the
  night and runs it up to the server's now. If some camera's video reaches back to the
  window's start, the recorder holds at least that much (a lower bound). Otherwise the
  first clip of a camera that records continuously is the server's edge
  (`RecorderEdge.oldest`, in the night's signed manifest); motion-only cameras prove
  nothing (their first clip may follow hours of quiet), and with nothing else the edge is
  unknown. A chunk that began before a known edge and holds no clip was overwritten (or
  never recorded), never "no footage": a recorder that lost the video must not let the
  manifest prove a quiet camera.
- **What is owed** (`camera_horizons`). For each camera the site's verified nightly
  manifests name, every part of every local night since its first row that no row
  accounts for (archived, no footage, overwritten): failed exports, a server that was
  down, chunks still pending, nights no run archived at all. A camera its server's newest
  run no longer listed owes nothing after its last row; a server whose cameras were never
  listed owes its nights as camera 0.
- **Hours until overwrite.** A recorder keeps a roughly steady depth (`seen_at -
  oldest`), so footage recorded at `u` is overwritten near `u + depth`; owed footage
  already past a known edge is counted as lost. Without an edge, or when a later answer
  proved the recorder keeps more, the depth is a lower bound (`at_least`). An alert
  (`alerts`) fires when owed footage is within the margin of being overwritten, or when
  nothing says how far the recorder reaches: for an evidence archive a false alarm costs
  less than a quiet loss.

`archive --catch-up` archives the owed nights oldest first, back to `horizon.lookback_days`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, Manifest, RecorderEdge, verified_manifests
from ev_ingest.store.signing import Verifier
from pipelines.config import PipelineConfig

# A clip that starts this close after the searched window's start is the window's own edge
# (servers clip answers to the request), not the recorder's.
EDGE_SLACK = timedelta(seconds=60)
# The planner searches this much further back than the margin: until the next night, the
# night's own footage is then shown to lie beyond the margin even when no answer reached the
# recorder's edge (a bound of exactly the margin would alert on every failed chunk).
SEARCHED_BEYOND_MARGIN = timedelta(days=1)
OVERWRITTEN = "overwritten"  # the manifest failure kind of a chunk lost to the recorder
Span = tuple[datetime, datetime]


def learn_edge(
    server: str,
    searched_from: datetime,
    answers: Iterable[list[Span]],
    seen_at: datetime,
    skew: timedelta,
) -> RecorderEdge | None:
    """The server's edge from each camera's recorded spans in [searched_from, seen_at).

    - Some camera's video reaches back to the window's start: the recorder holds at least
      that much (`oldest` None, a lower bound).
    - Else the earliest clip of any camera gives the edge, when that camera recorded
      continuously from it on (a motion-only camera proves nothing: its first clip may
      follow hours of quiet).
    - Else None: nothing says where the server's video begins (no chunk is then called
      overwritten, and owed footage is alerted as unknown)."""
    spans = [sorted(a) for a in answers if a]
    if not spans:
        return None  # no camera's answer held a clip
    if any(a[0][0] <= searched_from + EDGE_SLACK for a in spans):
        oldest = None
    else:
        # The earliest clip of all must be a continuous camera's: a camera installed (or a
        # clip begun) later than another camera's video would put the edge too late.
        earliest = min(spans, key=lambda a: a[0][0])
        if not _continuous(earliest, seen_at):
            return None
        oldest = earliest[0][0]
    return RecorderEdge(
        server=server, searched_from=searched_from, oldest=oldest, seen_at=seen_at, clock_skew_s=skew.total_seconds()
    )


CONTINUOUS_SHARE = 0.95  # of the time from a camera's first clip to now: it records all the time


def _continuous(spans: list[Span], until: datetime) -> bool:
    first = spans[0][0]
    if until <= first:
        return False
    recorded = sum((min(b, until) - a).total_seconds() for a, b in spans if a < until)
    return recorded >= CONTINUOUS_SHARE * (until - first).total_seconds()


def overwritten(edge: RecorderEdge | None, chunk_start: datetime) -> bool:
    """Whether a chunk without clips began before the server's video does (lost, not quiet);
    within the slack of the edge it is quiet (the edge is only known to a GOP or so)."""
    return edge is not None and edge.oldest is not None and chunk_start < edge.oldest - EDGE_SLACK


@dataclass
class CameraHorizon:
    """One camera's standing against its recorder's horizon."""

    site: str
    server: str
    camera_id: int
    camera_name: str
    unarchived_hours: float  # owed: in no row of a manifest of record, and still on the recorder
    oldest_unarchived: datetime | None
    hours_left: float | None  # until the recorder overwrites `oldest_unarchived` (None: unknown)
    at_least: bool  # `hours_left` is a lower bound: no answer reached the recorder's edge
    lost_hours: float  # overwritten before they were archived (recorded so, or past a known edge)
    owed_nights: list[str]  # the local days still owed, oldest first

    def alert(self, margin_hours: float) -> str | None:
        """Why this camera needs attention now, or None."""
        if not self.unarchived_hours or self.oldest_unarchived is None:
            return None
        label = f"{self.site}/{self.server}/{self.camera_id}"
        owed = f"{self.unarchived_hours:.1f} h unarchived from {self.oldest_unarchived:%Y-%m-%d %H:%M} UTC"
        if self.hours_left is None:
            return f"{label}: {owed}, and no search has shown where the recorder's video begins"
        if self.hours_left < margin_hours:
            bound = "at least " if self.at_least else ""
            return (
                f"{label}: {owed}, overwritten by the recorder in {bound}{max(self.hours_left, 0):.1f} h "
                f"(margin {margin_hours:g} h)"
            )
        return None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["oldest_unarchived"] = self.oldest_unarchived.isoformat() if self.oldest_unarchived else None
        return data


def nightly(manifests: Iterable[Manifest], site: str) -> list[Manifest]:
    """The site's archival manifests, oldest night first: those listing nothing but exports
    (a motion manifest always lists its report; a thumbnail run, its sheets)."""
    runs = [m for m in manifests if m.site == site and all(e.kind == "export" for e in m.entries)]
    return sorted(runs, key=lambda m: m.interval_start)


def _observed(edge: RecorderEdge) -> datetime:
    """When the answer was seen, on our clock: orders observations of servers whose clocks
    are off (or frozen, as the simulator's can be)."""
    return edge.seen_at - timedelta(seconds=edge.clock_skew_s)


def _newest_edges(runs: list[Manifest]) -> dict[str, RecorderEdge]:
    edges: dict[str, RecorderEdge] = {}
    for edge in sorted((e for m in runs for e in m.recorders), key=_observed):
        edges[edge.server] = edge
    return edges


def _depth(runs: list[Manifest], server: str) -> tuple[timedelta, bool] | None:
    """How deep the server keeps video, and whether that is only a lower bound: the newest
    answer that showed its edge, unless a later answer proved it keeps more (then that
    bound); with no edge ever seen, the longest window any answer proved it holds."""
    seen = sorted((e for m in runs for e in m.recorders if e.server == server), key=_observed)
    if not seen:
        return None
    exact = [i for i, e in enumerate(seen) if e.oldest is not None]
    depth, at_least = timedelta(0), True
    if exact:
        edge = seen[exact[-1]]
        assert edge.oldest is not None
        depth, at_least = edge.seen_at - edge.oldest, False
        seen = seen[exact[-1] + 1 :]
    bound = max((e.seen_at - e.searched_from for e in seen if e.oldest is None), default=timedelta(0))
    return (bound, True) if bound > depth else (depth, at_least)


def server_now(edge: RecorderEdge | None) -> datetime:
    """Now on the server's clock, as its last answers set it against ours."""
    return clock.now() + timedelta(seconds=edge.clock_skew_s if edge else 0.0)


def _subtract(span: Span, covered: list[Span]) -> list[Span]:
    """The parts of `span` no covered span overlaps."""
    left, pieces = span[0], []
    for a, b in sorted(covered):
        if b <= left or a >= span[1]:
            continue
        if a > left:
            pieces.append((left, a))
        left = max(left, b)
    if left < span[1]:
        pieces.append((left, span[1]))
    return pieces


def camera_horizons(
    manifests: Iterable[Manifest], config: PipelineConfig, site: str, now: datetime | None = None
) -> list[CameraHorizon]:
    """Every camera's owed footage and hours until overwrite, from verified manifests.

    A camera owes every part of every local night from its first row on that no row
    accounts for; after its last row only while its server's newest planned run still
    listed it (a camera taken out owes nothing new). A configured server none of whose
    runs ever listed a camera owes its nights as camera 0 (unknown cameras, alerted).
    Owed footage the recorder has certainly overwritten by now (an exact edge) is counted
    as lost, not owed: it can no longer be saved, and must not keep the night red forever.

    `now`: the moment to judge at on the servers' clocks (the report passes its run's, so a
    rerun renders the same bytes); by default each server's now, from its last answers."""
    site_cfg = config.site(site)
    runs = nightly(manifests, site)
    if not runs:
        return []
    edges = _newest_edges(runs)
    judged_at = {s.name: now or server_now(edges.get(s.name)) for s in site_cfg.servers}
    first_seen: dict[tuple[str, int], datetime] = {}
    last_seen: dict[tuple[str, int], datetime] = {}
    # Per server, the cameras its newest run (by when it was written) had rows for.
    newest: dict[str, tuple[datetime, set[int]]] = {}
    names: dict[tuple[str, int], str] = {}
    covered: dict[tuple[str, int], list[Span]] = {}
    lost: dict[tuple[str, int], float] = {}
    for m in runs:
        rows: list[Any] = [*m.exports(), *m.no_footage, *m.failures]
        for row in rows:
            camera = (row.server, row.camera_id)
            first_seen[camera] = min(first_seen.get(camera, m.interval_start), m.interval_start)
            last_seen[camera] = max(last_seen.get(camera, m.interval_start), m.interval_start)
            names[camera] = names.get(camera) or getattr(row, "camera_name", "")
        for server in {row.server for row in rows if row.camera_id}:
            if server not in newest or m.created_at > newest[server][0]:
                newest[server] = (m.created_at, {r.camera_id for r in rows if r.server == server and r.camera_id})
        for row in [*m.exports(), *m.no_footage, *(f for f in m.failures if f.kind == OVERWRITTEN)]:
            covered.setdefault((row.server, row.camera_id), []).append((row.start, row.end))
        for f in m.failures:
            if f.kind == OVERWRITTEN:
                lost[(f.server, f.camera_id)] = lost.get((f.server, f.camera_id), 0.0) + _hours(f.end - f.start)
    # Nights a server was down before it ever listed a camera are owed by the cameras it
    # listed first (a camera added later owes nothing from before it was there).
    for server in {server for server, camera_id in first_seen if not camera_id}:
        listed = {c: t for (name, c), t in first_seen.items() if name == server and c}
        if listed and first_seen[(server, 0)] < min(listed.values()):
            for camera_id, first in listed.items():
                if first == min(listed.values()):
                    first_seen[(server, camera_id)] = first_seen[(server, 0)]
    found = []
    for server, camera_id in sorted(first_seen):
        server_cfg = next((s for s in site_cfg.servers if s.name == server), None)
        if server_cfg is None or (camera_id and not server_cfg.wants(camera_id)):
            continue  # no longer archived: owes nothing
        if not camera_id and server in newest:
            continue  # a plan failure of a server whose cameras are known: they owe it
        camera = (server, camera_id)
        listed_to_the_end = not camera_id or camera_id in newest[server][1]
        until = judged_at[server] if listed_to_the_end else site_cfg.previous_day(last_seen[camera] + _DAY * 1.5)[1]
        owed = [
            piece
            for start, end in _nights(site_cfg, first_seen[camera], min(until, judged_at[server]))
            for piece in _subtract((start, end), covered.get(camera, []))
        ]
        depth = _depth(runs, server)
        gone = 0.0
        if depth is not None and not depth[1]:  # an exact depth: what is past the edge is lost
            edge_now = judged_at[server] - depth[0]
            gone = sum(_hours(min(b, edge_now) - a) for a, b in owed if a < edge_now)
            owed = [(max(a, edge_now), b) for a, b in owed if b > edge_now]
        oldest = min((a for a, _ in owed), default=None)
        hours_left = None
        if oldest is not None and depth is not None:
            hours_left = _hours(oldest + depth[0] - judged_at[server])
        found.append(
            CameraHorizon(
                site=site,
                server=server,
                camera_id=camera_id,
                camera_name=names.get(camera, "") or ("" if camera_id else "its cameras were never listed"),
                unarchived_hours=round(sum(_hours(b - a) for a, b in owed), 3),
                oldest_unarchived=oldest,
                hours_left=None if hours_left is None else round(hours_left, 2),
                at_least=depth is not None and depth[1],
                lost_hours=round(lost.get(camera, 0.0) + gone, 3),
                owed_nights=sorted({_local_day(site_cfg, a) for a, _ in owed}),
            )
        )
    return found


_DAY = timedelta(days=1)


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600


def _nights(site_cfg: Any, first: datetime, until: datetime) -> list[Span]:
    """The site's local nights from the one holding `first` to the last that ended by `until`."""
    start, _ = site_cfg.local_day(first.astimezone(site_cfg.zone).date())  # a 25 h day is one day
    nights = []
    while True:
        night = site_cfg.previous_day(start + _DAY * 1.5)
        if night[1] > until:
            return nights
        nights.append(night)
        start = night[1]


def _local_day(site_cfg: Any, moment: datetime) -> str:
    return moment.astimezone(site_cfg.zone).strftime("%Y-%m-%d")


def horizon(
    store: ArchiveStore, verifier: Verifier, config: PipelineConfig, site: str, untrusted: list[str] | None = None
) -> list[CameraHorizon]:
    """`camera_horizons` of the site's verified manifests; the untrusted ones decide nothing
    (with `untrusted`, their keys and problems are appended there)."""
    found = verified_manifests(store, verifier, site)
    if untrusted is not None:
        untrusted.extend(f"{p.key}: {p.problem}" for p in found.problems)
    return camera_horizons(found.manifests, config, site)


def at_night(store: ArchiveStore, verifier: Verifier, config: PipelineConfig, site: str, start: datetime) -> Report:
    """The horizon as the night's own run saw it (judged at its server's clock then), for the
    night's report: the same archive renders the same bytes on a rerun."""
    found = verified_manifests(store, verifier, site)
    night = [m for m in nightly(found.manifests, site) if m.interval_start == start]
    seen = [e.seen_at for m in night for e in m.recorders]
    if not seen:
        return Report(None, [])
    # Only what was written by then: a later night or catch-up must not change this report.
    written = max(m.created_at for m in night)
    before = [m for m in found.manifests if m.created_at <= written]
    return Report(max(seen), camera_horizons(before, config, site, now=max(seen)))


@dataclass(frozen=True)
class Report:
    """The horizon rows of a night's report, and the moment they were judged at."""

    as_of: datetime | None
    rows: list[CameraHorizon]


def alerts(rows: Iterable[CameraHorizon], margin_hours: float) -> list[str]:
    return [a for a in (r.alert(margin_hours) for r in rows) if a]


def owed_nights(rows: Iterable[CameraHorizon]) -> list[str]:
    """Every local day some camera is owed, oldest first: the catch-up's order, because the
    oldest footage is the first the recorder overwrites."""
    return sorted({night for r in rows for night in r.owed_nights})
