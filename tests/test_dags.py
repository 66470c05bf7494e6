"""The DAGs: they import cleanly, have the intended shape, and run end to end through
Airflow (`dag.test()`) against the simulator and SeaweedFS.

The end-to-end site is small on purpose (160x120 at 5 fps, 2 cameras, 6-hour chunks)
so a whole day archives in seconds; the logic is the production one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml

from ev_ingest.client import ExacqClient
from ev_ingest.store import ArchiveStore, StoreSettings, read_manifest
from ev_ingest.store.signing import decode
from tests.conftest import PASSWORD, S3_SECRET, day, sim_config

pytestmark = pytest.mark.airflow
DAY = day(-1)  # a whole local day inside the simulator's 7 days of recordings
MANIFEST = f"manifests/site=HQ/date={DAY}/nightly-{DAY.replace('-', '')}T000000Z.json"
BUCKET = "dag-e2e"


def test_dag_folder_imports_cleanly(dagbag):
    assert dagbag.import_errors == {}
    assert {"ev_nightly_archive", "ev_motion_summary", "ev_thumbnails", "ev_retention"} <= set(dagbag.dag_ids)


def test_nightly_structure(dagbag):
    dag = dagbag.get_dag("ev_nightly_archive")
    assert set(dag.task_dict) == {"targets", "plan", "jobs", "export", "commit", "night_failures", "recorder_horizon"}
    assert dag.task_dict["night_failures"].upstream_task_ids == {"commit"}
    assert dag.task_dict["recorder_horizon"].upstream_task_ids == {"commit"}
    export = dag.task_dict["export"]
    assert export.partial_kwargs["pool"] == "exacqvision_exports"
    assert dag.task_dict["commit"].trigger_rule == "all_done" and dag.task_dict["jobs"].trigger_rule == "all_done"
    assert dag.default_args["retry_exponential_backoff"] is True and dag.default_args["max_retry_delay"]
    assert _default_retries_without_env() == 3
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert [o.name for o in dag.task_dict["commit"].outlets] == ["ev_nightly_manifest"]
    assert dag.max_active_runs == 1 and not dag.catchup


def _default_retries_without_env() -> int:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "EV_TASK_RETRIES"}
    code = "import sys; sys.path.insert(0, 'dags'); import ev_tasks; print(ev_tasks.DEFAULT_ARGS['retries'])"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def test_exacqvision_is_a_known_connection_type():
    """The provider entry point: Airflow knows the connection type, its hook and trigger."""
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert (
        ProvidersManagerTaskRuntime().hooks["exacqvision"].hook_class_name == "ev_ingest.airflow.hooks.ExacqVisionHook"
    )
    manager = ProvidersManager()
    assert "ev-ingest" in manager.providers
    form = {name for name in manager.connection_form_widgets if name.startswith("extra__exacqvision__")}
    assert form == {f"extra__exacqvision__{f}" for f in ("server_id", "tls_verify", "ca_file")}
    assert manager.field_behaviours["exacqvision"]["relabeling"]["schema"].startswith("Scheme")
    assert ("ev_ingest.airflow.triggers", "ev-ingest") in {
        (t.trigger_class_name, t.package_name) for t in manager.trigger
    }


def test_the_hook_reads_the_connection_forms_fields():
    from airflow.sdk import Connection

    from ev_ingest.airflow.hooks import ExacqVisionHook

    form = {"extra__exacqvision__server_id": "3", "extra__exacqvision__tls_verify": False}
    conn = Connection(
        conn_id="x", conn_type="exacqvision", host="nvr", port=8443, schema="https", login="u", password="p",
        extra=json.dumps(form),
    )  # fmt: skip
    settings = ExacqVisionHook.settings_from_connection(conn)
    assert (settings.base_url, settings.server_id, settings.tls_verify) == ("https://nvr:8443", "3", False)


def test_every_task_has_a_deadline_and_the_alert_hook(dagbag):
    from ev_tasks import on_failure

    for dag_id in ("ev_nightly_archive", "ev_motion_summary", "ev_thumbnails", "ev_retention"):
        for task in dagbag.get_dag(dag_id).tasks:
            timeout = getattr(task, "execution_timeout", None) or task.partial_kwargs.get("execution_timeout")
            assert timeout is not None, (dag_id, task.task_id)
            callbacks = getattr(task, "on_failure_callback", None) or task.partial_kwargs.get("on_failure_callback")
            assert on_failure in (callbacks if isinstance(callbacks, list) else [callbacks]), (dag_id, task.task_id)


def test_consumers_and_schedules(dagbag):
    motion = dagbag.get_dag("ev_motion_summary")
    assert "ev_nightly_manifest" in str(motion.timetable.asset_condition)
    assert set(motion.task_dict) == {"exports", "summarize", "commit"}
    retention = dagbag.get_dag("ev_retention")
    assert set(retention.task_dict) == {"legal_holds", "apply_policy", "audit"}
    # A failed hold sync or policy step must never mean no audit.
    assert retention.task_dict["audit"].trigger_rule == "all_done"
    assert retention.task_dict["apply_policy"].trigger_rule == "all_done"
    assert type(dagbag.get_dag("ev_thumbnails").timetable).__name__ == "CronDataIntervalTimetable"


def test_dag_files_do_no_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'dags'); import ev_nightly_archive, ev_motion_summary, ev_thumbnails, "
        "ev_retention; heavy = [m for m in ('av', 'cv2', 'boto3', 'pipelines', 'numpy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def site(tmp_path_factory, s3_server):
    """A small simulator, a config file, and the connection and store in the environment."""
    from ev_ingest.simulator import SimulatorServer

    mp = pytest.MonkeyPatch()
    server = SimulatorServer(sim_config(cameras=2, width=160, height=120, fps=5)).start()
    folder = tmp_path_factory.mktemp("e2e")
    config = {
        "sites": [{"name": "HQ", "timezone": "UTC", "servers": [{"name": "nvr1"}]}],
        "export": {"format": "mp4", "chunk_minutes": 360, "poll_interval_s": 0.1, "first_poll_s": 0},
        "store": {"bucket": BUCKET, "endpoint_url": s3_server.endpoint_url},
        "retention": {"mode": "GOVERNANCE", "days": 30},
        "motion": {"target_width": 160},
    }
    (folder / "ev.yaml").write_text(yaml.safe_dump(config))
    host, port = server.url.removeprefix("http://").split(":")
    mp.setenv("EV_CONFIG", str(folder / "ev.yaml"))
    mp.setenv(
        "AIRFLOW_CONN_EXACQVISION_NVR1",
        json.dumps(
            {
                "conn_type": "exacqvision",
                "host": host,
                "port": int(port),
                "login": "admin",
                "password": PASSWORD,
                "extra": {"server_id": "0"},
            }
        ),
    )
    mp.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    yield server
    mp.undo()
    server.stop()


LOGS: list[str] = []  # every log line and every printed line of the end-to-end runs


class _Keep(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        LOGS.append(self.format(record))


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Keep everything the runs log (ours at DEBUG, with tracebacks) and print."""
    handler = _Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loud = [logging.getLogger(n) for n in ("ev_ingest", "pipelines", "httpx", "airflow", "dags", "ev_tasks")]
    levels = [logger.level for logger in loud]
    root = logging.getLogger()
    root.addHandler(handler)
    for logger in loud:
        logger.setLevel(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        root.removeHandler(handler)
        for logger, level in zip(loud, levels, strict=True):
            logger.setLevel(level)
        LOGS.extend((out.getvalue() + err.getvalue()).splitlines())


@pytest.fixture(scope="module")
def nightly_run(site, dagbag):
    dag = dagbag.get_dag("ev_nightly_archive")
    with captured():
        run = dag.test(run_conf={"date": DAY})
    return run


def store(s3_server) -> ArchiveStore:
    return ArchiveStore(
        StoreSettings(
            bucket=BUCKET, endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key, secret_key=S3_SECRET
        )
    )


def test_nightly_archive_end_to_end(nightly_run, site, s3_server):
    assert nightly_run.state == "success"
    tis = {(ti.task_id, ti.map_index): ti for ti in nightly_run.get_task_instances()}
    exports = [ti for (task, _), ti in tis.items() if task == "export"]
    assert len(exports) == 8 and all(ti.state == "success" for ti in exports)  # 2 cameras x 4 chunks
    archive = store(s3_server)
    manifest = read_manifest(archive, MANIFEST)
    assert len(manifest.exports()) == 8 and manifest.failures == []
    with ExacqClient(site.url, "admin", PASSWORD) as ev:
        for entry in manifest.exports():
            import hashlib

            direct = hashlib.sha256()
            export_id = ev.exports.create(entry.camera_id, entry.start, entry.end)
            ev.exports.wait(export_id, poll_interval=0.05)
            for chunk in ev.exports.iter_download(export_id):
                direct.update(chunk)
            ev.exports.finish(export_id)
            assert direct.hexdigest() == entry.sha256, entry.key


def test_asset_hands_off_to_motion_summary(nightly_run, dagbag, site, s3_server):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).all()
        queued = [q.target_dag_id for q in session.query(AssetDagRunQueue).all()]
    manifests = [key for e in events for key in (e.extra or {}).get("manifests", []) if f"date={DAY}" in key]
    assert manifests[0] == MANIFEST
    assert "ev_motion_summary" in queued
    with captured():
        run = dagbag.get_dag("ev_motion_summary").test(run_conf={"manifest": manifests[0]})
    assert run.state == "success"
    archive = store(s3_server)
    motion = read_manifest(archive, MANIFEST.replace(".json", "-motion.json"))
    assert len([e for e in motion.entries if e.kind == "motion_events"]) == 8
    start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
    truth = httpx.get(
        site.url + "/_sim/truth", params={"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
    ).json()
    found = [
        row
        for e in motion.entries
        if e.kind == "motion_events"
        for row in pq.read_table(io.BytesIO(archive.get_bytes(e.key))).to_pylist()
    ]
    long_events = [e for e in truth["events"] if e["duration_s"] > 2.5]
    assert len(long_events) > 50
    matched = [
        e
        for e in long_events
        if any(
            row["camera_id"] == e["camera"]
            and abs((row["start"] - _t(e["start"])).total_seconds()) <= 1.0
            and abs((row["end"] - _t(e["end"])).total_seconds()) <= 1.0
            for row in found
        )
    ]
    assert len(matched) >= 0.95 * len(long_events)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_dag_and_the_cli_write_the_same_manifest(nightly_run, site, s3_server, monkeypatch, capsys):
    """One export step for both paths: the in-process runner (`ev-ingest archive`) over the
    same day, into another bucket, records the same objects with the same bytes."""
    from pipelines.config import load_config
    from pipelines.nightly.run import run_nightly

    config = load_config()
    data = config.model_dump(mode="json")
    data["sites"][0]["servers"][0]["url"] = f"exacqvision://admin@{site.url.removeprefix('http://')}"
    data["store"]["bucket"] = BUCKET + "-cli"
    cli_config = type(config).model_validate(data)
    cli_store = ArchiveStore(
        StoreSettings(
            bucket=BUCKET + "-cli",
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=S3_SECRET,
        )
    )
    cli_store.ensure_bucket()
    start, end = cli_config.site("HQ").previous_day(
        datetime.fromisoformat(DAY).replace(tzinfo=UTC) + timedelta(days=1, hours=2)
    )
    by_cli = run_nightly(cli_config, cli_store, "HQ", start, end, summarize=False, progress=True).manifest
    by_dag = read_manifest(store(s3_server), MANIFEST)
    # `ev-ingest archive` shows a line per export on stderr, with an estimate of what is left.
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[export nvr1 ")]
    assert len(progress) == 8 and progress[0].startswith("[export nvr1 1/8] camera ") and "left" in progress[0]

    def same(manifest):
        fields = ("key", "sha256", "size", "server", "camera_id", "start", "end", "recorded_start", "retain_until")
        return sorted(tuple(getattr(e, f) for f in fields) for e in manifest.exports())

    assert by_cli.key == by_dag.key and same(by_cli) == same(by_dag) and len(same(by_dag)) == 8
    assert (by_cli.planned, by_cli.complete, by_cli.failures) == (by_dag.planned, by_dag.complete, by_dag.failures)


def test_a_retry_resumes_the_export_an_earlier_try_started(site, dagbag, s3_server):
    """What a try leaves for the next (the export id, kept in a Variable): an export still
    open on the recorder is resumed, not created again; one the recorder no longer has is
    started afresh; nothing is left behind."""
    from airflow.models.variable import Variable

    day = datetime.fromisoformat(DAY).replace(tzinfo=UTC) - timedelta(days=1)
    stamp = "%Y%m%dT%H%M%SZ"
    open_job = f"HQ/nvr1/4593152/{day:{stamp}}_{day + timedelta(hours=6):{stamp}}"
    gone_job = f"HQ/nvr1/4593408/{day:{stamp}}_{day + timedelta(hours=6):{stamp}}"
    with ExacqClient(site.url, "admin", PASSWORD) as ev:
        left_open = ev.exports.create(4593152, day, day + timedelta(hours=6))
    Variable.set(f"ev_export_token.{open_job}", left_open)
    Variable.set(f"ev_export_token.{gone_job}", "an-export-the-recorder-freed")
    before = httpx.get(site.url + "/_sim/stats").json()
    with captured():
        run = dagbag.get_dag("ev_nightly_archive").test(run_conf={"date": f"{day:%Y-%m-%d}"})
    after = httpx.get(site.url + "/_sim/stats").json()
    assert run.state == "success"
    assert after["exports_created"] - before["exports_created"] == 7  # 8 jobs, one resumed
    assert after["exports"] == before["exports"] - 1  # the resumed one was finished too, no other left open
    assert Variable.get(f"ev_export_token.{open_job}", default_var=None) is None
    assert Variable.get(f"ev_export_token.{gone_job}", default_var=None) is None
    key = f"manifests/site=HQ/date={day:%Y-%m-%d}/nightly-{day:{stamp}}.json"
    assert len(read_manifest(store(s3_server), key).exports()) == 8


def test_a_failed_plan_is_recorded_and_the_other_servers_archived(site, dagbag, s3_server, tmp_path, monkeypatch):
    """One server unreachable: its plan fails, the other server's exports still run, and the
    commit records the failed plan in the manifest and succeeds, so the asset event that
    starts the motion summaries is emitted for what was archived (a commit that raised
    emitted none: 8 exports, 0 events). The run is still marked failed, by night_failures,
    and the EV_ON_FAILURE alert fires for it."""
    import os

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    from tests import alert_sink

    config = yaml.safe_load(Path(os.environ["EV_CONFIG"]).read_text())
    config["sites"][0]["servers"].append({"name": "nvr2"})
    (tmp_path / "ev.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("EV_CONFIG", str(tmp_path / "ev.yaml"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXACQVISION_NVR2",
        json.dumps({"conn_type": "exacqvision", "host": "127.0.0.1", "port": 9, "login": "admin", "password": "x"}),
    )
    monkeypatch.setenv("EV_ON_FAILURE", "tests.alert_sink:record")
    alert_sink.ALERTED.clear()
    day = datetime.fromisoformat(DAY).replace(tzinfo=UTC) - timedelta(days=2)
    key = f"manifests/site=HQ/date={day:%Y-%m-%d}/nightly-{day:%Y%m%dT%H%M%SZ}.json"
    with captured():
        run = dagbag.get_dag("ev_nightly_archive").test(run_conf={"date": f"{day:%Y-%m-%d}"})
    assert run.state == "failed"
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states[("plan", 0)] == "success" and states[("plan", 1)] == "failed"
    assert states[("commit", -1)] == "success" and states[("night_failures", -1)] == "failed"
    assert "night_failures" in alert_sink.ALERTED
    # nvr2 was down on every run since it was added: nothing says what its cameras hold.
    assert states[("recorder_horizon", -1)] == "failed" and "recorder_horizon" in alert_sink.ALERTED
    assert any("HQ/nvr2/0: " in line and "no search has shown" in line for line in LOGS)
    with create_session() as session:
        emitted = [k for e in session.query(AssetEvent).all() for k in (e.extra or {}).get("manifests", [])]
    assert key in emitted
    manifest = read_manifest(store(s3_server), key)
    assert len(manifest.exports()) == 8 and {e.server for e in manifest.exports()} == {"nvr1"}
    assert [(f.server, f.kind) for f in manifest.failures] == [("nvr2", "plan")]


def test_second_run_creates_no_new_versions(nightly_run, dagbag, s3_server):
    archive = store(s3_server)
    before = {k: archive.versions(k) for k in archive.list_keys("exports/") + archive.list_keys("manifests/")}
    run = dagbag.get_dag("ev_nightly_archive").test(run_conf={"date": DAY})
    assert run.state == "success"
    after = {k: archive.versions(k) for k in archive.list_keys("exports/") + archive.list_keys("manifests/")}
    assert after == before


def test_no_secret_in_xcom_or_logs(nightly_run, site):
    """The password, the S3 secret and every session id the server handed out: in no XCom,
    no task argument and no log line of the nightly and motion runs (logged at DEBUG)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = [json.dumps(x.value, default=str) for x in session.query(XComModel).all()]
        values += [json.dumps(ti.rendered_map_index or "") for ti in session.query(TaskInstance).all()]
    secrets = [PASSWORD, S3_SECRET, *site.state.issued]
    assert len(site.state.issued) >= 2 and len(LOGS) > 100  # sessions were made, and the runs said a lot
    assert any("HTTP Request" in line for line in LOGS)  # request URLs were logged, redacted
    leaks = [(s[:6], line[:200]) for line in LOGS + values for s in secrets if s in line]
    assert not leaks
    print(f"\nscanned {len(LOGS)} log lines and {len(values)} XCom values for {len(secrets)} secrets: none found")


def test_the_audit_runs_when_the_hold_sync_fails(nightly_run, site, dagbag, s3_server, monkeypatch):
    """The recording server is unreachable: legal_holds fails, the policy step and the audit
    still run, the audit's signed record is stored, and it reports the gap (holds of that
    server's cases could not be seen: issue 25 item 4)."""
    from ev_ingest.store.embedded import free_ports

    closed = free_ports(1)[0]
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXACQVISION_NVR1",
        json.dumps(
            {"conn_type": "exacqvision", "host": "127.0.0.1", "port": closed, "login": "admin", "password": PASSWORD}
        ),
    )
    archive = store(s3_server)
    before = set(archive.list_keys("audit/"))
    with captured():
        run = dagbag.get_dag("ev_retention").test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"legal_holds": "failed", "apply_policy": "success", "audit": "failed"}
    audits = [decode(archive.get_json(k)) for k in set(archive.list_keys("audit/")) - before]
    findings = [[(f["key"], f["problem"]) for f in a["findings"]] for a in audits if a["action"] == "audit"]
    assert findings == [[("holds/nvr1", "hold-gap")]]
    syncs = [a for a in audits if a["action"] == "hold-sync"]
    assert [g["problem"] for s in syncs for g in s["gaps"]] == ["unlisted-server"] and syncs[0]["released"] == 0


def test_the_horizon_alert_fails_the_run_when_owed_footage_nears_its_overwrite(
    nightly_run, site, dagbag, s3_server, tmp_path, monkeypatch
):
    """A camera the config names and the server does not list is owed every night; with
    a margin of a week the simulator's 7-day recorder overwrites it within the margin: the
    night is committed, recorder_horizon fails the run and the EV_ON_FAILURE alert fires.
    Last in the module: the night it archives (four days back) is no other test's."""
    import os

    from tests import alert_sink

    config = yaml.safe_load(Path(os.environ["EV_CONFIG"]).read_text())
    config["sites"][0]["servers"][0]["include_cameras"] = [4593152, 4593408, 4599040]
    config["horizon"] = {"margin_hours": 168}
    (tmp_path / "ev.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("EV_CONFIG", str(tmp_path / "ev.yaml"))
    monkeypatch.setenv("EV_ON_FAILURE", "tests.alert_sink:record")
    alert_sink.ALERTED.clear()
    with captured():
        run = dagbag.get_dag("ev_nightly_archive").test(run_conf={"date": day(-5)})
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "failed" and states[("commit", -1)] == "success"
    assert states[("recorder_horizon", -1)] == "failed" and "recorder_horizon" in alert_sink.ALERTED
    # Never archived, so owed every night since: the oldest, four days back, goes in 36 h.
    wanted = f"HQ/nvr1/4599040: 120.0 h unarchived from {day(-5)} 00:00 UTC, overwritten by the recorder in 36.0 h"
    assert any(wanted in line for line in LOGS)
