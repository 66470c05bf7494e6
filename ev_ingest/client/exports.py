"""Exports area: formats, create, progress, wait, streamed download, finish.

A download never holds the body in memory: chunks go to a file object, a path (written
as `<name>.partial` and renamed only when complete and verified against the announced
length), or a caller's loop. Size and SHA-256 are computed on the way. A dropped
connection resumes with a Range request where the server allows it, or starts over.
`export()` does create -> wait -> download and always finishes the export, also on
failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call, check_range
from ev_ingest.client._config import (
    EXPORT_POLL_INTERVAL,
    EXPORT_STALL_POLLS,
    EXPORT_WAIT_TIMEOUT,
    export_label,
)
from ev_ingest.client._exceptions import (
    DownloadError,
    ExportFailedError,
    ExportTimeoutError,
    NotFoundError,
    TransportError,
)
from ev_ingest.client._streams import DownloadTracker
from ev_ingest.client.models import DownloadResult, ExportFormat, ExportProgress

log = logging.getLogger("ev_ingest.client")
ProgressCallback = Callable[[int], None]


class _ExportCalls:
    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _formats() -> Call[list[ExportFormat]]:
        return Call(
            "GET",
            paths.EXPORT,
            session=False,
            what="export formats",
            parse=lambda b: [
                ExportFormat.model_validate(f if isinstance(f, dict) else {"name": f}) for f in b.get("formats", [])
            ],
        )

    @staticmethod
    def _create(camera_id: int, start: datetime, end: datetime, fmt: str, name: str | None) -> Call[str]:
        check_range(start, end)

        def parse(body: Any) -> str:
            if not body.get("export_id"):
                raise ExportFailedError(f"the server did not create an export: {body.get('error', body)}")
            return str(body["export_id"])

        # Not idempotent: a replayed create would leave an orphan export on the server.
        return Call(
            "GET",
            paths.EXPORT,
            {"camera": int(camera_id), "start": start, "end": end, "format": fmt, "name": name},
            idempotent=False,
            parse=parse,
            what=f"export of camera {camera_id}",
        )

    @staticmethod
    def _progress(export_id: str) -> Call[int]:
        # Follow-up calls carry only the export id (it works as a capability), as real clients do.
        return Call(
            "GET",
            paths.EXPORT,
            {"export": export_id},
            session=False,
            parse=lambda b: ExportProgress.model_validate(b).progress,
            what=export_label(export_id),
        )

    @staticmethod
    def _download(export_id: str) -> Call[None]:
        return Call(
            "GET",
            paths.EXPORT,
            {"export": export_id, "action": "download"},
            session=False,
            what=f"download of {export_label(export_id)}",
        )

    def _tracker(self, export_id: str, sha256: bool = True) -> DownloadTracker:
        return DownloadTracker(export_id, sha256, grace=self._client.settings.deadline_s)

    @staticmethod
    def _finish(export_id: str) -> Call[None]:
        return Call(
            "GET",
            paths.EXPORT,
            {"export": export_id, "action": "finish"},
            session=False,
            expect="none",
            what=f"finish {export_label(export_id)}",
        )


class _WaitState:
    """Progress bookkeeping shared by the sync and async waits."""

    def __init__(self, export_id: str, timeout: float, on_progress: ProgressCallback | None) -> None:
        self.label = export_label(export_id)
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.on_progress = on_progress
        self.last = -1
        self.still = 0

    def seen(self, progress: int) -> bool:
        """True when done; raises when stuck or late."""
        if progress != self.last:
            self.still = 0
            self.last = progress
            if self.on_progress:
                self.on_progress(progress)
        else:
            self.still += 1
        if progress >= 100:
            return True
        if self.still >= EXPORT_STALL_POLLS:
            raise ExportFailedError(f"{self.label} is stuck at {progress}%")
        if time.monotonic() > self.deadline:
            raise ExportTimeoutError(f"{self.label} did not finish within {self.timeout:.0f} s (at {progress}%)")
        return False


def _lost(export_id: str, exc: NotFoundError) -> ExportFailedError:
    return ExportFailedError(f"{export_label(export_id)} disappeared from the server (freed or failed): {exc.message}")


@contextlib.contextmanager
def _partial_file(path: Path) -> Iterator[IO[bytes]]:
    """Write to `<path>.partial`; rename over `path` only on success, delete on failure.

    The partial file is flock()ed while it is written: a process killed mid-download loses
    its lock with its life, which is how `_sweep_stale_partials` tells its leftovers apart
    from a download still running in another process. The lock is taken *before* the file
    is truncated, and a file locked by another writer is neither truncated nor deleted:
    two downloads to one path end in one clear error, not in two damaged files."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise DownloadError(f"{partial} is being written by another download: not touched") from None
    try:
        with os.fdopen(descriptor, "wb") as fh:
            fh.truncate(0)  # ours now: a stale partial of a dead process is started over
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextlib.asynccontextmanager
async def _async_partial_file(path: Path) -> AsyncIterator[IO[bytes]]:
    """`_partial_file` with its blocking steps (open, flush, fsync, rename, unlink) on a thread."""
    manager = _partial_file(path)
    fh = await asyncio.to_thread(manager.__enter__)
    try:
        yield fh
    except BaseException as exc:
        await asyncio.to_thread(manager.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await asyncio.to_thread(manager.__exit__, None, None, None)


class _ThreadWriter:
    """Writes for the event loop: chunks gathered to a megabyte, each batch written on a
    thread, so a slow disk never stalls the loop (one thread hop per MB, not per chunk)."""

    BATCH = 1 << 20

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.pending = bytearray()
        self._rewind = _rewinder(fh)

    async def write(self, chunk: bytes) -> None:
        self.pending += chunk
        if len(self.pending) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            data = bytes(self.pending)
            self.pending.clear()
            await asyncio.to_thread(self.fh.write, data)

    def rewind(self) -> None:
        # Only on a restarted download, with no write in flight (writes are awaited in turn).
        self.pending.clear()
        self._rewind()


def _sweep_stale_partials(folder: Path) -> None:
    """Delete `.partial` files in `folder` that no living process is writing (see `_partial_file`)."""
    for stale in folder.glob(".export-*.partial"):
        try:
            with stale.open("rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.unlink()
            log.info("removed %s, left by an interrupted download", stale)
        except (BlockingIOError, FileNotFoundError):
            continue  # still being written, or gone already


def _rewinder(fh: IO[bytes]) -> Callable[[], None]:
    origin = fh.tell() if fh.seekable() else None

    def rewind() -> None:
        if origin is None:
            raise DownloadError("the server cannot resume this download and the destination cannot be rewound")
        fh.seek(origin)
        fh.truncate()

    return rewind


class Exports(_ExportCalls):
    def formats(self) -> list[ExportFormat]:
        return self._client.call(self._formats())

    def create(
        self, camera_id: int, start: datetime, end: datetime, format: str = "mp4", name: str | None = None
    ) -> str:
        """Start an export; returns its id."""
        return self._client.call(self._create(camera_id, start, end, format, name))

    def progress(self, export_id: str) -> int:
        return self._client.call(self._progress(export_id))

    def wait(
        self,
        export_id: str,
        *,
        timeout: float = EXPORT_WAIT_TIMEOUT,
        poll_interval: float = EXPORT_POLL_INTERVAL,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """Poll until the export is complete (100%); ExportTimeoutError or ExportFailedError otherwise."""
        state = _WaitState(export_id, timeout, on_progress)
        try:
            while not state.seen(self.progress(export_id)):
                time.sleep(poll_interval)
        except NotFoundError as exc:
            raise _lost(export_id, exc) from exc

    def iter_download(
        self, export_id: str, tracker: DownloadTracker | None = None, rewind: Callable[[], None] | None = None
    ) -> Iterator[bytes]:
        """The export's bytes as chunks; resumes dropped connections. Check `tracker.finish()` after."""
        tracker = tracker or self._tracker(export_id)
        while True:
            try:
                with self._client.stream(self._download(export_id), tracker.request_headers()) as response:
                    tracker.start(response, rewind)
                    # The transport's own pieces: re-chunking them would cost a copy.
                    for chunk in self._client.chunks(response, tracker.label):
                        tracker.update(chunk)
                        yield chunk
                if tracker.check_complete():
                    return
            except TransportError as exc:
                time.sleep(tracker.resume_after(exc))

    def download(
        self, export_id: str, destination: str | os.PathLike[str] | IO[bytes], *, sha256: bool = True
    ) -> DownloadResult:
        """Stream the export to a path or a binary file object; returns the verified size and SHA-256.

        A path that is a directory receives the server's (sanitised) file name. `sha256=False`
        skips the hash (it costs about one core per 1.8 GB/s) when the caller hashes elsewhere.
        """
        tracker = self._tracker(export_id, sha256)
        if hasattr(destination, "write"):
            fh: IO[bytes] = destination  # type: ignore[assignment]
            for chunk in self.iter_download(export_id, tracker, _rewinder(fh)):
                fh.write(chunk)
            return tracker.finish()
        path = Path(destination)
        if path.is_dir():
            _sweep_stale_partials(path)
            scratch = path / f".{tracker.filename.replace('_', '-', 1)}"
            result = self.download(export_id, scratch, sha256=sha256)
            os.replace(scratch, path / result.filename)
            return result
        with _partial_file(path) as fh:
            for chunk in self.iter_download(export_id, tracker, _rewinder(fh)):
                fh.write(chunk)
            return tracker.finish()

    def finish(self, export_id: str) -> None:
        """Free the export on the server (safe to call twice)."""
        with contextlib.suppress(NotFoundError):
            self._client.call(self._finish(export_id))

    def export(
        self,
        camera_id: int,
        start: datetime,
        end: datetime,
        destination: str | os.PathLike[str] | IO[bytes],
        *,
        format: str = "mp4",
        name: str | None = None,
        timeout: float = EXPORT_WAIT_TIMEOUT,
        poll_interval: float = EXPORT_POLL_INTERVAL,
        on_progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Create, wait, download and finish (always) one export."""
        export_id = self.create(camera_id, start, end, format, name)
        try:
            self.wait(export_id, timeout=timeout, poll_interval=poll_interval, on_progress=on_progress)
            return self.download(export_id, destination)
        finally:
            try:
                self.finish(export_id)
            except Exception as exc:  # finishing is best effort: the server frees idle exports itself
                log.warning("could not finish %s: %s", export_label(export_id), exc)


class AsyncExports(_ExportCalls):
    async def formats(self) -> list[ExportFormat]:
        return await self._client.call(self._formats())

    async def create(
        self, camera_id: int, start: datetime, end: datetime, format: str = "mp4", name: str | None = None
    ) -> str:
        return await self._client.call(self._create(camera_id, start, end, format, name))

    async def progress(self, export_id: str) -> int:
        return await self._client.call(self._progress(export_id))

    async def wait(
        self,
        export_id: str,
        *,
        timeout: float = EXPORT_WAIT_TIMEOUT,
        poll_interval: float = EXPORT_POLL_INTERVAL,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        state = _WaitState(export_id, timeout, on_progress)
        try:
            while not state.seen(await self.progress(export_id)):
                await asyncio.sleep(poll_interval)
        except NotFoundError as exc:
            raise _lost(export_id, exc) from exc

    async def iter_download(
        self, export_id: str, tracker: DownloadTracker | None = None, rewind: Callable[[], None] | None = None
    ) -> AsyncIterator[bytes]:
        tracker = tracker or self._tracker(export_id)
        while True:
            try:
                async with self._client.stream(self._download(export_id), tracker.request_headers()) as response:
                    tracker.start(response, rewind)
                    async for chunk in self._client.chunks(response, tracker.label):
                        tracker.update(chunk)
                        yield chunk
                if tracker.check_complete():
                    return
            except TransportError as exc:
                await asyncio.sleep(tracker.resume_after(exc))

    async def download(
        self, export_id: str, destination: str | os.PathLike[str] | IO[bytes], *, sha256: bool = True
    ) -> DownloadResult:
        tracker = self._tracker(export_id, sha256)
        if hasattr(destination, "write"):
            return await self._download_to(export_id, tracker, destination)  # type: ignore[arg-type]
        path = Path(destination)
        if await asyncio.to_thread(path.is_dir):
            await asyncio.to_thread(_sweep_stale_partials, path)
            scratch = path / f".{tracker.filename.replace('_', '-', 1)}"
            result = await self.download(export_id, scratch, sha256=sha256)
            await asyncio.to_thread(os.replace, scratch, path / result.filename)
            return result
        async with _async_partial_file(path) as fh:
            return await self._download_to(export_id, tracker, fh)

    async def _download_to(self, export_id: str, tracker: DownloadTracker, fh: IO[bytes]) -> DownloadResult:
        writer = _ThreadWriter(fh)
        async for chunk in self.iter_download(export_id, tracker, writer.rewind):
            await writer.write(chunk)
        await writer.flush()
        return await asyncio.to_thread(tracker.finish)  # waits for the hash thread

    async def finish(self, export_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._client.call(self._finish(export_id))

    async def export(
        self,
        camera_id: int,
        start: datetime,
        end: datetime,
        destination: str | os.PathLike[str] | IO[bytes],
        *,
        format: str = "mp4",
        name: str | None = None,
        timeout: float = EXPORT_WAIT_TIMEOUT,
        poll_interval: float = EXPORT_POLL_INTERVAL,
        on_progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        export_id = await self.create(camera_id, start, end, format, name)
        try:
            await self.wait(export_id, timeout=timeout, poll_interval=poll_interval, on_progress=on_progress)
            return await self.download(export_id, destination)
        finally:
            try:
                await self.finish(export_id)
            except Exception as exc:
                log.warning("could not finish %s: %s", export_label(export_id), exc)
