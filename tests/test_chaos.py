"""Chaos: the nightly archival through Airflow against a simulator that misbehaves.

Faults (seeded): 5% server errors, 2% connections reset mid-answer, 1% sessions expired
early, 5% slow answers, 1% truncated bodies. The run must end with every planned export
archived or explicitly reported as failed, every archived object byte-identical to the
same export fetched from a well-behaved server, no object outside a manifest, and a
rerun must complete what failed without duplicating anything.
"""

from __future__ import annotations

import hashlib
import json
import sys

import httpx
import pytest
import yaml

from ev_ingest.client import ExacqClient
from ev_ingest.store import ArchiveStore, StoreSettings, read_manifest
from tests.conftest import PASSWORD, ROOT, S3_SECRET, day, sim_config

pytestmark = [pytest.mark.chaos, pytest.mark.airflow, pytest.mark.slow]
DAY = day(-2)
BUCKET = "chaos-e2e"
FAULTS = "5xx=0.05,reset=0.02,expire=0.01,slow=0.05:200ms,truncate=0.01"
SITE = dict(cameras=2, width=160, height=120, fps=5, seed=5)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory, s3_server, airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    from ev_ingest.simulator import SimulatorServer

    mp = pytest.MonkeyPatch()
    faulty = SimulatorServer(sim_config(faults=FAULTS, **SITE)).start()
    folder = tmp_path_factory.mktemp("chaos")
    (folder / "ev.yaml").write_text(
        yaml.safe_dump(
            {
                "sites": [{"name": "HQ", "timezone": "UTC", "servers": [{"name": "nvr1"}]}],
                "export": {"format": "mp4", "chunk_minutes": 180, "poll_interval_s": 0.1, "first_poll_s": 0},
                "store": {"bucket": BUCKET, "endpoint_url": s3_server.endpoint_url},
                "retention": {"mode": "GOVERNANCE", "days": 30},
            }
        )
    )

    def point_at(server: SimulatorServer) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        mp.setenv(
            "AIRFLOW_CONN_EXACQVISION_NVR1",
            json.dumps(
                {"conn_type": "exacqvision", "host": host, "port": int(port), "login": "admin", "password": PASSWORD}
            ),
        )

    point_at(faulty)
    mp.setenv("EV_CONFIG", str(folder / "ev.yaml"))
    mp.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    # Real retries this time, with short delays: parse the DAGs again with them.
    mp.setenv("EV_TASK_RETRIES", "2")
    mp.setenv("EV_RETRY_DELAY_S", "0.5")
    sys.modules.pop("ev_tasks", None)
    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")
    run = bag.get_dag("ev_nightly_archive").test(run_conf={"date": DAY})
    stats = httpx.get(faulty.url + "/_sim/stats").json()
    yield {"run": run, "bag": bag, "faulty": faulty, "stats": stats, "point_at": point_at}
    faulty.stop()
    sys.modules.pop("ev_tasks", None)
    mp.undo()


def archive(s3_server) -> ArchiveStore:
    return ArchiveStore(
        StoreSettings(
            bucket=BUCKET, endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key, secret_key=S3_SECRET
        )
    )


def manifest_key() -> str:
    return f"manifests/site=HQ/date={DAY}/nightly-{DAY.replace('-', '')}T000000Z.json"


def test_chaos_run_accounts_for_every_export_and_loses_nothing(chaos, s3_server):
    from ev_ingest.simulator import SimulatorServer

    store = archive(s3_server)
    manifest = read_manifest(store, manifest_key())
    exports = manifest.exports()
    assert manifest.planned == 16 and len(exports) + len(manifest.failures) == manifest.planned  # 2 cams x 8
    stats = chaos["stats"]
    assert sum(stats["faults"].values()) > 0  # the faults did happen
    clean = SimulatorServer(sim_config(**SITE)).start()
    try:
        with ExacqClient(clean.url, "admin", PASSWORD) as ev:
            verified = 0
            for entry in exports:
                export_id = ev.exports.create(entry.camera_id, entry.start, entry.end)
                ev.exports.wait(export_id, poll_interval=0.05)
                reference = hashlib.sha256()
                for chunk in ev.exports.iter_download(export_id):
                    reference.update(chunk)
                assert reference.hexdigest() == entry.sha256 == store.verify(entry.key, entry.sha256).actual
                verified += 1
    finally:
        clean.stop()
    listed = {e.key for e in exports}
    stray = [k for k in store.list_keys("exports/") if k not in listed]
    assert stray == []  # no object outside a manifest
    retries = sum(max(0, ti.try_number - 1) for ti in chaos["run"].get_task_instances())
    print(
        f"\nchaos: {stats['requests']} requests, faults {stats['faults']}, task retries {retries}, "
        f"{len(exports)} objects archived ({sum(e.size for e in exports) / 1e6:.1f} MB), {verified} hashes "
        f"verified against a clean server, {len(manifest.failures)} reported failed, 0 lost"
    )


def test_rerun_completes_without_duplicates(chaos, s3_server):
    from ev_ingest.simulator import SimulatorServer

    store = archive(s3_server)
    before = {k: store.versions(k) for k in store.list_keys("exports/")}
    clean = SimulatorServer(sim_config(**SITE)).start()
    try:
        chaos["point_at"](clean)
        run = chaos["bag"].get_dag("ev_nightly_archive").test(run_conf={"date": DAY})
    finally:
        clean.stop()
    assert run.state == "success"
    manifest = read_manifest(store, manifest_key())
    assert len(manifest.exports()) == manifest.planned == 16 and manifest.failures == []
    after = {k: store.versions(k) for k in store.list_keys("exports/")}
    assert all(after[k] == v for k, v in before.items())  # what was archived was not written again
    assert all(len(v) == 1 for v in after.values())
