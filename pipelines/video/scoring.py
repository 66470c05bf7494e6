"""Scoring motion events against reference events: one implementation for the tests and the
benchmarks, as the footage's truth file defines it (`tests/footage/truth.json`).

- strict: a found event matches a reference event when both its start and its end are
  within `tolerance` seconds (one-to-one, in order); recall and precision over matches;
- lenient precision: the share of found events that overlap some reference event.
A clip with no reference events scores 1.0 only when nothing is found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.video.motion_config import MotionConfig

Span = tuple[float, float]


@dataclass(frozen=True)
class Score:
    matched: int
    reference: int
    found: int
    lenient: int  # found events overlapping a reference event

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        if not self.found:
            return 1.0
        return self.matched / self.found

    @property
    def lenient_precision(self) -> float:
        return self.lenient / self.found if self.found else 1.0

    def __str__(self) -> str:
        return (
            f"strict recall {self.recall:.2f} precision {self.precision:.2f}, lenient precision "
            f"{self.lenient_precision:.2f} ({self.found} found, {self.reference} reference)"
        )


def score(found: Sequence[Span], reference: Sequence[Span], tolerance: float = 1.0) -> Score:
    used: set[int] = set()
    matched = 0
    for start, end in reference:
        for index, (a, b) in enumerate(found):
            if index not in used and abs(a - start) <= tolerance and abs(b - end) <= tolerance:
                used.add(index)
                matched += 1
                break
    lenient = sum(any(a < end and b > start for start, end in reference) for a, b in found)
    return Score(matched, len(reference), len(found), lenient)


def reference_config(clip: Mapping[str, Any], base: MotionConfig | None = None) -> MotionConfig:
    """The configuration a clip of the truth file is analysed with: `base` (the defaults),
    limited to the clip's scored region when it has one (`region_px` in `frame_size`
    pixels), as a user would draw it; nothing else is per clip."""
    base = base or MotionConfig()
    if "region_px" not in clip:
        return base
    (x0, y0, x1, y1), (width, height) = clip["region_px"], clip["frame_size"]
    return base.model_copy(update={"region": (x0 / width, y0 / height, x1 / width, y1 / height)})
