"""The one wall clock of ev-ingest: every "now" in the product comes from `now()`.

Retention dates, "has this interval ended", audit and manifest timestamps and the
simulator's unfrozen clock all read it, so one setting moves them together. Tests
derive their fixed moments from it too (`midnight()`), never from a calendar date
written in the code: a suite pinned to a date goes red by itself once that date is
in the past (it did, on 2026-11-23).

Two settings move this clock forward, and they add up:
- `EV_CLOCK_SHIFT_DAYS`: whole days, to run the suite "a year from now" and prove that
  nothing depends on today's date;
- `EV_CLOCK_SHIFT_SECONDS`: seconds, to run it at another hour of the day (a suite once
  failed only between 00:00 and 02:00 UTC). `python -m ev_ingest.clock --seconds-until
  00:30` prints the shift that makes the clock read 00:30 UTC now; the shift is fixed
  once computed, so every process of one run (pytest, its CLI children, an Airflow
  deployment's tasks) reads the same time.

libfaketime cannot do either here, because the embedded store is a static Go binary that
keeps the real time and refuses S3 requests signed at another time (RequestTimeTooSkewed).
Only forward shifts are allowed: a store compares retain-until dates with its own (real)
clock, so a date computed in the past would be refused. A shifted clock is never silent:
it is logged once, as a warning.
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, datetime, time, timedelta
from functools import cache

SHIFT_ENV = "EV_CLOCK_SHIFT_DAYS"
SHIFT_SECONDS_ENV = "EV_CLOCK_SHIFT_SECONDS"
SHIFT_ENVS = (SHIFT_ENV, SHIFT_SECONDS_ENV)  # what a child process must inherit to share this clock
MAX_DAYS = 36500
log = logging.getLogger(__name__)


def _forward(name: str, unit: str, limit: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a whole number of {unit}") from None
    if not 0 <= value <= limit:
        raise ValueError(f"{name}={value}: only forward shifts of 0..{limit} {unit} are allowed")
    return value


@cache
def shift() -> timedelta:
    """The configured forward shift (zero unless `EV_CLOCK_SHIFT_DAYS` or `EV_CLOCK_SHIFT_SECONDS` is set)."""
    total = timedelta(
        days=_forward(SHIFT_ENV, "days", MAX_DAYS),
        seconds=_forward(SHIFT_SECONDS_ENV, "seconds", MAX_DAYS * 86400),
    )
    if total:
        log.warning("the clock is shifted %s ahead (%s is set: tests only)", total, " or ".join(SHIFT_ENVS))
    return total


def now() -> datetime:
    """The current moment, timezone-aware UTC."""
    return datetime.now(UTC) + shift()


def midnight(days_ago: int = 1) -> datetime:
    """Midnight UTC `days_ago` days before today on this clock: fixed for a whole day,
    so a test run's recordings, searches and ground truth do not move under it."""
    today = now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def seconds_until(at: time, moment: datetime) -> int:
    """The forward shift, in whole seconds (0 to 86399), that makes `moment` read `at` UTC."""
    target = datetime.combine(moment.date(), at, tzinfo=UTC)
    return int((target - moment).total_seconds()) % 86400


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ev_ingest.clock", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-until", metavar="HH:MM", required=True, type=time.fromisoformat,
                        help=f"print the {SHIFT_SECONDS_ENV} that makes the clock read HH:MM UTC now")  # fmt: skip
    args = parser.parse_args(argv)
    # From the real time plus any days already set: the seconds only move the hour.
    print(seconds_until(args.seconds_until, datetime.now(UTC)))


if __name__ == "__main__":
    main()
