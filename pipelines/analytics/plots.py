"""Plots of motion activity, as matplotlib figures returned (never shown), for notebooks and reports.

- `activity_heatmap`: camera by hour of the day, motion averaged over every second of the
  hour (unrecorded seconds count as none; blank: nothing recorded that hour).
- `event_timeline`: one row per camera, a bar per motion event, over what was recorded.
- `event_sheet`: a grid of event thumbnails with their times and peaks.
- `daily_comparison`: events per hour, one line per day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")  # no pyplot: no GUI backend needed


def activity_heatmap(timeline: pd.DataFrame, names: dict[Any, str] | None = None) -> Figure:
    figure = _figure(10, 1.2 + 0.45 * max(1, timeline["camera_id"].nunique()))
    axes = figure.add_subplot()
    if timeline.empty:
        axes.set_title("no motion data")
        return figure
    # Honest across recording modes: each hour's motion is averaged over all its seconds,
    # not only the recorded ones (a motion-triggered camera records little but busy video,
    # and looked ~6x busier than it was). Hours with nothing recorded stay blank.
    frame = timeline.assign(hour=timeline["ts"].dt.hour)
    days = max(1, timeline["ts"].dt.normalize().nunique())
    total = frame.pivot_table(index="camera_id", columns="hour", values="score", aggfunc="sum").reindex(
        columns=range(24)
    )
    grid = total / (3600 * days)
    image = axes.imshow(grid.to_numpy(dtype=float) * 100, aspect="auto", cmap="magma", interpolation="nearest")
    axes.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    axes.set_yticks(range(len(grid.index)), [(names or {}).get(c, str(c)) for c in grid.index])
    axes.set_xlabel("hour (UTC)")
    axes.set_title("Activity: % of pixels moving, averaged over every second of the hour (not recorded = no motion)")
    figure.colorbar(image, ax=axes, label="% moving")
    return figure


def event_timeline(
    events: pd.DataFrame, names: dict[Any, str] | None = None, recorded: pd.DataFrame | None = None
) -> Figure:
    """A bar per event; with `recorded` (`pipelines.analytics.datasets.recorded_time`), what each camera
    recorded is drawn grey behind them, so time not recorded (blank) is not read as "no
    motion" (grey without bars)."""
    shown = [events["camera_id"]] + ([recorded["camera_id"]] if recorded is not None else [])
    cameras = sorted(pd.concat(shown).unique()) if any(len(c) for c in shown) else []
    figure = _figure(10, 1.2 + 0.5 * max(1, len(cameras)))
    axes = figure.add_subplot()
    for row, camera in enumerate(cameras):
        if recorded is not None:
            spans = recorded[recorded["camera_id"] == camera]
            lengths = (spans["end"] - spans["start"]).dt.total_seconds()
            axes.broken_barh(_bars(spans["start"], lengths), (row - 0.45, 0.9), color="0.9")
        mine = events[events["camera_id"] == camera]
        axes.broken_barh(_bars(mine["start"], mine["duration_s"]), (row - 0.35, 0.7), color="tab:orange")
    axes.xaxis_date()
    axes.set_yticks(range(len(cameras)), [(names or {}).get(c, str(c)) for c in cameras])
    axes.set_xlabel("time (UTC)")
    legend = "; grey: recorded, blank: not recorded" if recorded is not None else ""
    axes.set_title(f"{len(events)} motion events{legend}")
    return figure


def _bars(starts: pd.Series, seconds: pd.Series) -> list[tuple[float, float]]:
    at = mdates.date2num(starts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    widths = np.maximum(seconds.to_numpy(dtype=float), 1.0) / 86400  # at least a second: stays visible
    return list(zip(at, widths, strict=True))


def event_sheet(thumbnails: Sequence[tuple[str, bytes]], columns: int = 4) -> Figure:
    """A grid of (caption, JPEG) thumbnails."""
    import cv2

    rows = max(1, -(-len(thumbnails) // columns))
    figure = _figure(3 * columns, 2.4 * rows)
    for index, (caption, jpeg) in enumerate(thumbnails):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            axes.imshow(image[:, :, ::-1])
        axes.set_title(caption, fontsize=8)
        axes.axis("off")
    return figure


def daily_comparison(events: pd.DataFrame) -> Figure:
    figure = _figure(10, 3.5)
    axes = figure.add_subplot()
    if not events.empty:
        frame = events.assign(day=events["start"].dt.strftime("%Y-%m-%d"), hour=events["start"].dt.hour)
        counts = frame.groupby(["day", "hour"]).size().unstack("day", fill_value=0).reindex(range(24), fill_value=0)
        for day in counts.columns:
            axes.plot(counts.index, counts[day], marker="o", label=day)
        axes.legend()
    axes.set_xlabel("hour (UTC)")
    axes.set_ylabel("motion events")
    axes.set_title("Events per hour, day by day")
    return figure
