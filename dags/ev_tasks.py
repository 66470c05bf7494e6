"""Task helpers shared by the ev-ingest DAGs: configuration, the data interval, and the
deferrable export operator. Orchestration glue only: the work is in `pipelines`.

No DAG is defined here. Heavy imports (boto3, av, pipelines) happen inside functions,
never at import time, so the DAG processor parses the DAG files fast.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowException

DEFAULT_ARGS = {
    "owner": "ev-ingest",
    # Environment, not I/O: lets tests and demos run failures without minutes of real backoff.
    "retries": int(os.environ.get("EV_TASK_RETRIES", "3")),
    "retry_delay": timedelta(seconds=float(os.environ.get("EV_RETRY_DELAY_S", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
NIGHTLY_MANIFEST = Asset("ev_nightly_manifest")  # emitted by ev_nightly_archive, consumed by ev_motion_summary
EXPORT_POOL = "exacqvision_exports"  # bounds concurrent exports against the recording server(s)


def conn_id_for(server: Any) -> str:
    return server.airflow_conn_id or f"exacqvision_{server.name}"


def load() -> Any:
    from pipelines.config import load_config

    return load_config()


def store_for(config: Any) -> Any:
    from pipelines.archive import open_store

    store = open_store(config)
    store.ensure_bucket()
    return store


def day_interval(context: Any, site_cfg: Any) -> tuple[datetime, datetime]:
    """The site's previous local day, from the run's data interval, or the `date` param (YYYY-MM-DD).

    Manual and asset-triggered runs have no data interval: they fall back on `run_after`.
    """
    wanted = (context.get("params") or {}).get("date")
    if wanted:
        noon_next_day = datetime.strptime(wanted, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1, hours=12)
        return site_cfg.previous_day(noon_next_day)
    reference = context.get("data_interval_end") or context["dag_run"].run_after
    return site_cfg.previous_day(reference)


def client_for(site: str, server: str, config: Any) -> Any:
    from ev_ingest.airflow.hooks import ExacqVisionHook

    return ExacqVisionHook(conn_id_for(config.server(site, server))).get_conn()


class ExportToStoreOperator(BaseOperator):
    """Run one `ExportJob` (pipelines.export_job): start it, defer while the recording server
    builds the export, then finish it into the store. Returns a `JobResult` dict.

    The export id never reaches XCom or the trigger's arguments in the clear beyond what
    Airflow's deferral needs: it is a capability on exacqVision (see the trigger)."""

    template_fields = ("job",)
    ui_color = "#d6eaf8"

    def __init__(self, *, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    def execute(self, context: Any) -> dict[str, Any] | None:
        from ev_ingest.airflow.hooks import ExacqVisionHook
        from ev_ingest.airflow.triggers import ExportProgressTrigger
        from ev_ingest.store import RecordIndex
        from pipelines import export_job

        config = load()
        store = store_for(config)
        job = export_job.ExportJob.from_dict(self.job)
        interval_start = datetime.fromisoformat(self.job_interval_start(context, config, job))
        records = RecordIndex.of_day(store, job.site, interval_start)
        hook = ExacqVisionHook(conn_id_for(config.server(job.site, job.server)))
        with hook.get_conn() as client:
            started = export_job.start(client, store, job, records)
        if isinstance(started, export_job.JobResult):
            return started.as_dict()
        settings = hook.settings()
        self.defer(
            trigger=ExportProgressTrigger(
                settings.base_url,
                started,
                tls_verify=settings.tls_verify,
                ca_file=str(settings.ca_file) if settings.ca_file else None,
                api_prefix=settings.api_prefix,
                poll_interval=config.export.poll_interval_s,
                timeout=config.export.wait_timeout_s,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=config.export.wait_timeout_s + 60),
        )
        return None

    @staticmethod
    def job_interval_start(context: Any, config: Any, job: Any) -> str:
        """The run's interval start (its manifest's date): what committed records are read from."""
        start, _ = day_interval(context, config.site(job.site))
        return start.isoformat()

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from ev_ingest.airflow.triggers import ExportProgressEvent
        from pipelines import export_job

        outcome = ExportProgressEvent.model_validate(event)
        config = load()
        job = export_job.ExportJob.from_dict(self.job)
        with client_for(job.site, job.server, config) as client:
            if outcome.status != "complete":
                export_job.free(client, outcome.export_id)
                raise AirflowException(f"export of {job.job_id}: {outcome.status}: {outcome.message}")
            result = export_job.finish(client, store_for(config), config, job, outcome.export_id)
        return result.as_dict()
