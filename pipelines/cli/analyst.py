"""The data scientist's verb on local files: `ev-ingest motion FILE...` (events, a per-second
timeline, snapshots and clips of each event); the video core is `pipelines.video`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.cli.common import EXIT_OK, TIME_HELP, CliError, parse_time
from pipelines.terminal import say


def parse_region(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("region is x0,y0,x1,y1 in 0..1, e.g. 0,0.5,1,1") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise argparse.ArgumentTypeError(
            f"region {text!r}: fractions of the frame, 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            "(e.g. 0,0.5,1,1 for the lower half), not pixels"
        )
    return x0, y0, x1, y1


def cmd_motion(args: argparse.Namespace) -> int:
    from pipelines.video import MotionConfig, analyze
    from pipelines.video.summary import write_parquet

    show_progress = not args.json and sys.stderr.isatty()
    if show_progress:
        from tqdm import tqdm  # 0.07 s to import: only for a terminal that shows the bar
    else:
        from contextlib import nullcontext as tqdm  # type: ignore[assignment]

    settings = {
        "region": args.region,
        "masks": tuple(args.mask) if args.mask else None,
        "pixel_threshold": args.threshold,
        "min_region": args.min_region,
        "detector": args.detector,
    }
    config = MotionConfig(**{k: v for k, v in settings.items() if v is not None})
    reports = []
    for path in args.files:
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"
        bar_args = {"total": 1.0, "desc": path.name, "bar_format": bar_format, "leave": False} if show_progress else {}
        with tqdm(**bar_args) as bar:

            def progress(done: float, total: float, bar: Any = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            summary = analyze(
                path,
                mode=args.mode,
                config=config,
                start=args.start,
                workers=args.workers,
                progress=progress if show_progress else None,
            )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_parquet(summary.timeline_table(), args.out / f"{path.stem}.timeline.parquet")
            write_parquet(summary.events_table(), args.out / f"{path.stem}.events.parquet")
        report = summary.as_json()
        if args.snapshots or args.clips:
            report["media"] = write_media(path, summary, args.snapshots, args.clips)
        reports.append(report)
        for warning in summary.warnings:  # on stderr, also with --json: a partial summary is never silent
            say(f"{path}: warning: {warning}", file=sys.stderr)
        if not args.json:
            say(
                f"{path}: {len(summary.events)} events, {summary.duration_s:.0f} s of video in "
                f"{summary.elapsed_s:.1f} s ({summary.realtime_factor:.0f}x real time, {args.mode})",
                *(
                    f"  {event.start_s:8.2f} s -> {event.end_s:8.2f} s  peak {event.peak:.3f}"
                    for event in summary.events
                ),
            )
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return EXIT_OK


def write_media(path: Path, summary: Any, snapshots: Path | None, clips: Path | None) -> list[dict[str, str]]:
    """A snapshot and/or a clip per event, named <file>.<n>.jpg / <file>.<n>.mp4."""
    from pipelines.video import media
    from pipelines.video.decode import is_zip

    if is_zip(path):
        raise CliError(f"{path}: snapshots and clips are made from single-file recordings, not a ps_zip")
    made = []
    suffix = media.clip_suffix(path) if clips else ""
    shots = media.snapshots(path, summary.events) if snapshots else []
    for number, event in enumerate(summary.events, start=1):
        item: dict[str, str] = {}
        if snapshots and shots[number - 1] is not None:
            snapshots.mkdir(parents=True, exist_ok=True)
            target = snapshots / f"{path.stem}.{number:03d}.jpg"
            target.write_bytes(shots[number - 1])  # type: ignore[arg-type]
            item["snapshot"] = str(target)
        if clips:
            clips.mkdir(parents=True, exist_ok=True)
            target = clips / f"{path.stem}.{number:03d}{suffix}"
            target.write_bytes(media.clip(path, event))
            item["clip"] = str(target)
        made.append(item)
    return made


def register(sub: Any, command: Any) -> None:
    """`ev-ingest motion`."""
    p = command("motion", cmd_motion, "motion events and a per-second timeline of video files")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--mode", choices=["full", "gated", "keyframe"], default="gated")
    p.add_argument("--region", type=parse_region, help="x0,y0,x1,y1 (0..1): only look here")
    p.add_argument("--start", type=parse_time, help="wall-clock time of the first frame (" + TIME_HELP + ")")
    p.add_argument("--workers", type=int, default=None, help="processes (default: 2)")
    p.add_argument("--out", type=Path, help="write <name>.timeline.parquet and <name>.events.parquet here")
    p.add_argument("--snapshots", type=Path, help="write a JPEG per event (its peak frame, region boxed) here")
    p.add_argument("--clips", type=Path, help="write a clip per event (packets copied, no re-encoding) here")
    p.add_argument("--mask", type=parse_region, action="append", help="x0,y0,x1,y1 (0..1): never look here (repeat)")
    p.add_argument("--threshold", type=int, help="luma change that counts a pixel as moving (default 20)")
    p.add_argument("--min-region", type=float, help="smallest moving region, fraction of the frame (default 0.0015)")
    p.add_argument("--detector", choices=["running_average", "mog2"], help="background model")
