"""The simulator's HTTP surface: an exacqVision Web Service look-alike as a Starlette app.

Every route answers with and without the `/v1` prefix. Requests and answers follow
`shared/DESIGN.md` (confirmed by production clients) and the seed documentation; the
paths the seed lost and no public client shows are our documented best guesses, kept
in one table (`ev_ingest.client.paths`) that the README lists.

State (sessions, searches, exports, bookmarks, cases) lives in memory; video comes
from `scene` + `library` + `exports` and is a pure function of the seed and time.
`/_sim/truth` and `/_sim/stats` sit outside the exacqVision API, for tests and demos.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from ev_ingest.simulator import scene
from ev_ingest.simulator.config import SimulatorConfig
from ev_ingest.simulator.exports import EXTENSIONS, FORMATS, ExportLayout
from ev_ingest.simulator.faults import FaultInjector, FaultSpec
from ev_ingest.simulator.library import CameraLibrary, jpeg, load_camera_library

log = logging.getLogger(__name__)

LOGIN_PAGE = (
    "<html><head><title>exacqVision Web Service</title></head><body><form action='login.web'></form></body></html>"
)
EVENT_TYPE_MOTION = 1


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
        )
        self.users = config.user_table()
        self.sessions: dict[str, Session] = {}
        self.issued: list[str] = []  # every session id ever handed out: tests look for leaks
        self.searches: dict[str, Search] = {}
        self.exports: dict[str, Export] = {}
        self.peak_exports = 0  # most exports open at once: what a pool must bound
        self.exports_created = 0
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


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def _clip_json(clips: list[tuple[datetime, datetime]]) -> list[dict[str, str]]:
    return [{"startTime": scene.iso_z(a), "endTime": scene.iso_z(b)} for a, b in clips]


def _jpeg(
    state: SimulatorState, request: Request, camera: scene.Camera, moment: datetime, recorded_only: bool
) -> Response:
    slot = scene.slot_of(moment)
    played = state.site.play(camera, slot)
    if played is None:
        if recorded_only:
            raise ApiError(404, f"no video recorded at {scene.iso_z(moment)}")
        variant = "still"
    else:
        variant = played.variant
    frame = int((moment.timestamp() - slot * scene.GOP_SECONDS) * camera.fps) % camera.gop_frames
    q = request.query_params

    def number(name: str) -> int | None:
        value = q.get(name)
        try:
            return int(value) if value else None
        except ValueError:
            raise ApiError(400, f"parameter {name!r} must be an integer") from None

    data = jpeg(camera, state.config.seed, variant, frame, number("w"), number("h"), number("q") or 7)
    headers = {}
    if q.get("download"):
        headers["Content-Disposition"] = content_disposition(q["download"])
    return Response(data, media_type="image/jpeg", headers=headers)


# Paths no public client or seed text shows: the strict profile answers them 404.
GUESSED_PATHS = ("/search.web/metadata", "/system.web")
# Formats per camera in the strict profile (cycled): a 23.09 camera lists [4, 6] (no
# native stream this client knows), others H.264 and H.265 beside JPEG.
STRICT_FORMATS = ([0, 5, 6], [4, 6], [5, 6, 7])


def camera_formats(state: SimulatorState, camera: scene.Camera) -> list[int]:
    if state.config.profile != "strict":
        return [0, 5, 6]
    return STRICT_FORMATS[state.site.camera_list.index(camera) % len(STRICT_FORMATS)]


def build_app(config: SimulatorConfig) -> Starlette:
    state = SimulatorState(config)
    strict = config.profile == "strict"

    def api(handler: Any, *, needs_session: bool = True, binary: bool = False) -> Any:
        async def endpoint(request: Request) -> Response:
            state.prune()
            try:
                if needs_session:
                    request.state.session = state.session(request)
                return await handler(request)
            except SessionInvalid:
                if binary:
                    return HTMLResponse(LOGIN_PAGE, status_code=401)
                return _json({"success": False, "error": "invalid session"})
            except ApiError as exc:
                if strict and exc.status == 400:
                    return PlainTextResponse("Invalid Request", status_code=400)  # the seed's 400
                return _json({"success": False, "error": exc.message}, exc.status)

        return endpoint

    # --- login, servers, system -------------------------------------------------------
    async def login(request: Request) -> Response:
        form = dict(await request.form()) if request.method == "POST" else {}
        params = {**request.query_params, **form}
        if "u" not in params:
            if request.method == "GET":
                return _json({"list": [server_object(state)], "CSRF": True})
            return _json({"success": False, "error": "missing credentials"})
        session = state.login(str(params.get("u", "")), str(params.get("p", "")))
        if session is None:
            log.info("login refused for user %r", params.get("u"))
            return _json({"success": False})
        if strict:  # what the public clients read, nothing more
            return _json({"success": True, "sessionId": session.id, "group": server_object(state)["group"]})
        return _json({"success": True, "sessionId": session.id, **server_object(state)})

    async def logout(request: Request) -> Response:
        q = request.query_params
        search_id = q.get("search_id")
        if search_id:  # closing a search answers like a logout: 302 to the login page (seed)
            state.searches.pop(search_id, None)
            return RedirectResponse("login.web", status_code=302)
        form = dict(await request.form()) if request.method == "POST" else {}
        state.sessions.pop(str(q.get("s") or form.get("s") or ""), None)
        return RedirectResponse("login.web", status_code=302)

    async def system_info(request: Request) -> Response:
        return _json(
            {
                "success": True,
                "bios": "ev-ingest simulator",
                "modelNumber": "SIM-1",
                "motherboard": "virtual",
                "os": "Linux",
                "processor": "virtual",
                "serialNumber": config.serial,
                "systemName": config.server_name,
                "totalMemory": 8192,
                "utf8Enabled": True,
                "version": config.version,
            }
        )

    # --- cameras --------------------------------------------------------------------
    async def cameras(request: Request) -> Response:
        q = request.query_params
        if q.get("camera"):
            return _json({"success": True, "camera": camera_object(state, state.camera(q["camera"]))})
        if q.get("output") != "json":
            rows = "".join(f"<tr><td>{c.id}</td><td>{c.name}</td></tr>" for c in state.site.camera_list)
            return HTMLResponse(f"<html><body><table>{rows}</table></body></html>")
        return _json(
            {
                "name": config.server_name,
                "timezone": config.timezone_hours,
                "restricted": False,
                "Cameras": [camera_object(state, c) for c in state.site.camera_list],
            }
        )

    # --- search ---------------------------------------------------------------------
    async def search(request: Request) -> Response:
        camera = state.camera(request.query_params.get("camera"))
        start, end = state.interval(request)
        clips = state.site.clips(camera, start, end)
        if not clips:
            # What a real server answers for a window with no footage (ExacqMan 8746a95):
            # success, no search id, no videoInfo; the full profile keeps an empty list.
            return _json({"success": True} if strict else {"frames": 0, "videoInfo": []})
        frames = int(sum((b - a).total_seconds() for a, b in clips) * camera.fps)
        found = Search(state.new_id(), camera, start, end, frames, clips[0][0])
        found.speed = 0 if request.query_params.get("start_paused") in ("1", "true") else 100
        state.searches[found.id] = found
        return _json(
            {
                "search_id": found.id,
                "frames": frames,
                "start_time": scene.iso_z(clips[0][0]),
                "end_time": scene.iso_z(clips[-1][1]),
                "frameCounts": {str(camera.id): frames},
                "videoInfo": [{"clips": _clip_json(clips), **({} if strict else {"camera": camera.id})}],
                "audioInfo": [],
            }
        )

    def find_search(request: Request, key: str = "search_id") -> Search:
        found = state.searches.get(request.query_params.get(key) or "")
        if found is None:
            raise ApiError(404, "unknown search")
        found.last_seen = time.monotonic()
        return found

    async def search_status(request: Request) -> Response:
        found = find_search(request, "s")
        return _json(
            {
                "success": True,
                "status": {"search_id": found.id, "progress": 100, "frames": found.frames, "state": "complete"},
            }
        )

    async def timestamp(request: Request) -> Response:
        found = find_search(request)
        return _json(
            {
                "time": scene.iso_z(found.reference.replace(microsecond=0)),
                "timeWithMs": scene.iso_z(found.reference)
                if found.reference.microsecond
                else scene.iso_z(found.reference)[:-1] + ".000Z",
            }
        )

    async def playspeed(request: Request) -> Response:
        found = find_search(request)
        speed = request.path_params.get("speed")
        if speed is not None:
            if not -12800 <= int(speed) <= 12800:
                raise ApiError(400, "speed must be within -12800..12800")
            found.speed = int(speed)
            return Response(b"null", media_type="application/json")
        return _json({"speed": str(found.speed)})

    async def step(request: Request) -> Response:
        found = find_search(request)
        steps = int(request.path_params.get("steps", "1"))
        found.reference = min(
            max(found.reference + timedelta(seconds=steps / found.camera.fps), found.start), found.end
        )
        frame = int((found.reference - found.start).total_seconds() * found.camera.fps)
        return _json({"frame": str(frame)})

    async def metadata_search(request: Request) -> Response:
        q = request.query_params
        start, end = state.interval(request)
        ids = q.getlist("camera") or [str(c.id) for c in state.site.camera_list]
        cameras_out = {}
        for value in ids:
            camera = state.camera(value)
            cameras_out[str(camera.id)] = {"clips": _clip_json(state.site.clips(camera, start, end))}
        return _json({"sessionId": state.new_id(), "success": True, "cameras": cameras_out, "audio": {}})

    async def thumbnail_search(request: Request) -> Response:
        q = request.query_params
        camera = state.camera(q.get("camera"))
        start, end = state.interval(request)
        try:
            interval = int(q.get("interval") or 0)
        except ValueError:
            raise ApiError(400, "interval must be an integer number of seconds") from None
        if interval <= 0:
            raise ApiError(400, "interval must be a positive number of seconds")
        stamps: list[datetime] = []
        moment = start
        while moment < end and len(stamps) < 10_000:
            clips = state.site.clips(camera, moment, min(moment + timedelta(seconds=interval), end))
            if clips:
                stamps.append(clips[0][0])
            moment += timedelta(seconds=interval)
        if q.get("frame") is not None:
            try:
                return _jpeg(state, request, camera, stamps[int(q["frame"])], recorded_only=True)
            except (IndexError, ValueError):
                raise ApiError(404, f"no thumbnail {q['frame']!r} in this search") from None
        return _json(
            {
                "success": True,
                "session_id": state.new_id(),
                "frames": len(stamps),
                "frames_timestamps": [int(s.timestamp()) for s in stamps],
                "start": int(start.timestamp()),
                "end": int(end.timestamp()),
            }
        )

    async def frame_at_time(request: Request) -> Response:
        find_search(request)
        q = request.query_params
        return _jpeg(state, request, state.camera(q.get("camera")), parse_time(q.get("time"), "time"), True)

    async def recorded_frame(request: Request) -> Response:
        q = request.query_params
        if q.get("format", "6") not in ("0", "6"):
            raise ApiError(400, "format must be 0 or 6 (an independent JPEG frame)")
        return _jpeg(state, request, state.camera(q.get("camera")), parse_time(q.get("time"), "time"), True)

    # --- video ----------------------------------------------------------------------
    async def video(request: Request) -> Response:
        q = request.query_params
        search_found = state.searches.get(q.get("s", "")) or state.searches.get(q.get("search_id", ""))
        if search_found is None:
            state.session(request)
        camera = state.camera(q.get("camera"))
        moment = state.site.current_time() if search_found is None else search_found.reference
        fmt = q.get("format") or ("6" if q.get("fmt", "jpg") in ("jpg", "jpeg") else "5")
        if not fmt.isdigit() or int(fmt) not in camera_formats(state, camera):
            formats = ", ".join(map(str, camera_formats(state, camera)))
            raise ApiError(400, f"format {fmt} is not available on camera {camera.id} (formats {formats})")
        if fmt in ("0", "6"):
            if search_found is not None:
                search_found.reference += timedelta(seconds=search_found.speed / 100 / camera.fps)
            return _jpeg(state, request, camera, moment, recorded_only=False)
        if fmt != "5":
            raise ApiError(400, f"format {fmt} is listed but not simulated (only H.264, 5, is)")
        if q.get("multipart_encode") not in ("1", "true"):
            raise ApiError(400, "the native stream is served with multipart_encode=1")
        return StreamingResponse(
            native_stream(state, camera, moment, q.get("iframes") in ("1", "true"), search_found is not None),
            media_type="multipart/x-mixed-replace; boundary=evframe",
        )

    async def thumbnail_preview(request: Request) -> Response:
        q = request.query_params
        camera = state.camera(q.get("camera"))
        widths = {"0": 80, "1": 128, "2": 200}
        if q.get("size", "0") not in widths:
            raise ApiError(400, "size must be 0, 1 or 2 (80, 128 or 200 px)")
        played = state.site.play(camera, scene.slot_of(state.site.current_time()))
        data = jpeg(camera, config.seed, played.variant if played else "still", 0, widths[q.get("size", "0")], None, 7)
        return Response(data, media_type="image/jpeg")

    # --- export ---------------------------------------------------------------------
    async def export(request: Request) -> Response:
        q = request.query_params
        export_id = q.get("export")
        if export_id:
            found = state.exports.get(export_id)
            if found is None:
                raise ApiError(404, f"unknown export {export_id!r}")
            found.last_seen = time.monotonic()
            action = q.get("action")
            if action == "finish":
                del state.exports[export_id]
                return Response(b"null", media_type="application/json")
            progress = export_progress(state, found)
            if action == "download":
                if progress < 100:
                    raise ApiError(409, f"export {export_id} is not complete ({progress}%)")
                return download_response(found, request, state.config.download_rate)
            if action:
                raise ApiError(400, f"unknown action {action!r}")
            return _json({"success": True, "progress": progress})
        if not q.get("camera"):
            return _json(
                {
                    "success": True,
                    "formats": [{"name": k, "description": v} for k, v in FORMATS.items()],
                    "default": "ps_zip",
                }
            )
        state.session(request)
        camera = state.camera(q["camera"])
        start, end = state.interval(request)
        fmt = q.get("format") or "ps_zip"
        if fmt not in FORMATS:
            raise ApiError(400, f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
        plays = tuple(state.site.plays(camera, start, end))
        if not plays:
            raise ApiError(404, "no video recorded in the requested range")
        if state.config.short_exports:  # a server whose export stops before what it recorded
            plays = plays[: max(1, int(len(plays) * (1 - state.config.short_exports)))]
        library = await asyncio.to_thread(state.library, camera)
        layout = ExportLayout(library, plays, scene.slot_start(plays[0].slot), fmt)
        name = q.get("name") or "Export"
        found = Export(
            str(uuid.uuid4()),
            layout,
            f"{name}.{EXTENSIONS[fmt]}",
            time.monotonic(),
            len(plays) * scene.GOP_SECONDS,
            time.monotonic(),
        )
        state.exports[found.id] = found
        state.exports_created += 1
        state.peak_exports = max(state.peak_exports, len(state.exports))
        return _json({"success": True, "export_id": found.id})

    # --- events, status, bookmarks, cases ---------------------------------------------
    async def events(request: Request) -> Response:
        wanted = {int(v) for v in request.query_params.getlist("filter") if v.isdigit()}
        now = state.site.current_time()
        motion = not wanted or EVENT_TYPE_MOTION in wanted
        active = [
            {
                "type": EVENT_TYPE_MOTION,
                "typeName": "Video motion",
                "source": camera.id,
                "sourceName": camera.name,
                "start": scene.iso_z(event.start),
            }
            for camera in (state.site.camera_list if motion else [])
            for event in state.site.under_way(camera, now)
        ]
        return _json({"success": True, "events": active})

    async def status(request: Request) -> Response:
        now = state.site.current_time()
        ids = request.query_params.getlist("camera")
        chosen = [state.camera(v) for v in ids] if ids else state.site.camera_list
        rows = []
        for camera in chosen:
            moving = any(e.start <= now < e.end for e in state.site.events(camera, now - timedelta(seconds=10), now))
            recording = state.site.play(camera, scene.slot_of(now) - 1) is not None
            if ids or moving:
                rows.append({"id": camera.id, "motion": moving, "videoLoss": False, "recording": recording})
        return _json({"success": True, "camera": rows, "trigger": [], "map": []})

    def crud(store: dict[str, dict[str, Any]], singular: str, fields: tuple[str, ...]) -> Any:
        async def handler(request: Request) -> Response:
            q = request.query_params
            if request.method == "GET":
                listed = list(store.values())
                if singular == "bookmark" and state.config.unlisted_case_bookmarks:
                    listed = [b for b in listed if not b.get("case")]  # as some real servers answer
                return _json({"success": True, f"{singular}s": listed})
            if request.method == "POST":
                if not q.get("name"):
                    raise ApiError(400, "missing parameter 'name'")
                item = {"guid": str(uuid.uuid4()), **{k: q[k] for k in fields if k in q}}
                if singular == "bookmark":
                    if q.get("itemServer"):
                        # Simulator-only: a bookmark whose item is a camera of another server of
                        # the site, listed only as a server-qualified item (the shape is a GUESS).
                        item.pop("itemType", None)
                        item.pop("itemId", None)
                        item["items"] = [{"type": 0, "id": int(q.get("itemId", "0")), "server": q["itemServer"]}]
                    else:
                        if q.get("itemType", "0") == "0":
                            state.camera(q.get("itemId"))  # a camera bookmark must name a known camera
                        item["itemType"] = int(q.get("itemType", "0"))
                        item["itemId"] = int(q.get("itemId", "0"))
                    item["start"] = scene.iso_z(parse_time(q.get("start"), "start"))
                    item["end"] = scene.iso_z(parse_time(q.get("end"), "end"))
                    if q.get("case") and q["case"] not in state.cases:
                        raise ApiError(404, f"unknown case {q['case']!r}")
                item["created"] = scene.iso_z(state.site.current_time())
                store[item["guid"]] = item
                return _json({"success": True, singular: item})
            guid = q.get("guid") or ""
            if guid not in store:
                raise ApiError(404, f"unknown {singular} {guid!r}")
            if request.method == "DELETE":
                del store[guid]
                return Response(b"null", media_type="application/json")
            for key in fields:
                if key in q:
                    store[guid][key] = scene.iso_z(parse_time(q[key], key)) if key in ("start", "end") else q[key]
            return _json({"success": True, singular: store[guid]})

        return handler

    # --- simulator-only ---------------------------------------------------------------
    async def truth(request: Request) -> Response:
        q = request.query_params
        try:
            start, end = state.interval(request)
            cameras_wanted = [state.camera(v) for v in q.getlist("camera")] or state.site.camera_list
        except ApiError as exc:
            return _json({"success": False, "error": exc.message}, exc.status)
        events_out = [e.as_json() for c in cameras_wanted for e in state.site.events(c, start, end)]
        return _json({"events": events_out, "gop_seconds": scene.GOP_SECONDS})

    async def sim_stats(request: Request) -> Response:
        return _json(
            {
                **injector.stats.as_json(),
                "exports": len(state.exports),
                "peak_exports": state.peak_exports,
                "exports_created": state.exports_created,
                "sessions": len(state.sessions),
            }
        )

    routes: list[Route] = []

    def add(path: str, handler: Any, methods: list[str], **kw: Any) -> None:
        endpoint = api(handler, **kw)
        routes.extend([Route(path, endpoint, methods=methods), Route("/v1" + path, endpoint, methods=methods)])

    add("/login.web", login, ["GET", "POST"], needs_session=False)
    add("/logout.web", logout, ["GET", "POST"], needs_session=False)
    add("/system.web", system_info, ["GET"])
    add("/config.web", cameras, ["GET"])
    add("/search.web", search, ["GET"])
    add("/search.web/status", search_status, ["GET"], needs_session=False)
    add("/search.web/metadata", metadata_search, ["GET"])
    add("/search.web/thumbnails", thumbnail_search, ["GET"])
    add("/search.web/frame", frame_at_time, ["GET"], binary=True)
    add("/frame.web", recorded_frame, ["GET"], binary=True)
    add("/timestamp.web", timestamp, ["GET"], needs_session=False)
    add("/playspeed.web", playspeed, ["GET"], needs_session=False)
    add("/playspeed.web/{speed:str}", playspeed, ["GET", "POST"], needs_session=False)
    add("/step.web", step, ["GET"], needs_session=False)
    add("/step.web/{steps:str}", step, ["GET", "POST"], needs_session=False)
    add("/video.web", video, ["GET"], needs_session=False, binary=True)
    add("/video.web/thumbnail", thumbnail_preview, ["GET"], binary=True)
    add("/export.web", export, ["GET"], needs_session=False, binary=True)
    add("/events.web", events, ["GET"])
    add("/status.web", status, ["GET"])
    add(
        "/bookmarks.web",
        crud(state.bookmarks, "bookmark", ("name", "description", "start", "end", "case", "itemType", "itemId")),
        ["GET", "POST", "PUT", "DELETE"],
    )
    add("/cases.web", crud(state.cases, "case", ("name", "description")), ["GET", "POST", "PUT", "DELETE"])
    if strict:
        routes[:] = [r for r in routes if r.path.removeprefix("/v1") not in GUESSED_PATHS]
    routes.append(Route("/_sim/truth", truth, methods=["GET"]))
    routes.append(Route("/_sim/stats", sim_stats, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.sim = state
    injector = FaultInjector(app, FaultSpec.parse(config.faults), config.seed, state.expire, state.session_used)
    clock = ServerClock(injector, state.site)
    clock.state = state  # type: ignore[attr-defined]
    return clock  # type: ignore[return-value]


class ServerClock:
    """Stamps every answer with the server's own clock (`Date`, which `clock_offset_s` can
    skew), as a web server in front of the real service does: the client measures skew by it."""

    def __init__(self, app: Any, site: scene.Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: dict) -> None:
            if message["type"] == "http.response.start":
                date = formatdate(self.site.current_time().timestamp(), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", date)]}
            await send(message)

        await self.app(scope, receive, stamped)


def server_object(state: SimulatorState) -> dict[str, Any]:
    config = state.config
    first, last = state.site.coverage()
    return {
        "id": "0",
        "name": config.server_name,
        "address": "127.0.0.1",
        "port": 22609,
        "serial": config.serial,
        "version": config.version,
        "model": "ev-ingest simulator",
        "login": True,
        "canAutoLogin": False,
        "restricted": False,
        "daysRecordedVideo": round((last - first) * scene.GOP_SECONDS / 86400),
        "managedFeatures": [],
        "licenseInfo": {"licenseType": -1, "expired": False},
        "user_permissions": {k: True for k in ("live", "search", "export_video", "search_cases", "search_cameras")},
        "admin_access_permissions": {"cases": True, "users": False, "views": False},
        "group": {"cameras": [c.id for c in state.site.camera_list], "role": 3, "name": "", "managed": False},
    }


def camera_object(state: SimulatorState, camera: scene.Camera) -> dict[str, Any]:
    return {
        "id": camera.id,
        "name": camera.name,
        "state": 0,
        "disabled": 0,
        "resolution": {"width": camera.width, "height": camera.height},
        "frameRate": camera.fps,
        "formats": camera_formats(state, camera),
        **({} if state.config.profile == "strict" else {"recording": "continuous" if camera.continuous else "motion"}),
    }


def export_progress(state: SimulatorState, found: Export) -> int:
    elapsed = time.monotonic() - found.created
    needed = found.duration_s / state.config.export_rate
    return 100 if elapsed >= needed else int(100 * elapsed / needed)


def content_disposition(name: str) -> str:
    """`attachment; filename=...`; names a header cannot carry as-is go percent-encoded (RFC 6266)."""
    if name.isprintable() and name.isascii() and '"' not in name and "\\" not in name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def download_response(found: Export, request: Request, rate: float = 0.0) -> Response:
    """The export's bytes (from a `Range` offset), paced to `rate` bytes/s when set (a slow link)."""
    size = found.layout.size()
    headers = {
        "Content-Disposition": content_disposition(found.name),
        "Content-Length": str(size),
        "Accept-Ranges": "bytes",
    }
    media = "video/mp4" if found.layout.format == "mp4" else "application/zip"
    skip = 0
    ranged = request.headers.get("range", "")
    if ranged.startswith("bytes=") and ranged.endswith("-") and ranged[6:-1].isdigit():
        skip = int(ranged[6:-1])
        if skip >= size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Length"] = str(size - skip)
        headers["Content-Range"] = f"bytes {skip}-{size - 1}/{size}"

    def body() -> Any:
        remaining = skip
        pending = bytearray()
        began, sent = time.monotonic(), 0
        for chunk in found.layout.chunks():
            if remaining >= len(chunk):
                remaining -= len(chunk)
                continue
            pending += chunk[remaining:] if remaining else chunk
            remaining = 0
            # Coalesce small fragments: fewer, larger writes are what makes loopback fast.
            if len(pending) >= 1 << 20:
                yield bytes(pending)
                sent += len(pending)
                pending.clear()
                if rate:  # a sync generator runs in a worker thread: sleeping blocks no one else
                    time.sleep(max(0.0, sent / rate - (time.monotonic() - began)))
        if pending:
            yield bytes(pending)

    return StreamingResponse(body(), status_code=206 if skip else 200, headers=headers, media_type=media)


async def native_stream(
    state: SimulatorState, camera: scene.Camera, start: datetime, iframes: bool, playback: bool
) -> Any:
    """The camera's native H.264 as multipart chunks with the seed's per-frame headers."""
    library = await asyncio.to_thread(state.library, camera)
    slot = scene.slot_of(start)
    origin = time.monotonic()
    sent = 0
    while True:
        played = state.site.play(camera, slot) or scene.SlotPlay(slot, "still")
        for payload, key in library.gops[played.variant].packets:
            if iframes and not key:
                continue
            offset_ms = int(sent * 1000 / camera.fps) if not iframes else sent * scene.GOP_SECONDS * 1000
            header = f"--evframe\r\nContent-Type: video/h264\r\nDataLen: {len(payload)}\r\n"
            if key:
                header += "Iframe: 1\r\n"
            if playback:
                header += f"Frame: {sent}\r\nTimeOffset: {offset_ms}\r\n"
            yield header.encode() + b"\r\n" + payload + b"\r\n"
            sent += 1
            # Pace like a camera: frames leave at the frame rate (I-frames at the GOP rate).
            due = origin + offset_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        slot += 1
