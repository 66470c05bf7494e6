"""Sessions area: servers behind the web service, system information, login and logout."""

from __future__ import annotations

from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call
from ev_ingest.client.models import LoginResult, ServerInfo, SystemInfo


def _servers(body: Any) -> list[ServerInfo]:
    return [ServerInfo.model_validate(s) for s in body.get("list", [])]


class _SessionCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _servers(self) -> Call[list[ServerInfo]]:
        return Call("GET", paths.LOGIN, {"output": "json"}, session=False, parse=_servers, what="servers list")

    def _system_info(self) -> Call[SystemInfo]:
        return Call("GET", paths.SYSTEM, parse=SystemInfo.model_validate, what="system info")


class Sessions(_SessionCalls):
    def login(self) -> LoginResult:
        """Log in now (calls log in lazily anyway)."""
        return self._client.login()

    def logout(self) -> None:
        self._client.logout()

    def servers(self) -> list[ServerInfo]:
        """The recording servers behind this web service (no login needed)."""
        return self._client.call(self._servers())

    def system_info(self) -> SystemInfo:
        return self._client.call(self._system_info())


class AsyncSessions(_SessionCalls):
    async def login(self) -> LoginResult:
        return await self._client.login()

    async def logout(self) -> None:
        await self._client.logout()

    async def servers(self) -> list[ServerInfo]:
        return await self._client.call(self._servers())

    async def system_info(self) -> SystemInfo:
        return await self._client.call(self._system_info())
