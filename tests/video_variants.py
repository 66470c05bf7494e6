"""Re-encodings of a recording, for tests that the motion core gives the same events whatever
the encoding (issue 26 items 3-4): another codec, resolution or GOP, B-frames, variable
frame rate, a non-zero start time, duplicated frames. Made with PyAV's encoders (the ones
the project already depends on), from the decoded frames of the source; cached under
`.cache/variants/` by the source's content and the settings, so a rerun does not encode again."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from tests.conftest import ROOT

CACHE = ROOT / ".cache" / "variants"


@dataclass(frozen=True)
class Variant:
    codec: str = "libx264"
    container: str = "mp4"
    width: int | None = None  # None: the source's (height follows, even)
    gop_s: float = 2.0
    bframes: int = 0
    fourcc: str | None = None  # e.g. "XVID" for MPEG-4 ASP in AVI
    drop: float = 0.0  # share of frames dropped at random (variable frame rate)
    repeat_to_fps: int = 0  # sent at this higher rate, frames repeated to fill it (0: as is)
    start_s: float = 0.0  # the first frame's presentation time
    preset: str = "ultrafast"
    options: dict[str, str] = field(default_factory=dict)

    def name(self, source: Path) -> str:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        settings = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
        return f"{source.stem}-{digest}-{settings}.{self.container}"


def make(source: Path, variant: Variant, folder: Path = CACHE) -> Path:
    """`source` re-encoded as `variant` (cached)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / variant.name(source)
    if out.exists():
        return out
    partial = out.with_suffix(".partial" + out.suffix)
    _encode(source, partial, variant)
    partial.rename(out)
    return out


def _encode(source: Path, out: Path, variant: Variant) -> None:
    rng = random.Random(7)
    with av.open(str(source)) as inp:
        stream = inp.streams.video[0]
        fps = float(stream.average_rate or 25)
        base = stream.start_time or 0
        tb = float(stream.time_base)
        width = variant.width or stream.codec_context.width
        height = round(stream.codec_context.height * width / stream.codec_context.width / 2) * 2
        with av.open(str(out), "w", format=None if variant.container != "avi" else "avi") as output:
            clock = Fraction(1, 1000)
            target = output.add_stream(variant.codec, rate=round(fps))
            target.width, target.height, target.pix_fmt = width, height, "yuv420p"
            gop = max(1, round(variant.gop_s * fps))
            options = dict(variant.options)
            if variant.codec == "libx264":
                options.setdefault("preset", variant.preset)
                options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={variant.bframes}"
            elif variant.codec == "libx265":
                options.setdefault("preset", variant.preset)
                options["x265-params"] = (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={variant.bframes}:log-level=error"
                )
            else:
                target.codec_context.gop_size = gop
                target.codec_context.max_b_frames = variant.bframes
            if variant.fourcc:
                target.codec_context.codec_tag = variant.fourcc
            target.codec_context.options = options
            if variant.container != "avi":  # AVI keeps a frame rate, not timestamps
                target.codec_context.time_base = clock
                target.time_base = clock
            index, sent = 0, 0
            for frame in inp.decode(stream):
                if frame.pts is None:
                    continue
                t = (frame.pts - base) * tb
                index += 1
                if variant.drop and index > 1 and rng.random() < variant.drop:
                    continue
                image = frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
                # At a higher rate, each source frame fills the slots up to the next one.
                slots = [t]
                if variant.repeat_to_fps:
                    slots = []
                    while sent / variant.repeat_to_fps < t + 1.0 / fps - 1e-9:
                        slots.append(sent / variant.repeat_to_fps)
                        sent += 1
                for at in slots:
                    new = av.VideoFrame.from_ndarray(image, format="yuv420p")
                    if variant.container != "avi":
                        new.pts, new.time_base = round((variant.start_s + at) * 1000), clock
                    for packet in target.encode(new):
                        output.mux(packet)
            for packet in target.encode(None):
                output.mux(packet)
