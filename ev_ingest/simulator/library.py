"""The simulator's video library: every GOP a camera can play, encoded once and cached.

A camera's recordings are sequences of a few distinct GOPs (see `scene.py`): a still
background and the GOPs of each motion event kind. Each is rendered (background
texture, sensor noise, light drift, the moving object), encoded with libx264 as one
closed GOP, and kept in three ready-to-concatenate forms:

- raw Annex-B packets (with SPS/PPS before every keyframe) for `video.web` streams;
- an fMP4 fragment (moof + mdat) whose `tfdt` and `mfhd` fields are patched per slot;
- an MPEG program stream chunk whose SCR/PTS/DTS fields are patched per slot.

Building an export is then a matter of copying bytes and patching timestamps, so a
day of recordings costs milliseconds, and the same interval is always byte-identical.
The library is cached on disk keyed by everything that changes its bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ev_ingest.simulator import footage, scene
from ev_ingest.simulator.scene import Camera

log = logging.getLogger(__name__)

LIBRARY_VERSION = 6  # bump when rendering or encoding changes
PS_CLOCK = 90_000  # MPEG system clock for PTS/DTS and SCR base
DRIFT_LEVELS = 6.0  # light drift amplitude in luma levels (a slow "breathing" of the light)
NOISE_LEVELS = 3  # sensor noise amplitude in luma levels
X264_OPTIONS = {
    "preset": "ultrafast",
    "crf": "27",
    "bf": "0",  # cameras send no B-frames
    "sc_threshold": "0",  # one closed GOP per library entry, no scene-cut keyframes
    "threads": "1",  # deterministic output
}


@dataclass
class Gop:
    """One library GOP in every form the simulator serves."""

    packets: list[tuple[bytes, bool]]  # Annex-B access units, keyframe flag
    fragment: bytes  # fMP4 moof+mdat, tfdt = 0, sequence = 1
    tfdt_offset: int
    mfhd_offset: int
    ps: bytes  # program stream chunk without the end code, timestamps from 0
    ps_fields: list[tuple[int, str]]  # (offset, "scr" | "ts") of each timestamp field


@dataclass
class CameraLibrary:
    camera: Camera
    mp4_init: bytes  # ftyp + moov
    timescale: int  # of the fMP4 track
    extradata: bytes  # Annex-B SPS/PPS
    gops: dict[str, Gop]


# --- rendering ---------------------------------------------------------------------


class Renderer:
    """Draws a camera's frames as YUV 4:2:0 planes; pure function of (seed, camera, variant, frame)."""

    def __init__(self, camera: Camera, seed: int) -> None:
        self.camera = camera
        self.seed = seed
        rng = np.random.default_rng([seed, camera.id])
        h, w = camera.height, camera.width
        # Background: smooth texture (low-frequency noise, upsampled) plus a few static structures.
        coarse = rng.integers(50, 190, size=(h // 16 + 2, w // 16 + 2)).astype(np.float32)
        ys = np.linspace(0, coarse.shape[0] - 1.001, h)
        xs = np.linspace(0, coarse.shape[1] - 1.001, w)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        c = coarse
        bg = (
            c[y0][:, x0] * (1 - fy) * (1 - fx)
            + c[y0 + 1][:, x0] * fy * (1 - fx)
            + c[y0][:, x0 + 1] * (1 - fy) * fx
            + c[y0 + 1][:, x0 + 1] * fy * fx
        )
        for _ in range(6):
            x_a, y_a = rng.integers(0, w - w // 6), rng.integers(0, h - h // 6)
            bg[y_a : y_a + h // 8, x_a : x_a + w // 7] = rng.integers(30, 220)
        # Fine static texture, spatially correlated like real surfaces (iid per-pixel texture
        # would be fixed-pattern noise: unrealistically expensive to intra-code).
        fine = rng.normal(0, 6, size=(h // 2 + 1, w // 2 + 1)).astype(np.float32)
        fine = (fine[:-1, :-1] + fine[1:, :-1] + fine[:-1, 1:] + fine[1:, 1:]) / 2
        bg += np.repeat(np.repeat(fine, 2, axis=0), 2, axis=1)[:h, :w]
        self.background = np.clip(bg, 16, 235).astype(np.int16)
        self.u = np.full((h // 2, w // 2), 118 + camera.index % 5 * 4, np.uint8)
        self.v = np.full((h // 2, w // 2), 134 - camera.index % 3 * 5, np.uint8)
        self.noise = rng.integers(-NOISE_LEVELS, NOISE_LEVELS + 1, size=(7, h, w), dtype=np.int16)
        self.object_luma = int(rng.integers(20, 60)) if rng.random() < 0.5 else int(rng.integers(200, 235))

    def luma(self, variant: str, frame: int) -> np.ndarray:
        cam = self.camera
        t = frame / cam.fps
        # Light drift: a slow rise and fall over each GOP, zero at GOP boundaries, so that
        # library GOPs join without a step. Detectors must not see it as motion.
        drift = DRIFT_LEVELS * np.sin(np.pi * t / scene.GOP_SECONDS) ** 2
        y = self.background + self.noise[frame % len(self.noise)] + int(round(drift))
        if variant != "still":
            kind = scene.KIND_BY_NAME[variant.rstrip("0123456789")]
            gop_index = int(variant[len(kind.name) :])
            box = scene.object_box(cam, kind, self.seed, gop_index * scene.GOP_SECONDS + t)
            if box is not None:
                x_0, y_0 = int(box[0] * cam.width), int(box[1] * cam.height)
                x_1, y_1 = int(box[2] * cam.width), int(box[3] * cam.height)
                y[y_0:y_1, x_0:x_1] = self.object_luma + (self.noise[0, y_0:y_1, x_0:x_1] * 3)
        return np.clip(y, 0, 255).astype(np.uint8)

    def frame(self, variant: str, frame: int) -> av.VideoFrame:
        out = av.VideoFrame(self.camera.width, self.camera.height, "yuv420p")
        for plane, data in zip(out.planes, (self.luma(variant, frame), self.u, self.v), strict=True):
            if plane.line_size == data.shape[1]:
                plane.update(data)
            else:  # padded lines: copy row by row through a strided view
                view = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                view[: data.shape[0], : data.shape[1]] = data
        return out


def jpeg(
    camera: Camera,
    seed: int,
    variant: str,
    frame: int,
    width: int | None,
    height: int | None,
    quality: int = 7,
    library: CameraLibrary | None = None,
) -> bytes:
    """A JPEG of one frame, scaled to width x height (the API's 4:3 rule when one is missing).

    Synthetic cameras render the frame; a footage camera's frame is decoded from its
    library GOP (`library`, required then: the clip is not kept beside it)."""
    if camera.footage is not None:
        if library is None:
            raise ValueError(f"camera {camera.id} plays footage: its JPEG is decoded from its library")
        img = decoded_frame(library, variant, frame)
    else:
        img = _renderer(camera, seed).frame(variant, frame)
    if width or height:
        width = width or (height or 0) * 4 // 3
        height = height or width * 3 // 4
        img = img.reformat(width=max(16, width // 2 * 2), height=max(16, height // 2 * 2))
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = img.width, img.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    # The API's q is 1..10 (10 best); the mjpeg quantiser runs 31 (worst) .. 2 (best).
    codec.flags |= av.codec.context.Flags.qscale
    codec.qscale = max(2, 31 - (max(1, min(10, quality)) - 1) * 29 // 9)
    codec.open()
    source = img.reformat(format="yuvj420p")
    source.pts = 0
    packets = codec.encode(source) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


def decoded_frame(library: CameraLibrary, variant: str, index: int) -> av.VideoFrame:
    """Frame `index` of a library GOP, decoded from its Annex-B packets."""
    codec = av.CodecContext.create("h264", "r")
    wanted = min(index, len(library.gops[variant].packets) - 1)
    seen = -1
    for payload, _ in library.gops[variant].packets:
        for frame in [*codec.decode(av.Packet(payload))]:
            seen += 1
            if seen == wanted:
                return frame
    for frame in codec.decode(None):
        seen += 1
        if seen == wanted:
            return frame
    raise ValueError(f"library GOP {variant} decoded to {seen + 1} frames, not {wanted + 1}")


_RENDERERS: dict[tuple[int, int, int, int], Renderer] = {}


def _renderer(camera: Camera, seed: int) -> Renderer:
    key = (seed, camera.id, camera.width, camera.height)
    if key not in _RENDERERS:
        if len(_RENDERERS) > 64:
            _RENDERERS.clear()
        _RENDERERS[key] = Renderer(camera, seed)
    return _RENDERERS[key]


# --- encoding ----------------------------------------------------------------------


def _encode_gop(camera: Camera, frames: Iterable[av.VideoFrame]) -> tuple[bytes, bytes, list, int]:
    """Encode one closed GOP straight into an fMP4; return (init, fragment, annexb packets, timescale)."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    stream = out.add_stream("libx264", rate=camera.fps)
    stream.width, stream.height, stream.pix_fmt = camera.width, camera.height, "yuv420p"
    options = dict(X264_OPTIONS)
    options["g"] = options["keyint_min"] = str(camera.gop_frames)
    if camera.footage is not None:
        options["crf"] = footage.CRF
    stream.codec_context.options = options
    packets: list[tuple[bytes, bool]] = []

    def mux(encoded: list[av.Packet]) -> None:
        for packet in encoded:
            packets.append((bytes(packet), bool(packet.is_keyframe)))
            out.mux(packet)

    for index, frame in enumerate(frames):
        frame.pts = index
        frame.time_base = Fraction(1, camera.fps)
        mux(stream.encode(frame))
    mux(stream.encode(None))
    extradata = bytes(stream.codec_context.extradata or b"")
    out.close()
    data = buf.getvalue()
    boxes = dict(_boxes(data))
    moof = data.index(b"moof") - 4
    init = data[:moof]
    mfra = data.find(b"mfra") - 4
    fragment = data[moof : mfra if mfra > 0 else len(data)]
    timescale = (
        struct.unpack(">I", data[boxes[b"mdhd"][0] + 20 : boxes[b"mdhd"][0] + 24])[0]
        if data[boxes[b"mdhd"][0] + 8] == 0
        else struct.unpack(">I", data[boxes[b"mdhd"][0] + 28 : boxes[b"mdhd"][0] + 32])[0]
    )
    annexb = [((extradata + payload) if key else payload, key) for payload, key in packets]
    return init, fragment, annexb, timescale


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"}


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, (offset, size)) for every box, descending into containers."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8:
            break
        yield kind, (pos, size)
        if kind in _CONTAINERS:
            yield from _boxes(data, pos + 8, pos + size)
        pos += size


def _fragment_fields(fragment: bytes) -> tuple[int, int]:
    found = list(_boxes(fragment))
    if sum(kind == b"moof" for kind, _ in found) != 1:
        raise RuntimeError("a library GOP must encode as one fragment (one keyframe): exports patch one tfdt")
    boxes = dict(found)
    tfdt, _ = boxes[b"tfdt"]
    mfhd, _ = boxes[b"mfhd"]
    if fragment[tfdt + 8] != 1:
        raise RuntimeError("expected a version-1 tfdt (64-bit decode time) from the mp4 muxer")
    return tfdt + 12, mfhd + 12


def _program_stream(camera: Camera, packets: list[tuple[bytes, bool]]) -> tuple[bytes, list[tuple[int, str]]]:
    """Mux Annex-B packets into an MPEG-PS chunk and locate every SCR, PTS and DTS field."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="vob")
    stream = out.add_stream("h264", rate=camera.fps)
    stream.width, stream.height = camera.width, camera.height
    step = PS_CLOCK // camera.fps
    for index, (payload, key) in enumerate(packets):
        packet = av.Packet(payload)
        packet.pts = packet.dts = index * step
        packet.time_base = Fraction(1, PS_CLOCK)
        packet.stream = stream
        packet.is_keyframe = key
        out.mux(packet)
    out.close()
    data = buf.getvalue()
    if data.endswith(b"\x00\x00\x01\xb9"):
        data = data[:-4]
    return data, _ps_timestamp_fields(data)


def _ps_timestamp_fields(data: bytes) -> list[tuple[int, str]]:
    fields: list[tuple[int, str]] = []
    pos = 0
    while True:
        pos = data.find(b"\x00\x00\x01", pos)
        if pos < 0 or pos + 4 > len(data):
            return fields
        code = data[pos + 3]
        if code == 0xBA:  # pack header: SCR right after the start code
            fields.append((pos + 4, "scr"))
            stuffing = data[pos + 13] & 0x07
            pos += 14 + stuffing
        elif code == 0xBB or code == 0xBE or code == 0xBD or code == 0xBF:  # system header, padding, private
            pos += 6 + struct.unpack(">H", data[pos + 4 : pos + 6])[0]
        elif 0xE0 <= code <= 0xEF or 0xC0 <= code <= 0xDF:  # PES (MPEG-2 syntax)
            length = struct.unpack(">H", data[pos + 4 : pos + 6])[0]
            flags = data[pos + 7] >> 6
            if flags & 0b10:
                fields.append((pos + 9, "ts"))
            if flags == 0b11:
                fields.append((pos + 14, "ts"))
            pos += 6 + length
        else:
            pos += 4


def _sources(camera: Camera, seed: int) -> Iterator[tuple[str, Iterable[av.VideoFrame]]]:
    """(variant, its frames) of every GOP the camera can play."""
    if camera.footage is not None:
        for index, frames in enumerate(footage.gop_frames(camera.footage, camera.width, camera.height, camera.fps)):
            yield f"fwd{index}", frames
            yield f"rev{index}", frames[::-1]
        return
    renderer = Renderer(camera, seed)
    for variant in scene.variants():
        yield variant, (renderer.frame(variant, index) for index in range(camera.gop_frames))


def build_camera_library(camera: Camera, seed: int) -> CameraLibrary:
    gops: dict[str, Gop] = {}
    init = b""
    timescale = 0
    extradata = b""
    for variant, frames in _sources(camera, seed):
        init_v, fragment, annexb, timescale = _encode_gop(camera, frames)
        init = init or init_v
        extradata = extradata or annexb[0][0][: annexb[0][0].find(b"\x00\x00\x00\x01", 4)]
        tfdt, mfhd = _fragment_fields(fragment)
        ps, ps_fields = _program_stream(camera, annexb)
        gops[variant] = Gop(annexb, fragment, tfdt, mfhd, ps, ps_fields)
    return CameraLibrary(camera, init, timescale, extradata, gops)


def cache_dir() -> Path:
    base = os.environ.get("EV_SIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ev-ingest", "simulator"
    )
    return Path(base)


def load_camera_library(camera: Camera, seed: int) -> CameraLibrary:
    """The camera's library from the disk cache, building (and caching) it on first use."""
    what = (LIBRARY_VERSION, av.__version__, seed, camera, X264_OPTIONS, footage.CRF)
    key = hashlib.sha256(repr(what).encode()).hexdigest()[:24]
    path = cache_dir() / f"cam-{camera.id}-{key}.pickle"
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    log.info("encoding the video library of camera %s (%sx%s)", camera.id, camera.width, camera.height)
    library = build_camera_library(camera, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename, so a concurrent reader never sees half a cache.
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        pickle.dump(library, tmp, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp.name, path)
    return library
