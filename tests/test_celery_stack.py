"""`make stack`: the distributed mode, tested (issue 16). A CeleryExecutor deployment on
this machine, with Debian's PostgreSQL (metadata and Celery results) and redis-server
(the broker) and two Celery workers, runs the same scheduled night as the LocalExecutor
test, then stops cleanly. Not part of `make test` (marker `stack`): `.ci/run` runs it
after the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ev_ingest.simulator.server import free_port
from tests.airflow_deployment import LocalPostgres, LocalRedis
from tests.test_scheduler import check_scheduled_nights, deployed

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.airflow]
BUCKET = "celery-night"


def test_a_scheduled_night_on_celery_with_two_workers(tmp_path, s3_server):
    postgres = LocalPostgres(free_port()).start()
    redis = LocalRedis(free_port()).start()
    try:
        celery = {
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url,
        }
        with deployed(
            tmp_path / "airflow", s3_server, BUCKET, 1, database_url=postgres.url, celery=celery, workers=2
        ) as (airflow, sim, days):
            check_scheduled_nights(airflow, sim, s3_server, BUCKET, days)
            ping = subprocess.run(
                [str(Path(sys.executable).parent / "celery"), "-b", redis.url, "inspect", "ping", "--timeout", "10"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert "w1" in ping.stdout and "w2" in ping.stdout, ping.stdout + ping.stderr  # both workers served
        stopped = {name: process.returncode for name, process in airflow.processes.items()}
        assert all(code is not None for code in stopped.values()), stopped  # everything stopped
    finally:
        redis.stop()
        postgres.stop()
