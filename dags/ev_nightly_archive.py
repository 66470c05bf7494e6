"""ev_nightly_archive: every night, archive the previous local day of every configured camera.

plan (per server: metadata search -> chunks) -> export (mapped per camera and chunk,
deferrable wait, pool-bounded) -> commit (the manifest, written last; emits the Asset
that triggers ev_motion_summary). A failed export is retried with exponential backoff,
then reported in the manifest; it never blocks the other cameras.

Run one day by hand: `airflow dags test ev_nightly_archive -c '{"date": "2026-11-20"}'`.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task
from ev_tasks import (
    DEFAULT_ARGS,
    EXPORT_POOL,
    NIGHTLY_MANIFEST,
    ExportToStoreOperator,
    client_for,
    day_interval,
    load,
    store_for,
)

SCHEDULE_TZ = os.environ.get("EV_SCHEDULE_TIMEZONE", "UTC")  # the sites' zone, for the 02:00 start


@dag(
    dag_id="ev_nightly_archive",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=SCHEDULE_TZ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "date": Param(None, type=["null", "string"], description="local day to archive, YYYY-MM-DD"),
        "site": Param(None, type=["null", "string"], description="site name (default: every site)"),
    },
    tags=["ev-ingest", "archive"],
    doc_md=__doc__,
)
def ev_nightly_archive() -> None:
    @task
    def targets(**context: Any) -> list[dict[str, str]]:
        """Every (site, server) to archive."""
        config = load()
        wanted = context["params"].get("site")
        return [
            {"site": site.name, "server": server.name}
            for site in config.sites
            if wanted in (None, site.name)
            for server in site.servers
        ]

    @task(multiple_outputs=False)
    def plan(target: dict[str, str], **context: Any) -> list[dict[str, Any]]:
        from pipelines import archive

        config = load()
        start, end = day_interval(context, config.site(target["site"]))
        with client_for(target["site"], target["server"], config) as client:
            return [c.as_dict() for c in archive.plan(client, config, target["site"], target["server"], start, end)]

    @task(multiple_outputs=False)
    def flatten(per_server: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [chunk for chunks in per_server for chunk in chunks]

    @task(trigger_rule="all_done", outlets=[NIGHTLY_MANIFEST], multiple_outputs=False)
    def commit(chunks: list[dict[str, Any]], exported: list[dict[str, Any] | None], **context: Any) -> dict[str, Any]:
        """Write each site's manifest: archived entries, and every planned chunk that failed."""
        from pipelines import archive

        config = load()
        store = store_for(config)
        done = {(e["camera_id"], datetime.fromisoformat(e["start"])): e for e in exported if e}
        summary: dict[str, Any] = {}
        for site in sorted({c["site"] for c in chunks} | set(_sites(context, config))):
            start, end = day_interval(context, config.site(site))
            planned = [c for c in chunks if c["site"] == site]
            entries = [
                done[key]
                for key in ((c["camera_id"], datetime.fromisoformat(c["start"])) for c in planned)
                if key in done
            ]
            failures = [
                {
                    "camera_id": c["camera_id"],
                    "start": c["start"],
                    "end": c["end"],
                    "error": "export failed after its retries (see the export task's log)",
                }
                for c in planned
                if (c["camera_id"], datetime.fromisoformat(c["start"])) not in done
            ]
            manifest = archive.commit_manifest(
                store, config, site, archive.run_id_for(site, start), start, end, entries, failures, len(planned)
            )
            summary[site] = {"manifest": manifest.key, "archived": len(entries), "failed": len(failures)}
        context["outlet_events"][NIGHTLY_MANIFEST].extra = {"manifests": [s["manifest"] for s in summary.values()]}
        if any(s["failed"] for s in summary.values()):
            # The manifest records the failures; the run is marked failed so operators see it.
            raise RuntimeError(f"some exports failed: {summary}")
        return summary

    planned = flatten(plan.expand(target=targets()))
    exported = ExportToStoreOperator.partial(task_id="export", pool=EXPORT_POOL).expand(chunk=planned)
    commit(planned, exported.output)


def _sites(context: Any, config: Any) -> list[str]:
    wanted = context["params"].get("site")
    return [s.name for s in config.sites if wanted in (None, s.name)]


ev_nightly_archive()
