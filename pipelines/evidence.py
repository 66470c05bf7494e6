"""Evidence packages: a case's footage with the proof that it is complete and unaltered,
in one zip that verifies offline with nothing but the public key.

A package holds:
- `footage/<server>/<camera>/<file>`: the archived exports the case's bookmarks cover,
  each at the version its manifest records, re-hashed while it is copied;
- `records/manifests/...`: every signed manifest version that lists them, byte for byte;
- `records/audit/...`: the signed audit records about those objects;
- `public_key.pem`: the key the records and the index are signed with;
- `CHAIN_OF_CUSTODY.txt`: the same facts in plain text, for people;
- `index.json`: every file's path, size and SHA-256, and which manifest vouches for
  which footage file; signed.

`verify_package` checks the index signature, every file's hash and size, each
manifest's signature, that each footage file is the object (key, version, SHA-256) a
signed manifest lists, and each audit record's signature. It reports every problem it
finds; it never needs the store, the recorder or this project's configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ev_ingest import clock
from ev_ingest.client import Bookmark, Case
from ev_ingest.store import ArchiveStore, ManifestEntry
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import read_version
from ev_ingest.store.signing import (
    AUDIT,
    MANIFEST,
    PACKAGE_INDEX,
    Signer,
    Verifier,
    decode,
    fingerprint,
    load_public_key,
    public_pem,
    sha256_hex,
    strict_loads,
)
from pipelines import retention

PACKAGE_FORMAT = "ev-ingest-evidence/1"


@dataclass
class Package:
    """What went into a package (for the CLI's summary)."""

    path: Path
    case: str
    footage: list[str] = field(default_factory=list)
    records: int = 0
    size: int = 0


def case_entries(
    store: ArchiveStore, verifier: Verifier, site: str, server: str, case: Case, bookmarks: list[Bookmark]
) -> list[ManifestEntry]:
    """The archived exports of `server` (as verified manifests list them) that the case's
    bookmarks cover."""
    marks = [b for b in bookmarks if b.case == case.guid]
    return [
        e
        for e in retention.select_entries(store, verifier, site, server, None, None, None)
        if retention.covering(e, marks, {case.guid: case})
    ]


def build_package(
    store: ArchiveStore,
    signer: Signer,
    case: Case,
    entries: list[ManifestEntry],
    output: Path,
    *,
    progress: Any = None,
) -> Package:
    """Write the package to `output` (via a temporary file: never a half-written zip)."""
    if not entries:
        raise ValueError(f"case {case.name or case.guid!r}: no archived export is covered by its bookmarks")
    wanted = {(e.key, e.version_id) for e in entries}
    files: list[dict[str, Any]] = []
    vouches: list[dict[str, Any]] = []
    package = Package(output, case.name or case.guid)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:

        def add(path: str, data: bytes) -> None:
            archive.writestr(path, data)
            files.append({"path": path, "size": len(data), "sha256": sha256_hex(data)})

        for number, entry in enumerate(entries, start=1):
            path = f"footage/{store_keys.safe_part(entry.server)}/{entry.camera_id}/{entry.key.rsplit('/', 1)[-1]}"
            hasher = hashlib.sha256()
            size = 0
            with archive.open(path, "w", force_zip64=True) as out:
                for chunk in store.iter_bytes(entry.key, entry.version_id):
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != entry.sha256:
                raise ValueError(f"{entry.key}@{entry.version_id}: the store's bytes do not match its manifest")
            files.append({"path": path, "size": size, "sha256": entry.sha256})
            vouches.append({"path": path, "key": entry.key, "version_id": entry.version_id})
            package.footage.append(path)
            if progress:
                progress(number, len(entries), entry.key)
        for version in _manifest_versions(store, wanted):
            add(f"records/{version.key}@{version.version_id}", store.get_bytes(version.key, version.version_id))
            package.records += 1
        keys_of = {k for k, _ in wanted}
        for key in sorted(store.list_keys("audit/")):
            data = store.get_bytes(key, limit=MAX_RECORD_BYTES)
            record = decode(json.loads(data)) or {}
            if record.get("key") in keys_of:
                add(f"records/{key}", data)
                package.records += 1
        add("public_key.pem", public_pem(signer.public))
        custody = _custody(case, entries, signer)
        add("CHAIN_OF_CUSTODY.txt", custody.encode())
        index = signer.seal(
            PACKAGE_INDEX,
            {
                "format": PACKAGE_FORMAT,
                "case": {"guid": case.guid, "name": case.name, "description": case.description},
                "created_at": clock.now().isoformat(),
                "key": signer.fingerprint,
                "files": files,
                "footage": vouches,
            },
        )
        archive.writestr("index.json", json.dumps(index, indent=1, sort_keys=True))
    partial.replace(output)
    package.size = output.stat().st_size
    return package


def _manifest_versions(store: ArchiveStore, wanted: set[tuple[str, str | None]]) -> Iterable[Any]:
    """Every stored manifest version that lists one of the wanted objects."""
    for info in store.all_versions("manifests/"):
        if info.deleted:
            continue
        version = read_version(store, info.key, info.version_id)
        entries = (version.document or {}).get("entries") or []
        if any((e.get("key"), e.get("version_id")) in wanted for e in entries):
            yield version


def _custody(case: Case, entries: list[ManifestEntry], signer: Signer) -> str:
    lines = [
        f"Evidence package of case {case.name or case.guid} ({case.guid}), made {clock.now():%Y-%m-%d %H:%M:%S} UTC",
        f"Signed with the Ed25519 key {signer.fingerprint}",
        "Check it with: ev-ingest verify <this file> --fingerprint <the whole key fingerprint, from your own records>",
        "",
        "Footage (camera, interval in UTC, SHA-256, archived object and version):",
    ]
    for e in entries:
        lines.append(
            f"  {e.server}/{e.camera_id} {e.camera_name}  {e.start:%Y-%m-%d %H:%M:%S} .. {e.end:%H:%M:%S}  "
            f"{e.sha256}  {e.key}@{e.version_id}  retained {e.retention_mode or '-'} until {e.retain_until or '-'}"
        )
    lines += ["", "Each file's hash is in index.json; every manifest and audit record is signed and chained."]
    return "\n".join(lines) + "\n"


MIN_FINGERPRINT_HEX = 32  # 128 bits: no key can be ground to match a pin this long
# What reading a hostile zip can raise; each is a finding, never a traceback.
READ_ERRORS = (
    OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, NotImplementedError, EOFError, zlib.error,
    zipfile.BadZipFile, zipfile.LargeZipFile,
)  # fmt: skip


def pinned_fingerprint(text: str) -> str:
    """A fingerprint the user trusts: at least 32 hex digits (of the 64), else ValueError."""
    pin = text.strip().lower().replace(":", "")
    if len(pin) < MIN_FINGERPRINT_HEX or len(pin) > 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ValueError(
            f"--fingerprint must be the signing key's fingerprint, {MIN_FINGERPRINT_HEX} to 64 hex digits "
            f"(got {len(pin)} characters): a shorter prefix can be matched by a key made for it"
        )
    return pin


@dataclass
class PackageCheck:
    fingerprint: str  # of the key inside the package (never trusted for being there)
    case: str = ""
    files: int = 0
    footage: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)
    trusted: bool = False  # the signer is a key the caller trusts (pinned fingerprint, key file, config)

    @property
    def ok(self) -> bool:
        """Consistent: no problem found (the signer may still be unknown)."""
        return not self.problems

    @property
    def verified(self) -> bool:
        """Consistent and signed by a trusted key: the only state that is VERIFIED."""
        return self.ok and self.trusted


def verify_package(
    path: Path, expected_fingerprint: str | None = None, trusted_keys: list[Any] | None = None
) -> PackageCheck:
    """Check a package offline; every problem is listed, none raises.

    Trust comes only from the caller: `expected_fingerprint` (at least 32 hex digits,
    `pinned_fingerprint`) or `trusted_keys` (public keys). Without either, the package is
    checked against its own key and `trusted` stays False: the signer is unknown."""
    pin = pinned_fingerprint(expected_fingerprint) if expected_fingerprint is not None else None
    try:
        return _verify(path, pin, list(trusted_keys or []))
    except READ_ERRORS as exc:  # a hostile zip the checks above did not foresee
        return PackageCheck("", problems=[f"unreadable package: {type(exc).__name__}: {str(exc)[:200]}"])


MAX_RECORD_BYTES = 64 << 20  # index, records, key, custody text: read into memory, so bounded
STORED, DEFLATED = 0, 8


def format_problems(archive: zipfile.ZipFile, max_record_bytes: int = MAX_RECORD_BYTES) -> list[str]:
    """What makes a zip mean different things to different readers, or cost unbounded memory:
    duplicate names, data before the first entry (a zip glued after another), unsafe names,
    links, encryption, methods other than stored/deflated, oversized records."""
    problems = []
    infos = archive.infolist()
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if name in seen:
            problems.append(f"{name}: duplicate name (readers disagree on which copy counts)")
        seen.add(name)
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0] or "\0" in name:
            problems.append(f"{name!r}: unsafe name (absolute, backslash, .. or drive)")
        kind = (info.external_attr >> 16) & 0o170000
        if info.create_system == 3 and kind not in (0, 0o100000, 0o040000):
            problems.append(f"{name}: not a regular file (a link or device, mode {kind:o})")
        if info.flag_bits & 0x41:
            problems.append(f"{name}: encrypted")
        if info.flag_bits & DATA_DESCRIPTOR:
            # A package is written to a seekable file, so its sizes are in the local header;
            # sizes after the data let a streaming reader find its own end of the member.
            problems.append(f"{name}: sizes given after the data (a data descriptor), which packages never use")
        if info.compress_type not in (STORED, DEFLATED):
            problems.append(f"{name}: unknown compression method {info.compress_type}")
        if not name.startswith("footage/") and info.file_size > max_record_bytes:
            problems.append(f"{name}: {info.file_size} bytes inflated, more than a record may be ({max_record_bytes})")
    if infos and min(i.header_offset for i in infos) != 0:
        problems.append("data before the first entry (another zip glued in front?)")
    if archive.comment:  # packages carry none; a comment can hold another zip
        problems.append(f"a zip comment of {len(archive.comment)} bytes (packages carry none)")
    # A zip already refused is not inflated to find more (a bomb costs nothing to refuse).
    return problems + layout_problems(archive, inflate=not problems)


LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
ZIP64_EXTRA = 0x0001
DATA_DESCRIPTOR = 0x08  # general-purpose flag bit 3: CRC and sizes follow the data
END_RECORD = b"PK\x05\x06"
END_RECORD_SIZE = 22  # with no comment (APPNOTE 4.3.16)


def layout_problems(archive: zipfile.ZipFile, *, inflate: bool = True) -> list[str]:
    """What a streaming reader (one that walks the local headers, as `unzip` of a pipe,
    `jar x <` or a browser's extractor does) would see differently from the central
    directory: a local header whose name, method, flags or sizes disagree with its directory
    entry; bytes between entries, between the last entry and the directory, or after the end
    record; a deflate stream that ends before its compressed size (with `inflate`). Entries
    must tile the file exactly, so every byte belongs to what the directory lists."""
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
        zip64 = csize == 0xFFFFFFFF or usize == 0xFFFFFFFF
        if zip64:
            usize, csize = _zip64_sizes(extra, usize, csize)
        if local_name != info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437", "replace"):
            problems.append(f"{name}: its local header names {local_name[:80]!r}")
        if method != info.compress_type or (flags & 0x41) != (info.flag_bits & 0x41):
            problems.append(f"{name}: its local header's method or flags differ from the directory's")
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
    size = fp.seek(0, 2)
    fp.seek(size - END_RECORD_SIZE)
    if not archive.comment and fp.read(4) != END_RECORD:
        problems.append("bytes after the end of the zip (its end record is not the file's last bytes)")
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
            if usize == 0xFFFFFFFF and len(fields) >= 8:
                usize, fields = struct.unpack_from("<Q", fields)[0], fields[8:]
            if csize == 0xFFFFFFFF and len(fields) >= 8:
                csize = struct.unpack_from("<Q", fields)[0]
            break
        at += 4 + length
    return usize, csize


def _verify(path: Path, pin: str | None, trusted_keys: list[Any]) -> PackageCheck:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return PackageCheck("", problems=[f"not a readable zip: {exc}"])
    with archive:
        refused = format_problems(archive)
        if refused:  # nothing of a package read two ways is read at all
            return PackageCheck("", problems=refused)
        try:
            public = load_public_key(archive.read("public_key.pem"))
            stored_index = strict_loads(archive.read("index.json"))
        except (KeyError, ValueError) as exc:
            return PackageCheck("", problems=[f"not an evidence package: {exc}"])
        shown = decode(stored_index)  # unchecked: names the case in the report, decides nothing
        if shown is None:
            return PackageCheck(fingerprint(public), problems=["index.json: not a JSON object"])
        case = shown.get("case")
        check = PackageCheck(fingerprint(public), case=str(case.get("name", "")) if isinstance(case, dict) else "")
        anchors = {fingerprint(k): k for k in trusted_keys}
        if pin is not None and hmac.compare_digest(check.fingerprint[: len(pin)], pin):
            anchors[check.fingerprint] = public  # the pin, not the package, makes this key trusted
        if pin is not None or trusted_keys:
            check.trusted = check.fingerprint in anchors
            if not check.trusted:
                check.problems.append(
                    f"signed by key {check.fingerprint}, which is not a key you trust"
                    + (f" (expected {pin})" if pin else "")
                )
            verifier = Verifier(list(anchors.values()) or [public])
        else:
            verifier = Verifier([public])  # consistency only: the signer stays unknown
        opened = verifier.open(stored_index, PACKAGE_INDEX)
        if opened.problem:
            check.problems.append(f"index.json: {opened.problem}")
        # What is compared is what the signature covers; an index whose signature fails is
        # still compared (each difference is reported), but can never verify.
        index = opened.document if opened.document is not None else shown
        files = [f for f in index.get("files", []) if isinstance(f, dict) and isinstance(f.get("path"), str)]
        listed = {f["path"]: f for f in files}
        for twice, times in sorted(Counter(f["path"] for f in files).items()):
            if times > 1:  # which entry counts would depend on the reader
                check.problems.append(f"{twice}: listed {times} times in the index")
        names = set(archive.namelist()) - {"index.json"}
        for extra in sorted(names - set(listed)):
            check.problems.append(f"{extra}: not in the signed index")
        for name, meta in sorted(listed.items()):
            check.files += 1
            if name not in names:
                check.problems.append(f"{name}: listed but missing")
                continue
            digest, size = _hash_member(archive, name)
            if (digest, size) != (meta.get("sha256"), meta.get("size")):
                check.problems.append(
                    f"{name}: {size} bytes hashing to {digest}; the index says {meta.get('size')}, {meta.get('sha256')}"
                )
        vouched = _signed_manifest_entries(archive, names, verifier, check)
        items = [item for item in index.get("footage", []) if isinstance(item, dict)]
        if len(items) != len(index.get("footage", [])):
            check.problems.append("index.json: a footage item is not an object")
        vouched_paths = {item.get("path") for item in items}
        for unvouched in sorted(n for n in names if n.startswith("footage/") and n not in vouched_paths):
            check.problems.append(f"{unvouched}: footage that no footage item of the index vouches for")
        for item in items:
            check.footage += 1
            entry = vouched.get((item.get("key"), item.get("version_id")))
            meta = listed.get(item.get("path"), {})
            if entry is None:
                check.problems.append(f"{item.get('path')}: no signed manifest in the package lists {item.get('key')}")
            elif entry.get("sha256") != meta.get("sha256") or entry.get("size") != meta.get("size"):
                check.problems.append(f"{item.get('path')}: differs from what its manifest recorded")
    return check


def _hash_member(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with archive.open(name) as member:
        for chunk in iter(lambda: member.read(1 << 20), b""):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _signed_manifest_entries(
    archive: zipfile.ZipFile, names: set[str], verifier: Verifier, check: PackageCheck
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """(key, version) -> entry, from every record in the package whose signature holds."""
    vouched: dict[tuple[Any, Any], dict[str, Any]] = {}
    for name in sorted(n for n in names if n.startswith("records/")):
        check.records += 1
        try:
            with archive.open(name) as member:
                record = strict_loads(member.read(MAX_RECORD_BYTES + 1))
        except ValueError:
            check.problems.append(f"{name}: not JSON")
            continue
        kind = AUDIT if name.startswith("records/audit/") else MANIFEST
        opened = verifier.open(record, kind)
        if opened.document is None:
            check.problems.append(f"{name}: {opened.problem}")
            continue
        if kind == AUDIT:
            continue  # the audit trail rides along for the reader; manifests vouch for footage
        for entry in opened.document.get("entries") or []:
            if not isinstance(entry, dict):
                continue
            vouched[(entry.get("key"), entry.get("version_id"))] = entry
    return vouched
