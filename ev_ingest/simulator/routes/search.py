"""Searches and what they play back: `search.web` (and its status, metadata, thumbnails and
frame), `frame.web`, `timestamp.web`, `playspeed.web`, `step.web`."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

from starlette.requests import Request
from starlette.responses import (
    Response,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import (
    jpeg_answer,
    json_answer,
)
from ev_ingest.simulator.state import ApiError, Search, SimulatorState, parse_time

log = logging.getLogger(__name__)


def _clip_json(clips: list[tuple[datetime, datetime]]) -> list[dict[str, str]]:
    return [{"startTime": scene.iso_z(a), "endTime": scene.iso_z(b)} for a, b in clips]


def make(state: SimulatorState) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""
    config = state.config
    strict = config.profile == "strict"

    async def search(request: Request) -> Response:
        camera = state.camera(request.query_params.get("camera"))
        start, end = state.interval(request)
        clips = state.site.clips(camera, start, end)
        if not clips:
            # What a real server answers for a window with no footage (ExacqMan 8746a95):
            # success, no search id, no videoInfo; the full profile keeps an empty list.
            return json_answer({"success": True} if strict else {"frames": 0, "videoInfo": []})
        frames = int(sum((b - a).total_seconds() for a, b in clips) * camera.fps)
        found = Search(state.new_id(), camera, start, end, frames, clips[0][0])
        found.speed = 0 if request.query_params.get("start_paused") in ("1", "true") else 100
        state.searches[found.id] = found
        return json_answer(
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
        return json_answer(
            {
                "success": True,
                "status": {"search_id": found.id, "progress": 100, "frames": found.frames, "state": "complete"},
            }
        )

    async def timestamp(request: Request) -> Response:
        found = find_search(request)
        return json_answer(
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
        return json_answer({"speed": str(found.speed)})

    async def step(request: Request) -> Response:
        found = find_search(request)
        steps = int(request.path_params.get("steps", "1"))
        found.reference = min(
            max(found.reference + timedelta(seconds=steps / found.camera.fps), found.start), found.end
        )
        frame = int((found.reference - found.start).total_seconds() * found.camera.fps)
        return json_answer({"frame": str(frame)})

    async def metadata_search(request: Request) -> Response:
        q = request.query_params
        start, end = state.interval(request)
        ids = q.getlist("camera") or [str(c.id) for c in state.site.camera_list]
        cameras_out = {}
        for value in ids:
            camera = state.camera(value)
            cameras_out[str(camera.id)] = {"clips": _clip_json(state.site.clips(camera, start, end))}
        return json_answer({"sessionId": state.new_id(), "success": True, "cameras": cameras_out, "audio": {}})

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
                return jpeg_answer(state, request, camera, stamps[int(q["frame"])], recorded_only=True)
            except (IndexError, ValueError):
                raise ApiError(404, f"no thumbnail {q['frame']!r} in this search") from None
        return json_answer(
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
        return jpeg_answer(state, request, state.camera(q.get("camera")), parse_time(q.get("time"), "time"), True)

    async def recorded_frame(request: Request) -> Response:
        q = request.query_params
        if q.get("format", "6") not in ("0", "6"):
            raise ApiError(400, "format must be 0 or 6 (an independent JPEG frame)")
        return jpeg_answer(state, request, state.camera(q.get("camera")), parse_time(q.get("time"), "time"), True)

    return SimpleNamespace(
        search=search,
        search_status=search_status,
        timestamp=timestamp,
        playspeed=playspeed,
        step=step,
        metadata_search=metadata_search,
        thumbnail_search=thumbnail_search,
        frame_at_time=frame_at_time,
        recorded_frame=recorded_frame,
    )
