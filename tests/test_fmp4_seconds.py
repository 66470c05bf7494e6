"""The short-export check's fast path (pipelines/video/fmp4_seconds.py): seconds of video
read from a fragmented MP4's boxes must be what PyAV's demux counts, and never more than
the file holds: an export cut short, or a run that promises samples past the end, must not
read as a whole hour (that would lock a short export as complete)."""

from __future__ import annotations

import io
import struct
from datetime import timedelta
from fractions import Fraction

import av
import numpy as np
import pytest

from ev_ingest.client import ExacqClient
from ev_ingest.simulator import SimulatorServer
from pipelines.video.decode import VideoError
from pipelines.video.fmp4_seconds import fragmented_seconds
from pipelines.video.probe import demuxed_seconds, video_seconds
from tests.conftest import FROZEN_NOW, PASSWORD, sim_config

FPS = 5


@pytest.fixture(scope="module")
def hour_export(_password_env) -> bytes:
    """An hour of one simulator camera (a fragmented MP4 without an index, as exacqVision's)."""
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=3)
    with (
        SimulatorServer(sim_config(cameras=1, width=160, height=120, fps=FPS)) as sim,
        ExacqClient(sim.url, "admin", PASSWORD) as ev,
    ):
        camera = ev.cameras.list()[0].id
        export_id = ev.exports.create(camera, start, start + timedelta(hours=1))
        ev.exports.wait(export_id, poll_interval=0.05)
        return b"".join(ev.exports.iter_download(export_id))


def test_an_hour_export_measures_as_pyav_counts_it(hour_export):
    fast = fragmented_seconds(io.BytesIO(hour_export))
    assert fast is not None and fast == pytest.approx(3600.0, abs=1 / FPS)
    assert fast == pytest.approx(demuxed_seconds(io.BytesIO(hour_export)), abs=1e-6)


@pytest.mark.parametrize("share", [0.999, 0.75, 0.5, 0.1, 0.001])
def test_an_export_cut_short_counts_only_the_samples_it_holds(hour_export, share):
    """A truncated download (cut inside an mdat, a moof or a header): the samples it holds
    whole, never what the cut fragment's trun promises."""
    cut = hour_export[: int(len(hour_export) * share)]
    fast = fragmented_seconds(io.BytesIO(cut))
    assert fast is not None
    assert fast <= 3600.0 * share + 2.5, (share, fast)  # not more than the bytes can hold
    assert fast >= 3600.0 * share - 30.0, (share, fast)  # and not a file read as empty
    assert fast <= demuxed_seconds(io.BytesIO(cut)) + 1e-6  # never more than PyAV counts


def test_a_run_that_promises_samples_past_the_end_is_not_counted(hour_export):
    """An attacker's export: the last fragment's trun says it holds ten times its samples
    (their bytes would lie past the end of the file): they are not counted."""
    data = bytearray(hour_export)
    at = data.rfind(b"trun") - 4
    flags = int.from_bytes(data[at + 9 : at + 12], "big")
    assert flags & 0x200, "the simulator's runs list sample sizes"
    count = struct.unpack(">I", data[at + 12 : at + 16])[0]
    assert count > 1
    before = fragmented_seconds(io.BytesIO(bytes(data)))
    # The first sample grows to more than the rest of the file: none of the run fits.
    first = at + 16 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    first += 4 if flags & 0x100 else 0
    struct.pack_into(">I", data, first, len(data))
    after = fragmented_seconds(io.BytesIO(bytes(data)))
    assert before is not None and after is not None
    assert after == pytest.approx(before - count / FPS, abs=1e-6)


def _encode(options: dict[str, str], fmt_options: dict[str, str], frames: int, vfr: bool = False) -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4", options=fmt_options) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = options
        stream.codec_context.time_base = Fraction(1, 1000)
        rng = np.random.default_rng(1)
        pts = 0
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 200 if not vfr or index % 3 else 700  # a variable frame rate: some gaps of 0.7 s
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


@pytest.mark.parametrize(
    "options, vfr",
    [
        ({"g": "10", "bf": "0"}, False),
        ({"g": "10", "bf": "2"}, False),  # B-frames: decode order is not presentation order
        ({"g": "25", "bf": "0"}, True),  # variable frame rate: per-sample durations
    ],
    ids=["cctv", "b-frames", "vfr"],
)
def test_ffmpeg_fragmented_mp4_measures_as_pyav_counts_it(options, vfr):
    data = _encode(options, FRAGMENTED, frames=60, vfr=vfr)
    fast = fragmented_seconds(io.BytesIO(data))
    assert fast is not None and fast > 0
    assert fast == pytest.approx(demuxed_seconds(io.BytesIO(data)), abs=1e-3)


def test_what_is_not_a_fragmented_mp4_goes_to_pyav():
    """A plain MP4 (samples indexed in its moov): not measured from boxes, but by PyAV."""
    plain = _encode({"g": "10"}, {}, frames=30)
    assert fragmented_seconds(io.BytesIO(plain)) is None
    assert video_seconds(io.BytesIO(plain)) == pytest.approx(30 / FPS, abs=1e-3)
    for junk in (b"", b"not a video at all" * 100, plain[:200]):
        assert fragmented_seconds(io.BytesIO(junk)) is None
        with pytest.raises(VideoError, match="not a readable video|no video stream"):
            video_seconds(io.BytesIO(junk))


def _last_fragment_box(data: bytes, kind: bytes) -> int:
    """Offset of the size field of the last `kind` box (found by its type after the last moof)."""
    at = data.rfind(kind, data.rfind(b"moof"))
    assert at > 0, kind
    return at - 4


def _first_moov_box(data: bytes, kind: bytes) -> int:
    at = data.find(kind, data.find(b"moov"))
    assert 0 < at < data.find(b"moof"), kind
    return at - 4


def _rename(data: bytes, at: int, kind: bytes) -> bytes:
    return data[: at + 4] + kind + data[at + 8 :]


@pytest.mark.parametrize(
    "attack",
    [
        "two tfhd",  # a traf that says two things about its samples' durations
        "unknown handler",  # a track FFmpeg would type by its sample entry, not its hdlr
        "data before the mdat",  # a run whose data offset points back before its fragment's mdat
        "a barrier box",  # a top-level 64-bit size smaller than its header: FFmpeg stops there
    ],
)
def test_what_could_say_two_things_is_left_to_pyav(hour_export, attack):
    """The attacker's files of the fast path (each once read as more video than PyAV
    counts, up to 50 h for 10 s): each is now not measured from boxes, so the export is
    measured by PyAV, as before the fast path."""
    data = hour_export
    if attack == "two tfhd":
        data = _rename(data, _last_fragment_box(data, b"tfdt"), b"tfhd")
    elif attack == "unknown handler":
        at = data.find(b"vide", _first_moov_box(data, b"hdlr"))
        data = data[:at] + b"xxxx" + data[at + 4 :]
    elif attack == "data before the mdat":
        at = _last_fragment_box(data, b"trun")
        assert int.from_bytes(data[at + 9 : at + 12], "big") & 0x01, "the run has a data offset"
        data = data[: at + 16] + struct.pack(">i", -len(data)) + data[at + 20 :]
    else:
        at = data.rfind(b"moof") - 4  # the last moof becomes a box of size 1, 64-bit size 12
        data = data[:at] + struct.pack(">I4sQ", 1, b"free", 12) + data[at:]
    assert fragmented_seconds(io.BytesIO(data)) is None
    assert fragmented_seconds(io.BytesIO(hour_export)) is not None  # the edit, not the file


def test_a_run_of_four_billion_samples_costs_nothing(hour_export):
    """A 32-bit sample count with one size for all (no per-sample fields; once a MemoryError
    from a 1.8 KB file): counted by arithmetic, and only the samples the mdat's bytes hold."""
    data = bytearray(hour_export)
    at = _last_fragment_box(bytes(data), b"trun")
    data[at + 9 : at + 12] = (int.from_bytes(data[at + 9 : at + 12], "big") & 0x0005).to_bytes(3, "big")
    data[at + 12 : at + 16] = struct.pack(">I", 2**32 - 1)
    tfhd = _last_fragment_box(bytes(data), b"tfhd")
    assert int.from_bytes(data[tfhd + 9 : tfhd + 12], "big") & 0x18 == 0x18, "the simulator's tfhd sets both"
    default_size = struct.unpack(">I", data[tfhd + 20 : tfhd + 24])[0]
    payload = len(data) - (bytes(data).rfind(b"mdat") + 4)
    before = fragmented_seconds(io.BytesIO(hour_export))
    after = fragmented_seconds(io.BytesIO(bytes(data)))
    assert before is not None and after is not None
    # The last GOP (2 s) now counts as many samples as its mdat's bytes hold, not 4e9.
    assert before - 2.0 - 1e-6 <= after <= before - 2.0 + (payload // default_size) / FPS + 1e-6
