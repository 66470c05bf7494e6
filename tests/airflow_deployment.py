"""A real Airflow deployment on this machine, for tests: the api-server, scheduler,
dag-processor and triggerer as separate processes (LocalExecutor, SQLite), configured
only through the environment, exactly as docs/deploy.md tells an operator to.

Nothing here runs a DAG by hand: runs are created by the scheduler from the DAGs'
schedules, as in production. The children get an environment built from scratch (no
inherited test settings, no EV_PASSWORD); their logs stay in the deployment's folder
and are printed when a wait times out.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

AIRFLOW = str(Path(sys.executable).parent / "airflow")
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")


class Deployment:
    def __init__(self, home: Path, api_port: int, settings: dict[str, str]) -> None:
        self.home = home
        self.db = home / "airflow.db"
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
            **settings,
        }
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
        for service in SERVICES:
            with (self.home / f"{service}.log").open("wb") as log:  # the child keeps its own copy
                self.processes[service] = subprocess.Popen(
                    [AIRFLOW, service], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
                    start_new_session=True,
                )  # fmt: skip
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read Airflow's metadata database (the test's own reads, never a task's)."""
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
