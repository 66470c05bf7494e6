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
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import ValidationError

from ev_ingest import clock
from ev_ingest.client import _deadline, paths
from ev_ingest.client._config import (
    DOWNLOAD_RESUMES,
    MAX_DOWNLOAD_BYTES,
    MAX_FRAME_GAP,
    MAX_JSON_BYTES,
    MAX_PART_BYTES,
    MIN_DOWNLOAD_RATE,
    RETRY_BASE_DELAY,
    RETRY_MAX_DELAY,
    RETRY_STATUSES,
    ClientSettings,
    export_label,
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


# --- the steps of a call ---------------------------------------------------------------
# Session handling (log in, replay once on expiry, retry with backoff) is written once, as
# generators that yield what they need done, as httpx's `Auth.auth_flow` is; the sync and
# async clients only drive them: send a request, sleep, log in.


@dataclass
class Send:
    """Send this request; the answer (or the httpx.TransportError) is sent back in."""

    call: Call[Any]
    args: dict[str, Any]
    stream: bool = False  # keep a 2xx stream open for the caller; read anything else
    headers: dict[str, str] | None = None


@dataclass
class Pause:
    delay: float


@dataclass
class Relogin:
    """Log in (under the client's lock) unless another caller already replaced `stale`."""

    stale: str | None


Step = Send | Pause | Relogin
Flow = Generator[Step, Any, T]


def is_stream(response: httpx.Response) -> bool:
    """A 2xx answer carrying the asked-for bytes (not a JSON error or an HTML login page)."""
    content_type = response.headers.get("content-type", "")
    return response.status_code in (200, 206) and "json" not in content_type and "html" not in content_type


def pause_within(delay: float) -> float:
    """A retry's pause, refused when it would outlast the call's deadline."""
    deadline = _deadline.current()
    if deadline is not None and delay >= deadline.left():
        deadline.expired = True
        raise RequestTimeout(
            f"no answer within the call's deadline of {deadline.seconds:g} s (the next retry would pass it)"
        )
    return delay


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
    if response.headers.get("content-type", "").startswith("text/plain"):
        # The seed's 400s carry a plain-text reason ("Invalid Request"): one line of it, redacted.
        text = " ".join(response.text.split())[:200]
        if text:
            return f"HTTP {response.status_code}: {redact(text)}"
    return f"HTTP {response.status_code}"


def parse_answer(call: Call[T], body: Any, method: str = "GET", where: str | None = None) -> T:
    """`call.parse(body)`; an answer whose shape the models do not recognise is a ProtocolError,
    never a silent default (a real server that answers differently must be noticed)."""
    if call.parse is None:
        return body  # type: ignore[no-any-return]
    try:
        return call.parse(body)
    except ExacqError:
        raise
    except ValidationError as exc:
        fields = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " * bool(e["loc"]) + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()[:3]
        )
        raise ProtocolError(
            f"unrecognised answer to {call.what or call.path}: {fields}", method=method, url=where
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ProtocolError(
            f"unrecognised answer to {call.what or call.path}: {type(exc).__name__} {redact(str(exc))[:120]}",
            method=method,
            url=where,
        ) from None


def _sent_to_login(response: httpx.Response) -> bool:
    return 300 <= response.status_code < 400 and "login.web" in httpx.URL(response.headers.get("location", "")).path


def decoding_error(exc: httpx.DecodingError, response: httpx.Response) -> ProtocolError:
    """An answer whose Content-Encoding does not decode, as a client error (never a raw httpx one)."""
    return ProtocolError(
        f"the answer could not be decoded ({type(exc).__name__}: its Content-Encoding is damaged)",
        method=response.request.method,
        url=redact_url(response.request.url),
    )


def translate_transport(exc: httpx.TransportError, method: str, url: str, reading: str | None = None) -> TransportError:
    """The one place httpx transport errors become client errors; `reading` names the stream
    whose answer was being read when the connection failed."""
    kind = type(exc).__name__
    error = RequestTimeout if isinstance(exc, httpx.TimeoutException) else TransportError
    if reading is not None:
        message = f"{reading}: the connection failed while the answer was read ({kind}: {redact(str(exc))})"
    elif error is RequestTimeout:
        message = f"timed out talking to the exacqVision server ({kind})"
    else:
        message = f"could not talk to the exacqVision server: {kind}: {redact(str(exc))}"
    return error(message, method=method, url=url)


def stream_error(exc: httpx.TransportError, what: str, response: httpx.Response) -> TransportError:
    """A network error while a stream is read, as a client error (never a raw httpx one)."""
    return translate_transport(exc, response.request.method, redact_url(response.request.url), reading=what)


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
        """RFC 3339 in UTC with `Z`, as the vendor-family app sends request times.

        ExacqMan sends the server's local offset instead; real servers accept both (evidence
        section 4), and UTC needs no camera list first to learn the offset."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # naive times are taken as UTC (documented)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

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
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return None  # RecursionError: a hostile, absurdly deep document

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
        if call.session and call.expect != "none" and _sent_to_login(response):
            # A bare 3xx to the login page is how a real server says the session is gone
            # (issue 25): log in once and replay; sent there again, the session cannot be had.
            if not relogged:
                return EXPIRED
            raise SessionExpiredError(
                f"{call.what or call.path}: the server sends a fresh session to its login page",
                method=method,
                url=where,
            )
        if 300 <= status < 400 and call.expect != "none":
            # Never followed (the client does not follow redirects): a redirect elsewhere is not an answer.
            raise ProtocolError(
                f"{call.path} answered a redirect (HTTP {status}), not an answer", method=method, url=where
            )
        is_html = "html" in content_type or response.content[:1] == b"<"
        if call.session and (status in (401, 403) or (is_html and call.expect != "none")):
            if not relogged:
                return EXPIRED
            if status in (401, 403):
                raise PermissionDeniedError(
                    f"permission denied for {call.what or call.path}", status=status, method=method, url=where
                )
        if call.expect == "none" and 200 <= status < 400:
            return None  # e.g. logout.web answers 302 to the login page (seed): the body is not ours to read
        if call.expect == "bytes" and status == 200 and not content_type.startswith(("application/json", "text/")):
            return parse_answer(call, response.content, method, where)
        body = self._json_or_none(response)
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
        return parse_answer(call, body, method, where)

    def transport_retry(self, call: Call[Any], exc: httpx.TransportError, attempt: int) -> Retry | None:
        deadline = _deadline.current()
        if attempt >= self.settings.max_retries or (deadline is not None and deadline.expired):
            return None
        # A failure to connect never reached the server: safe to retry anything.
        if call.idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return Retry(backoff(attempt), type(exc).__name__)
        return None

    def build(self, step: Send) -> httpx.Request:
        args = step.args
        http: httpx.Client | httpx.AsyncClient = self._http  # type: ignore[attr-defined]  # set by each client
        return http.build_request(
            args["method"], args["url"], params=args["params"], data=args["data"], headers=step.headers
        )

    def deadline(self) -> _deadline.Deadline:
        return _deadline.Deadline.after(self.settings.deadline_s)

    # --- flows (driven by `_client`) ---------------------------------------------------
    def login_flow(self) -> Flow[LoginResult]:
        call = self.login_call()
        attempt = 0
        while True:
            response = yield from self._send_flow(call, attempt_retries=True)
            outcome = self.accept_login(response, attempt)
            if not isinstance(outcome, Retry):
                return outcome
            yield Pause(pause_within(outcome.delay))
            attempt += 1

    def _send_flow(
        self, call: Call[Any], attempt_retries: bool, stream: bool = False, headers: dict[str, str] | None = None
    ) -> Flow[httpx.Response]:
        """One request, retried on transport errors where that is safe."""
        attempt = 0
        while True:
            args = self.request_args(call)
            try:
                return (yield Send(call, args, stream, headers))
            except httpx.TransportError as exc:
                retry = self.transport_retry(call, exc, attempt) if attempt_retries else None
                if retry is None:
                    raise self.translate(exc, call, args) from None
                yield Pause(pause_within(retry.delay))
                attempt += 1

    def call_flow(self, call: Call[T], stream: bool = False, headers: dict[str, str] | None = None) -> Flow[Any]:
        """A call: log in when needed, retry what may be retried, log in again once on expiry.
        With `stream`, a 2xx stream is returned open; anything else is read and judged."""
        relogged = False
        attempt = 0
        while True:
            if call.session and self._session_id is None:
                yield Relogin(None)
            session = self._session_id
            response = yield from self._send_flow(call, attempt_retries=True, stream=stream, headers=headers)
            if stream and is_stream(response):
                return response
            outcome = self.interpret(call, response, relogged, attempt)
            if stream and outcome is not EXPIRED and not isinstance(outcome, Retry):
                raise ProtocolError(
                    f"unexpected answer to {call.path} (HTTP {response.status_code})",
                    method=call.method,
                    url=redact_url(response.request.url),
                )
            if outcome is EXPIRED:
                relogged = True
                yield Relogin(session)
                continue
            if isinstance(outcome, Retry):
                yield Pause(pause_within(outcome.delay))
                attempt += 1
                continue
            return outcome

    def translate(self, exc: httpx.TransportError, call: Call[Any], args: dict[str, Any]) -> TransportError:
        url = redact_url(httpx.URL(self.settings.base_url).join(args["url"]))
        deadline = _deadline.current()
        if deadline is not None and deadline.expired:
            return RequestTimeout(
                f"no complete answer within the call's deadline of {deadline.seconds:g} s "
                "(the server is too slow or trickling its answer)",
                method=call.method,
                url=url,
            )
        return translate_transport(exc, call.method, url)


# --- streaming helpers (pure) ----------------------------------------------------------


class CappedBody:
    """An answer read into memory, refused past `limit` bytes (decoded: a gzip bomb counts
    as what it expands to). A server that sends a gigabyte, or never stops, gets one error."""

    def __init__(self, response: httpx.Response, limit: int = MAX_JSON_BYTES) -> None:
        self.response = response
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise self._refused(f"announces {int(length) / 1e6:.0f} MB")

    def _refused(self, said: str) -> ProtocolError:
        return ProtocolError(
            f"the server's answer {said}, over the {self.limit >> 20} MiB an API answer may have: refused",
            method=self.response.request.method,
            url=redact_url(self.response.request.url),
        )

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise self._refused("grew past the limit")
        self.parts.append(chunk)

    def result(self) -> httpx.Response:
        """The answer with its (decoded) body in memory."""
        headers = [(k, v) for k, v in self.response.headers.multi_items() if k.lower() != "content-encoding"]
        return httpx.Response(
            self.response.status_code,
            headers=headers,
            content=b"".join(self.parts),
            request=self.response.request,
            extensions=self.response.extensions,
        )


class DownloadPace:
    """A download must go on arriving: after `grace` seconds it must average MIN_DOWNLOAD_RATE,
    and it may not outgrow MAX_DOWNLOAD_BYTES. Checked on every chunk, so a server that
    trickles a byte at a time ends in an error instead of holding the pipeline forever."""

    def __init__(self, label: str, grace: float) -> None:
        self.label = label
        self.grace = grace
        self.began = time.monotonic()
        self.bytes = 0

    def check(self, size: int) -> None:
        self.bytes += size
        elapsed = time.monotonic() - self.began
        if self.bytes > MAX_DOWNLOAD_BYTES:
            raise DownloadError(f"{self.label}: the download passed {MAX_DOWNLOAD_BYTES >> 30} GiB: refused")
        if elapsed > self.grace and self.bytes < (elapsed - self.grace) * MIN_DOWNLOAD_RATE:
            raise DownloadError(
                f"{self.label}: the server sends too slowly ({self.bytes / max(elapsed, 1e-9) / 1024:.1f} kB/s "
                f"over {elapsed:.0f} s, under {MIN_DOWNLOAD_RATE >> 10} kB/s): given up"
            )


class FrameGap:
    """A native stream must deliver a whole frame at least every `limit` seconds."""

    def __init__(self, limit: float = MAX_FRAME_GAP) -> None:
        self.limit = limit
        self.last = time.monotonic()

    def check(self, frames: int) -> None:
        now = time.monotonic()
        if frames:
            self.last = now
        elif now - self.last > self.limit:
            raise ProtocolError(f"the native stream sent no whole frame for {now - self.last:.0f} s: given up")


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


def content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total length) of a `Content-Range: bytes FIRST-LAST/TOTAL` (None where
    absent or malformed; TOTAL may be `*`)."""
    unit, _, spec = (value or "").strip().partition(" ")
    span, _, total = spec.partition("/")
    first = span.partition("-")[0]
    if unit != "bytes" or not first.isdigit():
        return None, None
    return int(first), int(total) if total.isdigit() else None


class DownloadTracker:
    """Size, SHA-256, pace and resume decisions of one export download: everything but the
    I/O, so the sync and async downloads are the same few lines around it."""

    def __init__(self, export_id: str, sha256: bool = True, grace: float = 120.0) -> None:
        self.export_id = export_id
        self.label = export_label(export_id)
        self.pace = DownloadPace(self.label, grace)
        self._hash_class: type[_BackgroundHash] | type[_NoHash] = _BackgroundHash if sha256 else _NoHash
        self.hasher = self._hash_class()
        self.offset = 0
        self.total: int | None = None
        self.resumes = 0
        self.filename = self.label.replace(" #", "_")  # the export id is a capability: not a file name
        self.content_type: str | None = None
        self.ranges = False
        self.misranged = False  # a server that resumed elsewhere than asked is never asked to resume again

    def request_headers(self) -> dict[str, str]:
        return {"Range": f"bytes={self.offset}-"} if self.offset and self.ranges and not self.misranged else {}

    def begin(self, response: httpx.Response) -> bool:
        """Read the answer's headers; False when the bytes so far must be thrown away (restart)."""
        from ev_ingest.client.filenames import filename_from_disposition

        headers = response.headers
        self.content_type = headers.get("content-type")
        self.filename = filename_from_disposition(headers.get("content-disposition"), self.filename)
        self.ranges = headers.get("accept-ranges", "").lower() == "bytes"
        length = headers.get("content-length")
        if response.status_code == 206:
            first, total = content_range(headers.get("content-range"))
            if first == self.offset and (total is None or self.total is None or total == self.total):
                self.total = total if total is not None else self.total
                return True
            # Bytes from elsewhere than asked, or of another length: appending them would make a
            # file that is not the server's, and a hash of the wrong bytes recorded as verified.
            log.warning(
                "%s: asked to resume at byte %d of %s, the server answered %r: starting again from byte 0",
                self.label,
                self.offset,
                self.total if self.total is not None else "?",
                headers.get("content-range"),
            )
            self.misranged = True
            self._restart()
            return False
        self.total = int(length) if length and length.isdigit() else None
        if self.offset:
            # The server ignored our Range: start over.
            self._restart()
            return False
        return True

    def _restart(self) -> None:
        self.hasher.close()
        self.hasher = self._hash_class()
        self.offset = 0

    def start(self, response: httpx.Response, rewind: Callable[[], None] | None) -> None:
        """`begin`, rewinding what was written when the server restarts from byte 0; a partial
        answer from the wrong byte is dropped unread and asked for again, whole (a resume)."""
        if not self.begin(response):
            if rewind is None:
                self.hasher.close()
                raise DownloadError(f"{self.label}: the server cannot resume the download")
            rewind()
            if response.status_code == 206:
                raise TransportError("a resumed answer started at another byte than asked")

    def update(self, chunk: bytes) -> None:
        try:
            self.pace.check(len(chunk))
        except DownloadError:
            self.hasher.close()
            raise
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def check_complete(self) -> bool:
        """True when all announced bytes came; a TransportError (resumable) when the answer ended early."""
        if self.total is None or self.offset >= self.total:
            return True
        raise TransportError("the answer ended early")

    def resume_after(self, exc: TransportError) -> float:
        """The pause before resuming after `exc`; the download's DownloadError when out of resumes."""
        if self.resumes >= DOWNLOAD_RESUMES:
            raise self.give_up(exc) from None
        self.resumes += 1
        log.debug("%s: connection dropped at byte %s, resuming", self.label, self.offset)
        return backoff(self.resumes - 1)

    def finish(self) -> DownloadResult:
        if self.total is not None and self.offset != self.total:
            self.hasher.close()
            raise DownloadError(f"{self.label} download stopped at {self.offset} of {self.total} bytes")
        digest = self.hasher.hexdigest()
        self.hasher.close()
        return DownloadResult(self.filename, self.offset, digest, self.content_type, self.resumes)

    def give_up(self, exc: BaseException) -> DownloadError:
        self.hasher.close()
        return DownloadError(
            f"{self.label} download failed after {self.resumes} resumes at byte {self.offset}"
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

    HEAD_LIMIT = 16 << 10  # a part's headers are a few lines

    def feed(self, chunk: bytes) -> list[NativeFrame]:
        self.buffer += chunk
        frames = []
        while True:
            start = self.buffer.find(self.marker)
            if start < 0:
                if len(self.buffer) > MAX_PART_BYTES + self.HEAD_LIMIT:
                    raise ProtocolError("the native stream sent over 32 MiB without a part boundary: refused")
                return frames
            head_end = self.buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                if len(self.buffer) - start > self.HEAD_LIMIT:
                    raise ProtocolError("a native stream part's headers ran past 16 kB: refused")
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
            if not 0 <= length <= MAX_PART_BYTES:
                raise ProtocolError(
                    f"native stream part of {length} bytes (DataLen), over the {MAX_PART_BYTES >> 20} MiB a frame may "
                    "have: refused"
                )
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


__all__ = [
    "EXPIRED",
    "BaseClient",
    "Call",
    "DownloadTracker",
    "ExacqError",
    "MultipartFrames",
    "Retry",
    "Send",
    "Pause",
    "Relogin",
    "backoff",
    "check_range",
    "translate_transport",
]


def _clock_skew(response: httpx.Response) -> timedelta | None:
    try:
        server = parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return None
    return server - clock.now() if server.tzinfo else None
