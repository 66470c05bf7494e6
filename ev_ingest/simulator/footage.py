"""Real clips as camera recordings: the simulator's footage cameras (issue 26, item 5).

A footage camera plays one real clip from a folder laid out like `tests/footage/` (the
clips beside a `truth.json` of reference motion events) instead of the synthetic scene.
The clip is resampled to the camera's size and frame rate, cut into GOP slots, and played
over the whole day forward, then backward, then forward again ("ping-pong"): a plain loop
would jump from the clip's last frame to its first, a cut any detector rightly reports as
motion, so the day would hold an event nobody recorded. Played backward, the clip's
reference events stay the ground truth, mirrored; an event that reaches the turn joins its
mirror as one event.

Like the synthetic scene, everything is a pure function of the clip and absolute time:
slot `s` plays forward GOP `s mod 2n` (or backward GOP `2n-1 - s mod 2n` past the turn),
counted from the Unix epoch, so any process answers the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
from av.video.frame import PictureType

from ev_ingest.simulator import scene

TRUTH = "truth.json"
MERGE_GAP_S = 1.0  # truth.json's own rule: gaps under ~1 s are one event
# The camera's copy should be the clip, not the encoder's artefacts: the clip was encoded once
# already, and the synthetic scene's crf 27 (cheap, flat texture) smears real detail.
CRF = "20"


@dataclass(frozen=True)
class Footage:
    """One real clip as a camera's recording, with its reference events."""

    name: str  # the clip's file name in its folder
    digest: str  # sha256 of the clip: the simulator's video cache follows the bytes, not the path
    gops: int  # forward GOP slots the clip fills (a last partial GOP is left out)
    truth: tuple[tuple[float, float], ...]  # reference events, seconds from the clip's first frame
    width: int  # the clip's own size: a camera keeps its shape
    height: int
    path: Path = field(repr=False, compare=False)

    @property
    def period_s(self) -> float:
        return 2 * self.gops * scene.GOP_SECONDS

    def variant(self, slot: int) -> str:
        """The library GOP slot `slot` plays: forward over the first half of each period."""
        place = slot % (2 * self.gops)
        return f"fwd{place}" if place < self.gops else f"rev{2 * self.gops - 1 - place}"

    def period_events(self) -> list[tuple[float, float]]:
        """Reference events over one period [0, period_s): forward as given, then mirrored."""
        length = self.gops * scene.GOP_SECONDS
        forward = [(max(0.0, s), min(length, e)) for s, e in self.truth if s < length]
        backward = [(2 * length - e, 2 * length - s) for s, e in reversed(forward)]
        return _merged(forward + backward)

    def events(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """Reference events (epoch seconds) overlapping [start_s, end_s), joined across periods."""
        period = self.period_s
        one = self.period_events()
        first, last = int(start_s // period) - 1, int(end_s // period) + 1
        spans = [(k * period + s, k * period + e) for k in range(first, last + 1) for s, e in one]
        return [(s, e) for s, e in _merged(spans) if e > start_s and s < end_s]


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s - out[-1][1] < MERGE_GAP_S:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def load(folder: Path, limit: int) -> list[Footage]:
    """The first `limit` clips of `folder`, in truth.json's order, each probed once.

    Raises ValueError with one line naming what is wrong (no truth.json, a clip it names
    missing, a clip shorter than one GOP)."""
    truth_file = folder / TRUTH
    try:
        videos = json.loads(truth_file.read_text())["videos"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"footage folder {folder}: no readable {TRUTH} with 'videos' ({exc})") from None
    out = []
    for name, entry in list(videos.items())[:limit]:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"footage folder {folder}: {TRUTH} names {name}, which is not there")
        with av.open(str(path)) as container:
            seconds = (container.duration or 0) / av.time_base
            width, height = container.streams.video[0].width, container.streams.video[0].height
        gops = int(seconds // scene.GOP_SECONDS)
        if gops < 1:
            raise ValueError(f"footage {path}: {seconds:.1f} s is shorter than one {scene.GOP_SECONDS} s GOP")
        truth = tuple((float(s), float(e)) for s, e in entry["events"])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out.append(Footage(name, digest, gops, truth, width, height, path))
    return out


def gop_frames(footage: Footage, width: int, height: int, fps: int) -> Iterator[list[av.VideoFrame]]:
    """The clip's frames, resampled to `fps` and `width` x `height`, one GOP's list at a time.

    Frame k shows the last source frame whose presentation time is at or before k / fps
    (times from the clip's first frame), so a clip's own frame rate, variable or not, maps
    onto the camera's without drift."""
    per_gop = fps * scene.GOP_SECONDS
    wanted = footage.gops * per_gop
    count = 0
    current: list[av.VideoFrame] = []
    shown: av.VideoFrame | None = None
    origin: float | None = None
    with av.open(str(footage.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            origin = frame.time if origin is None else origin
            # Every output frame due before this source frame shows the one before it.
            while shown is not None and count < wanted and count / fps < frame.time - origin - 1e-6:
                current.append(shown)
                count += 1
                if len(current) == per_gop:
                    yield current
                    current = []
            if count >= wanted:
                return
            shown = frame.reformat(width=width, height=height, format="yuv420p")
            # The clip's own keyframes would force keyframes in the camera's GOPs (encoders
            # honour a frame's picture type): each library GOP must hold exactly one.
            shown.pict_type = PictureType.NONE
    while shown is not None and count < wanted:  # the clip's last frame holds to the GOP's end
        current.append(shown)
        count += 1
        if len(current) == per_gop:
            yield current
            current = []
