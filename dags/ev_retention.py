"""ev_retention: every day, legal holds from exacqVision cases and bookmarks, the retention
policy applied to every manifest entry, and the audit (which fails the run on findings).

The audit re-hashes a rotating sample (every object within `retention.rehash_days`) and
checks the previous run's checkpoint (`retention.checkpoint_file`) before keeping its own.
The audit runs whatever happened before it (`all_done`): a failed hold sync or policy
step must never mean no audit. Its signed record is stored even when it finds problems."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task
from ev_tasks import DEFAULT_ARGS, client_for, load, store_for


@dag(
    dag_id="ev_retention",
    schedule=CronDataIntervalTimetable("30 4 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ev-ingest", "compliance"],
    doc_md=__doc__,
)
def ev_retention() -> None:
    @task(multiple_outputs=False)
    def legal_holds() -> dict[str, Any]:
        from pipelines.compliance import case_holds, records

        config = load()
        store = store_for(config)
        result, gaps = {}, []
        for site in config.sites:
            names = [server.name for server in site.servers]
            listings = case_holds.list_site(names, lambda name, site=site.name: client_for(site, name, config))
            synced = case_holds.sync_legal_holds(listings, store, site.name, records.audit_log(store, config), names)
            result[site.name] = synced.as_json()
            gaps += [f"{site.name}/{gap.server}: {gap.detail}" for gap in synced.gaps]
        if gaps:  # every hold that could be placed was: the run fails for what may be missed
            raise RuntimeError(f"legal holds may miss video: {'; '.join(gaps)}")
        return result

    @task(multiple_outputs=False, trigger_rule="all_done")
    def apply_policy() -> dict[str, int]:
        from pipelines.compliance import policy, records

        config = load()
        store = store_for(config)
        return policy.apply_policy(store, config.retention, None, records.audit_log(store, config))

    @task(multiple_outputs=False, trigger_rule="all_done", retries=0)
    def audit() -> dict[str, Any]:
        from pipelines.compliance import audit_checkpoint, auditor, records

        config = load()
        store = store_for(config)
        # The checkpoint is kept outside the bucket: in the file the config names (checked by
        # the next run) and in this task's XCom (the Airflow metadata database).
        path = config.retention.checkpoint_file
        earlier = audit_checkpoint.load_checkpoint(path) if path is not None and path.exists() else None
        report = auditor.audit(store, config, None, audit_log=records.audit_log(store, config), checkpoint=earlier)
        audit_checkpoint.keep_checkpoint(report, path)
        if not report.ok:
            raise RuntimeError(f"audit found {len(report.findings)} problems; see {report.audit_key}")
        return {"checked": report.checked, "audit_key": report.audit_key, "checkpoint": report.checkpoint}

    legal_holds() >> apply_policy() >> audit()


ev_retention()
