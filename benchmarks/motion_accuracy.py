"""Motion accuracy on real cameras, start-up cost, and peak memory per container, in one run.

1. Every clip of `tests/footage/` (public clips from real cameras, reference events in
   `truth.json`) in every mode: strict recall and precision (both ends within 1 s),
   lenient precision, frames decoded, speed. Targets (issues 17, 26): strict >= 0.8 per clip,
   lenient precision 1.0, no event on the light-change clip.
2. Start-up: `ev-ingest motion` on the 4.9 s clip, whole command, against `python -c pass`
   (the interpreter alone) and the same analysis in-process (the work itself): process
   start to first frame is at most the command's time minus the work after the first frame.
3. Camera copies: every clip as the simulator's footage camera (forward and back, re-encoded
   in 2 s GOPs at a camera's size and rate: 320 wide at 5 fps, 640 wide at 10 fps), two
   periods, scored against the truth the simulator serves. What the same scene gives when
   a camera records it at another size and rate (issue 26: results that hold across encodings).
4. Peak RSS of `analyze()` (its process and its workers) on a synthetic export of
   `--minutes` (default 30) at 640x360 as mp4 and as ps_zip. Target < 400 MB.

    .venv/bin/python benchmarks/motion_accuracy.py [--minutes 30] [--no-memory] [--no-copies]
    .venv/bin/python benchmarks/motion_accuracy.py --accuracy-only --modes full,gated
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT / "tests" / "footage"
CACHE = ROOT / ".cache" / "bench"
PY = sys.executable
sys.path.insert(0, str(ROOT))


def accuracy(modes: tuple[str, ...]) -> None:
    from pipelines.video import analyze
    from pipelines.video.scoring import reference_config, score

    truth = json.loads((FOOTAGE / "truth.json").read_text())
    print(f"{'clip':40} {'mode':8} {'strict R':>8} {'strict P':>8} {'lenient P':>9} {'frames':>11} {'x real':>7}")
    for clip, reference in sorted(truth["videos"].items()):
        for mode in modes:
            began = time.perf_counter()
            summary = analyze(FOOTAGE / clip, mode=mode, workers=2, config=reference_config(reference))
            elapsed = time.perf_counter() - began
            found = [(e.start_s, e.end_s) for e in summary.events]
            result = score(found, [tuple(e) for e in reference["events"]], truth["tolerance_s"])
            total = round(summary.duration_s * summary.fps)
            print(
                f"{clip:40} {mode:8} {result.recall:8.2f} {result.precision:8.2f} {result.lenient_precision:9.2f} "
                f"{summary.stats.frames:5d}/{total:<5d} {summary.duration_s / elapsed:7.0f}"
            )


def camera_copies(modes: tuple[str, ...], shapes: tuple[tuple[int, int], ...] = ((320, 5), (640, 10))) -> None:
    import math

    from ev_ingest.simulator import exports, footage, library, scene
    from pipelines.video import analyze
    from pipelines.video.scoring import reference_config, score

    truth = json.loads((FOOTAGE / "truth.json").read_text())
    clips = tuple(footage.load(FOOTAGE, len(truth["videos"])))
    print(
        f"\ncamera copies (the simulator's footage cameras, two periods forward and back, 2 s GOPs, crf {footage.CRF}):"
    )
    print(f"{'clip':40} {'camera':>12} {'mode':8} {'strict R':>8} {'strict P':>8} {'lenient P':>9} {'events':>6}")
    for width, fps in shapes:
        site = scene.Site(
            cameras=len(clips), width=width, fps=fps, footage=clips, now=datetime(2026, 11, 21, tzinfo=UTC)
        )
        for camera in site.camera_list:
            assert camera.footage is not None
            period = camera.footage.period_s
            start = datetime.fromtimestamp(
                math.ceil(datetime(2026, 11, 20, tzinfo=UTC).timestamp() / period) * period, UTC
            )
            end = start + timedelta(seconds=2 * period)
            layout = exports.ExportLayout(
                library.load_camera_library(camera, site.seed), tuple(site.plays(camera, start, end)), start, "mp4"
            )
            data = b"".join(layout.chunks())
            length = (end - start).total_seconds()
            reference = [
                (max(0.0, (e.start - start).total_seconds()), min(length, (e.end - start).total_seconds()))
                for e in site.events(camera, start, end)
            ]
            config = reference_config(truth["videos"][camera.footage.name])
            for mode in modes:
                summary = analyze(data, mode=mode, workers=2, config=config)
                result = score([(e.start_s, e.end_s) for e in summary.events], reference, truth["tolerance_s"])
                shape = f"{camera.width}x{camera.height}@{fps}"
                print(
                    f"{camera.footage.name:40} {shape:>12} {mode:8} {result.recall:8.2f} {result.precision:8.2f} "
                    f"{result.lenient_precision:9.2f} {len(summary.events):6d}"
                )


def startup(repeat: int) -> None:
    clip = FOOTAGE / "dvrscan_issue53_brightness_change.avi"
    command = [str(Path(PY).parent / "ev-ingest"), "motion", str(clip), "--mode", "full"]

    def timed(argv: list[str]) -> float:
        began = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        return time.perf_counter() - began

    bare = statistics.median(timed([PY, "-c", "pass"]) for _ in range(repeat))
    whole = statistics.median(timed(command) for _ in range(repeat))
    probe = (
        "import time, sys; t = time.perf_counter(); from pipelines.video import analyze; "
        f"analyze({str(clip)!r}, mode='full'); print(time.perf_counter() - t)"
    )
    work = statistics.median(
        float(subprocess.run([PY, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT).stdout)
        for _ in range(repeat)
    )
    print(
        f"\nstart-up: `ev-ingest motion` on a 4.9 s clip takes {whole:.2f} s in all; the interpreter alone "
        f"{bare:.2f} s; imports and analysis in-process {work:.2f} s. Process start to first frame <= {whole:.2f} s "
        f"(target 0.5 s)."
    )


def memory(minutes: int) -> None:
    from ev_ingest.simulator import exports, library, scene

    site = scene.Site(cameras=1, width=640, height=360, now=datetime(2026, 11, 21, tzinfo=UTC))
    camera = site.camera_list[0]
    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    plays = tuple(site.plays(camera, start, start + timedelta(minutes=minutes)))
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"\npeak RSS of analyze() on a {minutes} min 640x360 export (process + workers):")
    for fmt, suffix in (("mp4", "mp4"), ("ps_zip", "zip")):
        path = CACHE / f"memory_{minutes}m.{suffix}"
        if not path.exists():
            layout = exports.ExportLayout(
                library.load_camera_library(camera, site.seed), plays, scene.slot_start(plays[0].slot), fmt
            )
            with path.open("wb") as fh:
                for chunk in layout.chunks():
                    fh.write(chunk)
        for mode in ("full", "gated"):
            probe = (
                "import resource; from pipelines.video import analyze; "
                f"s = analyze({str(path)!r}, mode={mode!r}, workers=2); "
                "r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
                "c = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
                "print(s.stats.frames, max(r, c) // 1024, r // 1024, c // 1024)"
            )
            out = subprocess.run([PY, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT).stdout
            frames, peak, own, workers = out.split()
            print(
                f"  {fmt:7} {mode:6} {frames:>7} frames  peak {peak} MB (process {own} MB, largest worker {workers} MB)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--modes", default="full,gated,keyframe", help="comma-separated; accuracy only")
    parser.add_argument("--accuracy-only", action="store_true")
    parser.add_argument("--no-copies", action="store_true", help="skip the simulator's camera copies of the clips")
    args = parser.parse_args()
    accuracy(tuple(args.modes.split(",")))
    if not args.no_copies:
        camera_copies(tuple(m for m in args.modes.split(",") if m != "keyframe"))
    if args.accuracy_only:
        return
    startup(args.repeat)
    if not args.no_memory:
        memory(args.minutes)
    print(f"\n(benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB)")


if __name__ == "__main__":
    main()
