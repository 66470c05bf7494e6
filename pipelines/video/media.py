"""What DVR-Scan and Frigate users expect beside a motion summary: per event, a snapshot
(the frame where the score peaked, its moving region boxed) and a clip (the event's
packets copied, not re-encoded, from the keyframe before it to its end).

Both read the recording again, by seeking, so a summary never holds frames it might
not need. A clip starts at the keyframe before the event (a decoder needs it), so it
may begin up to one GOP early.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av
import av.error
import cv2
import numpy as np

from pipelines.video import fmp4
from pipelines.video.decode import Source, VideoError, container_duration, drain, plain_decoder
from pipelines.video.summary import Event

CLIP_PAD_S = 1.0  # seconds kept after the event's end
GROW = (1, 4, 16, 64)  # the fMP4 window read from the end, times the average bitrate's estimate
FRAGMENT_SLACK_S = 0.5  # a tail this much short of what was asked is enough
UNSEEKABLE_LEAD_S = 30.0  # unseekable: a copy starts at a keyframe at most this before its start
# Codecs an MP4 carries; anything else (MS-MPEG4, MJPEG) goes into Matroska.
MP4_CODECS = frozenset({"h264", "hevc", "mpeg4", "av1"})


def clip_suffix(source: Source) -> str:
    with _open(source) as container:
        return ".mp4" if container.streams.video[0].codec_context.name in MP4_CODECS else ".mkv"


def snapshot(source: Source, event: Event, quality: int = 85) -> bytes:
    """JPEG of the frame at the event's peak, its moving regions then outlined in red."""
    shot = snapshots(source, [event], quality)[0]
    if shot is None:
        raise VideoError(f"no frame at {event.peak_s:.1f} s")
    return shot


def snapshots(source: Source, events: list[Event], quality: int = 85) -> list[bytes | None]:
    """A snapshot of each event, in one pass over the recording: packets are only read, and
    only the GOPs that hold a peak are decoded (seeking a long fragmented MP4 once per event
    would read it again each time)."""
    wanted = sorted(range(len(events)), key=lambda i: events[i].peak_s)
    out: list[bytes | None] = [None] * len(events)
    if not events:
        return out
    with _open(source) as container:
        stream = container.streams.video[0]
        base = stream.start_time or 0
        time_base = float(stream.time_base)
        gop: list[av.Packet] = []
        for packet in container.demux(stream):
            if not wanted:
                break
            if packet.size == 0:
                continue
            if packet.is_keyframe and gop and packet.pts is not None:
                boundary = (packet.pts - base) * time_base
                _shoot(stream, gop, base, time_base, events, wanted, out, quality, boundary)
                gop = []
            gop.append(packet)
        if gop and wanted:
            _shoot(stream, gop, base, time_base, events, wanted, out, quality, float("inf"))
    return out


def _shoot(
    stream: av.VideoStream,
    gop: list[av.Packet],
    base: int,
    time_base: float,
    events: list[Event],
    wanted: list[int],
    out: list[bytes | None],
    quality: int,
    boundary: float,
) -> None:
    """Decode this GOP if a wanted peak falls before `boundary`; snapshot each such peak."""
    due = [i for i in wanted if events[i].peak_s < boundary]
    if not due:
        return
    decoder = plain_decoder(stream.codec_context, skip_loop_filter=False)
    frames: list[av.VideoFrame] = []
    for packet in gop:
        try:
            frames += decoder.decode(packet)
        except av.error.FFmpegError:
            continue
    frames += drain(decoder)
    for index in due:
        wanted.remove(index)
        peak = events[index].peak_s
        chosen = next(
            (f for f in frames if f.pts is not None and (f.pts - base) * time_base >= peak - 1e-3),
            frames[-1] if frames else None,
        )
        if chosen is not None:
            out[index] = _boxed_jpeg(chosen.to_ndarray(format="bgr24"), events[index], quality)


def _boxed_jpeg(image: np.ndarray, event: Event, quality: int) -> bytes:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = event.peak_bbox or event.bbox
    thickness = max(2, width // 320)
    cv2.rectangle(
        image,
        (int(x0 * width), int(y0 * height)),
        (min(width - 1, int(x1 * width)), min(height - 1, int(y1 * height))),
        (0, 0, 255),
        thickness,
    )
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise VideoError("the snapshot could not be encoded")
    return encoded.tobytes()


def clip(source: Source, event: Event) -> bytes:
    """The event's packets, stream-copied into an MP4 (or MKV) from the keyframe before its start."""
    with _open(source) as container:
        return _copy(container, event.start_s, event.end_s + CLIP_PAD_S)[0]


@dataclass(frozen=True)
class Tail:
    data: bytes  # the last seconds, stream-copied into an MP4 or MKV
    # Where the recording ends, seconds on its own clock (an export's starts at 0); None: unknown.
    ends_s: float | None


def tail(source: Source, seconds: float, *, size: int | None = None, duration_s: float | None = None) -> Tail:
    """The recording's last `seconds` (from the keyframe before them), stream-copied: what
    the next chunk of the same camera is pre-rolled with. Of a ps_zip, its last member's.
    Reads only what it needs (a fragmented MP4's head and last fragments, `fmp4`; another
    container's index and last GOPs), so the source may be a ranged object in the store
    (`size`: its length; `duration_s`: about how long it is, to size the read from its end)."""
    from pipelines.video.decode import ZipMember, segments

    parts = segments(source)
    last = parts[-1].data
    if isinstance(last, ZipMember):
        first, final = parts[0].start, parts[-1].start  # members are timed by their names
        archive, member = last.open()
        with archive, member, _open(member) as container:
            length = _duration(container)
            data, _, _ = _copy(container, length - seconds, math.inf)
            return Tail(data, (final - first).total_seconds() + length if first and final else None)
    if hasattr(last, "seek"):
        length = size if size is not None else last.seek(0, io.SEEK_END)
        found = _from_fragments(last, length, seconds, duration_s)  # type: ignore[arg-type]
        if found is not None:
            return found
        last.seek(0)
    with _open(last) as container:
        data, ends, _ = _copy(container, _duration(container) - seconds, math.inf)
        return Tail(data, ends)


def _from_fragments(source: IO[bytes], size: int, seconds: float, duration_s: float | None) -> Tail | None:
    """The tail of a fragmented MP4 from its last fragments (`fmp4`). The window read from
    the end is sized by the average bitrate, and the end of a chunk is often its busiest
    (motion crossing into the next): while the fragments found hold less than `seconds`,
    the window grows (up to `fmp4.MAX_WINDOW`). None when it is not an fMP4 or what was
    found does not decode: the caller reads the file the ordinary way."""
    best: Tail | None = None
    for grow in GROW:
        fragments = fmp4.last_fragments(source, size, seconds, duration_s, grow)
        if fragments is None:
            return best
        try:
            with _open(fragments) as container:  # already about the last seconds: all of it
                data, ends, begins = _copy(container, -math.inf, math.inf, trim_to=seconds)
        except (VideoError, av.error.FFmpegError):
            return best
        best = Tail(data, ends)
        if ends - begins >= seconds - FRAGMENT_SLACK_S or len(fragments) >= size:
            return best
    return best


def _duration(container: av.container.InputContainer) -> float:
    seconds = container_duration(container)
    if seconds is None:
        raise VideoError("the recording does not say its duration")
    return seconds


def _copy(
    container: av.container.InputContainer, start_s: float, end_s: float, trim_to: float | None = None
) -> tuple[bytes, float, float]:
    """The packets from the keyframe before `start_s` to `end_s`, where the last one ends and
    where the first begins (seconds of the stream's own clock). `trim_to`: of what is read, only the keyframe
    before its last `trim_to` seconds on (needs one pass to know where the end is)."""
    stream = container.streams.video[0]
    base = stream.start_time or 0
    tb = float(stream.time_base)
    # Unseekable (a program stream read from the start): no copy of what lies long before.
    earliest = -math.inf if _seek(container, stream, start_s) else start_s - UNSEEKABLE_LEAD_S
    packets: list[av.Packet] = []
    ends = -math.inf
    for packet in container.demux(stream):
        if packet.dts is None and packet.pts is None:
            continue
        t = ((packet.pts if packet.pts is not None else packet.dts) - base) * tb
        if not packets and (not packet.is_keyframe or t < earliest):
            continue  # a copy starts on a keyframe
        if t > end_s:
            break
        packets.append(packet)
        ends = max(ends, ((packet.pts if packet.pts is not None else packet.dts) + (packet.duration or 0)) * tb)
    if trim_to is not None and packets:
        cut = ends - trim_to
        keys = [i for i, p in enumerate(packets) if p.is_keyframe and (p.pts or p.dts or 0) * tb <= cut]
        packets = packets[keys[-1] :] if keys else packets
    if not packets:
        raise VideoError(f"no keyframe before {end_s:.1f} s: nothing to copy")
    first_at = (packets[0].pts if packets[0].pts is not None else packets[0].dts or 0) * tb
    out_buffer = io.BytesIO()
    fmt = "mp4" if stream.codec_context.name in MP4_CODECS else "matroska"
    with av.open(out_buffer, "w", format=fmt) as output:
        target = output.add_stream_from_template(stream)
        first = packets[0]
        origin = first.dts if first.dts is not None else first.pts
        for packet in packets:
            if packet.pts is not None:
                packet.pts -= origin
            if packet.dts is not None:
                packet.dts -= origin
            packet.stream = target
            output.mux(packet)
    return out_buffer.getvalue(), ends, first_at


def _open(source: Source) -> av.container.InputContainer:
    try:
        return av.open(
            io.BytesIO(source)
            if isinstance(source, bytes | bytearray)
            else str(source)
            if isinstance(source, Path)
            else source
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot open video: {exc}") from None


def _seek(container: av.container.InputContainer, stream: av.VideoStream, seconds: float) -> bool:
    """Seek to the keyframe before `seconds`; False when the container cannot seek (it is
    then read from the start)."""
    base = stream.start_time or 0
    try:
        container.seek(base + int(max(0.0, seconds) / float(stream.time_base)), stream=stream, backward=True)
    except av.error.FFmpegError:
        container.seek(0)  # not seekable (a program stream): read from the start
        return False
    return True
