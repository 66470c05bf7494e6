"""Manifests (the commit record of a run) and the audit log, both stored under Object Lock,
signed and hash-chained.

A manifest lists every object a run archived. It is written last: an object that is
not in a manifest is not archived, and a rerun skips only what a committed manifest
vouches for (`RecordIndex`: that key, at that version, with that hash). Every entry and
failure names its recording server: camera ids are only unique within one server.

The audit log records every retention change, legal hold, verification and failure,
one small JSON object per action.

Every record is stored as a signed DSSE envelope (`signing`: the signature covers the
payload's exact bytes and its type, `MANIFEST` or `AUDIT`) and takes the next place in a
`Chain`: the site's manifests form one chain, the audit log another. Records written
before that (legacy signed JSON) are still read and verified. A record names its `sequence`
and the SHA-256 of its predecessor's stored bytes (`previous`), so a removed, rewritten,
reordered or forged record is found offline by anyone with the public key
(`verify_chain`).

Over 500 lines: one record format. Manifests and audit records are written, signed and
read through the same envelope and `Chain`, and `verify_chain` checks both; kept together
so a change of the format is one module (`Chain` and `verify_chain` could move out whole).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ev_ingest import clock
from ev_ingest.store import keys
from ev_ingest.store.archive import ArchiveStore, Retention, StoredObject, StoreError, json_bytes
from ev_ingest.store.signing import AUDIT, MANIFEST, Opened, Signer, SigningError, Verifier, decode, sha256_hex

log = logging.getLogger(__name__)
CHAIN_PREFIX = "chain/"
AUDIT_CHAIN = "audit"
CLAIM_GROUP = 1000  # claims per listing group
# Bounds on what one read of a record or a claim may cost: a night's manifest of a large site
# is a few MB; anything far bigger is junk or an attack, reported instead of read.
MAX_RECORD_BYTES = 64 << 20
MAX_CLAIM_BYTES = 64 << 10

EntryKind = Literal[
    "export", "thumbnail", "contact_sheet", "motion_timeline", "motion_events", "motion_snapshot", "report"
]
MANIFEST_SCHEMA = 2  # 2: entries and failures name their server; `complete` and `pending`


class SourceServer(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    serial: str | None = None
    version: str | None = None


def _legacy_server(data: Any) -> Any:
    """Schema 1 entries and failures had no `server`: the export entries named it in
    `source.name`; site-wide and older rows get "" (unknown)."""
    if isinstance(data, dict) and "server" not in data:
        source = data.get("source") or {}
        return {**data, "server": (source.get("name") if isinstance(source, dict) else None) or ""}
    return data


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    kind: EntryKind
    version_id: str | None
    size: int
    sha256: str
    server: str  # the recording server ("" for site-wide objects such as the report)
    camera_id: int
    camera_name: str = ""
    start: datetime
    end: datetime
    recorded_start: datetime | None = None  # first recorded moment (t = 0 of an export file)
    export_format: str | None = None
    source: SourceServer = Field(default_factory=SourceServer)
    retention_mode: str | None = None
    retain_until: datetime | None = None
    legal_hold: bool = False
    motion_keys: list[str] = Field(default_factory=list)  # summaries derived from this export
    derived_from: str | None = None  # for summaries and thumbnails: the export key they describe
    events: int | None = None  # motion events in a motion_events object
    coverage: float | None = None  # of a motion summary: the share of the recording analysed (1.0: all)

    _legacy = model_validator(mode="before")(_legacy_server)

    @classmethod
    def of(
        cls,
        stored: StoredObject,
        kind: EntryKind,
        *,
        server: str,
        camera_id: int,
        start: datetime,
        end: datetime,
        retention: Retention | None,
        **extra: Any,
    ) -> ManifestEntry:
        """The entry of an object just stored (or found stored) under `retention`."""
        return cls(
            key=stored.key,
            kind=kind,
            version_id=stored.version_id,
            size=stored.size,
            sha256=stored.sha256,
            server=server,
            camera_id=camera_id,
            start=start,
            end=end,
            retention_mode=retention.mode if retention else None,
            retain_until=retention.until if retention else None,
            **extra,
        )


class ManifestFailure(BaseModel):
    """Planned work that was not archived, or a finding about what the store holds
    (`kind="conflict"`: a key held bytes no committed run wrote)."""

    model_config = ConfigDict(extra="forbid")

    server: str
    camera_id: int
    start: datetime
    end: datetime
    error: str
    kind: str = "export"

    _legacy = model_validator(mode="before")(_legacy_server)


class NoFootage(BaseModel):
    """A camera's chunk in which the server said it recorded nothing (its search found no
    clip there): accounted for, so a quiet camera's completeness can be proven, and neither
    archived nor a failure."""

    model_config = ConfigDict(extra="forbid")

    server: str
    camera_id: int
    camera_name: str = ""
    start: datetime
    end: datetime


class RecorderEdge(BaseModel):
    """How far back one recording server still held video, as the run's search answers
    showed it (issue 25 item 5): the planner searches each camera from `searched_from`, a
    margin before the night. `oldest` is the earliest recorded moment any camera's answer
    held when that lies inside the searched window (the server overwrote, or never had,
    what came before); None when the recordings reach back at least to `searched_from`.
    `seen_at` is the server's clock then: `seen_at - oldest` is how deep the recorder keeps."""

    model_config = ConfigDict(extra="forbid")

    server: str
    searched_from: datetime
    oldest: datetime | None = None
    seen_at: datetime
    clock_skew_s: float = 0.0  # the server's clock minus ours then: "now" on its clock, later


class Manifest(BaseModel):
    """One run's record. Every planned camera and chunk is in exactly one of `entries`
    (archived), `no_footage` (the server said so) or `failures` (why), except a server
    whose plan failed, which is one failure for all its cameras (camera 0)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = MANIFEST_SCHEMA
    run_id: str
    site: str
    interval_start: datetime
    interval_end: datetime
    created_at: datetime = Field(default_factory=clock.now)
    entries: list[ManifestEntry] = Field(default_factory=list)
    failures: list[ManifestFailure] = Field(default_factory=list)
    no_footage: list[NoFootage] = Field(default_factory=list)
    # Each planned server's horizon when the run searched it; not part of `same_content`: a
    # rerun that only saw the horizon move archives nothing new and writes nothing new.
    recorders: list[RecorderEdge] = Field(default_factory=list)
    planned: int = 0  # export chunks the run planned
    # False when part of the interval had not ended on the server's clock: a later run of
    # the same interval archives the rest (`pending` chunks were left for it).
    complete: bool = True
    pending: int = 0
    # Its place in the site's chain of records, and its signature (`Chain.append`).
    sequence: int | None = None
    previous: str | None = None
    signature: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return keys.manifest_key(self.site, self.interval_start, self.run_id)

    def exports(self) -> list[ManifestEntry]:
        return [e for e in self.entries if e.kind == "export"]

    def same_content(self, other: Manifest) -> bool:
        """Same objects (key, version, hash) and failures: a rerun that changed nothing."""

        def objects(m: Manifest) -> set[tuple[str, str | None, str]]:
            return {(e.key, e.version_id, e.sha256) for e in m.entries}

        def failed(m: Manifest) -> set[tuple[str, int, datetime, str]]:
            return {(f.server, f.camera_id, f.start, f.kind) for f in m.failures}

        def quiet(m: Manifest) -> set[tuple[str, int, datetime]]:
            return {(q.server, q.camera_id, q.start) for q in m.no_footage}

        return (
            objects(self) == objects(other)
            and failed(self) == failed(other)
            and quiet(self) == quiet(other)
            and (self.complete, self.pending) == (other.complete, other.pending)
        )


def manifest_chain(site: str) -> str:
    return f"site={keys.safe_part(site)}"


def write_manifest(
    store: ArchiveStore, manifest: Manifest, retention: Retention | None, signer: Signer
) -> tuple[Manifest, StoredObject]:
    """Sign the manifest, give it the next place in its site's chain, and store it."""
    document = manifest.model_dump(mode="json", exclude={"sequence", "previous", "signature"})
    stored, signed = Chain(store, manifest_chain(manifest.site)).append(manifest.key, document, signer, retention)
    return Manifest.model_validate(signed), stored


def read_manifest(store: ArchiveStore, key: str) -> Manifest:
    """The latest version of a manifest, as stored, NOT verified: for showing what is there
    (the demo's summary). Every decision reads through `verified_manifests`."""
    document = decode(store.get_json(key, limit=MAX_RECORD_BYTES))
    if document is None:
        raise ValueError(f"{key}: not a manifest record")
    return Manifest.model_validate(document)


@dataclass(frozen=True)
class ManifestProblem:
    """Why a manifest (or its latest version) was not trusted: reported, never decided on."""

    key: str
    problem: str


@dataclass
class VerifiedManifests:
    """What the one verified reader found: the manifests decisions may rest on, and the
    problems of every other it saw (for the caller to report)."""

    manifests: list[Manifest]
    problems: list[ManifestProblem]


VERSIONS_SEARCHED = 50  # versions of one manifest key read to find the chained one


def verified_manifests(
    store: ArchiveStore, verifier: Verifier, site: str | None = None, on: datetime | None = None
) -> VerifiedManifests:
    """Every manifest (of one site, of one site's interval starting `on`) as its site's chain
    names it: the version whose bytes the latest claim naming that key hashes, signed by a
    trusted key, at that place. The one reader every decision uses (skip, hold, release,
    dispose, package, summarise, status, analytics).

    Not trusted, and reported instead: a manifest no claim names (unsigned or planted), one
    whose chained version is gone, one not signed by a trusted key or not at its place. A
    latest version that is not the chained one (a rollback to older signed bytes, an
    unsigned rewrite) is reported and ignored; the chained version is what counts. A
    manifest removed (a delete marker) while its claim remains is found from the claim."""
    listed = set(list_manifests(store, site, on))
    prefix = _manifest_prefix(site, on)
    chains = [manifest_chain(site)] if site is not None else _manifest_chains(store)
    named: dict[str, list[Claim]] = {}
    for name in chains:
        for claim in Chain(store, name).read_claims():
            if claim.record and claim.sha256 and claim.record.startswith(prefix) and claim.record.endswith(".json"):
                named.setdefault(claim.record, []).append(claim)
    found = VerifiedManifests([], [])
    for key in sorted(listed | set(named)):
        if key not in named:
            found.problems.append(ManifestProblem(key, "no claim of its site's chain names it (unchained)"))
            continue
        # The newest place a trusted record took decides; a newer place taken by bytes no
        # trusted key signed (a stranger with write access) is reported, and hides nothing.
        for claim in sorted(named[key], key=lambda c: c.sequence, reverse=True):
            try:
                manifest, problem = _chained_version(store, key, claim, verifier)
            except (StoreError, ClientError, BotoCoreError) as exc:
                manifest, problem = None, f"unreadable: {str(exc).splitlines()[0][:200]}"
            if problem:
                found.problems.append(ManifestProblem(key, problem))
            if manifest is not None:
                found.manifests.append(manifest)
                break
    for problem in found.problems:
        log.error("manifest %s is not trusted: %s", problem.key, problem.problem)
    return found


def verified_manifest(store: ArchiveStore, verifier: Verifier, key: str) -> Manifest | None:
    """The latest version of the manifest at `key` if a trusted key signed it and the claim of
    the place it names holds exactly its bytes; None (logged) otherwise or when it is not
    there. Three reads, for one key just committed (a rerun's "unchanged", the motion DAG's
    trigger); a rollback to older committed bytes is what `verified_manifests` (which reads
    the whole chain) and the audit find."""
    if store.head(key) is None:
        return None
    chain = key.removeprefix("manifests/").split("/", 1)[0]
    try:
        record = read_version(store, key, None)
        claim = Chain(store, chain).read_claim(record.sequence) if record.sequence else None
    except (StoreError, ClientError, BotoCoreError) as exc:
        log.error("manifest %s is not trusted: unreadable: %s", key, str(exc).splitlines()[0][:200])
        return None
    if claim is None or claim.record != key or claim.sha256 != record.sha256 or not chain.startswith("site="):
        log.error("manifest %s is not trusted: no claim of its site's chain holds its bytes (unchained)", key)
        return None
    opened = record.open(verifier, MANIFEST)
    if opened.document is None:
        log.error("manifest %s is not trusted: %s", key, opened.problem)
        return None
    try:
        return Manifest.model_validate(opened.document)
    except ValueError as exc:
        log.error("manifest %s is not a manifest: %s", key, str(exc).splitlines()[0][:200])
        return None


def _manifest_prefix(site: str | None, on: datetime | None) -> str:
    if site is None:
        return "manifests/"
    if on is None:
        return f"manifests/site={keys.safe_part(site)}/"
    return keys.manifest_key(site, on, "_").rsplit("/", 1)[0] + "/"


def _manifest_chains(store: ArchiveStore) -> list[str]:
    """The sites' manifest chains: from the claims (a site whose manifests were all removed
    still has them) and from the manifests (one with no claims at all still has a chain)."""
    names = {p.removeprefix(CHAIN_PREFIX).rstrip("/") for p in store.list_prefixes(CHAIN_PREFIX)}
    names |= {p.removeprefix("manifests/").rstrip("/") for p in store.list_prefixes("manifests/")}
    return sorted(n for n in names if n.startswith("site="))


def _chained_version(
    store: ArchiveStore, key: str, claim: Claim, verifier: Verifier
) -> tuple[Manifest | None, str | None]:
    """(the manifest at the version `claim` names, or None; the problem to report, or None)."""
    versions = store.versions(key)
    for index, version in enumerate(versions[:VERSIONS_SEARCHED]):
        record = read_version(store, key, version)
        if record.sha256 != claim.sha256:
            continue
        if record.document is None:
            return None, "its chained version is not a JSON record"
        opened = record.open(verifier, MANIFEST)
        if opened.document is None:
            return None, f"its chained version is not trusted: {opened.problem}"
        if record.sequence != claim.sequence:
            return None, f"its chained version says place {record.sequence}, its claim place {claim.sequence}"
        try:
            manifest = Manifest.model_validate(opened.document)
        except ValueError as exc:
            return None, f"its chained version is not a manifest: {str(exc).splitlines()[0][:200]}"
        if index:
            return manifest, (
                f"its latest version is not the one place {claim.sequence} names (rolled back or rewritten): "
                "the chained version is used"
            )
        return manifest, None
    if not versions:
        return None, f"place {claim.sequence} of its chain names it, but no version of it is stored"
    return None, f"the version place {claim.sequence} names is gone (rewritten or removed)"


class RecordIndex:
    """What committed manifests vouch for: key -> the entry that recorded it.

    The only basis for "already archived". An object's tag or metadata can be written by
    anyone with access to the bucket (a tag even under Object Lock), so neither is ever
    trusted; a manifest is the run's commit record. Built from the latest version of every
    manifest of one site's interval (a handful of small reads)."""

    def __init__(self, entries: dict[str, ManifestEntry]) -> None:
        self._entries = entries

    @classmethod
    def of_day(cls, store: ArchiveStore, site: str, on: datetime, verifier: Verifier) -> RecordIndex:
        """From the verified manifests of the site's interval (`verified_manifests`); any
        other (forged, unchained, rolled back) vouches for nothing: what it lists counts as
        not archived."""
        entries: dict[str, ManifestEntry] = {}
        for manifest in verified_manifests(store, verifier, site, on).manifests:
            for entry in manifest.entries:
                entries[entry.key] = entry
        return cls(entries)

    def derived(self, source: str, kind: str) -> list[ManifestEntry]:
        """The recorded entries of `kind` derived from the object `source` (e.g. an export's snapshots)."""
        return sorted(
            (e for e in self._entries.values() if e.derived_from == source and e.kind == kind), key=lambda e: e.key
        )

    def get(self, key: str) -> ManifestEntry | None:
        return self._entries.get(key)

    def of_kind(self, kind: str) -> list[ManifestEntry]:
        """Every recorded entry of `kind` (e.g. the exports), by key."""
        return sorted((e for e in self._entries.values() if e.kind == kind), key=lambda e: e.key)


def list_manifests(store: ArchiveStore, site: str | None = None, on: datetime | None = None) -> list[str]:
    """Manifest keys, of every site, of one site, or of one site's interval starting on `on`."""
    return sorted(k for k in store.list_keys(_manifest_prefix(site, on)) if k.endswith(".json"))


class AuditLog:
    """Append-only audit records (each its own locked object: nothing is ever rewritten)."""

    def __init__(
        self, store: ArchiveStore, retention: Retention | None, signer: Signer | None, verifier: Verifier | None = None
    ) -> None:
        """`signer` None: a read-only log (an outside auditor with the public keys alone)."""
        if verifier is None:
            if signer is None:
                raise ValueError("an audit log needs a signing key or the public keys to check records with")
            verifier = Verifier([signer.public])
        self.store = store
        self.retention = retention
        self.signer = signer
        self.verifier = verifier

    def record(self, action: str, **details: Any) -> str:
        """Sign and chain one record; its key."""
        if self.signer is None:
            raise SigningError(
                f"`{action}` writes a signed audit record: it needs the signing key, not only public keys"
            )
        at = clock.now()
        key = keys.audit_key(at, action)
        document = {"action": action, "at": at.isoformat(), **details}
        Chain(self.store, AUDIT_CHAIN).append(key, document, self.signer, self.retention)
        return key

    def records(self, day: str | None = None) -> list[RecordVersion]:
        """Every record (of one UTC day), oldest first, as stored: not checked. Each is read
        alone: junk planted under audit/ (not JSON, a list, huge) must not stop the readers
        of the trail; it reads as a version without a document, naming its problem."""
        prefix = f"audit/date={day}/" if day else "audit/"
        found = []
        for key in sorted(self.store.list_keys(prefix)):
            try:
                found.append(read_version(self.store, key, None))
            except (StoreError, ClientError, BotoCoreError) as exc:
                found.append(RecordVersion(key, None, "", None, problem=str(exc).splitlines()[0][:300]))
        return found

    def entries(self, day: str | None = None) -> list[dict[str, Any]]:
        """Every record's document (of one UTC day), oldest first: not checked (for display)."""
        return [r.shown() for r in self.records(day)]

    def trusted(self) -> list[dict[str, Any]]:
        """The records a trusted key signed, as it signed them (what decisions rest on)."""
        opened = (r.open(self.verifier, AUDIT) for r in self.records())
        return [o.document for o in opened if o.document is not None]


@dataclass(frozen=True)
class RecordVersion:
    """One stored version of a chained record, as read back: `stored` is what the bytes
    hold (an envelope, a legacy record, or junk), `document` the record inside, unchecked."""

    key: str
    version_id: str | None
    sha256: str  # of the stored bytes: what the next record's `previous` names
    stored: Any  # the parsed bytes; None when they are not JSON
    problem: str | None = None  # why it could not be read at all

    @property
    def document(self) -> dict[str, Any] | None:
        """The record inside (an envelope's payload, a legacy record), NOT verified; None when
        the bytes hold neither."""
        return decode(self.stored)

    def open(self, verifier: Verifier, payload_type: str) -> Opened:
        """The record as a trusted key signed it, or why not (`signing.open_envelope`)."""
        return verifier.open(self.stored, payload_type)

    def check(self, verifier: Verifier, payload_type: str) -> str | None:
        return self.open(verifier, payload_type).problem

    def shown(self) -> dict[str, Any]:
        """The document for display; a record that has none names its problem."""
        document = self.document
        if document is not None:
            return document
        return {"key": self.key, "unreadable": self.problem or "not a JSON record"}

    @property
    def sequence(self) -> int | None:
        value = (self.document or {}).get("sequence")
        return value if isinstance(value, int) else None

    @property
    def previous(self) -> str | None:
        return (self.document or {}).get("previous")


def read_version(store: ArchiveStore, key: str, version_id: str | None) -> RecordVersion:
    """One stored version, bounded (`TooLarge` past `MAX_RECORD_BYTES`); bytes that are not a
    JSON object (junk, or nested past the parser's depth) read as a version without a document."""
    data = store.get_bytes(key, version_id, limit=MAX_RECORD_BYTES)
    try:
        stored = json.loads(data)
    except (ValueError, RecursionError):
        stored = None
    return RecordVersion(key, version_id, sha256_hex(data), stored)


@dataclass(frozen=True)
class Claim:
    """A chain place's claim, as its OLDEST version says: the first writer owns the place, so
    a later version (a store that ignored `If-None-Match`, or an overwrite) cannot take it."""

    sequence: int
    key: str  # the claim object's key
    version_id: str | None
    record: str | None  # the key of the record that took the place
    sha256: str | None  # of that record's stored bytes; None when the claim is unreadable
    problem: str | None = None  # why it is unreadable

    @classmethod
    def parse(cls, sequence: int, key: str, version_id: str | None, data: bytes) -> Claim:
        """Never raises: junk (`[]`, not JSON, no hash) is a claim with a `problem`."""
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            return cls(sequence, key, version_id, None, None, "not JSON")
        if not isinstance(document, dict):
            return cls(sequence, key, version_id, None, None, f"a JSON {type(document).__name__}, not a claim")
        sha, record = document.get("sha256"), document.get("key")
        if not isinstance(sha, str) or not sha:
            return cls(sequence, key, version_id, None, None, "names no SHA-256")
        return cls(sequence, key, version_id, record if isinstance(record, str) else None, sha)


class Chain:
    """An append-only, hash-linked sequence of signed records (a site's manifests; the audit log).

    A writer signs its record with the next sequence number and its predecessor's hash,
    then claims that place by creating `chain/<name>/<n>.json` (naming the record's key
    and SHA-256) with a conditional write (`ArchiveStore.create_once`), so two writers
    can never take the same place; a writer that loses the race signs again for the next
    place. Only then is the record stored. The claims are locked like the records, and
    the chain's head is read from them alone: no waiting on another writer's record, and a
    record lost after its claim (a writer that died, a deletion) is a gap the audit
    reports while the chain goes on.

    Exclusivity holds on any versioned bucket: the oldest version of a claim decides who
    owns the place. Where the store ignores `If-None-Match` (probed once,
    `ArchiveStore.conditional_create`), a writer whose "create" was really a second version
    reads the place back and, finding an older claim, moves on to the next place."""

    def __init__(self, store: ArchiveStore, name: str) -> None:
        self.store = store
        self.name = name
        self.prefix = f"{CHAIN_PREFIX}{name}/"
        self.payload_type = payload_type_of(name)

    def claim_key(self, sequence: int) -> str:
        return self.claim_key_of(self.name, sequence)

    @staticmethod
    def claim_key_of(name: str, sequence: int) -> str:
        # Grouped by thousands, so that finding the head lists one group, not the whole
        # history (a year of retention changes is 100,000s of records).
        return f"{CHAIN_PREFIX}{name}/{sequence // CLAIM_GROUP:07d}/{sequence:010d}.json"

    @staticmethod
    def sequence_of(key: str) -> int | None:
        stem = key.rsplit("/", 1)[-1].removesuffix(".json")
        return int(stem) if stem.isdigit() and key.endswith(".json") else None

    def claims(self, prefix: str | None = None) -> dict[int, str]:
        """sequence -> claim key (of the whole chain, or of one group's `prefix`)."""
        found = {}
        for key in self.store.list_keys(prefix or self.prefix):
            sequence = self.sequence_of(key)
            if sequence is not None:
                found[sequence] = key
        return found

    def read_claim(self, sequence: int, key: str | None = None, version_id: str | None = None) -> Claim:
        """The claim of `sequence` from its oldest version (or the version given); an unreadable
        one is a `Claim` with a problem, never an exception from its content."""
        key = key or self.claim_key(sequence)
        if version_id is None:
            versions = self.store.versions(key)
            if not versions:
                return Claim(sequence, key, None, None, None, "no stored version")
            version_id = versions[-1]  # newest first: the last is the oldest
        try:
            data = self.store.get_bytes(key, version_id, limit=MAX_CLAIM_BYTES)
        except StoreError as exc:
            return Claim(sequence, key, version_id, None, None, str(exc))
        return Claim.parse(sequence, key, version_id, data)

    def read_claims(self) -> list[Claim]:
        """Every claim of the chain, each from its oldest version (one listing, one read per
        claim); each read alone, so one bad claim hides no other."""
        found = []
        for key, version in sorted(self.store.oldest_versions(self.prefix).items()):
            sequence = self.sequence_of(key)
            if sequence is None:
                continue
            try:
                found.append(self.read_claim(sequence, key, version.version_id))
            except (ClientError, BotoCoreError) as exc:
                found.append(Claim(sequence, key, version.version_id, None, None, f"unreadable: {exc}"))
        return found

    def claimed(self) -> dict[int, str | None]:
        """sequence -> the SHA-256 its (oldest) claim names, None when unreadable: for the audit."""
        return {c.sequence: c.sha256 for c in self.read_claims()}

    def record(self, sequence: int) -> RecordVersion | None:
        """The stored record that took `sequence` (None when it is not there)."""
        claim = self.read_claim(sequence)
        if claim.record is None:
            return None
        for version in self.store.versions(claim.record):
            found = read_version(self.store, claim.record, version)
            if found.sha256 == claim.sha256:
                return found
        return None

    def head(self) -> tuple[int, str | None]:
        """(the last claimed sequence, the SHA-256 its claim names): one listing of the
        groups, one of the last group, one read of its oldest claim."""
        groups = sorted(self.store.list_prefixes(self.prefix))
        claims = self.claims(groups[-1]) if groups else {}
        if not claims:
            return 0, None
        last = max(claims)
        try:
            claim = self.read_claim(last, claims[last])
        except (ClientError, BotoCoreError) as exc:
            claim = Claim(last, claims[last], None, None, None, str(exc))
        if claim.sha256 is None:
            # A destroyed or damaged claim must not stop the record (the audit's above all)
            # from being stored: it goes on without a predecessor, a break the audit reports.
            log.error(
                "chain %s: the claim of place %d is unreadable (%s); continuing unlinked",
                self.name,
                last,
                claim.problem,
            )
        return last, claim.sha256

    def append(
        self, key: str, document: dict[str, Any], signer: Signer, retention: Retention | None
    ) -> tuple[StoredObject, dict[str, Any]]:
        """Store `document` at `key` as the chain's next record, sealed in an envelope of the
        chain's payload type: (what was stored, the record as signed)."""
        conditional = self.store.conditional_create()
        for _ in range(100):  # each lost race means another record was appended: bounded by writers
            sequence, previous = self.head()
            signed = {**document, "sequence": sequence + 1, "previous": previous}
            body = json_bytes(signer.seal(self.payload_type, signed))
            claim = json_bytes({"key": key, "sha256": sha256_hex(body), "chain": self.name})
            if self.store.create_once(self.claim_key(sequence + 1), claim, retention=retention) and (
                conditional or self._owns(sequence + 1, claim)
            ):
                break
        else:
            raise StoreError(f"chain {self.name}: could not claim a place after 100 tries")
        return self.store.put(key, body, content_type="application/json", retention=retention), signed

    def _owns(self, sequence: int, claim: bytes) -> bool:
        """Whether the oldest version of the place's claim is `claim` (on a store that ignores
        `If-None-Match`, a "created" claim may be a second version of someone else's)."""
        versions = self.store.versions(self.claim_key(sequence))
        return bool(versions) and self.store.get_bytes(self.claim_key(sequence), versions[-1]) == claim


def payload_type_of(chain: str) -> str:
    """The kind of record a chain holds: the audit log's, or a site's manifests."""
    return AUDIT if chain == AUDIT_CHAIN else MANIFEST


@dataclass(frozen=True)
class ChainProblem:
    key: str
    problem: str
    detail: str


def verify_chain(
    name: str, records: Iterable[RecordVersion], claims: dict[int, str | None], verifier: Verifier
) -> tuple[list[ChainProblem], int]:
    """Every record version signed by a trusted key and in its place; every place 1..head
    present (a record and its claim removed together leave a gap that is found); every
    claimed place filled once, by the record its claim names; each record naming its
    predecessor's hash. `claims`: sequence -> the SHA-256 its oldest claim names, None for an
    unreadable claim (`Chain.claimed`). Returns (problems, head)."""
    problems: list[ChainProblem] = []
    by_sequence: dict[int, list[RecordVersion]] = {}
    for version in records:
        where = f"{version.key}@{version.version_id}"
        if version.document is None:
            problems.append(ChainProblem(version.key, "unreadable", f"{where} is not a JSON record"))
            continue
        trouble = version.check(verifier, payload_type_of(name))
        if trouble:
            problems.append(ChainProblem(version.key, "signature", f"{where}: {trouble}"))
        if version.sequence is None or version.sequence < 1:
            problems.append(ChainProblem(version.key, "unchained", f"{where} has no place in chain {name}"))
            continue
        by_sequence.setdefault(version.sequence, []).append(version)
    for sequence, versions in sorted(by_sequence.items()):
        if len(versions) > 1:
            names = ", ".join(f"{v.key}@{v.version_id}" for v in versions)
            problems.append(
                ChainProblem(versions[0].key, "fork", f"place {sequence} of {name} is taken twice: {names}")
            )
        if sequence not in claims:
            problems.append(ChainProblem(versions[0].key, "unclaimed", f"place {sequence} of {name} was never claimed"))
        for version in versions:
            if claims.get(sequence) is not None and version.sha256 != claims[sequence]:
                problems.append(ChainProblem(version.key, "chain", f"place {sequence} holds other bytes than claimed"))
            if sequence == 1 and version.previous is not None:
                problems.append(ChainProblem(version.key, "chain", f"the first record of {name} names a predecessor"))
            elif sequence > 1 and claims.get(sequence - 1) is not None and version.previous != claims[sequence - 1]:
                problems.append(
                    ChainProblem(
                        version.key, "chain", f"place {sequence} does not name the hash of place {sequence - 1}"
                    )
                )
    for sequence in sorted(claims):
        if sequence not in by_sequence:
            problems.append(
                ChainProblem(
                    Chain.claim_key_of(name, sequence),
                    "gap",
                    f"place {sequence} of {name} was claimed; its record is missing",
                )
            )
    head = max([*claims, *by_sequence, 0])
    for first, last in missing_places({*claims, *by_sequence}, head):
        places = f"place {first}" if first == last else f"places {first}..{last}"
        problems.append(
            ChainProblem(
                Chain.claim_key_of(name, first), "gap", f"{places} of {name} missing: neither record nor claim is there"
            )
        )
    return problems, head


def missing_places(present: set[int], head: int) -> list[tuple[int, int]]:
    """The runs (first, last) of places in 1..head not in `present`: ranges, not places, so a
    claim planted at place 10^9 costs one finding, not a billion."""
    runs = []
    expected = 1
    for place in sorted(p for p in present if p >= 1):
        if place > expected:
            runs.append((expected, place - 1))
        expected = place + 1
    if head >= expected:
        runs.append((expected, head))
    return runs
