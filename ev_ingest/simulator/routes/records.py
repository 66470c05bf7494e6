"""The server's records: cameras (`config.web`), events and status (`events.web`, `status.web`),
bookmarks and cases (`bookmarks.web`, `cases.web`: one CRUD handler each)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    Response,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import (
    camera_object,
    json_answer,
)
from ev_ingest.simulator.state import ApiError, SimulatorState, parse_time

log = logging.getLogger(__name__)


EVENT_TYPE_MOTION = 1


def make(state: SimulatorState) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""
    config = state.config

    async def cameras(request: Request) -> Response:
        q = request.query_params
        if q.get("camera"):
            return json_answer({"success": True, "camera": camera_object(state, state.camera(q["camera"]))})
        if q.get("output") != "json":
            rows = "".join(f"<tr><td>{c.id}</td><td>{c.name}</td></tr>" for c in state.site.camera_list)
            return HTMLResponse(f"<html><body><table>{rows}</table></body></html>")
        return json_answer(
            {
                "name": config.server_name,
                "timezone": config.timezone_hours,
                "restricted": False,
                "Cameras": [camera_object(state, c) for c in state.site.camera_list],
            }
        )

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
        return json_answer({"success": True, "events": active})

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
        return json_answer({"success": True, "camera": rows, "trigger": [], "map": []})

    def crud(store: dict[str, dict[str, Any]], singular: str, fields: tuple[str, ...]) -> Any:
        async def handler(request: Request) -> Response:
            q = request.query_params
            if request.method == "GET":
                listed = list(store.values())
                if singular == "bookmark" and state.config.unlisted_case_bookmarks:
                    listed = [b for b in listed if not b.get("case")]  # as some real servers answer
                return json_answer({"success": True, f"{singular}s": listed})
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
                return json_answer({"success": True, singular: item})
            guid = q.get("guid") or ""
            if guid not in store:
                raise ApiError(404, f"unknown {singular} {guid!r}")
            if request.method == "DELETE":
                del store[guid]
                return Response(b"null", media_type="application/json")
            for key in fields:
                if key in q:
                    store[guid][key] = scene.iso_z(parse_time(q[key], key)) if key in ("start", "end") else q[key]
            return json_answer({"success": True, singular: store[guid]})

        return handler

    return SimpleNamespace(cameras=cameras, events=events, status=status, crud=crud)
