"""The whole nightly archival in one process (no Airflow): for the CLI and notebooks.

Same steps as the `ev_nightly_archive` + `ev_motion_summary` DAGs, run in sequence:
plan every server, run every `ExportJob` (failures recorded, not fatal), commit the
manifest, then summarise motion, publish the HTML report and commit the motion manifest
(which links the report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ev_ingest.client import ExacqError
from ev_ingest.store import (
    ArchiveStore,
    Manifest,
    ManifestEntry,
    ManifestFailure,
    NoFootage,
    RecorderEdge,
    RecordIndex,
    StoreError,
)
from pipelines import connections
from pipelines.analytics import report
from pipelines.compliance import signing_keys
from pipelines.config import PipelineConfig
from pipelines.nightly import export_job, horizon, motion_step, steps
from pipelines.nightly.export_job import ExportJob, JobResult
from pipelines.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class NightlyResult:
    manifest: Manifest
    motion_manifest: Manifest | None
    failures: list[ManifestFailure] = field(default_factory=list)


def run_nightly(
    config: PipelineConfig,
    store: ArchiveStore,
    site: str,
    start: datetime,
    end: datetime,
    *,
    summarize: bool = True,
    on_job: Callable[[ExportJob, JobResult | None], None] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> NightlyResult:
    """`progress`: a line per export and per motion summary on stderr, with an ETA."""
    site_cfg = config.site(site)
    run_id = steps.run_id_for(site, start)
    records = RecordIndex.of_day(store, site, start, signing_keys.verifier_for(config))
    jobs: list[ExportJob] = []
    results: list[JobResult] = []
    errors: dict[str, str] = {}
    plan_failures: list[ManifestFailure] = []
    no_footage: list[NoFootage] = []
    recorders: list[RecorderEdge] = []
    pending = 0
    for server in site_cfg.servers:
        try:
            client = connections.connect(server)
        except ExacqError as exc:
            plan_failures.append(_unplanned(site, server.name, start, end, exc))
            continue
        with client:
            try:
                planned = steps.plan(client, config, site, server.name, start, end)
            except (ExacqError, steps.ClockSkewError) as exc:  # that server's cameras, not the night
                plan_failures.append(_unplanned(site, server.name, start, end, exc))
                continue
            jobs += planned.jobs
            pending += planned.pending
            plan_failures += planned.failures
            no_footage += planned.no_footage
            recorders += [planned.recorder] if planned.recorder else []
            shown = Progress(f"export {server.name}", len(planned.jobs)) if progress else None
            for job in planned.jobs:
                result = None
                try:
                    result = export_job.run(client, store, config, job, records)
                    results.append(result)
                except (ExacqError, StoreError, OSError) as exc:
                    log.error("export %s failed: %s", job.job_id, exc)
                    errors[job.job_id] = str(exc)
                if on_job:
                    on_job(job, result)
                if shown:
                    outcome = "FAILED" if result is None else f"{result.entry.size / 1e6:.1f} MB"
                    shown.step(f"camera {job.camera_id} {job.start_dt:%H:%M}-{job.end_dt:%H:%M}", outcome)
    entries, failures = steps.results_to_manifest(jobs, results, errors)
    failures = plan_failures + failures
    manifest = steps.commit_manifest(
        store, config, site, run_id, start, end, entries, failures, len(jobs), pending, no_footage, recorders
    )
    motion_manifest = None
    if summarize:
        summaries: list[ManifestEntry] = []
        shown = Progress("motion", len(manifest.exports())) if progress else None
        earlier = motion_step.night_before(store, signing_keys.verifier_for(config), site, start)
        before = motion_step.previous_chunks(manifest.exports(), earlier)
        for entry in manifest.exports():
            summaries.extend(
                motion_step.summarize_export(
                    store, config, site, entry, workers=workers, records=records, previous=before.get(entry.key)
                )
            )
            if shown:
                shown.step(f"camera {entry.camera_id} {entry.start:%H:%M}-{entry.end:%H:%M}")
        motion_run = motion_step.motion_run_id(run_id)
        lock = steps.record_lock(config, site, end, manifest.exports())
        recorder = horizon.at_night(store, signing_keys.verifier_for(config), config, site, start)
        summaries.append(report.publish(store, site, start, end, motion_run, lock, recorder))
        motion_manifest = steps.commit_manifest(
            store, config, site, motion_run, start, end, summaries, [], len(manifest.exports())
        )
    return NightlyResult(manifest, motion_manifest, manifest.failures)


def _unplanned(site: str, server: str, start: datetime, end: datetime, exc: Exception) -> ManifestFailure:
    """A server that is down, refuses us, answers nonsense or keeps a wrong clock costs its own
    cameras, never the site's night (issue 25): its failure is in the manifest and the other
    servers are archived."""
    log.error("%s/%s: not planned: %s", site, server, exc)
    return steps.plan_failure(server, start, end, f"planning failed: {exc}")
