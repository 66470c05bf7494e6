"""Motion summaries: per-frame scores to a per-second timeline and a list of motion events.

Tables follow DESIGN.md's contracts:

timeline  camera_id int64, ts timestamp[ms, UTC], frames int16, score float32 (mean
          fraction of changed pixels), peak float32, source string
events    camera_id int64, start, end timestamp[ms, UTC], peak, mean float32, frames int32,
          bbox list<float32>[4] (x0, y0, x1, y1 normalised), source string

Events use hysteresis: a score at or above `event_on` opens an event, it stays open
while scores stay at or above `event_off`, and closes after `merge_gap` quiet seconds;
events shorter than `min_event` are dropped. Each analysed frame stands for a `span` of
time: one frame interval, or, for a keyframe whose GOP was not decoded (`keyframe` and
`gated` modes), the time to the next analysed frame (at most MAX_HOLD_SECONDS). Gaps are
measured from the end of that span, so consecutive keyframe hits and events across a
skipped GOP stay one event, and no event runs past the recording's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.video.motion_config import FrameScore, MotionConfig

if TYPE_CHECKING:
    import pyarrow as pa


def __getattr__(name: str) -> Any:
    """TIMELINE_SCHEMA and EVENTS_SCHEMA, built on first use: pyarrow costs 0.15 s to import,
    which a motion run without Parquet output never needs to pay (issue 17's start-up)."""
    if name in ("TIMELINE_SCHEMA", "EVENTS_SCHEMA"):
        return _schemas()[name]
    raise AttributeError(name)


_SCHEMAS: dict[str, Any] = {}


def _schemas() -> dict[str, Any]:
    if _SCHEMAS:
        return _SCHEMAS
    import pyarrow as pa

    _SCHEMAS["TIMELINE_SCHEMA"] = pa.schema(
        [
            ("camera_id", pa.int64()),
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("frames", pa.int16()),
            ("score", pa.float32()),
            ("peak", pa.float32()),
            ("source", pa.string()),
        ]
    )
    _SCHEMAS["EVENTS_SCHEMA"] = pa.schema(
        [
            ("camera_id", pa.int64()),
            ("start", pa.timestamp("ms", tz="UTC")),
            ("end", pa.timestamp("ms", tz="UTC")),
            ("peak", pa.float32()),
            ("mean", pa.float32()),
            ("frames", pa.int32()),
            ("bbox", pa.list_(pa.float32(), 4)),
            ("source", pa.string()),
        ]
    )
    return _SCHEMAS


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_HOLD_SECONDS = 4.0  # a frame stands for the seconds after it up to the next frame, at most this long


def spans(t: np.ndarray, keyframe: np.ndarray, frame_s: float, end: float | None) -> np.ndarray:
    """Seconds each analysed frame stands for: one frame interval, or for a keyframe followed
    by a keyframe (its GOP not decoded) the time to the next one, up to the recording's `end`.
    A hold never bridges a recording gap: it is capped at MAX_HOLD_SECONDS, or 1.5 GOPs when
    the GOP is longer."""
    out = np.full(len(t), frame_s, np.float32)
    if len(t) == 0:
        return out
    following = np.append(t[1:], end if end is not None else t[-1] + frame_s)
    held = keyframe & np.append(keyframe[1:], True)
    if held.any():
        gaps = following[held] - t[held]
        cap = max(MAX_HOLD_SECONDS, 1.5 * float(np.median(gaps)) if len(gaps) > 1 else MAX_HOLD_SECONDS)
        out[held] = np.clip(gaps, frame_s, cap)
    return out


@dataclass
class Track:
    """Per-frame scores as columns (cheap to pickle between processes, cheap to concatenate)."""

    t: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    score: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    bbox: np.ndarray = field(default_factory=lambda: np.empty((0, 4), np.float32))  # NaN rows: no motion
    span: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # seconds each frame stands for

    def __post_init__(self) -> None:
        if len(self.span) != len(self.t):  # built without spans: each frame stands for the typical interval
            typical = float(np.median(np.diff(self.t))) if len(self.t) > 1 else 1.0
            self.span = np.full(len(self.t), typical, np.float32)

    @classmethod
    def of(cls, scores: list[FrameScore], frame_s: float, offset: float = 0.0) -> Track:
        boxes = np.array([s.bbox if s.bbox is not None else (np.nan,) * 4 for s in scores], np.float32).reshape(-1, 4)
        return cls(
            np.array([s.t for s in scores], np.float64) + offset,
            np.array([s.score for s in scores], np.float32),
            boxes,
            np.full(len(scores), frame_s, np.float32),
        )

    @classmethod
    def concat(cls, tracks: list[Track]) -> Track:
        tracks = [t for t in tracks if len(t.t)]
        if not tracks:
            return cls()
        joined = cls(
            np.concatenate([t.t for t in tracks]),
            np.concatenate([t.score for t in tracks]),
            np.concatenate([t.bbox for t in tracks]),
            np.concatenate([t.span for t in tracks]),
        )
        order = np.argsort(joined.t, kind="stable")
        return cls(joined.t[order], joined.score[order], joined.bbox[order], joined.span[order])

    @property
    def covered_s(self) -> float:
        """Seconds of video the analysed frames stand for."""
        return float(self.span.sum())

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class Event:
    start_s: float
    end_s: float
    peak: float
    mean: float
    frames: int
    bbox: tuple[float, float, float, float]
    peak_s: float = 0.0  # when the score peaked: the event's snapshot
    peak_bbox: tuple[float, float, float, float] | None = None  # the moving regions then


def find_events(track: Track, config: MotionConfig, end_s: float | None = None) -> list[Event]:
    """Hysteresis over the per-frame scores (see the module's docstring); no event ends after `end_s`."""
    events: list[Event] = []
    t, score, bbox = track.t, track.score, track.bbox
    ends = t + track.span
    above_on = score >= config.event_on
    above_off = score >= config.event_off
    i, n = 0, len(t)
    while i < n:
        if not above_on[i]:
            i += 1
            continue
        first = last = i
        j = i + 1
        while j < n and t[j] - ends[last] <= config.merge_gap + 1e-6:
            if above_off[j]:
                last = j
            j += 1
        span = slice(first, last + 1)
        active = above_off[span]
        start, end = float(t[first]), float(ends[last])
        if end_s is not None:
            end = min(end, end_s)
        if end - start >= config.min_event:
            boxes = bbox[span][active]
            boxes = boxes[~np.isnan(boxes).any(axis=1)]
            box = (
                tuple(float(v) for v in (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)))
                if len(boxes)
                else (0.0, 0.0, 1.0, 1.0)
            )
            peak = first + int(np.argmax(score[span]))
            events.append(
                Event(
                    start,
                    end,
                    float(score[peak]),
                    float(score[span][active].mean()),
                    int(active.sum()),
                    box,  # type: ignore[arg-type]
                    float(t[peak]),
                    None if np.isnan(bbox[peak]).any() else tuple(float(v) for v in bbox[peak]),  # type: ignore[arg-type]
                )
            )
        i = last + 1
    return events


def _ms(start: datetime, seconds: np.ndarray | list[float]) -> pa.Array:
    import pyarrow as pa

    base = (start - EPOCH).total_seconds() * 1000.0
    return pa.array(
        (np.asarray(seconds, np.float64) * 1000.0 + base).round().astype(np.int64), type=pa.timestamp("ms", tz="UTC")
    )


def timeline_table(track: Track, camera_id: int, start: datetime, source: str) -> pa.Table:
    """One row per second covered by the recording.

    In `gated` and `keyframe` modes a keyframe stands for the seconds up to the next
    analysed frame: those seconds get its score with `frames` = 0 (nothing decoded there).
    Recording gaps longer than MAX_HOLD_SECONDS stay gaps.
    """
    import pyarrow as pa

    if not len(track):
        return _schemas()["TIMELINE_SCHEMA"].empty_table()
    seconds = np.floor(track.t).astype(np.int64)
    unique, index, counts = np.unique(seconds, return_inverse=True, return_counts=True)
    sums = np.bincount(index, weights=track.score, minlength=len(unique))
    peaks = np.zeros(len(unique), np.float32)
    np.maximum.at(peaks, index, track.score)
    means = (sums / counts).astype(np.float32)
    # Seconds held by a preceding frame (no frame of their own).
    hold = np.minimum(np.diff(track.t, append=track.t[-1]), MAX_HOLD_SECONDS)
    last = np.floor(track.t + hold - 1e-6).astype(np.int64)
    filled_s, filled_score = [], []
    for i in np.nonzero(last > seconds)[0]:
        for second in range(seconds[i] + 1, last[i] + 1):
            filled_s.append(second)
            filled_score.append(track.score[i])
    if filled_s:
        extra_s = np.array(filled_s, np.int64)
        keep = ~np.isin(extra_s, unique)
        extra_s, extra_score = extra_s[keep], np.array(filled_score, np.float32)[keep]
        extra_s, first = np.unique(extra_s, return_index=True)
        extra_score = extra_score[first]
        order = np.argsort(np.concatenate([unique, extra_s]), kind="stable")
        unique = np.concatenate([unique, extra_s])[order]
        counts = np.concatenate([counts, np.zeros(len(extra_s), counts.dtype)])[order]
        means = np.concatenate([means, extra_score])[order]
        peaks = np.concatenate([peaks, extra_score])[order]
    return pa.table(
        {
            "camera_id": pa.array(np.full(len(unique), camera_id, np.int64)),
            "ts": _ms(start, unique.astype(np.float64)),
            "frames": pa.array(np.minimum(counts, 32767).astype(np.int16)),
            "score": pa.array(means),
            "peak": pa.array(peaks),
            "source": pa.array([source] * len(unique), pa.string()),
        },
        schema=_schemas()["TIMELINE_SCHEMA"],
    )


def events_table(events: list[Event], camera_id: int, start: datetime, source: str) -> pa.Table:
    import pyarrow as pa

    if not events:
        return _schemas()["EVENTS_SCHEMA"].empty_table()
    return pa.table(
        {
            "camera_id": pa.array([camera_id] * len(events), pa.int64()),
            "start": _ms(start, [e.start_s for e in events]),
            "end": _ms(start, [e.end_s for e in events]),
            "peak": pa.array([e.peak for e in events], pa.float32()),
            "mean": pa.array([e.mean for e in events], pa.float32()),
            "frames": pa.array([e.frames for e in events], pa.int32()),
            "bbox": pa.array([list(e.bbox) for e in events], pa.list_(pa.float32(), 4)),
            "source": pa.array([source] * len(events), pa.string()),
        },
        schema=_schemas()["EVENTS_SCHEMA"],
    )


def write_parquet(table: pa.Table, path: Path | str) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, str(path), compression="zstd")


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def at(start: datetime | None, seconds: float) -> datetime | None:
    return start + timedelta(seconds=seconds) if start is not None else None
