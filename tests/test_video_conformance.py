"""Every frame counted, in every container and backend (in the style of PySceneDetect's
`tests/test_video_stream.py`): the same synthetic clip (a car crossing) in mp4, mkv, ts,
an MPEG program stream, AVI with MPEG-4 Part 2 and with MS-MPEG4 v2, and a ps_zip, read
by PyAV frame by frame, by GOP threads, by `gated` and by OpenCV. Frames == duration x fps,
and the events are the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ev_ingest.simulator import exports, library, scene
from ev_ingest.simulator.recordings import busiest_start, make_clip
from pipelines.video import analyze

SECONDS, FPS = 12, 25
SITE = scene.Site(cameras=1, width=320, height=240, retention_days=3650, now=datetime(2026, 11, 21, tzinfo=UTC))
START = busiest_start(SITE, SITE.camera_list[0], datetime(2026, 11, 20, 10, tzinfo=UTC), SECONDS, {"car"})
CONTAINERS = [
    ("mp4", "libx264"),
    ("mkv", "libx264"),
    ("ts", "libx264"),
    ("mpg", "libx264"),  # an MPEG program stream, as inside exacqVision's ps_zip
    ("avi", "mpeg4"),
    ("avi", "msmpeg4v2"),  # its decoder has no frame size without the container's (issue 17)
]
BACKENDS = {
    "pyav": {"mode": "full", "workers": 1, "backend": "pyav"},
    "gop-threads": {"mode": "full", "workers": 2, "backend": "pyav"},
    "gated": {"mode": "gated", "workers": 2, "backend": "pyav"},
    "opencv": {"mode": "full", "workers": 1, "backend": "opencv"},
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance")
    made = {}
    for suffix, codec in CONTAINERS:
        path = folder / f"{codec}.{suffix}"
        make_clip(path, start=START, seconds=SECONDS, width=320, height=240, fps=FPS, codec=codec, preset="ultrafast")
        made[(suffix, codec)] = path
    return made


def spans(summary):
    return [(round(e.start_s, 2), round(e.end_s, 2)) for e in summary.events]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("suffix", "codec"), CONTAINERS, ids=[f"{s}-{c}" for s, c in CONTAINERS])
def test_every_frame_is_counted_and_events_agree(clips, suffix, codec, backend):
    path = clips[(suffix, codec)]
    reference = analyze(path, mode="full", workers=1, backend="pyav")
    assert reference.stats.frames == SECONDS * FPS, "PyAV lost frames"
    assert reference.events, "the clip's car was not seen"
    summary = analyze(path, **BACKENDS[backend])
    covered = summary.coverage()
    assert covered["complete"] and covered["analysed_s"] == pytest.approx(SECONDS, abs=1 / FPS)
    if backend == "gated":
        assert summary.stats.frames <= SECONDS * FPS
        long_ones = [e for e in spans(reference) if e[1] - e[0] > scene.GOP_SECONDS]
        assert all(any(abs(a - g[0]) <= 0.05 and abs(b - g[1]) <= 0.05 for g in spans(summary)) for a, b in long_ones)
        return
    assert summary.stats.frames == SECONDS * FPS
    if backend == "opencv":  # OpenCV converts to BGR and back to grey: a frame's difference is allowed
        assert len(summary.events) == len(reference.events)
        assert all(
            abs(a[0] - b[0]) <= 2 / FPS and abs(a[1] - b[1]) <= 2 / FPS
            for a, b in zip(spans(summary), spans(reference), strict=True)
        )
    else:
        assert spans(summary) == spans(reference)


def test_ps_zip_counts_every_frame_like_the_same_mp4():
    """exacqVision's default export format: program streams carry a PTS on some frames only;
    the others were dropped (5,948 of 7,500 in five minutes) before they were carried forward."""
    camera = SITE.camera_list[0]
    begin = START.replace(minute=0, second=0)
    plays = tuple(SITE.plays(camera, begin, begin + timedelta(minutes=2)))
    made = {}
    for fmt in ("ps_zip", "mp4"):
        layout = exports.ExportLayout(
            library.load_camera_library(camera, SITE.seed), plays, scene.slot_start(plays[0].slot), fmt
        )
        made[fmt] = analyze(b"".join(layout.chunks()), mode="full", workers=2)
    assert made["ps_zip"].stats.frames == made["mp4"].stats.frames == 120 * camera.fps
    assert spans(made["ps_zip"]) == spans(made["mp4"])
