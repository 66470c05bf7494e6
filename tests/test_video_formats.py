"""Formats in the wild (issue 26 items 3-4): the same scene whatever the encoding.

One synthetic recording (cars and walkers of the simulator's scene, ground truth known)
is re-encoded with the encoders the project already depends on (PyAV's FFmpeg:
`tests/video_variants.py`) as HEVC, H.264 with B-frames, MPEG-4 ASP with B-frames in AVI
(XviD's FourCC), a 20 s GOP, variable frame rate, a stream that starts at 10 s and a
25 fps scene sent at 30 fps with repeated frames. Times come from presentation
timestamps, so each finds the ground truth's events, both ends within 1 s. The shared real
clips re-encoded as CCTV streams (1080p, 2 s GOP, no B-frames) score as their originals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ev_ingest.simulator import scene
from ev_ingest.simulator.recordings import make_clip, truth
from pipelines.video import analyze
from pipelines.video.detect import RunningAverageDetector
from pipelines.video.motion_config import MotionConfig
from pipelines.video.scoring import reference_config, score
from tests.video_variants import Variant, make

SECONDS, FPS = 40, 25
SITE = scene.Site(cameras=4, width=320, height=240, retention_days=3650, now=datetime(2026, 11, 21, tzinfo=UTC))


def _window() -> tuple[int, datetime]:
    """A camera and a start whose 40 s hold two events clear of the ends, one of them across
    20 s (the keyframe of a 20 s GOP). The scene has at most an event per 30 s cell."""
    around = datetime(2026, 11, 20, 10, tzinfo=UTC)
    for index, camera in enumerate(SITE.camera_list):
        for cell in range(960):
            start = around + timedelta(seconds=30 * cell)
            events = truth(SITE, camera, start, SECONDS)
            if len(events) >= 2 and events[0][0] > 1 and events[-1][1] < SECONDS - 1:
                if any(a < 20 < b for a, b, _ in events):
                    return index, start
    raise LookupError("no such window in eight hours of the scene")


CAMERA_INDEX, START = _window()

VARIANTS = {
    "hevc": Variant(codec="libx265"),
    "h264-bframes": Variant(bframes=3),
    "xvid-avi-bframes": Variant(codec="mpeg4", container="avi", fourcc="XVID", bframes=2, options={"qscale": "4"}),
    "variable-frame-rate": Variant(drop=0.3, container="mkv"),
    "starts-at-10s": Variant(start_s=10.0),
    "repeated-frames-30fps": Variant(repeat_to_fps=30),
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    return make_clip(
        folder / "scene.mp4", start=START, seconds=SECONDS, width=320, height=240, fps=FPS, camera_index=CAMERA_INDEX
    )


def truth_of(recording):
    return [(a, b) for a, b, _ in recording.events if b - a >= 0.5]


def found(summary):
    return [(e.start_s, e.end_s) for e in summary.events]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_encoding_finds_the_scene_s_events(recording, name):
    path = make(recording.path, VARIANTS[name])
    summary = analyze(path, mode="full", workers=2)
    result = score(found(summary), truth_of(recording), 1.0)
    assert result.recall == 1.0 and result.precision == 1.0, (name, result, found(summary), truth_of(recording))
    # Times are the stream's own, from its first frame, whatever its clock (AVI with packed
    # B-frames presents its first frame one frame late: its timestamps are frame counts).
    assert summary.track.t[0] == pytest.approx(0.0, abs=1 / FPS + 1e-6)
    assert summary.duration_s == pytest.approx(SECONDS, abs=0.15)
    assert summary.coverage()["complete"]


def test_variable_frame_rate_is_timed_by_timestamps_not_by_frame_count(recording):
    """30% of the frames dropped at random: counted from the frame rate, times would shrink
    by 30% and every event would move towards the start."""
    path = make(recording.path, VARIANTS["variable-frame-rate"])
    summary = analyze(path, mode="full", workers=1)
    steps = np.diff(summary.track.t)
    assert steps.max() > 1.5 / FPS and summary.stats.frames < 0.8 * SECONDS * FPS  # really variable
    assert summary.duration_s == pytest.approx(SECONDS, abs=0.15)


@pytest.mark.parametrize("mode", ["gated", "keyframe"])
def test_a_20_second_gop(recording, mode):
    """A GOP longer than most events: `gated` decodes the GOPs whose keyframes differ (its
    blind spot: motion that starts and ends between two keyframes 20 s apart and leaves
    them alike); `keyframe` reports only what two keyframes show. Neither invents an event,
    neither runs past the end, and every second stands on an analysed frame."""
    path = make(recording.path, Variant(gop_s=20.0))
    summary = analyze(path, mode=mode, workers=2)
    truth = truth_of(recording)
    result = score(found(summary), truth, 1.0)
    assert result.lenient_precision == 1.0, (found(summary), truth)
    assert all(e.end_s <= summary.duration_s + 1e-6 for e in summary.events)
    assert summary.coverage()["complete"] and summary.duration_s == pytest.approx(SECONDS, abs=0.15)
    keyframes = [0.0, 20.0]
    if mode == "gated":  # events seen at a keyframe have their GOP decoded: found exactly
        at_keyframe = [t for t in truth if any(a <= k <= b for k in keyframes for a, b in [t])]
        assert score(found(summary), at_keyframe, 1.0).recall == 1.0, (found(summary), at_keyframe)


def test_two_objects_moving_at_once_are_both_seen():
    """Object B appears while object A moves. (The detector cleared A's frame in place, so
    B was judged against a frame that never held it: seen in 0 of 80 frames.)"""
    rng = np.random.default_rng(3)
    height, width, fps = 180, 320, 25
    detector = RunningAverageDetector(MotionConfig())
    seen_b = frames_b = 0
    for index in range(10 * fps):
        t = index / fps
        frame = np.full((height, width), 90, np.uint8) + rng.integers(0, 4, (height, width), dtype=np.uint8)
        a_x = int(20 + 25 * t)  # A crosses the bottom half the whole time
        frame[120:150, a_x : a_x + 30] = 220
        b = None
        if 4.0 <= t < 7.2:  # B crosses the top while A moves
            b_x = int(280 - 60 * (t - 4.0))
            frame[20:44, b_x : b_x + 24] = 30
            b = (b_x / width, 20 / height, (b_x + 24) / width, 44 / height)
        result = detector.score(frame, t)
        if b is not None and t >= 4.2:  # from its second frame on
            frames_b += 1
            seen_b += any(r[0] < b[2] and r[2] > b[0] and r[1] < b[3] and r[3] > b[1] for r in result.regions)
    assert frames_b == 75 and seen_b >= frames_b - 1, (seen_b, frames_b)


FOOTAGE = Path(__file__).parent / "footage"
TRUTH = json.loads((FOOTAGE / "truth.json").read_text())
CCTV = Variant(width=1920, gop_s=2.0, bframes=0)
# Not yet: with 2 s GOPs, `gated` skips GOPs while the person stands still, and a small
# patch where they stood stays "moving" after they leave: two visits 2.1 s apart join.
CCTV_NOT_YET = {
    ("office-1m-720.mp4", "full"): "the original does not reach the target yet either (test_footage)",
    ("office-1m-720.mp4", "gated"): "the original does not reach the target yet either (test_footage)",
    ("one-by-one-person-detection.mp4", "gated"): "a patch the person leaves stays moving after skipped GOPs",
}


@pytest.mark.slow  # encodes the seven clips at 1080p once (about a minute; cached in .cache/variants)
@pytest.mark.parametrize(
    ("clip", "mode"),
    [
        pytest.param(c, m, marks=pytest.mark.xfail(strict=True, reason=CCTV_NOT_YET[(c, m)]))
        if (c, m) in CCTV_NOT_YET
        else (c, m)
        for c in sorted(TRUTH["videos"])
        for m in ("full", "gated")
    ],
)
def test_the_shared_clips_as_cctv_streams_score_as_their_originals(clip, mode):
    reference = TRUTH["videos"][clip]
    truth = [tuple(e) for e in reference["events"]]
    original = score(
        found(analyze(FOOTAGE / clip, mode=mode, workers=2, config=reference_config(reference))), truth, 1.0
    )
    cctv = analyze(make(FOOTAGE / clip, CCTV), mode=mode, workers=2, config=reference_config(reference))
    again = score(found(cctv), truth, 1.0)
    assert (again.recall, again.precision, again.lenient_precision) == (
        original.recall,
        original.precision,
        original.lenient_precision,
    ), (clip, mode, again, found(cctv))
    assert again.recall >= 0.8 and again.precision >= 0.8, (clip, mode, again, found(cctv))
    assert cctv.size == (1920, round(cctv.size[1] / 2) * 2)
