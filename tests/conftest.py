"""Shared fixtures: the real parts (simulator on a socket, SeaweedFS, Airflow) and small helpers.

Airflow's environment is set at import time, before anything can import airflow (an
import with no AIRFLOW_HOME creates ~/airflow). The home is a git-ignored folder inside
the repo: a temporary one gets re-created by sqlite at interpreter exit. Each pytest-xdist
worker (`make check` and `make test` run two) has a home of its own, with its own Airflow
database and signing key; the controller (or a plain `pytest`) clears them all first.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pathlib
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_HOMES = ROOT / ".airflow-test-home"
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1 in a worker; unset in the controller
if _WORKER is None:  # imported before any worker starts
    shutil.rmtree(_HOMES, ignore_errors=True)
_HOME = _HOMES / (_WORKER or "main")
shutil.rmtree(_HOME, ignore_errors=True)
_HOME.mkdir(parents=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
)
os.environ.setdefault("EV_SIM_CACHE", str(ROOT / ".cache" / "simulator"))
# Everything this run starts (SeaweedFS, Airflow deployments, PostgreSQL, redis, CLI children)
# is marked, and ends with the run even when pytest is killed (tests/reaper.py).
from tests import reaper  # noqa: E402

reaper.start()
# dag.test() sleeps through real retries: DAG tests run without them (see test_nightly_structure).
os.environ["EV_TASK_RETRIES"] = "0"

from ev_ingest import clock  # noqa: E402
from ev_ingest.store.signing import Signer  # noqa: E402

# Every record the suite commits is signed, as in production: one key per session, in a
# 0600 file as an operator's would be (the scheduler tests hand it over as the Airflow
# connection `ev_signing` instead).
SIGNING_KEY = _HOME / "signing.pem"
SIGNER = Signer.generate()
SIGNER.write(SIGNING_KEY)
os.environ["EV_SIGNING_KEY_FILE"] = str(SIGNING_KEY)
from ev_ingest.simulator import SimulatorConfig, SimulatorServer  # noqa: E402

# The simulator's frozen clock, derived from the one clock (never a calendar date written
# here: a suite pinned to a date went red by itself once retention dates fell in the past).
# Yesterday noon UTC: fixed for a whole day, so recordings, searches and ground truth do
# not move during a run, and the simulator's 7 days of recordings end in the real past.
FROZEN_NOW = clock.midnight(1) + timedelta(hours=12)


def day(offset: int = 0) -> str:
    """FROZEN_NOW's UTC date moved by `offset` days, as YYYY-MM-DD."""
    return (FROZEN_NOW + timedelta(days=offset)).strftime("%Y-%m-%d")


def stamp(moment: datetime) -> str:
    """The compact UTC stamp that object keys and run ids use."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


PASSWORD = "s3cret-Pa55word!"


def sim_config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = dict(
        port=0,
        cameras=4,
        width=320,
        height=240,
        fps=25,
        frozen_now=FROZEN_NOW,
        timezone_hours=-5,
        export_rate=360_000.0,
    )
    values.update(overrides)
    return SimulatorConfig(**values)


@pytest.fixture(scope="session", autouse=True)
def _password_env() -> Iterator[None]:
    previous = os.environ.get("EV_PASSWORD")
    os.environ["EV_PASSWORD"] = PASSWORD
    yield
    if previous is None:
        os.environ.pop("EV_PASSWORD", None)
    else:
        os.environ["EV_PASSWORD"] = previous


@pytest.fixture(scope="session")
def sim(_password_env: None) -> Iterator[SimulatorServer]:
    """The simulator on a real socket, 4 small cameras, frozen clock, no faults."""
    with SimulatorServer(sim_config()) as server:
        yield server


@pytest.fixture
def make_sim(_password_env: None) -> Iterator[Any]:
    """Start extra simulators with their own settings (faults, short sessions); stopped after the test."""
    started: list[SimulatorServer] = []

    def make(**overrides: Any) -> SimulatorServer:
        server = SimulatorServer(sim_config(**overrides)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


class SyncOverAsync:
    """Drives an async object from sync tests: coroutines are awaited, async iterators and
    async context managers become sync ones. Lets one test suite run against both clients."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def _run(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self._loop).result()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(value(*args, **kwargs))

            return call
        return self._wrap(value)

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            return self._wrap(self._run(value))
        if inspect.isasyncgen(value):
            return self._iterate(value)
        if hasattr(value, "__aenter__") and not hasattr(value, "__enter__"):
            return SyncOverAsync(value, self._loop)
        if type(value).__module__.startswith("ev_ingest.client") and hasattr(value, "_client"):
            return SyncOverAsync(value, self._loop)
        return value

    def _iterate(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(agen.aclose())

    def __enter__(self) -> SyncOverAsync:
        self._run(self._target.__aenter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._run(self._target.__aexit__(*exc))


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


@pytest.fixture(scope="session")
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest, event_loop_thread: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Build an ExacqClient, or an AsyncExacqClient driven through SyncOverAsync: same tests for both."""
    from ev_ingest.client import AsyncExacqClient, ExacqClient

    made: list[Any] = []

    def make(url: str, username: str = "admin", password: str = PASSWORD, **kwargs: Any) -> Any:
        if request.param == "sync":
            client = ExacqClient(url, username, password, **kwargs)
        else:

            async def build() -> AsyncExacqClient:
                return AsyncExacqClient(url, username, password, **kwargs)

            client = SyncOverAsync(
                asyncio.run_coroutine_threadsafe(build(), event_loop_thread).result(), event_loop_thread
            )
        made.append(client)
        return client

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def strict_sim(_password_env: None) -> Iterator[SimulatorServer]:
    """The simulator's strict profile: only what the seed and the public clients show."""
    with SimulatorServer(sim_config(profile="strict")) as server:
        yield server


@pytest.fixture(params=["full", "strict"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ev(make_client: Any, profile: str, request: pytest.FixtureRequest) -> Any:
    """A client of the simulator, once per profile: the client suite runs against both."""
    server = request.getfixturevalue("sim" if profile == "full" else "strict_sim")
    return make_client(server.url)


S3_SECRET = "test-secret-" + "x" * 16


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SeaweedFS `weed mini` on free ports for the whole session (about 1 s to start)."""
    from ev_ingest.store import EmbeddedS3

    with EmbeddedS3(tmp_path_factory.mktemp("s3data"), secret_key=S3_SECRET) as server:
        yield reaper.registered(server)


@pytest.fixture
def make_store(s3_server: Any, request: pytest.FixtureRequest) -> Any:
    """A fresh Object Lock bucket per call (locked buckets cannot be emptied between tests)."""
    import itertools
    import re

    from ev_ingest.store import ArchiveStore, StoreSettings

    counter = itertools.count()

    def make(lock: bool = True, **overrides: Any) -> ArchiveStore:
        name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
        settings = StoreSettings(
            bucket=f"{name}-{next(counter)}",
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=S3_SECRET,
            **overrides,
        )
        store = ArchiveStore(settings)
        store.ensure_bucket(object_lock=lock)
        return store

    return make


@pytest.fixture
def store(make_store: Any) -> Any:
    return make_store()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database (SQLite in the git-ignored test home), created once."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def dagbag(airflow_db: None) -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    # As the DAG processor does: the bundle folder goes on sys.path (DAGs import ev_tasks from it).
    return BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")


# --- one nightly run, shared by the step, report and data-access tests ----------------------
START = FROZEN_NOW - timedelta(hours=4)
END = START + timedelta(hours=2)


def pipeline_config(sim: SimulatorServer, **overrides: Any) -> Any:
    from pipelines.config import PipelineConfig

    data = {
        "sites": [
            {
                "name": "HQ",
                "timezone": "America/New_York",
                "servers": [
                    {
                        "name": "nvr1",
                        "url": f"exacqvision://admin@{sim.url.split('://')[1]}",
                        "exclude_cameras": [4593664],
                    }
                ],
            }
        ],
        "export": {"format": "mp4", "chunk_minutes": 60, "poll_interval_s": 0.05},
        "retention": {"mode": "GOVERNANCE", "days": 7, "cameras": {"4593152": {"days": 30}}},
        "thumbnails": {"interval_s": 1200, "width": 160},
    }
    data.update(overrides)
    return PipelineConfig.model_validate(data)


@pytest.fixture(scope="session")
def archived(sim: SimulatorServer, s3_server: Any) -> Any:
    """One nightly run over two hours of three cameras (one of them motion-triggered)."""
    from ev_ingest.store import ArchiveStore, StoreSettings
    from pipelines.nightly.run import run_nightly

    config = pipeline_config(sim)
    store = ArchiveStore(
        StoreSettings(
            bucket="pipeline-steps",
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
        )
    )
    store.ensure_bucket()
    result = run_nightly(config, store, "HQ", START, END, workers=1)
    return config, store, result


# The longest modules start first: with two workers (`-n 2 --dist loadfile
# --no-loadscope-reorder`: xdist's default reorders modules by test count), each module
# whole on one worker), a 3-minute module handed out last leaves the other worker idle
# (measured: 10:31 with the scheduler night last). Only the modules' order changes; the
# tests of a module keep theirs (some build on the module's shared fixtures in order).
LONG_MODULES = ("test_scheduler.py", "test_notebooks.py", "test_dags.py", "test_process_faults.py", "test_horizon.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: every other order is kept
