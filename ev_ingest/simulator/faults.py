"""Seeded, reproducible fault injection for the simulator, as ASGI middleware.

Spec: comma-separated `kind=probability[:argument]`, e.g.
``5xx=0.05,reset=0.02,slow=0.1:2s,expire=0.01,truncate=0.01``.

=========  ====================================================================
kind       effect on a request it hits
=========  ====================================================================
5xx        answered 503 with an HTML error page, before the handler runs
reset      the answer's headers and a few bytes go out, then the connection drops
truncate   the body stops short of its Content-Length (JSON bodies are cut in half)
slow       the answer waits the argument (default 2 s) before it starts
expire     the request's session is expired before the handler sees it
misrange   a resumed download (``Range: bytes=N-``) is answered from byte N/2, with an
           honest ``Content-Range``: a server that resumes elsewhere than asked
bounce     the request's session is expired and the answer is a bare 302 to ``login.web``
           (no body), as a real server says "session gone"; only a session used before
           is bounced, so the client's one re-login always gets through
garble     the answer says ``Content-Encoding: gzip`` over bytes that are not gzip: a body
           that does not decode
closefail  closing a search (``logout.web?search_id=``) answers 404: the close is evidenced
           only as a call whose answer a vendor app ignores
=========  ====================================================================

An item `@TEXT` limits the faults to requests whose path and query contain TEXT, e.g.
``truncate=1.0,@action=download`` cuts every export download and nothing else.

Each request draws from a generator seeded by (seed, request number), so a run with
the same requests in the same order sees the same faults. `/_sim/*` is never faulted.
Counters and the peak number of requests in flight are kept for `/_sim/stats`.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

FAULT_KINDS = ("5xx", "reset", "truncate", "slow", "expire", "misrange", "bounce", "garble", "closefail")  # new last
_SPEC_ITEM = re.compile(r"^(?P<kind>[a-z0-9]+)=(?P<p>[0-9.]+)(?::(?P<arg>[0-9.]+)(?P<unit>ms|s)?)?$")


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultSpec:
    probabilities: dict[str, float] = field(default_factory=dict)
    slow_seconds: float = 2.0
    only: str | None = None  # faults only where the path and query contain this

    def applies(self, scope: dict) -> bool:
        if self.only is None:
            return True
        return self.only in scope["path"] + "?" + scope.get("query_string", b"").decode("latin-1")

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        spec = cls()
        for item in filter(None, (part.strip() for part in (text or "").split(","))):
            if item.startswith("@") and len(item) > 1:
                spec.only = item[1:]
                continue
            match = _SPEC_ITEM.match(item)
            if not match or match["kind"] not in FAULT_KINDS:
                raise FaultSpecError(f"bad fault {item!r}: expected kind=probability with kind in {FAULT_KINDS}")
            probability = float(match["p"])
            if not 0 <= probability <= 1:
                raise FaultSpecError(f"fault {item!r}: probability must be within 0..1")
            spec.probabilities[match["kind"]] = probability
            if match["arg"]:
                scale = 0.001 if match["unit"] == "ms" else 1.0
                spec.slow_seconds = float(match["arg"]) * scale
        return spec

    def __bool__(self) -> bool:
        return any(self.probabilities.values())


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "faults": dict(self.faults),
        }


class DroppedConnection(Exception):
    """Raised inside the server to make it drop a connection mid-answer (a simulated reset)."""


class FaultInjector:
    def __init__(
        self,
        app: Callable,
        spec: FaultSpec,
        seed: int,
        expire_session: Callable[[str], bool],
        session_used: Callable[[str], bool] = lambda _: True,
    ) -> None:
        self.app = app
        self.spec = spec
        self.seed = seed
        self.expire_session = expire_session
        self.session_used = session_used  # a session that answered a request before this one
        self.stats = Stats()

    def _draw(self, rng: random.Random, kind: str) -> bool:
        return rng.random() < self.spec.probabilities.get(kind, 0.0)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        answered = False

        async def counted(message: dict) -> None:
            # The request leaves the count *before* its last bytes go out: a client that reads
            # them and sends its next request can never be counted twice (the count would race).
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body") and not answered:
                answered = True
                stats.in_flight -= 1
            await send(message)

        try:
            await self._handle(scope, receive, counted, random.Random(f"{self.seed}:{stats.requests}"))
        finally:
            if not answered:
                stats.in_flight -= 1

    async def _handle(self, scope: dict, receive: Callable, send: Callable, rng: random.Random) -> None:
        # Draw every kind on every request, so one kind's probability does not shift another's stream.
        hits = {kind: self._draw(rng, kind) for kind in FAULT_KINDS}
        if not self.spec or not self.spec.applies(scope):
            await self.app(scope, receive, send)
            return
        if hits["slow"]:
            self.stats.faults["slow"] += 1
            await asyncio.sleep(self.spec.slow_seconds)
        if hits["5xx"]:
            self.stats.faults["5xx"] += 1
            body = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        session = query.get("s", [""])[0]
        if hits["bounce"] and session and self.session_used(session) and self.expire_session(session):
            self.stats.faults["bounce"] += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [(b"location", b"/login.web"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if hits["closefail"] and scope["path"].endswith("/logout.web") and "search_id" in query:
            self.stats.faults["closefail"] += 1
            body = b"Not Found"
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if hits["expire"]:
            if session and self.expire_session(session):
                self.stats.faults["expire"] += 1
        if hits["garble"]:
            self.stats.faults["garble"] += 1
            send = _garbling_send(send)
        if hits["misrange"]:
            scope = _misranged(scope, self.stats)
        if hits["reset"] or hits["truncate"]:
            kind = "reset" if hits["reset"] else "truncate"
            self.stats.faults[kind] += 1
            send = _cutting_send(send, kind, rng)
        await self.app(scope, receive, send)


def _garbling_send(send: Callable) -> Callable:
    """A `send` whose answer claims gzip over bytes that are not: the body cannot be decoded."""

    async def garbling(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-encoding"]
            message = {**message, "headers": [*headers, (b"content-encoding", b"gzip")]}
        await send(message)

    return garbling


def _misranged(scope: dict, stats: Stats) -> dict:
    """`scope` with a `Range: bytes=N-` (N > 0) asking for bytes=N/2- instead."""
    headers = []
    for name, value in scope.get("headers", []):
        asked = value.decode("latin-1")
        if name == b"range" and asked.startswith("bytes=") and asked.endswith("-") and asked[6:-1].isdigit():
            offset = int(asked[6:-1])
            if offset > 0:
                stats.faults["misrange"] += 1
                value = f"bytes={offset // 2}-".encode()
        headers.append((name, value))
    return {**scope, "headers": headers}


def _cutting_send(send: Callable, kind: str, rng: random.Random) -> Callable:
    """A `send` that cuts the body: early for a reset, late for a truncation."""
    state: dict[str, Any] = {"declared": None, "sent": 0, "buffer": b"", "json": False}

    async def cutting(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            state["declared"] = int(headers.get(b"content-length", b"0") or 0)
            state["json"] = headers.get(b"content-type", b"").startswith(b"application/json")
            if state["json"]:
                state["start"] = message  # held until the body is known
                return
            await send(message)
            return
        body = message.get("body", b"")
        if state["json"]:
            # Collect the whole JSON body, then send a consistent but cut document.
            state["buffer"] += body
            if message.get("more_body"):
                return
            cut = state["buffer"][: max(1, len(state["buffer"]) // 2)]
            start = state["start"]
            start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            start["headers"].append((b"content-length", str(len(cut)).encode()))
            await send(start)
            await send({"type": "http.response.body", "body": cut})
            return
        declared = state["declared"] or 0
        limit = int(declared * (rng.uniform(0.0, 0.3) if kind == "reset" else rng.uniform(0.6, 0.99)))
        room = limit - state["sent"]
        if room < len(body):
            if room > 0:
                await send({"type": "http.response.body", "body": body[:room], "more_body": True})
            raise DroppedConnection(f"simulated {kind} after {limit} of {declared} bytes")
        state["sent"] += len(body)
        await send(message)

    return cutting
