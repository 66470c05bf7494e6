"""The nightly archival steps: plan, export into the store, write the manifest.

Plain functions with plain arguments (a client, a store, dicts and datetimes), keyed on
the data interval and idempotent. `plan()` turns an interval into `ExportJob`s, one per
(server, camera, chunk) that holds recordings and has ended on the server's clock; the
one export step is `pipelines.nightly.export_job`; `commit_manifest()` writes the record, last.
Airflow DAGs, the CLI (`ev-ingest archive`) and notebooks call the same functions.

What travels between steps (Airflow XCom) is small JSON: `Plan`, `ExportJob` and
`JobResult` dicts, never video, never an export id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ev_ingest import clock
from ev_ingest.client import ExacqClient, ExacqError
from ev_ingest.store import (
    ArchiveStore,
    Manifest,
    ManifestEntry,
    ManifestFailure,
    NoFootage,
    RecorderEdge,
    Retention,
)
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import verified_manifest, write_manifest
from pipelines.compliance import signing_keys
from pipelines.config import PipelineConfig
from pipelines.nightly import horizon
from pipelines.nightly.export_job import SHORT, ExportJob, JobResult

log = logging.getLogger(__name__)


def recorded_spans(
    clips: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """What the server recorded within [start, end): its clips clipped to the chunk, in time
    order, overlaps merged. A server may list clips in any order (the first listed is not the
    export's t = 0) and overlapping clips (a second recording) must not count twice."""
    spans: list[tuple[datetime, datetime]] = []
    for a, b in sorted((max(a, start), min(b, end)) for a, b in clips if b > start and a < end):
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class IntervalError(ValueError):
    """The interval cannot be archived: it has not started on the server's clock."""


@dataclass
class Plan:
    """What one server's interval needs: the jobs to run now, and how many chunk slots
    (summed over cameras) have not ended on the server's clock and are left for a later run."""

    site: str
    server: str
    jobs: list[ExportJob] = field(default_factory=list)
    pending: int = 0
    failures: list[ManifestFailure] = field(default_factory=list)  # cameras whose search failed (kind "plan")
    no_footage: list[NoFootage] = field(default_factory=list)  # chunks the server said it recorded nothing in
    recorder: RecorderEdge | None = None  # where the server's video begins, as its answers showed

    def as_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "server": self.server,
            "jobs": [j.as_dict() for j in self.jobs],
            "pending": self.pending,
            "failures": [f.model_dump(mode="json") for f in self.failures],
            "no_footage": [q.model_dump(mode="json") for q in self.no_footage],
            "recorder": self.recorder.model_dump(mode="json") if self.recorder else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        jobs = [ExportJob.from_dict(j) for j in data["jobs"]]
        failures = [ManifestFailure.model_validate(f) for f in data.get("failures", [])]
        quiet = [NoFootage.model_validate(q) for q in data.get("no_footage", [])]
        edge = RecorderEdge.model_validate(data["recorder"]) if data.get("recorder") else None
        return cls(data["site"], data["server"], jobs, int(data["pending"]), failures, quiet, edge)


def server_now(client: ExacqClient) -> datetime:
    """The recording server's clock: ours corrected by the skew its `Date` headers showed."""
    return clock.now() + (client.clock_skew or timedelta(0))


def chunk_grid(start: datetime, end: datetime, minutes: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut every `minutes` from `start`: the grid names the keys, not the recordings."""
    step, grid, cursor = timedelta(minutes=minutes), [], start
    while cursor < end:
        grid.append((cursor, min(cursor + step, end)))
        cursor = grid[-1][1]
    return grid


def plan(client: ExacqClient, config: PipelineConfig, site: str, server: str, start: datetime, end: datetime) -> Plan:
    """Recorded spans of every wanted camera in [start, end), cut on a fixed chunk grid.

    The spans come from one `search.web` per camera, the search real clients use; the
    metadata search (a guessed path and shape) is never trusted with what gets archived.

    Only chunks that ended `export.settle_s` ago on the server's clock are planned: an
    export of a chunk still being recorded would be stored (and locked) short, and every
    later run would take it as archived. The rest is counted in `Plan.pending`, and a
    later run of the same interval archives it. An interval that has not started is an
    error. Reruns plan the same keys.
    """
    server_cfg = config.server(site, server)
    listed = _unique_cameras(client.cameras.list(), site, server)
    cameras = [c for c in listed if server_cfg.wants(c.id)]
    # A camera the config names and the server does not list is a failure, never absent.
    unlisted = sorted(set(server_cfg.include_cameras or []) - {c.id for c in listed})
    check_clock(client, config, server, end)
    now = server_now(client)
    if start >= now:
        raise IntervalError(
            f"{site}/{server}: the interval {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC has not started "
            f"on the server's clock ({now:%Y-%m-%d %H:%M} UTC): there is nothing to archive yet"
        )
    missing = [
        ManifestFailure(
            server=server,
            camera_id=camera_id,
            start=start,
            end=end,
            error="the server does not list this camera (the config's include_cameras names it)",
            kind="plan",
        )
        for camera_id in unlisted
    ]
    if not listed:  # no camera at all: lost rights, or a server being rebuilt; never a quiet night
        missing.append(plan_failure(server, start, end, "the server lists no cameras (the user's rights?)"))
    for failed in missing:
        log.error("%s/%s: camera %s not planned: %s", site, server, failed.camera_id, failed.error)
    if not cameras:
        return Plan(site, server, failures=missing)
    grid = chunk_grid(start, end, config.export.chunk_minutes)
    ended_by = now - timedelta(seconds=config.export.settle_s)
    ready = [(a, b) for a, b in grid if b <= ended_by]
    result = Plan(site, server, pending=(len(grid) - len(ready)) * len(cameras), failures=missing)
    if not ready:
        log.warning("%s/%s: no chunk of the interval has ended on the server's clock yet", site, server)
        return result
    # Each camera's one search starts a margin and a day before the night and runs to the
    # server's now: its answer also shows where the recorder's video begins (pipelines.nightly.horizon).
    searched_from = start - timedelta(hours=config.horizon.margin_hours) - horizon.SEARCHED_BEYOND_MARGIN
    answers: dict[int, list[Any]] = {}
    for camera in cameras:
        # The confirmed per-camera search (videoInfo[].clips), not the guessed metadata search:
        # an answer in a shape the models do not know raises instead of planning nothing.
        try:
            answers[camera.id] = client.search.recordings(camera.id, searched_from, now)
        except ExacqError as exc:
            # One camera's odd answer costs that camera, never its server's night (issue 25).
            log.error("%s/%s: camera %s not planned: %s", site, server, camera.id, exc)
            result.failures.append(
                ManifestFailure(
                    server=server,
                    camera_id=camera.id,
                    start=start,
                    end=ready[-1][1],
                    error=f"its recordings could not be searched: {exc}",
                    kind="plan",
                )
            )
    skew = client.clock_skew or timedelta(0)
    recorded = [recorded_spans([(c.start, c.end) for c in clips], searched_from, now) for clips in answers.values()]
    result.recorder = horizon.learn_edge(server, searched_from, recorded, now, skew)
    for camera in cameras:
        if camera.id not in answers:
            continue
        clips, quiet = answers[camera.id], 0
        for chunk_start, chunk_end in ready:
            inside = recorded_spans([(c.start, c.end) for c in clips], chunk_start, chunk_end)
            if not inside and horizon.overwritten(result.recorder, chunk_start):
                # Began before the server's video does: lost to the recorder, never "no footage".
                assert result.recorder is not None and result.recorder.oldest is not None
                result.failures.append(
                    ManifestFailure(
                        server=server,
                        camera_id=camera.id,
                        start=chunk_start,
                        end=chunk_end,
                        # The API cannot tell overwritten from never recorded (a recorder
                        # installed since): either way it is not "no footage", and says so.
                        error=f"overwritten by the recorder before it was archived, or never recorded: the "
                        f"server's video begins at {result.recorder.oldest:%Y-%m-%d %H:%M:%S} UTC",
                        kind=horizon.OVERWRITTEN,
                    )
                )
            elif not inside:  # the server said so: accounted for in the manifest, not a failure
                quiet += 1
                result.no_footage.append(
                    NoFootage(
                        server=server, camera_id=camera.id, camera_name=camera.name, start=chunk_start, end=chunk_end
                    )
                )
            else:
                result.jobs.append(
                    ExportJob(
                        site=site,
                        server=server,
                        camera_id=camera.id,
                        camera_name=camera.name,
                        start=_iso(chunk_start),
                        end=_iso(chunk_end),
                        recorded_start=_iso(inside[0][0]),
                        recorded_seconds=sum((b - a).total_seconds() for a, b in inside),
                        format=config.export.format,
                    )
                )
        if quiet:
            log.info("%s/%s: camera %s recorded nothing in %d of %d chunks", site, server, camera.id, quiet, len(ready))
    log.info(
        "planned %d exports for %s/%s over %s .. %s%s",
        len(result.jobs),
        site,
        server,
        start,
        end,
        f" ({result.pending} chunk slots not ended yet: a later run archives them)" if result.pending else "",
    )
    return result


def _unique_cameras(cameras: list[Any], site: str, server: str) -> list[Any]:
    """The server's cameras, each once: a camera listed twice would be planned, exported and
    accounted for twice."""
    seen: dict[int, Any] = {}
    for camera in cameras:
        if camera.id in seen:
            log.warning("%s/%s: camera %s is listed twice; planned once", site, server, camera.id)
            continue
        seen[camera.id] = camera
    return list(seen.values())


class ClockSkewError(ValueError):
    """The recording server's clock is so far off that the interval is not over on it yet."""


def check_clock(client: ExacqClient, config: PipelineConfig, server: str, end: datetime) -> None:
    """A recorder labels video with its own clock. Within `max_clock_skew_s` nothing is said;
    beyond it a warning (exports are cut in server time); and when the interval is over on
    our clock but not on the server's, an error: the server is wrong, not the request."""
    skew = client.clock_skew
    if skew is None or abs(skew.total_seconds()) <= config.export.max_clock_skew_s:
        return
    server_clock = clock.now() + skew
    direction = "ahead of" if skew > timedelta(0) else "behind"
    minutes = round(abs(skew.total_seconds()) / 60)  # the Date header has 1 s resolution
    said = f"server {server!r}: its clock is {minutes // 60} h {minutes % 60:02d} min {direction} this worker's"
    if server_clock < end <= clock.now():
        raise ClockSkewError(
            f"{said}; the interval ends at {end:%Y-%m-%d %H:%M} UTC but the server's clock says "
            f"{server_clock:%Y-%m-%d %H:%M}, so its recordings of the interval are not complete. "
            "Fix the server's time (NTP) or archive this interval later."
        )
    log.warning("%s; exports are cut by the server's clock (check its NTP)", said)


def results_to_manifest(
    jobs: list[ExportJob], results: list[JobResult], errors: dict[str, str] | None = None
) -> tuple[list[ManifestEntry], list[ManifestFailure]]:
    """Entries of the jobs that produced a result (matched by job id); a failure for every
    job that did not (with its error where known), and a `conflict` failure per finding."""
    by_id = {r.job_id: r for r in results}
    entries, failures = [], []
    for job in jobs:
        result = by_id.get(job.job_id)
        if result is None:
            said = (errors or {}).get(job.job_id, "export failed after its retries (see the export task's log)")
            failures.append(failure(job, said, kind="short" if said.startswith(SHORT) else "export"))
            continue
        entries.append(result.entry)
        if result.finding:
            failures.append(failure(job, result.finding, kind="conflict"))
    return entries, failures


def plan_failure(
    server: str, start: datetime, end: datetime, error: str = "planning failed (see the plan task's log)"
) -> ManifestFailure:
    """A server whose plan failed: none of its exports were even listed (camera 0: all)."""
    return ManifestFailure(server=server, camera_id=0, start=start, end=end, error=error, kind="plan")


def failure(job: ExportJob, error: str, kind: str = "export") -> ManifestFailure:
    return ManifestFailure(
        server=job.server, camera_id=job.camera_id, start=job.start_dt, end=job.end_dt, error=error, kind=kind
    )


def commit_manifest(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str,
    run_id: str,
    start: datetime,
    end: datetime,
    entries: list[ManifestEntry],
    failures: list[ManifestFailure],
    planned: int,
    pending: int = 0,
    no_footage: list[NoFootage] | None = None,
    recorders: list[RecorderEdge] | None = None,
) -> Manifest:
    """Write the run's manifest last: the record that these objects are archived, these
    chunks recorded nothing, these failed, and where each server's video began."""
    manifest = Manifest(
        run_id=run_id,
        site=site,
        interval_start=start,
        interval_end=end,
        planned=planned,
        entries=entries,
        failures=failures,
        no_footage=no_footage or [],
        recorders=recorders or [],
        complete=pending == 0,
        pending=pending,
    )
    signer = signing_keys.signer_for(config)  # before anything is written: no key, no commit
    # A rerun that changes nothing writes nothing; only a verified manifest can say so (a
    # planted copy of the same content must not stand in for the commit).
    previous = verified_manifest(store, signing_keys.verifier_for(config), manifest.key)
    if previous is not None:
        manifest = carried_forward(previous, manifest)
    if previous is not None and previous.same_content(manifest):
        log.info("manifest %s unchanged: not rewritten", manifest.key)
        return previous
    lock = record_lock(config, site, end, entries)
    signing_keys.publish_public_key(store, signer, lock)
    manifest, _ = write_manifest(store, manifest, lock, signer)
    log.info(
        "manifest %s: %d objects, %d failures%s",
        manifest.key,
        len(manifest.entries),
        len(manifest.failures),
        f", {pending} chunk slots not ended yet (partial: a later run completes it)" if pending else "",
    )
    return manifest


def carried_forward(previous: Manifest, rerun: Manifest) -> Manifest:
    """The rerun's manifest, never forgetting what the manifest of record already holds.

    Per chunk slot (server, camera, start): an export the rerun archived wins; else an
    export the previous version lists stays (archived is archived: a rerun whose server is
    down, or whose recorder has since overwritten the video, must not turn it into a
    failure or "no footage"), and the rerun's failure or no-footage row for that slot goes.
    A server or camera the rerun could not plan keeps its earlier rows, and the rerun's
    plan failure goes when there were any: the earlier rows still account for it."""

    def slot(row: ManifestEntry | ManifestFailure | NoFootage) -> tuple[str, int, datetime]:
        return row.server, row.camera_id, row.start

    unplanned = {(f.server, f.camera_id) for f in rerun.failures if f.kind == "plan"}

    def replanned(row: ManifestEntry | ManifestFailure | NoFootage) -> bool:
        """False when the rerun could not plan this row's server (camera 0) or camera."""
        return (row.server, 0) not in unplanned and (row.server, row.camera_id) not in unplanned

    archived = {slot(e) for e in rerun.exports()}
    kept = [e for e in previous.exports() if slot(e) not in archived]
    held = archived | {slot(e) for e in kept}
    # What accounted for chunks before (a plan failure accounts for none: it says nothing was listed).
    accounted = [*previous.exports(), *previous.no_footage, *(f for f in previous.failures if f.kind != "plan")]
    earlier = {(r.server, r.camera_id) for r in accounted}
    earlier_servers = {server for server, _ in earlier}

    def superseded(f: ManifestFailure) -> bool:
        """A plan failure of the rerun where earlier rows still account for what it failed to list."""
        if f.kind != "plan":
            return False
        return f.server in earlier_servers if f.camera_id == 0 else (f.server, f.camera_id) in earlier

    def stands(f: ManifestFailure) -> bool:
        """Not undone by an archived export of its slot (a conflict is a finding about the
        store, never undone), nor superseded."""
        return f.kind == "conflict" or (slot(f) not in held and not superseded(f))

    # A chunk proven quiet before is not made "overwritten" by a rerun after the recorder's
    # edge passed it: the server said it recorded nothing there, when it still held the night.
    quiet_before = {slot(q) for q in previous.no_footage}
    failures = [f for f in rerun.failures if stands(f) and not (f.kind == "overwritten" and slot(f) in quiet_before)]
    carried = [f for f in previous.failures if not replanned(f) and stands(f)]
    # A camera whose plan failed before, on a server the rerun could not plan at all: its earlier failure stands.
    failures += [f for f in carried if f.kind != "plan" or (f.camera_id != 0 and (f.server, 0) in unplanned)]
    found = {(slot(f), f.kind) for f in failures}
    failures += [f for f in previous.failures if f.kind == "conflict" and (slot(f), f.kind) not in found]
    quiet = [q for q in rerun.no_footage if slot(q) not in held]
    now_lost = {slot(f) for f in rerun.failures if f.kind == "overwritten"}
    quiet += [q for q in previous.no_footage if (not replanned(q) or slot(q) in now_lost) and slot(q) not in held]
    # A server the rerun could not reach keeps the edge the previous version recorded.
    seen = {e.server for e in rerun.recorders}
    recorders = [*rerun.recorders, *(e for e in previous.recorders if e.server not in seen)]
    if not kept and failures == rerun.failures and quiet == rerun.no_footage and recorders == rerun.recorders:
        return rerun
    for entry in kept:
        log.warning("%s: kept from the manifest of record (not archived again by this run)", entry.key)
    return rerun.model_copy(
        update={"entries": [*rerun.entries, *kept], "failures": failures, "no_footage": quiet, "recorders": recorders}
    )


def record_lock(config: PipelineConfig, site: str, end: datetime, entries: list[ManifestEntry]) -> Retention | None:
    """A record (manifest) is kept at least as long as the longest-kept object it lists, and
    as long as the site's longest rule: a record that expires before its footage proves nothing."""
    policy = config.retention
    mode, _ = policy.rule_for(site, None, None)
    floor = (end + timedelta(days=policy.longest(site))).replace(microsecond=0)
    until = max([floor, *(e.retain_until for e in entries if e.retain_until)])
    if until <= clock.now() + timedelta(minutes=1):
        return None
    if any(e.retention_mode == "COMPLIANCE" for e in entries):
        mode = "COMPLIANCE"
    return Retention(mode, until)


def run_id_for(site: str, start: datetime) -> str:
    """Deterministic per site and interval: a rerun overwrites (as a new version) the same manifest key."""
    return f"nightly-{store_keys.stamp(start)}"
