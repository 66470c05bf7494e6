"""Attack: an event cut by the midnight chunk boundary, read one day at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ev_ingest.store import keys as store_keys
from pipelines.analytics.datasets import Archive
from pipelines.video.summary import Event, events_table, write_parquet

MIDNIGHT = datetime(2026, 11, 21, tzinfo=UTC)


def _part(root, start, events):
    key = store_keys.motion_key("events", "HQ", "nvr1", 1, start)
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(events_table(events, 1, start, f"exports/{start:%H%M}.mp4"), path)


def _event(start_s, end_s):
    return Event(
        start_s=start_s,
        end_s=end_s,
        peak=0.2,
        mean=0.1,
        frames=int((end_s - start_s) * 25),
        bbox=(0.1, 0.1, 0.3, 0.3),
        peak_s=start_s,
        peak_bbox=None,
    )


def _archive(tmp_path):
    # Two hourly chunks: 23:00-00:00 (event 3590-3600 s) and 00:00-01:00 (event 0-20 s).
    _part(tmp_path, MIDNIGHT - timedelta(hours=1), [_event(3590.0, 3600.0)])
    _part(tmp_path, MIDNIGHT, [_event(0.0, 20.0)])
    return Archive.local(tmp_path)


def test_read_across_midnight_the_event_is_one(tmp_path):
    archive = _archive(tmp_path)
    both = archive.motion_events("HQ", start=MIDNIGHT - timedelta(hours=1), end=MIDNIGHT + timedelta(hours=1))
    assert list(both["parts"]) == [2]  # holds: read in one call it is one event


def test_a_day_at_a_time_counts_the_midnight_event_once(tmp_path):
    """The notebook's usual read (`start=day`, `days=1`) day after day: the event crossing
    midnight is counted on both days, the second day's piece starting at 00:00:00 as if
    motion began at midnight (parts=1 on each)."""
    archive = _archive(tmp_path)
    day1 = archive.motion_events("HQ", start=MIDNIGHT - timedelta(days=1))
    day2 = archive.motion_events("HQ", start=MIDNIGHT)
    total = len(day1) + len(day2)
    assert total == 1, (day1[["start", "end", "parts"]], day2[["start", "end", "parts"]])


def test_a_window_starting_mid_event_has_no_event_starting_at_the_boundary(tmp_path):
    """ "Motion events that start in [start, end)": the event started at 23:59:50, before
    the window; its second part is returned as an event that starts at midnight."""
    archive = _archive(tmp_path)
    window = archive.motion_events("HQ", start=MIDNIGHT - timedelta(seconds=5), end=MIDNIGHT + timedelta(hours=1))
    # Either the whole event (it started before the window: excluded) or nothing, never a
    # piece that claims motion started at midnight.
    assert not (window["start"] == MIDNIGHT).any(), window[["start", "end", "parts"]]


def test_stitching_follows_the_cameras_merge_gap(tmp_path):
    """stitch always uses MotionConfig()'s default merge_gap (1 s), whatever the site or
    camera is configured with (`motion.merge_gap`, `motion_cameras`): with merge_gap 0.2
    (configured), the detector keeps two events of one chunk 0.5 s apart as two, and
    motion_events joins them as one of "parts=2" (the docs: "a chunk's own events are
    never that close", "`parts` says how many chunks an event spans")."""
    _part(tmp_path, MIDNIGHT, [_event(10.0, 12.0), _event(12.5, 14.0)])  # one chunk
    events = Archive.local(tmp_path).motion_events("HQ", start=MIDNIGHT)
    assert len(events) == 2 or events.iloc[0]["parts"] == 1, events[["start", "end", "parts", "source"]]
