"""A real Airflow deployment on this machine, for tests: the api-server, scheduler,
dag-processor and triggerer as separate processes, configured only through the
environment, exactly as docs/deploy.md tells an operator to. LocalExecutor on SQLite
(`make test`), or CeleryExecutor with Debian's PostgreSQL and redis-server and two
Celery workers (`make stack`).

Nothing here runs a DAG by hand: runs are created by the scheduler from the DAGs'
schedules, as in production. The children get an environment built from scratch (no
inherited test settings, no EV_PASSWORD); their logs stay in the deployment's folder
and are printed when a wait times out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ev_ingest import clock
from ev_ingest.simulator.server import free_port
from tests import reaper
from tests.conftest import ROOT

AIRFLOW = str(Path(sys.executable).parent / "airflow")
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")


class Deployment:
    def __init__(
        self,
        home: Path,
        api_port: int,
        settings: dict[str, str],
        *,
        database_url: str | None = None,
        celery: dict[str, str] | None = None,
        workers: int = 0,
    ) -> None:
        self.home = home
        self.db = home / "airflow.db"
        self.database_url = database_url
        self.services: list[tuple[str, list[str]]] = [(name, [name]) for name in SERVICES]
        self.services += [(f"worker-{n}", ["celery", "worker", "-H", f"w{n}", "-c", "2"]) for n in (1, 2)][:workers]
        # Each service that serves its task logs (the scheduler's LocalExecutor, each Celery
        # worker, the triggerer) gets a port of its own: two on one machine cannot share 8793.
        self.service_env = {
            name: {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())} for name, _ in self.services
        }
        self.token = secrets.token_hex(8)
        self.env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(24),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__TRIGGERER_LOG_SERVER_PORT": str(free_port()),
            # The run's and the deployment's markers: what they start is ended with them (tests/reaper.py).
            reaper.RUN_ENV: os.environ.get(reaper.RUN_ENV, ""),
            reaper.DEPLOYMENT_ENV: self.token,
            # The product's clock, shifted as the run's is (EV_CLOCK_SHIFT_*): tasks and the simulator agree.
            **{name: os.environ[name] for name in clock.SHIFT_ENVS if name in os.environ},
            **settings,
        }
        if database_url:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        if celery:
            self.env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
            self.env.update(celery)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.home
        )
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> Deployment:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate", timeout=300)
        for name, args in self.services:
            with (self.home / f"{name}.log").open("wb") as log:  # the child keeps its own copy
                self.processes[name] = subprocess.Popen(
                    [AIRFLOW, *args], env={**self.env, **self.service_env[name]}, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
                )  # fmt: skip
                reaper.register(self.processes[name].pid)  # its title hides its marker (tests/reaper.py)
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):  # the group can outlive its leader
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        # A task runner or log server that left its process group still carries the marker.
        reaper.reap(reaper.DEPLOYMENT_ENV, self.token)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read Airflow's metadata database (the test's own reads, never a task's)."""
        if self.database_url:
            import sqlalchemy

            engine = sqlalchemy.create_engine(self.database_url)
            try:
                with engine.connect() as db:
                    return [tuple(row) for row in db.exec_driver_sql(query.replace("?", "%s"), params).fetchall()]
            finally:
                engine.dispose()
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(query, params).fetchall()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} (last 3000 chars)\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.home.glob("*.log"))
        )

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
        """Poll `check` until it returns something truthy; fail with every service's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise AssertionError(f"{dead} exited while waiting for {what}\n{self.logs()}")
            try:
                found = check()
            except sqlite3.OperationalError:  # the database is being written or not created yet
                found = None
            if found:
                return found
            time.sleep(every)  # polling a condition with a deadline, not standing in for one
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")


class LocalPostgres:
    """A throwaway PostgreSQL cluster from Debian's `postgresql` package, on 127.0.0.1 and a
    socket in its own folder; run as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self, port: int) -> None:
        # Its own folder under /tmp: the postgres user must reach it (pytest's are root-only).
        self.folder = Path(tempfile.mkdtemp(prefix="ev-postgres-"))
        reaper.remove_with_run(self.folder)  # also if the run is killed before stop()
        self.port = port
        self.data = self.folder / "data"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: make stack installs Debian's postgresql")
        self.bin = bins[-1].parent
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{self.port}/airflow"

    def run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} exited {done.returncode}: {done.stderr[-1500:]}")

    def start(self) -> LocalPostgres:
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-w",
            "-o", f"-p {self.port} -h 127.0.0.1 -k {self.folder}", "start",
        )  # fmt: skip
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c"]
        self.run(*psql, "CREATE USER airflow PASSWORD 'airflow'")
        self.run(*psql, "CREATE DATABASE airflow OWNER airflow")
        return self

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            capture_output=True, timeout=120, cwd="/", check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalRedis:
    """Debian's redis-server on 127.0.0.1, nothing persisted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: make stack installs Debian's redis-server")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        reaper.register(self.process.pid)  # redis-server sets its title, hiding its marker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.1)  # not listening yet: poll with a deadline
        raise RuntimeError("redis-server did not answer PING within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
