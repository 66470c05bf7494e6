"""An `EV_ON_FAILURE` target for the DAG tests: records the id of each task that alerted."""

from __future__ import annotations

from typing import Any

ALERTED: list[str] = []


def record(context: Any) -> None:
    ALERTED.append(context["ti"].task_id)
