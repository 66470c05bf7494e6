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

Stricter than the demuxer where a file could say two things (an attacker's test found each:
tests/test_fmp4_seconds.py): a box that must be single and is repeated (`tfhd`, `mdhd`,
`hdlr`, ...), a track whose handler is neither video nor sound, a second video track, a
top-level box smaller than its header, or a sample outside the `mdat` that follows its
`moof` (or overlapping another) all give None, and PyAV measures the file as before. A
`trun` of one sample size is counted by arithmetic, so a hostile sample count costs
nothing (a 1.8 KB file once asked for a 34 GB tuple).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

from pipelines.video.fmp4 import read_up_to

MAX_MOOV = 16 * 1024 * 1024  # an fMP4's moov is a few KB; a larger one is not the empty kind
MAX_MOOF = 16 * 1024 * 1024  # a GOP's moof: a few KB at 30 fps; the cap bounds a hostile file's read
HANDLERS = {b"vide", b"soun"}  # a track of any other kind: PyAV decides what it is


@dataclass(frozen=True)
class _Track:
    track_id: int
    timescale: int
    default_duration: int = 0  # the trex's
    default_size: int = 0


class _NotUnderstood(Exception):
    """The file is not a fragmented MP4 this module can measure (the caller uses PyAV)."""


def fragmented_seconds(source: IO[bytes]) -> float | None:
    """Seconds of video in the video track of the fragmented MP4 `source` (read from its
    start), or None when it is not one this module can measure."""
    try:
        return _measure(source)
    except (_NotUnderstood, struct.error, IndexError):
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
            if track is not None or end - position > MAX_MOOV or end > size:
                raise _NotUnderstood
            track = _video_track(read_up_to(source, end - position - header))
        elif kind == b"moof":
            if track is None or end - position > MAX_MOOF:
                raise _NotUnderstood
            if end > size:
                break  # a moof cut short: a truncated file ends here
            moof = read_up_to(source, end - position - header)
            ticks += _fragment_ticks(moof, position, track, _mdat_after(source, end, size))
        elif position == 0 and kind != b"ftyp":
            raise _NotUnderstood
        if end > size:
            break  # an mdat (or any box) cut short: the end of a truncated file
        position = end
    if track is None:
        raise _NotUnderstood
    return ticks / track.timescale


def _header(source: IO[bytes], position: int, size: int) -> tuple[int, bytes, int]:
    """(box size, type, header length) of the top-level box at `position`."""
    head = read_up_to(source, 16 if position + 16 <= size else 8)
    box_size, kind = struct.unpack(">I4s", head[:8])
    if box_size == 1:
        if len(head) < 16:
            raise _NotUnderstood
        box_size = struct.unpack(">Q", head[8:16])[0]
        if box_size < 16:  # smaller than its own header: FFmpeg stops reading there
            raise _NotUnderstood
        return box_size, kind, 16
    if box_size != 0 and box_size < 8:
        raise _NotUnderstood
    return box_size, kind, 8


def _mdat_after(source: IO[bytes], at: int, size: int) -> tuple[int, int]:
    """[start, end) of the payload the file holds of the `mdat` that starts at `at` (a moof's
    samples live there); (at, at) when no mdat follows."""
    if at + 8 > size:
        return at, at
    source.seek(at)
    box_size, kind, header = _header(source, at, size)
    if kind != b"mdat":
        return at, at
    end = size if box_size == 0 else min(size, at + box_size)
    return at + header, end


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


def _only(data: bytes, kind: bytes, length: int = 0) -> bytes | None:
    """The payload of the one `kind` box in `data` (None when there is none); _NotUnderstood
    when there are two (the file says two things; the demuxer would take one of them) or
    it is shorter than `length`."""
    found = [payload for box, payload in _children(data) if box == kind]
    if len(found) > 1 or (found and len(found[0]) < length):
        raise _NotUnderstood
    return found[0] if found else None


def _needed(data: bytes | None) -> bytes:
    if data is None:
        raise _NotUnderstood
    return data


def _video_track(moov: bytes) -> _Track:
    """The video track of the `moov`, with its `trex` defaults; _NotUnderstood when the moov
    is not a fragmented file's (no mvex), indexes samples itself, or is ambiguous (a track
    of an unknown kind, two video tracks, a box repeated)."""
    mvex = _needed(_only(moov, b"mvex"))
    videos = []
    for kind, trak in _children(moov):
        if kind != b"trak":
            continue
        mdia = _needed(_only(trak, b"mdia"))
        hdlr = _needed(_only(mdia, b"hdlr", 12))
        if hdlr[8:12] not in HANDLERS:
            raise _NotUnderstood
        if hdlr[8:12] == b"vide":
            videos.append((_needed(_only(trak, b"tkhd", 24)), mdia))
    if len(videos) != 1:
        raise _NotUnderstood
    tkhd, mdia = videos[0]
    mdhd = _needed(_only(mdia, b"mdhd", 24))
    if _indexes_samples(mdia):
        raise _NotUnderstood
    track_id = struct.unpack(">I", tkhd[20:24] if tkhd[0] == 1 else tkhd[12:16])[0]
    timescale = struct.unpack(">I", mdhd[20:24] if mdhd[0] == 1 else mdhd[12:16])[0]
    if not timescale:
        raise _NotUnderstood
    trexes = [t for kind, t in _children(mvex) if kind == b"trex" and len(t) >= 24 and _u32(t, 4) == track_id]
    if len(trexes) != 1:
        raise _NotUnderstood  # FFmpeg refuses a fragment of a track without one
    _, _, _, duration, sample_size, _ = struct.unpack(">IIIIII", trexes[0][:24])
    return _Track(track_id, timescale, duration, sample_size)


def _indexes_samples(mdia: bytes) -> bool:
    """Whether the track's sample table lists samples (a hybrid file: PyAV counts those too)."""
    minf = _only(mdia, b"minf")
    stbl = _only(minf, b"stbl") if minf is not None else None
    stts = _only(stbl, b"stts") if stbl is not None else None
    return stts is not None and len(stts) >= 8 and struct.unpack(">I", stts[4:8])[0] > 0


def _fragment_ticks(moof: bytes, moof_at: int, track: _Track, mdat: tuple[int, int]) -> int:
    """The durations (in the track's timescale) of the samples of `track` in one `moof`
    whose bytes `mdat` ([start, end) of the payload of the mdat after it, as far as the
    file holds it) holds whole. `moof_at`: where the moof starts, the base its data
    offsets count from."""
    ticks, data_end, runs = 0, moof_at, []  # the first traf's data starts, by default, at the moof
    for kind, traf in _children(moof):
        if kind != b"traf":
            continue
        tfhd = _needed(_only(traf, b"tfhd", 8))
        flags = int.from_bytes(tfhd[1:4], "big")
        track_id = struct.unpack(">I", tfhd[4:8])[0]
        at, base = 8, None
        if flags & 0x01:
            base = struct.unpack(">Q", tfhd[at : at + 8])[0]
            at += 8
        if flags & 0x02:
            at += 4
        duration, sample_size = track.default_duration, track.default_size
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
            begin, counted, offset = _run(trun, base, offset, duration, sample_size, mdat)
            if track_id == track.track_id:
                ticks += counted
                runs.append((begin, offset))
        data_end = offset
    # The track's runs in one mdat, none over another: data counted once (else: PyAV's call).
    runs.sort()
    if any(earlier[1] > later[0] for earlier, later in zip(runs, runs[1:], strict=False)):
        raise _NotUnderstood
    return ticks


def _run(
    trun: bytes, base: int, offset: int, duration: int, sample_size: int, mdat: tuple[int, int]
) -> tuple[int, int, int]:
    """(where the run's data starts, the ticks of its samples that `mdat` holds whole, where
    its data ends) for one `trun` whose data starts at `base` + its data offset (or at
    `offset`, where the previous run's ended). _NotUnderstood when its samples lie outside
    the mdat or it lists more samples than the mdat has bytes."""
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
    begin, (payload, held) = offset, mdat
    if count and not payload <= offset <= held:
        raise _NotUnderstood  # data outside the fragment's mdat (or before the file)
    if not stride:  # every sample the same: arithmetic, not a tuple of `count` items
        whole = count if not sample_size else min(count, (held - offset) // sample_size)
        return begin, (whole * duration if sample_size else 0), offset + count * sample_size
    values = struct.unpack_from(f">{stride * count}I", trun, at)
    durations = values[fields.index(0x100) :: stride] if 0x100 in fields else (duration,) * count
    sizes = values[fields.index(0x200) :: stride] if 0x200 in fields else (sample_size,) * count
    ticks = 0
    for this_duration, this_size in zip(durations, sizes, strict=True):
        offset += this_size
        if this_size and offset <= held:
            ticks += this_duration
    return begin, ticks, offset


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])
