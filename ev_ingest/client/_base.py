"""What the sync and async clients share, with no I/O: building requests, reading answers.

An API method is described by a `Call` (method, path, parameters, what answer to
expect, how to parse it). `BaseClient` turns a Call into request arguments, and turns
an httpx response into one of: a value, "the session expired" or "retry after N s",
or raises the error from `_exceptions`. The sync and async clients only move bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar

import httpx

from ev_ingest import clock
from ev_ingest.client import paths
from ev_ingest.client._config import (
    RETRY_BASE_DELAY,
    RETRY_MAX_DELAY,
    RETRY_STATUSES,
    ClientSettings,
    redact,
    redact_url,
)
from ev_ingest.client._exceptions import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    ExacqError,
    NotExacqVisionError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    SessionExpiredError,
    TransportError,
)
from ev_ingest.client.models import DownloadResult, LoginResult, NativeFrame

log = logging.getLogger("ev_ingest.client")
T = TypeVar("T")
Expect = Literal["json", "bytes", "none"]


@dataclass
class Call(Generic[T]):
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    session: bool = True  # attach the session as `s`
    idempotent: bool = True  # may be retried after a failure that might have reached the server
    expect: Expect = "json"
    parse: Callable[[Any], T] | None = None
    what: str = ""  # what is being asked for, for error messages ("camera 4593152")


class Expired:
    """The answer says the session is gone: log in again and replay."""


@dataclass
class Retry:
    delay: float
    reason: str


EXPIRED = Expired()


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise BadRequestError(f"the time range is inverted or empty: start {start} is not before end {end}")


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After wins when it is sane."""
    if retry_after is not None and 0 <= retry_after <= RETRY_MAX_DELAY * 4:
        return retry_after
    return random.uniform(0, min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_message(response: httpx.Response, body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "message", "msg", "reason"):
            if body.get(key):
                return redact(str(body[key]))
    return f"HTTP {response.status_code}"


def translate_transport(exc: httpx.TransportError, method: str, url: str) -> TransportError:
    """The one place httpx transport errors become client errors."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"timed out talking to the exacqVision server ({kind})", method=method, url=url)
    return TransportError(
        f"could not talk to the exacqVision server: {kind}: {redact(str(exc))}", method=method, url=url
    )


class BaseClient:
    """State and decisions shared by `ExacqClient` and `AsyncExacqClient`."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._session_id: str | None = None
        self._offset: timedelta | None = None  # the server's UTC offset, from config.web
        self.login_info: LoginResult | None = None
        # The server's clock minus ours, from the login answer's `Date` (1 s resolution):
        # a skewed recorder labels video with its own time, so the pipeline checks it.
        self.clock_skew: timedelta | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r}, user={self.settings.username!r})"

    # --- requests -------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.settings.api_prefix + path

    @property
    def server_timezone(self) -> timezone:
        return timezone(self._offset or timedelta(0))

    def format_time(self, moment: datetime) -> str:
        """RFC 3339 in the server's local offset, as exacqVision expects in requests."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # naive times are taken as UTC (documented)
        return moment.astimezone(self.server_timezone).isoformat(timespec="seconds")

    def needs_timezone(self, call: Call[Any]) -> bool:
        return self._offset is None and any(isinstance(v, datetime) for v in call.params.values())

    def set_timezone(self, hours: float) -> None:
        self._offset = timedelta(hours=hours)

    def request_args(self, call: Call[Any]) -> dict[str, Any]:
        params: list[tuple[str, str]] = []
        for key, value in call.params.items():
            for item in value if isinstance(value, list | tuple) else [value]:
                if item is None:
                    continue
                if isinstance(item, datetime):
                    item = self.format_time(item)
                elif isinstance(item, bool):
                    item = "true" if item else "false"
                params.append((key, str(item)))
        if call.session:
            if self._session_id is None:
                raise SessionExpiredError("no session (log in first)")
            params.append(("s", self._session_id))
        return {"method": call.method, "url": self.url(call.path), "params": params, "data": call.data}

    def login_call(self) -> Call[LoginResult]:
        s = self.settings
        return Call(
            "POST",
            paths.LOGIN,
            session=False,
            parse=LoginResult.model_validate,
            data={
                "u": s.username,
                "p": s.password.get_secret_value(),
                "s": s.server_id,
                "responseVersion": "2",
            },
        )

    def accept_login(self, response: httpx.Response, attempt: int) -> LoginResult | Retry:
        """The login answer: a session (kept), a Retry for a passing failure, or a clear error."""
        where = redact_url(response.request.url)
        if attempt < self.settings.max_retries:
            if response.status_code in RETRY_STATUSES:
                return Retry(backoff(attempt, _retry_after(response)), f"HTTP {response.status_code}")
            if "json" in response.headers.get("content-type", "") and self._json_or_none(response) is None:
                return Retry(backoff(attempt), "malformed JSON")
        if response.status_code >= 500:
            raise ServerError(
                f"login failed with HTTP {response.status_code} (retries exhausted)",
                status=response.status_code,
                method="POST",
                url=where,
            )
        if response.status_code == 404:
            raise NotExacqVisionError(
                "login.web answered 404: this URL does not serve the exacqVision Web Service "
                f"(wrong host or port, or a server without the '{self.settings.api_prefix}' API prefix)",
                method="POST",
                url=where,
            )
        body = self._json_or_none(response)
        if not isinstance(body, dict):
            raise NotExacqVisionError(
                f"login.web did not answer JSON (HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}): is this an exacqVision Web Service?",
                method="POST",
                url=where,
            )
        result = LoginResult.model_validate(body)
        session = result.session_id or body.get("sessionID")
        if not result.success or not session:
            raise AuthenticationError(
                f"the server refused the credentials of user {self.settings.username!r}", method="POST", url=where
            )
        self._session_id = str(session)
        self.login_info = result
        self.clock_skew = _clock_skew(response)
        log.debug("logged in to %s as %r", self.settings.base_url, self.settings.username)
        return result

    # --- answers --------------------------------------------------------------------
    @staticmethod
    def _json_or_none(response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def interpret(self, call: Call[T], response: httpx.Response, relogged: bool, attempt: int) -> Any:
        """A parsed value, EXPIRED, a Retry, or an exception raised."""
        status = response.status_code
        method, where = call.method, redact_url(response.request.url)
        content_type = response.headers.get("content-type", "")
        can_retry = attempt < self.settings.max_retries and (call.idempotent or status == 503)
        if status in RETRY_STATUSES:
            if can_retry:
                return Retry(backoff(attempt, _retry_after(response)), f"HTTP {status}")
            raise ServerError(
                f"the server failed with HTTP {status} (retries exhausted)", status=status, method=method, url=where
            )
        is_html = "html" in content_type or response.content[:1] == b"<"
        if call.session and (status in (401, 403) or (is_html and call.expect != "none")):
            if not relogged:
                return EXPIRED
            if status in (401, 403):
                raise PermissionDeniedError(
                    f"permission denied for {call.what or call.path}", status=status, method=method, url=where
                )
        if call.expect == "bytes" and status == 200 and not content_type.startswith(("application/json", "text/")):
            return call.parse(response.content) if call.parse else response.content
        body = self._json_or_none(response)
        if body is None and status == 200 and call.expect == "none":
            return None
        if body is None and status < 400:
            if is_html:
                raise ProtocolError(f"expected JSON from {call.path}, got an HTML page", method=method, url=where)
            if can_retry:  # a cut-off JSON document: the answer was damaged in transit
                return Retry(backoff(attempt), "malformed JSON")
            raise ProtocolError(f"malformed JSON from {call.path}", method=method, url=where)
        if status >= 400:
            message = _error_message(response, body)
            what = f"{call.what}: " if call.what else ""
            error = {
                400: BadRequestError,
                404: NotFoundError,
                401: PermissionDeniedError,
                403: PermissionDeniedError,
            }.get(status, ApiError)
            raise error(f"{what}{message}", status=status, method=method, url=where)
        if isinstance(body, dict) and body.get("success") is False:
            if call.session and not relogged:
                return EXPIRED
            raise ApiError(
                f"{call.what or call.path}: {_error_message(response, body)}", status=status, method=method, url=where
            )
        return call.parse(body) if call.parse else body

    def transport_retry(self, call: Call[Any], exc: httpx.TransportError, attempt: int) -> Retry | None:
        if attempt >= self.settings.max_retries:
            return None
        # A failure to connect never reached the server: safe to retry anything.
        if call.idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return Retry(backoff(attempt), type(exc).__name__)
        return None


# --- streaming helpers (pure) ----------------------------------------------------------


class _BackgroundHash:
    """SHA-256 computed on a helper thread, in order, while the next chunks arrive.

    hashlib releases the GIL on large buffers, so hashing overlaps with reading the
    socket; at most MAX_PENDING chunks wait, which bounds memory.
    """

    MAX_PENDING = 8
    BATCH = 1 << 20  # hand chunks over a megabyte at a time: one thread hop per MB, not per 64 kB read

    def __init__(self) -> None:
        self._hasher = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._pending: deque[Future[None]] = deque()
        self._batch: list[bytes] = []
        self._batched = 0

    def _hash(self, chunks: list[bytes]) -> None:
        # One call per batch: each call takes the GIL back once, which the reading thread feels.
        self._hasher.update(b"".join(chunks))

    def _submit(self) -> None:
        if self._batch:
            self._pending.append(self._pool.submit(self._hash, self._batch))
            self._batch, self._batched = [], 0
        while len(self._pending) > self.MAX_PENDING:
            self._pending.popleft().result()

    def update(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= self.BATCH:
            self._submit()

    def hexdigest(self) -> str:
        self._submit()
        while self._pending:
            self._pending.popleft().result()
        return self._hasher.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _NoHash:
    """For downloads whose caller hashes elsewhere (or not at all): SHA-256 costs a core at 1.8 GB/s."""

    def update(self, chunk: bytes) -> None:
        pass

    def hexdigest(self) -> None:
        return None

    def close(self) -> None:
        pass


class DownloadTracker:
    """Size, SHA-256 and resume bookkeeping of one export download."""

    def __init__(self, export_id: str, sha256: bool = True) -> None:
        self.export_id = export_id
        self._hash_class: type[_BackgroundHash] | type[_NoHash] = _BackgroundHash if sha256 else _NoHash
        self.hasher = self._hash_class()
        self.offset = 0
        self.total: int | None = None
        self.resumes = 0
        self.filename = f"export_{export_id}"
        self.content_type: str | None = None
        self.ranges = False

    def request_headers(self) -> dict[str, str]:
        return {"Range": f"bytes={self.offset}-"} if self.offset and self.ranges else {}

    def begin(self, response: httpx.Response) -> bool:
        """Read the answer's headers; False when the bytes so far must be thrown away (restart)."""
        from ev_ingest.client.filenames import filename_from_disposition

        headers = response.headers
        self.content_type = headers.get("content-type")
        self.filename = filename_from_disposition(headers.get("content-disposition"), self.filename)
        self.ranges = headers.get("accept-ranges", "").lower() == "bytes"
        length = headers.get("content-length")
        if response.status_code == 206:
            total = headers.get("content-range", "").rpartition("/")[2]
            self.total = int(total) if total.isdigit() else self.total
            return True
        self.total = int(length) if length and length.isdigit() else None
        if self.offset:
            # The server ignored our Range: start over.
            self.hasher.close()
            self.hasher = self._hash_class()
            self.offset = 0
            return False
        return True

    def update(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def finish(self) -> DownloadResult:
        if self.total is not None and self.offset != self.total:
            self.hasher.close()
            raise DownloadError(f"export {self.export_id} download stopped at {self.offset} of {self.total} bytes")
        digest = self.hasher.hexdigest()
        self.hasher.close()
        return DownloadResult(self.filename, self.offset, digest, self.content_type, self.resumes)

    def give_up(self, exc: BaseException) -> DownloadError:
        self.hasher.close()
        return DownloadError(
            f"export {self.export_id} download failed after {self.resumes} resumes at byte {self.offset}"
            f" of {self.total if self.total is not None else '?'}: {type(exc).__name__}"
        )


class MultipartFrames:
    """Incremental parser of `video.web?multipart_encode=1` answers into NativeFrames."""

    def __init__(self, content_type: str) -> None:
        boundary = content_type.partition("boundary=")[2].strip().strip('"')
        if not boundary:
            raise ProtocolError(f"native stream without a multipart boundary ({content_type!r})")
        self.marker = b"--" + boundary.encode()
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[NativeFrame]:
        self.buffer += chunk
        frames = []
        while True:
            start = self.buffer.find(self.marker)
            if start < 0:
                return frames
            head_end = self.buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                return frames
            headers = {}
            for line in bytes(self.buffer[start + len(self.marker) : head_end]).decode("latin-1").split("\r\n"):
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            try:
                length = int(headers["datalen"])
            except (KeyError, ValueError):
                raise ProtocolError("native stream part without a DataLen header") from None
            body_start = head_end + 4
            if len(self.buffer) < body_start + length:
                return frames
            data = bytes(self.buffer[body_start : body_start + length])
            del self.buffer[: body_start + length]
            frames.append(
                NativeFrame(
                    content_type=headers.get("content-type", "application/octet-stream"),
                    data=data,
                    iframe=headers.get("iframe", "0") not in ("0", "false", ""),
                    frame=int(headers["frame"]) if headers.get("frame", "").isdigit() else None,
                    time_offset_ms=int(headers["timeoffset"]) if headers.get("timeoffset", "").isdigit() else None,
                )
            )


def raise_for_stream(
    client: BaseClient, call: Call[Any], response: httpx.Response, relogged: bool, attempt: int
) -> Any:
    """For a streamed answer that is not a 2xx stream: interpret its (read) body."""
    outcome = client.interpret(call, response, relogged, attempt)
    if outcome is EXPIRED or isinstance(outcome, Retry):
        return outcome
    raise ProtocolError(
        f"unexpected answer to {call.path} (HTTP {response.status_code})",
        method=call.method,
        url=redact_url(response.request.url),
    )


__all__ = [
    "EXPIRED",
    "BaseClient",
    "Call",
    "DownloadTracker",
    "ExacqError",
    "MultipartFrames",
    "Retry",
    "backoff",
    "check_range",
    "raise_for_stream",
    "translate_transport",
]


def _clock_skew(response: httpx.Response) -> timedelta | None:
    try:
        server = parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return None
    return server - clock.now() if server.tzinfo else None
