"""The layers import downwards only, checked on every module's imports (not only written down).

    dags (DAG files, ev_tasks, the demo launcher)  ->  pipelines  ->  ev_ingest

- `ev_ingest` (client, store, simulator) imports neither `pipelines`, the DAGs, Airflow
  nor OpenCV; only `ev_ingest/airflow` (hook, trigger, provider) imports Airflow.
- `pipelines` never imports Airflow or the DAGs, and uses `ev_ingest` through its public
  modules: no `_private` module or name.
- DAG files import heavy libraries inside tasks (tests/test_dags.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

DAG_MODULES = {p.stem for p in (ROOT / "dags").glob("*.py")}


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in a file, top level or nested."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def violations(package: str, rule) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module, names in imports(path):
            problem = rule(path.relative_to(ROOT).as_posix(), module, names)
            if problem:
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}: {problem}")
    return out


def top(module: str) -> str:
    return module.split(".", 1)[0]


def ev_ingest_rule(path: str, module: str, names: list[str]) -> str | None:
    if top(module) in ("pipelines", "dags") or module in DAG_MODULES:
        return "ev_ingest is the bottom layer"
    if top(module) == "cv2":
        return "OpenCV belongs to pipelines.video"
    if top(module) == "airflow" and not path.startswith("ev_ingest/airflow/"):
        return "only ev_ingest/airflow imports Airflow"
    return None


def pipelines_rule(path: str, module: str, names: list[str]) -> str | None:
    if top(module) in ("airflow", "dags") or module in DAG_MODULES:
        return "pipelines never imports Airflow or the DAGs"
    if top(module) == "ev_ingest":
        private = [part for part in module.split(".") if part.startswith("_")]
        private += [name for name in names if name.startswith("_")]
        if private:
            return f"private {private} of ev_ingest"
    return None


def test_ev_ingest_imports_nothing_above_it():
    assert violations("ev_ingest", ev_ingest_rule) == []


def test_pipelines_imports_neither_airflow_nor_private_parts():
    assert violations("pipelines", pipelines_rule) == []


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The check itself can fail: each rule flags a module that breaks it."""
    assert ev_ingest_rule("ev_ingest/store/x.py", "pipelines.nightly.steps", [])
    assert ev_ingest_rule("ev_ingest/store/x.py", "airflow.sdk", [])
    assert ev_ingest_rule("ev_ingest/airflow/hooks.py", "airflow.sdk", []) is None
    assert pipelines_rule("pipelines/demo.py", "airflow.utils", ["db"])
    assert pipelines_rule("pipelines/nightly/steps.py", "ev_ingest.client._base", ["DownloadTracker"])
    assert pipelines_rule("pipelines/nightly/steps.py", "ev_ingest.client", ["_secret"])
    assert pipelines_rule("pipelines/nightly/steps.py", "ev_tasks", [])
    assert pipelines_rule("pipelines/nightly/steps.py", "ev_ingest.store", ["ArchiveStore"]) is None
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from airflow.utils import db\n")
    assert imports(bad) == [(2, "airflow.utils", ["db"])]  # nested imports are seen too
