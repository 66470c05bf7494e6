"""Reading bodies as they arrive, with no I/O of its own: an API answer read under a cap
(`CappedBody`), a download's size, SHA-256 (on a helper thread), pace and resume decisions
(`DownloadTracker`), the native stream's frame-gap watchdog (`FrameGap`), and the errors of a body being read
(`stream_error`, `decoding_error`)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from ev_ingest.client._base import backoff, translate_transport
from ev_ingest.client._config import (
    DOWNLOAD_RESUMES,
    MAX_DOWNLOAD_BYTES,
    MAX_FRAME_GAP,
    MAX_JSON_BYTES,
    MIN_DOWNLOAD_RATE,
    export_label,
    redact_url,
)
from ev_ingest.client._exceptions import (
    DownloadError,
    ProtocolError,
    TransportError,
)
from ev_ingest.client.models import DownloadResult

log = logging.getLogger("ev_ingest.client")


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


def decoding_error(exc: httpx.DecodingError, response: httpx.Response) -> ProtocolError:
    """An answer whose Content-Encoding does not decode, as a client error (never a raw httpx one)."""
    return ProtocolError(
        f"the answer could not be decoded ({type(exc).__name__}: its Content-Encoding is damaged)",
        method=response.request.method,
        url=redact_url(response.request.url),
    )


def stream_error(exc: httpx.TransportError, what: str, response: httpx.Response) -> TransportError:
    """A network error while a stream is read, as a client error (never a raw httpx one)."""
    return translate_transport(exc, response.request.method, redact_url(response.request.url), reading=what)
