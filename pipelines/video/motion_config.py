"""What a motion detector is told and what it answers: `MotionConfig` (sensitivity, zones,
masks, hysteresis; strict and bounded), `Box` and `FrameScore`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
