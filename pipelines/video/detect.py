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

Departure from the first design (which learnt moving pixels 10x slower "against
ghosts"): that half-learnt a standing person and turned the empty wall into a ghost
that outlived every gap (six visits became one event on a real clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator


class MotionConfig(BaseModel):
    """Sensitivity and shape of motion detection. Strict and bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Literal["running_average", "mog2"] = "running_average"
    target_width: int = Field(
        320, ge=64, le=1920, description="Analyse at about this width (luma subsampled by stride)"
    )
    blur: int = Field(5, ge=1, le=31, description="Gaussian blur kernel (odd) against sensor noise")
    pixel_threshold: int = Field(20, ge=2, le=254, description="Luma change that counts a pixel as moving")
    background_seconds: float = Field(2.0, gt=0.0, le=600.0, description="Time constant of the background")
    dilate: int = Field(2, ge=0, le=10, description="Dilation iterations to join object fragments")
    min_region: float = Field(
        0.0015, ge=0, le=1, description="Smallest moving region kept, as a fraction of the analysed frame"
    )
    stationary_seconds: float = Field(
        60.0, gt=0, le=86400, description="A region unchanged this long joins the background (a parked car)"
    )
    global_change: float = Field(
        0.5, gt=0, le=1, description="Changed fraction of the frame taken as a light change, not motion"
    )
    light_uniformity: float = Field(
        0.06, ge=0, le=1, description="A region whose brightness ratio varies less than this is light, not motion"
    )
    masks: tuple[tuple[float, float, float, float], ...] = Field(
        (), description="x0,y0,x1,y1 normalised rectangles never looked at (an on-screen clock, a tree)"
    )
    region: tuple[float, float, float, float] = Field((0.0, 0.0, 1.0, 1.0), description="x0,y0,x1,y1 normalised")
    event_on: float = Field(0.002, gt=0, le=1, description="Score that starts an event (fraction of pixels)")
    event_off: float = Field(0.001, gt=0, le=1, description="Score under which an event may end")
    merge_gap: float = Field(1.0, ge=0, le=60, description="Quiet seconds that still belong to the same event")
    min_event: float = Field(0.25, ge=0, le=60, description="Shortest event kept, seconds")
    gate_fraction: float = Field(0.001, gt=0, le=1, description="Keyframe change that makes `gated` decode a GOP")

    @field_validator("blur")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("blur must be odd")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = value
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError("region must be x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        return value

    def step_for(self, width: int) -> int:
        """The luma stride that brings `width` near `target_width`."""
        return max(1, round(width / self.target_width))


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameScore:
    t: float
    score: float  # fraction of the region's pixels in moving regions
    bbox: Box | None  # normalised, around every moving region
    regions: tuple[Box, ...] = ()  # normalised, one per moving region


class MotionDetector(Protocol):
    def score(self, luma: np.ndarray, t: float) -> FrameScore: ...

    def revisions(self, final: bool = False) -> list[tuple[int, FrameScore]]:
        """Scores of earlier frames (by their index in the stream) revised since the last
        call; `final`: the stream ended (a detector that looks back decides now)."""
        ...


class _Region:
    """The region (minus the masks) at the analysis size, built once per frame size."""

    def __init__(self, region: Box, masks: tuple[Box, ...] = ()) -> None:
        self.region = region
        self.masks = masks
        self.shape: tuple[int, int] | None = None
        self.mask: np.ndarray | None = None
        self.looked: np.ndarray | None = None  # 255 except under the masks (None: no masks)
        self.pixels = 1

    def fit(self, shape: tuple[int, int]) -> np.ndarray | None:
        if shape != self.shape:
            self.shape = shape
            h, w = shape
            if self.region == (0.0, 0.0, 1.0, 1.0) and not self.masks:
                self.mask, self.looked, self.pixels = None, None, h * w
            else:
                mask = np.zeros(shape, np.uint8)
                _fill(mask, self.region, 255)
                looked = np.full(shape, 255, np.uint8) if self.masks else None
                for masked in self.masks:
                    _fill(mask, masked, 0)
                    _fill(looked, masked, 0)  # type: ignore[arg-type]
                self.mask, self.looked, self.pixels = mask, looked, max(1, int(np.count_nonzero(mask)))
        return self.mask


def _fill(mask: np.ndarray, box: Box, value: int) -> None:
    h, w = mask.shape
    x0, y0, x1, y1 = box
    mask[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 1)] = value


def _bbox(moving: np.ndarray) -> Box | None:
    x, y, w, h = cv2.boundingRect(moving)
    if w == 0 or h == 0:
        return None
    rows, cols = moving.shape
    return (x / cols, y / rows, (x + w) / cols, (y + h) / rows)


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


def _union(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


class RunningAverageDetector:
    """See the module's docstring for what each step is against."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self.background: np.ndarray | None = None  # float32, in the first frame's exposure
        self.still: np.ndarray | None = None  # seconds each pixel has been part of a moving region
        self.last_t: float | None = None
        self.region = _Region(self.config.region, self.config.masks)
        self._still_any = False
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None  # `envelope` of the background
        self._previous: np.ndarray | None = None  # the last frame's regions (before persistence)
        self._bounds_age = 0
        self._opening: Opening | None = Opening()  # the second look at the opening seconds

    def revisions(self, final: bool = False) -> list[tuple[int, FrameScore]]:
        opening = self._opening
        if opening is None or not (final or opening.ready):
            return []
        self._opening = None
        return opening.look(self.config, self.region)

    def score(self, luma: np.ndarray, t: float) -> FrameScore:
        c = self.config
        frame = _smooth(luma, c)
        region = self.region.fit(frame.shape)
        if self._opening is not None:
            self._opening.keep(frame, t)
        if self.background is None or self.background.shape != frame.shape:
            self._reset(frame)
            self.last_t = t
            return FrameScore(t, 0.0, None)
        dt = max(0.0, t - (self.last_t if self.last_t is not None else t))
        self.last_t = t
        if self._bounds is None or self._bounds_age >= ENVELOPE_FRAMES:
            self._bounds, self._bounds_age = envelope(self.background), 0
        self._bounds_age += 1
        found = compare(frame, self.background, c, region, self._bounds, self.region.looked)
        if found is None:
            # The whole scene changed at once: light (a switch, the sun, exposure), not an object.
            self._reset(frame)
            return FrameScore(t, 0.0, None)
        scaled, moving, boxes = found
        # A copy: `_persistent` clears regions from `moving` in place, and the frame before must
        # keep every region it had (aliased, a second object that appeared while another moved
        # was judged against a frame that never held it: seen in 0 of 80 frames).
        seen, self._previous = self._previous, (None if moving is None else moving.copy())
        if moving is not None and dt <= PERSIST_WITHIN_S:
            moving, boxes = _persistent(moving, boxes, seen)
        self._learn(scaled, moving, dt)
        if moving is None:
            return FrameScore(t, 0.0, None)
        if self._opening is not None:
            self._opening.seen()
        return FrameScore(t, cv2.countNonZero(moving) / self.region.pixels, _union(boxes), tuple(boxes))

    def _reset(self, frame: np.ndarray) -> None:
        self._bounds = None
        self.background = frame.astype(np.float32)
        self.still = np.zeros(frame.shape, np.float32)
        self._still_any = False

    def _learn(self, frame: np.ndarray, moving: np.ndarray | None, dt: float) -> None:
        """Selective update: moving regions are not learnt, unless still for `stationary_seconds`."""
        c = self.config
        assert self.background is not None and self.still is not None
        alpha = 1.0 - math.exp(-dt / c.background_seconds) if dt > 0 else 0.0
        if moving is None:  # nothing moves (the common case): learn everywhere, forget stillness
            if self._still_any:
                self.still.fill(0.0)
                self._still_any = False
            if alpha > 0:
                cv2.accumulateWeighted(frame, self.background, alpha)
            return
        self.still += dt
        self.still[moving == 0] = 0.0
        self._still_any = True
        learn = cv2.compare(moving, 0, cv2.CMP_EQ)  # 255 where nothing moves
        settled = self.still > c.stationary_seconds
        if settled.any():
            learn[settled] = 255
        if alpha > 0:
            cv2.accumulateWeighted(frame, self.background, alpha, mask=learn)


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

    def look(self, config: MotionConfig, region: _Region) -> list[tuple[int, FrameScore]]:
        if len(self.samples) < 3:
            return []
        median = np.median(np.stack(self.samples), axis=0).astype(np.float32)
        bounds = envelope(median)
        revised = []
        times = [t for t, _ in self.frames]
        blind = self.frames[: self.blind_until] if self.blind_until is not None else self.frames
        for index, (t, frame) in enumerate(blind):
            found = compare(frame, median, config, region.fit(frame.shape), bounds, region.looked)
            if found is None or found[1] is None:
                continue
            scaled, moving, boxes = found
            later = next((j for j in range(index, len(times)) if times[j] - t >= MOVED_WITHIN_S), None)
            if later is not None and times[later] - t > 2 * MOVED_WITHIN_S:
                continue  # keyframes of skipped GOPs, far apart: no evidence it moved then
            other = self.frames[later if later is not None else max(0, index - 1)][1]
            high, low = envelope(other)  # already uint8: its 3x3 range as is
            moved = _outside(scaled, high, low, config.pixel_threshold)
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
                    (index, FrameScore(t, cv2.countNonZero(moving) / region.pixels, _union(kept), tuple(kept)))
                )
        self.frames, self.samples = [], []
        return revised


_KERNEL = np.ones((3, 3), np.uint8)
# Frames closer than this must agree: a region counts only where the frame before had one
# too. An on-screen clock's digit changes for a frame each second; objects persist. Frames
# further apart (keyframes of skipped GOPs) are judged alone.
PERSIST_WITHIN_S = 0.5
PERSIST_REACH = 0.05  # how far (a fraction of the frame) a region may be from the last one's
# Frames between refreshes of the background's envelope: the background learns ~2% a frame
# at 25 fps, so the envelope lags it by well under a luma level; refreshing is 15% of the work.
ENVELOPE_FRAMES = 4


def _smooth(luma: np.ndarray, config: MotionConfig) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(luma), (config.blur, config.blur), 0)


def envelope(background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background's 3x3 neighbourhood range (uint8): a pixel that stays inside it did not move."""
    reference = cv2.convertScaleAbs(background)
    return cv2.dilate(reference, _KERNEL), cv2.erode(reference, _KERNEL)


def compare(
    frame: np.ndarray,
    background: np.ndarray,
    config: MotionConfig,
    region: np.ndarray | None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    looked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[Box]] | None:
    """`frame` (uint8, smoothed) against `background` (float32): the frame brought to the
    background's exposure, its moving regions (a 0/1 mask, or None when nothing moves) and
    each one's box; None when most of the frame changed at once (light). The one comparison
    of the detector and of `gated`'s gate; in uint8, 4x less memory traffic than float."""
    gain = _gain(frame, background)
    scaled = cv2.convertScaleAbs(frame, alpha=1.0 / gain) if abs(gain - 1.0) > 0.004 else frame
    # Jitter: a pixel moves only when it leaves its 3x3 neighbourhood's background range.
    high, low = bounds if bounds is not None else envelope(background)
    changed = _outside(scaled, high, low, config.pixel_threshold)
    if looked is not None:
        changed &= looked  # the masks are never looked at (an on-screen clock)
    # An object is judged whole, wherever it is; the region only decides what is scored.
    # (Clipped to a small region first, a car half inside it fell under `min_region`: a
    # crossing of DVR-Scan's 210x127 px test region was seen for 0.2 of its 0.6 s.)
    if region is not None and not cv2.countNonZero(changed & region):
        return scaled, None, []
    if not cv2.countNonZero(changed):
        return scaled, None, []  # the usual quiet frame: nothing more to do
    # Under an exposure change, a region that lies between what the background gives with and
    # without the change kept (some of) its value while the scene's changed: an on-screen
    # clock drawn after exposure, or its edges smoothed into the scene. Not motion.
    unchanged_raw = None
    if scaled is not frame:
        hi = cv2.max(high, cv2.convertScaleAbs(high, alpha=gain))
        lo = cv2.min(low, cv2.convertScaleAbs(low, alpha=gain))
        unchanged_raw = 1 - _outside(frame, hi, lo, config.pixel_threshold)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, _KERNEL)  # specks
    if config.dilate:
        changed = cv2.dilate(changed, _KERNEL, iterations=config.dilate)  # join fragments
    changed_pixels = cv2.countNonZero(changed)
    if changed_pixels > config.global_change * changed.size:
        return None
    if changed_pixels < config.min_region * changed.size:
        return scaled, None, []  # no region can be large enough
    # Regions as outer contours: 15x faster than labelling at this size (measured), holes filled.
    contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rows, cols = changed.shape
    smallest = config.min_region * changed.size
    moving: np.ndarray | None = None
    boxes: list[Box] = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w * h < smallest:
            continue  # clutter: noise, a clock's digit
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [contour], -1, 1, cv2.FILLED, offset=(-x, -y))
        area = cv2.countNonZero(inside)
        if area < smallest:
            continue
        if unchanged_raw is not None and cv2.countNonZero(unchanged_raw[y : y + h, x : x + w] & inside) > 0.7 * area:
            continue
        where = inside > 0
        now = scaled[y : y + h, x : x + w][where].astype(np.float32)
        if _is_light(now, background[y : y + h, x : x + w][where], config):
            continue
        bx, by, bw, bh = 0, 0, w, h
        if region is not None:  # scored: what of it lies in the region
            inside = cv2.bitwise_and(inside, region[y : y + h, x : x + w])
            bx, by, bw, bh = cv2.boundingRect(inside)
            if bw == 0 or bh == 0:
                continue
        if moving is None:
            moving = np.zeros_like(changed)
        moving[y : y + h, x : x + w] |= inside
        boxes.append(((x + bx) / cols, (y + by) / rows, (x + bx + bw) / cols, (y + by + bh) / rows))
    return scaled, moving, boxes


def _outside(frame: np.ndarray, high: np.ndarray, low: np.ndarray, threshold: int) -> np.ndarray:
    """1 where `frame` leaves [low - threshold, high + threshold], else 0 (uint8)."""
    beyond = cv2.max(cv2.subtract(frame, high), cv2.subtract(low, frame))
    return cv2.threshold(beyond, threshold, 1, cv2.THRESH_BINARY)[1]


def _gain(frame: np.ndarray, background: np.ndarray) -> float:
    """The frame's brightness relative to the background: the median ratio over a sparse grid
    (robust to an object covering part of the frame)."""
    mean_b = cv2.mean(background)[0]
    if mean_b <= 8.0:
        return 1.0
    if abs(cv2.mean(frame)[0] / mean_b - 1.0) < 0.01:
        # The usual frame: no median to take (it was half the detector's time). At 3% the
        # person clip's visits merged: the background is kept at one exposure, and small
        # uncompensated steps add up at object edges.
        return 1.0
    sample_b = background[::6, ::6]
    valid = sample_b > 8.0
    gain = float(np.median(frame[::6, ::6][valid] / sample_b[valid]))
    return gain if gain > 0.05 else 1.0


def _is_light(now: np.ndarray, before: np.ndarray, config: MotionConfig) -> bool:
    """A region changed by light keeps its texture, only brighter or darker by one ratio;
    an object replaces the texture (measured on real clips: light 0.01-0.03, objects > 0.15)."""
    ratio = now / np.maximum(before, 1.0)
    uniform = float(ratio.std()) < config.light_uniformity * max(float(ratio.mean()), 1e-6)
    if not uniform:
        return False
    spread = float(before.std())
    if spread < 3.0:  # a plain surface: the uniform ratio alone says light
        return True
    same_texture = float(np.corrcoef(now, before)[0, 1]) if float(now.std()) > 1e-3 else 0.0
    return same_texture > 0.85


class MOG2Detector:
    def __init__(self, config: MotionConfig | None = None, history_frames: int = 250) -> None:
        self.config = config or MotionConfig()
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=history_frames, varThreshold=32, detectShadows=False
        )
        self.region = _Region(self.config.region, self.config.masks)
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
        return FrameScore(t, count / self.region.pixels, _bbox(moving) if count else None)


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
        self.region = _Region(_around(config.region), config.masks)
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (a keyframe, its smoothed copy)

    def _smoothed(self, luma: np.ndarray) -> np.ndarray:
        if self._last is not None and self._last[0] is luma:
            return self._last[1]
        return _smooth(luma, self.config)

    def change(self, before: np.ndarray, after: np.ndarray) -> float:
        """Fraction of the frame in moving regions from `before` to `after` (1.0: a light step)."""
        c = self.config
        reference, current = self._smoothed(before), _smooth(after, c)
        self._last = (after, current)
        # Most pairs are alike: a plain difference says so at a tenth of the comparison's cost.
        differs = cv2.threshold(cv2.absdiff(current, reference), c.pixel_threshold, 1, cv2.THRESH_BINARY)[1]
        if cv2.countNonZero(differs) <= c.gate_fraction * differs.size:
            return 0.0
        background = reference.astype(np.float32)
        if abs(_gain(current, background) - 1.0) > LIGHT_STEP:
            return 1.0
        found = compare(current, background, c, self.region.fit(current.shape), looked=self.region.looked)
        if found is None:
            return 1.0
        moving = found[1]
        return 0.0 if moving is None else cv2.countNonZero(moving) / moving.size

    def __call__(self, before: np.ndarray, after: np.ndarray) -> bool:
        return self.change(before, after) > self.config.gate_fraction
