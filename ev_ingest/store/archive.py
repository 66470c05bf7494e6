"""`ArchiveStore`: land bytes in S3 (boto3) with integrity and Object Lock retention.

- `put()` stores a body (bytes, a file object, or an iterator of chunks): one PUT for
  small bodies, a multipart upload for large ones, parts uploaded by a small thread pool
  while the next part is read. The whole object's SHA-256 is known before anything is
  written (computed for bytes, declared by the caller for streams) and goes with the
  *creating* request, as immutable metadata (`x-amz-meta-sha256`) and as the `sha256`
  tag, so no locked object can exist without it. Each request carries its S3 SHA-256
  checksum, which the store verifies; a multipart upload whose bytes do not hash to the
  declared value is aborted before it completes. After completion the store's own
  checksum and length are read back and compared with what was sent (`confirm`).
  Any failure aborts the multipart upload, so no partial object is ever visible.
- The metadata and tag are descriptions, never proof: the tag stays writable under
  Object Lock, and anyone with write access can plant an object with any metadata.
  What is archived is what a committed manifest records (key, version, SHA-256).
- `put(..., if_changed=True)` adds no version when the latest one already holds the
  same bytes, judged by the store's own checksum (small, single-part objects).
- Retention (GOVERNANCE or COMPLIANCE until a date) and legal holds are set with the
  upload or later, and read back; `verify()` re-reads and re-hashes an object.

Works unchanged on AWS S3, and on SeaweedFS, Ceph RGW or StorageGRID via `endpoint_url`.

Over 500 lines: `ArchiveStore` is the one owner of the boto3 client; its reads, uploads
(single and multipart, with their confirmation) and Object Lock calls share that client,
the bucket and the error mapping, so they stay one class.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_PART_SIZE = 8 * MiB  # 8 MiB x 10,000 parts = 80 GB, far above a day of one camera
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
READ_CHUNK = 1 * MiB
SHA256_TAG = "sha256"
PROBE_PREFIX = "probes/conditional-create/"
_WARNED: set[tuple[str | None, str]] = set()  # stores already said to ignore If-None-Match
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


class StoreError(Exception):
    """Base class of archive store errors."""


class ObjectLockNotEnabled(StoreError):
    pass


class IntegrityError(StoreError):
    pass


class TooLarge(StoreError):
    """An object larger than the reader's bound (a record is small: a huge one is junk or an attack)."""


class StoreSettings(BaseModel):
    """Where the archive lives. Strict: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    endpoint_url: str | None = Field(None, description="None for AWS S3; http(s)://host:port otherwise")
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: SecretStr | None = None
    part_size: int = Field(DEFAULT_PART_SIZE, ge=MIN_PART_SIZE, le=5 * 1024 * MiB)
    max_workers: int = Field(4, ge=1, le=32, description="Parts uploaded at once")
    max_attempts: int = Field(10, ge=1, le=20, description="Tries of each S3 request (backoff up to 20 s)")
    verify_tls: bool = True
    path_style: bool = Field(True, description="Path-style addressing (needed by most S3-compatible stores)")

    @classmethod
    def from_env(cls, **overrides: Any) -> StoreSettings:
        """EV_S3_BUCKET, EV_S3_ENDPOINT, EV_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY."""
        values: dict[str, Any] = {
            "bucket": os.environ.get("EV_S3_BUCKET", "ev-archive"),
            "endpoint_url": os.environ.get("EV_S3_ENDPOINT") or None,
            "region": os.environ.get("EV_S3_REGION", "us-east-1"),
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True)
class Retention:
    mode: LockMode
    until: datetime

    def as_s3(self) -> dict[str, Any]:
        return {"Mode": self.mode, "RetainUntilDate": self.until}


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str | None
    size: int
    sha256: str
    checksum: str | None = None  # the S3 checksum sent (base64; composite "-N" for multipart)
    skipped: bool = False  # True when the latest version already held these bytes (if_changed)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version_id: str | None
    size: int
    sha256: str | None  # as declared when it was written (metadata, else the legacy tag): not proof
    checksum_sha256: str | None  # S3's own checksum (base64; "-N" suffix for multipart)
    retention: Retention | None
    legal_hold: bool
    content_type: str | None


@dataclass(frozen=True)
class VersionInfo:
    key: str
    version_id: str | None
    last_modified: datetime
    size: int
    deleted: bool = False  # a delete marker: the key looks gone, its versions stay


@dataclass(frozen=True)
class Verification:
    key: str
    version_id: str | None
    expected: str
    actual: str
    size: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def json_bytes(document: Any) -> bytes:
    """How JSON documents are stored (deterministic: a record's hash is known before it is)."""
    return json.dumps(document, sort_keys=True, indent=1, default=str).encode()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _version(version_id: str | None) -> dict[str, str]:
    return {"VersionId": version_id} if version_id else {}


class _Reader:
    """`read(n)` over bytes, a binary file object or an iterator of byte chunks."""

    def __init__(self, source: bytes | IO[bytes] | Iterable[bytes]) -> None:
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._chunks: Iterator[bytes] | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._buffer += source
        elif hasattr(source, "read"):
            self._file = source  # type: ignore[assignment]
        else:
            self._chunks = iter(source)  # type: ignore[arg-type]

    def read(self, size: int) -> bytes:
        if self._file is not None:
            parts, want = [], size
            while want > 0:  # a file object may return short reads (pipes, sockets)
                data = self._file.read(want)
                if not data:
                    break
                parts.append(data)
                want -= len(data)
            return b"".join(parts)
        while len(self._buffer) < size and self._chunks is not None:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._chunks = None
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


class ArchiveStore:
    def __init__(self, settings: StoreSettings, client: Any = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._conditional: bool | None = None  # conditional_create(), probed on first use
        self.s3 = client or boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
            verify=settings.verify_tls,
            config=Config(
                s3={"addressing_style": "path" if settings.path_style else "auto"},
                # Enough to ride out a store restart (~10-60 s of jittered, capped backoff).
                retries={"mode": "standard", "max_attempts": settings.max_attempts},
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=settings.max_workers + 4,
                # We send SHA-256 ourselves; don't add a second (CRC) checksum pass.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def __repr__(self) -> str:
        return f"ArchiveStore(bucket={self.bucket!r}, endpoint={self.settings.endpoint_url!r})"

    # --- bucket ---------------------------------------------------------------------
    def ensure_bucket(self, object_lock: bool = True) -> None:
        """Create the bucket (versioned, Object Lock enabled) if missing; check the lock if present."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": object_lock}
            if self.settings.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
            self.s3.create_bucket(**kwargs)
            log.info("created bucket %s (object lock %s)", self.bucket, "on" if object_lock else "off")
        self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        if object_lock and not self.lock_enabled():
            raise ObjectLockNotEnabled(
                f"bucket {self.bucket!r} exists without Object Lock; retention would not be enforced. "
                "Object Lock can only be enabled at creation: use a new bucket."
            )

    def lock_enabled(self) -> bool:
        """Checked, not assumed: some stores accept retention calls on buckets without a lock."""
        try:
            config = self.s3.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError:
            return False
        return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # --- reading ----------------------------------------------------------------------
    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                return None
            raise
        version = head.get("VersionId")
        sha = (head.get("Metadata") or {}).get(SHA256_TAG) or self.tags(key, version).get(SHA256_TAG)
        retention = None
        if head.get("ObjectLockMode") and head.get("ObjectLockRetainUntilDate"):
            retention = Retention(head["ObjectLockMode"], head["ObjectLockRetainUntilDate"].astimezone(UTC))
        return ObjectInfo(
            key=key,
            version_id=version,
            size=head["ContentLength"],
            sha256=sha,
            checksum_sha256=head.get("ChecksumSHA256"),
            retention=retention,
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
            content_type=head.get("ContentType"),
        )

    def tags(self, key: str, version_id: str | None = None) -> dict[str, str]:
        extra = {"VersionId": version_id} if version_id else {}
        answer = self.s3.get_object_tagging(Bucket=self.bucket, Key=key, **extra)
        return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}

    def set_tags(self, key: str, version_id: str | None, tags: dict[str, str]) -> None:
        """Replace the object's tags (tags stay writable under Object Lock); keep `sha256` in them."""
        extra = {"VersionId": version_id} if version_id else {}
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        self.s3.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set}, **extra)

    def get_bytes(self, key: str, version_id: str | None = None, *, limit: int | None = None) -> bytes:
        """The object's bytes; with `limit`, `TooLarge` for a bigger object, whose body is
        never read (a planted 170 MB "record" must cost one request, not the reader's memory)."""
        extra = {"VersionId": version_id} if version_id else {}
        answer = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)
        body = answer["Body"]
        if limit is not None and int(answer.get("ContentLength") or 0) > limit:
            body.close()
            raise TooLarge(f"{key}: {answer['ContentLength']} bytes, more than the {limit} a record may have")
        try:
            data = body.read() if limit is None else body.read(limit + 1)
        finally:
            body.close()
        if limit is not None and len(data) > limit:  # a store that did not say the length
            raise TooLarge(f"{key}: more than the {limit} bytes a record may have")
        return data

    def iter_bytes(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        extra = {"VersionId": version_id} if version_id else {}
        body = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def get_json(self, key: str, version_id: str | None = None, *, limit: int | None = None) -> Any:
        return json.loads(self.get_bytes(key, version_id, limit=limit))

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def list_prefixes(self, prefix: str) -> list[str]:
        """The "folders" right under `prefix` (keys grouped at the next `/`)."""
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return found

    def versions(self, key: str) -> list[str]:
        """Version ids of exactly `key`, newest first."""
        answer = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key)
        found = [v for v in answer.get("Versions", []) if v["Key"] == key]
        found.sort(key=lambda v: v["LastModified"], reverse=True)
        return [v["VersionId"] for v in found]

    def all_versions(self, prefix: str) -> list[VersionInfo]:
        """Every version and delete marker under `prefix`, oldest first per key."""
        found: list[VersionInfo] = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                found.append(VersionInfo(item["Key"], item.get("VersionId"), item["LastModified"], item.get("Size", 0)))
            for item in page.get("DeleteMarkers", []):
                found.append(VersionInfo(item["Key"], item.get("VersionId"), item["LastModified"], 0, deleted=True))
        # S3 lists a key's versions newest first, and times may tie (a store keeping whole
        # seconds): among equal times, the one listed later is the older.
        position = {id(v): n for n, v in enumerate(found)}
        found.sort(key=lambda v: (v.key, v.last_modified, -position[id(v)]))
        return found

    def oldest_versions(self, prefix: str) -> dict[str, VersionInfo]:
        """key -> its oldest stored version, for every key under `prefix` (one listing).
        S3 lists a key's versions newest first; equal times keep that order, so of two
        versions written in the same instant the one listed last is the older."""
        oldest: dict[str, tuple[datetime, int, VersionInfo]] = {}
        position = 0
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                position += 1
                found = VersionInfo(item["Key"], item.get("VersionId"), item["LastModified"], item.get("Size", 0))
                rank = (item["LastModified"], -position)
                if item["Key"] not in oldest or rank < oldest[item["Key"]][:2]:
                    oldest[item["Key"]] = (*rank, found)
        return {key: found for key, (_, _, found) in oldest.items()}

    def delete_version(self, key: str, version_id: str | None) -> None:
        """Delete one version for good (S3 refuses it while it is locked or held)."""
        self.s3.delete_object(Bucket=self.bucket, Key=key, **_version(version_id))

    def verify(self, key: str, expected_sha256: str, version_id: str | None = None) -> Verification:
        """Re-read the object and re-hash it."""
        hasher = hashlib.sha256()
        size = 0
        for chunk in self.iter_bytes(key, version_id):
            hasher.update(chunk)
            size += len(chunk)
        return Verification(key, version_id, expected_sha256, hasher.hexdigest(), size)

    # --- writing ----------------------------------------------------------------------
    def put(
        self,
        key: str,
        source: bytes | IO[bytes] | Iterable[bytes],
        *,
        sha256: str | None = None,
        content_type: str = "application/octet-stream",
        retention: Retention | None = None,
        legal_hold: bool = False,
        if_changed: bool = False,
    ) -> StoredObject:
        """Store `source` at `key` atomically, as a new version; return what the store confirmed.

        `sha256` (hex) is the whole object's hash: computed here for bytes, required for a
        file object or an iterator (it is written with the creating request). With
        `if_changed`, bytes identical to the latest version's are not stored again."""
        hashed = isinstance(source, bytes | bytearray | memoryview)  # hashed here, once
        if hashed:
            actual = hashlib.sha256(source).hexdigest()
            if sha256 and sha256 != actual:
                raise IntegrityError(f"{key}: the bytes hash to {actual}, not the declared {sha256}")
            sha256 = actual
            if if_changed:
                existing = self._identical(key, len(source), sha256)
                if existing is not None:
                    return existing
        elif not sha256:
            raise ValueError(f"{key}: a streamed body needs its sha256 declared up front")
        elif if_changed:
            raise ValueError("if_changed compares single-part objects: pass bytes")
        lock: dict[str, Any] = {}
        if retention is not None:
            lock.update(ObjectLockMode=retention.mode, ObjectLockRetainUntilDate=retention.until)
        if legal_hold:
            lock["ObjectLockLegalHoldStatus"] = "ON"
        identity = {"Metadata": {SHA256_TAG: sha256}, "Tagging": f"{SHA256_TAG}={sha256}", "ContentType": content_type}
        reader = _Reader(source)
        first = reader.read(self.settings.part_size)
        following = reader.read(self.settings.part_size) if len(first) == self.settings.part_size else b""
        try:
            if not following:
                if not hashed and hashlib.sha256(first).hexdigest() != sha256:
                    raise IntegrityError(f"{key}: the body does not hash to the declared sha256 {sha256}")
                stored = self._put_single(key, first, sha256, {**identity, **lock})
            else:
                stored = self._put_multipart(key, first, following, reader, sha256, {**identity, **lock})
            self.confirm(stored)
        except (ClientError, BotoCoreError) as exc:  # retries exhausted: one error type for callers
            raise StoreError(f"{key}: the store did not take the upload: {exc}") from exc
        return stored

    def _identical(self, key: str, size: int, sha256: str) -> StoredObject | None:
        """The latest version of `key` when the store's own checksum and length say it holds
        the bytes with this SHA-256."""
        existing = self.head(key)
        if existing is None or existing.checksum_sha256 != _b64(bytes.fromhex(sha256)) or existing.size != size:
            return None
        log.debug("skip %s: the latest version holds the same bytes", key)
        return StoredObject(key, existing.version_id, existing.size, sha256, existing.checksum_sha256, skipped=True)

    def confirm(self, stored: StoredObject) -> None:
        """Compare what the store holds (its length and its own SHA-256 checksum, computed
        from the bytes it received) with what was sent: IntegrityError when they differ."""
        head = self.s3.head_object(
            Bucket=self.bucket, Key=stored.key, ChecksumMode="ENABLED", **_version(stored.version_id)
        )
        held = head.get("ChecksumSHA256")
        if head["ContentLength"] != stored.size or (held is not None and held != stored.checksum):
            raise IntegrityError(
                f"{stored.key}: the store holds {head['ContentLength']} bytes with checksum {held}, "
                f"but {stored.size} bytes with checksum {stored.checksum} were sent"
            )
        if held is None:
            log.warning("%s: the store reports no SHA-256 checksum; only the length was confirmed", stored.key)

    def _put_single(self, key: str, body: bytes, sha256: str, extra: dict[str, Any]) -> StoredObject:
        checksum = _b64(bytes.fromhex(sha256))
        answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumSHA256=checksum, **extra)
        return StoredObject(key, answer.get("VersionId"), len(body), sha256, checksum)

    def _put_multipart(
        self, key: str, first: bytes, second: bytes, reader: _Reader, sha256: str, extra: dict[str, Any]
    ) -> StoredObject:
        self.abort_stale_uploads(key)
        upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)
        upload_id = upload["UploadId"]
        whole = hashlib.sha256()
        size = 0
        slots = threading.BoundedSemaphore(self.settings.max_workers)  # bounds parts held in memory
        futures: list[Future[dict[str, Any]]] = []
        digests: dict[int, bytes] = {}

        def send(number: int, data: bytes) -> dict[str, Any]:
            try:
                digest = hashlib.sha256(data).digest()  # hashlib releases the GIL: runs in parallel
                digests[number] = digest
                answer = self.s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=_b64(digest),
                )
                return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)}
            finally:
                slots.release()

        try:
            with ThreadPoolExecutor(self.settings.max_workers, thread_name_prefix="s3-part") as pool:
                chunks = itertools.chain((first, second), iter(lambda: reader.read(self.settings.part_size), b""))
                for number, data in enumerate(chunks, start=1):
                    whole.update(data)
                    size += len(data)
                    slots.acquire()  # waits while max_workers parts are in flight
                    futures.append(pool.submit(send, number, data))
                    if any(f.done() and f.exception() for f in futures):
                        break  # stop reading: the upload is lost anyway
                parts = [f.result() for f in futures]  # raises the first part failure
            if whole.hexdigest() != sha256:  # before completing: nothing becomes visible
                raise IntegrityError(f"{key}: the body hashes to {whole.hexdigest()}, not the declared {sha256}")
            answer = self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload_id)
            raise
        composite = hashlib.sha256(b"".join(digests[n] for n in sorted(digests))).digest()
        return StoredObject(key, answer.get("VersionId"), size, sha256, f"{_b64(composite)}-{len(digests)}")

    def abort_stale_uploads(self, key: str) -> int:
        """Abort unfinished multipart uploads of `key`: a worker killed mid-upload (SIGKILL, a
        lost node) could not abort its own. Keys are deterministic per interval and one task
        owns one key, so an unfinished upload of the key we are about to write is stale."""
        answer = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        stale = [u["UploadId"] for u in answer.get("Uploads", []) if u["Key"] == key]
        for upload_id in stale:
            self._abort(key, upload_id)
        return len(stale)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            log.warning("aborted the multipart upload of %s: nothing was stored", key)
        except (ClientError, BotoCoreError) as exc:  # the store's lifecycle rule reaps it otherwise
            log.error("could not abort the multipart upload of %s: %s", key, exc)

    def create_once(self, key: str, body: bytes, *, retention: Retention | None = None) -> bool:
        """Create `key` only if no object has that key (S3 conditional write, `If-None-Match: *`):
        True when this call created it, False when another writer got there first."""
        lock = {"ObjectLockMode": retention.mode, "ObjectLockRetainUntilDate": retention.until} if retention else {}
        checksum = _b64(hashlib.sha256(body).digest())
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ChecksumSHA256=checksum, **lock)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise StoreError(f"{key}: the store did not take the write: {exc}") from exc
        return True

    def conditional_create(self) -> bool:
        """Whether the store honours `If-None-Match: *` (many S3-compatible stores ignore it and
        overwrite), probed once per store object: create a fresh key, then create it again,
        which must be refused. The probe's versions are removed again (they carry no lock)."""
        if self._conditional is None:
            key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            try:
                self._conditional = self.create_once(key, b"probe") and not self.create_once(key, b"probe")
            finally:
                for version in self.versions(key):
                    try:
                        self.delete_version(key, version)
                    except (ClientError, BotoCoreError) as exc:
                        log.warning("the probe %s could not be removed: %s", key, exc)
            if not self._conditional and (self.settings.endpoint_url, self.bucket) not in _WARNED:
                _WARNED.add((self.settings.endpoint_url, self.bucket))
                log.warning(
                    "bucket %s: the store ignores If-None-Match (a second create of the same key succeeded); "
                    "chain places are decided by the oldest version of each claim",
                    self.bucket,
                )
        return self._conditional

    def put_json(self, key: str, document: Any, *, retention: Retention | None = None) -> StoredObject:
        return self.put(key, json_bytes(document), content_type="application/json", retention=retention)

    # --- retention --------------------------------------------------------------------
    def set_retention(
        self, key: str, version_id: str | None, retention: Retention, *, bypass_governance: bool = False
    ) -> None:
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        if bypass_governance:
            extra["BypassGovernanceRetention"] = True
        self.s3.put_object_retention(Bucket=self.bucket, Key=key, Retention=retention.as_s3(), **extra)

    def get_retention(self, key: str, version_id: str | None = None) -> Retention | None:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            found = self.s3.get_object_retention(Bucket=self.bucket, Key=key, **extra)["Retention"]
        except ClientError as exc:
            if "NoSuchObjectLockConfiguration" in str(exc) or "ObjectLockConfigurationNotFound" in str(exc):
                return None
            raise
        return Retention(found["Mode"], found["RetainUntilDate"].astimezone(UTC))

    def set_legal_hold(self, key: str, version_id: str | None, on: bool) -> None:
        extra = {"VersionId": version_id} if version_id else {}
        self.s3.put_object_legal_hold(Bucket=self.bucket, Key=key, LegalHold={"Status": "ON" if on else "OFF"}, **extra)

    def get_legal_hold(self, key: str, version_id: str | None = None) -> bool:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            found = self.s3.get_object_legal_hold(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFound", "NoSuchObjectLegalHold"):
                return False  # never held
            raise
        return found.get("LegalHold", {}).get("Status") == "ON"
