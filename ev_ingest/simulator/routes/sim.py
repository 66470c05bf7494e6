"""Outside the exacqVision API, for tests and demos: `/_sim/truth` (the scene's motion events)
and `/_sim/stats` (faults injected, exports and sessions open)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    Response,
)

from ev_ingest.simulator import scene
from ev_ingest.simulator.answers import (
    json_answer,
)
from ev_ingest.simulator.state import ApiError, SimulatorState

log = logging.getLogger(__name__)


def make(state: SimulatorState, faults: Any) -> SimpleNamespace:
    """The handlers, bound to the simulator's state."""

    async def truth(request: Request) -> Response:
        q = request.query_params
        try:
            start, end = state.interval(request)
            cameras_wanted = [state.camera(v) for v in q.getlist("camera")] or state.site.camera_list
        except ApiError as exc:
            return json_answer({"success": False, "error": exc.message}, exc.status)
        events_out = [e.as_json() for c in cameras_wanted for e in state.site.events(c, start, end)]
        return json_answer({"events": events_out, "gop_seconds": scene.GOP_SECONDS})

    async def sim_stats(request: Request) -> Response:
        return json_answer(
            {
                **faults().stats.as_json(),
                "exports": len(state.exports),
                "peak_exports": state.peak_exports,
                "exports_created": state.exports_created,
                "export_names": state.export_names,
                "overlaps": state.overlaps,
                "sessions": len(state.sessions),
            }
        )

    return SimpleNamespace(truth=truth, sim_stats=sim_stats)
