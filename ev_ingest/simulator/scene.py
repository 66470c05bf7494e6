"""The synthetic site: cameras, recording schedules and the ground truth of motion.

Everything here is a pure function of the seed, the camera and absolute time, so any
process can answer "what was recorded at 03:14:07 on camera 4593408, and was anything
moving" without state. Video itself is built from a small library of pre-encoded GOPs
(`library.py`); this module decides which library GOP plays in each GOP slot.

Time is cut into GOP slots of `GOP_SECONDS` since the Unix epoch. Every
`CELL_SECONDS` cell holds at most one motion event, chosen by a keyed hash, made of
consecutive motion GOPs of one kind:

=========  =====  ==========================================================
kind       GOPs   what moves (object visible over the offsets below)
=========  =====  ==========================================================
walker     4      a small figure crossing slowly, visible 0.2 s .. 7.8 s
car        2      a large block crossing fast, visible 0.2 s .. 3.8 s
blip       1      a small object visible 0.6 s .. 1.4 s, between keyframes
=========  =====  ==========================================================

Cameras are either recorded continuously or motion-triggered (each event plus a
pre/post-roll of `ROLL_GOPS` GOPs); recordings cover `retention_days` up to now.
The first cameras of a site given `footage` play real clips instead (`footage.py`),
recorded continuously, with the clips' reference events as their ground truth.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ev_ingest import clock

if TYPE_CHECKING:
    from ev_ingest.simulator.footage import Footage

GOP_SECONDS = 2
CELL_SECONDS = 60
ROLL_GOPS = 3
FIRST_CAMERA_ID = 4593152  # exacqVision camera ids are large integers in steps of 256
CAMERA_ID_STEP = 256


@dataclass(frozen=True)
class EventKind:
    name: str
    gops: int
    visible_from: float  # seconds after the event's first GOP starts
    visible_to: float
    size: float  # object height as a fraction of the frame height
    weight: float  # relative frequency


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("walker", 4, 0.2, 7.8, 0.30, 0.50),
    EventKind("car", 2, 0.2, 3.8, 0.45, 0.35),
    EventKind("blip", 1, 0.6, 1.4, 0.20, 0.15),
)
KIND_BY_NAME = {k.name: k for k in EVENT_KINDS}


def keyed_unit(*parts: int | str) -> float:
    """A deterministic uniform number in [0, 1) for the given key (stable across processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] / 2**64


@dataclass(frozen=True)
class Camera:
    id: int
    index: int
    name: str
    width: int
    height: int
    fps: int
    continuous: bool
    event_probability: float  # chance that a cell holds an event
    records: bool = True  # False: a camera that recorded nothing (unplugged, or never triggered)
    footage: Footage | None = None  # a real clip this camera plays instead of the synthetic scene

    @property
    def gop_frames(self) -> int:
        return self.fps * GOP_SECONDS


@dataclass(frozen=True)
class MotionEvent:
    camera_id: int
    kind: str
    first_gop: int  # absolute GOP slot index of the event's first GOP
    start: datetime  # when the object becomes visible
    end: datetime
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 normalised, over the whole event

    def as_json(self) -> dict[str, object]:
        return {
            "camera": self.camera_id,
            "kind": self.kind,
            "start": iso_z(self.start),
            "end": iso_z(self.end),
            "duration_s": (self.end - self.start).total_seconds(),
            "bbox": list(self.bbox),
        }


def iso_z(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as exacqVision answers (milliseconds only when present)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def slot_start(slot: int) -> datetime:
    return datetime.fromtimestamp(slot * GOP_SECONDS, UTC)


def slot_of(moment: datetime) -> int:
    """The GOP slot that contains `moment`."""
    return int(moment.timestamp() // GOP_SECONDS)


@dataclass(frozen=True)
class SlotPlay:
    """What plays in one GOP slot: the library variant and its position in the event."""

    slot: int
    variant: str  # "still" or "<kind><gop index>", e.g. "walker2"


def object_path(camera: Camera, kind: EventKind, seed: int) -> tuple[float, float, bool]:
    """Vertical centre (normalised), lane jitter and direction of an event kind on a camera."""
    y_centre = 0.35 + 0.3 * keyed_unit(seed, camera.id, kind.name, "lane")
    left_to_right = keyed_unit(seed, camera.id, kind.name, "dir") < 0.5
    return y_centre, 0.0, left_to_right


def object_box(camera: Camera, kind: EventKind, seed: int, t: float) -> tuple[float, float, float, float] | None:
    """The object's normalised box at `t` seconds into the event, or None when not visible."""
    if not kind.visible_from <= t < kind.visible_to:
        return None
    y_centre, _, left_to_right = object_path(camera, kind, seed)
    progress = (t - kind.visible_from) / (kind.visible_to - kind.visible_from)
    height = kind.size
    width = height * 0.6 * camera.height / camera.width
    # The object travels from just inside the left edge to just inside the right edge,
    # so it is fully in frame (and fully "visible") for the whole truth window.
    x_centre = 0.05 + width / 2 + progress * (0.9 - width)
    if not left_to_right:
        x_centre = 1.0 - x_centre
    return (x_centre - width / 2, y_centre - height / 2, x_centre + width / 2, y_centre + height / 2)


def event_bbox(camera: Camera, kind: EventKind, seed: int) -> tuple[float, float, float, float]:
    first = object_box(camera, kind, seed, kind.visible_from)
    last = object_box(camera, kind, seed, kind.visible_to - 1e-6)
    assert first is not None and last is not None
    return (
        round(min(first[0], last[0]), 4),
        round(min(first[1], last[1]), 4),
        round(max(first[2], last[2]), 4),
        round(max(first[3], last[3]), 4),
    )


@dataclass
class Site:
    """A synthetic exacqVision site. Pure: every answer derives from the fields below."""

    seed: int = 1
    cameras: int = 4
    width: int = 1280
    height: int = 720
    fps: int = 25
    timezone_hours: int = 0
    retention_days: float = 7.0
    now: datetime | None = None  # frozen clock for tests; None means the wall clock
    clock_offset_s: float = 0.0  # a server clock that is off (clock skew), added to either
    idle_cameras: int = 0  # the last this many cameras recorded nothing at all
    server_name: str = "ev-ingest simulator"
    serial: str = "18-62-66-32-4E-AF"
    version: str = "24.09.1.0"
    footage: tuple[Footage, ...] = ()  # real clips the first cameras play, one each
    camera_list: list[Camera] = field(init=False)

    def __post_init__(self) -> None:
        self.camera_list = [self._make_camera(i) for i in range(self.cameras)]
        self._by_id = {c.id: c for c in self.camera_list}

    def _make_camera(self, index: int) -> Camera:
        names = ("Lobby", "Parking North", "Loading Dock", "Gate", "Corridor", "Warehouse", "Office", "Yard")
        base = names[index % len(names)]
        name = base if index < len(names) else f"{base} {index // len(names) + 1}"
        if index < len(self.footage):
            clip = self.footage[index]
            # The site's width; the clip's own shape (an even height), so nothing is stretched.
            height = max(16, round(self.width * clip.height / clip.width / 2) * 2)
            return Camera(
                id=FIRST_CAMERA_ID + index * CAMERA_ID_STEP,
                index=index,
                name=Path(clip.name).stem,
                width=self.width,
                height=height,
                fps=self.fps,
                continuous=True,
                event_probability=0.0,
                records=index < self.cameras - self.idle_cameras,
                footage=clip,
            )
        return Camera(
            id=FIRST_CAMERA_ID + index * CAMERA_ID_STEP,
            index=index,
            name=name,
            width=self.width,
            height=self.height,
            fps=self.fps,
            continuous=index % 4 != 3,  # every fourth camera records on motion only
            event_probability=0.2 + 0.25 * keyed_unit(self.seed, index, "activity"),
            records=index < self.cameras - self.idle_cameras,
        )

    # --- clock and coverage -------------------------------------------------------
    def current_time(self) -> datetime:
        return (self.now or clock.now()) + timedelta(seconds=self.clock_offset_s)

    def coverage(self) -> tuple[int, int]:
        """[first, last) GOP slots that exist on disk."""
        now = self.current_time()
        return slot_of(now - timedelta(days=self.retention_days)) + 1, slot_of(now)

    def camera(self, camera_id: int) -> Camera:
        try:
            return self._by_id[camera_id]
        except KeyError:
            raise KeyError(camera_id) from None

    # --- events -------------------------------------------------------------------
    def _event_in_cell(self, camera: Camera, cell: int) -> tuple[EventKind, int] | None:
        if keyed_unit(self.seed, camera.id, cell, "event") >= camera.event_probability:
            return None
        pick = keyed_unit(self.seed, camera.id, cell, "kind") * sum(k.weight for k in EVENT_KINDS)
        for kind in EVENT_KINDS:
            pick -= kind.weight
            if pick < 0:
                break
        gops_per_cell = CELL_SECONDS // GOP_SECONDS
        offset = int(keyed_unit(self.seed, camera.id, cell, "offset") * (gops_per_cell - kind.gops + 1))
        return kind, cell * gops_per_cell + offset

    def events(self, camera: Camera, start: datetime, end: datetime) -> list[MotionEvent]:
        """Ground-truth motion events whose visible span overlaps [start, end) and was recorded."""
        first, last = self.coverage()
        out: list[MotionEvent] = []
        if not camera.records:
            return out
        if camera.footage is not None:
            return self._footage_events(camera, start, end)
        for cell in range(int(start.timestamp() // CELL_SECONDS) - 1, int(end.timestamp() // CELL_SECONDS) + 1):
            found = self._event_in_cell(camera, cell)
            if found is None:
                continue
            kind, gop = found
            if gop < first or gop + kind.gops > last:
                continue
            ev_start = slot_start(gop) + timedelta(seconds=kind.visible_from)
            ev_end = slot_start(gop) + timedelta(seconds=kind.visible_to)
            if ev_end > start and ev_start < end:
                out.append(
                    MotionEvent(camera.id, kind.name, gop, ev_start, ev_end, event_bbox(camera, kind, self.seed))
                )
        return out

    def under_way(self, camera: Camera, now: datetime) -> list[MotionEvent]:
        """Motion events visible at `now` (being recorded: `events` keeps only those whose
        GOPs are all on disk, so it never lists one under way)."""
        first, _ = self.coverage()
        if not camera.records:
            return []
        if camera.footage is not None:
            moment = now + timedelta(microseconds=1)
            return [e for e in self._footage_events(camera, now, moment) if e.start <= now]
        out = []
        for cell in range(int(now.timestamp() // CELL_SECONDS) - 1, int(now.timestamp() // CELL_SECONDS) + 1):
            found = self._event_in_cell(camera, cell)
            if found is None or found[1] < first:
                continue
            kind, gop = found
            start = slot_start(gop) + timedelta(seconds=kind.visible_from)
            end = slot_start(gop) + timedelta(seconds=kind.visible_to)
            if start <= now < end:
                out.append(MotionEvent(camera.id, kind.name, gop, start, end, event_bbox(camera, kind, self.seed)))
        return out

    def _footage_events(self, camera: Camera, start: datetime, end: datetime) -> list[MotionEvent]:
        """A footage camera's reference events in [start, end), cut to what is on disk (a clip
        that moves all the time holds one endless event: it ends where the recordings do)."""
        assert camera.footage is not None
        first, last = self.coverage()
        lo, hi = first * GOP_SECONDS, last * GOP_SECONDS
        return [
            MotionEvent(
                camera.id,
                "footage",
                int(max(s, lo) // GOP_SECONDS),
                datetime.fromtimestamp(max(s, lo), UTC),
                datetime.fromtimestamp(min(e, hi), UTC),
                (0.0, 0.0, 1.0, 1.0),
            )
            for s, e in camera.footage.events(start.timestamp(), end.timestamp())
            if e > lo and s < hi
        ]

    # --- what plays in each slot ----------------------------------------------------
    def play(self, camera: Camera, slot: int) -> SlotPlay | None:
        """The library variant recorded in `slot`, or None where nothing was recorded."""
        first, last = self.coverage()
        if not first <= slot < last or not camera.records:
            return None
        if camera.footage is not None:
            return SlotPlay(slot, camera.footage.variant(slot))
        gops_per_cell = CELL_SECONDS // GOP_SECONDS
        cell = slot // gops_per_cell
        # An event's roll may reach into the neighbouring cells: check them too.
        for near in (cell, cell - 1, cell + 1):
            found = self._event_in_cell(camera, near)
            if found is None:
                continue
            kind, gop = found
            if gop <= slot < gop + kind.gops:
                return SlotPlay(slot, f"{kind.name}{slot - gop}")
            if not camera.continuous and gop - ROLL_GOPS <= slot < gop + kind.gops + ROLL_GOPS:
                return SlotPlay(slot, "still")
        return SlotPlay(slot, "still") if camera.continuous else None

    def plays(self, camera: Camera, start: datetime, end: datetime) -> Iterator[SlotPlay]:
        """Recorded GOPs covering [start, end): snapped out to GOP boundaries, like an NVR export."""
        for slot in range(slot_of(start), slot_of(end - timedelta(microseconds=1)) + 1):
            played = self.play(camera, slot)
            if played is not None:
                yield played

    def clips(self, camera: Camera, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Recorded ranges (contiguous GOP runs) within [start, end), clipped to the request."""
        if camera.continuous and camera.records:
            # Every covered slot plays: one range, found without visiting each slot (the
            # planner searches two days and more per camera; slot by slot took 0.3 s a day).
            first, last = self.coverage()
            a, b = max(first, slot_of(start)), min(last, slot_of(end - timedelta(microseconds=1)) + 1)
            return [(max(slot_start(a), start), min(slot_start(b), end))] if a < b else []
        ranges: list[tuple[int, int]] = []
        for played in self.plays(camera, start, end):
            if ranges and ranges[-1][1] == played.slot:
                ranges[-1] = (ranges[-1][0], played.slot + 1)
            else:
                ranges.append((played.slot, played.slot + 1))
        return [(max(slot_start(a), start), min(slot_start(b), end)) for a, b in ranges]


def unrecorded_variant(camera: Camera, slot: int) -> str:
    """What live view shows in a slot nothing was recorded in: the empty scene, or the clip."""
    return camera.footage.variant(slot) if camera.footage is not None else "still"


def variants() -> list[str]:
    """Every library variant a camera needs."""
    return ["still"] + [f"{k.name}{i}" for k in EVENT_KINDS for i in range(k.gops)]
