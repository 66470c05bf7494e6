"""Attack: Opening.look now skips a revision when the frame compared with is more than 1 s
later (052ac44, for gated's far-apart keyframes). The detector is the same in every mode, so
a stream whose frames are 2 s apart (keyframe mode: a keyframe per 2 s GOP; a 0.5 fps
camera) loses its second look altogether."""

from __future__ import annotations

from pipelines.video.detect import RunningAverageDetector
from pipelines.video.motion_config import MotionConfig
from tests.test_motion import _textured


def _scores(fps: float, seconds: int = 24) -> list[float]:
    detector = RunningAverageDetector(MotionConfig())
    base, scores = _textured(), []
    for n in range(int(seconds * fps)):
        frame = base.copy()
        x = 20 + (n * 37) % 260  # moving from the first frame on, a long way between frames
        frame[60:100, x : x + 30] = 240
        scores.append(detector.score(frame, n / fps).score)
        for index, revised in detector.revisions():
            scores[index] = max(scores[index], revised.score)
    for index, revised in detector.revisions(final=True):
        scores[index] = max(scores[index], revised.score)
    return scores


def test_motion_from_the_first_frame_at_one_frame_per_2_s():
    scores = _scores(0.5)
    assert scores[0] > 0, scores[:6]
