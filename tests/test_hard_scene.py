"""The synthetic scene with what real cameras do (`ev_ingest.simulator.hard_scene`): jitter
over painted lines, an on-screen clock, auto-exposure darkening for a bright vehicle, a
loiterer who stands still for 10 s, sunlight on half the scene, and a 30x80-pixel object
at 1080p (missed by the first detector). Every reference event found with both ends
within 1 s, and nothing else."""

from __future__ import annotations

import pytest

from ev_ingest.simulator.hard_scene import make_hard_clip
from pipelines.video import analyze
from pipelines.video.scoring import score


@pytest.fixture(scope="module")
def hard_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hard")
    return {
        height: make_hard_clip(folder / f"hard_{height}.mp4", width=height * 16 // 9, height=height)
        for height in (360, 1080)
    }


@pytest.mark.parametrize("mode", ["full", "gated"])
@pytest.mark.parametrize("height", [360, 1080])
def test_every_phenomenon_is_handled(hard_clips, height, mode):
    clip = hard_clips[height]
    summary = analyze(clip.path, mode=mode, workers=2)
    found = [(e.start_s, e.end_s) for e in summary.events]
    result = score(found, [(a, b) for a, b, _ in clip.events])
    assert result.recall == 1.0 and result.precision == 1.0, f"{result}: {found}"


def test_the_small_object_at_1080p_has_its_own_region(hard_clips):
    summary = analyze(hard_clips[1080].path, mode="full", workers=2)
    small = next(e for e in summary.events if e.start_s > 30)
    x0, y0, x1, y1 = summary.pixels(small.peak_bbox)
    assert 1080 * 0.6 - 20 <= y0 and y1 <= 1080 * 0.6 + 80 + 40  # its own box, not the frame's
    assert summary.as_json()["events"][-1]["bbox_px"] == summary.pixels(small.bbox)


def test_a_mask_hides_what_it_covers(hard_clips):
    from pipelines.video import MotionConfig

    lower_right = MotionConfig(masks=((0.0, 0.55, 1.0, 1.0),))  # where the small object crosses
    summary = analyze(hard_clips[360].path, mode="full", config=lower_right, workers=2)
    assert [e for e in summary.events if e.start_s > 30] == []
    assert len(summary.events) == 2
