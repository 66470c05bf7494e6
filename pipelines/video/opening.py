"""The detector's second look at the opening seconds of a stream (see `Opening`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipelines.video.compare import Region, compare, envelope, outside, union
from pipelines.video.motion_config import FrameScore, MotionConfig

OPENING_S = 10.0  # the second look covers the stream's first seconds ...
SAMPLE_EVERY_S = 0.25  # ... against the temporal median of frames this far apart ...
MOVED_WITHIN_S = 0.5  # ... where the frame also differs from one this much later (it moved)


class Opening:
    """A second look at the opening seconds of a stream. The running background starts as
    the first frame, so whatever moves from the first frame on is learnt as background and
    reported late (an office: motion all minute, first event at 5.4 s). Once `OPENING_S`
    have passed (or the stream ended), each opening frame is compared again with the
    temporal median of frames sampled over those seconds (what stays: the scene, not what
    moves across it), and a region counts only where the frame also changed within
    `MOVED_WITHIN_S` (a frozen picture holding a car is not motion). The same comparison
    as every frame (`compare`: light, clutter and size checks), no learning. Memory: the
    smoothed frames of the opening seconds at the analysis size (about 17 MB at 30 fps)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []
        self.samples: list[np.ndarray] = []
        self.sampled_at = -math.inf
        self.ready = False
        # The running detector's first motion: it is warmed up from then on, and only the
        # frames before it (its blind start) are looked at again.
        self.blind_until: int | None = None

    def seen(self) -> None:
        """The frame just kept is the running detector's first with motion."""
        if self.blind_until is None:
            self.blind_until = len(self.frames) - 1

    def keep(self, frame: np.ndarray, t: float) -> None:
        if self.frames and (t - self.frames[0][0] >= OPENING_S or frame.shape != self.frames[0][1].shape):
            self.ready = True
            return
        if t - self.sampled_at >= SAMPLE_EVERY_S:
            self.samples.append(frame)
            self.sampled_at = t
        self.frames.append((t, frame))

    def look(self, config: MotionConfig, region: Region) -> list[tuple[int, FrameScore]]:
        if len(self.samples) < 3:
            return []
        median = np.median(np.stack(self.samples), axis=0).astype(np.float32)
        bounds = envelope(median)
        revised = []
        times = [t for t, _ in self.frames]
        blind = self.frames[: self.blind_until] if self.blind_until is not None else self.frames
        # How far the frame that says "it moved" may be: twice the wait, or twice the stream's
        # usual frame interval where frames are that sparse (a low-rate camera, keyframe mode).
        usual = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        reach = 2 * max(MOVED_WITHIN_S, usual)
        for index, (t, frame) in enumerate(blind):
            found = compare(frame, median, config, region.fit(frame.shape), bounds, region.looked)
            if found is None or found[1] is None:
                continue
            scaled, moving, boxes = found
            later = next((j for j in range(index, len(times)) if times[j] - t >= MOVED_WITHIN_S), None)
            if later is not None and times[later] - t > reach:
                continue  # across GOPs `gated` skipped: no evidence it moved then
            other = self.frames[later if later is not None else max(0, index - 1)][1]
            high, low = envelope(other)  # already uint8: its 3x3 range as is
            moved = outside(scaled, high, low, config.pixel_threshold)
            rows, cols = moving.shape
            kept = []
            for box in boxes:
                x0, y0, x1, y1 = int(box[0] * cols), int(box[1] * rows), int(box[2] * cols), int(box[3] * rows)
                if cv2.countNonZero(moved[y0:y1, x0:x1] & moving[y0:y1, x0:x1]):
                    kept.append(box)
                else:
                    moving[y0:y1, x0:x1] = 0
            if kept:
                revised.append(
                    (index, FrameScore(t, cv2.countNonZero(moving) / region.pixels, union(kept), tuple(kept)))
                )
        self.frames, self.samples = [], []
        return revised
