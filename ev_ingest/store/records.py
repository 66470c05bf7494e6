"""Manifests (the commit record of a run) and the audit log, both stored under Object Lock.

A manifest lists every object a run archived. It is written last: an object that is
not in a manifest is not archived, and a rerun skips only what a committed manifest
vouches for (`RecordIndex`: that key, at that version, with that hash). Every entry and
failure names its recording server: camera ids are only unique within one server.

The audit log records every retention change, legal hold, verification and failure,
one small JSON object per action.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ev_ingest import clock
from ev_ingest.store import keys
from ev_ingest.store.archive import ArchiveStore, Retention, StoredObject

EntryKind = Literal["export", "thumbnail", "contact_sheet", "motion_timeline", "motion_events", "report"]
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


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = MANIFEST_SCHEMA
    run_id: str
    site: str
    interval_start: datetime
    interval_end: datetime
    created_at: datetime = Field(default_factory=clock.now)
    entries: list[ManifestEntry] = Field(default_factory=list)
    failures: list[ManifestFailure] = Field(default_factory=list)
    planned: int = 0  # export chunks the run planned
    # False when part of the interval had not ended on the server's clock: a later run of
    # the same interval archives the rest (`pending` chunks were left for it).
    complete: bool = True
    pending: int = 0

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

        return (
            objects(self) == objects(other)
            and failed(self) == failed(other)
            and (self.complete, self.pending) == (other.complete, other.pending)
        )


def write_manifest(store: ArchiveStore, manifest: Manifest, retention: Retention | None) -> StoredObject:
    return store.put_json(manifest.key, manifest.model_dump(mode="json"), retention=retention)


def read_manifest(store: ArchiveStore, key: str) -> Manifest:
    return Manifest.model_validate(store.get_json(key))


class RecordIndex:
    """What committed manifests vouch for: key -> the entry that recorded it.

    The only basis for "already archived". An object's tag or metadata can be written by
    anyone with access to the bucket (a tag even under Object Lock), so neither is ever
    trusted; a manifest is the run's commit record. Built from the latest version of every
    manifest of one site's interval (a handful of small reads)."""

    def __init__(self, entries: dict[str, ManifestEntry]) -> None:
        self._entries = entries

    @classmethod
    def of_day(cls, store: ArchiveStore, site: str, on: datetime) -> RecordIndex:
        entries: dict[str, ManifestEntry] = {}
        for key in list_manifests(store, site, on):
            for entry in read_manifest(store, key).entries:
                entries[entry.key] = entry
        return cls(entries)

    def get(self, key: str) -> ManifestEntry | None:
        return self._entries.get(key)


def list_manifests(store: ArchiveStore, site: str | None = None, on: datetime | None = None) -> list[str]:
    """Manifest keys, of every site, of one site, or of one site's interval starting on `on`."""
    if site is None:
        prefix = "manifests/"
    elif on is None:
        prefix = f"manifests/site={keys.safe_part(site)}/"
    else:
        prefix = keys.manifest_key(site, on, "_").rsplit("/", 1)[0] + "/"
    return sorted(k for k in store.list_keys(prefix) if k.endswith(".json"))


class AuditLog:
    """Append-only audit records (each its own locked object: nothing is ever rewritten)."""

    def __init__(self, store: ArchiveStore, retention: Retention | None = None) -> None:
        self.store = store
        self.retention = retention

    def record(self, action: str, **details: Any) -> str:
        at = clock.now()
        key = keys.audit_key(at, action)
        self.store.put_json(key, {"action": action, "at": at.isoformat(), **details}, retention=self.retention)
        return key

    def entries(self, day: str | None = None) -> list[dict[str, Any]]:
        prefix = f"audit/date={day}/" if day else "audit/"
        return [self.store.get_json(k) for k in sorted(self.store.list_keys(prefix))]
