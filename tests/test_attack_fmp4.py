"""Attack: the pre-roll read from the end of a fragmented MP4 (pipelines/video/fmp4.py,
media.tail, motion_step._preroll), against a stub store that serves ranges of bytes."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av
import numpy as np
import pytest

from ev_ingest.store import ManifestEntry
from ev_ingest.store.ranged import RangedObject
from pipelines.nightly import motion_step as motion
from pipelines.video import fmp4, media

FPS = 25


def _fmp4(flat_s: int, noisy_s: int, *, size=(160, 120), start_pts: int = 0) -> bytes:
    """An exacqVision-like fMP4 (empty moov, a fragment per 2 s GOP): `flat_s` of a still
    grey scene (tiny fragments), then `noisy_s` of noise (large ones): a scene that got busy."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {
            "preset": "ultrafast",
            "g": str(2 * FPS),
            "keyint_min": str(2 * FPS),
            "bf": "0",
            "sc_threshold": "0",
        }
        rng = np.random.default_rng(1)
        for i in range((flat_s + noisy_s) * FPS):
            if i < flat_s * FPS:
                image = np.full((size[1], size[0], 3), 128, np.uint8)
            else:
                image = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i + start_pts
            frame.time_base = Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buffer.getvalue()


class _Body:
    def __init__(self, data):
        self._data = io.BytesIO(data)

    def read(self, n=-1):
        return self._data.read(n)

    def close(self):
        pass


class StubStore:
    """Serves `bytes=a-b` ranges of one object, as S3 does."""

    bucket = "b"

    def __init__(self, data: bytes):
        self.data = data
        self.s3 = self

    def get_object(self, Bucket, Key, Range, **extra):
        first, last = (int(v) for v in Range.removeprefix("bytes=").split("-"))
        return {"Body": _Body(self.data[first : last + 1])}


def _seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None]
    return max(times) - min(times) + 1 / FPS


def _boxes(data: bytes):
    position = 0
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        yield position, kind, size
        position += size


@pytest.fixture(scope="module")
def busy_end():
    return _fmp4(120, 20)


def test_a_busy_end_still_gives_a_15_s_pre_roll(busy_end):
    """The window read from the end is sized by the *average* bitrate (share of the
    duration); when the chunk's last seconds are busier than its average (motion at the
    end: exactly when the next chunk needs a warm start) the window holds only the last
    few seconds, and the pre-roll is far shorter than PREROLL_S (the opening look is 10 s)."""
    source = RangedObject(StubStore(busy_end), "k", None, len(busy_end))
    tail = media.tail(source, motion.PREROLL_S, size=len(busy_end), duration_s=140.0)
    assert _seconds(tail.data) >= motion.PREROLL_S - 0.1, _seconds(tail.data)


def test_a_truncated_last_fragment_still_reads_only_the_end(busy_end):
    """An export cut inside its last fragment (an interrupted download, a recorder that
    stopped mid-GOP): no `moof` chains exactly to EOF, so last_fragments gives up and the
    ordinary path reads (FFmpeg walks) the whole file, up to the budget."""
    cut = busy_end[:-1000]
    source = RangedObject(StubStore(cut), "k", None, len(cut))
    assert fmp4.last_fragments(source, len(cut), motion.PREROLL_S, 140.0) is not None


def test_a_fake_moof_inside_video_data_is_not_taken_for_a_fragment():
    """A box header planted in an mdat payload (any bytes an encoder or a camera's SEI/user
    data emits) whose size reaches the next real moof chained to EOF like a real one; its
    sequence number (here 0, garbage) does not follow on."""
    data = bytearray(_fmp4(0, 30))
    boxes = list(_boxes(bytes(data)))
    real = [p for p, kind, _ in boxes if kind == b"moof"]
    mdats = [(p, s) for p, kind, s in boxes if kind == b"mdat"]
    # A fake box inside the payload of the second-last mdat, running to the last moof.
    mdat_at, mdat_size = mdats[-2]
    fake_at = mdat_at + mdat_size // 2
    to_next = real[-1] - fake_at
    assert to_next > 16
    data[fake_at : fake_at + 16] = struct.pack(">I4sI4s", to_next, b"moof", 16, b"mfhd")
    found = fmp4._first_chained_fragment(bytes(data[mdat_at:]))
    start = None if found is None else mdat_at + found[0]
    assert start is None or start in real, f"took offset {start} (real moofs: {real[-3:]})"


def _entry(key, size, start, end, recorded_start=None):
    return ManifestEntry(
        key=key,
        kind="export",
        version_id=None,
        size=size,
        sha256="0" * 64,
        server="nvr1",
        camera_id=1,
        start=start,
        end=end,
        recorded_start=recorded_start,
    )


def test_a_previous_chunk_that_ends_after_this_one_starts_is_not_a_pre_roll():
    """_preroll rejects a previous recording that ends more than 2 s *before* the chunk,
    but one that ends long *after* its start (a mislabelled / later export, a chunk that
    overlaps this one) is taken: the "pre-roll" is then video of this chunk's own time or
    later, not the seconds before it."""
    data = _fmp4(60, 0)  # 60 s of recording
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    # The manifest says the previous chunk is 09:59:30-10:00:00, yet its recording runs 60 s.
    previous = _entry("exports/prev.mp4", len(data), start - timedelta(seconds=30), start)
    got = motion._preroll(StubStore(data), previous, start)
    assert got is None


def test_where_a_recording_ends_is_on_its_own_clock_from_its_first_frame():
    """ends_s is documented as "seconds on its own clock (an export's starts at 0)", and
    _preroll adds it to recorded_start (t = 0, the first recorded moment). A recording
    whose timestamps start at 10 s (a variant the suite decodes) is 10 s longer to _preroll."""
    data = _fmp4(30, 0, start_pts=10 * FPS)
    tail = media.tail(io.BytesIO(data), motion.PREROLL_S, size=len(data), duration_s=30.0)
    assert tail.ends_s == pytest.approx(30.0, abs=0.1)


class LazyFragments:
    """An hour's fMP4 of a 25 Mbit/s camera (2 s GOPs of 6.25 MB), made up on the fly: a
    head (`ftyp` + `moov` with `mvex`) and 1,800 `moof` + `mdat` fragments."""

    bucket = "b"
    FRAGMENT = 6_250_000

    def __init__(self):
        self.s3 = self
        ftyp = struct.pack(">I4s", 16, b"ftyp") + b"iso5\x00\x00\x02\x00"
        mvex = struct.pack(">I4s", 8, b"mvex")
        self.head = ftyp + struct.pack(">I4s", 8 + len(mvex), b"moov") + mvex
        moof = struct.pack(">I4sI4sII", 24, b"moof", 16, b"mfhd", 0, 1)
        self.fragment = moof + struct.pack(">I4s", self.FRAGMENT - len(moof), b"mdat")
        self.size = len(self.head) + 1800 * self.FRAGMENT

    def get_object(self, Bucket, Key, Range, **extra):
        first, last = (int(v) for v in Range.removeprefix("bytes=").split("-"))
        out = bytearray(last - first + 1)
        for at in range(first, last + 1):
            if at < len(self.head):
                out[at - first] = self.head[at]
        # fragment headers falling in the range
        f0 = max(0, (first - len(self.head)) // self.FRAGMENT)
        for k in range(f0, 1800):
            start = len(self.head) + k * self.FRAGMENT
            if start > last:
                break
            for i, b in enumerate(self.fragment):
                if first <= start + i <= last:
                    out[start + i - first] = b
        return {"Body": _Body(bytes(out))}


def test_a_high_bitrate_camera_gets_a_pre_roll_within_the_default_budget():
    """MAX_WINDOW (64 MiB) equals DEFAULT_BUDGET (64 MiB), and the window is sized at 1.5x
    PREROLL_S + 4 s of average bitrate: above ~20 Mbit/s (4K cameras; 25 here) the window alone is
    over the budget, so every chunk of such a camera starts cold (RangeBudgetExceeded),
    though its last 15 s are ~47 MB."""
    store = LazyFragments()
    source = RangedObject(store, "k", None, store.size)
    found = fmp4.last_fragments(source, store.size, motion.PREROLL_S, 3600.0)
    assert found is not None and source.fetched < 64 * 2**20
