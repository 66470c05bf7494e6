"""`ExportProgressTrigger`: wait for an exacqVision export without holding a worker slot.

It polls the export's progress with the async client in the triggerer and fires one
typed event: complete, failed (the export vanished or stalled) or timeout. The trigger
holds the connection id, not a URL or credentials: inside the triggerer it builds its
client through `ExacqVisionHook` from the connection (the secrets backend), so its
serialized form in Airflow's database has no server address, TLS setting or password,
and a connection changed while an export waits is honoured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent
from pydantic import BaseModel

from ev_ingest.client import AsyncExacqClient, ExacqError, NotFoundError

CLASSPATH = "ev_ingest.airflow.triggers.ExportProgressTrigger"


class ExportProgressEvent(BaseModel):
    """The payload of the trigger's event."""

    status: Literal["complete", "failed", "timeout"]
    export_id: str
    progress: int = 0
    message: str = ""


class ExportProgressTrigger(BaseTrigger):
    def __init__(
        self,
        conn_id: str,
        export_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float = 3600.0,
        stall_polls: int = 300,
        first_poll_after: float = 5.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.export_id = export_id
        self.first_poll_after = first_poll_after
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.stall_polls = stall_polls

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "conn_id": self.conn_id,
            "export_id": self.export_id,
            "first_poll_after": self.first_poll_after,
            "poll_interval": self.poll_interval,
            "timeout": self.timeout,
            "stall_polls": self.stall_polls,
        }

    async def _client(self) -> AsyncExacqClient:
        from ev_ingest.airflow.hooks import ExacqVisionHook

        connection = await ExacqVisionHook.aget_connection(self.conn_id)
        return AsyncExacqClient(settings=ExacqVisionHook.settings_from_connection(connection))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout
        last, still = -1, 0
        # The task stays deferred at least this long. Resuming it before the scheduler has
        # processed the deferring process's exit is what sets off this Airflow's race
        # (apache/airflow#67287: the stale "success" of that exit fails the resumed task);
        # no real recorder finishes an export sooner.
        await asyncio.sleep(self.first_poll_after)
        client = await self._client()
        try:
            while True:
                try:
                    progress = await client.exports.progress(self.export_id)
                except NotFoundError as exc:
                    yield self._event("failed", last, f"the export disappeared: {exc.message}")
                    return
                except ExacqError as exc:  # transient trouble was retried already; say what happened
                    yield self._event("failed", last, str(exc))
                    return
                if progress >= 100:
                    yield self._event("complete", progress)
                    return
                still = still + 1 if progress == last else 0
                last = progress
                if still >= self.stall_polls:
                    yield self._event("failed", progress, f"stuck at {progress}%")
                    return
                if time.monotonic() > deadline:
                    yield self._event("timeout", progress, f"not complete after {self.timeout:.0f} s")
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await client.close()

    def _event(self, status: str, progress: int, message: str = "") -> TriggerEvent:
        event = ExportProgressEvent(status=status, export_id=self.export_id, progress=max(progress, 0), message=message)
        return TriggerEvent(event.model_dump())
