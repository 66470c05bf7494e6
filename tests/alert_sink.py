"""`EV_ON_FAILURE` targets for the DAG tests: `record` keeps the id of each task that
alerted in memory (`dag.test()` runs in this process), `to_file` appends it to the file
named by `EV_TEST_ALERTS` (a real deployment's task processes)."""

from __future__ import annotations

import os
from typing import Any

ALERTED: list[str] = []


def record(context: Any) -> None:
    ALERTED.append(context["ti"].task_id)


def to_file(context: Any) -> None:
    ti = context["ti"]
    with open(os.environ["EV_TEST_ALERTS"], "a") as alerts:
        alerts.write(f"{ti.dag_id} {ti.run_id} {ti.task_id}\n")
