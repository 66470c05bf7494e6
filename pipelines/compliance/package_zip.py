"""The form of an evidence package's zip: one reading for every reader.

A zip can mean different things to different readers: Python's `zipfile` and `unzip`
read the central directory (and choose between a classic and a ZIP64 end record in
different ways); streaming readers (`unzip` of a pipe, `jar x <`, browsers, libarchive)
walk the local headers and find a member's end where its deflate stream ends; `unzip`
honours the Unicode Path extra field, libarchive others. A package that verifies must
be read the same way by all of them, so only the form our own writer produces is
accepted (`pipelines.compliance.evidence.build_package`: `zipfile` to a seekable file, stored
members, ZIP64 extras only): every departure is a named problem, found before any member
is read. `format_problems` is the one check.

What is refused, and why each matters, is in the README (Evidence packages, "What
`verify` checks"); `tests/test_evidence_trust.py` makes each malformed package.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import Any

MAX_RECORD_BYTES = 64 << 20  # one record (index, manifest, audit, key, custody text): the store's own cap
MAX_INDEX_BYTES = 16 << 20  # index.json: ~200 bytes per file listed, so some 80,000 files
MAX_RECORDS_BYTES = 256 << 20  # all of them together, inflated: what reading the records may cost at most
STORED, DEFLATED = 0, 8
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
END_RECORD = struct.Struct("<4sHHHHIIH")  # 4.3.16, with no comment
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 4.3.15
ZIP64_END = struct.Struct("<4sQHHIIQQQQ")  # 4.3.14, with no extensible data
ZIP64_EXTRA = 0x0001  # the only extra field a package carries (4.5.3)
FLAG_ENCRYPTED = 0x41  # bits 0 and 6
DATA_DESCRIPTOR = 0x08  # bit 3: CRC and sizes follow the data
SATURATED16, SATURATED32 = 0xFFFF, 0xFFFFFFFF  # a classic field that defers to the ZIP64 record


def format_problems(archive: zipfile.ZipFile, max_record_bytes: int = MAX_RECORD_BYTES) -> list[str]:
    """Everything about the zip's form that a reader could read otherwise, or that would
    cost unbounded memory: the entries (names, kinds, flags, methods, extras, comments,
    sizes), the end records, and the layout (`layout_problems`)."""
    problems: list[str] = []
    infos = archive.infolist()
    seen: set[str] = set()
    for info in infos:
        problems += _entry_problems(info, max_record_bytes)
        if info.filename in seen:
            problems.append(f"{info.filename}: duplicate name (readers disagree on which copy counts)")
        seen.add(info.filename)
    records = sum(i.file_size for i in infos if not i.filename.startswith("footage/"))
    if records > MAX_RECORDS_BYTES:
        problems.append(f"{records} bytes of records inflated, more than a package may hold ({MAX_RECORDS_BYTES})")
    if infos and min(i.header_offset for i in infos) != 0:
        problems.append("data before the first entry (another zip glued in front?)")
    problems += end_problems(archive)
    # A zip already refused is not inflated to find more (a bomb costs nothing to refuse).
    return problems + layout_problems(archive, inflate=not problems)


def _entry_problems(info: zipfile.ZipInfo, max_record_bytes: int) -> list[str]:
    name, problems = info.filename, []
    # `orig_filename`: zipfile cuts a name at a NUL; readers that keep the rest see it.
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0] or "\0" in info.orig_filename:
        problems.append(f"{info.orig_filename!r}: unsafe name (absolute, backslash, .., drive or NUL)")
    # `unzip` honours Unix mode bits from other hosts too (BeOS, ...): only the hosts our
    # writer records (0 MS-DOS, 3 Unix), and the mode checked whatever the host says.
    kind = (info.external_attr >> 16) & 0o170000
    if info.create_system not in (0, 3):
        problems.append(f"{name}: made on host system {info.create_system} (packages record 0 or 3)")
    if kind not in (0, 0o100000, 0o040000):
        problems.append(f"{name}: not a regular file (a link or device, mode {kind:o})")
    if info.compress_type == STORED and info.compress_size != info.file_size:
        # The slack after a stored member's bytes is read as the next entry by a streaming reader.
        problems.append(f"{name}: stored, yet {info.compress_size} bytes stand for {info.file_size}")
    if info.flag_bits & FLAG_ENCRYPTED:
        problems.append(f"{name}: encrypted")
    if info.flag_bits & DATA_DESCRIPTOR:
        # A package is written to a seekable file, so its sizes are in the local header;
        # sizes after the data let a streaming reader find its own end of the member.
        problems.append(f"{name}: sizes given after the data (a data descriptor), which packages never use")
    if info.compress_type not in (STORED, DEFLATED):
        problems.append(f"{name}: unknown compression method {info.compress_type}")
    if info.comment:  # where a second directory, or anything, can hide from the layout check
        problems.append(f"{name}: an entry comment of {len(info.comment)} bytes (packages carry none)")
    problem = extra_problem(info.extra)
    if problem:
        problems.append(f"{name}: its directory entry's {problem}")
    if not name.startswith("footage/") and info.file_size > max_record_bytes:
        problems.append(f"{name}: {info.file_size} bytes inflated, more than a record may be ({max_record_bytes})")
    if name == "index.json" and info.file_size > MAX_INDEX_BYTES:  # parsed before its signature is known
        problems.append(f"{name}: {info.file_size} bytes, more than an index may be ({MAX_INDEX_BYTES})")
    return problems


def extra_problem(extra: bytes) -> str | None:
    """Extra fields other than ZIP64, or a block that does not parse exactly: readers act on
    fields zipfile ignores (`unzip` renames a member after its Unicode Path field 0x7075,
    libarchive sets a member's mode from 0x6c78)."""
    at = 0
    while at < len(extra):
        if at + 4 > len(extra):
            return "extra fields end in a fragment"
        kind, length = struct.unpack_from("<HH", extra, at)
        if at + 4 + length > len(extra):
            return f"extra field 0x{kind:04x} runs past its block"
        if kind != ZIP64_EXTRA:
            return f"extra field 0x{kind:04x}, which some readers act on (packages carry ZIP64 fields only)"
        at += 4 + length
    return None


def end_problems(archive: zipfile.ZipFile) -> list[str]:
    """The end records must name the directory zipfile read, and nothing else: a classic
    record and a ZIP64 record that point at different directories are read differently
    by different readers (Python takes the ZIP64 one, `unzip` the classic one unless its
    fields are saturated). No comment, one disk, the true entry count."""
    fp = archive.fp
    if fp is None:
        return ["the zip is not open"]
    size = fp.seek(0, 2)
    if size < END_RECORD.size:
        return ["too short to be a zip"]
    fp.seek(size - END_RECORD.size)
    raw = fp.read(END_RECORD.size)
    signature, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment = END_RECORD.unpack(raw)
    if archive.comment or signature != b"PK\x05\x06" or comment:
        if archive.comment:  # packages carry none; a comment can hold another zip
            return [f"a zip comment of {len(archive.comment)} bytes (packages carry none)"]
        return ["bytes after the end of the zip (its end record is not the file's last bytes)"]
    count = len(archive.infolist())
    directory_ends = size - END_RECORD.size
    problems: list[str] = []
    locator_at = directory_ends - ZIP64_LOCATOR.size
    locator = b""
    if locator_at >= 0:
        fp.seek(locator_at)
        locator = fp.read(ZIP64_LOCATOR.size)
    if locator[:4] == b"PK\x06\x07":
        _, z64_disk, z64_at, disks = ZIP64_LOCATOR.unpack(locator)
        fp.seek(z64_at)
        record = fp.read(ZIP64_END.size)
        if len(record) != ZIP64_END.size or record[:4] != b"PK\x06\x06":
            return ["the ZIP64 locator points at no ZIP64 end record"]
        _, length, _, _, disk64, cd_disk64, on_disk64, entries64, cd_size64, cd_offset64 = ZIP64_END.unpack(record)
        if z64_at + ZIP64_END.size != locator_at or length != ZIP64_END.size - 12:
            problems.append("bytes between the ZIP64 end record and its locator")
        if (z64_disk, disks, disk64, cd_disk64) != (0, 1, 0, 0):
            problems.append("the ZIP64 end record names other disks")
        for classic, wide, saturated, what in (
            (on_disk, on_disk64, SATURATED16, "entry count"),
            (entries, entries64, SATURATED16, "entry count"),
            (cd_size, cd_size64, SATURATED32, "directory size"),
            (cd_offset, cd_offset64, SATURATED32, "directory offset"),
            (disk, 0, SATURATED16, "disk"),
            (cd_disk, 0, SATURATED16, "disk"),
        ):
            if classic not in (wide, saturated):
                problems.append(f"the classic and ZIP64 end records give another {what} (two directories?)")
        on_disk, entries, cd_size, cd_offset, disk, cd_disk = on_disk64, entries64, cd_size64, cd_offset64, 0, 0
        directory_ends = z64_at
    if (disk, cd_disk) != (0, 0):
        problems.append("the end record names another disk")
    if on_disk != entries or entries != count:
        problems.append(f"the end record counts {entries} entries; the directory holds {count}")
    if cd_offset != archive.start_dir or cd_offset + cd_size != directory_ends:
        problems.append("the end record's directory is not the one read (bytes around the directory?)")
    return problems


def layout_problems(archive: zipfile.ZipFile, *, inflate: bool = True) -> list[str]:
    """What a streaming reader (one that walks the local headers, as `unzip` of a pipe,
    `jar x <` or a browser's extractor does) would see differently from the central
    directory: a local header whose name, method, flags, extras or sizes disagree with its
    directory entry; bytes between entries or between the last entry and the directory;
    a deflate stream that ends before its compressed size (with `inflate`). Entries must
    tile the file exactly, so every byte belongs to what the directory lists."""
    problems: list[str] = []
    fp = archive.fp
    if fp is None:
        return ["the zip is not open"]
    expected = 0
    for info in sorted(archive.infolist(), key=lambda i: i.header_offset):
        name = info.filename
        if info.header_offset != expected:
            gap = info.header_offset - expected
            problems.append(
                f"{name}: {gap} bytes between entries no directory entry accounts for (a hidden member?)"
                if gap > 0
                else f"{name}: overlaps the entry before it"
            )
        fp.seek(info.header_offset)
        raw = fp.read(LOCAL_HEADER.size)
        if len(raw) != LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
            problems.append(f"{name}: no local header where the directory says")
            return problems  # the layout is unknowable past this point
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = LOCAL_HEADER.unpack(raw)
        local_name = fp.read(name_len)
        extra = fp.read(extra_len)
        if csize == SATURATED32 or usize == SATURATED32:
            usize, csize = _zip64_sizes(extra, usize, csize)
        if local_name != info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437", "replace"):
            problems.append(f"{name}: its local header names {local_name[:80]!r}")
        if method != info.compress_type or flags != info.flag_bits:
            problems.append(f"{name}: its local header's method or flags differ from the directory's")
        problem = extra_problem(extra)
        if problem:
            problems.append(f"{name}: its local header's {problem}")
        if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size):
            problems.append(f"{name}: its local header's CRC or sizes differ from the directory's")
        start = info.header_offset + LOCAL_HEADER.size + name_len + extra_len
        if method == DEFLATED and inflate:
            problem = _deflate_problem(fp, start, info)
            if problem:
                problems.append(f"{name}: {problem}")
        expected = start + info.compress_size
    if archive.infolist() and archive.start_dir != expected:
        gap = archive.start_dir - expected
        problems.append(
            f"{gap} bytes between the last entry and the directory (a hidden member?)"
            if gap > 0
            else "the last entry overlaps the directory"
        )
    return problems


def _deflate_problem(fp: Any, start: int, info: zipfile.ZipInfo) -> str | None:
    """A deflated member's stream must end exactly at its compressed size and inflate to
    exactly its size. A directory reader stops at the compressed size; a streaming reader
    stops where the stream ends and reads what follows as the next entry, so bytes after
    the stream are a member only one of them sees. Inflated output is counted, never kept."""
    fp.seek(start)
    inflater = zlib.decompressobj(-15)
    left, inflated = info.compress_size, 0
    while left and not inflater.eof:
        data = fp.read(min(left, 1 << 20))
        if not data:
            return "its compressed data is cut short"
        left -= len(data)
        while not inflater.eof:
            got = inflater.decompress(data, 1 << 20)
            inflated += len(got)
            if inflated > info.file_size:
                return f"inflates to more than the {info.file_size} bytes its directory entry says"
            data = inflater.unconsumed_tail
            if not data and not got:
                break
    if not inflater.eof:
        return "its deflate stream does not end within its compressed size"
    trailing = left + len(inflater.unused_data)
    if trailing:
        return f"{trailing} bytes after its deflate stream, inside its compressed size (a hidden member?)"
    if inflated != info.file_size:
        return f"inflates to {inflated} bytes, not the {info.file_size} its directory entry says"
    return None


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """The 64-bit sizes of a local header's ZIP64 extra field (APPNOTE 4.5.3)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == ZIP64_EXTRA:
            fields = extra[at + 4 : at + 4 + length]
            if usize == SATURATED32 and len(fields) >= 8:
                usize, fields = struct.unpack_from("<Q", fields)[0], fields[8:]
            if csize == SATURATED32 and len(fields) >= 8:
                csize = struct.unpack_from("<Q", fields)[0]
            break
        at += 4 + length
    return usize, csize
