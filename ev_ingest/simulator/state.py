"""What the simulator remembers between requests (`SimulatorState`: sessions, searches,
exports, bookmarks, cases, camera libraries), and the errors a handler raises."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from ev_ingest.simulator import footage, scene
from ev_ingest.simulator.config import SimulatorConfig
from ev_ingest.simulator.exports import ExportLayout
from ev_ingest.simulator.library import CameraLibrary, load_camera_library

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SessionInvalid(Exception):
    """The request's session is unknown or expired: answered the way real servers answer."""


@dataclass
class Session:
    id: str
    user: str
    last_seen: float
    uses: int = 0  # requests it answered (the `bounce` fault spares a fresh session)


@dataclass
class Search:
    id: str
    camera: scene.Camera
    start: datetime
    end: datetime
    frames: int
    reference: datetime
    speed: int = 100
    last_seen: float = field(default_factory=time.monotonic)


@dataclass
class Export:
    id: str
    layout: ExportLayout
    name: str
    created: float
    duration_s: float
    last_seen: float


def parse_time(text: str | None, name: str) -> datetime:
    """An RFC 3339 time from a request; naive times are taken as UTC."""
    if not text:
        raise ApiError(400, f"missing parameter {name!r}")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, f"parameter {name!r} is not an RFC 3339 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SimulatorState:
    """Everything the simulator remembers between requests."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.site = scene.Site(
            seed=config.seed,
            cameras=config.cameras,
            idle_cameras=config.idle_cameras,
            width=config.width,
            height=config.height,
            fps=config.fps,
            timezone_hours=config.timezone_hours,
            retention_days=config.retention_days,
            now=config.frozen_now,
            clock_offset_s=config.clock_offset_s,
            footage=tuple(footage.load(config.footage, config.footage_cameras)) if config.footage else (),
        )
        self.users = config.user_table()
        self.sessions: dict[str, Session] = {}
        self.issued: list[str] = []  # every session id ever handed out: tests look for leaks
        self.searches: dict[str, Search] = {}
        self.exports: dict[str, Export] = {}
        self.peak_exports = 0  # most exports open at once: what a pool must bound
        self.exports_created = 0
        # Each export's name as it was created, and the names of the exports open then: a pool
        # that bounds open exports leaves no other name open (tests/test_scheduler.py).
        self.export_names: list[str] = []
        self.overlaps: list[tuple[str, list[str]]] = []
        self.bookmarks: dict[str, dict[str, Any]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        self.libraries: dict[int, CameraLibrary] = {}
        self._ids = itertools.count(0x257A8942)

    # --- sessions -------------------------------------------------------------------
    def login(self, user: str, password: str) -> Session | None:
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return None
        session = Session(str(uuid.uuid4()), user, time.monotonic())
        self.sessions[session.id] = session
        self.issued.append(session.id)
        return session

    def expire(self, session_id: str) -> bool:
        return self.sessions.pop(session_id, None) is not None

    def session(self, request: Request) -> Session:
        token = request.query_params.get("s") or request.cookies.get("token")
        auth = request.headers.get("authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        session = self.sessions.get(token or "")
        now = time.monotonic()
        if session is None or now - session.last_seen > self.config.session_idle_s:
            if session is not None:
                del self.sessions[session.id]
            raise SessionInvalid()
        session.last_seen = now
        session.uses += 1
        return session

    def session_used(self, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        return session is not None and session.uses > 0

    # --- helpers --------------------------------------------------------------------
    def camera(self, value: str | None) -> scene.Camera:
        if not value:
            raise ApiError(400, "missing parameter 'camera'")
        try:
            return self.site.camera(int(value))
        except (KeyError, ValueError):
            raise ApiError(404, f"unknown camera {value!r}") from None

    def interval(self, request: Request) -> tuple[datetime, datetime]:
        start = parse_time(request.query_params.get("start"), "start")
        end = parse_time(request.query_params.get("end"), "end")
        if end <= start:
            raise ApiError(400, "end must be after start")
        if end - start > timedelta(days=self.config.max_range_days):
            raise ApiError(400, f"time range longer than {self.config.max_range_days} days")
        return start, end

    def library(self, camera: scene.Camera) -> CameraLibrary:
        if camera.id not in self.libraries:
            self.libraries[camera.id] = load_camera_library(camera, self.config.seed)
        return self.libraries[camera.id]

    def prune(self) -> None:
        now = time.monotonic()
        for export_id in [k for k, e in self.exports.items() if now - e.last_seen > self.config.export_idle_s]:
            del self.exports[export_id]
        for search_id in [k for k, s in self.searches.items() if now - s.last_seen > self.config.session_idle_s]:
            del self.searches[search_id]

    def new_id(self) -> str:
        return hex(next(self._ids))
