"""`make demo`: the nightly archival of yesterday, end to end, on embedded parts.

Starts the exacqVision simulator and the embedded S3 store (SeaweedFS) on 127.0.0.1
with fresh random credentials, runs `ev_nightly_archive` for yesterday through Airflow
(in-process `dag.test()` on SQLite) and then `ev_motion_summary` on its manifest; then
what a compliance officer does: a case in exacqVision, `ev_retention` (holds, policy,
the signed audit), `retention status`, and the case's evidence package verified offline.
It re-verifies every archived hash, prints where everything landed, and stops what it
started. Everything it writes stays in `.demo/` (git-ignored); the signing key is
`.demo/signing.pem` (made once, mode 0600).

It lives beside the DAGs, not in `pipelines`, because it drives Airflow: `pipelines`
never imports Airflow (tests/test_layering.py). The DAG processor parses this file too
and finds no DAG: importing it only defines functions (no `.airflowignore`, whose
default pattern syntax is deprecated in this Airflow's pathspec).

The first camera plays real footage (the first shared clip of tests/footage/, a car park,
forward and back over the day), so the report shows a real scene and its events; the
others play the synthetic scene (`--footage-cameras 0`: all; `--footage-cameras 2` adds the
room people walk through). One, not more: a camera-day of real footage is motion all day,
about 7 min of analysis on one core (measured: 18 s per hour at 320x240, 5 fps, gated),
and `dag.test()` runs the mapped summaries one after another.

    python dags/ev_demo.py                 # 4 cameras, 320x240 at 5 fps: a few minutes on 2 cores
    python dags/ev_demo.py --cameras 16 --resolution 640x360 --fps 10    # a bigger site
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ev_ingest import clock

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"


def prepare_airflow(home: Path) -> None:
    """Airflow's environment: must be set before anything imports airflow."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # Known noise, not an error (NOTES.md): iterating a mapped task's output logs
            # "XCom not found" past its end (a structlog logger: set by namespace).
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.sdk.api.client=critical",
            "EV_TASK_RETRIES": "2",
            "EV_RETRY_DELAY_S": "2",
        }
    )


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--resolution", default="320x240")
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument(
        "--footage-cameras", type=int, default=1, help="cameras that play the real clips of tests/footage/"
    )
    parser.add_argument("--chunk-minutes", type=int, default=240, help="one export per camera and chunk")
    parser.add_argument("--date", help="UTC day to archive (default: yesterday)")
    parser.add_argument("--open", action="store_true", help="reopen the last demo's archive (its S3 store) only")
    args = parser.parse_args(argv)
    if args.open:
        return reopen()
    day = args.date or (clock.now().date() - timedelta(days=1)).isoformat()
    date.fromisoformat(day)
    began = time.monotonic()

    prepare_airflow(DEMO / "airflow")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Known noise: Airflow's in-process API imports starlette's test client.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    # Fresh credentials every run, never printed; the store's are kept in .demo/s3.env (0600)
    # so that `make demo-open` can reopen the archive afterwards.
    say("starting the simulator and the S3 store")
    sim_password = secrets.token_urlsafe(16)
    s3_secret = secrets.token_urlsafe(24)
    os.environ["EV_PASSWORD"] = sim_password

    from ev_ingest.simulator import SimulatorServer
    from ev_ingest.store import EmbeddedS3

    width, height = (int(v) for v in args.resolution.split("x"))
    shutil.rmtree(DEMO / "s3data", ignore_errors=True)
    s3 = EmbeddedS3(DEMO / "s3data", secret_key=s3_secret).start()
    sim = SimulatorServer(simulator_config(0, args.cameras, width, height, args.fps, args.footage_cameras)).start()
    save_demo_env(
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3_secret,
        EV_PASSWORD=sim_password,
        EV_CONFIG=str(DEMO / "ev.yaml"),
        EV_URL=f"exacqvision://admin@{sim.url.removeprefix('http://')}",
        EV_DEMO_S3_PORT=str(s3.ports.s3),
        EV_DEMO_SIMULATOR=f"{sim.url.rsplit(':', 1)[1]},{args.cameras},{args.resolution},{args.fps},"
        f"{args.footage_cameras}",
        EV_DEMO_DAY=day,
    )
    try:
        say(
            f"simulator at {sim.url} ({args.cameras} cameras, {args.resolution} @ {args.fps} fps, "
            f"{min(args.footage_cameras, args.cameras)} of them real footage); "
            f"S3 at {s3.endpoint_url}"
        )
        # The key that signs manifests and audit records: made once, kept (mode 0600).
        from ev_ingest.store.signing import Signer

        key_file = DEMO / "signing.pem"
        if not key_file.exists():
            Signer.generate().write(key_file)
        host, port = sim.url.removeprefix("http://").split(":")
        config_path = DEMO / "ev.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    # The DAGs use the Airflow connection; the CLI (case export) this url + EV_PASSWORD.
                    "sites": [
                        {
                            "name": "demo",
                            "timezone": "UTC",
                            "servers": [{"name": "nvr1", "url": f"exacqvision://admin@{host}:{port}"}],
                        }
                    ],
                    "export": {
                        "format": "mp4",
                        "chunk_minutes": args.chunk_minutes,
                        "poll_interval_s": 0.2,
                        "first_poll_s": 0,
                    },  # first_poll_s 0: dag.test runs triggers inline, no scheduler race to avoid
                    "store": {"bucket": "ev-demo-archive", "endpoint_url": s3.endpoint_url},
                    "retention": {"mode": "GOVERNANCE", "days": 30},
                    "thumbnails": {"interval_s": 3600, "width": 160},
                    # dag.test() runs the mapped summaries one after another: each decodes on the
                    # cores (the detector itself is one thread: measured, little gain on footage).
                    "motion_workers": max(1, min(4, os.cpu_count() or 1)),
                    "signing": {"key_file": str(key_file)},
                }
            )
        )
        os.environ.update(
            {
                "EV_CONFIG": str(config_path),
                "AIRFLOW_CONN_EXACQVISION_NVR1": json.dumps(
                    {
                        "conn_type": "exacqvision",
                        "host": host,
                        "port": int(port),
                        "login": "admin",
                        "password": sim_password,
                        "extra": {"server_id": "0"},
                    }
                ),
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3_secret,
            }
        )
        expected = args.cameras * (1440 // args.chunk_minutes)
        return run_dags(day, began, sim.url, sim_password, expected)
    finally:
        sim.stop()
        s3.stop()
        say("stopped the simulator and the S3 store (their data stays in .demo/)")


STORE_ENV = DEMO / "s3.env"


def save_demo_env(**values: str) -> None:
    """What reopens the demo: its store's credentials and port, its simulator's password,
    port and shape, and EV_CONFIG/EV_URL for the CLI (mode 0600, never printed)."""
    STORE_ENV.unlink(missing_ok=True)
    fd = os.open(STORE_ENV, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{name}={value}\n" for name, value in values.items()))


def simulator_config(port: int, cameras: int, width: int, height: int, fps: int, footage_cameras: int) -> Any:
    """The demo's simulator: a day of recordings prepared fast, the first cameras real footage."""
    from ev_ingest.simulator import SimulatorConfig

    return SimulatorConfig(
        port=port,
        cameras=cameras,
        width=width,
        height=height,
        fps=fps,
        export_rate=36000.0,
        footage=ROOT / "tests" / "footage" if footage_cameras else None,
        footage_cameras=footage_cameras,
    )


def reopen() -> int:
    """Serve the last demo's archive and simulator again, on the ports .demo/ev.yaml names."""
    import signal

    from ev_ingest.simulator import SimulatorServer
    from ev_ingest.store import EmbeddedS3, Ports

    if not STORE_ENV.exists():
        print("no demo to reopen: run `make demo` first", file=sys.stderr)
        return 1
    saved = dict(line.split("=", 1) for line in STORE_ENV.read_text().splitlines() if "=" in line)
    os.environ["EV_PASSWORD"] = saved["EV_PASSWORD"]  # the simulator's admin password, as in the demo
    sim_port, cameras, resolution, fps, *rest = saved["EV_DEMO_SIMULATOR"].split(",")
    footage_cameras = int(rest[0]) if rest else 0  # a demo from before footage cameras
    width, height = (int(v) for v in resolution.split("x"))
    s3 = EmbeddedS3(
        DEMO / "s3data",
        access_key=saved["AWS_ACCESS_KEY_ID"],
        secret_key=saved["AWS_SECRET_ACCESS_KEY"],
        ports=Ports.free(s3=int(saved["EV_DEMO_S3_PORT"])),
    )
    sim = SimulatorServer(simulator_config(int(sim_port), int(cameras), width, height, int(fps), footage_cameras))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    s3.start()
    try:
        sim.start()
        # The simulator keeps no state between runs: the demo's case is made again, so the
        # holds and `case export` find what the demo left.
        demo_case(sim.url, saved["EV_PASSWORD"], saved["EV_DEMO_DAY"])
        say(f"the demo is back: S3 at {s3.endpoint_url}, simulator at {sim.url}; Ctrl-C stops both.")
        print(f"In another terminal (every README command works against it):\n  set -a; . {STORE_ENV}; set +a")
        print("  .venv/bin/ev-ingest retention status            # what is protected")
        print("  .venv/bin/ev-ingest retention audit --deep      # signatures, chains, every byte")
        print("  .venv/bin/ev-ingest audit log                   # the audit trail")
        print(f"  .venv/bin/ev-ingest verify {DEMO / 'case.zip'}  # the evidence package, offline")
        print("  .venv/bin/ev-ingest cameras                     # the simulator", flush=True)
        while signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, 1.0) is None:
            if not s3.running:
                print("SeaweedFS exited; see .demo/s3data/weed.log", file=sys.stderr)
                return 1
    finally:
        sim.stop()
        s3.stop()
    return 0


@contextlib.contextmanager
def progress(what: str, prefix: str, expected: int, every_s: float = 15.0) -> Iterator[None]:
    """While a DAG runs inside `dag.test()` (which prints nothing until it ends), a line every
    `every_s` seconds: how many of the `expected` objects under `prefix` are stored, and an ETA."""
    from botocore.exceptions import ClientError

    from pipelines.config import load_config
    from pipelines.connections import open_store
    from pipelines.progress import duration

    store = open_store(load_config())
    stop = threading.Event()
    began = time.monotonic()

    def report() -> None:
        while not stop.wait(every_s):  # a display interval, not synchronisation
            try:
                done = len(store.list_keys(prefix))
            except ClientError as exc:  # a display: the bucket may not exist yet
                say(f"{what}: nothing stored yet ({exc.response.get('Error', {}).get('Code', 'error')})")
                continue
            elapsed = time.monotonic() - began
            eta = f", about {duration(elapsed / done * (expected - done))} left" if 0 < done < expected else ""
            say(f"{what}: {done}/{expected} stored{eta}")

    watcher = threading.Thread(target=report, name="demo-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def run_dags(day: str, began: float, sim_url: str, sim_password: str, expected: int) -> int:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils import db

    say("creating Airflow's database (SQLite)")
    db.resetdb()
    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")
    if bag.import_errors:
        say(f"DAG import errors: {bag.import_errors}")
        return 1
    # Known noise: the demo's database has no Fernet key, and the secrets masker warns of
    # connection values too short to mask. Stdlib loggers, which namespace_levels does not reach.
    for noisy in ("airflow.models.crypto", "airflow.sdk._shared.secrets_masker.secrets_masker"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    say(f"running ev_nightly_archive for {day} through Airflow")
    with progress("exports", "exports/", expected):
        nightly = bag.get_dag("ev_nightly_archive").test(run_conf={"date": day})
    say(f"ev_nightly_archive: {nightly.state}")
    manifest_key = f"manifests/site=demo/date={day}/nightly-{day.replace('-', '')}T000000Z.json"
    motion_state = "skipped"
    if nightly.state == "success":
        say("running ev_motion_summary on its manifest")
        # One events table per export (counting all of motion/ would count snapshots too).
        with progress("motion summaries", "motion/events/", expected):
            motion_state = bag.get_dag("ev_motion_summary").test(run_conf={"manifest": manifest_key}).state
        say(f"ev_motion_summary: {motion_state}")
    sheets_ok = nightly.state == "success" and contact_sheets(day)
    evidence_ok = nightly.state == "success" and compliance(bag, day, sim_url, sim_password)
    report(manifest_key, began)
    return 0 if nightly.state == "success" and motion_state == "success" and evidence_ok and sheets_ok else 1


def contact_sheets(day: str) -> bool:
    """The day's thumbnails (one an hour) and each camera's contact sheet, saved in .demo/."""
    from pipelines.cli.main import main as cli

    say(f"thumbnails and contact sheets (ev-ingest thumbnails --date {day} -o {DEMO}):")
    return cli(["thumbnails", "--date", day, "-o", str(DEMO)]) == 0


def demo_case(sim_url: str, sim_password: str, day: str) -> int:
    """The case 'Demo incident': a bookmark on the first camera, 09:00-09:05 of `day`; its camera."""
    from ev_ingest.client import ExacqClient

    start = datetime.fromisoformat(f"{day}T09:00:00+00:00")
    with ExacqClient(sim_url, "admin", sim_password) as client:
        camera = client.cameras.list()[0]
        case = client.cases.create("Demo incident")
        client.bookmarks.create("demo bookmark", camera.id, start, start + timedelta(minutes=5), case=case.guid)
    return camera.id


def compliance(bag: Any, day: str, sim_url: str, sim_password: str) -> bool:
    """What a compliance officer does: a case in exacqVision, the daily retention DAG (holds,
    policy, audit), what is protected, and the case's evidence package checked offline."""
    from pipelines.cli.main import main as cli

    camera = demo_case(sim_url, sim_password, day)
    say(f"case 'Demo incident' bookmarks camera {camera} at 09:00; running ev_retention (holds, policy, audit)")
    state = bag.get_dag("ev_retention").test().state
    say(f"ev_retention: {state}")
    say("what is protected (ev-ingest retention status):")
    cli(["retention", "status"])
    package = DEMO / "case.zip"
    say(f"the case's evidence package (ev-ingest case export 'Demo incident' -o {package}):")
    exported = cli(["case", "export", "Demo incident", "-o", str(package)])
    say(f"checked offline (ev-ingest verify {package}):")
    from ev_ingest.store.signing import Signer

    # The demo's own key is the anchor: a package is VERIFIED only against a key one trusts.
    anchor = Signer.from_file(DEMO / "signing.pem").fingerprint
    verified = cli(["verify", str(package), "--fingerprint", anchor])
    return state == "success" and exported == 0 and verified == 0


def report(manifest_key: str, began: float) -> None:
    import io

    import pyarrow.parquet as pq

    from ev_ingest.store import read_manifest
    from pipelines.compliance import auditor, records, signing_keys
    from pipelines.config import load_config
    from pipelines.connections import open_store

    config = load_config()
    store = open_store(config)
    manifest = read_manifest(store, manifest_key)
    exports = manifest.exports()
    verified = sum(store.verify(e.key, e.sha256, e.version_id).ok for e in exports)
    audit = auditor.audit(store, config, audit_log=records.audit_log(store, config))
    motion_key = manifest_key.replace(".json", "-motion.json")
    events: dict[int, int] = {}
    summary_keys: list[str] = []
    report_key = None
    if store.head(motion_key) is not None:
        for entry in read_manifest(store, motion_key).entries:
            if entry.kind == "report":
                report_key = entry.key
                (DEMO / "report.html").write_bytes(store.get_bytes(entry.key, entry.version_id))
                continue
            summary_keys.append(entry.key)
            if entry.kind == "motion_events":
                table = pq.read_table(io.BytesIO(store.get_bytes(entry.key)))
                events[entry.camera_id] = events.get(entry.camera_id, 0) + table.num_rows
    cameras = sorted({(e.camera_id, e.camera_name) for e in exports})
    print()
    print(
        f"Nightly archive of {manifest.interval_start:%Y-%m-%d} (site {manifest.site}), "
        f"in {time.monotonic() - began:.0f} s"
    )
    print(f"  cameras          {len(cameras)}")
    print(
        f"  exports          {len(exports)} archived of {manifest.planned} planned, {len(manifest.failures)} failed, "
        f"{len(manifest.no_footage)} chunks without footage"
    )
    print(f"  bytes            {sum(e.size for e in exports) / 1e6:.1f} MB in s3://{store.bucket}/")
    print(f"  verified hashes  {verified}/{len(exports)} (re-read from S3 and re-hashed)")
    print(
        f"  audit            {'OK' if audit.ok else f'{len(audit.findings)} findings'}: {audit.records} signed "
        f"records, {audit.checked} objects; key {signing_keys.signer_for(config).fingerprint[:16]}"
    )
    print("  motion events    " + ", ".join(f"{name} ({cid}): {events.get(cid, 0)}" for cid, name in cameras))
    print(f"  manifest         s3://{store.bucket}/{manifest_key}")
    print(f"  motion manifest  s3://{store.bucket}/{motion_key}")
    for key in summary_keys[:4]:
        print(f"  summary          s3://{store.bucket}/{key}")
    if len(summary_keys) > 4:
        print(f"                   ... and {len(summary_keys) - 4} more under s3://{store.bucket}/motion/")
    if report_key:
        print(f"  report           s3://{store.bucket}/{report_key}")
        print(f"                   copied to {DEMO / 'report.html'} (open it in a browser)")
    print(f"  evidence package {DEMO / 'case.zip'} (ev-ingest verify checks it offline)")
    print("  reopen           make demo-open  (serves this archive and the simulator again, with commands to try)")
    print()


if __name__ == "__main__":
    sys.exit(main())
