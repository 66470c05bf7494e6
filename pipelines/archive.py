"""The nightly archival steps: plan, export into the store, write the manifest.

Plain functions with plain arguments (a client, a store, dicts and datetimes), keyed on
the data interval and idempotent: an export's S3 key is a function of (site, camera,
chunk), a key already holding a complete object is skipped, and a rerun of the same
interval writes nothing new. Airflow DAGs, the CLI (`ev-ingest archive`) and notebooks
call the same functions.

What travels between steps (Airflow XCom) is small JSON: `Chunk` and `ManifestEntry`
dicts, never video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ev_ingest import clock
from ev_ingest.client import ClientSettings, DownloadError, DownloadResult, ExacqClient
from ev_ingest.client._base import DownloadTracker
from ev_ingest.store import ArchiveStore, Manifest, ManifestEntry, ManifestFailure, Retention, StoreSettings
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import SourceServer, read_manifest, write_manifest
from pipelines.config import PipelineConfig, ServerConfig

log = logging.getLogger(__name__)
EXTENSIONS = {"mp4": "mp4", "ps_zip": "zip"}
CONTENT_TYPES = {"mp4": "video/mp4", "ps_zip": "application/zip"}


@dataclass(frozen=True)
class Chunk:
    """One export to make: a camera over one chunk of the interval that holds recordings."""

    site: str
    server: str
    camera_id: int
    camera_name: str
    start: str  # ISO 8601 UTC: the chunk's grid bounds (they name the S3 key)
    end: str
    recorded_start: str  # first recorded moment in the chunk (the export file's t = 0)
    recorded_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def start_dt(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromisoformat(self.end)


def connect(server: ServerConfig, **options: Any) -> ExacqClient:
    """A client for a configured server, outside Airflow: the password comes from the environment."""
    if not server.url:
        raise ValueError(f"server {server.name!r} has no url (in Airflow it uses its connection instead)")
    password = os.environ.get(server.password_env)
    settings = ClientSettings.from_url(
        server.url,
        username=server.username,
        password=password,
        max_concurrency=server.max_concurrent_exports + 2,
        **options,
    )
    return ExacqClient(settings=settings)


def open_store(config: PipelineConfig, **overrides: Any) -> ArchiveStore:
    settings = StoreSettings.from_env(
        bucket=config.store.bucket, endpoint_url=config.store.endpoint_url, region=config.store.region, **overrides
    )
    return ArchiveStore(settings)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def plan(
    client: ExacqClient, config: PipelineConfig, site: str, server: str, start: datetime, end: datetime
) -> list[Chunk]:
    """Recorded spans of every wanted camera in [start, end), cut on a fixed chunk grid.

    One metadata search covers all cameras; a chunk is planned only where something was
    recorded. The grid (not the recordings) names the keys, so reruns plan the same keys.
    """
    server_cfg = config.server(site, server)
    cameras = [c for c in client.cameras.list() if server_cfg.wants(c.id)]
    check_clock(client, config, server, end)
    if not cameras:
        return []
    found = client.search.metadata([c.id for c in cameras], start, end)
    step = timedelta(minutes=config.export.chunk_minutes)
    chunks = []
    for camera in cameras:
        clips = found.clips(camera.id)
        cursor = start
        while cursor < end:
            chunk_end = min(cursor + step, end)
            inside = [
                (max(c.start, cursor), min(c.end, chunk_end)) for c in clips if c.end > cursor and c.start < chunk_end
            ]
            if inside:
                chunks.append(
                    Chunk(
                        site,
                        server,
                        camera.id,
                        camera.name,
                        _iso(cursor),
                        _iso(chunk_end),
                        _iso(inside[0][0]),
                        sum((b - a).total_seconds() for a, b in inside),
                    )
                )
            cursor = chunk_end
    log.info("planned %d exports for %s/%s over %s .. %s", len(chunks), site, server, start, end)
    return chunks


class ClockSkewError(ValueError):
    """The recording server's clock is so far off that the interval is not over on it yet."""


def check_clock(client: ExacqClient, config: PipelineConfig, server: str, end: datetime) -> None:
    """A recorder labels video with its own clock. Within `max_clock_skew_s` nothing is said;
    beyond it a warning (exports are cut in server time); and when the interval has not yet
    ended on the server's clock, an error: archiving now would silently miss its last part."""
    skew = client.clock_skew
    if skew is None or abs(skew.total_seconds()) <= config.export.max_clock_skew_s:
        return
    server_now = clock.now() + skew
    direction = "ahead of" if skew > timedelta(0) else "behind"
    minutes = round(abs(skew.total_seconds()) / 60)  # the Date header has 1 s resolution
    said = f"server {server!r}: its clock is {minutes // 60} h {minutes % 60:02d} min {direction} this worker's"
    if server_now < end:
        raise ClockSkewError(
            f"{said}; the interval ends at {end:%Y-%m-%d %H:%M} UTC but the server's clock says "
            f"{server_now:%Y-%m-%d %H:%M}, so its recordings of the interval are not complete. "
            "Fix the server's time (NTP) or archive this interval later."
        )
    log.warning("%s; exports are cut by the server's clock (check its NTP)", said)


def _verified(chunks: Iterator[bytes], tracker: DownloadTracker, result: list[DownloadResult]) -> Iterator[bytes]:
    """Pass the download through; at its end, check its length before the store commits it.

    `tracker.finish()` raises DownloadError on a short body, inside the store's read: the
    store then aborts the upload. The verified result is handed back through `result`.
    """
    yield from chunks
    result.append(tracker.finish())


def export_to_store(
    client: ExacqClient, store: ArchiveStore, config: PipelineConfig, chunk: Chunk, *, export_id: str | None = None
) -> ManifestEntry:
    """Export one chunk and stream it into the store (skipped when already archived).

    With `export_id` the export was created (and waited for) elsewhere, e.g. by a
    deferrable trigger; the export is always finished, also on failure.
    """
    fmt = config.export.format
    key = store_keys.export_key(chunk.site, chunk.camera_id, chunk.start_dt, chunk.end_dt, EXTENSIONS[fmt])
    retention = retention_for(config, chunk.site, chunk.camera_id, chunk.end_dt)
    existing = store.head(key)
    if existing is not None and existing.sha256:
        log.info("%s already archived (sha256 %s): skipped", key, existing.sha256)
        if export_id:
            client.exports.finish(export_id)
        return _entry(
            chunk,
            key,
            existing.version_id,
            existing.size,
            existing.sha256,
            fmt,
            client,
            existing.retention or retention,
            existing.legal_hold,
        )
    if export_id is None:
        export_id = client.exports.create(
            chunk.camera_id,
            chunk.start_dt,
            chunk.end_dt,
            format=fmt,
            name=f"{chunk.camera_id}_{store_keys.stamp(chunk.start_dt)}",
        )
        wait = True
    else:
        wait = False
    try:
        if wait:
            client.exports.wait(
                export_id, timeout=config.export.wait_timeout_s, poll_interval=config.export.poll_interval_s
            )
        tracker = DownloadTracker(export_id)
        downloaded: list[DownloadResult] = []
        stored = store.put(
            key,
            _verified(client.exports.iter_download(export_id, tracker), tracker, downloaded),
            content_type=CONTENT_TYPES[fmt],
            retention=retention,
        )
    finally:
        try:
            client.exports.finish(export_id)
        except Exception as exc:  # the server frees idle exports itself after 15 minutes
            log.warning("could not finish export %s: %s", export_id, exc)
    if downloaded[0].sha256 != stored.sha256:
        raise DownloadError(f"{key}: the stored bytes differ from the downloaded bytes")
    log.info("archived %s (%d bytes, sha256 %s)", key, stored.size, stored.sha256)
    return _entry(chunk, key, stored.version_id, stored.size, stored.sha256, fmt, client, retention, False)


def retention_for(config: PipelineConfig, site: str, camera_id: int | None, recorded_end: datetime) -> Retention | None:
    """The lock an object needs; None once its policy's retention has already run out
    (archiving old video: S3 refuses a retain-until date in the past)."""
    mode, until = config.retention.until(site, camera_id, recorded_end)
    return Retention(mode, until) if until > clock.now() + timedelta(minutes=1) else None


def _entry(
    chunk: Chunk,
    key: str,
    version: str | None,
    size: int,
    sha: str,
    fmt: str,
    client: ExacqClient,
    retention: Retention | None,
    held: bool,
) -> ManifestEntry:
    info = client.login_info
    return ManifestEntry(
        key=key,
        kind="export",
        version_id=version,
        size=size,
        sha256=sha,
        camera_id=chunk.camera_id,
        camera_name=chunk.camera_name,
        start=chunk.start_dt,
        end=chunk.end_dt,
        recorded_start=datetime.fromisoformat(chunk.recorded_start),
        export_format=fmt,
        source=SourceServer(
            name=chunk.server, serial=info.serial if info else None, version=info.version if info else None
        ),
        retention_mode=retention.mode if retention else None,
        retain_until=retention.until if retention else None,
        legal_hold=held,
    )


def commit_manifest(
    store: ArchiveStore,
    config: PipelineConfig,
    site: str,
    run_id: str,
    start: datetime,
    end: datetime,
    entries: list[ManifestEntry | dict[str, Any]],
    failures: list[ManifestFailure | dict[str, Any]],
    planned: int,
) -> Manifest:
    """Write the run's manifest last: the record that these objects are archived."""
    manifest = Manifest(
        run_id=run_id,
        site=site,
        interval_start=start,
        interval_end=end,
        planned=planned,
        entries=[e if isinstance(e, ManifestEntry) else ManifestEntry.model_validate(e) for e in entries],
        failures=[f if isinstance(f, ManifestFailure) else ManifestFailure.model_validate(f) for f in failures],
    )
    if store.head(manifest.key) is not None:
        previous = read_manifest(store, manifest.key)
        if previous.same_content(manifest):
            log.info("manifest %s unchanged: not rewritten", manifest.key)
            return previous
    write_manifest(store, manifest, retention_for(config, site, None, end))
    log.info("manifest %s: %d objects, %d failures", manifest.key, len(manifest.entries), len(manifest.failures))
    return manifest


def run_id_for(site: str, start: datetime) -> str:
    """Deterministic per site and interval: a rerun overwrites (as a new version) the same manifest key."""
    return f"nightly-{store_keys.stamp(start)}"
