"""Login, logout and the system information: `login.web`, `logout.web`, `system.web`."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from starlette.requests import Request
from starlette.responses import (
    RedirectResponse,
    Response,
)

from ev_ingest.simulator.answers import (
    json_answer,
    server_object,
)
from ev_ingest.simulator.state import SimulatorState

log = logging.getLogger(__name__)


def make(state: SimulatorState) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""
    config = state.config
    strict = config.profile == "strict"

    async def login(request: Request) -> Response:
        form = dict(await request.form()) if request.method == "POST" else {}
        params = {**request.query_params, **form}
        if "u" not in params:
            if request.method == "GET":
                return json_answer({"list": [server_object(state)], "CSRF": True})
            return json_answer({"success": False, "error": "missing credentials"})
        session = state.login(str(params.get("u", "")), str(params.get("p", "")))
        if session is None:
            log.info("login refused for user %r", params.get("u"))
            return json_answer({"success": False})
        if strict:  # what the public clients read, nothing more
            return json_answer({"success": True, "sessionId": session.id, "group": server_object(state)["group"]})
        return json_answer({"success": True, "sessionId": session.id, **server_object(state)})

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
        return json_answer(
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

    return SimpleNamespace(login=login, logout=logout, system_info=system_info)
