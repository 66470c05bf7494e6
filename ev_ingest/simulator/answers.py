"""Answers several API areas share: JSON, a camera's JPEG, the server and camera objects,
the formats a camera lists (per profile), `Content-Disposition`."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    Response,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.library import jpeg
from ev_ingest.simulator.state import ApiError, SimulatorState

log = logging.getLogger(__name__)


def json_answer(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def jpeg_answer(
    state: SimulatorState, request: Request, camera: scene.Camera, moment: datetime, recorded_only: bool
) -> Response:
    slot = scene.slot_of(moment)
    played = state.site.play(camera, slot)
    if played is None:
        if recorded_only:
            raise ApiError(404, f"no video recorded at {scene.iso_z(moment)}")
        variant = scene.unrecorded_variant(camera, slot)
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

    library = state.library(camera) if camera.footage is not None else None
    data = jpeg(camera, state.config.seed, variant, frame, number("w"), number("h"), number("q") or 7, library)
    headers = {}
    if q.get("download"):
        headers["Content-Disposition"] = content_disposition(q["download"])
    return Response(data, media_type="image/jpeg", headers=headers)


# Formats per camera in the strict profile (cycled): a 23.09 camera lists [4, 6] (no
# native stream this client knows), others H.264 and H.265 beside JPEG.
STRICT_FORMATS = ([0, 5, 6], [4, 6], [5, 6, 7])


def camera_formats(state: SimulatorState, camera: scene.Camera) -> list[int]:
    if state.config.profile != "strict":
        return [0, 5, 6]
    return STRICT_FORMATS[state.site.camera_list.index(camera) % len(STRICT_FORMATS)]


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


def content_disposition(name: str) -> str:
    """`attachment; filename=...`; names a header cannot carry as-is go percent-encoded (RFC 6266)."""
    if name.isprintable() and name.isascii() and '"' not in name and "\\" not in name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"
