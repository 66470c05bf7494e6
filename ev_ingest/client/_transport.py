"""The client's own HTTP transport: httpcore's connection pool on deadline-aware network
streams, given to httpcore through its public `network_backend=` (`_deadline`).

httpx's `HTTPTransport` builds its pool without a way to name the network backend, so the
deadline used to be installed by swapping a private attribute inside it. This transport
owns its pool instead, and is the one place where httpcore's errors become httpx's, for a
request and for every read of its body alike (what `_base.translate_transport` then names
in the product's terms). No proxies: a recorder is reached directly.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ev_ingest.client import _deadline

# httpcore's errors and the httpx errors they are (most specific first, as httpx maps them).
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


def _request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _pool_options(verify: bool | ssl.SSLContext, limits: httpx.Limits) -> dict[str, Any]:
    return {
        "ssl_context": httpx.create_ssl_context(verify=verify),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _mapped():
                close()


class DeadlineTransport(httpx.BaseTransport):
    def __init__(self, verify: bool | ssl.SSLContext, limits: httpx.Limits) -> None:
        backend = _deadline.Backend(httpcore.SyncBackend())
        self._pool = httpcore.ConnectionPool(network_backend=backend, **_pool_options(verify, limits))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped():
            answer = self._pool.handle_request(_request(request))
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(
            status_code=answer.status, headers=answer.headers, stream=_Body(answer.stream), extensions=answer.extensions
        )

    def close(self) -> None:
        self._pool.close()


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _mapped():
                await close()


class AsyncDeadlineTransport(httpx.AsyncBaseTransport):
    def __init__(self, verify: bool | ssl.SSLContext, limits: httpx.Limits) -> None:
        backend = _deadline.AsyncBackend(httpcore.AnyIOBackend())
        self._pool = httpcore.AsyncConnectionPool(network_backend=backend, **_pool_options(verify, limits))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped():
            answer = await self._pool.handle_async_request(_request(request))
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AsyncBody(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
