"""Stand-alone recordings of the synthetic scene, with their ground truth, for tests and benchmarks.

`make_clip()` renders a camera of the synthetic site for a time range and encodes it
directly (not from the GOP library), so the codec, container, bitrate and encoder
preset can vary: H.264 at a camera-like 4 Mbit/s with CABAC and the loop filter on
for benchmarks, H.265 or MJPEG, MP4 or MKV for the container tests. The ground truth
is the site's motion events, in seconds from the clip's start.

    clip = make_clip(path, start=datetime(2026, 11, 20, 10, tzinfo=UTC), seconds=60,
                     width=1920, height=1080, bitrate="4M")
    clip.events  # [(start_s, end_s, kind), ...]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av

from ev_ingest.simulator import scene
from ev_ingest.simulator.library import Renderer


@dataclass(frozen=True)
class Clip:
    path: Path
    start: datetime
    seconds: int
    fps: int
    events: list[tuple[float, float, str]]  # (start_s, end_s, kind) relative to the clip start
    camera: scene.Camera


def truth(site: scene.Site, camera: scene.Camera, start: datetime, seconds: float) -> list[tuple[float, float, str]]:
    end = start + timedelta(seconds=seconds)
    return [
        (max(0.0, (e.start - start).total_seconds()), min(seconds, (e.end - start).total_seconds()), e.kind)
        for e in site.events(camera, start, end)
    ]


def busiest_start(
    site: scene.Site, camera: scene.Camera, around: datetime, seconds: int, kinds: set[str], search_minutes: int = 240
) -> datetime:
    """A GOP-aligned start near `around` whose window holds events of every kind in `kinds`."""
    base = around.replace(second=0, microsecond=0)
    for half_minute in range(search_minutes * 2):
        start = base + timedelta(seconds=30 * half_minute)
        found = {kind for _, _, kind in truth(site, camera, start, seconds)}
        if kinds <= found:
            return start
    raise LookupError(f"no {seconds}s window with {sorted(kinds)} within {search_minutes} minutes")


def make_clip(
    path: Path,
    *,
    start: datetime,
    seconds: int,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    seed: int = 1,
    camera_index: int = 0,
    codec: str = "libx264",
    bitrate: str | None = None,
    preset: str = "veryfast",
    gop_seconds: int = scene.GOP_SECONDS,
) -> Clip:
    site = scene.Site(
        seed=seed,
        cameras=camera_index + 1,
        width=width,
        height=height,
        fps=fps,
        retention_days=3650,
        now=start + timedelta(days=1),
    )
    camera = site.camera_list[camera_index]
    renderer = Renderer(camera, seed)
    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    options = {}
    gop = str(gop_seconds * fps)
    if codec == "libx264":  # no B-frames and a fixed GOP, as CCTV cameras encode
        options = {"preset": preset, "x264-params": f"bframes=0:keyint={gop}:min-keyint={gop}:scenecut=0"}
    elif codec == "libx265":
        options = {
            "preset": preset,
            "x265-params": f"bframes=0:keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error",
        }
    stream.codec_context.options = options
    if codec not in ("libx264", "libx265", "mjpeg"):
        stream.codec_context.gop_size = int(gop)  # MPEG-4 Part 2, MS-MPEG4: a fixed GOP too
    if bitrate:
        stream.codec_context.bit_rate = int(float(bitrate.rstrip("Mk")) * (1e6 if bitrate.endswith("M") else 1e3))
    first_slot = scene.slot_of(start)

    def frames() -> Iterator[av.VideoFrame]:
        for index in range(seconds * fps):
            slot = first_slot + index // camera.gop_frames
            played = site.play(camera, slot) or scene.SlotPlay(slot, "still")
            frame = renderer.frame(played.variant, index % camera.gop_frames)
            yield frame.reformat(format="yuvj420p") if codec == "mjpeg" else frame

    encode(out, stream, frames(), fps)
    out.close()
    return Clip(path, start, seconds, fps, truth(site, camera, start, seconds), camera)


def encode(
    out: av.container.OutputContainer, stream: av.VideoStream, frames: Iterable[av.VideoFrame], fps: int
) -> None:
    """Encode `frames` at `fps` (frame n at n / fps) into `stream` of `out`, and flush."""
    stream.codec_context.time_base = Fraction(1, fps)
    for index, frame in enumerate(frames):
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def default_clip_start() -> datetime:
    return datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
