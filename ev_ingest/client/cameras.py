"""Cameras area: the camera list (config.web) and one camera's configuration.

Listing cameras also teaches the client the server's UTC offset, which it uses to send
request times in server-local RFC 3339 as exacqVision expects.
"""

from __future__ import annotations

from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call
from ev_ingest.client._exceptions import NotFoundError
from ev_ingest.client.models import Camera, CameraList


class _CameraCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _list(self, show_all: bool) -> Call[CameraList]:
        def parse(body: Any) -> CameraList:
            result = CameraList.model_validate(body)
            self._client.set_timezone(result.timezone)
            return result

        params: dict[str, Any] = {"output": "json"}
        if show_all:
            params["showAll"] = True
        return Call("GET", paths.CONFIG, params, parse=parse, what="camera list")

    def _config(self, camera_id: int) -> Call[Camera]:
        return Call(
            "GET",
            paths.CONFIG,
            {"camera": int(camera_id), "output": "json"},
            parse=lambda body: Camera.model_validate(body["camera"]),
            what=f"camera {camera_id}",
        )

    @staticmethod
    def _pick(listing: CameraList, camera_id: int) -> Camera:
        for camera in listing.cameras:
            if camera.id == int(camera_id):
                return camera
        known = ", ".join(str(c.id) for c in listing.cameras[:20])
        raise NotFoundError(f"unknown camera {camera_id}; this server has: {known}", status=404)


class Cameras(_CameraCalls):
    def list(self, show_all: bool = False) -> list[Camera]:
        """Every camera (`show_all` adds unused quality streams as cameras)."""
        return self._client.call(self._list(show_all)).cameras

    def listing(self, show_all: bool = False) -> CameraList:
        """The whole config.web answer: server name, timezone and cameras."""
        return self._client.call(self._list(show_all))

    def get(self, camera_id: int) -> Camera:
        """One camera from the list; NotFoundError names the cameras the server has."""
        return self._pick(self._client.call(self._list(False)), camera_id)

    def config(self, camera_id: int) -> Camera:
        return self._client.call(self._config(camera_id))


class AsyncCameras(_CameraCalls):
    async def list(self, show_all: bool = False) -> list[Camera]:
        return (await self._client.call(self._list(show_all))).cameras

    async def listing(self, show_all: bool = False) -> CameraList:
        return await self._client.call(self._list(show_all))

    async def get(self, camera_id: int) -> Camera:
        return self._pick(await self._client.call(self._list(False)), camera_id)

    async def config(self, camera_id: int) -> Camera:
        return await self._client.call(self._config(camera_id))
