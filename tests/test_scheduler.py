"""The unattended nightly run under a real Airflow deployment (issue 16).

The api-server, scheduler, dag-processor and triggerer run as separate processes
(LocalExecutor, SQLite), beside the simulator (on the product clock) and SeaweedFS. Nothing
passes a date: the DAGs are unpaused as docs/deploy.md says, and the scheduler creates
the runs from the 02:00 schedule. `EV_ARCHIVE_START` and `EV_ARCHIVE_END` around the
last nights already due on the scheduler's clock make it catch up nights it "missed", as
after downtime, at any hour (`nights_due`; before 02:00 UTC the latest night is not due
yet, and a 02:00 passing during the test adds no run): each night is archived once, in order; each
run's export waits deferred in the triggerer; the pool (with deferred tasks counted)
bounds the exports open on the recording server; the Asset starts the motion summaries;
and every manifest matches the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from ev_ingest.simulator import SimulatorServer
from ev_ingest.simulator.server import free_port
from ev_ingest.store import ArchiveStore, StoreSettings, read_manifest
from ev_ingest.store.signing import MANIFEST, Verifier
from tests.airflow_deployment import Deployment
from tests.conftest import PASSWORD, ROOT, S3_SECRET, SIGNER, SIGNING_KEY, sim_config

pytestmark = [pytest.mark.slow, pytest.mark.airflow]
BUCKET = "scheduled-nights"
NIGHTS = 2


SCHEDULE_HOUR = 2  # the nightly DAG's cron, "0 2 * * *" in EV_SCHEDULE_TIMEZONE (UTC here)


def nights_due(now: datetime, nights: int) -> list[datetime]:
    """The latest `nights` UTC days whose nightly run (02:00 the next day) is due at `now`."""
    last = (now - timedelta(hours=SCHEDULE_HOUR)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [last - timedelta(days=n) for n in range(nights, 0, -1)]


@contextlib.contextmanager
def deployed(
    home, s3_server, bucket: str, nights: int, *, imperfect: bool = False, **deployment: Any
) -> Iterator[tuple[Deployment, Any, Any]]:
    """The simulator (on the product's clock), a config file, and an Airflow deployment whose
    nightly DAG catches up `nights` missed nights, all due already; the DAGs unpaused as
    docs/deploy.md says. Yields the deployment, the simulator and the nights.

    `imperfect`: a real site's night (issue 25): a third camera that recorded nothing, and
    a second recording server, `nvr2`, that is down; failure alerts go to `home/alerts`."""
    cameras = 3 if imperfect else 2
    sim = SimulatorServer(
        sim_config(cameras=cameras, idle_cameras=int(imperfect), width=160, height=120, fps=5, frozen_now=None)
    ).start()
    servers = [{"name": "nvr1"}, {"name": "nvr2"}] if imperfect else [{"name": "nvr1"}]
    config = {
        "sites": [{"name": "HQ", "timezone": "UTC", "servers": servers}],
        "export": {"format": "mp4", "chunk_minutes": 1440, "poll_interval_s": 0.2},
        "store": {"bucket": bucket, "endpoint_url": s3_server.endpoint_url},
        "retention": {"mode": "GOVERNANCE", "days": 30},
        "motion": {"target_width": 160},
        # What this test proves is the orchestration (schedule, deferral, pool, Asset hand-off),
        # not the detector (tests/test_motion.py, test_dags' hand-off): keyframe mode analyses
        # its two camera-days per night in a fraction of gated's time (issue 27).
        "motion_mode": "keyframe",
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "ev.yaml").write_text(yaml.safe_dump(config))
    host, port = sim.url.removeprefix("http://").split(":")
    # The scheduler decides what is due on the machine's clock (Airflow has no other), so the
    # nights are chosen on it; the simulator and the tasks run on the product's clock, which
    # is never behind it (EV_CLOCK_SHIFT_* only moves forward), so those nights are recorded.
    days = nights_due(datetime.now(UTC), nights)
    settings = {
        "EV_CONFIG": str(home / "ev.yaml"),
        "EV_SCHEDULE_TIMEZONE": "UTC",
        "EV_ARCHIVE_START": f"{days[0]:%Y-%m-%d}",
        "EV_ARCHIVE_END": f"{days[-1]:%Y-%m-%d}",
        "EV_TASK_RETRIES": "2",
        "EV_RETRY_DELAY_S": "2",
        "AIRFLOW_CONN_EXACQVISION_NVR1": json.dumps(
            {"conn_type": "exacqvision", "host": host, "port": int(port), "login": "admin", "password": PASSWORD}
        ),
        "AIRFLOW_CONN_EV_SIGNING": json.dumps({"conn_type": "generic", "password": SIGNING_KEY.read_text()}),
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }
    if imperfect:
        settings.update(
            {  # port 9 (discard): nothing listens, the server is down
                "AIRFLOW_CONN_EXACQVISION_NVR2": json.dumps(
                    {"conn_type": "exacqvision", "host": "127.0.0.1", "port": 9, "login": "admin", "password": "x"}
                ),
                "EV_ON_FAILURE": "tests.alert_sink:to_file",
                "EV_TEST_ALERTS": str(home / "alerts"),
                "PYTHONPATH": str(ROOT),  # for tests.alert_sink in the task processes
            }
        )
    airflow = Deployment(home, free_port(), settings, **deployment)
    try:
        airflow.start()
        # As docs/deploy.md: the pool counts deferred tasks, so a waiting export keeps its slot.
        airflow.cli("pools", "set", "exacqvision_exports", "1", "exports open on the recorders", "--include-deferred")
        airflow.wait_for(
            "the DAGs to be parsed",
            lambda: (
                {"ev_nightly_archive", "ev_motion_summary"} <= {r[0] for r in airflow.sql("SELECT dag_id FROM dag")}
            ),
            timeout=180,
        )
        airflow.cli("dags", "unpause", "ev_motion_summary")
        airflow.cli("dags", "unpause", "ev_nightly_archive")
        yield airflow, sim, days
    finally:
        airflow.stop()
        sim.stop()


def check_scheduled_nights(
    airflow: Deployment, sim: Any, s3_server: Any, bucket: str, days: list[datetime], *, imperfect: bool = False
) -> None:
    """Each night in `days` archived once by a scheduled run, its exports deferred, the pool
    bounding open exports at the recorder, the manifests matching the store, and the
    Asset-triggered motion summaries done. `imperfect` (see `deployed`): each run fails
    and alerts (nvr2 is down), and still the manifest accounts for every camera and the
    motion summaries and report are made for what was archived."""
    export_states: set[str] = set()

    def all_nights_done():
        export_states.update(
            r[0] for r in airflow.sql("SELECT state FROM task_instance WHERE task_id = 'export' AND state IS NOT NULL")
        )
        runs = airflow.sql(
            "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'ev_nightly_archive' ORDER BY data_interval_end"
        )
        return len(runs) >= len(days) and all(state in ("success", "failed") for _, _, state in runs) and runs

    assert days, "no night to wait for"
    runs = airflow.wait_for(f"{len(days)} scheduled nightly runs", all_nights_done, timeout=900)
    outcome = "failed" if imperfect else "success"
    assert [(kind, state) for _, kind, state in runs] == [("scheduled", outcome)] * len(days), runs
    assert "deferred" in export_states  # each export's wait ran in the triggerer, not a worker
    stats = httpx.get(sim.url + "/_sim/stats").json()
    # Pool of 1 slot, deferred tasks counted: one export open at a time, each created once.
    # The one exception is this Airflow's scheduler race (apache/airflow#67287): it reports a
    # running export task finished and retries it, while the first try's process still holds
    # its export; the retry may create its own. So an export may only ever be open beside
    # exports of the same job (the name says which job), never beside another job's, and a
    # job's export is created again only by a retry the database shows (try_number > 1).
    raced = airflow.sql("SELECT COALESCE(SUM(try_number - 1), 0) FROM task_instance WHERE task_id = 'export'")[0][0]
    foreign = [(name, open_) for name, open_ in stats["overlaps"] if any(other != name for other in open_)]
    assert not foreign, ("two jobs' exports open at once: the pool did not hold", foreign)
    names = stats["export_names"]
    assert len(set(names)) == 2 * len(days), names  # every job's export, no other
    assert len(names) - len(set(names)) <= raced, (names, raced)  # created again only by a retry
    assert stats["exports"] == 0  # every export finished on the recorder, also the raced ones
    print(f"\n{len(days)} nights, {len(names)} exports, peak {stats['peak_exports']} open, {raced} raced")

    store = ArchiveStore(
        StoreSettings(bucket=bucket, endpoint_url=s3_server.endpoint_url, access_key="ev-ingest", secret_key=S3_SECRET)
    )
    for day in days:  # each missed night once: its previous local day, whole
        key = f"manifests/site=HQ/date={day:%Y-%m-%d}/nightly-{day:%Y%m%dT%H%M%SZ}.json"
        manifest = read_manifest(store, key)
        assert manifest.complete and len(manifest.exports()) == 2
        failures = {(f.server, f.camera_id, f.kind) for f in manifest.failures}
        silent = {(q.server, q.camera_id, q.start, q.end) for q in manifest.no_footage}
        if imperfect:  # every camera accounted for: 2 archived, 1 recorded nothing, nvr2's all failed
            assert failures == {("nvr2", 0, "plan")}, manifest.failures
            assert silent == {("nvr1", 4593664, day, day + timedelta(days=1))}
        else:
            assert not failures and not silent
        # Signed with the key the tasks read from the ev_signing connection, chained in order.
        assert Verifier([SIGNER.public]).check(store.get_json(key), MANIFEST) is None and manifest.sequence
        assert len(store.versions(key)) == 1
        for entry in manifest.exports():
            assert entry.start == day and entry.end == day + timedelta(days=1)
            assert store.verify(entry.key, entry.sha256, entry.version_id).ok
            assert store.versions(entry.key) == [entry.version_id]  # a raced retry stored nothing twice

    def motion_done():
        rows = airflow.sql("SELECT state FROM dag_run WHERE dag_id = 'ev_motion_summary'")
        motion = [f"manifests/site=HQ/date={d:%Y-%m-%d}/nightly-{d:%Y%m%dT%H%M%SZ}-motion.json" for d in days]
        finished = rows and all(state in ("success", "failed") for (state,) in rows)
        return finished and all(store.head(k) is not None for k in motion) and rows

    rows = airflow.wait_for("the Asset-triggered motion summaries", motion_done, timeout=600)
    assert all(state == "success" for (state,) in rows)
    for day in days:  # the report of each night, for what was archived
        motion = read_manifest(store, f"manifests/site=HQ/date={day:%Y-%m-%d}/nightly-{day:%Y%m%dT%H%M%SZ}-motion.json")
        assert [e.kind for e in motion.entries].count("report") == 1
    if imperfect:  # the failure alert fired for each night's run, from night_failures
        alerts = (airflow.home / "alerts").read_text().splitlines()
        assert sorted(line.split()[-1] for line in alerts if "night_failures" in line) == ["night_failures"] * len(days)


def test_scheduled_nights_are_archived_once_each_deferred_and_pool_bounded(tmp_path, s3_server):
    """A real site's nights (issue 25): one server down and one camera that recorded
    nothing; the clean night is the Celery stack's test (tests/test_celery_stack.py)."""
    with deployed(tmp_path / "airflow", s3_server, BUCKET, NIGHTS, imperfect=True) as (airflow, sim, days):
        check_scheduled_nights(airflow, sim, s3_server, BUCKET, days, imperfect=True)
