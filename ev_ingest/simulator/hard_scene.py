"""A synthetic clip of what real cameras do that the plain synthetic site does not (issue 17),
rendered frame by frame with its ground truth, so the suite sees each phenomenon:

- camera jitter: the whole picture shakes by a pixel, over painted high-contrast lines;
- an on-screen clock whose digits change every second;
- auto-exposure: a bright vehicle crosses and the whole frame darkens to 60 %, recovering
  over 2 s after it has gone (the recovery is light, not motion);
- a loiterer: walks in, stands still (swaying a pixel) for 10 s, walks out: one event,
  and no ghost where they stood;
- sunlight: half the scene brightens by 20 % with its texture kept (no event);
- a small object, 30x80 pixels at 1080p (scaled to the clip), crossing.

    clip = make_hard_clip(path, width=640, height=360)
    clip.events  # [(start_s, end_s, kind), ...]: the events an ideal summary reports
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ev_ingest.simulator.recordings import encode

SECONDS = 40
EVENTS: tuple[tuple[float, float, str], ...] = (
    (4.0, 7.0, "bright-car"),  # exposure darkens 4.5-5.5, recovers 7.0-9.0 (light only)
    (12.0, 26.0, "loiterer"),  # walks 12-14, stands 14-24, walks 24-26
    (33.0, 36.0, "small"),
)
SUN = (29.0, 30.0)  # the right half brightens over this second and stays bright


@dataclass(frozen=True)
class HardClip:
    path: Path
    fps: int
    seconds: int
    events: list[tuple[float, float, str]]


# A 3x5 bitmap font for the clock (the simulator draws with numpy: OpenCV is the video core's).
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ":": "000010000010000", "-": "000000111000000",
    " ": "000000000000000",
}  # fmt: skip


def _text_mask(text: str, height: int, width: int, scale: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for index, char in enumerate(text):
        glyph = np.array([c == "1" for c in _GLYPHS[char]]).reshape(5, 3)
        block = np.kron(glyph, np.ones((scale, scale), bool))
        x, y = 8 + index * 4 * scale, 6 * scale // 2
        if x + block.shape[1] <= width and y + block.shape[0] <= height:
            mask[y : y + block.shape[0], x : x + block.shape[1]] |= block
    return mask


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(60, 150, size=(height // 24 + 2, width // 24 + 2)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    cols = np.linspace(0, coarse.shape[1] - 1.001, width)
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    texture = (  # bilinear upsampling of the coarse grid: a smooth surface
        coarse[r0][:, c0] * (1 - fr) * (1 - fc)
        + coarse[r0 + 1][:, c0] * fr * (1 - fc)
        + coarse[r0][:, c0 + 1] * (1 - fr) * fc
        + coarse[r0 + 1][:, c0 + 1] * fr * fc
    )
    texture += rng.normal(0, 5, size=(height, width)).astype(np.float32)
    line = max(2, width // 320)
    for i in range(6):  # painted parking lines: high contrast, where jitter shows
        x = int((i + 1) * width / 7)
        texture[int(height * 0.15) : int(height * 0.95), x : x + line] = 235.0
    return np.clip(texture, 16, 235).astype(np.float32)


def _box(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, value: float) -> None:
    frame[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = value


def _exposure(t: float) -> float:
    if 4.5 <= t < 7.0:
        return 1.0 - 0.4 * min(1.0, (t - 4.5) / 1.0)
    if 7.0 <= t < 9.0:
        return 0.6 + 0.4 * (t - 7.0) / 2.0
    return 1.0


def render(
    t: float, width: int, height: int, background: np.ndarray, rng: np.random.Generator, noise: list[np.ndarray]
) -> np.ndarray:
    frame = background.copy()
    scale = height / 360
    if EVENTS[0][0] <= t < EVENTS[0][1]:  # a bright vehicle, left to right
        x = int((t - 4.0) / 3.0 * (width + 160 * scale)) - int(160 * scale)
        _box(frame, x, int(150 * scale), x + int(160 * scale), int(230 * scale), 240.0)
    if EVENTS[1][0] <= t < EVENTS[1][1]:  # a loiterer: in, still (swaying), out
        if t < 14.0:
            x = int(width * 0.1 + (t - 12.0) / 2.0 * width * 0.3)
        elif t < 24.0:
            x = int(width * 0.4) + int(round(np.sin(t * 3.0)))  # a pixel of sway
        else:
            x = int(width * 0.4 + (t - 24.0) / 2.0 * width * 0.6)
        _box(frame, x, int(120 * scale), x + int(40 * scale), int(300 * scale), 35.0)
    if EVENTS[2][0] <= t < EVENTS[2][1]:  # small: 30x80 at 1080p
        w, h = max(2, round(30 * height / 1080)), max(4, round(80 * height / 1080))
        x = int((t - 33.0) / 3.0 * width)
        _box(frame, x, int(height * 0.6), x + w, int(height * 0.6) + h, 230.0)
    if t >= SUN[0]:  # sunlight on the right half, texture kept
        gain = 1.0 + 0.2 * min(1.0, (t - SUN[0]) / (SUN[1] - SUN[0]))
        frame[:, width // 2 :] *= gain
    frame *= _exposure(t)
    # An on-screen clock, a new second every second, drawn after exposure (as cameras do).
    clock = _text_mask(f"2026-11-29 02:{int(t) // 60:02d}:{int(t) % 60:02d}", height, width, max(2, int(3 * scale)))
    frame[clock] = 250.0
    shift = rng.integers(-1, 2, size=2)  # jitter
    frame = np.roll(frame, (int(shift[0]), int(shift[1])), axis=(0, 1))
    frame += noise[int(rng.integers(len(noise)))]  # sensor noise
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_hard_clip(path: Path, *, width: int = 640, height: int = 360, fps: int = 10, gop_seconds: int = 2) -> HardClip:
    rng = np.random.default_rng(17)
    background = _background(width, height, rng)
    noise = [rng.normal(0, 1.5, size=(height, width)).astype(np.float32) for _ in range(5)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        gop = gop_seconds * fps
        stream.codec_context.options = {
            "preset": "ultrafast",
            "x264-params": f"bframes=0:keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        chroma = np.full((height // 2, width), 128, np.uint8)
        frames = (
            av.VideoFrame.from_ndarray(
                np.vstack([render(index / fps, width, height, background, rng, noise), chroma]), format="yuv420p"
            )
            for index in range(SECONDS * fps)
        )
        encode(out, stream, frames, fps)
    return HardClip(path, fps, SECONDS, list(EVENTS))
