"""What DVR-Scan and Frigate users expect beside a motion summary: per event, a snapshot
(the frame where the score peaked, its moving region boxed) and a clip (the event's
packets copied, not re-encoded, from the keyframe before it to its end).

Both read the recording again, by seeking, so a summary never holds frames it might
not need. A clip starts at the keyframe before the event (a decoder needs it), so it
may begin up to one GOP early.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from pipelines.video.decode import Source, VideoError, drain, plain_decoder
from pipelines.video.summary import Event

CLIP_PAD_S = 1.0  # seconds kept after the event's end
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
        stream = container.streams.video[0]
        base = stream.start_time or 0
        tb = stream.time_base
        _seek(container, stream, event.start_s)
        out_buffer = io.BytesIO()
        fmt = "mp4" if stream.codec_context.name in MP4_CODECS else "matroska"
        with av.open(out_buffer, "w", format=fmt) as output:
            target = output.add_stream_from_template(stream)
            origin: int | None = None
            for packet in container.demux(stream):
                if packet.dts is None and packet.pts is None:
                    continue
                t = ((packet.pts if packet.pts is not None else packet.dts) - base) * float(tb)
                if origin is None:
                    if not packet.is_keyframe:
                        continue  # a clip starts on a keyframe
                    origin = packet.dts if packet.dts is not None else packet.pts
                if t > event.end_s + CLIP_PAD_S:
                    break
                if packet.pts is not None:
                    packet.pts -= origin
                if packet.dts is not None:
                    packet.dts -= origin
                packet.stream = target
                output.mux(packet)
            if origin is None:
                raise VideoError(f"no keyframe before {event.end_s:.1f} s: no clip")
        return out_buffer.getvalue()


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


def _seek(container: av.container.InputContainer, stream: av.VideoStream, seconds: float) -> None:
    base = stream.start_time or 0
    try:
        container.seek(base + int(max(0.0, seconds) / float(stream.time_base)), stream=stream, backward=True)
    except av.error.FFmpegError:
        container.seek(0)  # not seekable (a program stream): read from the start
