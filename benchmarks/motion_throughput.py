"""Motion throughput: ours in every mode against decode-only, an OpenCV loop and DVR-Scan, in one run.

Generates (once, cached in .cache/bench/) a 60 s 1080p25 H.264 clip of the synthetic
scene at 4 Mbit/s, GOP 2 s, no B-frames, with known motion under 10% of the time, then
times, each in its own process (so peak RSS is per method):

- reference: `ffmpeg -threads 2 -i clip -f null -` when an ffmpeg binary exists, else
  PyAV decoding every frame with two threads and no conversion (the same work);
- the naive OpenCV loop (read -> gray -> resize -> absdiff of consecutive frames);
- DVR-Scan with its defaults, in its own venv (it pins opencv-contrib, which clashes
  with our opencv-python-headless), installed on first use from PyPI;
- ours: `full`, `gated` and `keyframe`.

Prints frames/s, x-realtime, the ratio to the reference, peak RSS, and event precision
and recall against the ground truth (1 s tolerance; keyframe mode: overlap).

    .venv/bin/python benchmarks/motion_throughput.py [--seconds 60] [--repeat 3] [--no-dvrscan]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
PY = sys.executable


def make_clip(seconds: int) -> tuple[Path, list[tuple[float, float, str]]]:
    from ev_ingest.simulator import scene
    from ev_ingest.simulator.recordings import make_clip as render
    from ev_ingest.simulator.recordings import truth

    CACHE.mkdir(parents=True, exist_ok=True)
    site = scene.Site(
        seed=1, cameras=1, width=1920, height=1080, retention_days=3650, now=datetime(2026, 11, 21, tzinfo=UTC)
    )
    camera = site.camera_list[0]
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    while True:  # a window with at least two events and under 10% motion
        events = truth(site, camera, start, seconds)
        busy = sum(b - a for a, b, _ in events) / seconds
        if len(events) >= 2 and busy < 0.10:
            break
        start += timedelta(seconds=30)
    path = CACHE / f"clip1080_{seconds}s_{start:%H%M%S}.mp4"
    if not path.exists():
        print(f"encoding the {seconds} s 1080p clip (once)...", file=sys.stderr)
        render(path.with_suffix(".tmp.mp4"), start=start, seconds=seconds, width=1920, height=1080, bitrate="4M")
        path.with_suffix(".tmp.mp4").rename(path)
    return path, events


# --- methods, each run as `python motion_throughput.py --method NAME CLIP` --------------------


def method_reference(clip: str) -> dict:
    if shutil.which("ffmpeg"):
        began = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-threads", "2", "-i", clip, "-f", "null", "-"], check=True)
        elapsed = time.perf_counter() - began
        import av

        with av.open(clip) as c:
            frames = c.streams.video[0].frames
        return {"frames": frames, "elapsed": elapsed, "name": "ffmpeg -threads 2 -f null"}
    import av

    began = time.perf_counter()
    with av.open(clip) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "AUTO", 2
        frames = sum(1 for _ in container.decode(stream))
    return {"frames": frames, "elapsed": time.perf_counter() - began, "name": "PyAV decode, 2 threads (no ffmpeg)"}


def method_opencv(clip: str) -> dict:
    import cv2

    began = time.perf_counter()
    capture = cv2.VideoCapture(clip)
    previous, frames, moving = None, 0, []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (320, 180))
        if previous is not None:
            _, mask = cv2.threshold(cv2.absdiff(small, previous), 25, 255, cv2.THRESH_BINARY)
            moving.append(cv2.countNonZero(mask) / mask.size)
        previous = small
        frames += 1
    elapsed = time.perf_counter() - began
    fps = capture.get(cv2.CAP_PROP_FPS) or 25
    events = _threshold_events(moving, fps)
    return {"frames": frames, "elapsed": elapsed, "events": events}


def _threshold_events(scores: list[float], fps: float) -> list[list[float]]:
    events, start = [], None
    for i, s in enumerate(scores):
        if s >= 0.002 and start is None:
            start = i
        elif s < 0.001 and start is not None:
            events.append([start / fps, i / fps])
            start = None
    if start is not None:
        events.append([start / fps, len(scores) / fps])
    return events


def method_ours(clip: str, mode: str) -> dict:
    from pipelines.video import analyze

    began = time.perf_counter()
    summary = analyze(clip, mode=mode, workers=2)
    elapsed = time.perf_counter() - began
    return {
        "frames": round(summary.duration_s * summary.fps),
        "elapsed": elapsed,
        "events": [[e.start_s, e.end_s] for e in summary.events],
        "decoded": summary.stats.frames,
    }


def method_dvrscan(clip: str) -> dict:
    venv = CACHE / "dvrscan-venv"
    binary = venv / "bin" / "dvr-scan"
    if not binary.exists():
        print("installing DVR-Scan 1.8.2.1 in its own venv (once)...", file=sys.stderr)
        subprocess.run([PY, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvr-scan==1.8.2.1"], check=True)
    began = time.perf_counter()
    # -so: scan only; -q: print nothing but the events as "start,end,start,end,..." timecodes.
    answer = subprocess.run([str(binary), "-i", clip, "-so", "-q"], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    codes = [c for c in answer.stdout.strip().splitlines()[-1].split(",") if c] if answer.stdout.strip() else []
    events = [[_seconds(codes[i]), _seconds(codes[i + 1])] for i in range(0, len(codes) - 1, 2)]
    import av

    with av.open(clip) as c:
        frames = c.streams.video[0].frames
    return {"frames": frames, "elapsed": elapsed, "events": events}


def _seconds(timecode: str) -> float:
    h, m, s = timecode.strip().split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def run_method(name: str, clip: Path) -> dict:
    """One measurement in a fresh process; peak RSS is that process's (and its workers')."""
    answer = subprocess.run([PY, __file__, "--method", name, str(clip)], capture_output=True, text=True, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def score(events: list[list[float]], truth: list[tuple[float, float, str]], overlap: bool) -> tuple[float, float]:
    def same(e: list[float], t: tuple[float, float, str]) -> bool:
        if overlap:
            return e[0] < t[1] and e[1] > t[0]
        return abs(e[0] - t[0]) <= 1.0 and abs(e[1] - t[1]) <= 1.0

    recall = sum(any(same(e, t) for e in events) for t in truth) / len(truth) if truth else 1.0
    precision = sum(any(same(e, t) for t in truth) for e in events) / len(events) if events else 1.0
    return precision, recall


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dvrscan", action="store_true")
    parser.add_argument("--method")
    parser.add_argument("clip", nargs="?")
    args = parser.parse_args()
    if args.method:
        kind, _, mode = args.method.partition(":")
        result = {"reference": method_reference, "opencv": method_opencv, "dvrscan": method_dvrscan}.get(kind)
        measured = result(args.clip) if result else method_ours(args.clip, mode)
        usage = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        measured["peak_rss_mb"] = usage / 1024
        print(json.dumps(measured))
        return 0

    clip, truth = make_clip(args.seconds)
    methods = ["reference", "opencv", "ours:full", "ours:gated", "ours:keyframe"]
    if not args.no_dvrscan:
        methods.insert(2, "dvrscan")
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits every method alike
        for method in methods:
            try:
                results[method].append(run_method(method, clip))
            except subprocess.CalledProcessError as exc:
                print(f"{method} failed: {exc.stderr[-500:]}", file=sys.stderr)
    print(
        f"\nclip: {clip.name}, {args.seconds} s 1080p25 H.264 4 Mbit/s, GOP 2 s; "
        f"truth: {[(round(a, 1), round(b, 1), k) for a, b, k in truth]}"
    )
    print(f"cores: {os.cpu_count()}, repeats: {args.repeat} (medians)\n")
    reference = statistics.median(r["frames"] / r["elapsed"] for r in results["reference"])
    rows = {}
    print(
        f"{'method':<22}{'frames/s':>10}{'x realtime':>12}{'vs ref':>8}{'peak RSS':>10}{'precision':>11}{'recall':>8}"
    )
    for method in methods:
        runs = results[method]
        if not runs:
            continue
        fps = statistics.median(r["frames"] / r["elapsed"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        precision = recall = float("nan")
        if "events" in runs[0]:
            # DVR-Scan pads events with pre/post-roll by design, keyframe mode rounds to keyframes:
            # those two are scored by overlap; the others by start and end within 1 s.
            precision, recall = score(runs[0]["events"], truth, overlap=method in ("ours:keyframe", "dvrscan"))
        rows[method] = fps
        print(
            f"{method:<22}{fps:>10.0f}{fps / 25:>11.1f}x{fps / reference:>8.2f}{rss:>8.0f}MB"
            f"{precision:>11.2f}{recall:>8.2f}"
        )
    print(f"\nreference: {results['reference'][0]['name']}")
    if "dvrscan" in rows and "opencv" in rows:
        print(
            f"ours full vs OpenCV loop: {rows['ours:full'] / rows['opencv']:.2f}x, "
            f"vs DVR-Scan defaults: {rows['ours:full'] / rows['dvrscan']:.2f}x"
        )
    elif "opencv" in rows:
        print(f"ours full vs OpenCV loop: {rows['ours:full'] / rows['opencv']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
