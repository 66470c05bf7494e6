"""Live and played-back video: `video.web` (JPEG or the native H.264 stream) and its thumbnail."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    Response,
    StreamingResponse,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import (
    camera_formats,
    jpeg_answer,
)
from ev_ingest.simulator.library import jpeg
from ev_ingest.simulator.state import ApiError, SimulatorState

log = logging.getLogger(__name__)


def make(state: SimulatorState) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""
    config = state.config

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
            return jpeg_answer(state, request, camera, moment, recorded_only=False)
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
        slot = scene.slot_of(state.site.current_time())
        played = state.site.play(camera, slot)
        variant = played.variant if played else scene.unrecorded_variant(camera, slot)
        library = await asyncio.to_thread(state.library, camera) if camera.footage is not None else None
        data = jpeg(camera, config.seed, variant, 0, widths[q.get("size", "0")], None, 7, library)
        return Response(data, media_type="image/jpeg")

    return SimpleNamespace(video=video, thumbnail_preview=thumbnail_preview)


async def native_stream(
    state: SimulatorState, camera: scene.Camera, start: datetime, iframes: bool, playback: bool
) -> Any:
    """The camera's native H.264 as multipart chunks with the seed's per-frame headers."""
    library = await asyncio.to_thread(state.library, camera)
    slot = scene.slot_of(start)
    origin = time.monotonic()
    sent = 0
    while True:
        played = state.site.play(camera, slot) or scene.SlotPlay(slot, scene.unrecorded_variant(camera, slot))
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
