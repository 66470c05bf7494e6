"""Video area: a live JPEG frame, and a camera's native stream as an iterator of frames.

The native stream (`video.web` with `multipart_encode=1`) is parsed incrementally into
`NativeFrame`s with the headers exacqVision sends per frame (content type, data
length, I-frame flag, and during playback the frame number and time offset). Stop
iterating to close the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call, MultipartFrames
from ev_ingest.client.models import NativeFrame

FORMAT_JPEG = 6  # transcoded JPEG
FORMAT_H264 = 5


class _VideoCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _jpeg(camera_id: int, width: int | None, height: int | None, quality: int) -> Call[bytes]:
        return Call(
            "GET",
            paths.VIDEO,
            {"camera": int(camera_id), "format": FORMAT_JPEG, "w": width, "h": height, "q": quality},
            expect="bytes",
            what=f"live frame of camera {camera_id}",
        )

    @staticmethod
    def _native(camera_id: int, iframes_only: bool, search_id: str | None) -> Call[None]:
        params: dict[str, Any] = {
            "camera": int(camera_id),
            "format": FORMAT_H264,
            "multipart_encode": 1,
            "iframes": 1 if iframes_only else 0,
        }
        if search_id:  # playback: the search id stands where the session goes
            params["s"] = search_id
        return Call("GET", paths.VIDEO, params, session=search_id is None, what=f"native stream of {camera_id}")


class Video(_VideoCalls):
    def jpeg(self, camera_id: int, width: int | None = None, height: int | None = None, quality: int = 7) -> bytes:
        """The camera's current frame as JPEG."""
        return self._client.call(self._jpeg(camera_id, width, height, quality))

    def native_frames(
        self, camera_id: int, *, iframes_only: bool = False, search_id: str | None = None
    ) -> Iterator[NativeFrame]:
        """Live (or, with `search_id`, playback) native frames; stop iterating to hang up."""
        with self._client.stream(self._native(camera_id, iframes_only, search_id)) as response:
            parser = MultipartFrames(response.headers.get("content-type", ""))
            for chunk in response.iter_raw():
                yield from parser.feed(chunk)


class AsyncVideo(_VideoCalls):
    async def jpeg(
        self, camera_id: int, width: int | None = None, height: int | None = None, quality: int = 7
    ) -> bytes:
        return await self._client.call(self._jpeg(camera_id, width, height, quality))

    async def native_frames(
        self, camera_id: int, *, iframes_only: bool = False, search_id: str | None = None
    ) -> AsyncIterator[NativeFrame]:
        async with self._client.stream(self._native(camera_id, iframes_only, search_id)) as response:
            parser = MultipartFrames(response.headers.get("content-type", ""))
            async for chunk in response.aiter_raw():
                for frame in parser.feed(chunk):
                    yield frame
