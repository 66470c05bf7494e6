"""Seconds of video in a fragmented MP4, from its boxes alone: the short-export check's fast
path (issue 27: PyAV's demux of an hour's export walks every packet in Python, 41 s of a
two-day sandbox's 288 s; this reads one `moof` per GOP and seeks past each `mdat`).

It counts what PyAV's demux would count, a sample's duration per sample, and never more:
a sample is counted only when the file really holds its bytes (a fragment cut short by a
truncated download counts for the samples it holds whole, not for what its `trun`
promises), and a sample of no bytes is not counted (the demuxer skips it too). Anything
this does not understand, or a file that is not a fragmented MP4 (no `mvex`, or samples
indexed in the `moov`), gives None: the caller then measures it with PyAV.

Defaults are resolved as ISO/IEC 14496-12 orders them: the `trun`'s own per-sample values,
then the `tfhd`'s defaults, then the `trex` of the `moov`'s `mvex`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

MAX_MOOV = 16 * 1024 * 1024  # an fMP4's moov is a few KB; a larger one is not the empty kind
MAX_MOOF = 16 * 1024 * 1024  # a GOP's moof: a few KB at 30 fps; the cap bounds a hostile file's read
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf"}


@dataclass(frozen=True)
class _Track:
    track_id: int
    timescale: int
    default_duration: int = 0  # the trex's
    default_size: int = 0


class _NotUnderstood(Exception):
    """The file is not a fragmented MP4 this module can measure (the caller uses PyAV)."""


def fragmented_seconds(source: IO[bytes]) -> float | None:
    """Seconds of video in the first video track of the fragmented MP4 `source` (read from
    its start), or None when it is not one this module can measure."""
    try:
        return _measure(source)
    except (_NotUnderstood, struct.error):
        return None


def _measure(source: IO[bytes]) -> float:
    size = source.seek(0, 2)
    position, track, ticks = 0, None, 0
    while position + 8 <= size:
        source.seek(position)
        box_size, kind, header = _header(source, position, size)
        end = size if box_size == 0 else position + box_size
        source.seek(position + header)
        if kind == b"moov":
            if track is not None or box_size > MAX_MOOV or end > size:
                raise _NotUnderstood
            track = _video_track(_read(source, end - position - header))
        elif kind == b"moof":
            if track is None or box_size > MAX_MOOF:
                raise _NotUnderstood
            if end > size:
                break  # a moof cut short: a truncated file ends here
            ticks += _fragment_ticks(_read(source, end - position - header), position, header, track, size)
        elif position == 0 and kind != b"ftyp":
            raise _NotUnderstood
        if end > size:
            break  # an mdat (or any box) cut short: the end of a truncated file
        position = end
    if track is None:
        raise _NotUnderstood
    return ticks / track.timescale


def _header(source: IO[bytes], position: int, size: int) -> tuple[int, bytes, int]:
    """(box size, type, header length) of the box at `position`."""
    head = _read(source, 16 if position + 16 <= size else 8)
    box_size, kind = struct.unpack(">I4s", head[:8])
    if box_size == 1:
        if len(head) < 16:
            raise _NotUnderstood
        return struct.unpack(">Q", head[8:16])[0], kind, 16
    if box_size != 0 and box_size < 8:
        raise _NotUnderstood
    return box_size, kind, 8


def _children(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of the boxes that make up `data` wholly; _NotUnderstood otherwise."""
    found, position = [], 0
    while position < len(data):
        if position + 8 > len(data):
            raise _NotUnderstood
        box_size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if box_size == 1:
            box_size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif box_size == 0:
            box_size = len(data) - position
        if box_size < header or position + box_size > len(data):
            raise _NotUnderstood
        found.append((kind, data[position + header : position + box_size]))
        position += box_size
    return found


def _child(data: bytes, kind: bytes) -> bytes | None:
    return next((payload for found, payload in _children(data) if found == kind), None)


def _video_track(moov: bytes) -> _Track:
    """The first video track of the `moov`, with its `trex` defaults; _NotUnderstood when the
    moov is not a fragmented file's (no mvex) or indexes samples itself."""
    mvex = _child(moov, b"mvex")
    if mvex is None:
        raise _NotUnderstood
    for kind, trak in _children(moov):
        if kind != b"trak":
            continue
        mdia = _child(trak, b"mdia")
        tkhd = _child(trak, b"tkhd")
        if mdia is None or tkhd is None:
            raise _NotUnderstood
        hdlr, mdhd = _child(mdia, b"hdlr"), _child(mdia, b"mdhd")
        if hdlr is None or mdhd is None or len(hdlr) < 12:
            raise _NotUnderstood
        if hdlr[8:12] != b"vide":
            continue
        if _indexes_samples(mdia):
            raise _NotUnderstood
        track_id = struct.unpack(">I", tkhd[20:24] if tkhd[0] == 1 else tkhd[12:16])[0]
        timescale = struct.unpack(">I", mdhd[20:24] if mdhd[0] == 1 else mdhd[12:16])[0]
        if not timescale:
            raise _NotUnderstood
        for kind_, trex in _children(mvex):
            if kind_ == b"trex" and struct.unpack(">I", trex[4:8])[0] == track_id:
                _, _, _, duration, sample_size, _ = struct.unpack(">IIIIII", trex[:24])
                return _Track(track_id, timescale, duration, sample_size)
        return _Track(track_id, timescale)
    raise _NotUnderstood


def _indexes_samples(mdia: bytes) -> bool:
    """Whether the track's sample table lists samples (a hybrid file: PyAV counts those too)."""
    minf = _child(mdia, b"minf")
    stbl = _child(minf, b"stbl") if minf is not None else None
    stts = _child(stbl, b"stts") if stbl is not None else None
    return stts is not None and len(stts) >= 8 and struct.unpack(">I", stts[4:8])[0] > 0


def _fragment_ticks(moof: bytes, moof_at: int, header: int, track: _Track, size: int) -> int:
    """The durations (in the track's timescale) of the samples of `track` in one `moof`
    whose bytes the file holds whole (`size`: the file's length; `moof_at`: where the moof
    starts, the base its data offsets count from)."""
    ticks, data_end = 0, moof_at  # the first traf's data starts, by default, at the moof
    for kind, traf in _children(moof):
        if kind != b"traf":
            continue
        tfhd = _child(traf, b"tfhd")
        if tfhd is None or len(tfhd) < 8:
            raise _NotUnderstood
        flags = int.from_bytes(tfhd[1:4], "big")
        track_id = struct.unpack(">I", tfhd[4:8])[0]
        at, base = 8, None
        if flags & 0x01:
            base = struct.unpack(">Q", tfhd[at : at + 8])[0]
            at += 8
        if flags & 0x02:
            at += 4
        duration = track.default_duration
        sample_size = track.default_size
        if flags & 0x08:
            duration = struct.unpack(">I", tfhd[at : at + 4])[0]
            at += 4
        if flags & 0x10:
            sample_size = struct.unpack(">I", tfhd[at : at + 4])[0]
            at += 4
        if base is None:
            base = moof_at if (flags & 0x20000 or data_end == moof_at) else data_end
        offset = base
        for kind_, trun in _children(traf):
            if kind_ != b"trun":
                continue
            counted, offset = _run_ticks(trun, base, offset, duration, sample_size, size, track_id == track.track_id)
            ticks += counted
        data_end = offset
    return ticks


def _run_ticks(
    trun: bytes, base: int, offset: int, duration: int, sample_size: int, size: int, ours: bool
) -> tuple[int, int]:
    """(ticks counted, where the run's data ends) for one `trun` whose data starts at
    `base` + its data offset (or at `offset`, where the previous run's ended)."""
    flags = int.from_bytes(trun[1:4], "big")
    count = struct.unpack(">I", trun[4:8])[0]
    at = 8
    if flags & 0x01:
        offset = base + struct.unpack(">i", trun[at : at + 4])[0]
        at += 4
    if flags & 0x04:
        at += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    stride = len(fields)
    if at + 4 * stride * count > len(trun):
        raise _NotUnderstood  # a run that lists more samples than it holds
    values = struct.unpack_from(f">{stride * count}I", trun, at) if stride else ()
    durations = values[fields.index(0x100) :: stride] if 0x100 in fields else (duration,) * count
    sizes = values[fields.index(0x200) :: stride] if 0x200 in fields else (sample_size,) * count
    ticks = 0
    for this_duration, this_size in zip(durations, sizes, strict=True):
        offset += this_size
        if ours and this_size and offset <= size:
            ticks += this_duration
    return ticks, offset


def _read(source: IO[bytes], count: int) -> bytes:
    parts, want = [], count
    while want > 0:
        chunk = source.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)
