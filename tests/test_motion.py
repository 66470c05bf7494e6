"""The motion core against ground truth, on small clips the suite makes itself.

Clips come from the simulator's synthetic site (events of known kind and time):
exports built from its GOP library (fast) for accuracy, and clips encoded directly
(`make_clip`) for every container and codec. Tolerances are explicit: 1 s on event
start and end in `full` mode.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from ev_ingest.simulator import exports, library, scene
from ev_ingest.simulator.recordings import busiest_start, make_clip
from pipelines.video import EVENTS_SCHEMA, TIMELINE_SCHEMA, MotionConfig, VideoError, analyze
from pipelines.video.summary import parquet_bytes

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SITE = scene.Site(cameras=4, width=320, height=240, now=NOW)
TOLERANCE = 1.0


def site_export(camera_index: int, start: datetime, minutes: float, fmt: str = "mp4"):
    camera = SITE.camera_list[camera_index]
    plays = tuple(SITE.plays(camera, start, start + timedelta(minutes=minutes)))
    layout = exports.ExportLayout(
        library.load_camera_library(camera, SITE.seed), plays, scene.slot_start(plays[0].slot), fmt
    )
    truth = [
        ((e.start - layout.start).total_seconds(), (e.end - layout.start).total_seconds(), e.kind)
        for e in SITE.events(camera, start, start + timedelta(minutes=minutes))
    ]
    return b"".join(layout.chunks()), layout.start, truth


def matches(found, truth, tolerance=TOLERANCE) -> tuple[int, int]:
    """(truth events found, found events that are true) with start and end within tolerance."""
    hit = sum(
        any(abs(e.start_s - a) <= tolerance and abs(e.end_s - b) <= tolerance for e in found) for a, b, _ in truth
    )
    true = sum(
        any(abs(e.start_s - a) <= tolerance and abs(e.end_s - b) <= tolerance for a, b, _ in truth) for e in found
    )
    return hit, true


@pytest.fixture(scope="module")
def recordings():
    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    return [site_export(i, start, 10) for i in range(4)]  # camera 3 records on motion only: gaps


@pytest.mark.slow
def test_full_mode_precision_and_recall(recordings):
    truth_total = found_total = hits = trues = 0
    for data, start, truth in recordings:
        summary = analyze(data, mode="full", start=start, workers=1)
        hit, true = matches(summary.events, truth)
        truth_total, found_total, hits, trues = (
            truth_total + len(truth),
            found_total + len(summary.events),
            hits + hit,
            trues + true,
        )
    assert truth_total >= 15  # enough events for the ratio to mean something
    assert hits / truth_total >= 0.95 and trues / found_total >= 0.95


@pytest.mark.slow
def test_gated_matches_full_for_events_longer_than_a_gop(recordings):
    for data, start, _truth in recordings:
        full = analyze(data, mode="full", start=start, workers=1)
        gated = analyze(data, mode="gated", start=start, workers=1)
        assert gated.gops_decoded < gated.gops  # it did skip GOPs
        for event in (e for e in full.events if e.end_s - e.start_s > scene.GOP_SECONDS):
            assert any(
                abs(g.start_s - event.start_s) < 0.05 and abs(g.end_s - event.end_s) < 0.05 for g in gated.events
            ), f"gated lost {event}"
        assert len(gated.events) <= len(full.events)


def test_keyframe_mode_finds_events_longer_than_two_gops(recordings):
    for data, start, truth in recordings:
        summary = analyze(data, mode="keyframe", start=start, workers=1)
        for a, b, kind in truth:
            if b - a > 2 * scene.GOP_SECONDS:
                assert any(e.start_s < b and e.end_s > a for e in summary.events), f"keyframe missed {kind} at {a}"


def quiet_window(camera_index: int, minutes: int = 3) -> datetime:
    camera = SITE.camera_list[camera_index]
    moment = datetime(2026, 11, 20, 6, tzinfo=UTC)
    while SITE.events(camera, moment - timedelta(seconds=10), moment + timedelta(minutes=minutes, seconds=10)):
        moment += timedelta(minutes=1)
    return moment


@pytest.mark.parametrize("mode", ["full", "gated", "keyframe"])
def test_light_drift_and_sensor_noise_alone_make_no_events(mode):
    data, start, truth = site_export(0, quiet_window(0), 3)
    assert truth == []
    summary = analyze(data, mode=mode, start=start, workers=1)
    assert summary.events == [] and summary.duration_s == pytest.approx(180, abs=0.1)
    assert float(summary.track.score.max()) < MotionConfig().event_on


def test_region_mask_ignores_motion_outside_it(recordings):
    data, start, truth = recordings[0]
    top_strip = MotionConfig(region=(0.0, 0.0, 1.0, 0.08))  # objects move in the middle band
    assert analyze(data, mode="full", start=start, config=top_strip, workers=1).events == []


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
def test_mog2_detector_finds_the_same_events(recordings):
    data, start, truth = recordings[1]
    summary = analyze(data, mode="full", start=start, config=MotionConfig(detector="mog2"), workers=1)
    hit, _ = matches(summary.events, [t for t in truth if t[2] != "blip"], tolerance=1.5)
    assert hit >= len([t for t in truth if t[2] != "blip"]) - 1


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
@pytest.mark.parametrize("mode", ["full", "gated", "keyframe"])
def test_two_workers_give_exactly_what_one_gives(recordings, mode):
    """GOPs decoded on two threads, scored in order by one detector: not an approximation."""
    data, start, _ = recordings[0]
    one = analyze(data, mode=mode, start=start, workers=1)
    heard: list[tuple[float, float]] = []
    two = analyze(data, mode=mode, start=start, workers=2, progress=lambda done, total: heard.append((done, total)))
    assert len(two.track) == len(one.track) > 0
    # Progress comes by seconds of video, in order, up to the end.
    assert len(heard) > 100 and [d for d, _ in heard] == sorted(d for d, _ in heard) and heard[-1][0] > 590
    assert (two.track.t == one.track.t).all() and (two.track.score == one.track.score).all()
    assert [(e.start_s, e.end_s, e.peak) for e in two.events] == [(e.start_s, e.end_s, e.peak) for e in one.events]
    assert (two.gops, two.gops_decoded) == (one.gops, one.gops_decoded)
    if mode == "full":
        assert len(two.track) == 600 * 25


def test_streams_with_b_frames_are_decoded_in_sequence(tmp_path):
    """B-frames may mean open GOPs (frames that need the previous GOP): no GOP threads then."""
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"x264-params": "bframes=2:keyint=25:scenecut=0", "preset": "ultrafast"}
        for i in range(150):
            image = np.full((240, 320, 3), 90, np.uint8)
            if 50 <= i < 100:  # a square crosses the picture from 2 s to 4 s
                x = (i - 50) * 5
                image[100:140, x : x + 40] = 230
            output.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        output.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.has_b_frames
    one = analyze(path, mode="full", workers=1)
    two = analyze(path, mode="full", workers=2)
    assert len(two.track) == len(one.track) == 150 and (two.track.score == one.track.score).all()
    assert [(round(e.start_s, 1), round(e.end_s, 1)) for e in two.events] == [(2.0, 4.0)]


def test_tables_follow_the_contract(recordings):
    data, start, truth = recordings[0]
    summary = analyze(data, mode="gated", start=start, camera_id=4593152, workers=1)
    timeline, events = summary.timeline_table(), summary.events_table()
    assert timeline.schema == TIMELINE_SCHEMA and events.schema == EVENTS_SCHEMA
    assert timeline.num_rows == 600 and timeline["ts"][0].as_py() == start
    assert events.num_rows == len(summary.events) and events["camera_id"][0].as_py() == 4593152
    first = summary.events[0]
    assert events["start"][0].as_py() == start + timedelta(milliseconds=round(first.start_s * 1000))
    assert pq.read_table(io.BytesIO(parquet_bytes(events))).schema == EVENTS_SCHEMA


# --- containers and codecs --------------------------------------------------------------

CLIP_START = busiest_start(
    scene.Site(cameras=1, width=320, height=240, retention_days=3650, now=datetime(2026, 11, 21, tzinfo=UTC)),
    scene.Site(cameras=1, width=320, height=240).camera_list[0],
    datetime(2026, 11, 20, 10, tzinfo=UTC),
    20,
    {"car"},
)


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [("mp4", "libx264"), ("mkv", "libx264"), ("mkv", "libx265"), ("mkv", "mjpeg"), ("ts", "libx264")],
)
def test_every_container_and_codec(tmp_path, suffix, codec):
    clip = make_clip(
        tmp_path / f"clip.{suffix}",
        start=CLIP_START,
        seconds=20,
        width=320,
        height=240,
        codec=codec,
        preset="ultrafast",
    )
    summary = analyze(clip.path, mode="full", start=CLIP_START, workers=1)
    hit, true = matches(summary.events, [e for e in clip.events if e[1] - e[0] > 0.5])
    assert hit >= 1 and true == len(summary.events), (summary.events, clip.events)


def test_program_stream_and_ps_zip_with_wall_clock():
    camera_start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    data, start, truth = site_export(3, camera_start, 10, fmt="ps_zip")  # motion-triggered: several clips
    summary = analyze(data, mode="full", workers=2)
    assert summary.start == start  # read from the first member's name
    hit, true = matches(summary.events, truth)
    assert hit >= len(truth) - 1 and true == len(summary.events)
    first = summary.as_json()["events"][0]
    stamped = datetime.fromisoformat(first["start"].replace("Z", "+00:00"))
    assert abs((stamped - start).total_seconds() - first["start_s"]) < 0.001
    member = zipfile.ZipFile(io.BytesIO(data)).namelist()[0]
    one_ps = zipfile.ZipFile(io.BytesIO(data)).read(member)
    assert analyze(one_ps, mode="full", workers=1).stats.frames > 0  # a bare program stream too


# --- damaged input ----------------------------------------------------------------------


def test_empty_and_garbage_input_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="cannot open video"):
        analyze(empty, backend="pyav", workers=1)
    with pytest.raises(VideoError):
        analyze(b"this is not a video at all" * 100, workers=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_recording_is_summarised_up_to_the_cut(recordings, workers):
    data, start, truth = recordings[0]
    summary = analyze(data[: len(data) // 2], mode="full", start=start, workers=workers)
    assert 250 < summary.duration_s < 350  # fragmented MP4: everything before the cut decodes
    hit, _ = matches(summary.events, [t for t in truth if t[1] < 250])
    assert hit == len([t for t in truth if t[1] < 250])


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_packets_are_skipped_and_reported(recordings, workers):
    data, start, truth = recordings[0]
    damaged = bytearray(data)
    # Scribble over video payload (inside mdat boxes, not their headers): bit rot in the stream.
    mdats = [i - 4 for i in range(len(data)) if data[i : i + 4] == b"mdat"][50:53]
    for box in mdats:
        size = int.from_bytes(data[box : box + 4], "big")
        damaged[box + 16 : box + size - 8] = (bytes(range(256)) * (size // 256 + 1))[: size - 24]
    summary = analyze(bytes(damaged), mode="full", start=start, workers=workers)
    assert summary.duration_s > 590  # it went on to the end
    assert summary.stats.corrupt_packets > 0 and summary.stats.damaged
    assert summary.warnings and "damaged packets" in summary.warnings[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_broken_container_keeps_what_was_read(recordings, workers):
    data, start, truth = recordings[0]
    damaged = bytearray(data)
    box = [i - 4 for i in range(len(data) // 2, len(data)) if data[i : i + 4] == b"moof"][0]
    damaged[box : box + 8] = b"\xff" * 8  # an impossible box size: the demuxer cannot go on
    summary = analyze(bytes(damaged), mode="full", start=start, workers=workers, expected_s=600)
    assert summary.stats.unreadable_from is not None and 250 < summary.stats.unreadable_from < 350
    assert summary.stats.damaged[-1][1] == pytest.approx(600)
    assert any("container is damaged" in w for w in summary.warnings)


def test_decode_reads_luma_without_conversion(recordings):
    data, start, truth = recordings[0]
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    from pipelines.video.decode import luma_view

    view = luma_view(frame, 2)
    assert view.shape == (120, 160) and not view.flags.owndata  # a strided view, no copy


def _textured(rows: int = 180, cols: int = 320) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (96 + rng.integers(0, 40, (rows, cols))).astype(np.uint8)


def test_a_second_object_is_seen_while_another_moves():
    """Object A crosses the whole time; object B appears halfway. Each frame's regions are
    judged against the frame before's (persistence): that frame must still hold B (an
    aliased copy, cleared in place, never did: B was seen in 0 of 80 frames)."""
    from pipelines.video.detect import RunningAverageDetector

    detector = RunningAverageDetector(MotionConfig())
    base = _textured()
    seen_b = 0
    for n in range(160):
        frame = base.copy()
        ax = 10 + n
        frame[40:70, ax : ax + 20] = 250  # A, moving right a pixel a frame
        if n >= 80:
            bx = 300 - (n - 80)
            frame[120:150, bx - 20 : bx] = 10  # B, moving left
        result = detector.score(frame, n / 25)
        if n >= 80 and any(box[0] > 0.5 and box[1] > 0.5 for box in result.regions):
            seen_b += 1
    assert seen_b >= 75, seen_b


def test_motion_from_the_first_frame_is_reported_from_the_first_second():
    """Something moving from the first frame on is in the running background's first frame;
    the second look at the opening seconds (against their temporal median) reports it from
    the start. A frozen picture of the same object is not motion."""
    from pipelines.video.detect import RunningAverageDetector

    def run(moving: bool) -> list[float]:
        detector = RunningAverageDetector(MotionConfig())
        base, scores = _textured(), []
        for n in range(25 * 12):
            frame = base.copy()
            x = 20 + (n if moving else 0) % 260
            frame[60:100, x : x + 30] = 240
            scores.append(detector.score(frame, n / 25).score)
            for index, revised in detector.revisions():
                scores[index] = max(scores[index], revised.score)
        for index, revised in detector.revisions(final=True):
            scores[index] = max(scores[index], revised.score)
        return scores

    moving = run(True)
    assert all(score > 0 for score in moving[1:25]), moving[:25]  # the first second
    assert not any(run(False))  # a still picture: nothing, before or after the look
