"""A camera-day is one stream (issue 26 item 2): each chunk is pre-rolled with the end of the
chunk before it, and an event cut by a chunk boundary is one event when read.

Against the real parts: the synthetic scene encoded by the simulator's encoder, the
simulator on a socket and SeaweedFS for the night; a ranged reader against SeaweedFS."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from ev_ingest.client import ExacqClient
from ev_ingest.simulator import scene
from ev_ingest.simulator.recordings import make_clip, truth
from ev_ingest.store import ManifestEntry
from ev_ingest.store.ranged import RangeBudgetExceeded, RangedObject
from pipelines.analytics.datasets import Archive, stitch
from pipelines.nightly import motion_step as motion
from pipelines.nightly.run import run_nightly
from pipelines.video import analyze, media
from tests.conftest import FROZEN_NOW, PASSWORD, pipeline_config

SITE = scene.Site(cameras=1, width=320, height=240, retention_days=3650, now=FROZEN_NOW)
CAMERA = SITE.camera_list[0]
HALF = 30  # seconds on each side of the boundary


def _crossing() -> tuple:
    """A moment with an event of the scene on both sides of it (3 s or more each)."""
    around = (FROZEN_NOW - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    for step in range(0, 6 * 3600, 10):
        at = around + timedelta(seconds=step)
        inside = [
            e for e in truth(SITE, CAMERA, at - timedelta(seconds=HALF), 2 * HALF) if e[0] < HALF - 3 < HALF + 3 < e[1]
        ]
        if inside:
            return at, inside[0]
    raise LookupError("no event crosses a boundary in six hours of the scene")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The same minute of one camera as one clip and as two chunks cut inside an event."""
    folder = tmp_path_factory.mktemp("split")
    at, event = _crossing()
    common = {"width": 320, "height": 240, "preset": "ultrafast"}
    whole = make_clip(folder / "whole.mp4", start=at - timedelta(seconds=HALF), seconds=2 * HALF, **common)
    before = make_clip(folder / "before.mp4", start=at - timedelta(seconds=HALF), seconds=HALF, **common)
    after = make_clip(folder / "after.mp4", start=at, seconds=HALF, **common)
    return whole, before, after, event


def spans(summary):
    return [(round(e.start_s, 2), round(e.end_s, 2)) for e in summary.events]


@pytest.mark.parametrize("mode", ["full", "gated", "keyframe"])
def test_a_chunk_pre_rolled_with_the_one_before_starts_warm(split, mode):
    """Cold, the detector learns the person in the chunk's first frame as background; when
    they walk on, the spot they left stays "moving" to the chunk's end (measured: 0.0-30.0
    for a walk that ends at 3.8 s). Pre-rolled, the chunk's event ends when the walk does."""
    whole, before, after, (_, end_s, _) = split
    tail = media.tail(before.path, motion.PREROLL_S)
    assert tail.ends_s == pytest.approx(HALF, abs=0.05)
    warm = analyze(after.path, mode=mode, workers=1, preroll=tail.data)
    assert warm.preroll_s >= motion.PREROLL_S - 0.1 - (scene.GOP_SECONDS if mode == "keyframe" else 0)
    tolerance = 1.0 if mode != "keyframe" else 2.0 + 0.05  # keyframe mode: ends rounded to a GOP
    first = warm.events[0]
    assert first.start_s == 0.0, spans(warm)  # present from the chunk's first frame
    assert abs(first.end_s - (end_s - HALF)) <= tolerance, spans(warm)
    # The chunk's own time line: nothing of the pre-roll is in it.
    assert warm.track.t[0] >= 0.0 and warm.duration_s == pytest.approx(HALF, abs=0.05)


def test_the_two_halves_stitch_to_the_event_of_the_whole(split):
    whole, before, after, _ = split
    at = whole.start
    rows = []
    for clip, summary in (
        (before, analyze(before.path, mode="full", workers=1)),
        (after, analyze(after.path, mode="full", workers=1, preroll=media.tail(before.path, 15).data)),
    ):
        table = summary.events_table().to_pandas() if summary.events else None
        if table is not None:
            table.insert(0, "server", "nvr1")
            rows.append(table.assign(start=table["start"] + (clip.start - at), end=table["end"] + (clip.start - at)))
    joined = stitch(pd.concat(rows, ignore_index=True))
    reference = analyze(whole.path, mode="full", workers=1)
    crossing = [e for e in reference.events if e.start_s < HALF < e.end_s]
    merged = joined[joined["parts"] == 2]
    assert len(crossing) == 1 and len(merged) == 1, joined[["start", "end", "parts"]]
    epoch = pd.Timestamp(0, tz="UTC")
    start_s, end_s = (
        (merged.iloc[0]["start"] - epoch).total_seconds(),
        (merged.iloc[0]["end"] - epoch).total_seconds(),
    )
    assert abs(start_s - crossing[0].start_s) <= 1.0 and abs(end_s - crossing[0].end_s) <= 1.0


def _events(rows):
    """An events frame as `Archive.motion_events` reads it, from (server, camera, start_s, end_s)."""
    at = pd.Timestamp("2026-11-20T10:00:00Z")
    return pd.DataFrame(
        {
            "server": [r[0] for r in rows],
            "camera_id": [r[1] for r in rows],
            "camera_name": ["c"] * len(rows),
            "start": [at + pd.Timedelta(seconds=r[2]) for r in rows],
            "end": [at + pd.Timedelta(seconds=r[3]) for r in rows],
            "peak": np.float32(0.1),
            "mean": np.float32(0.05),
            "frames": np.int32(10),
            "bbox": [np.array([0.1, 0.1, 0.2, 0.2], np.float32)] * len(rows),
            "source": [f"exports/chunk-{int(r[2] // 3600)}.mp4" for r in rows],  # hourly chunks
        }
    )


def test_stitching_joins_only_what_the_chunking_cut():
    """Out of order on purpose: two servers with the same camera id, a gap of 1.5 s (two
    events), a touching pair (one), a second camera at the same time (its own)."""
    frame = _events(
        [
            ("nvr1", 1, 3599.2, 3600.0),
            ("nvr2", 1, 3600.0, 3603.0),  # same id, other server: not the same camera
            ("nvr1", 1, 3600.0, 3604.0),  # touches the first across the boundary: one event
            ("nvr1", 2, 3600.1, 3601.0),  # another camera
            ("nvr1", 1, 3605.5, 3606.0),  # 1.5 s after: an event of its own
        ]
    )
    joined = stitch(frame)
    assert list(zip(joined["server"], joined["camera_id"], joined["parts"], strict=True)) == [
        ("nvr1", 1, 2),
        ("nvr1", 1, 1),
        ("nvr1", 2, 1),
        ("nvr2", 1, 1),
    ]
    first = joined.iloc[0]
    assert (first["end"] - first["start"]).total_seconds() == pytest.approx(4.8)
    assert first["frames"] == 20 and stitch(joined).equals(joined)  # idempotent


@pytest.fixture(scope="module")
def night(sim, s3_server):
    """Two one-minute chunks of one camera, cut inside one of its events, archived and
    summarised by the in-process night against the simulator and SeaweedFS."""
    around = FROZEN_NOW - timedelta(hours=30)
    answer = httpx.get(
        sim.url + "/_sim/truth",
        params={"start": around.isoformat(), "end": (around + timedelta(hours=6)).isoformat()},
    ).json()
    camera = 4593152
    boundary = event = None
    for candidate in (e for e in answer["events"] if e["camera"] == camera):
        start = pd.Timestamp(candidate["start"]).to_pydatetime()
        end = pd.Timestamp(candidate["end"]).to_pydatetime()
        # A boundary on the GOP grid (exports are cut at keyframes) 2 s or more inside the event.
        into = start + timedelta(seconds=2)
        moment = into.replace(microsecond=0) + timedelta(seconds=(-into.replace(microsecond=0).second) % 2 or 2)
        moment = moment if moment >= into else moment + timedelta(seconds=2)
        if moment <= end - timedelta(seconds=2):
            boundary, event = moment, candidate
            break
    assert boundary is not None, "no event of the camera is long enough to cut"
    servers = [{"name": "nvr1", "url": f"exacqvision://admin@{sim.url.split('://')[1]}", "include_cameras": [camera]}]
    config = pipeline_config(
        sim,
        sites=[{"name": "HQ", "servers": servers}],
        export={"format": "mp4", "chunk_minutes": 1, "poll_interval_s": 0.05},
        motion_mode="full",
    )
    store = _store(s3_server, "camera-day")
    result = run_nightly(
        config, store, "HQ", boundary - timedelta(minutes=1), boundary + timedelta(minutes=1), workers=1
    )
    return config, store, result, boundary, event


def _store(s3_server, bucket):
    from ev_ingest.store import ArchiveStore, StoreSettings

    store = ArchiveStore(
        StoreSettings(
            bucket=bucket,
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
        )
    )
    store.ensure_bucket()
    return store


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_an_event_across_a_chunk_boundary_is_one_event_of_the_day(night):
    config, store, result, boundary, event = night
    assert [e.start for e in result.manifest.exports()] == [boundary - timedelta(minutes=1), boundary]
    events = Archive.from_store(store).motion_events(
        "HQ", start=boundary - timedelta(minutes=1), end=boundary + timedelta(minutes=1)
    )
    start, end = pd.Timestamp(event["start"]), pd.Timestamp(event["end"])
    crossing = events[(events["start"] < pd.Timestamp(boundary)) & (events["end"] > pd.Timestamp(boundary))]
    assert len(crossing) == 1 and crossing.iloc[0]["parts"] == 2, events[["start", "end", "parts"]]
    assert abs((crossing.iloc[0]["start"] - start).total_seconds()) <= 1.0
    assert abs((crossing.iloc[0]["end"] - end).total_seconds()) <= 1.0
    # The second chunk's own summary reports the event from the chunk's first second.
    second = [e for e in result.motion_manifest.entries if e.kind == "motion_events" and e.start == boundary]
    table = pd.read_parquet(io.BytesIO(store.get_bytes(second[0].key)))
    assert (table["start"].min() - pd.Timestamp(boundary)).total_seconds() <= 1.0


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_a_rerun_of_the_night_writes_nothing_new(night):
    config, store, result, boundary, _ = night
    before = {k: store.versions(k) for k in store.list_keys("")}
    run_nightly(config, store, "HQ", boundary - timedelta(minutes=1), boundary + timedelta(minutes=1), workers=1)
    assert {k: store.versions(k) for k in store.list_keys("")} == before


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_the_pre_roll_reads_only_the_end_of_an_hour_export(night, sim):
    """An hour's export of the simulator (a fragmented MP4 without an index, as
    exacqVision's): FFmpeg would walk every fragment to seek (49 of 50 MB read); the tail
    is its head and last fragments, in three ranged reads."""
    _, store, _, boundary, _ = night
    start = boundary - timedelta(hours=2)
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        export_id = ev.exports.create(4593152, start, start + timedelta(hours=1))
        ev.exports.wait(export_id, poll_interval=0.05)
        stored = store.put("exports/hour.mp4", b"".join(ev.exports.iter_download(export_id)))
    source = RangedObject(store, stored.key, stored.version_id, stored.size)
    tail = media.tail(source, motion.PREROLL_S, size=stored.size, duration_s=3600)
    assert tail.ends_s == pytest.approx(3600.0, abs=1.0) and tail.data[4:8] == b"ftyp"
    # (Walking the fragments would be ~190 blocks, the whole file.)
    assert source.requests <= 6 and source.fetched < stored.size / 20, (source.requests, source.fetched)
    frames = analyze(tail.data, mode="full", workers=1)
    assert motion.PREROLL_S <= frames.duration_s <= motion.PREROLL_S + scene.GOP_SECONDS
    # A budget too small for even that: refused, never read on regardless.
    with pytest.raises(RangeBudgetExceeded, match="more than 0 MiB"):
        small = RangedObject(store, stored.key, stored.version_id, stored.size, budget=1024)
        media.tail(small, motion.PREROLL_S, size=stored.size, duration_s=3600)


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_a_previous_chunk_that_is_not_video_costs_only_the_pre_roll(night, s3_server, caplog):
    """A planted or damaged chunk before: logged, and this chunk is summarised cold (in a
    bucket of its own: the night's summaries stay as committed for the other tests)."""
    config, store, result, _, _ = night
    second = result.manifest.exports()[1]
    elsewhere = _store(s3_server, "camera-day-planted")
    copied = elsewhere.put(second.key, store.get_bytes(second.key, second.version_id))
    chunk = ManifestEntry.model_validate({**second.model_dump(), "version_id": copied.version_id})
    planted = elsewhere.put("exports/planted/not-video.mp4", b"\x00" * 5000)
    stranger = ManifestEntry.model_validate(
        {**second.model_dump(), "key": planted.key, "version_id": planted.version_id, "size": planted.size}
    )
    with caplog.at_level(logging.WARNING, logger="pipelines.nightly.motion_step"):
        entries = motion.summarize_export(elsewhere, config, "HQ", chunk, workers=1, previous=stranger)
    assert {e.kind for e in entries} >= {"motion_timeline", "motion_events"}
    assert any("no pre-roll from exports/planted/not-video.mp4" in r.getMessage() for r in caplog.records)


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_chunks_are_paired_with_the_chunk_that_ends_where_they_start(night):
    _, _, result, boundary, _ = night
    first, second = result.manifest.exports()
    assert motion.previous_chunks([first, second]) == {second.key: first}
    other = ManifestEntry.model_validate({**first.model_dump(), "camera_id": first.camera_id + 1, "key": "k"})
    assert motion.previous_chunks([second], [other]) == {}  # another camera's chunk is not before it


@pytest.mark.slow  # a night on the simulator and SeaweedFS: make test, not make check
def test_a_chunk_summarised_alone_out_of_order_gives_the_same_bytes(night):
    """What a Celery worker does: the second chunk on its own, before (or without) the first,
    with nothing shared but the archive. Its summaries are byte for byte the night's, so no
    version is added."""
    config, store, result, _, _ = night
    first, second = result.manifest.exports()
    committed = {e.key: e.sha256 for e in result.motion_manifest.entries if e.derived_from == second.key}
    before = {k: store.versions(k) for k in committed}
    again = motion.summarize_export(store, config, "HQ", second, workers=2, previous=first)
    assert {e.key: e.sha256 for e in again} == committed
    assert {k: store.versions(k) for k in committed} == before


def test_the_day_tells_unrecorded_time_from_time_without_motion():
    """Seconds without a timeline row were not recorded; a row with score 0 is "no motion"."""
    from pipelines.analytics import plots
    from pipelines.analytics.datasets import recorded_time

    at = pd.Timestamp("2026-11-20T10:00:00Z")
    seconds = [*range(0, 60), *range(600, 630)]  # recorded 10:00:00-10:01:00 and 10:10:00-10:10:30
    timeline = pd.DataFrame(
        {
            "server": "nvr1",
            "camera_id": 1,
            "ts": [at + pd.Timedelta(seconds=s) for s in seconds],
            "score": np.float32(0.0),
        }
    )
    spans = recorded_time(timeline)
    assert [((r.start - at).total_seconds(), (r.end - at).total_seconds()) for r in spans.itertuples()] == [
        (0.0, 60.0),
        (600.0, 630.0),
    ]
    events = _events([("nvr1", 1, 10.0, 20.0)])
    figure = plots.event_timeline(events.assign(duration_s=10.0), None, spans)
    axes = figure.axes[0]
    grey, orange = axes.collections
    assert len(grey.get_paths()) == 2 and len(orange.get_paths()) == 1
    assert "blank: not recorded" in axes.get_title()
