"""`ExacqClient` and `AsyncExacqClient`: the same surface, sync and async, over httpx.

Both log in lazily, attach the session to every call, log in again once when the
session has expired and replay the call, retry idempotent calls with bounded jittered
backoff, and hold at most `max_concurrency` requests in flight per server (a download
counts while it streams). API areas are properties: `client.cameras.list()`.

What to do is decided once, in `_base.BaseClient`'s flows; the two classes here only
drive them (send, sleep, log in), so a fix to session handling lands in both. Every call
has a total deadline (`_deadline`), every answer held in memory a size cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx

from ev_ingest.client import _deadline, bookmarks, cameras, events, exports, search, sessions, video
from ev_ingest.client._base import (
    BaseClient,
    Call,
    Flow,
    Pause,
    Relogin,
    Send,
    is_stream,
)
from ev_ingest.client._config import DEFAULT_TIMEOUT, ClientSettings
from ev_ingest.client._streams import CappedBody, decoding_error, stream_error
from ev_ingest.client._transport import AsyncDeadlineTransport, DeadlineTransport

T = TypeVar("T")

USER_AGENT = "ev-ingest/0.1 (+httpx)"


def _settings(
    base_url: str | None,
    username: str | None,
    password: str | None,
    settings: ClientSettings | None,
    options: dict[str, Any],
) -> ClientSettings:
    if settings is not None:
        return settings
    # exacqvision:// URLs, and any URL carrying user info, are parsed; a plain http(s) base is used as is.
    if base_url and ("@" in base_url or ("://" in base_url and not base_url.startswith(("http://", "https://")))):
        return ClientSettings.from_url(base_url, username=username, password=password, **options)
    return ClientSettings.build(base_url=base_url, username=username, password=password, **options)


class _Areas:
    """The API areas, as properties, shared by both clients' constructors."""

    def _make_areas(self, is_async: bool) -> None:
        pick = (lambda sync, asynchronous: asynchronous) if is_async else (lambda sync, asynchronous: sync)
        self.sessions = pick(sessions.Sessions, sessions.AsyncSessions)(self)
        self.cameras = pick(cameras.Cameras, cameras.AsyncCameras)(self)
        self.search = pick(search.Search, search.AsyncSearch)(self)
        self.video = pick(video.Video, video.AsyncVideo)(self)
        self.exports = pick(exports.Exports, exports.AsyncExports)(self)
        self.events = pick(events.Events, events.AsyncEvents)(self)
        self.bookmarks = pick(bookmarks.Bookmarks, bookmarks.AsyncBookmarks)(self)
        self.cases = pick(bookmarks.Cases, bookmarks.AsyncCases)(self)


def _limits(settings: ClientSettings) -> httpx.Limits:
    return httpx.Limits(max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency)


class ExacqClient(BaseClient, _Areas):
    """Synchronous exacqVision client. Thread-safe; use as a context manager."""

    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        *,
        settings: ClientSettings | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(_settings(base_url, username, password, settings, options))
        if transport is None:
            transport = DeadlineTransport(self.settings.verify(), _limits(self.settings))
        self._http = httpx.Client(
            base_url=self.settings.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._limit = threading.BoundedSemaphore(self.settings.max_concurrency)
        self._login_lock = threading.Lock()
        self._make_areas(is_async=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ExacqClient:
        return cls(settings=ClientSettings.from_url(url), **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> ExacqClient:
        return cls(settings=ClientSettings.from_env(), **kwargs)

    # --- driving the flows ------------------------------------------------------------
    def _drive(self, flow: Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as done:
                return done.value
            value, error = None, None
            if isinstance(step, Pause):
                time.sleep(step.delay)
            elif isinstance(step, Relogin):
                self._ensure_session(step.stale)
            else:
                try:
                    value = self._send(step)
                except httpx.TransportError as exc:
                    error = exc

    def _send(self, step: Send) -> httpx.Response:
        """The answer: read (capped) into memory, or for a stream step a 2xx stream left
        open with its concurrency slot held (released by `stream()`)."""
        self._limit.acquire()
        try:
            response = self._http.send(self.build(step), stream=True)
        except BaseException:
            self._limit.release()
            raise
        if step.stream and is_stream(response):
            return response
        try:
            body = CappedBody(response)
            for chunk in response.iter_bytes():
                body.feed(chunk)
            return body.result()
        except httpx.DecodingError as exc:
            raise decoding_error(exc, response) from None
        finally:
            response.close()
            self._limit.release()

    def _run(self, flow: Flow[T]) -> T:
        with _deadline.within(self.deadline()):
            return self._drive(flow)

    # --- session --------------------------------------------------------------------
    def login(self) -> Any:
        return self._run(self.login_flow())

    def _ensure_session(self, stale: str | None = None) -> None:
        with self._login_lock:
            if self._session_id is None or self._session_id == stale:
                self._session_id = None
                self._drive(self.login_flow())

    def logout(self) -> None:
        if self._session_id is None:
            return
        session, self._session_id = self._session_id, None
        with contextlib.suppress(httpx.HTTPError), _deadline.within(_deadline.Deadline.after(5.0)):
            self._http.post(self.url("/logout.web"), params={"s": session}, timeout=5.0)

    def close(self) -> None:
        try:
            self.logout()
        finally:
            self._http.close()

    def __enter__(self) -> ExacqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls ----------------------------------------------------------------------
    def call(self, call: Call[T]) -> T:
        """Send a call: log in when needed, retry what may be retried, re-login once on expiry."""
        return self._run(self.call_flow(call))

    @contextlib.contextmanager
    def stream(self, call: Call[Any], headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed answer (2xx), with the same login, expiry and retry rules as `call` for its
        start (which keeps to the call deadline); reading it is bounded by the reader's rules."""
        response = self._run(self.call_flow(call, stream=True, headers=headers))
        try:
            yield response
        finally:
            response.close()
            self._limit.release()

    def chunks(self, response: httpx.Response, what: str) -> Iterator[bytes]:
        """A stream's raw chunks, its network errors translated at this boundary (as httpx
        maps httpcore's). Each read keeps to the read timeout; the whole body to the reader's
        pace rules (`DownloadPace`, `FrameGap`), not to a call deadline."""
        iterator = response.iter_raw()
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except httpx.TransportError as exc:
                raise stream_error(exc, what, response) from None
            yield chunk


class AsyncExacqClient(BaseClient, _Areas):
    """Asynchronous exacqVision client; the same surface as `ExacqClient`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        *,
        settings: ClientSettings | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(_settings(base_url, username, password, settings, options))
        if transport is None:
            transport = AsyncDeadlineTransport(self.settings.verify(), _limits(self.settings))
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._limit = asyncio.Semaphore(self.settings.max_concurrency)
        self._login_lock = asyncio.Lock()
        self._make_areas(is_async=True)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsyncExacqClient:
        return cls(settings=ClientSettings.from_url(url), **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncExacqClient:
        return cls(settings=ClientSettings.from_env(), **kwargs)

    async def _drive(self, flow: Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as done:
                return done.value
            value, error = None, None
            if isinstance(step, Pause):
                await asyncio.sleep(step.delay)
            elif isinstance(step, Relogin):
                await self._ensure_session(step.stale)
            else:
                try:
                    value = await self._send(step)
                except httpx.TransportError as exc:
                    error = exc

    async def _send(self, step: Send) -> httpx.Response:
        await self._limit.acquire()
        try:
            response = await self._http.send(self.build(step), stream=True)
        except BaseException:
            self._limit.release()
            raise
        if step.stream and is_stream(response):
            return response
        try:
            body = CappedBody(response)
            async for chunk in response.aiter_bytes():
                body.feed(chunk)
            return body.result()
        except httpx.DecodingError as exc:
            raise decoding_error(exc, response) from None
        finally:
            await response.aclose()
            self._limit.release()

    async def _run(self, flow: Flow[T]) -> T:
        with _deadline.within(self.deadline()):
            return await self._drive(flow)

    async def login(self) -> Any:
        return await self._run(self.login_flow())

    async def _ensure_session(self, stale: str | None = None) -> None:
        async with self._login_lock:
            if self._session_id is None or self._session_id == stale:
                self._session_id = None
                await self._drive(self.login_flow())

    async def logout(self) -> None:
        if self._session_id is None:
            return
        session, self._session_id = self._session_id, None
        with contextlib.suppress(httpx.HTTPError), _deadline.within(_deadline.Deadline.after(5.0)):
            await self._http.post(self.url("/logout.web"), params={"s": session}, timeout=5.0)

    async def close(self) -> None:
        try:
            await self.logout()
        finally:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncExacqClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, call: Call[T]) -> T:
        return await self._run(self.call_flow(call))

    @contextlib.asynccontextmanager
    async def stream(self, call: Call[Any], headers: dict[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        response = await self._run(self.call_flow(call, stream=True, headers=headers))
        try:
            yield response
        finally:
            await response.aclose()
            self._limit.release()

    async def chunks(self, response: httpx.Response, what: str) -> AsyncIterator[bytes]:
        iterator = response.aiter_raw()
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except httpx.TransportError as exc:
                raise stream_error(exc, what, response) from None
            yield chunk
