"""Motion analysis of recordings: decode (in the chosen mode) -> detect -> summarise.

Modes, and what each costs and finds:

- `full`: every frame decoded and scored. Exhaustive; the reference for accuracy.
- `gated` (default for long archives): every keyframe decoded; a GOP is decoded in full
  only where the keyframes around it differ. Same events as `full` for every event that
  spans a keyframe; blind to motion that starts and ends between two keyframes and
  leaves them alike (with a 2 s GOP: events shorter than 2 s can be missed).
- `keyframe`: keyframes only, a first pass; finds events longer than two GOPs, with
  start and end rounded to keyframes.

Work runs in parallel, on both cores: one recording has its GOPs decoded by threads of
this process (`gops.GopDecoder`: FFmpeg decodes without the GIL) while one detector
takes the frames in time order, so the result is the same for any number of workers;
several files (or ps_zip members) run in separate processes, one single-threaded
decoder each.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

import av.error
import numpy as np

from pipelines.video import decode, gops
from pipelines.video.decode import DecodeStats, Segment, Source, VideoError, ZipMember
from pipelines.video.detect import KeyframeGate, MotionDetector, make_detector
from pipelines.video.motion_config import MotionConfig
from pipelines.video.summary import EPOCH, Event, Track, events_table, find_events, spans, timeline_table

log = logging.getLogger(__name__)
COVERAGE_KEY = "ev_ingest.coverage"

Mode = Literal["full", "gated", "keyframe"]
MODES: tuple[Mode, ...] = ("full", "gated", "keyframe")
Progress = Callable[[float, float], None]  # (done, in all): seconds of one recording, or recordings


@dataclass(frozen=True)
class Job:
    data: Any  # a path, a ZipMember, or (in-process only) bytes or a file object
    container_format: str | None
    mode: Mode
    config: MotionConfig
    offset_s: float  # the segment's start within the whole recording
    backend: str = "auto"
    threads: int = 0  # FFmpeg's threads for a sequential decode (0: its choice)
    gop_threads: int = 1  # over 1: GOPs decoded on this many threads
    preroll: bytes | str | None = None  # the previous recording's last seconds (`warm`)


@dataclass
class DecodeResult:
    track: Track
    stats: DecodeStats
    fps: float
    duration: float | None
    gops: int = 0
    gops_decoded: int = 0
    job_seconds: float = 0.0
    error: str | None = None  # the segment could not be decoded at all (the others still count)
    size: tuple[int, int] = (0, 0)
    preroll_s: float = 0.0


@dataclass
class MotionSummary:
    source: str
    camera_id: int
    start: datetime | None
    mode: Mode
    track: Track
    events: list[Event]
    stats: DecodeStats
    duration_s: float
    frame_s: float
    elapsed_s: float
    gops: int = 0
    gops_decoded: int = 0
    fps: float = 0.0
    warnings: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # the video's width and height, pixels
    preroll_s: float = 0.0  # seconds of the previous recording the detector saw first (0: cold)

    def pixels(self, box: tuple[float, float, float, float]) -> list[int]:
        """A normalised box in the video's pixels."""
        width, height = self.size
        return [round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)]

    def timeline_table(self) -> Any:
        return self._with_coverage(timeline_table(self.track, self.camera_id, self.start or EPOCH, self.source))

    def events_table(self) -> Any:
        return self._with_coverage(events_table(self.events, self.camera_id, self.start or EPOCH, self.source))

    def _with_coverage(self, table: Any) -> Any:
        """The table with this summary's coverage in its schema metadata (`ev_ingest.coverage`)."""
        return table.replace_schema_metadata({COVERAGE_KEY: json.dumps(self.coverage())})

    def coverage(self) -> dict[str, Any]:
        """What the summary covers: seconds analysed, seconds lost to damage (bad packets, a
        container unreadable from some point to its end), and their ratio. Gaps a recording
        never had (a motion-triggered camera) are not losses."""
        stats = self.stats
        lost = sum(b - a for a, b in stats.damaged)
        analysed = self.track.covered_s
        return {
            "analysed_s": round(analysed, 3),
            "lost_s": round(lost, 3),
            "coverage": round(analysed / (analysed + lost), 4) if analysed + lost > 0 else 0.0,
            "complete": not stats.damaged and stats.unreadable_from is None,
            "damaged_spans": [[round(a, 3), round(b, 3)] for a, b in stats.damaged],
            "unreadable_from_s": stats.unreadable_from,
            "preroll_s": round(self.preroll_s, 3),  # 0: the detector started cold
        }

    @property
    def realtime_factor(self) -> float:
        return self.duration_s / self.elapsed_s if self.elapsed_s else 0.0

    def as_json(self) -> dict[str, Any]:
        def utc(seconds: float) -> str | None:
            moment = decode.wall_clock(self.start, seconds)
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "source": self.source,
            "camera_id": self.camera_id,
            "mode": self.mode,
            "start": utc(0.0),
            "duration_s": round(self.duration_s, 3),
            "frames_analysed": self.stats.frames,
            "elapsed_s": round(self.elapsed_s, 3),
            "x_realtime": round(self.realtime_factor, 1),
            "gops": self.gops,
            "gops_decoded": self.gops_decoded,
            "corrupt_packets": self.stats.corrupt_packets,
            "damaged_spans": [{"start_s": round(a, 3), "end_s": round(b, 3)} for a, b in self.stats.damaged],
            "unreadable_from_s": self.stats.unreadable_from,
            "coverage": {k: v for k, v in self.coverage().items() if k not in ("damaged_spans", "unreadable_from_s")},
            "events": [
                {
                    "start_s": round(e.start_s, 3),
                    "end_s": round(e.end_s, 3),
                    "peak": round(e.peak, 5),
                    "mean": round(e.mean, 5),
                    "frames": e.frames,
                    "peak_s": round(e.peak_s, 3),
                    "bbox": [round(v, 4) for v in e.bbox],
                    "bbox_px": self.pixels(e.bbox),
                    "start": utc(e.start_s),
                    "end": utc(e.end_s),
                }
                for e in self.events
            ],
            "warnings": self.warnings,
        }


def run_job(job: Job, progress: Progress | None = None) -> DecodeResult:
    """Decode and score one recording. Runs in a worker process (or in-process, where
    `progress` hears of each second of video done, when the duration is known).

    Anything the decoder raises is a VideoError; when PyAV yields no frame at all from a
    file (a codec it opens but cannot decode), OpenCV is tried before giving up."""
    try:
        return _decode_job(job, progress, job.backend)
    except NothingDecoded as exc:
        if job.backend != "auto" or not isinstance(job.data, str):
            raise VideoError(str(exc)) from None
        log.warning("%s; trying OpenCV", exc)
        try:
            return _decode_job(job, progress, "opencv")
        except NothingDecoded as again:
            raise VideoError(f"{exc}; OpenCV: {again}") from None


class NothingDecoded(VideoError):
    """The backend opened the recording but produced no frame from it."""


def _decode_job(job: Job, progress: Progress | None, backend: str) -> DecodeResult:
    began = time.perf_counter()
    config = job.config
    reader = decode.open_video(Segment("", job.data, None, job.container_format), threads=job.threads, backend=backend)  # type: ignore[arg-type]
    try:
        step = config.step_for(reader.info.width)
        gate = KeyframeGate(config)
        frames: Iterator[decode.LumaFrame]
        pyav = isinstance(reader, decode.PyAVReader)
        if pyav and job.gop_threads > 1 and gops.parallel_supported(reader):
            parallel = gops.GopDecoder(reader, step, job.gop_threads)
            by_mode = {"full": parallel.frames, "gated": partial(parallel.gated_frames, gate)}
            frames = by_mode.get(job.mode, parallel.keyframes)()
        elif pyav and job.mode == "gated":
            frames = reader.gated_frames(gate, step)
        else:
            frames = reader.frames("keyframe" if job.mode == "keyframe" else "full", step)
        detector = make_detector(config)
        # The analysed size (rows, columns) of this recording's frames, which a pre-roll must share.
        size = (-(-reader.info.height // step), -(-reader.info.width // step))
        lead, preroll_s = warm(detector, job.preroll, job.mode, step, size) if job.preroll is not None else (0, 0.0)
        times: list[float] = []
        keys: list[bool] = []
        scores: list[float] = []
        boxes: list[tuple[float, float, float, float]] = []
        nan_box = (np.nan, np.nan, np.nan, np.nan)
        duration = reader.info.duration if progress else None
        reported = 0.0
        try:
            for frame in frames:
                result = detector.score(frame.luma, frame.t)
                if progress and duration and frame.t - reported >= 1.0:
                    reported = frame.t
                    progress(min(frame.t, duration), duration)
                times.append(frame.t + job.offset_s)
                keys.append(frame.keyframe)
                scores.append(result.score)
                boxes.append(result.bbox or nan_box)
                _revise(detector.revisions(), scores, boxes, lead)
        except (av.error.FFmpegError, ValueError, OSError) as exc:  # raw decoder errors end here
            if not times:
                raise NothingDecoded(f"{reader.info.codec}: {type(exc).__name__}: {exc}") from None
            where = times[-1] - job.offset_s
            log.warning("decoding stopped at %.1f s (%s): the rest is reported unreadable", where, exc)
            reader.stats.unreadable_from = where
            reader.stats.damage(where, 0.0)
        if not times:
            raise NothingDecoded(f"no frame could be decoded ({reader.info.codec})")
        _revise(detector.revisions(final=True), scores, boxes, lead)
        t = np.array(times, np.float64)
        frame_s = 1.0 / (reader.info.fps or 25.0)
        end = job.offset_s + reader.info.duration if reader.info.duration else None
        held = np.array(keys, bool) if job.mode != "full" else np.zeros(len(t), bool)
        track = Track(
            t,
            np.array(scores, np.float32),
            np.array(boxes, np.float32).reshape(-1, 4),
            spans(t, held, frame_s, end),
        )
        return DecodeResult(
            track,
            reader.stats,
            reader.info.fps,
            reader.info.duration,
            getattr(reader, "gops", 0),
            getattr(reader, "gops_decoded", 0),
            time.perf_counter() - began,
            size=(reader.info.width, reader.info.height),
            preroll_s=preroll_s,
        )
    finally:
        reader.close()


def warm(
    detector: MotionDetector, preroll: bytes | str, mode: Mode, step: int, size: tuple[int, int]
) -> tuple[int, float]:
    """Show the detector the previous recording's last seconds (a camera-day is one stream:
    the chunk starts warm, not blind). Their scores are dropped; (frames shown, seconds).
    A pre-roll that cannot be decoded costs only itself: logged, and the chunk starts cold."""
    try:
        reader = decode.open_video(Segment("", preroll, None), backend="pyav")
    except VideoError as exc:
        log.warning("the pre-roll cannot be read (%s): this recording starts cold", exc)
        return 0, 0.0
    try:
        frames = list(reader.frames("keyframe" if mode == "keyframe" else "full", step))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        log.warning("the pre-roll cannot be decoded (%s): this recording starts cold", exc)
        return 0, 0.0
    finally:
        reader.close()
    if not frames:
        return 0, 0.0
    if all(size) and frames[0].luma.shape != size:
        # The detector starts again at a new frame size: such a pre-roll would warm nothing.
        log.warning("the pre-roll is %s, this recording %s: it starts cold", frames[0].luma.shape, size)
        return 0, 0.0
    # Times before this recording's first frame: the pre-roll ends where this begins.
    end = max(reader.info.duration or 0.0, frames[-1].t + 1.0 / (reader.info.fps or 25.0))
    for frame in frames:
        detector.score(frame.luma, frame.t - end)
        detector.revisions()  # revised pre-roll frames are not this recording's
    return len(frames), end - frames[0].t


def _revise(
    revised: list[tuple[int, Any]],
    scores: list[float],
    boxes: list[tuple[float, float, float, float]],
    lead: int = 0,
) -> None:
    """Earlier frames' scores the detector revised (its second look at the opening seconds):
    a revision only adds motion, it never removes what was seen. The detector counts the
    `lead` pre-roll frames it saw first; those are not this recording's."""
    for counted, result in revised:
        index = counted - lead
        if 0 <= index < len(scores) and result.score > scores[index]:
            scores[index] = result.score
            boxes[index] = result.bbox or boxes[index]


def in_process(segments: list[Segment]) -> bool:
    """Whether the segments must be decoded here: a lone recording, or members of a zip held
    in memory (handing them to worker processes would copy them whole)."""
    return len(segments) == 1 or any(isinstance(s.data, ZipMember) and not s.data.by_path for s in segments)


def plan_jobs(segments: list[Segment], mode: Mode, config: MotionConfig, workers: int, backend: str) -> list[Job]:
    """One job per segment. A recording decoded in this process gets every worker as a GOP
    thread; segments of a file on disk run side by side, one single-threaded decoder each."""
    first = next((s.start for s in segments if s.start is not None), None)
    here = in_process(segments)
    jobs = []
    for segment in segments:
        offset = (segment.start - first).total_seconds() if segment.start and first else 0.0
        data = str(segment.data) if isinstance(segment.data, os.PathLike) else segment.data
        if here:
            jobs.append(Job(data, segment.container_format, mode, config, offset, backend, 0, workers))
        else:
            threads = 1 if workers > 1 else 0
            jobs.append(Job(data, segment.container_format, mode, config, offset, backend, threads))
    return jobs


def analyze(
    source: Source,
    *,
    mode: Mode = "gated",
    config: MotionConfig | None = None,
    camera_id: int = 0,
    start: datetime | None = None,
    workers: int | None = None,
    backend: Literal["auto", "pyav", "opencv"] = "auto",
    progress: Progress | None = None,
    name: str | None = None,
    expected_s: float | None = None,
    preroll: bytes | str | None = None,
) -> MotionSummary:
    """Motion summary of one recording (a file, bytes, a file object, or a ps_zip).

    `expected_s`, when the caller knows how long the recording should be (an export's
    span), turns a recording that ends early (truncated, or a container that stops
    making sense) into a reported damaged span instead of a silently short summary.
    `preroll`: the same camera's recording just before this one, its last seconds
    (`media.tail`): the detector sees them first, so the recording starts warm.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    config = config or MotionConfig()
    workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
    began = time.perf_counter()
    segments = decode.segments(source, start)
    start = start or next((s.start for s in segments if s.start is not None), None)
    jobs = plan_jobs(segments, mode, config, workers, backend)
    if preroll is not None:  # the first segment follows the previous recording
        jobs[0] = dataclasses.replace(jobs[0], preroll=preroll)
    results = _run(jobs, 1 if in_process(segments) else workers, progress)
    track = Track.concat([r.track for r in results])
    stats = DecodeStats()
    for job, result in zip(jobs, results, strict=True):
        stats.merge(result.stats, job.offset_s)
    if not len(track):
        raise VideoError(f"no frame could be decoded from {name or _name(source)}")
    fps = results[0].fps or 25.0
    frame_s = _frame_spacing(track, fps, mode)
    ends = [job.offset_s + r.duration for job, r in zip(jobs, results, strict=True) if r.duration]
    recording_end = max(ends) if len(ends) == len(jobs) else None
    end_of_frames = float(track.t[-1] + track.span[-1])
    duration = min(end_of_frames, recording_end or end_of_frames) - float(track.t[0])
    summary = MotionSummary(
        source=name or _name(source),
        camera_id=camera_id,
        start=start,
        mode=mode,
        track=track,
        events=find_events(track, config, recording_end),
        stats=stats,
        duration_s=duration,
        frame_s=frame_s,
        elapsed_s=time.perf_counter() - began,
        gops=sum(r.gops for r in results),
        gops_decoded=sum(r.gops_decoded for r in results),
        fps=fps,
        size=results[0].size,
        preroll_s=results[0].preroll_s,
    )
    if stats.corrupt_packets:
        summary.warnings.append(f"{stats.corrupt_packets} damaged packets skipped in {len(stats.damaged)} spans")
    end = float(track.t[-1]) + frame_s
    if expected_s is not None and end < expected_s - max(2.0, 2 * frame_s) and stats.unreadable_from is None:
        stats.unreadable_from = end
    target = expected_s if expected_s is not None else recording_end
    if expected_s is not None:  # the caller knows the recording's length: no estimate runs past it
        stats.damaged = [(a, min(b, expected_s)) for a, b in stats.damaged if a < expected_s]
    if stats.unreadable_from is not None and target is not None and target > stats.unreadable_from:
        stats.damage(stats.unreadable_from, target - stats.unreadable_from)  # the unread end is lost
    if stats.unreadable_from is not None:
        summary.warnings.append(f"the container is damaged from {stats.unreadable_from:.1f} s: the rest was not read")
    for job, result in zip(jobs, results, strict=True):
        if result.error:
            summary.warnings.append(f"a segment at {job.offset_s:.0f} s could not be decoded: {result.error}")
    covered = summary.coverage()
    if not covered["complete"]:
        summary.warnings.append(
            f"incomplete: {covered['analysed_s']:.0f} s analysed, {covered['lost_s']:.0f} s lost to damage"
            + (" and an unreadable end" if stats.unreadable_from is not None else "")
            + f" ({100 * covered['coverage']:.1f}% covered)"
        )
    return summary


def run_segment(job: Job) -> DecodeResult:
    """One segment of several (a ps_zip member): one that cannot be decoded is reported as
    unreadable, and the others are still summarised."""
    try:
        return run_job(job)
    except VideoError as exc:
        stats = DecodeStats(unreadable_from=0.0, damaged=[(job.offset_s, job.offset_s)])
        return DecodeResult(Track(), stats, 0.0, None, error=str(exc))


def _run(jobs: list[Job], workers: int, progress: Progress | None) -> list[DecodeResult]:
    total = float(len(jobs))
    if len(jobs) == 1:
        return [run_job(jobs[0], progress)]
    if workers == 1:
        results = []
        for index, job in enumerate(jobs):
            results.append(run_segment(job))
            if progress:
                progress(index + 1.0, total)
        return results
    # fork starts in milliseconds but copies a threaded process mid-flight (servers, Airflow
    # runners): only fork when this process runs a single thread, else spawn.
    context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    ordered: list[DecodeResult | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(run_segment, job): index for index, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            ordered[futures[future]] = future.result()
            if progress:
                progress(float(done), total)
    return [r for r in ordered if r is not None]


def _frame_spacing(track: Track, fps: float, mode: Mode) -> float:
    if mode == "keyframe" and len(track) > 1:
        return float(np.median(np.diff(track.t)))
    return 1.0 / fps


def _name(source: Source) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else "<stream>"
