"""Video area: a live JPEG frame, a thumbnail preview, and a camera's native stream.

The native stream (`video.web` with `multipart_encode=1`) is parsed incrementally into
`NativeFrame`s with the headers exacqVision sends per frame (content type, data
length, I-frame flag, and during playback the frame number and time offset). Stop
iterating to close the connection. Its format is chosen from the camera's `formats`
(cameras differ: a 23.09 server lists `[4, 6]`), never assumed. A part over
MAX_PART_BYTES, or no whole frame for MAX_FRAME_GAP seconds, ends it with an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call
from ev_ingest.client._exceptions import ProtocolError
from ev_ingest.client._multipart import MultipartFrames
from ev_ingest.client._streams import FrameGap
from ev_ingest.client.models import Camera, NativeFrame

FORMAT_JPEG = 6  # transcoded JPEG
# Native stream formats this client can carry, best first (S4: 5 = H.264, 7 = H.265).
NATIVE_FORMATS = {5: "H.264", 7: "H.265"}
PREVIEW_SIZES = {0: 80, 1: 128, 2: 200}  # Get Thumbnail Preview's `size` -> pixels (seed)


def native_format(camera: Camera) -> int:
    """The camera's native stream format, from the formats it lists; an error when none is known."""
    for code in NATIVE_FORMATS:
        if code in camera.formats:
            return code
    known = ", ".join(f"{k} = {v}" for k, v in NATIVE_FORMATS.items())
    raise ProtocolError(
        f"camera {camera.id} lists formats {camera.formats or 'none'}: none is a native stream this client "
        f"knows ({known})"
    )


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
    def _preview(camera_id: int, size: int) -> Call[bytes]:
        if size not in PREVIEW_SIZES:
            raise ValueError(f"preview size must be one of {sorted(PREVIEW_SIZES)} (80, 128, 200 px)")
        return Call(
            "GET",
            paths.THUMBNAIL_PREVIEW,
            {"camera": int(camera_id), "size": size},
            expect="bytes",
            what=f"thumbnail preview of camera {camera_id}",
        )

    @staticmethod
    def _native(camera_id: int, fmt: int, iframes_only: bool, search_id: str | None) -> Call[None]:
        params: dict[str, Any] = {
            "camera": int(camera_id),
            "format": fmt,
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

    def preview(self, camera_id: int, size: int = 0) -> bytes:
        """The camera's thumbnail preview (JPEG, 80/128/200 px for size 0/1/2): a cheap health check."""
        return self._client.call(self._preview(camera_id, size))

    def native_frames(
        self, camera_id: int, *, iframes_only: bool = False, search_id: str | None = None
    ) -> Iterator[NativeFrame]:
        """Live (or, with `search_id`, playback) native frames; stop iterating to hang up."""
        fmt = native_format(self._client.cameras.get(camera_id))
        with self._client.stream(self._native(camera_id, fmt, iframes_only, search_id)) as response:
            parser = MultipartFrames(response.headers.get("content-type", ""))
            gap = FrameGap()
            for chunk in self._client.chunks(response, f"native stream of camera {camera_id}"):
                frames = parser.feed(chunk)
                gap.check(len(frames))
                yield from frames


class AsyncVideo(_VideoCalls):
    async def jpeg(
        self, camera_id: int, width: int | None = None, height: int | None = None, quality: int = 7
    ) -> bytes:
        return await self._client.call(self._jpeg(camera_id, width, height, quality))

    async def preview(self, camera_id: int, size: int = 0) -> bytes:
        return await self._client.call(self._preview(camera_id, size))

    async def native_frames(
        self, camera_id: int, *, iframes_only: bool = False, search_id: str | None = None
    ) -> AsyncIterator[NativeFrame]:
        fmt = native_format(await self._client.cameras.get(camera_id))
        async with self._client.stream(self._native(camera_id, fmt, iframes_only, search_id)) as response:
            parser = MultipartFrames(response.headers.get("content-type", ""))
            gap = FrameGap()
            async for chunk in self._client.chunks(response, f"native stream of camera {camera_id}"):
                frames = parser.feed(chunk)
                gap.check(len(frames))
                for frame in frames:
                    yield frame
