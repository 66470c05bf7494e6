"""The last fragments of a fragmented MP4, found from its end: a few reads, not the whole file.

exacqVision's MP4 export (and the simulator's) is fragmented: `ftyp`, an empty `moov`,
then a `moof` + `mdat` per GOP, with no index (`sidx`, `mfra`). To seek, FFmpeg walks
every fragment from the start, which over ranged reads is the whole file (measured: 49.3
of 49.8 MB of an hour's export read to take its last 15 s). The fragments are
self-contained, so the file's head (`ftyp` + `moov`) followed by its last fragments is a
valid, short fMP4 of the same stream: this module finds where a fragment begins in a
window read from the end, and proves it by walking the box sizes from there exactly to
the end of the file (a byte pattern inside the video data cannot chain like that).
"""

from __future__ import annotations

import struct
from typing import IO

HEAD_READ = 64 * 1024  # ftyp + moov of an fMP4 are a few KB
MARGIN = 256 * 1024  # read this much more than the estimate: the fragment before the window's start
MAX_WINDOW = 64 * 1024 * 1024
TOP_LEVEL = {b"moof", b"mdat", b"styp", b"sidx", b"free", b"skip", b"mfra", b"prft", b"emsg", b"uuid"}


def last_fragments(source: IO[bytes], size: int, seconds: float, duration_s: float | None) -> bytes | None:
    """`ftyp` + `moov` + the fragments holding about the last `seconds` of a fragmented MP4
    of `size` bytes and about `duration_s` seconds; None when the file is not a fragmented
    MP4 or its end does not parse (the caller then reads it the ordinary way)."""
    source.seek(0)
    head = _read(source, min(size, HEAD_READ))
    boxes = list(_boxes(head, 0))
    if len(boxes) < 2 or boxes[0][1] != b"ftyp" or boxes[1][1] != b"moov":
        return None
    moov_start, _, moov_size = boxes[1]
    if moov_start + moov_size > len(head):
        return None  # a moov this large is not the empty one of an fMP4
    moov = head[moov_start : moov_start + moov_size]
    if b"mvex" not in moov:
        return None  # not fragmented: its index is in the moov, and FFmpeg seeks by it
    share = (seconds * 1.5 + 4.0) / duration_s if duration_s else 1.0
    window = min(size - (moov_start + moov_size), int(size * min(1.0, share)) + MARGIN, MAX_WINDOW)
    at = size - window
    source.seek(at)
    data = _read(source, window)
    start = _first_chained_fragment(data)
    if start is None:
        return None
    return head[: moov_start + moov_size] + data[start:]


def _first_chained_fragment(data: bytes) -> int | None:
    """The first `moof` in `data` from which the box sizes chain exactly to its end."""
    index = data.find(b"moof")
    while index != -1:
        start = index - 4
        if start >= 0 and data[index + 8 : index + 12] == b"mfhd" and _chains(data, start):
            return start
        index = data.find(b"moof", index + 1)
    return None


def _chains(data: bytes, start: int) -> bool:
    position = start
    while position < len(data):
        if position + 8 > len(data):
            return False
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1:
            if position + 16 > len(data):
                return False
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        if kind not in TOP_LEVEL or size < 8:
            return False
        position += size
    return position == len(data)


def _boxes(data: bytes, position: int):
    """(offset, type, size) of the top-level boxes that start within `data`."""
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1 and position + 16 <= len(data):
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        if size < 8:
            return
        yield position, kind, size
        position += size


def _read(source: IO[bytes], count: int) -> bytes:
    parts, want = [], count
    while want > 0:
        chunk = source.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)
