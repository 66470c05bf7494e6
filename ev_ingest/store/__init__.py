"""The archive store: S3 (boto3) with checksums and Object Lock, plus the embedded SeaweedFS."""

from ev_ingest.store.archive import (
    ArchiveStore,
    IntegrityError,
    ObjectInfo,
    ObjectLockNotEnabled,
    Retention,
    StoredObject,
    StoreError,
    StoreSettings,
    Verification,
    VersionInfo,
)
from ev_ingest.store.embedded import EmbeddedS3, Ports
from ev_ingest.store.records import (
    AuditLog,
    Manifest,
    ManifestEntry,
    ManifestFailure,
    NoFootage,
    RecordIndex,
    VerifiedManifests,
    read_manifest,
    verified_manifest,
    verified_manifests,
    write_manifest,
)

__all__ = [
    "ArchiveStore",
    "AuditLog",
    "EmbeddedS3",
    "IntegrityError",
    "Manifest",
    "ManifestEntry",
    "ManifestFailure",
    "NoFootage",
    "RecordIndex",
    "ObjectInfo",
    "ObjectLockNotEnabled",
    "Ports",
    "Retention",
    "StoreError",
    "StoreSettings",
    "StoredObject",
    "Verification",
    "VersionInfo",
    "VerifiedManifests",
    "read_manifest",
    "verified_manifest",
    "verified_manifests",
    "write_manifest",
]
