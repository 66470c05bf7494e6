"""Decoding recorded video into small luma frames, fast.

`open_video()` takes a path, a binary file object or bytes, in MP4, MKV, MPEG-PS or
the simulator's/exacqVision's `ps_zip` (a zip of program streams), with H.264, H.265 or
MJPEG inside. A `VideoReader` yields `LumaFrame`s: the luma plane read straight from
the decoder's buffer and subsampled by striding a view (no colour conversion, no
swscale pass, no copy), with the time from PTS in seconds since the recording's start
and, when known, wall-clock UTC.

Speed choices (measured, see NOTES.md): frame threading (`thread_type="AUTO"`) when
this reader decodes alone; the loop filter skipped (`skip_loop_filter=all`: motion on a
subsampled luma plane does not need it); `skip_frame="NONKEY"` to decode keyframes
only. `gops.GopDecoder` decodes a reader's GOPs on several threads instead.

Damaged input is tolerated: a packet that fails to decode is counted and skipped, its
time recorded as a damaged span; only `MAX_CONSECUTIVE_ERRORS` failures in a row give
up (`CorruptVideoError`). PyAV is the backend; OpenCV is the fallback for what PyAV
cannot open.

Over 500 lines: one reader. Opening a container, its timing (PTS, a non-zero start, PTS
carried forward in program streams), the error policy for damaged packets and the luma
views are one contract that every mode and backend reads through; split, each part would
re-state the others' assumptions.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import IO, Literal, Protocol

import av
import av.error
import numpy as np

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_ERRORS = 300  # about 12 s of 25 fps video in a row before giving up
Source = str | Path | bytes | IO[bytes]
DecodeMode = Literal["full", "keyframe"]
_PS_MEMBER_TIME = re.compile(r"_(\d{8}T\d{6}Z)\.ps$")


class VideoError(Exception):
    pass


class CorruptVideoError(VideoError):
    pass


@dataclass(frozen=True)
class LumaFrame:
    t: float  # seconds since the recording's start (first frame = 0)
    luma: np.ndarray  # uint8 (h, w) view, subsampled by `step`
    keyframe: bool


@dataclass
class DecodeStats:
    packets: int = 0
    frames: int = 0
    corrupt_packets: int = 0
    damaged: list[tuple[float, float]] = field(default_factory=list)  # spans (s) lost to bad packets
    unreadable_from: float | None = None  # the container broke here: nothing after it could be read

    def damage(self, t: float, duration: float) -> None:
        if self.damaged and t - self.damaged[-1][1] <= duration * 1.5:
            first, last = self.damaged[-1]
            self.damaged[-1] = (min(first, t), max(last, t + duration))
        else:
            self.damaged.append((t, t + duration))

    def merge(self, other: DecodeStats, offset: float = 0.0) -> None:
        self.packets += other.packets
        self.frames += other.frames
        self.corrupt_packets += other.corrupt_packets
        self.damaged.extend((a + offset, b + offset) for a, b in other.damaged)
        if other.unreadable_from is not None and self.unreadable_from is None:
            self.unreadable_from = other.unreadable_from + offset


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    fps: float
    duration: float | None  # seconds, when the container knows
    start: datetime | None  # wall-clock start, when known


class VideoReader(Protocol):
    """The small interface every backend offers."""

    info: StreamInfo
    stats: DecodeStats

    def frames(self, mode: DecodeMode = "full", step: int = 4) -> Iterator[LumaFrame]: ...

    def close(self) -> None: ...


class FrameClock:
    """A frame's time in seconds from the stream's start: from its PTS, or, where the decoder
    gives none (MPEG program streams carry a PTS on some packets only), one frame interval
    after the frame before. Every decoded frame is counted; none is dropped for lack of a PTS."""

    def __init__(self, base: int, time_base: float, frame_s: float) -> None:
        self.base, self.time_base, self.frame_s = base, time_base, frame_s
        self.last: float | None = None

    def __call__(self, pts: int | None) -> float:
        if pts is not None:
            t = (pts - self.base) * self.time_base
        else:
            t = self.last + self.frame_s if self.last is not None else 0.0
        self.last = t
        return t


def luma_view(frame: av.VideoFrame, step: int) -> np.ndarray:
    """The Y plane as a strided view of the decoder's buffer (respecting its line size)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height : step, : frame.width : step]


class PyAVReader:
    """One video stream of one container, decoded with PyAV."""

    def __init__(
        self,
        source: Source,
        *,
        threads: int = 0,
        skip_loop_filter: bool = True,
        start: datetime | None = None,
        container_format: str | None = None,
    ) -> None:
        self._source = source
        self._format = container_format
        self.closing: list[IO[bytes] | zipfile.ZipFile] = []  # closed with the reader (a zip member's files)
        self._threads = threads
        self.skip_loop_filter = skip_loop_filter
        try:
            self.container = av.open(_as_input(source), format=container_format)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open video: {exc}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise VideoError("the file has no video stream")
        stream = self.container.streams.video[0]
        self.stream = stream
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = container_duration(self.container)
        self.info = StreamInfo(
            stream.codec_context.name,
            stream.codec_context.width,
            stream.codec_context.height,
            float(rate),
            duration,
            start or _container_start(self.container),
        )
        self.stats = DecodeStats()

    def packets(self) -> Iterator[av.Packet]:
        """Demuxed packets; a container too damaged to read on ends the stream, recorded, not raised.

        A demuxer may also just stop, silently, where garbage starts (a fragmented MP4 does):
        when it ends well before the file does, the rest is recorded as unreadable, its
        length estimated from the bytes left at the bitrate read so far."""
        stream = self.stream
        base = stream.start_time if stream.start_time is not None else 0
        last = 0.0
        read_to = 0
        # Program streams carry a PTS on some packets only, keyframes included. Without
        # reordering (no B-frames) a packet is the frame after the one before: its time is
        # carried forward here, so every decoder (threads, gated, keyframes) sees it.
        carry = not stream.codec_context.has_b_frames
        time_base = float(stream.time_base)  # a Fraction made anew on every access: once, not per packet
        tick = round(1.0 / ((self.info.fps or 25.0) * time_base))
        last_pts: int | None = None
        try:
            for packet in self.container.demux(stream):
                pts = packet.pts
                if pts is None and carry and last_pts is not None and packet.dts is None and packet.size:
                    packet.pts = packet.dts = pts = last_pts + tick
                if pts is not None:
                    last_pts = pts
                position = packet.pos
                if position is not None and position >= 0:
                    read_to = max(read_to, position + packet.size)
                yield packet
            if last_pts is not None:
                last = (last_pts - base) * time_base
        except av.error.FFmpegError as exc:
            last = (last_pts - base) * time_base if last_pts is not None else 0.0
            log.warning("container damaged after %.1f s (%s): the rest cannot be read", last, exc)
            self.stats.unreadable_from = last
            self.stats.damage(last, 0.0)
            return
        size = _size_of(self._source)
        if size and read_to and size - read_to > max(UNREAD_SLACK, 0.02 * size):
            tail = last * (size - read_to) / read_to
            log.warning(
                "the container stops making sense at byte %d of %d (%.1f s): about %.0f s more cannot be read",
                read_to,
                size,
                last,
                tail,
            )
            self.stats.unreadable_from = last
            self.stats.damage(last, tail)

    def _configure(self, mode: DecodeMode) -> None:
        codec = self.stream.codec_context
        if self._threads == 1:
            codec.thread_count = 1
        else:
            codec.thread_type = "AUTO"
            codec.thread_count = self._threads
        codec.options = decoder_options(codec.name, self.skip_loop_filter)
        codec.skip_frame = "NONKEY" if mode == "keyframe" else "DEFAULT"

    def frames(self, mode: DecodeMode = "full", step: int = 4) -> Iterator[LumaFrame]:
        stream = self.stream
        self._configure(mode)
        base = stream.start_time if stream.start_time is not None else 0
        tb = float(stream.time_base)
        frame_s = 1.0 / (self.info.fps or 25.0)
        errors_in_row = 0
        last_t = 0.0
        clock = FrameClock(base, tb, frame_s)
        for packet in self.packets():
            if packet.size == 0:
                packet = None  # end of stream: drain the frames the decoder still holds
            elif mode == "keyframe" and not packet.is_keyframe:
                continue  # keyframe mode never needs the other packets
            else:
                self.stats.packets += 1
            try:
                decoded = stream.codec_context.decode(packet)
                errors_in_row = 0
            except av.error.FFmpegError:
                errors_in_row += 1
                self.stats.corrupt_packets += 1
                t = (packet.pts - base) * tb if packet is not None and packet.pts is not None else last_t + frame_s
                self.stats.damage(t, frame_s)
                if errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                    raise CorruptVideoError(
                        f"{errors_in_row} packets in a row failed to decode near {t:.1f} s: giving up"
                    ) from None
                continue
            for frame in decoded:
                t = clock(frame.pts)
                if t < -1e-6:
                    continue  # pre-roll before the stream's start (an edit list): not shown
                last_t = t
                self.stats.frames += 1
                yield LumaFrame(t, luma_view(frame, step), frame.key_frame)

    def gated_frames(
        self,
        gate: Callable[[np.ndarray, np.ndarray], bool],
        step: int = 4,
    ) -> Iterator[LumaFrame]:
        """Every keyframe; all frames of a GOP only where `gate(key_before, key_after)` says so.

        The GOP between two keyframes is decoded in full only when the keyframes differ;
        otherwise its keyframe stands for it. Blind spot: motion that starts and ends
        between two keyframes, leaving them alike, is not seen.

        Two single-threaded decoders take turns on keyframes, so when a GOP turns out to
        need decoding its keyframe is still the reference of the decoder that decoded it:
        no keyframe is decoded twice.
        """
        stream = self.stream
        template = stream.codec_context
        decoders = [plain_decoder(template, self.skip_loop_filter, low_delay=True) for _ in range(2)]
        reordering = plain_decoder(template, self.skip_loop_filter)  # for GOPs with B-frames
        base = stream.start_time if stream.start_time is not None else 0
        tb = float(stream.time_base)
        clock = FrameClock(base, tb, 1.0 / (self.info.fps or 25.0))
        self.gops = self.gops_decoded = 0

        @dataclass
        class Gop:
            packets: list[av.Packet]
            decoder: av.CodecContext
            key: LumaFrame | None  # None: the keyframe did not decode (or came out late)

        def open_gop(packet: av.Packet, turn: int) -> Gop:
            decoder = decoders[turn % 2]
            try:
                frames = decoder.decode(packet)
            except av.error.FFmpegError:
                self.stats.corrupt_packets += 1
                frames = []
            key = next((f for f in frames if f.pts is not None), None)
            if key is None:  # a reordering stream holds output back: fall back to a cold decode
                drain(decoder)
                return Gop([packet], decoder, None)
            return Gop(
                [packet], decoder, LumaFrame((key.pts - base) * tb, np.ascontiguousarray(luma_view(key, step)), True)
            )

        def close_gop(gop: Gop, after: Gop | None) -> Iterator[LumaFrame]:
            self.gops += 1
            if gop.key is not None and after is not None and after.key is not None:
                if not gate(gop.key.luma, after.key.luma):
                    self.stats.frames += 1
                    yield gop.key
                    return
            self.gops_decoded += 1
            decoded: list[av.VideoFrame] = []
            warm = gop.key is not None and all(p.pts == p.dts for p in gop.packets if p.dts is not None)
            # A warm decoder still holds the keyframe as its reference: feed it the rest of the GOP.
            # B-frames (reordering) need a decoder that reorders: decode the whole GOP there.
            decoder = gop.decoder if warm else reordering
            for packet in gop.packets[1:] if warm else gop.packets:
                try:
                    decoded += decoder.decode(packet)
                except av.error.FFmpegError:
                    self.stats.corrupt_packets += 1
            decoded += drain(decoder)  # the decoder's next input is a keyframe anyway
            if warm and gop.key is not None:
                self.stats.frames += 1
                yield gop.key
                clock.last = gop.key.t
            for frame in decoded:
                self.stats.frames += 1
                yield LumaFrame(clock(frame.pts), luma_view(frame, step), frame.key_frame)

        def shown(item: LumaFrame) -> bool:
            return item.t >= -1e-6  # pre-roll before the stream's start (an edit list) is not

        current: Gop | None = None
        turn = 0
        for packet in self.packets():
            if packet.size == 0:
                continue
            self.stats.packets += 1
            if packet.is_keyframe:
                turn += 1
                following = open_gop(packet, turn)
                if current is not None:
                    yield from filter(shown, close_gop(current, following))
                current = following
            elif current is not None:
                current.packets.append(packet)
        if current is not None:
            yield from filter(shown, close_gop(current, None))

    def close(self) -> None:
        self.container.close()
        for held in self.closing:
            held.close()

    def __enter__(self) -> PyAVReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OpenCVReader:
    """Fallback backend for paths PyAV cannot open. Slower: OpenCV converts every frame."""

    def __init__(self, path: str | Path, start: datetime | None = None) -> None:
        import cv2  # optional backend: imported only when used

        self._cv2 = cv2
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise VideoError(f"OpenCV cannot open {path}")
        fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.info = StreamInfo(
            "opencv",
            int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps,
            count / fps if count > 0 else None,
            start,
        )
        self.stats = DecodeStats()

    def frames(self, mode: DecodeMode = "full", step: int = 4) -> Iterator[LumaFrame]:
        cv2 = self._cv2
        frame_s = 1.0 / (self.info.fps or 25.0)
        last: float | None = None
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            # OpenCV answers 0 ms for a frame without a PTS (program streams): carried forward.
            msec = self.capture.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000 if last is None or msec > 0 else last + frame_s
            last = t
            self.stats.packets += 1
            self.stats.frames += 1
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
            yield LumaFrame(t, gray[::step, ::step], False)

    def close(self) -> None:
        self.capture.release()


# Decoders whose loop filter `skip_loop_filter` skips; others (MPEG-4 Part 2, MS-MPEG4,
# MJPEG) have none, and some refuse the option outright (avcodec_open2 returns EINVAL).
LOOP_FILTER_CODECS = frozenset({"h264", "hevc"})


def decoder_options(name: str, skip_loop_filter: bool) -> dict[str, str]:
    return {"skip_loop_filter": "all"} if skip_loop_filter and name in LOOP_FILTER_CODECS else {}


def plain_decoder(template: av.CodecContext, skip_loop_filter: bool, low_delay: bool = False) -> av.CodecContext:
    """A single-threaded decoder like the stream's own: it outputs each frame as soon as it is
    fed (no threading delay). It gets the stream's geometry too: codecs without extradata
    (MS-MPEG4 in AVI) cannot open without a frame size."""
    decoder = av.CodecContext.create(template.name, "r")
    decoder.extradata = template.extradata
    if template.width and template.height:
        decoder.width, decoder.height = template.width, template.height
    decoder.thread_count = 1
    decoder.options = decoder_options(template.name, skip_loop_filter)
    if low_delay:  # output each frame as soon as it is decoded (valid without B-frames)
        decoder.flags |= av.codec.context.Flags.low_delay
    return decoder


def drain(codec: av.CodecContext) -> list[av.VideoFrame]:
    """Every frame the decoder still holds; the decoder is then ready for new input."""
    try:
        frames = codec.decode(None)
    except av.error.EOFError:
        frames = []
    codec.flush_buffers()
    return frames


# Bytes a healthy container may keep after its last packet (an MP4 moov or AVI index at the end).
UNREAD_SLACK = 2 << 20


def _size_of(source: Source) -> int | None:
    if isinstance(source, bytes | bytearray):
        return len(source)
    if isinstance(source, str | Path):
        try:
            return Path(source).stat().st_size
        except OSError:
            return None
    return None


def container_duration(container: av.container.InputContainer) -> float | None:
    """Seconds of the first video stream, or of the container, when either says; else None."""
    stream = container.streams.video[0]
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else None


def _as_input(source: Source) -> str | IO[bytes]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source)
    if isinstance(source, Path):
        return str(source)
    return source


def _container_start(container: av.container.InputContainer) -> datetime | None:
    """A wall-clock start recorded in the container's metadata, if any."""
    for key in ("creation_time", "date"):
        value = container.metadata.get(key)
        if value:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.year > 1970:
                return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def is_zip(source: Source) -> bool:
    if isinstance(source, bytes | bytearray):
        return bytes(source[:4]) == b"PK\x03\x04"
    if isinstance(source, str | Path):
        with open(source, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    position = source.tell()
    head = source.read(4)
    source.seek(position)
    return head == b"PK\x03\x04"


@dataclass(frozen=True)
class ZipMember:
    """One program stream inside a ps_zip, read straight from the zip when decoded (never
    read whole: a member is a clip of up to an hour). A zip named by its path is cheap to
    hand to a worker process, which opens it itself."""

    archive: str | Path | bytes | IO[bytes]
    member: str

    def open(self) -> tuple[zipfile.ZipFile, IO[bytes]]:
        archive = zipfile.ZipFile(
            io.BytesIO(self.archive) if isinstance(self.archive, bytes | bytearray) else self.archive
        )
        try:
            return archive, archive.open(self.member)
        except BaseException:
            archive.close()
            raise

    @property
    def by_path(self) -> bool:
        return isinstance(self.archive, str | Path)


@dataclass(frozen=True)
class Segment:
    """One decodable piece of a recording: a file, or one program stream of a ps_zip."""

    name: str
    data: Source | ZipMember
    start: datetime | None
    container_format: str | None = None


def segments(source: Source, start: datetime | None = None) -> list[Segment]:
    """A recording as decodable segments; a ps_zip gives one per member, timed by its name
    (the members stay in the zip: see `ZipMember`)."""
    if not is_zip(source):
        name = str(source) if isinstance(source, str | Path) else "<stream>"
        return [Segment(name, source, start)]
    archive_source: str | Path | bytes | IO[bytes] = str(source) if isinstance(source, Path) else source
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source) as archive:
            names = sorted(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise VideoError(f"the ps_zip cannot be read: {exc}") from None
    out = []
    for member in names:
        if not member.lower().endswith((".ps", ".mpg", ".mpeg", ".vob")):
            continue
        match = _PS_MEMBER_TIME.search(member)
        at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if match else None
        out.append(Segment(member, ZipMember(archive_source, member), at, "mpeg"))
    if not out:
        raise VideoError("the zip holds no MPEG program streams")
    return out


def open_video(
    segment: Segment,
    *,
    threads: int = 0,
    skip_loop_filter: bool = True,
    backend: Literal["auto", "pyav", "opencv"] = "auto",
) -> VideoReader:
    """A reader for one segment: PyAV, or OpenCV when asked or when PyAV cannot open a path."""
    if isinstance(segment.data, ZipMember):
        archive, stream = segment.data.open()
        try:
            reader = PyAVReader(
                stream,
                threads=threads,
                skip_loop_filter=skip_loop_filter,
                start=segment.start,
                container_format=segment.container_format,
            )
        except BaseException:
            stream.close()
            archive.close()
            raise
        reader.closing += [stream, archive]
        return reader
    if backend == "opencv":
        return OpenCVReader(_require_path(segment.data), segment.start)
    try:
        return PyAVReader(
            segment.data,
            threads=threads,
            skip_loop_filter=skip_loop_filter,
            start=segment.start,
            container_format=segment.container_format,
        )
    except VideoError:
        if backend == "auto" and isinstance(segment.data, str | Path):
            log.warning("PyAV cannot open %s; falling back to OpenCV", segment.data)
            return OpenCVReader(segment.data, segment.start)
        raise


def _require_path(data: Source | ZipMember) -> str | Path:
    if not isinstance(data, str | Path):
        raise VideoError("the OpenCV backend reads files only")
    return data


def wall_clock(start: datetime | None, t: float) -> datetime | None:
    return start + timedelta(seconds=t) if start is not None else None
