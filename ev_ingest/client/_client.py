"""`ExacqClient` and `AsyncExacqClient`: the same surface, sync and async, over httpx.

Both log in lazily, attach the session to every call, log in again once when the
session has expired and replay the call, retry idempotent calls with bounded jittered
backoff, and hold at most `max_concurrency` requests in flight per server (a download
counts while it streams). API areas are properties: `client.cameras.list()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx

from ev_ingest.client import bookmarks, cameras, events, exports, search, sessions, video
from ev_ingest.client._base import (
    EXPIRED,
    BaseClient,
    Call,
    Retry,
    raise_for_stream,
    translate_transport,
)
from ev_ingest.client._config import DEFAULT_TIMEOUT, ClientSettings, redact_url

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


def _is_stream(response: httpx.Response) -> bool:
    """A 2xx answer carrying the asked-for bytes (not a JSON error or an HTML login page)."""
    content_type = response.headers.get("content-type", "")
    return response.status_code in (200, 206) and "json" not in content_type and "html" not in content_type


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
        self._http = httpx.Client(
            base_url=self.settings.base_url,
            verify=self.settings.verify(),
            timeout=timeout,
            limits=_limits(self.settings),
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

    # --- session --------------------------------------------------------------------
    def login(self) -> Any:
        call = self.login_call()
        attempt = 0
        while True:
            with self._limit:
                response = self._send(call, self.request_args(call), attempt_retries=True)
            outcome = self.accept_login(response, attempt)
            if not isinstance(outcome, Retry):
                return outcome
            time.sleep(outcome.delay)
            attempt += 1

    def _ensure_session(self, stale: str | None = None) -> None:
        with self._login_lock:
            if self._session_id is None or self._session_id == stale:
                self._session_id = None
                self.login()

    def logout(self) -> None:
        if self._session_id is None:
            return
        session, self._session_id = self._session_id, None
        with contextlib.suppress(httpx.HTTPError):
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
    def _send(self, call: Call[Any], args: dict[str, Any], attempt_retries: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return self._http.request(**args)
            except httpx.TransportError as exc:
                retry = self.transport_retry(call, exc, attempt) if attempt_retries else None
                if retry is None:
                    raise translate_transport(
                        exc, call.method, redact_url(self._http.base_url.join(args["url"]))
                    ) from None
                time.sleep(retry.delay)
                attempt += 1

    def call(self, call: Call[T]) -> T:
        """Send a call: log in when needed, retry what may be retried, re-login once on expiry."""
        if self.needs_timezone(call):
            self.cameras.list()
        relogged = False
        attempt = 0
        while True:
            if call.session and self._session_id is None:
                self._ensure_session()
            session = self._session_id
            with self._limit:
                response = self._send(call, self.request_args(call), attempt_retries=True)
            outcome = self.interpret(call, response, relogged, attempt)
            if outcome is EXPIRED:
                relogged = True
                self._ensure_session(stale=session)
                continue
            if isinstance(outcome, Retry):
                time.sleep(outcome.delay)
                attempt += 1
                continue
            return outcome

    @contextlib.contextmanager
    def stream(self, call: Call[Any], headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed answer (2xx), with the same login, expiry and retry rules as `call` for its start."""
        if self.needs_timezone(call):
            self.cameras.list()
        relogged = False
        attempt = 0
        while True:
            if call.session and self._session_id is None:
                self._ensure_session()
            session = self._session_id
            args = self.request_args(call)
            with self._limit:
                try:
                    request = self._http.build_request(
                        args["method"], args["url"], params=args["params"], headers=headers
                    )
                    response = self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    retry = self.transport_retry(call, exc, attempt)
                    if retry is None:
                        raise translate_transport(exc, call.method, redact_url(request.url)) from None
                    time.sleep(retry.delay)
                    attempt += 1
                    continue
                try:
                    if _is_stream(response):
                        yield response
                        return
                    response.read()
                finally:
                    response.close()
            outcome = raise_for_stream(self, call, response, relogged, attempt)
            if outcome is EXPIRED:
                relogged = True
                self._ensure_session(stale=session)
            else:
                time.sleep(outcome.delay)
                attempt += 1


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
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url,
            verify=self.settings.verify(),
            timeout=timeout,
            limits=_limits(self.settings),
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

    async def login(self) -> Any:
        call = self.login_call()
        attempt = 0
        while True:
            async with self._limit:
                response = await self._send(call, self.request_args(call), attempt_retries=True)
            outcome = self.accept_login(response, attempt)
            if not isinstance(outcome, Retry):
                return outcome
            await asyncio.sleep(outcome.delay)
            attempt += 1

    async def _ensure_session(self, stale: str | None = None) -> None:
        async with self._login_lock:
            if self._session_id is None or self._session_id == stale:
                self._session_id = None
                await self.login()

    async def logout(self) -> None:
        if self._session_id is None:
            return
        session, self._session_id = self._session_id, None
        with contextlib.suppress(httpx.HTTPError):
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

    async def _send(self, call: Call[Any], args: dict[str, Any], attempt_retries: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await self._http.request(**args)
            except httpx.TransportError as exc:
                retry = self.transport_retry(call, exc, attempt) if attempt_retries else None
                if retry is None:
                    raise translate_transport(
                        exc, call.method, redact_url(self._http.base_url.join(args["url"]))
                    ) from None
                await asyncio.sleep(retry.delay)
                attempt += 1

    async def call(self, call: Call[T]) -> T:
        if self.needs_timezone(call):
            await self.cameras.list()
        relogged = False
        attempt = 0
        while True:
            if call.session and self._session_id is None:
                await self._ensure_session()
            session = self._session_id
            async with self._limit:
                response = await self._send(call, self.request_args(call), attempt_retries=True)
            outcome = self.interpret(call, response, relogged, attempt)
            if outcome is EXPIRED:
                relogged = True
                await self._ensure_session(stale=session)
                continue
            if isinstance(outcome, Retry):
                await asyncio.sleep(outcome.delay)
                attempt += 1
                continue
            return outcome

    @contextlib.asynccontextmanager
    async def stream(self, call: Call[Any], headers: dict[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        if self.needs_timezone(call):
            await self.cameras.list()
        relogged = False
        attempt = 0
        while True:
            if call.session and self._session_id is None:
                await self._ensure_session()
            session = self._session_id
            args = self.request_args(call)
            async with self._limit:
                request = self._http.build_request(args["method"], args["url"], params=args["params"], headers=headers)
                try:
                    response = await self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    retry = self.transport_retry(call, exc, attempt)
                    if retry is None:
                        raise translate_transport(exc, call.method, redact_url(request.url)) from None
                    await asyncio.sleep(retry.delay)
                    attempt += 1
                    continue
                try:
                    if _is_stream(response):
                        yield response
                        return
                    await response.aread()
                finally:
                    await response.aclose()
            outcome = raise_for_stream(self, call, response, relogged, attempt)
            if outcome is EXPIRED:
                relogged = True
                await self._ensure_session(stale=session)
            else:
                await asyncio.sleep(outcome.delay)
                attempt += 1
