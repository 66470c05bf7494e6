"""A stored object as a seekable, read-only file, read by ranged GETs (for a decoder that
needs only part of it: the last seconds of an hour's export, its index at the end).

Pinned to one version (the one a committed manifest recorded), so what is read cannot
change underneath; bounded by a budget of bytes fetched, so a file that makes the decoder
wander (a damaged index, a planted object) costs at most that much, then fails with
`RangeBudgetExceeded` (an `OSError`: decoders report it as an unreadable input). Blocks
of `BLOCK` bytes are fetched on demand and the last few kept, so a demuxer's small
backward seeks cost nothing. Not an integrity check: what needs the whole object's
SHA-256 reads the whole object (`ArchiveStore.verify`).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

MiB = 1 << 20
BLOCK = 256 * 1024
KEPT_BLOCKS = 16
DEFAULT_BUDGET = 64 * MiB


class RangeBudgetExceeded(OSError):
    """More bytes than the reader's budget were asked of the object."""


class RangedObject(io.RawIOBase):
    def __init__(
        self,
        store: Any,
        key: str,
        version_id: str | None,
        size: int,
        *,
        budget: int = DEFAULT_BUDGET,
        block: int = BLOCK,
    ) -> None:
        super().__init__()
        self._store, self._key, self._version, self._size = store, key, version_id, size
        self._position = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self.budget, self.block = budget, block
        self.fetched = 0  # bytes read from the store so far
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._size:
            index, within = divmod(self._position, self.block)
            block = self._block(index)
            take = min(len(view) - done, len(block) - within)
            if take <= 0:
                break
            view[done : done + take] = block[within : within + take]
            done += take
            self._position += take
        return done

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        first = index * self.block
        last = min(self._size, first + self.block) - 1
        if self.fetched + (last - first + 1) > self.budget:
            raise RangeBudgetExceeded(f"{self._key}: reading it needs more than {self.budget // MiB} MiB")
        extra = {"VersionId": self._version} if self._version else {}
        answer = self._store.s3.get_object(
            Bucket=self._store.bucket, Key=self._key, Range=f"bytes={first}-{last}", **extra
        )
        body = answer["Body"]
        try:
            data = body.read(last - first + 2)  # one more than asked: a store that ignores Range is caught
        finally:
            body.close()
        if len(data) != last - first + 1:
            raise OSError(f"{self._key}: asked for {last - first + 1} bytes at {first}, got {len(data)}")
        self.fetched += len(data)
        self.requests += 1
        self._blocks[index] = data
        while len(self._blocks) > KEPT_BLOCKS:
            self._blocks.popitem(last=False)
        return data
