"""A raw zip writer for attack tests: every local and central header field under the
test's control (zipfile will not write a lying header, an extra field of our choosing,
or two end records that disagree)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    name: bytes
    data: bytes
    method: int = 0
    flags: int = 0
    local_extra: bytes = b""
    central_extra: bytes = b""
    comment: bytes = b""
    local_flags: int | None = None  # None: as `flags`
    system: int = 3  # the host that made it (3: Unix)
    mode: int = 0o100600  # Unix mode bits (a regular file)
    body: bytes = field(init=False)

    def __post_init__(self) -> None:
        if self.method == 8:
            squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
            self.body = squeeze.compress(self.data) + squeeze.flush()
        else:
            self.body = self.data

    def local(self) -> bytes:
        flags = self.flags if self.local_flags is None else self.local_flags
        head = struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, self.method, 0, 0x21,
            zlib.crc32(self.data), len(self.body), len(self.data), len(self.name), len(self.local_extra),
        )  # fmt: skip
        return head + self.name + self.local_extra

    def central(self, offset: int) -> bytes:
        head = struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (self.system << 8) | 20, 20, self.flags, self.method, 0, 0x21,
            zlib.crc32(self.data), len(self.body), len(self.data), len(self.name), len(self.central_extra),
            len(self.comment), 0, 0, self.mode << 16, offset,
        )  # fmt: skip
        return head + self.name + self.central_extra + self.comment


def end_record(count: int, size: int, offset: int, *, disk: int = 0, count_on_disk: int | None = None) -> bytes:
    on_disk = count if count_on_disk is None else count_on_disk
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", disk, disk, on_disk, count, size, offset, 0)


def entries_of(package: Path) -> list[Entry]:
    """The members of a genuine package, stored, as raw entries to tamper with."""
    with zipfile.ZipFile(package) as z:
        return [Entry(i.filename.encode(), z.read(i.filename)) for i in z.infolist()]


def locals_of(entries: list[Entry]) -> tuple[bytearray, list[int]]:
    out, offsets = bytearray(), []
    for entry in entries:
        offsets.append(len(out))
        out += entry.local() + entry.body
    return out, offsets


def build(entries: list[Entry], *, count: int | None = None, disk: int = 0) -> bytes:
    out, offsets = locals_of(entries)
    directory = b"".join(e.central(o) for e, o in zip(entries, offsets, strict=True))
    start = len(out)
    return bytes(
        out + directory + end_record(len(entries) if count is None else count, len(directory), start, disk=disk)
    )


def unicode_path(name: bytes, shown: bytes) -> bytes:
    """Info-ZIP's Unicode Path extra field (0x7075), which `unzip` uses as the member's name."""
    body = b"\x01" + struct.pack("<I", zlib.crc32(name)) + shown
    return struct.pack("<HH", 0x7075, len(body)) + body


def two_directories(entries: list[Entry], forged: Entry) -> bytes:
    """A ZIP64 end record naming the genuine directory D1 (what Python reads) and a classic
    end record, not saturated, naming D2 (what `unzip` reads). D2, whose copy of `forged`'s
    name points at `forged`, hides with it in the comment of D1's last entry, so the
    entries still tile the file and the classic end record is its last 22 bytes."""
    out, offsets = locals_of(entries)
    d1_start = len(out)
    head = b"".join(e.central(o) for e, o in zip(entries[:-1], offsets[:-1], strict=True))
    last = entries[-1]
    forged_at = d1_start + len(head) + 46 + len(last.name) + len(last.central_extra)
    hidden = forged.local() + forged.body
    d2_start = forged_at + len(hidden)
    d2 = b"".join(
        (forged.central(forged_at) if e.name == forged.name else e.central(o))
        for e, o in zip(entries, offsets, strict=True)
    )
    last.comment = hidden + d2
    d1 = head + last.central(offsets[-1])
    out += d1
    z64_at = len(out)
    out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(entries), len(entries), len(d1), d1_start)
    out += struct.pack("<4sIQI", b"PK\x06\x07", 0, z64_at, 1)
    return bytes(out + end_record(len(entries), len(d2), d2_start))
