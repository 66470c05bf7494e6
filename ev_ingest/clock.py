"""The one wall clock of ev-ingest: every "now" in the product comes from `now()`.

Retention dates, "has this interval ended", audit and manifest timestamps and the
simulator's unfrozen clock all read it, so one setting moves them together. Tests
derive their fixed moments from it too (`midnight()`), never from a calendar date
written in the code: a suite pinned to a date goes red by itself once that date is
in the past (it did, on 2026-11-23).

`EV_CLOCK_SHIFT_DAYS` moves this clock forward by whole days. It exists for one
purpose: running the suite "a year from now" to prove that nothing depends on today's
date. libfaketime cannot do that here, because the embedded store is a static Go
binary that keeps the real time and refuses S3 requests signed a year ahead
(RequestTimeTooSkewed). Only forward shifts are allowed: a store compares retain-until
dates with its own (real) clock, so a date computed in the past would be refused.
A shifted clock is never silent: it is logged once, as a warning.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from functools import cache

SHIFT_ENV = "EV_CLOCK_SHIFT_DAYS"
log = logging.getLogger(__name__)


@cache
def shift() -> timedelta:
    """The configured forward shift (zero unless `EV_CLOCK_SHIFT_DAYS` is set)."""
    text = os.environ.get(SHIFT_ENV, "").strip()
    if not text:
        return timedelta(0)
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"{SHIFT_ENV}={text!r}: expected a whole number of days") from None
    if not 0 <= days <= 36500:
        raise ValueError(f"{SHIFT_ENV}={days}: only forward shifts of 0..36500 days are allowed")
    if days:
        log.warning("the clock is shifted %d days ahead (%s is set: tests only)", days, SHIFT_ENV)
    return timedelta(days=days)


def now() -> datetime:
    """The current moment, timezone-aware UTC."""
    return datetime.now(UTC) + shift()


def midnight(days_ago: int = 1) -> datetime:
    """Midnight UTC `days_ago` days before today on this clock: fixed for a whole day,
    so a test run's recordings, searches and ground truth do not move under it."""
    today = now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)
