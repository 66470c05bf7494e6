"""ev_nightly_archive: every night, archive the previous local day of every configured camera.

plan (per server: the chunks that have ended on its clock -> `ExportJob`s) -> export
(mapped per job, deferrable wait, pool-bounded) -> commit (the manifest, written last;
results matched to jobs by job id; emits the Asset that triggers ev_motion_summary) ->
night_failures (fails the run when the manifest lists failures) and recorder_horizon (fails
it when footage still owed is within the margin of being overwritten by its recorder). A
failed export is retried with exponential backoff, then reported in the manifest; it never
blocks the other cameras, nor their motion summaries. A failed plan is recorded in the
manifest too.

Run one day by hand: `airflow dags test ev_nightly_archive -c '{"date": "2026-11-20"}'`.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task
from ev_tasks import (
    DEFAULT_ARGS,
    EXPORT_POOL,
    NIGHTLY_MANIFEST,
    ExportToStoreOperator,
    archive_window,
    client_for,
    day_interval,
    load,
    store_for,
)

SCHEDULE_TZ = os.environ.get("EV_SCHEDULE_TIMEZONE", "UTC")  # the sites' zone, for the 02:00 start
START, END, CATCHUP = archive_window(SCHEDULE_TZ)


@dag(
    dag_id="ev_nightly_archive",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=SCHEDULE_TZ),
    start_date=START,
    end_date=END,
    catchup=CATCHUP,
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
    def plan(target: dict[str, str], **context: Any) -> dict[str, Any]:
        from pipelines.nightly import steps

        config = load()
        start, end = day_interval(context, config.site(target["site"]))
        with client_for(target["site"], target["server"], config) as client:
            return steps.plan(client, config, target["site"], target["server"], start, end).as_dict()

    @task(trigger_rule="all_done", multiple_outputs=False)
    def jobs(plans: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Every planned job; a server whose plan failed contributes none (commit records it)."""
        return [job for one in plans if one for job in one["jobs"]]

    @task(trigger_rule="all_done", outlets=[NIGHTLY_MANIFEST], multiple_outputs=False)
    def commit(
        servers: list[dict[str, str]],
        plans: list[dict[str, Any] | None],
        exported: list[dict[str, Any] | None],
        **context: Any,
    ) -> dict[str, Any]:
        """Write each site's manifest: archived entries, chunks the server recorded nothing
        in, every planned job that failed, and every server whose plan failed (its exports
        were never even listed)."""
        from pipelines.nightly import steps
        from pipelines.nightly.export_job import JobResult

        config = load()
        store = store_for(config)
        planned = [steps.Plan.from_dict(p) for p in plans if p]
        results = [JobResult.from_dict(r) for r in exported if r]
        summary: dict[str, Any] = {}
        for site in _sites(context, config):
            start, end = day_interval(context, config.site(site))
            mine = [p for p in planned if p.site == site]
            site_jobs = [j for p in mine for j in p.jobs]
            entries, failures = steps.results_to_manifest(site_jobs, results)
            failures = [f for p in mine for f in p.failures] + failures
            unplanned = {t["server"] for t in servers if t["site"] == site} - {p.server for p in mine}
            failures += [steps.plan_failure(server, start, end) for server in sorted(unplanned)]
            manifest = steps.commit_manifest(
                store,
                config,
                site,
                steps.run_id_for(site, start),
                start,
                end,
                entries,
                failures,
                len(site_jobs),
                sum(p.pending for p in mine),
                [q for p in mine for q in p.no_footage],
                [p.recorder for p in mine if p.recorder],
            )
            summary[site] = {
                "manifest": manifest.key,
                "archived": len(entries),
                "failed": len(failures),
                "no_footage": len(manifest.no_footage),
            }
        context["outlet_events"][NIGHTLY_MANIFEST].extra = {"manifests": [s["manifest"] for s in summary.values()]}
        # Succeeds whenever the signed manifests were written, failures or not: Airflow emits
        # the asset event only from a successful task, and the motion summaries and report
        # must run for what *was* archived (issue 25). `night_failures` fails the run instead.
        return summary

    @task(retries=0, multiple_outputs=False)
    def night_failures(summary: dict[str, Any]) -> None:
        """Fails the run, visibly and through the `EV_ON_FAILURE` alert, when a committed
        manifest lists failures; a retry could not change a committed manifest, so none."""
        failed = {site: s for site, s in summary.items() if s["failed"]}
        if failed:
            detail = "; ".join(f"{site}: {s['failed']} failed, {s['archived']} archived" for site, s in failed.items())
            raise RuntimeError(f"the night has failures (listed in its manifest): {detail}")

    @task(retries=0, multiple_outputs=False)
    def recorder_horizon(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Fails the run, and so alerts through `EV_ON_FAILURE`, when footage the archive still
        owes (a failed export, a night no run archived) is within `horizon.margin_hours` of
        being overwritten by its recorder (pipelines.nightly.horizon); returns the owed nights."""
        from pipelines.compliance import signing_keys
        from pipelines.nightly import horizon

        config = load()
        store, owed, found = store_for(config), {}, []
        for site in summary:
            rows = horizon.horizon(store, signing_keys.verifier_for(config), config, site)
            owed[site] = horizon.owed_nights(rows)
            found += horizon.alerts(rows, config.horizon.margin_hours)
        if found:
            shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
            raise RuntimeError(
                f"footage is about to be overwritten by its recorder: {shown}. "
                "Archive the owed nights, oldest first: ev-ingest archive --catch-up"
            )
        return owed

    servers = targets()
    plans = plan.expand(target=servers)
    exported = ExportToStoreOperator.partial(task_id="export", pool=EXPORT_POOL).expand(job=jobs(plans))
    summary = commit(servers, plans, exported.output)
    night_failures(summary)
    recorder_horizon(summary)


def _sites(context: Any, config: Any) -> list[str]:
    wanted = context["params"].get("site")
    return [s.name for s in config.sites if wanted in (None, s.name)]


ev_nightly_archive()
