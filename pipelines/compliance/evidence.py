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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ev_ingest import clock
from ev_ingest.client import Case
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
from pipelines.compliance import case_holds, holds
from pipelines.compliance.package_zip import MAX_RECORD_BYTES, format_problems

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
    store: ArchiveStore, verifier: Verifier, site: str, case: Case, covers: Sequence[case_holds.Cover]
) -> list[ManifestEntry]:
    """The archived exports of the site (as verified manifests list them) that the case's
    bookmarks cover, on whichever server they name (`case_holds.coverage`)."""
    mine = [c for c in covers if c.case == case.guid]
    return [
        e for e in holds.select_entries(store, verifier, site, None, None, None, None) if case_holds.covering(e, mine)
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
    zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, IndexError, OverflowError,
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
            stored_index = load_record(archive.read("index.json"))
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
        intact: set[str] = set()  # members whose bytes are what the index lists
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
            else:
                intact.add(name)
        vouched = _signed_manifest_entries(archive, intact, verifier, check)
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


def load_record(data: bytes) -> Any:
    """A record's JSON, bounded before it is parsed and refused when it gives a key twice
    (`strict_loads`)."""
    try:
        return strict_loads(data)
    except ValueError as exc:
        raise ValueError(f"not JSON a record may be: {str(exc)[:120]}") from None


def _hash_member(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with archive.open(name) as member:
        for chunk in iter(lambda: member.read(1 << 20), b""):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _signed_manifest_entries(
    archive: zipfile.ZipFile, intact: set[str], verifier: Verifier, check: PackageCheck
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """(key, version) -> entry, from every record in the package whose signature holds.
    Only records the index lists with their exact bytes are parsed (any other is already a
    problem): a record nobody listed costs nothing to refuse."""
    vouched: dict[tuple[Any, Any], dict[str, Any]] = {}
    for name in sorted(n for n in intact if n.startswith("records/")):
        check.records += 1
        try:
            with archive.open(name) as member:
                record = load_record(member.read(MAX_RECORD_BYTES + 1))
        except ValueError as exc:
            check.problems.append(f"{name}: {exc}")
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
