"""Motion summary step: summarise an archived export and store its Parquet summaries.

Reads the export back from the store (streamed to a temporary file, never whole in
memory), runs the motion core, and writes the per-second timeline and the events as
Parquet under `motion/{timeline,events}/site=/server=/camera=/date=/part-<start>.parquet`,
and a JPEG of each of its strongest events (the peak frame, the moving region boxed) under
`motion/snapshots/`,
with the export's retention. Each summary's entry carries its coverage: a summary of less
than the whole recording is recorded as a failure of the motion run, never a silent
success. Idempotent: summaries that a committed manifest records as derived from this
export are reused, and identical bytes never add a version.

A camera-day is one stream (issue 26): each chunk is pre-rolled with the last
`PREROLL_S` of the same camera's chunk before it (`previous_chunks`), read from the archive
by ranged reads of the version its manifest recorded, so the detector starts warm (a
cold start learns whatever is in the first frame as background: a person walking through
the boundary left a "ghost" that lasted the rest of the chunk) and any worker can
summarise any chunk in any order. Events cut by the boundary are joined when read
(`pipelines.analytics.datasets.stitch`).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ev_ingest.store import ArchiveStore, ManifestEntry, ManifestFailure, RecordIndex, Retention
from ev_ingest.store import keys as store_keys
from ev_ingest.store.ranged import RangedObject
from ev_ingest.store.signing import Verifier
from pipelines.config import PipelineConfig
from pipelines.video import analyze, media
from pipelines.video.decode import VideoError
from pipelines.video.summary import parquet_bytes

log = logging.getLogger(__name__)
# Seconds of the chunk before that a chunk is pre-rolled with: more than the detector's
# opening look (10 s), so the detector is settled when the chunk begins.
PREROLL_S = 15.0
# The chunk before counts as continuous when its recording reaches this close to the start.
CONTINUOUS_WITHIN_S = 2.0
GONE = frozenset({"NoSuchKey", "NoSuchVersion", "404", "InvalidRange"})  # content, not the store failing


def summarize_export(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str,
    export: ManifestEntry,
    workers: int | None = None,
    records: RecordIndex | None = None,
    previous: ManifestEntry | None = None,
) -> list[ManifestEntry]:
    """Timeline and events entries (for the motion manifest) of one archived export;
    `previous`: the same camera's export just before it (`previous_chunks`), to pre-roll with."""
    start = export.recorded_start or export.start
    timeline_key = store_keys.motion_key("timeline", site, export.server, export.camera_id, export.start)
    events_key = store_keys.motion_key("events", site, export.server, export.camera_id, export.start)
    retention = (
        Retention(export.retention_mode, export.retain_until)
        if (export.retention_mode and export.retain_until)
        else None
    )
    recorded = [records.get(timeline_key), records.get(events_key)] if records else [None, None]
    if records and all(e is not None and e.derived_from == export.key for e in recorded):
        log.info("motion summaries of %s recorded by a committed run: reused", export.key)
        return [e for e in recorded if e is not None] + records.derived(export.key, "motion_snapshot")
    suffix = Path(export.key).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as local:
        for chunk in store.iter_bytes(export.key, export.version_id):
            local.write(chunk)
        local.flush()
        summary = analyze(
            local.name,
            mode=config.motion_mode,
            config=config.motion_for(export.server, export.camera_id),
            camera_id=export.camera_id,
            start=start,
            workers=workers,
            name=export.key,
            preroll=_preroll(store, previous, start) if previous is not None else None,
        )
        snapshots = (
            _store_snapshots(store, site, export, start, summary, local.name, retention, config.motion_snapshots)
            if config.motion_snapshots
            else []
        )
    for warning in summary.warnings:
        log.warning("%s: %s", export.key, warning)
    stored_timeline = store.put(
        timeline_key,
        parquet_bytes(summary.timeline_table()),
        content_type="application/vnd.apache.parquet",
        retention=retention,
        if_changed=True,
    )
    stored_events = store.put(
        events_key,
        parquet_bytes(summary.events_table()),
        content_type="application/vnd.apache.parquet",
        retention=retention,
        if_changed=True,
    )
    log.info(
        "%s: %d motion events (%s mode, %.0fx real time)",
        export.key,
        len(summary.events),
        summary.mode,
        summary.realtime_factor,
    )
    coverage = summary.coverage()["coverage"]
    summaries = [
        _entry(
            export,
            "motion_timeline",
            timeline_key,
            stored_timeline.version_id,
            stored_timeline.size,
            stored_timeline.sha256,
            retention,
            None,
        ),
        _entry(
            export,
            "motion_events",
            events_key,
            stored_events.version_id,
            stored_events.size,
            stored_events.sha256,
            retention,
            len(summary.events),
        ),
    ]
    return [e.model_copy(update={"coverage": coverage}) for e in summaries] + snapshots


def previous_chunks(
    exports: list[ManifestEntry], earlier: list[ManifestEntry] | None = None
) -> dict[str, ManifestEntry]:
    """Export key -> the same camera's export whose chunk ends where its chunk starts, from
    `exports` (a night's) and `earlier` (the night before's: its last chunk precedes this
    night's first)."""
    by_end = {(e.server, e.camera_id, e.end): e for e in [*(earlier or []), *exports] if e.kind == "export"}
    found = {}
    for export in exports:
        before = by_end.get((export.server, export.camera_id, export.start))
        if before is not None and before.key != export.key:
            found[export.key] = before
    return found


def night_before(store: ArchiveStore, verifier: Verifier, site: str, start: datetime) -> list[ManifestEntry]:
    """The exports the verified manifests of the site's night before `start` vouch for (its
    last chunks precede this night's first); any other manifest vouches for nothing."""
    return RecordIndex.of_day(store, site, start - timedelta(days=1), verifier).of_kind("export")


def _preroll(store: ArchiveStore, previous: ManifestEntry, start: datetime) -> bytes | None:
    """The last seconds of the previous chunk's recording, when it runs up to `start` (a
    camera that stopped recording before, or a chunk that overlaps this one, is not the same
    stream). Read by ranges of the recorded version. What is wrong with its content (not
    video, damaged, its version gone, more to read than the budget) costs only the pre-roll:
    logged, and the chunk starts cold. A store that fails (throttled, unreachable) fails the
    summary like its own download would, so it is retried: never a cold result in its place
    that a rerun would then reuse for good."""
    source = RangedObject(store, previous.key, previous.version_id, previous.size)
    try:
        length = (previous.end - (previous.recorded_start or previous.start)).total_seconds()
        tail = media.tail(source, PREROLL_S, size=previous.size, duration_s=length)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in GONE:
            raise
        log.warning("no pre-roll from %s (its recorded version is gone): the chunk starts cold", previous.key)
        return None
    except (VideoError, OSError) as exc:  # content (RangeBudgetExceeded is an OSError too)
        log.warning("no pre-roll from %s (%s): the chunk starts cold", previous.key, str(exc)[:200])
        return None
    if tail.ends_s is None:
        log.info("%s does not say where it ends: no pre-roll", previous.key)
        return None
    gap = (start - ((previous.recorded_start or previous.start) + timedelta(seconds=tail.ends_s))).total_seconds()
    if abs(gap) > CONTINUOUS_WITHIN_S:
        log.info("%s ends %.0f s from the next chunk's start: not one stream, no pre-roll", previous.key, gap)
        return None
    return tail.data


def _store_snapshots(
    store: ArchiveStore,
    site: str,
    export: ManifestEntry,
    start: datetime,
    summary: Any,
    local: str,
    retention: Retention | None,
    most: int,
) -> list[ManifestEntry]:
    """A JPEG of each of the export's `most` strongest events, beside the summaries (a busy
    camera has an event a minute: a day's export would otherwise store 1,440). A ps_zip's
    events get none."""
    from pipelines.video.decode import is_zip

    if is_zip(local):
        log.info("%s: a ps_zip export: no event snapshots", export.key)
        return []
    strongest = sorted(sorted(summary.events, key=lambda e: -e.peak)[:most], key=lambda e: e.start_s)
    entries = []
    for event, jpeg in zip(strongest, media.snapshots(local, strongest), strict=True):
        if jpeg is None:
            log.warning("%s: no snapshot of the event at %.1f s", export.key, event.start_s)
            continue
        at = start + timedelta(seconds=event.start_s)
        key = store_keys.motion_snapshot_key(site, export.server, export.camera_id, export.start, at)
        stored = store.put(key, jpeg, content_type="image/jpeg", retention=retention, if_changed=True)
        entries.append(
            _entry(export, "motion_snapshot", key, stored.version_id, stored.size, stored.sha256, retention, None)
        )
    return entries


def coverage_failures(entries: list[ManifestEntry]) -> list[ManifestFailure]:
    """A failure per motion summary that covers less than its whole recording."""
    return [
        ManifestFailure(
            server=e.server,
            camera_id=e.camera_id,
            start=e.start,
            end=e.end,
            error=f"the motion summary covers {100 * e.coverage:.1f}% of the recording (damaged or unreadable)",
            kind="motion-coverage",
        )
        for e in entries
        if e.kind == "motion_events" and e.coverage is not None and e.coverage < 1.0
    ]


def _entry(
    export: ManifestEntry,
    kind: str,
    key: str,
    version: str | None,
    size: int,
    sha: str,
    retention: Retention | None,
    events: int | None,
) -> ManifestEntry:
    return ManifestEntry(
        key=key,
        kind=kind,
        version_id=version,
        size=size,
        sha256=sha,
        server=export.server,
        camera_id=export.camera_id,
        camera_name=export.camera_name,
        start=export.start,
        end=export.end,
        recorded_start=export.recorded_start,
        source=export.source,
        retention_mode=retention.mode if retention else None,
        retain_until=retention.until if retention else None,
        derived_from=export.key,
        events=events,
    )


def motion_run_id(archive_run_id: str) -> str:
    return f"{archive_run_id}{store_keys.MOTION_SUFFIX}"


# How far back the motion DAG looks for nights without summaries, counted back from each
# site's newest night in the archive (not from today: the catch-up must not depend on the clock).
CATCH_UP_DAYS = 7


def unsummarised(store: ArchiveStore, sites: list[str], days: int = CATCH_UP_DAYS) -> list[str]:
    """Nightly manifest keys of the last `days` archived nights of each site that have no
    motion manifest beside them: the nights whose summaries a failed or missed motion run
    never wrote (issue 25: a failure costs what it touches, so the next run catches up).
    Keys only; whoever summarises them reads them verified."""
    found: list[str] = []
    for site in sites:
        keys = set(store.list_keys(f"manifests/site={store_keys.safe_part(site)}/"))
        nightly = sorted(
            k for k in keys if k.rsplit("/", 1)[-1].startswith("nightly-") and store_keys.MOTION_SUFFIX not in k
        )
        if not nightly:
            continue
        newest = datetime.fromisoformat(_date_of(nightly[-1]))
        for key in nightly:
            recent = newest - datetime.fromisoformat(_date_of(key)) < timedelta(days=days)
            if recent and key.removesuffix(".json") + f"{store_keys.MOTION_SUFFIX}.json" not in keys:
                found.append(key)
    return found


def _date_of(manifest_key: str) -> str:
    return next(part for part in manifest_key.split("/") if part.startswith("date=")).removeprefix("date=")


def event_count(entries: list[ManifestEntry]) -> dict[tuple[str, int], int]:
    """Motion events per (server, camera)."""
    counts: dict[tuple[str, int], int] = {}
    for entry in entries:
        if entry.kind == "motion_events":
            camera = (entry.server, entry.camera_id)
            counts[camera] = counts.get(camera, 0) + (entry.events or 0)
    return counts


def day_of(moment: datetime) -> str:
    return store_keys.day(moment)
