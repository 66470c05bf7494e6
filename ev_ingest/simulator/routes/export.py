"""Exports: `export.web` (create, progress, download from a `Range` offset, finish)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    Response,
    StreamingResponse,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import (
    content_disposition,
    json_answer,
)
from ev_ingest.simulator.exports import EXTENSIONS, FORMATS, ExportLayout
from ev_ingest.simulator.state import ApiError, Export, SimulatorState

log = logging.getLogger(__name__)


def make(state: SimulatorState) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""

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
            return json_answer({"success": True, "progress": progress})
        if not q.get("camera"):
            return json_answer(
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
        if state.exports:
            state.overlaps.append((found.name, sorted(e.name for e in state.exports.values())))
        state.exports[found.id] = found
        state.export_names.append(found.name)
        state.exports_created += 1
        state.peak_exports = max(state.peak_exports, len(state.exports))
        return json_answer({"success": True, "export_id": found.id})

    return SimpleNamespace(export=export)


def export_progress(state: SimulatorState, found: Export) -> int:
    elapsed = time.monotonic() - found.created
    needed = found.duration_s / state.config.export_rate
    return 100 if elapsed >= needed else int(100 * elapsed / needed)


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
