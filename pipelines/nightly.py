"""The whole nightly archival in one process (no Airflow): for the CLI and notebooks.

Same steps as the `ev_nightly_archive` + `ev_motion_summary` DAGs, run in sequence:
plan every server, export every chunk into the store (failures recorded, not fatal),
commit the manifest, then summarise motion, publish the HTML report and commit the
motion manifest (which links the report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ev_ingest.client import ExacqError
from ev_ingest.store import ArchiveStore, Manifest, ManifestEntry, ManifestFailure, StoreError
from pipelines import archive, motion, report
from pipelines.config import PipelineConfig

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
    on_chunk: Callable[[archive.Chunk], None] | None = None,
    workers: int | None = None,
) -> NightlyResult:
    site_cfg = config.site(site)
    run_id = archive.run_id_for(site, start)
    entries: list[ManifestEntry] = []
    failures: list[ManifestFailure] = []
    planned = 0
    for server in site_cfg.servers:
        with archive.connect(server) as client:
            chunks = archive.plan(client, config, site, server.name, start, end)
            planned += len(chunks)
            for chunk in chunks:
                try:
                    entries.append(archive.export_to_store(client, store, config, chunk))
                except (ExacqError, StoreError, OSError) as exc:
                    log.error("export of camera %s %s..%s failed: %s", chunk.camera_id, chunk.start, chunk.end, exc)
                    failures.append(
                        ManifestFailure(
                            camera_id=chunk.camera_id, start=chunk.start_dt, end=chunk.end_dt, error=str(exc)
                        )
                    )
                if on_chunk:
                    on_chunk(chunk)
    manifest = archive.commit_manifest(store, config, site, run_id, start, end, entries, failures, planned)
    motion_manifest = None
    if summarize:
        summaries: list[ManifestEntry] = []
        for entry in manifest.exports():
            summaries.extend(motion.summarize_export(store, config, site, entry, workers=workers))
        motion_run = motion.motion_run_id(run_id)
        lock = archive.retention_for(config, site, None, end)
        summaries.append(report.publish(store, site, start, end, motion_run, lock))
        motion_manifest = archive.commit_manifest(
            store, config, site, motion_run, start, end, summaries, [], len(manifest.exports())
        )
    return NightlyResult(manifest, motion_manifest, failures)
