"""Events area: active events (with the seed's event-type filter) and live status (status.web)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call
from ev_ingest.client.models import ActiveEvent, Status


class EventType(IntEnum):
    """Event types of the seed documentation's filter enumeration (a selection)."""

    VIDEO_MOTION = 1
    VIDEO_LOSS = 2
    INPUT_TRIGGER = 3
    DEVICE_FAILURE = 7
    STORAGE_ALARM = 11
    DEVICE_DISCONNECTED = 21
    SOFT_TRIGGER = 22
    ANALYTIC_RULE = 24


class _EventCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _active(types: list[int] | None) -> Call[list[ActiveEvent]]:
        return Call(
            "GET",
            paths.EVENTS,
            {"filter": [int(t) for t in types or []]},
            what="active events",
            parse=lambda b: [ActiveEvent.model_validate(e) for e in b.get("events", [])],
        )

    @staticmethod
    def _status(camera_ids: list[int] | None) -> Call[Status]:
        return Call(
            "GET",
            paths.STATUS,
            {"camera": [int(c) for c in camera_ids or []]},
            what="status",
            parse=Status.model_validate,
        )


class Events(_EventCalls):
    def active(self, types: list[int] | None = None) -> list[ActiveEvent]:
        """Events active now; `types` filters by EventType (all types when None)."""
        return self._client.call(self._active(types))

    def status(self, camera_ids: list[int] | None = None) -> Status:
        """Live status of the given cameras, or the server's items in important states."""
        return self._client.call(self._status(camera_ids))


class AsyncEvents(_EventCalls):
    async def active(self, types: list[int] | None = None) -> list[ActiveEvent]:
        return await self._client.call(self._active(types))

    async def status(self, camera_ids: list[int] | None = None) -> Status:
        return await self._client.call(self._status(camera_ids))
