"""What the sync and async clients share, with no I/O: building requests, reading answers.

An API method is described by a `Call` (method, path, parameters, what answer to
expect, how to parse it). `BaseClient` turns a Call into request arguments, and turns
an httpx response into one of: a value, "the session expired" or "retry after N s",
or raises the error from `_exceptions`. The sync and async clients only move bytes.
Bodies read as they arrive (capped answers, downloads and their hashing thread, the
native stream's pace) are `_streams`; the native stream's multipart parser is `_multipart`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import ValidationError

from ev_ingest import clock
from ev_ingest.client import _deadline, paths
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
from ev_ingest.client.models import LoginResult

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


__all__ = [
    "EXPIRED",
    "BaseClient",
    "Call",
    "ExacqError",
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
