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

from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import json_answer
from ev_ingest.simulator.config import SimulatorConfig
from ev_ingest.simulator.faults import FaultInjector, FaultSpec
from ev_ingest.simulator.routes import export as export_routes
from ev_ingest.simulator.routes import records as records_routes
from ev_ingest.simulator.routes import search as search_routes
from ev_ingest.simulator.routes import session as session_routes
from ev_ingest.simulator.routes import sim as sim_routes
from ev_ingest.simulator.routes import video as video_routes
from ev_ingest.simulator.state import ApiError, SessionInvalid, SimulatorState

LOGIN_PAGE = (
    "<html><head><title>exacqVision Web Service</title></head><body><form action='login.web'></form></body></html>"
)
# Paths no public client or seed text shows: the strict profile answers them 404.
GUESSED_PATHS = ("/search.web/metadata", "/system.web")


def build_app(config: SimulatorConfig) -> Starlette:
    """The app: every area's handlers (`ev_ingest.simulator.routes`) on their paths, each
    answering with and without `/v1`, behind the fault injector and the server's clock."""
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
                return json_answer({"success": False, "error": "invalid session"})
            except ApiError as exc:
                if strict and exc.status == 400:
                    return PlainTextResponse("Invalid Request", status_code=400)  # the seed's 400
                return json_answer({"success": False, "error": exc.message}, exc.status)

        return endpoint

    session = session_routes.make(state)
    records = records_routes.make(state)
    search = search_routes.make(state)
    video = video_routes.make(state)
    export = export_routes.make(state)
    sim = sim_routes.make(state, lambda: injector)

    routes: list[Route] = []

    def add(path: str, handler: Any, methods: list[str], **kw: Any) -> None:
        endpoint = api(handler, **kw)
        routes.extend([Route(path, endpoint, methods=methods), Route("/v1" + path, endpoint, methods=methods)])

    add("/login.web", session.login, ["GET", "POST"], needs_session=False)
    add("/logout.web", session.logout, ["GET", "POST"], needs_session=False)
    add("/system.web", session.system_info, ["GET"])
    add("/config.web", records.cameras, ["GET"])
    add("/search.web", search.search, ["GET"])
    add("/search.web/status", search.search_status, ["GET"], needs_session=False)
    add("/search.web/metadata", search.metadata_search, ["GET"])
    add("/search.web/thumbnails", search.thumbnail_search, ["GET"])
    add("/search.web/frame", search.frame_at_time, ["GET"], binary=True)
    add("/frame.web", search.recorded_frame, ["GET"], binary=True)
    add("/timestamp.web", search.timestamp, ["GET"], needs_session=False)
    add("/playspeed.web", search.playspeed, ["GET"], needs_session=False)
    add("/playspeed.web/{speed:str}", search.playspeed, ["GET", "POST"], needs_session=False)
    add("/step.web", search.step, ["GET"], needs_session=False)
    add("/step.web/{steps:str}", search.step, ["GET", "POST"], needs_session=False)
    add("/video.web", video.video, ["GET"], needs_session=False, binary=True)
    add("/video.web/thumbnail", video.thumbnail_preview, ["GET"], binary=True)
    add("/export.web", export.export, ["GET"], needs_session=False, binary=True)
    add("/events.web", records.events, ["GET"])
    add("/status.web", records.status, ["GET"])
    add(
        "/bookmarks.web",
        records.crud(
            state.bookmarks, "bookmark", ("name", "description", "start", "end", "case", "itemType", "itemId")
        ),
        ["GET", "POST", "PUT", "DELETE"],
    )
    add("/cases.web", records.crud(state.cases, "case", ("name", "description")), ["GET", "POST", "PUT", "DELETE"])
    if strict:
        routes[:] = [r for r in routes if r.path.removeprefix("/v1") not in GUESSED_PATHS]
    routes.append(Route("/_sim/truth", sim.truth, methods=["GET"]))
    routes.append(Route("/_sim/stats", sim.sim_stats, methods=["GET"]))
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
