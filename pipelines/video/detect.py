"""Motion detectors: frames in, scores out, no I/O.

A detector takes a small luma frame (uint8, already subsampled) and its time, and
returns a `FrameScore`: the fraction of the region's pixels that belong to moving
regions, and each region's bounding box (normalised). Two implementations behind one
protocol:

- `RunningAverageDetector` (default), built for what real cameras do (tuned on the real
  clips in `tests/footage/`, checked on the synthetic scene), after Frigate's
  `improved_motion.py` and the background-subtraction literature:
  - *global light* (auto-exposure, the sun, IR switching): each frame is divided by its
    median brightness ratio to the background before it is compared; a change over
    `global_change` of the frame re-learns the background instead of reporting motion;
  - *local light* (sunlit patches, sharper shadows): a changed region whose brightness
    ratio to the background is uniform and whose texture is the background's
    (`light_uniformity`) is light, not an object, and is learnt like the still background;
  - *jitter* on high-contrast edges: a pixel moves only when it leaves the range of the
    background's 3x3 neighbourhood, so a one-pixel shake of a painted line is not motion;
  - *clutter* (noise, an on-screen clock's digits): specks are opened away and regions
    under `min_region` of the frame are dropped; each region keeps its own box;
  - *no ghosts*: pixels of moving regions are not learnt (selective update), so a person
    who stands still stays an object and leaves no ghost when they go; a region still
    there after `stationary_seconds` (a parked car) joins the background.
  The background learns with a time constant in *seconds* (not per frame), so it
  behaves the same on every-frame, keyframe-only and gated input.
- `MOG2Detector`: OpenCV's Gaussian-mixture background subtractor, for comparison.

Where the parts live: the comparison of a frame with a background (light, jitter, clutter,
texture) in `compare`, the second look at the opening seconds in `opening`, the settings
and scores in `motion_config`; the detectors, their state and `gated`'s gate here.

Departure from the first design (which learnt moving pixels 10x slower "against
ghosts"): that half-learnt a standing person and turned the empty wall into a ghost
that outlived every gap (six visits became one event on a real clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from pipelines.video.compare import Region, bbox_of, compare, envelope, exposure_gain, smooth, union
from pipelines.video.motion_config import Box, FrameScore, MotionConfig
from pipelines.video.opening import Opening

__all__ = ["KeyframeGate", "MOG2Detector", "MotionDetector", "RunningAverageDetector", "make_detector"]


class MotionDetector(Protocol):
    def score(self, luma: np.ndarray, t: float) -> FrameScore: ...

    def revisions(self, final: bool = False) -> list[tuple[int, FrameScore]]:
        """Scores of earlier frames (by their index in the stream) revised since the last
        call; `final`: the stream ended (a detector that looks back decides now)."""
        ...


def _persistent(moving: np.ndarray, boxes: list[Box], seen: np.ndarray | None) -> tuple[np.ndarray | None, list[Box]]:
    """The regions that overlap the previous frame's; the others are cleared from `moving`."""
    if seen is None:
        return None, []
    rows, cols = moving.shape
    reach_x, reach_y = int(PERSIST_REACH * cols), int(PERSIST_REACH * rows)
    kept: list[Box] = []
    for box in boxes:
        x0, y0, x1, y1 = int(box[0] * cols), int(box[1] * rows), int(box[2] * cols), int(box[3] * rows)
        # Near where something was a frame ago: a small, fast object moves more than its size.
        if cv2.countNonZero(seen[max(0, y0 - reach_y) : y1 + reach_y, max(0, x0 - reach_x) : x1 + reach_x]):
            kept.append(box)
        else:
            moving[y0:y1, x0:x1] = 0
    return (moving if kept else None), kept


@dataclass
class _State:
    """All the detector remembers between frames, in one place (after Frigate's detector):
    `score` replaces what changes, and no array here is shared with a caller or a helper
    that clears it (an aliased `previous` once hid every second object)."""

    background: np.ndarray  # float32, in the first frame's exposure
    still: np.ndarray  # float32: seconds each pixel has been part of a moving region
    last_t: float
    still_any: bool = False  # whether `still` holds any non-zero
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # `envelope` of the background
    bounds_age: int = 0  # frames since `bounds` was made
    previous: np.ndarray | None = None  # the last frame's regions (before persistence): its own copy

    @classmethod
    def start(cls, frame: np.ndarray, t: float) -> _State:
        """The state of a stream's first frame (or after a light change): the background is it."""
        return cls(frame.astype(np.float32), np.zeros(frame.shape, np.float32), t)


class RunningAverageDetector:
    """See the module's docstring for what each step is against. Its memory is one `_State`
    (None before the first frame) and the opening look (`Opening`, None once it has looked)."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self.region = Region(self.config.region, self.config.masks)  # fixed: the config's, per frame size
        self.state: _State | None = None
        self._opening: Opening | None = Opening()  # the second look at the opening seconds

    def revisions(self, final: bool = False) -> list[tuple[int, FrameScore]]:
        opening = self._opening
        if opening is None or not (final or opening.ready):
            return []
        self._opening = None
        return opening.look(self.config, self.region)

    def score(self, luma: np.ndarray, t: float) -> FrameScore:
        c = self.config
        frame = smooth(luma, c)
        region = self.region.fit(frame.shape)
        if self._opening is not None:
            self._opening.keep(frame, t)
        state = self.state
        if state is None or state.background.shape != frame.shape:
            self.state = _State.start(frame, t)
            return FrameScore(t, 0.0, None)
        dt = max(0.0, t - state.last_t)
        state.last_t = t
        if state.bounds is None or state.bounds_age >= ENVELOPE_FRAMES:
            state.bounds, state.bounds_age = envelope(state.background), 0
        state.bounds_age += 1
        found = compare(frame, state.background, c, region, state.bounds, self.region.looked)
        if found is None:
            # The whole scene changed at once: light (a switch, the sun, exposure), not an object.
            self.state = _State.start(frame, t)
            return FrameScore(t, 0.0, None)
        scaled, moving, boxes = found
        # A copy: `_persistent` clears regions from `moving` in place, and the frame before must
        # keep every region it had (aliased, a second object that appeared while another moved
        # was judged against a frame that never held it: seen in 0 of 80 frames).
        seen, state.previous = state.previous, (None if moving is None else moving.copy())
        if moving is not None and dt <= PERSIST_WITHIN_S:
            moving, boxes = _persistent(moving, boxes, seen)
        _learn(state, c, scaled, moving, dt)
        if moving is None:
            return FrameScore(t, 0.0, None)
        if self._opening is not None:
            self._opening.seen()
        return FrameScore(t, cv2.countNonZero(moving) / self.region.pixels, union(boxes), tuple(boxes))


def _learn(state: _State, c: MotionConfig, frame: np.ndarray, moving: np.ndarray | None, dt: float) -> None:
    """Selective update of the state's background: moving regions are not learnt, unless
    still for `stationary_seconds`."""
    alpha = 1.0 - math.exp(-dt / c.background_seconds) if dt > 0 else 0.0
    if moving is None:  # nothing moves (the common case): learn everywhere, forget stillness
        if state.still_any:
            state.still.fill(0.0)
            state.still_any = False
        if alpha > 0:
            cv2.accumulateWeighted(frame, state.background, alpha)
        return
    state.still += dt
    state.still[moving == 0] = 0.0
    state.still_any = True
    learn = cv2.compare(moving, 0, cv2.CMP_EQ)  # 255 where nothing moves
    settled = state.still > c.stationary_seconds
    if settled.any():
        learn[settled] = 255
    if alpha > 0:
        cv2.accumulateWeighted(frame, state.background, alpha, mask=learn)


# Frames closer than this must agree: a region counts only where the frame before had one
# too. An on-screen clock's digit changes for a frame each second; objects persist. Frames
# further apart (keyframes of skipped GOPs) are judged alone.
PERSIST_WITHIN_S = 0.5
PERSIST_REACH = 0.05  # how far (a fraction of the frame) a region may be from the last one's
# Frames between refreshes of the background's envelope: the background learns ~2% a frame
# at 25 fps, so the envelope lags it by well under a luma level; refreshing is 15% of the work.
ENVELOPE_FRAMES = 4


class MOG2Detector:
    def __init__(self, config: MotionConfig | None = None, history_frames: int = 250) -> None:
        self.config = config or MotionConfig()
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=history_frames, varThreshold=32, detectShadows=False
        )
        self.region = Region(self.config.region, self.config.masks)
        self.frames = 0

    def revisions(self, final: bool = False) -> list[tuple[int, FrameScore]]:
        return []  # OpenCV's model is its own: no second look

    def score(self, luma: np.ndarray, t: float) -> FrameScore:
        c = self.config
        frame = cv2.GaussianBlur(np.ascontiguousarray(luma), (c.blur, c.blur), 0)
        moving = self.subtractor.apply(frame)
        self.frames += 1
        if self.frames == 1:
            return FrameScore(t, 0.0, None)
        region = self.region.fit(frame.shape)
        if c.dilate:
            moving = cv2.dilate(moving, None, iterations=c.dilate)
        if region is not None:
            moving = cv2.bitwise_and(moving, region)
        count = cv2.countNonZero(moving)
        return FrameScore(t, count / self.region.pixels, bbox_of(moving) if count else None)


def make_detector(config: MotionConfig) -> MotionDetector:
    return MOG2Detector(config) if config.detector == "mog2" else RunningAverageDetector(config)


LIGHT_STEP = 0.1  # a brightness step between keyframes that opens `gated`'s gate


def _around(region: Box) -> Box:
    """The region grown by its own width and height on every side (within the frame)."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    return (max(0.0, x0 - w), max(0.0, y0 - h), min(1.0, x1 + w), min(1.0, y1 + h))


class KeyframeGate:
    """`gated` mode's gate: does the GOP between two keyframes need decoding?

    It asks the detector's own comparison, so drift, jitter, clutter and light do not make
    `gated` decode a GOP (on real cameras they opened the gate of most GOPs). A brightness
    step counts as a change: auto-exposure reacts to what enters the frame (a white car
    darkens the whole picture), so the GOP is decoded and the detector decides. Each
    keyframe is smoothed once (it is the `after` of one pair and the `before` of the next).
    """

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        # The gate looks around the scored region too: what moves near it at a keyframe may
        # cross it before the next (a car crossed DVR-Scan's 210x127 px lane in 0.6 s, between
        # two keyframes 2 s apart that both showed the lane empty).
        self.region = Region(_around(config.region), config.masks)
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (a keyframe, its smoothed copy)

    def _smoothed(self, luma: np.ndarray) -> np.ndarray:
        if self._last is not None and self._last[0] is luma:
            return self._last[1]
        return smooth(luma, self.config)

    def change(self, before: np.ndarray, after: np.ndarray) -> float:
        """Fraction of the frame in moving regions from `before` to `after` (1.0: a light step)."""
        c = self.config
        reference, current = self._smoothed(before), smooth(after, c)
        self._last = (after, current)
        # Most pairs are alike: a plain difference says so at a tenth of the comparison's cost.
        differs = cv2.threshold(cv2.absdiff(current, reference), c.pixel_threshold, 1, cv2.THRESH_BINARY)[1]
        if cv2.countNonZero(differs) <= c.gate_fraction * differs.size:
            return 0.0
        background = reference.astype(np.float32)
        if abs(exposure_gain(current, background) - 1.0) > LIGHT_STEP:
            return 1.0
        found = compare(current, background, c, self.region.fit(current.shape), looked=self.region.looked)
        if found is None:
            return 1.0
        moving = found[1]
        return 0.0 if moving is None else cv2.countNonZero(moving) / moving.size

    def __call__(self, before: np.ndarray, after: np.ndarray) -> bool:
        return self.change(before, after) > self.config.gate_fraction
