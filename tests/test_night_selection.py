"""The scheduled-night tests wait only for nights the scheduler will run, at any hour (issue 28).

Those tests once waited 15 minutes for a night that was not due: between 00:00 and 02:00
UTC the previous night's 02:00 run has not come yet. Here the nights they choose
(`nights_due`) are checked at the four moments that matter, against the nightly DAG's own
timetable as the scheduler computes it (`SerializedDAG.next_dagrun_info`, with the
`EV_ARCHIVE_START`/`EV_ARCHIVE_END` the tests set): every chosen night is already due, no
later night is, and the scheduler creates a run for each chosen night and for nothing else,
so the wait has at least one night and ends. The moments are built on the product clock's
day, never on the machine's hour.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from ev_ingest import clock
from tests.conftest import ROOT
from tests.test_scheduler import nights_due

pytestmark = pytest.mark.airflow
MOMENTS = [time(0, 30), time(1, 59), time(2, 0), time(23, 59)]


def scheduled_runs(monkeypatch: pytest.MonkeyPatch, start: datetime, end: datetime) -> list[Any]:
    """Every run the scheduler would create for the nightly DAG parsed with this window."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("EV_SCHEDULE_TIMEZONE", "UTC")
    monkeypatch.setenv("EV_ARCHIVE_START", f"{start:%Y-%m-%d}")
    monkeypatch.setenv("EV_ARCHIVE_END", f"{end:%Y-%m-%d}")
    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ev_nightly_archive.py"), bundle_path=Path(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["ev_nightly_archive"]))
    runs, info = [], dag.next_dagrun_info(last_automated_run_info=None)
    while info is not None:
        runs.append(info)
        assert len(runs) <= 10, runs  # the window is bounded: the scheduler stops at EV_ARCHIVE_END
        info = dag.next_dagrun_info(last_automated_run_info=info)
    return runs


@pytest.mark.parametrize("at", MOMENTS, ids=lambda t: t.strftime("%H%M"))
@pytest.mark.parametrize("nights", [1, 2])
def test_the_nights_waited_for_are_due_and_the_only_ones_run(monkeypatch, at, nights):
    now = datetime.combine(clock.midnight(0).date(), at, tzinfo=clock.now().tzinfo)
    days = nights_due(now, nights)
    assert len(days) == nights
    runs = scheduled_runs(monkeypatch, days[0], days[-1])
    # One run per chosen night, in order, each for that whole night, none for a later one.
    assert [r.data_interval.start for r in runs] == [d + timedelta(hours=2) for d in days]
    assert all(r.run_after <= now for r in runs), (now, runs)  # all due: the wait ends
    # They are the latest due nights: the night after the last is not due yet.
    assert days[-1] + timedelta(days=2, hours=2) > now


def test_archive_window_errors_are_one_line(monkeypatch):
    import sys

    sys.path.insert(0, str(ROOT / "dags"))
    try:
        from ev_tasks import archive_window
    finally:
        sys.path.remove(str(ROOT / "dags"))
    monkeypatch.setenv("EV_ARCHIVE_START", "2026-12-03")
    monkeypatch.setenv("EV_ARCHIVE_END", "2026-12-01")
    with pytest.raises(ValueError, match=r"^EV_ARCHIVE_END=2026-12-01 is before EV_ARCHIVE_START=2026-12-03$"):
        archive_window()
    monkeypatch.setenv("EV_ARCHIVE_END", "12/01/2026")
    with pytest.raises(ValueError, match=r"^EV_ARCHIVE_END='12/01/2026': expected a day as YYYY-MM-DD$"):
        archive_window()
