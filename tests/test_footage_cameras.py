"""Real footage as camera recordings (issue 26, item 5): the simulator's footage cameras play
the shared clips (`tests/footage/`) forward and back over the day, served over a real socket
like any camera, with the clips' reference events as the ground truth (`/_sim/truth`).

What is claimed, and tried here: the recording *is* the clip (frames against the source),
the day holds no cut a detector would rightly call motion (a plain loop would), the truth
served is truth.json's, mirrored where the clip plays backward, and the motion core finds
those events in the camera's export as it does in the clip itself."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta

import av
import httpx
import numpy as np
import pytest

from ev_ingest.client import ExacqClient
from ev_ingest.simulator import SimulatorServer, footage, scene
from ev_ingest.simulator.state import SimulatorState
from pipelines.cli.common import EXIT_ERROR
from pipelines.cli.main import main as cli_main
from pipelines.video import analyze
from pipelines.video.scoring import score
from tests.conftest import FROZEN_NOW, PASSWORD, sim_config
from tests.test_footage import FOOTAGE, TRUTH

FPS = 5  # the demo's cameras (make demo: 320x240 at 5 fps; a footage camera keeps its clip's shape)
CAR, PEOPLE = "car-detection.mp4", "one-by-one-person-detection.mp4"
# The tests on the simulator encode two clips' GOP libraries (about 8 s, cached in .cache/)
# and decode minutes of video: make test, not the make check loop.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def footage_sim():
    """Two footage cameras (the car park, the one-by-one room) beside one synthetic camera."""
    with SimulatorServer(sim_config(cameras=3, fps=FPS, footage=FOOTAGE, footage_cameras=2)) as server:
        yield server


def _camera(server, name: str) -> scene.Camera:
    return next(c for c in server.state.site.camera_list if c.footage and c.footage.name == name)


def _window(camera: scene.Camera, periods: int = 2) -> tuple[datetime, datetime]:
    """Whole periods of the camera's ping-pong, starting on one (forward GOP 0), a day back."""
    period = camera.footage.period_s
    start_s = math.ceil((FROZEN_NOW - timedelta(days=1)).timestamp() / period) * period
    start = datetime.fromtimestamp(start_s, UTC)
    return start, start + timedelta(seconds=periods * period)


def _export(server, camera: scene.Camera, start: datetime, end: datetime) -> bytes:
    with ExacqClient(server.url, "admin", PASSWORD) as ev:
        export_id = ev.exports.create(camera.id, start, end)
        ev.exports.wait(export_id, poll_interval=0.05)
        return b"".join(ev.exports.iter_download(export_id))


def _gray(data: bytes | str, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source) as container:
        frames = container.decode(video=0)
        if size is None:
            return [f.to_ndarray(format="gray").astype(np.int16) for f in frames]
        return [f.reformat(width=size[0], height=size[1]).to_ndarray(format="gray").astype(np.int16) for f in frames]


def _truth(start: datetime, end: datetime, server, camera: scene.Camera) -> list[tuple[float, float]]:
    answer = httpx.get(
        server.url + "/_sim/truth",
        params={"start": start.isoformat(), "end": end.isoformat(), "camera": camera.id},
    ).json()
    length = (end - start).total_seconds()
    return [
        (
            max(0.0, (datetime.fromisoformat(e["start"]) - start).total_seconds()),
            min(length, (datetime.fromisoformat(e["end"]) - start).total_seconds()),
        )
        for e in answer["events"]
    ]


def test_the_ping_pong_plays_forward_then_back_and_mirrors_the_events():
    clip = footage.Footage("x.mp4", "0", 5, ((0.0, 2.0), (4.0, 6.0), (8.5, 10.0)), 64, 48, FOOTAGE / "x.mp4")
    assert [clip.variant(s) for s in range(11)] == [
        *(f"fwd{i}" for i in range(5)),
        *(f"rev{i}" for i in range(4, -1, -1)),
        "fwd0",
    ]
    # Forward as given; backward mirrored (2L - end, 2L - start); the event that reaches the
    # turn (8.5-10) joins its mirror (10-11.5) as one.
    assert clip.period_events() == [(0.0, 2.0), (4.0, 6.0), (8.5, 11.5), (14.0, 16.0), (18.0, 20.0)]
    # The event at the clip's start joins the mirror that ends the period before it.
    assert clip.events(15.0, 25.0) == [(14.0, 16.0), (18.0, 22.0), (24.0, 26.0)]
    assert clip.events(0.0, 1.0) == [(-2.0, 2.0)]


@slow
def test_a_footage_camera_is_listed_with_its_clips_shape(footage_sim):
    with ExacqClient(footage_sim.url, "admin", PASSWORD) as ev:
        cameras = {c.name: c for c in ev.cameras.list()}
    assert list(cameras)[:2] == ["car-detection", "one-by-one-person-detection"]
    car = _camera(footage_sim, CAR)
    assert (car.width, car.height, car.fps, car.continuous) == (320, 180, FPS, True)  # 768x432 kept 16:9
    assert not footage_sim.state.site.camera_list[2].footage  # the third camera is synthetic


@slow
def test_the_recording_is_the_clip_forward_then_backward_without_a_cut(footage_sim):
    car = _camera(footage_sim, CAR)
    start, end = _window(car, periods=2)
    frames = _gray(_export(footage_sim, car, start, end))
    per_half = car.footage.gops * scene.GOP_SECONDS * FPS
    assert len(frames) == 4 * per_half
    # Forward: frame k is the clip's frame at k / fps (sampled at its own 12.5 fps).
    source = _gray(str(FOOTAGE / CAR), (car.width, car.height))
    for k in (0, per_half // 3, per_half - 1):
        clip_index = int(k / FPS * 12.5 + 1e-6)
        assert np.abs(frames[k] - source[clip_index]).mean() < 2.5, k
    # Backward: the mirror of the forward half, frame for frame.
    for k in (0, per_half // 2, per_half - 1):
        assert np.abs(frames[2 * per_half - 1 - k] - frames[k]).mean() < 1.5, k
    # No cut: at the turn and where the next period begins, the picture stays (a plain loop
    # would jump from the clip's last frame to its first).
    steps = [float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:], strict=False)]
    plain_loop_jump = float(np.abs(source[0] - source[per_half * 5 // 2 - 1]).mean())
    for seam in (per_half - 1, 2 * per_half - 1, 3 * per_half - 1):
        assert steps[seam] < 1.5 < plain_loop_jump, (seam, steps[seam], plain_loop_jump)


@slow
def test_the_served_truth_is_the_clips_reference_mirrored(footage_sim):
    people = _camera(footage_sim, PEOPLE)
    start, end = _window(people, periods=2)
    length = people.footage.gops * scene.GOP_SECONDS
    forward = [tuple(e) for e in TRUTH["videos"][PEOPLE]["events"]]
    one = forward + [(2 * length - e, 2 * length - s) for s, e in reversed(forward)]
    expected = [(round(p * 2 * length + s, 3), round(p * 2 * length + e, 3)) for p in range(2) for s, e in one]
    served = [(round(s, 3), round(e, 3)) for s, e in _truth(start, end, footage_sim, people)]
    assert served == expected


@slow
@pytest.mark.parametrize("mode", ["full", "gated"])
@pytest.mark.parametrize(
    "clip",
    [
        PEOPLE,
        pytest.param(
            CAR,
            marks=pytest.mark.xfail(
                strict=True,
                reason="at 5 fps the detector joins the backward passes 5.5 s apart; at 10 fps it scores 1.00 "
                "(issue 26: results that hold across encodings)",
            ),
        ),
    ],
)
def test_the_motion_core_finds_the_clips_events_in_the_camera_recording(footage_sim, clip, mode):
    camera = _camera(footage_sim, clip)
    start, end = _window(camera, periods=2)
    summary = analyze(_export(footage_sim, camera, start, end), mode=mode, workers=1)
    reference = _truth(start, end, footage_sim, camera)
    result = score([(e.start_s, e.end_s) for e in summary.events], reference, TRUTH["tolerance_s"])
    assert result.recall >= 0.8 and result.precision >= 0.8 and result.lenient_precision == 1.0, (
        f"{clip} ({mode}): {result}: {[(round(e.start_s, 1), round(e.end_s, 1)) for e in summary.events]}"
    )


@slow
def test_a_footage_camera_jpeg_is_a_frame_of_the_clip(footage_sim):
    people = _camera(footage_sim, PEOPLE)
    with ExacqClient(footage_sim.url, "admin", PASSWORD) as ev:
        picture = ev.video.jpeg(people.id)
    (shown,) = _gray(picture)
    assert shown.shape == (people.height, people.width)
    # The frozen clock's slot plays one GOP of the clip (forward or backward): the picture is
    # one of that GOP's frames.
    slot = scene.slot_of(footage_sim.state.site.current_time())
    first = int(people.footage.variant(slot)[3:]) * scene.GOP_SECONDS * 10  # the clip runs at 10 fps
    source = _gray(str(FOOTAGE / PEOPLE), (people.width, people.height))
    nearest = min(float(np.abs(frame - shown).mean()) for frame in source[first : first + 2 * 10])
    assert nearest < 4.0


def test_a_footage_folder_that_is_not_one_fails_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"no readable truth\.json") as caught:
        SimulatorState(sim_config(footage=tmp_path))
    assert "\n" not in str(caught.value)
    assert cli_main(["simulator", "--port", "0", "--footage", str(tmp_path)]) == EXIT_ERROR
    (error,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert error.startswith("ev-ingest simulator: error: footage folder") and "truth.json" in error
    (tmp_path / "truth.json").write_text(json.dumps({"videos": {"gone.mp4": {"events": []}}}))
    with pytest.raises(ValueError, match=r"names gone\.mp4, which is not there"):
        SimulatorState(sim_config(footage=tmp_path))
    with av.open(str(FOOTAGE / CAR)) as whole:  # one second of the clip: under one GOP
        stream = whole.streams.video[0]
        out_path = tmp_path / "short.mp4"
        with av.open(str(out_path), "w") as out:
            copy = out.add_stream_from_template(stream)
            for packet in whole.demux(stream):
                if packet.dts is None or packet.dts * packet.time_base >= 1:
                    break
                packet.stream = copy
                out.mux(packet)
    (tmp_path / "truth.json").write_text(json.dumps({"videos": {"short.mp4": {"events": []}}}))
    with pytest.raises(ValueError, match=r"shorter than one 2 s GOP"):
        SimulatorState(sim_config(footage=tmp_path))
