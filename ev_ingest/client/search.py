"""Search area: recorded ranges, metadata and thumbnail searches, recorded frames, playback sessions.

`recordings()` is what most callers want: the recorded clips of a camera in a time
range (it opens a search, reads its clips and closes it). A `SearchSession` is a
playback search with a play head: reference time, playspeed, stepping, frames.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call, check_range
from ev_ingest.client._exceptions import ExacqError
from ev_ingest.client.models import Clip, MetadataSearch, SearchResult, SearchStatus, ThumbnailSearch, parse_utc

log = logging.getLogger(__name__)


class _SearchCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _create(self, camera_id: int, start: datetime, end: datetime, paused: bool = False) -> Call[SearchResult]:
        check_range(start, end)
        params = {"camera": int(camera_id), "start": start, "end": end, "output": "json"}
        if paused:
            params["start_paused"] = 1
        return Call(
            "GET", paths.SEARCH, params, parse=SearchResult.model_validate, what=f"search of camera {camera_id}"
        )

    def _metadata(self, camera_ids: list[int], start: datetime, end: datetime) -> Call[MetadataSearch]:
        check_range(start, end)
        return Call(
            "GET",
            paths.METADATA_SEARCH,
            {"camera": [int(c) for c in camera_ids], "start": start, "end": end, "responseVersion": 2},
            parse=MetadataSearch.model_validate,
            what="metadata search",
        )

    def _thumbnails(self, camera_id: int, start: datetime, end: datetime, interval_s: int) -> Call[ThumbnailSearch]:
        check_range(start, end)
        return Call(
            "GET",
            paths.THUMBNAIL_SEARCH,
            {"camera": int(camera_id), "start": start, "end": end, "interval": max(1, int(interval_s))},
            parse=ThumbnailSearch.model_validate,
            what=f"thumbnail search of camera {camera_id}",
        )

    def _thumbnail(
        self,
        camera_id: int,
        start: datetime,
        end: datetime,
        interval_s: int,
        index: int,
        width: int | None,
        quality: int,
    ) -> Call[bytes]:
        call = self._thumbnails(camera_id, start, end, interval_s)
        call.params.update({"frame": int(index), "format": 6, "w": width, "q": quality})
        return Call("GET", call.path, call.params, expect="bytes", what=f"thumbnail {index} of camera {camera_id}")

    def _recorded_frame(self, camera_id: int, at: datetime, width: int | None, quality: int) -> Call[bytes]:
        return Call(
            "GET",
            paths.RECORDED_FRAME,
            {"camera": int(camera_id), "time": at, "format": 6, "w": width, "q": quality},
            expect="bytes",
            what=f"recorded frame of camera {camera_id} at {at.isoformat()}",
        )

    def _frame_at(self, search_id: str, camera_id: int, at: datetime, width: int | None) -> Call[bytes]:
        return Call(
            "GET",
            paths.FRAME_AT_TIME,
            {"search_id": search_id, "camera": int(camera_id), "time": at, "format": 6, "w": width},
            expect="bytes",
            what=f"frame of camera {camera_id} at {at.isoformat()}",
        )

    @staticmethod
    def _close(search_id: str) -> Call[None]:
        return Call("GET", paths.LOGOUT, {"search_id": search_id}, session=False, expect="none", what="close search")


class _SessionCalls:
    def __init__(self, client: Any, result: SearchResult, camera_id: int) -> None:
        self._client = client
        self.result = result
        self.camera_id = camera_id
        if result.search_id is None:
            raise ValueError("nothing is recorded in this range: no search session to open")
        self.search_id: str = result.search_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(camera={self.camera_id}, frames={self.result.frames})"

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"search_id": self.search_id, "output": "json", **extra}

    def _status(self) -> Call[SearchStatus]:
        return Call(
            "GET",
            paths.SEARCH_STATUS,
            {"s": self.search_id},
            session=False,
            parse=SearchStatus.model_validate,
            what="search status",
        )

    def _reference_time(self) -> Call[datetime]:
        return Call(
            "GET",
            paths.TIMESTAMP,
            self._params(use_ms=1),
            session=False,
            parse=lambda b: parse_utc(b.get("timeWithMs") or b["time"]),
            what="search reference time",
        )

    def _playspeed(self) -> Call[int]:
        return Call(
            "GET",
            paths.PLAYSPEED,
            self._params(),
            session=False,
            parse=lambda b: int(b["speed"]),
            what="search playspeed",
        )

    def _set_playspeed(self, speed: int) -> Call[None]:
        if not -12800 <= speed <= 12800:
            raise ValueError("playspeed must be within -12800..12800 (100 = 1x, 0 pauses)")
        return Call(
            "GET", f"{paths.PLAYSPEED}/{int(speed)}", self._params(), session=False, expect="none", what="set playspeed"
        )

    def _step(self, steps: int) -> Call[int]:
        # One frame forward is the plain `step.web` a public client sends; other counts use the
        # seed's `step.web/{steps}`, which no public client shows.
        return Call(
            "GET",
            paths.STEP if steps == 1 else f"{paths.STEP}/{int(steps):+d}",
            self._params(),
            session=False,
            parse=lambda b: int(b["frame"]),
            what="step",
        )

    def _frame(self, width: int | None) -> Call[bytes]:
        # During playback the search id stands where the session normally goes.
        return Call(
            "GET",
            paths.VIDEO,
            {"s": self.search_id, "camera": self.camera_id, "format": 6, "w": width},
            session=False,
            expect="bytes",
            what="playback frame",
        )


class SearchSession(_SessionCalls):
    def status(self) -> SearchStatus:
        return self._client.call(self._status())

    def reference_time(self) -> datetime:
        return self._client.call(self._reference_time())

    def playspeed(self) -> int:
        return self._client.call(self._playspeed())

    def set_playspeed(self, speed: int) -> None:
        self._client.call(self._set_playspeed(speed))

    def step(self, steps: int = 1) -> int:
        """Step `steps` frames (negative steps back); returns the frame number."""
        return self._client.call(self._step(steps))

    def frame(self, width: int | None = None) -> bytes:
        """The JPEG at the play head (the play head then advances at the playspeed)."""
        return self._client.call(self._frame(width))

    def frame_at(self, at: datetime, width: int | None = None) -> bytes:
        return self._client.call(_SearchCalls._frame_at(self, self.search_id, self.camera_id, at, width))

    def close(self) -> None:
        self._client.call(_SearchCalls._close(self.search_id))

    def __enter__(self) -> SearchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSearchSession(_SessionCalls):
    async def status(self) -> SearchStatus:
        return await self._client.call(self._status())

    async def reference_time(self) -> datetime:
        return await self._client.call(self._reference_time())

    async def playspeed(self) -> int:
        return await self._client.call(self._playspeed())

    async def set_playspeed(self, speed: int) -> None:
        await self._client.call(self._set_playspeed(speed))

    async def step(self, steps: int = 1) -> int:
        return await self._client.call(self._step(steps))

    async def frame(self, width: int | None = None) -> bytes:
        return await self._client.call(self._frame(width))

    async def frame_at(self, at: datetime, width: int | None = None) -> bytes:
        return await self._client.call(_SearchCalls._frame_at(self, self.search_id, self.camera_id, at, width))

    async def close(self) -> None:
        await self._client.call(_SearchCalls._close(self.search_id))

    async def __aenter__(self) -> AsyncSearchSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _close_failed(camera_id: int, exc: ExacqError) -> None:
    # The search id is a capability: the exception's text may carry it, so only its kind is logged.
    log.warning("camera %s: closing its search failed (%s); the server frees it idle", camera_id, type(exc).__name__)


def _answered(camera_id: int, result: SearchResult) -> list[Clip]:
    if result.no_footage:
        log.info("camera %s: the server has no footage in the window", camera_id)
    return result.clips


class Search(_SearchCalls):
    def recordings(self, camera_id: int, start: datetime, end: datetime) -> list[Clip]:
        """Recorded clips of a camera within [start, end) (empty when nothing was recorded).
        The search is closed best effort: a close that fails is logged, never the caller's
        failure (the close is evidenced only as a call whose answer a vendor app ignores)."""
        result = self._client.call(self._create(camera_id, start, end, paused=True))
        if result.search_id:
            try:
                self._client.call(self._close(result.search_id))
            except ExacqError as exc:
                _close_failed(camera_id, exc)
        return _answered(camera_id, result)

    def open(self, camera_id: int, start: datetime, end: datetime, paused: bool = False) -> SearchSession:
        """A playback search session; raises ValueError when nothing is recorded."""
        return SearchSession(self._client, self._client.call(self._create(camera_id, start, end, paused)), camera_id)

    def metadata(self, camera_ids: list[int], start: datetime, end: datetime) -> MetadataSearch:
        return self._client.call(self._metadata(camera_ids, start, end))

    def thumbnails(self, camera_id: int, start: datetime, end: datetime, interval_s: int) -> ThumbnailSearch:
        """One thumbnail per `interval_s` seconds that holds video."""
        return self._client.call(self._thumbnails(camera_id, start, end, interval_s))

    def thumbnail(
        self,
        camera_id: int,
        start: datetime,
        end: datetime,
        interval_s: int,
        index: int,
        width: int | None = None,
        quality: int = 7,
    ) -> bytes:
        """JPEG of thumbnail `index` of the same thumbnail search."""
        return self._client.call(self._thumbnail(camera_id, start, end, interval_s, index, width, quality))

    def recorded_frame(self, camera_id: int, at: datetime, width: int | None = None, quality: int = 7) -> bytes:
        """The recorded frame closest to `at` as JPEG; NotFoundError when nothing was recorded then."""
        return self._client.call(self._recorded_frame(camera_id, at, width, quality))


class AsyncSearch(_SearchCalls):
    async def recordings(self, camera_id: int, start: datetime, end: datetime) -> list[Clip]:
        result = await self._client.call(self._create(camera_id, start, end, paused=True))
        if result.search_id:
            try:
                await self._client.call(self._close(result.search_id))
            except ExacqError as exc:
                _close_failed(camera_id, exc)
        return _answered(camera_id, result)

    async def open(self, camera_id: int, start: datetime, end: datetime, paused: bool = False) -> AsyncSearchSession:
        result = await self._client.call(self._create(camera_id, start, end, paused))
        return AsyncSearchSession(self._client, result, camera_id)

    async def metadata(self, camera_ids: list[int], start: datetime, end: datetime) -> MetadataSearch:
        return await self._client.call(self._metadata(camera_ids, start, end))

    async def thumbnails(self, camera_id: int, start: datetime, end: datetime, interval_s: int) -> ThumbnailSearch:
        return await self._client.call(self._thumbnails(camera_id, start, end, interval_s))

    async def thumbnail(
        self,
        camera_id: int,
        start: datetime,
        end: datetime,
        interval_s: int,
        index: int,
        width: int | None = None,
        quality: int = 7,
    ) -> bytes:
        return await self._client.call(self._thumbnail(camera_id, start, end, interval_s, index, width, quality))

    async def recorded_frame(self, camera_id: int, at: datetime, width: int | None = None, quality: int = 7) -> bytes:
        return await self._client.call(self._recorded_frame(camera_id, at, width, quality))
