"""`ExportProgressTrigger`: wait for an exacqVision export without holding a worker slot.

It polls the export's progress with the async client in the triggerer and fires one
typed event: complete, failed (the export vanished or stalled) or timeout. Progress
polls carry only the export id (it works as a capability on exacqVision), so the
trigger holds no credential: its serialized form, stored in Airflow's database, has the
server URL and TLS settings only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent
from pydantic import BaseModel

from ev_ingest.client import AsyncExacqClient, ClientSettings, ExacqError, NotFoundError

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
        base_url: str,
        export_id: str,
        *,
        tls_verify: bool = True,
        ca_file: str | None = None,
        api_prefix: str = "/v1",
        poll_interval: float = 2.0,
        timeout: float = 3600.0,
        stall_polls: int = 300,
    ) -> None:
        super().__init__()
        self.base_url = base_url
        self.export_id = export_id
        self.tls_verify = tls_verify
        self.ca_file = ca_file
        self.api_prefix = api_prefix
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.stall_polls = stall_polls

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "base_url": self.base_url,
            "export_id": self.export_id,
            "tls_verify": self.tls_verify,
            "ca_file": self.ca_file,
            "api_prefix": self.api_prefix,
            "poll_interval": self.poll_interval,
            "timeout": self.timeout,
            "stall_polls": self.stall_polls,
        }

    def _client(self) -> AsyncExacqClient:
        # No credentials: progress polls do not log in. Placeholders satisfy the settings model.
        settings = ClientSettings.build(
            base_url=self.base_url,
            username="-",
            password="-",
            tls_verify=self.tls_verify,
            ca_file=self.ca_file,
            api_prefix=self.api_prefix,
        )
        return AsyncExacqClient(settings=settings)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout
        last, still = -1, 0
        client = self._client()
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
