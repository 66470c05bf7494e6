"""ev_thumbnails: every hour, a thumbnail search per camera over the previous hour.

Thumbnails and each camera's daily contact sheet land in the archive store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task
from ev_tasks import DEFAULT_ARGS, client_for, load, store_for


@dag(
    dag_id="ev_thumbnails",
    schedule=CronDataIntervalTimetable("5 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ev-ingest", "thumbnails"],
    doc_md=__doc__,
)
def ev_thumbnails() -> None:
    @task(multiple_outputs=False)
    def cameras() -> list[dict[str, Any]]:
        config = load()
        found = []
        for site in config.sites:
            for server in site.servers:
                with client_for(site.name, server.name, config) as client:
                    found += [
                        {"site": site.name, "server": server.name, "camera_id": c.id, "camera_name": c.name}
                        for c in client.cameras.list()
                        if server.wants(c.id)
                    ]
        return found

    @task(multiple_outputs=False)
    def thumbnails(camera: dict[str, Any], **context: Any) -> int:
        from pipelines.nightly.thumbnails import thumbnails_to_store

        config = load()
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None or end <= start:  # manual runs: the last whole hour
            end = context["dag_run"].run_after.replace(minute=0, second=0, microsecond=0)
            start = end - timedelta(hours=1)
        with client_for(camera["site"], camera["server"], config) as client:
            return len(
                thumbnails_to_store(
                    client,
                    store_for(config),
                    config,
                    camera["site"],
                    camera["server"],
                    camera["camera_id"],
                    camera["camera_name"],
                    start,
                    end,
                )
            )

    thumbnails.expand(camera=cameras())


ev_thumbnails()
