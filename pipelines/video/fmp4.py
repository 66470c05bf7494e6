"""The last fragments of a fragmented MP4, found from its end: a few reads, not the whole file.

exacqVision's MP4 export (and the simulator's) is fragmented: `ftyp`, an empty `moov`,
then a `moof` + `mdat` per GOP, with no index (`sidx`, `mfra`). To seek, FFmpeg walks
every fragment from the start, which over ranged reads is the whole file (measured: 49.3
of 49.8 MB of an hour's export read to take its last 15 s). The fragments are
self-contained, so the file's head (`ftyp` + `moov`) followed by its last fragments is a
valid, short fMP4 of the same stream: this module finds where a fragment begins in a
window read from the end, and checks it by walking the boxes from there to the end of the
file: sizes that chain, whole `mfhd` boxes, sequence numbers one apart. Bytes planted in
video data could still be crafted to pass; what they can cost is the pre-roll (the copy
is then decoded, and a copy that does not decode falls back to the ordinary read).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO

HEAD_READ = 64 * 1024  # ftyp + moov of an fMP4 are a few KB
MARGIN = 256 * 1024  # read this much more than the estimate: the fragment before the window's start
MAX_WINDOW = 48 * 1024 * 1024  # under the ranged reader's 64 MiB budget, with the head's blocks
TOP_LEVEL = {b"moof", b"mdat", b"styp", b"sidx", b"free", b"skip", b"mfra", b"prft", b"emsg", b"uuid"}


def last_fragments(
    source: IO[bytes], size: int, seconds: float, duration_s: float | None, grow: int = 1
) -> bytes | None:
    """`ftyp` + `moov` + the fragments holding about the last `seconds` of a fragmented MP4
    of `size` bytes and about `duration_s` seconds (`grow`: read that many times more from
    the end, when the end is busier than the average); None when the file is not a
    fragmented MP4 or its end does not parse (the caller then reads it the ordinary way).
    A last fragment cut short (an export that stopped mid-write) is left out."""
    source.seek(0)
    head = read_up_to(source, min(size, HEAD_READ))
    boxes = list(_boxes(head, 0))
    if len(boxes) < 2 or boxes[0][1] != b"ftyp" or boxes[1][1] != b"moov":
        return None
    moov_start, _, moov_size = boxes[1]
    if moov_start + moov_size > len(head):
        return None  # a moov this large is not the empty one of an fMP4
    moov = head[moov_start : moov_start + moov_size]
    if b"mvex" not in moov:
        return None  # not fragmented: its index is in the moov, and FFmpeg seeks by it
    share = grow * (seconds * 1.5 + 4.0) / duration_s if duration_s else 1.0
    window = min(size - (moov_start + moov_size), int(size * min(1.0, share)) + MARGIN, MAX_WINDOW)
    source.seek(size - window)
    data = read_up_to(source, window)
    found = _first_chained_fragment(data)
    if found is None:
        return None
    start, end = found
    return head[: moov_start + moov_size] + data[start:end]


def _first_chained_fragment(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the fragments from the first `moof` in `data` whose box sizes chain to
    its end (the last box may be cut short: `end` stops before it), whose `mfhd` is whole
    (16 bytes) and whose sequence numbers then go up by one: bytes inside video data that
    merely look like a box do not pass all of that."""
    index = data.find(b"moof")
    while index != -1:
        start = index - 4
        if start >= 0 and _is_moof(data, start):
            end = _chain_end(data, start)
            if end is not None:
                return start, end
        index = data.find(b"moof", index + 1)
    return None


def _is_moof(data: bytes, at: int) -> bool:
    if at + 24 > len(data):
        return False
    size, kind, mfhd_size, mfhd = struct.unpack(">I4sI4s", data[at : at + 16])
    return kind == b"moof" and mfhd == b"mfhd" and mfhd_size == 16 and size >= 24


def _chain_end(data: bytes, start: int) -> int | None:
    """Where the whole boxes from `start` end, if they chain to the end of `data` (a last box
    cut short is dropped, and so is its moof when it is an mdat); None if they do not chain."""
    position, whole, sequence = start, start, None
    while position < len(data):
        if position + 8 > len(data):
            return whole  # a header cut short: the end of a truncated file
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1 and position + 16 <= len(data):
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        if kind not in TOP_LEVEL or (size < 8 and size != 0):
            return None
        if kind == b"moof":
            if not _is_moof(data, position):
                return None
            number = struct.unpack(">I", data[position + 20 : position + 24])[0]
            if sequence is not None and number != sequence + 1:
                return None
            sequence = number
        if size == 0 or position + size > len(data):
            return whole  # runs to (or past) the end: cut short, left out with its moof
        position += size
        if kind != b"moof":
            whole = position  # a fragment (moof + mdat) is whole once its mdat is
    return whole if whole > start else None


def _boxes(data: bytes, position: int) -> Iterator[tuple[int, bytes, int]]:
    """(offset, type, size) of the top-level boxes that start within `data`."""
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1 and position + 16 <= len(data):
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        if size < 8:
            return
        yield position, kind, size
        position += size


def read_up_to(source: IO[bytes], count: int) -> bytes:
    """Up to `count` bytes from `source`'s position (fewer only at its end): a file object
    may return less than asked per read."""
    parts, want = [], count
    while want > 0:
        chunk = source.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)
