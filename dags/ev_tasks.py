"""Task helpers shared by the ev-ingest DAGs: configuration, the data interval, and the
deferrable export operator. Orchestration glue only: the work is in `pipelines`.

No DAG is defined here. Heavy imports (boto3, av, pipelines) happen inside functions,
never at import time, so the DAG processor parses the DAG files fast.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException


def on_failure(context: Any) -> None:
    """The hook point for alerting: a task that failed (after its retries) calls the
    callable named by `EV_ON_FAILURE` ("package.module:function", given Airflow's
    context), e.g. a function that posts to the on-call channel. Without it, nothing more
    than Airflow's own failure record; a callback that cannot be loaded is logged, never
    raised (an alerting mistake must not hide the failure it reports)."""
    target = os.environ.get("EV_ON_FAILURE")
    if not target:
        return
    import importlib
    import logging

    try:
        module, _, name = target.partition(":")
        getattr(importlib.import_module(module), name)(context)
    except Exception as exc:
        logging.getLogger("ev_ingest.alerts").error("EV_ON_FAILURE=%s failed: %s", target, exc)


DEFAULT_ARGS = {
    "owner": "ev-ingest",
    # Environment, not I/O: lets tests and demos run failures without minutes of real backoff.
    "retries": int(os.environ.get("EV_TASK_RETRIES", "3")),
    "retry_delay": timedelta(seconds=float(os.environ.get("EV_RETRY_DELAY_S", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    # Every task has a deadline: a hung call never holds a worker slot forever. Exports
    # spend their wait deferred (the trigger has its own timeout); what runs in a worker
    # is planning, a download and an upload of one chunk, or one motion summary.
    "execution_timeout": timedelta(minutes=float(os.environ.get("EV_TASK_TIMEOUT_MIN", "120"))),
    "on_failure_callback": on_failure,
}


def archive_window(timezone: str = "UTC") -> tuple[datetime, datetime | None, bool]:
    """(start_date, end_date, catchup) of the nightly DAG. With `EV_ARCHIVE_START` (YYYY-MM-DD, the
    day ev-ingest was installed) the scheduler catches up every night missed since, e.g. after
    downtime, each night once (`max_active_runs=1`: in order). Without it, only the latest.
    `EV_ARCHIVE_END` (YYYY-MM-DD) is the last night to archive (a recorder taken out of service,
    a bounded backfill): no run is created for a later night."""
    start_text, end_text = os.environ.get("EV_ARCHIVE_START"), os.environ.get("EV_ARCHIVE_END")
    # The scheduler bounds a run by its interval's *start* (a night's interval starts at 02:00
    # local of that night), so local midnight after the last night admits it and no later one.
    end = None
    if end_text:
        last = _day("EV_ARCHIVE_END", end_text) + timedelta(days=1)
        end = last.replace(tzinfo=ZoneInfo(timezone))
    if not start_text:
        return datetime(2026, 1, 1, tzinfo=UTC), end, False
    start = _day("EV_ARCHIVE_START", start_text)
    if end is not None and end <= start:
        raise ValueError(f"EV_ARCHIVE_END={end_text} is before EV_ARCHIVE_START={start_text}")
    return start, end, True


def _day(name: str, text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a day as YYYY-MM-DD") from None


NIGHTLY_MANIFEST = Asset("ev_nightly_manifest")  # emitted by ev_nightly_archive, consumed by ev_motion_summary
EXPORT_POOL = "exacqvision_exports"  # bounds concurrent exports against the recording server(s)


def conn_id_for(server: Any) -> str:
    return server.airflow_conn_id or f"exacqvision_{server.name}"


SIGNING_CONN_ID = "ev_signing"  # its password: the Ed25519 PEM private key that signs records


def load() -> Any:
    """The configuration; and the signing key from the `ev_signing` connection (any secrets
    backend) when one is defined, held in this task's memory only (pipelines.compliance.signing_keys)."""
    from pipelines.compliance import signing_keys
    from pipelines.config import load_config

    config = load_config()
    signing_keys.use_key_pem(signing_pem())
    return config


def signing_pem() -> str | None:
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(SIGNING_CONN_ID)
    except AirflowNotFoundException:  # no such connection: the key comes from a file (config or env)
        return None
    return connection.password or None


def store_for(config: Any) -> Any:
    from pipelines.connections import open_store

    store = open_store(config)
    store.ensure_bucket()
    return store


def day_interval(context: Any, site_cfg: Any) -> tuple[datetime, datetime]:
    """The site's previous local day, from the run's data interval, or the `date` param (YYYY-MM-DD).

    Manual and asset-triggered runs have no data interval: they fall back on `run_after`.
    """
    wanted = (context.get("params") or {}).get("date")
    if wanted:
        return site_cfg.local_day(datetime.strptime(wanted, "%Y-%m-%d"))
    reference = context.get("data_interval_end") or context["dag_run"].run_after
    return site_cfg.previous_day(reference)


def client_for(site: str, server: str, config: Any) -> Any:
    from ev_ingest.airflow.hooks import ExacqVisionHook

    return ExacqVisionHook(conn_id_for(config.server(site, server))).get_conn()


class ExportToStoreOperator(BaseOperator):
    """Run one `ExportJob` (pipelines.nightly.export_job): start it, defer while the recording server
    builds the export, then finish it into the store. Returns a `JobResult` dict.

    A retry reuses what the last try started. Airflow can put a task up for retry while
    its export is being built (its scheduler race, apache/airflow#67287, seen under a real
    scheduler in tests/test_scheduler.py), and a new try used to create a second export
    and leave the first open on the recorder. So the started export's id is kept in an
    Airflow Variable named for the job (a `_token` name: Airflow masks its
    value, as the id is a capability) until the export is finished; the next try resumes
    waiting on it, or starts afresh when the recorder no longer has it."""

    template_fields = ("job",)
    ui_color = "#d6eaf8"

    def __init__(self, *, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    @staticmethod
    def started_key(job: Any) -> str:
        """Per job (site, server, camera, chunk), not per run: a rerun of the interval after a
        crash may resume an export that is still open on the recorder, for the same video."""
        return f"ev_export_token.{job.site}/{job.job_id}"

    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow.sdk import Variable

        from ev_ingest.airflow.hooks import ExacqVisionHook
        from ev_ingest.airflow.triggers import ExportProgressTrigger
        from ev_ingest.client import NotFoundError
        from ev_ingest.store import RecordIndex
        from pipelines.compliance import signing_keys
        from pipelines.nightly import export_job

        config = load()
        store = store_for(config)
        job = export_job.ExportJob.from_dict(self.job)
        interval_start, _ = day_interval(context, config.site(job.site))
        hook = ExacqVisionHook(conn_id_for(config.server(job.site, job.server)))
        key = self.started_key(job)
        started: str | export_job.JobResult | None = Variable.get(key, default=None)
        with hook.get_conn() as client:
            if started is not None:
                try:
                    client.exports.progress(started)
                    self.log.info("%s: resuming the export an earlier try started", job.job_id)
                except NotFoundError:
                    self.log.info("%s: the export an earlier try started is gone: starting again", job.job_id)
                    started = None
            if started is None:
                started = export_job.start(
                    client,
                    store,
                    job,
                    RecordIndex.of_day(store, job.site, interval_start, signing_keys.verifier_for(config)),
                )
                if isinstance(started, export_job.JobResult):
                    Variable.delete(key)
                    return started.as_dict()
                Variable.set(key, started, description="ev-ingest: an export in progress (removed when finished)")
        self.defer(
            trigger=ExportProgressTrigger(
                hook.exacqvision_conn_id,
                started,
                poll_interval=config.export.poll_interval_s,
                timeout=config.export.wait_timeout_s,
                first_poll_after=config.export.first_poll_s,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=config.export.wait_timeout_s + 60),
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk import Variable

        from ev_ingest.airflow.triggers import ExportProgressEvent
        from pipelines.nightly import export_job

        outcome = ExportProgressEvent.model_validate(event)
        config = load()
        job = export_job.ExportJob.from_dict(self.job)
        with client_for(job.site, job.server, config) as client:
            try:
                if outcome.status != "complete":
                    export_job.free(client, outcome.export_id)
                    raise AirflowException(f"export of {job.job_id}: {outcome.status}: {outcome.message}")
                result = export_job.finish(client, store_for(config), config, job, outcome.export_id)
            finally:
                Variable.delete(self.started_key(job))  # finished or freed: nothing to resume
        return result.as_dict()
