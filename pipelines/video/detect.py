"""Motion detectors: frames in, scores out, no I/O.

A detector takes a small luma frame (uint8, already subsampled) and its time, and
returns a `FrameScore`: the fraction of the region's pixels that changed and their
bounding box (normalised). Two implementations behind one protocol:

- `RunningAverageDetector` (default): blur, absolute difference against a running-
  average background, threshold, dilate, count. The background learns with a time
  constant in *seconds* (not per frame), so it behaves the same on every-frame,
  keyframe-only and gated input; pixels under motion learn ten times slower, so a
  passing object leaves no ghost behind it. Differencing consecutive frames instead
  would see slow walkers seconds late (NOTES.md).
- `MOG2Detector`: OpenCV's Gaussian-mixture background subtractor; better with waving
  trees, about 2x slower.
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
    pixel_threshold: int = Field(22, ge=2, le=254, description="Luma change that counts a pixel as moving")
    background_seconds: float = Field(1.0, gt=0.0, le=600.0, description="Time constant of the background")
    dilate: int = Field(1, ge=0, le=10, description="Dilation iterations to join object fragments")
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


@dataclass(frozen=True)
class FrameScore:
    t: float
    score: float  # fraction of region pixels that moved
    bbox: tuple[float, float, float, float] | None  # normalised, over moving pixels


class MotionDetector(Protocol):
    def score(self, luma: np.ndarray, t: float) -> FrameScore: ...


class _Region:
    """The region mask at the analysis size, built once per frame size."""

    def __init__(self, region: tuple[float, float, float, float]) -> None:
        self.region = region
        self.shape: tuple[int, int] | None = None
        self.mask: np.ndarray | None = None
        self.pixels = 1

    def fit(self, shape: tuple[int, int]) -> np.ndarray | None:
        if shape != self.shape:
            self.shape = shape
            h, w = shape
            x0, y0, x1, y1 = self.region
            if self.region == (0.0, 0.0, 1.0, 1.0):
                self.mask, self.pixels = None, h * w
            else:
                mask = np.zeros(shape, np.uint8)
                mask[
                    int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 1)
                ] = 255
                self.mask, self.pixels = mask, int(np.count_nonzero(mask))
        return self.mask


def _bbox(moving: np.ndarray) -> tuple[float, float, float, float] | None:
    x, y, w, h = cv2.boundingRect(moving)
    if w == 0 or h == 0:
        return None
    rows, cols = moving.shape
    return (x / cols, y / rows, (x + w) / cols, (y + h) / rows)


class RunningAverageDetector:
    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self.background: np.ndarray | None = None
        self.last_t: float | None = None
        self.region = _Region(self.config.region)
        self._kernel = np.ones((3, 3), np.uint8)

    def score(self, luma: np.ndarray, t: float) -> FrameScore:
        c = self.config
        frame = cv2.GaussianBlur(np.ascontiguousarray(luma), (c.blur, c.blur), 0)
        region = self.region.fit(frame.shape)
        if self.background is None or self.background.shape != frame.shape:
            self.background = frame.astype(np.float32)
            self.last_t = t
            return FrameScore(t, 0.0, None)
        diff = cv2.absdiff(frame, cv2.convertScaleAbs(self.background))
        _, moving = cv2.threshold(diff, c.pixel_threshold, 255, cv2.THRESH_BINARY)
        if c.dilate:
            moving = cv2.dilate(moving, self._kernel, iterations=c.dilate)
        if region is not None:
            moving = cv2.bitwise_and(moving, region)
        count = cv2.countNonZero(moving)
        # Learn the background at a rate set in seconds; moving pixels learn 10x slower (no ghosts).
        dt = max(0.0, t - (self.last_t if self.last_t is not None else t))
        self.last_t = t
        alpha = 1.0 - math.exp(-dt / c.background_seconds) if dt > 0 else 0.0
        if alpha > 0:
            if count:
                still = cv2.bitwise_not(moving)
                cv2.accumulateWeighted(frame, self.background, alpha, mask=still)
                cv2.accumulateWeighted(frame, self.background, alpha * 0.1, mask=moving)
            else:
                cv2.accumulateWeighted(frame, self.background, alpha)
        return FrameScore(t, count / self.region.pixels, _bbox(moving) if count else None)


class MOG2Detector:
    def __init__(self, config: MotionConfig | None = None, history_frames: int = 250) -> None:
        self.config = config or MotionConfig()
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=history_frames, varThreshold=32, detectShadows=False
        )
        self.region = _Region(self.config.region)
        self.frames = 0

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


def keyframe_change(a: np.ndarray, b: np.ndarray, config: MotionConfig) -> float:
    """Fraction of pixels that differ between two keyframes (the `gated` mode's gate)."""
    k = config.blur
    diff = cv2.absdiff(
        cv2.GaussianBlur(np.ascontiguousarray(a), (k, k), 0), cv2.GaussianBlur(np.ascontiguousarray(b), (k, k), 0)
    )
    _, moving = cv2.threshold(diff, config.pixel_threshold, 255, cv2.THRESH_BINARY)
    return cv2.countNonZero(moving) / moving.size
