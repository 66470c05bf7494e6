"""Loading from the archive reads only the partitions asked for."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq

from pipelines.analytics.datasets import Archive
from pipelines.video.summary import Track, timeline_table


def test_one_camera_day_of_a_30_day_16_camera_archive(tmp_path):
    first = datetime(2026, 10, 1, tzinfo=UTC)
    seconds = np.arange(0, 86400, 60, dtype=np.float64)  # one row a minute keeps the fixture small
    for day in range(30):
        for camera in range(16):
            start = first + timedelta(days=day)
            folder = tmp_path / f"motion/timeline/site=HQ/camera={4593152 + 256 * camera}/date={start:%Y-%m-%d}"
            folder.mkdir(parents=True)
            track = Track(seconds, np.full(len(seconds), camera / 100, np.float32), np.full((len(seconds), 4), np.nan))
            for part in range(4):  # four exports a day
                pq.write_table(
                    timeline_table(track, 4593152 + 256 * camera, start, "x").slice(part * 360, 360),
                    folder / f"part-{part}.parquet",
                )
    archive = Archive.local(tmp_path)
    began = time.perf_counter()
    frame = archive.motion_timeline("HQ", cameras=[4593152 + 256 * 5], start=first + timedelta(days=12))
    elapsed = time.perf_counter() - began
    assert archive.files_opened == 4  # that camera-day's parts, out of 1920 files
    assert len(frame) == 1440 and set(frame["camera_id"]) == {4593152 + 256 * 5}
    assert frame["ts"].min() == first + timedelta(days=12)
    assert elapsed < 1.0
    print(f"\none camera-day of 30 days x 16 cameras: {archive.files_opened} files opened, {elapsed * 1000:.0f} ms")


def test_both_key_layouts_read_with_their_server(tmp_path):
    """Archives written before the server was part of the identity (`camera=C`) stay
    readable beside the current `server=V/camera=C` layout; rows say which server."""
    day = datetime(2026, 10, 1, tzinfo=UTC)
    seconds = np.arange(0, 600, 60, dtype=np.float64)
    for prefix, level in (("camera=7", 0.1), ("server=nvr1/camera=7", 0.2), ("server=nvr2/camera=7", 0.3)):
        folder = tmp_path / f"motion/timeline/site=HQ/{prefix}/date={day:%Y-%m-%d}"
        folder.mkdir(parents=True)
        track = Track(seconds, np.full(len(seconds), level, np.float32), np.full((len(seconds), 4), np.nan))
        pq.write_table(timeline_table(track, 7, day, "x"), folder / "part-0.parquet")
    archive = Archive.local(tmp_path)
    frame = archive.motion_timeline("HQ", start=day)
    levels = {server: round(float(score), 2) for server, score in frame.groupby("server")["score"].first().items()}
    assert levels == {"": 0.1, "nvr1": 0.2, "nvr2": 0.3}
    only = archive.motion_timeline("HQ", cameras=[7], servers=["nvr2"], start=day)
    assert set(only["server"]) == {"nvr2"} and archive.files_opened == 1
