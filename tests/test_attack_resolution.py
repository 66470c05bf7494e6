"""Attack: a previous chunk of another resolution (a camera reconfigured between chunks,
or the 'previous' export being another stream of the camera)."""

from __future__ import annotations

from datetime import timedelta

from ev_ingest.simulator.recordings import make_clip
from pipelines.nightly import motion_step as motion
from pipelines.video import analyze, media
from tests.test_camera_day import HALF, _crossing


def test_a_pre_roll_the_detector_cannot_use_is_not_reported_as_warm(tmp_path):
    """Measured: pre-rolled 160x120 before a 320x240 chunk, the event was 0.12-30.0 s (the
    ghost to the chunk's end, as cold: 0.0-30.0) while preroll_s said 16. The detector
    resets its background when the frame size changes, so such a pre-roll warms nothing:
    it must be refused (logged, preroll_s 0), never reported as warm."""
    at, (_, end_s, _) = _crossing()
    before = make_clip(
        tmp_path / "before.mp4",
        start=at - timedelta(seconds=HALF),
        seconds=HALF,
        width=160,
        height=120,
        preset="ultrafast",
    )
    after = make_clip(tmp_path / "after.mp4", start=at, seconds=HALF, width=320, height=240, preset="ultrafast")
    tail = media.tail(before.path, motion.PREROLL_S)
    warm = analyze(after.path, mode="full", workers=1, preroll=tail.data)
    # Either it is warm (the walk's event ends when the walk does, as with a same-size
    # pre-roll: test_camera_day) or it says it is cold (preroll_s 0, a warning).
    ghost = warm.events and warm.events[0].end_s >= HALF - 0.1
    assert not (ghost and warm.preroll_s > 0), (
        warm.preroll_s,
        end_s - HALF,
        [(e.start_s, e.end_s) for e in warm.events],
    )
