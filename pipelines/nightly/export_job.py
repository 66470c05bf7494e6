"""The one export step: an `ExportJob` (site, server, camera, interval) into the archive.

Two phases, driven the same way by every caller:

- `start()` decides: the key is archived when a committed manifest vouches for it (that
  key, at that version, still held at that size), otherwise a new export is created on
  the recording server and its id returned.
- `finish()` downloads the export (to a spool file: its SHA-256 and length are known and
  verified before anything is written), always frees it on the server, and stores the
  bytes with their hash declared at creation; the store's own checksum is then compared
  with what the server sent. An object found at the key that no committed run wrote is
  re-hashed: identical bytes are recorded as they are (nothing new written), different
  bytes are a finding (`JobResult.finding`), and the server's bytes are stored beside them
  as a new version. Nothing is ever skipped on an object's tag or metadata.

The Airflow operator drives the phases around its deferral (`dags/ev_tasks.py`); the
in-process runner (`run()`: CLI, notebooks, benchmarks) around a synchronous wait.
Results travel as `JobResult.as_dict()` and are matched to their job by `job_id`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from ev_ingest.client import DownloadResult, ExacqClient, ExportError
from ev_ingest.store import ArchiveStore, ManifestEntry, RecordIndex, Retention, StoredObject
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import SourceServer
from pipelines.config import PipelineConfig

log = logging.getLogger(__name__)
EXTENSIONS = {"mp4": "mp4", "ps_zip": "zip"}
CONTENT_TYPES = {"mp4": "video/mp4", "ps_zip": "application/zip"}
# An export may hold a little less than the clips the server listed (it starts and stops on
# whole frames, and a clip's listed end is rounded): this much is not "short".
SHORT_TOLERANCE_S = 2.0
SHORT_TOLERANCE = 0.01  # and this share of what was recorded, for long chunks
SHORT = "short export"  # how the error of a short export begins (its failure's kind is "short")


class ShortExportError(ExportError):
    """The server's export holds less video than it said it recorded for the chunk."""


@dataclass(frozen=True)
class ExportJob:
    """One export to make: a camera of one server over one chunk of the interval."""

    site: str
    server: str
    camera_id: int
    camera_name: str
    start: str  # ISO 8601 UTC: the chunk's grid bounds (they name the S3 key)
    end: str
    recorded_start: str  # first recorded moment in the chunk (the export file's t = 0)
    recorded_seconds: float
    format: str = "mp4"

    @property
    def job_id(self) -> str:
        """Unique within a site's run: what results are matched by."""
        return f"{self.server}/{self.camera_id}/{store_keys.stamp(self.start_dt)}_{store_keys.stamp(self.end_dt)}"

    @property
    def key(self) -> str:
        return store_keys.export_key(
            self.site, self.server, self.camera_id, self.start_dt, self.end_dt, EXTENSIONS[self.format]
        )

    @property
    def start_dt(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromisoformat(self.end)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportJob:
        return cls(**data)


@dataclass(frozen=True)
class JobResult:
    job_id: str
    entry: ManifestEntry
    finding: str | None = None  # the key held bytes no committed run wrote, and they differ

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "entry": self.entry.model_dump(mode="json"), "finding": self.finding}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        return cls(data["job_id"], ManifestEntry.model_validate(data["entry"]), data.get("finding"))


def start(client: ExacqClient, store: ArchiveStore, job: ExportJob, records: RecordIndex) -> JobResult | str:
    """The job's result when a committed manifest vouches for its key; else a new export's id."""
    vouched = records.get(job.key)
    if vouched is not None:
        held = store.head(job.key, vouched.version_id)
        if held is not None and held.size == vouched.size:
            log.info("%s: archived by a committed run (version %s): skipped", job.key, vouched.version_id)
            return JobResult(job.job_id, vouched)
        log.error(
            "%s: a committed manifest records version %s, which the store no longer holds", job.key, vouched.version_id
        )
    export_id = client.exports.create(
        job.camera_id,
        job.start_dt,
        job.end_dt,
        format=job.format,
        name=f"{job.camera_id}_{store_keys.stamp(job.start_dt)}",
    )
    return export_id


def finish(
    client: ExacqClient, store: ArchiveStore, config: PipelineConfig, job: ExportJob, export_id: str
) -> JobResult:
    """Download the finished export, free it on the server (always), and store it."""
    with tempfile.TemporaryFile(prefix="ev-export-", dir=config.export.spool_dir) as spool:
        try:
            sent = client.exports.download(export_id, spool)
        finally:
            free(client, export_id)
        check_covers(job, spool)
        return _store(client, store, config, job, spool, sent)


def check_covers(job: ExportJob, spool: IO[bytes]) -> None:
    """A ShortExportError unless the exported file holds the video the server listed as
    recorded for the chunk (`job.recorded_seconds`, within the tolerance). Never stored, so
    never locked as complete: the chunk is a failure the next run exports again.

    Only MP4 is measured: a `ps_zip` archive holds the vendor's own container."""
    if job.format != "mp4":
        return
    from pipelines.video.decode import VideoError
    from pipelines.video.probe import video_seconds

    try:
        held = video_seconds(spool)
    except VideoError as exc:
        raise ShortExportError(f"{SHORT}: {job.job_id}: the export is not a readable video ({exc})") from None
    wanted = job.recorded_seconds - max(SHORT_TOLERANCE_S, SHORT_TOLERANCE * job.recorded_seconds)
    if held < wanted:
        raise ShortExportError(
            f"{SHORT}: {job.job_id}: the export holds {held:.1f} s of video, the server recorded "
            f"{job.recorded_seconds:.1f} s in the chunk; not archived, the next run exports it again"
        )


def run(
    client: ExacqClient, store: ArchiveStore, config: PipelineConfig, job: ExportJob, records: RecordIndex
) -> JobResult:
    """Both phases in this process, with a synchronous wait between them."""
    started = start(client, store, job, records)
    if isinstance(started, JobResult):
        return started
    try:
        client.exports.wait(started, timeout=config.export.wait_timeout_s, poll_interval=config.export.poll_interval_s)
    except BaseException:
        free(client, started)
        raise
    return finish(client, store, config, job, started)


def free(client: ExacqClient, export_id: str) -> None:
    """Finish the export on the server; best effort (the server frees idle exports itself)."""
    try:
        client.exports.finish(export_id)
    except Exception as exc:
        log.warning("could not finish an export on the server: %s", type(exc).__name__)


def _store(
    client: ExacqClient,
    store: ArchiveStore,
    config: PipelineConfig,
    job: ExportJob,
    spool: IO[bytes],
    sent: DownloadResult,
) -> JobResult:
    lock = config.retention.lock(job.site, job.server, job.camera_id, job.end_dt)
    finding = None
    held = store.head(job.key)
    if held is not None:
        # start() found no committed record of this key: a run that stored it and died before
        # its manifest, or something planted. Only the bytes decide, never the tag.
        if held.size == sent.size and store.verify(job.key, sent.sha256, held.version_id).ok:
            log.warning(
                "%s: uncommitted version %s holds exactly what the server sent: recorded", job.key, held.version_id
            )
            stored = StoredObject(job.key, held.version_id, held.size, sent.sha256, held.checksum_sha256)
            return JobResult(job.job_id, entry(client, job, stored, held.retention or lock, held.legal_hold))
        finding = (
            f"{job.key}: version {held.version_id} ({held.size} bytes) was not written by a committed run and is "
            f"not what server {job.server!r} serves for this interval; the server's bytes were stored as a new version"
        )
        log.error("%s", finding)
    spool.seek(0)
    stored = store.put(job.key, spool, sha256=sent.sha256, content_type=CONTENT_TYPES[job.format], retention=lock)
    log.info("archived %s (%d bytes, sha256 %s)", job.key, stored.size, stored.sha256)
    return JobResult(job.job_id, entry(client, job, stored, lock, False), finding)


def entry(
    client: ExacqClient, job: ExportJob, stored: StoredObject, retention: Retention | None, held: bool
) -> ManifestEntry:
    """The manifest entry of an export object."""
    info = client.login_info
    return ManifestEntry.of(
        stored,
        "export",
        server=job.server,
        camera_id=job.camera_id,
        start=job.start_dt,
        end=job.end_dt,
        retention=retention,
        camera_name=job.camera_name,
        recorded_start=datetime.fromisoformat(job.recorded_start),
        export_format=job.format,
        source=SourceServer(
            name=job.server, serial=info.serial if info else None, version=info.version if info else None
        ),
        legal_hold=held,
    )
