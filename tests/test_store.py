"""The archive store against the real SeaweedFS: integrity, atomicity and Object Lock."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from ev_ingest import clock
from ev_ingest.store import IntegrityError, ObjectLockNotEnabled, Retention
from ev_ingest.store import keys as k

MiB = 1 << 20


def soon(days: int = 1) -> datetime:
    return clock.now().replace(microsecond=0) + timedelta(days=days)


def test_bucket_has_lock_and_versioning(store):
    assert store.lock_enabled()
    assert store.s3.get_bucket_versioning(Bucket=store.bucket)["Status"] == "Enabled"


def test_existing_bucket_without_lock_is_refused(make_store):
    plain = make_store(lock=False)
    with pytest.raises(ObjectLockNotEnabled, match="without Object Lock"):
        plain.ensure_bucket(object_lock=True)


def test_small_put_sends_sha256_and_identical_bytes_add_no_version(store):
    body = b"evidence" * 1000
    first = store.put("a/one.bin", body, retention=Retention("GOVERNANCE", soon()))
    assert first.sha256 == hashlib.sha256(body).hexdigest() and not first.skipped
    info = store.head("a/one.bin")
    assert info.sha256 == first.sha256 and info.size == len(body)
    assert info.checksum_sha256 == first.checksum  # the store's own checksum of what it received
    again = store.put("a/one.bin", body, if_changed=True)
    assert again.skipped and again.version_id == first.version_id
    assert store.versions("a/one.bin") == [first.version_id]
    changed = store.put("a/one.bin", b"other", if_changed=True)  # other bytes: a new version, the old one kept
    assert not changed.skipped and store.versions("a/one.bin") == [changed.version_id, first.version_id]


def test_a_body_that_does_not_hash_to_its_declared_sha256_is_never_stored(make_store):
    store = make_store(part_size=5 * MiB)
    data = os.urandom(11 * MiB)
    with pytest.raises(IntegrityError, match="declared"):
        store.put("big/lie.bin", iter([data]), sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(IntegrityError, match="declared"):
        store.put("small/lie.bin", iter([b"abc"]), sha256=hashlib.sha256(b"abd").hexdigest())
    assert store.head("big/lie.bin") is None and store.head("small/lie.bin") is None
    assert store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    with pytest.raises(ValueError, match="declared up front"):
        store.put("big/undeclared.bin", iter([data]))


def test_the_hash_is_written_with_the_creating_request(make_store):
    """No locked object exists without its hash: metadata is set at creation and is
    immutable, so removing the (writable) tag does not lose it."""
    store = make_store(part_size=5 * MiB)
    data = os.urandom(12 * MiB)
    stored = store.put(
        "big/locked.bin",
        iter([data]),
        sha256=hashlib.sha256(data).hexdigest(),
        retention=Retention("COMPLIANCE", soon()),
    )
    store.s3.delete_object_tagging(Bucket=store.bucket, Key="big/locked.bin", VersionId=stored.version_id)
    assert store.head("big/locked.bin", stored.version_id).sha256 == hashlib.sha256(data).hexdigest()


def test_multipart_stream_from_iterator(make_store):
    store = make_store(part_size=5 * MiB, max_workers=2)
    data = os.urandom(13 * MiB + 17)
    chunks = (data[i : i + 777_777] for i in range(0, len(data), 777_777))
    sha = hashlib.sha256(data).hexdigest()
    stored = store.put("big/stream.bin", chunks, sha256=sha, retention=Retention("COMPLIANCE", soon()))
    assert stored.size == len(data) and stored.sha256 == sha
    assert store.head("big/stream.bin").checksum_sha256 == stored.checksum  # composite of three parts: "-3"
    assert stored.checksum.endswith("-3")
    assert store.verify("big/stream.bin", stored.sha256).ok


def test_interrupted_multipart_leaves_nothing(make_store):
    store = make_store(part_size=5 * MiB)

    def failing():
        yield os.urandom(6 * MiB)
        yield os.urandom(6 * MiB)
        raise ConnectionError("the exacqVision download dropped")

    with pytest.raises(ConnectionError):
        store.put("big/broken.bin", failing(), sha256="0" * 64)
    assert store.head("big/broken.bin") is None
    assert store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_locked_object_cannot_be_deleted_or_replaced(store):
    stored = store.put("locked.bin", b"original", retention=Retention("COMPLIANCE", soon()))
    with pytest.raises(ClientError):
        store.s3.delete_object(Bucket=store.bucket, Key="locked.bin", VersionId=stored.version_id)
    # A write to the same key makes a new version; the locked one stays, unchanged.
    store.s3.put_object(Bucket=store.bucket, Key="locked.bin", Body=b"tampered")
    assert store.get_bytes("locked.bin", stored.version_id) == b"original"
    assert len(store.versions("locked.bin")) == 2


def test_compliance_cannot_be_shortened_or_downgraded(store):
    until = soon(10)
    stored = store.put("c.bin", b"x", retention=Retention("COMPLIANCE", until))
    with pytest.raises(ClientError):
        store.set_retention("c.bin", stored.version_id, Retention("COMPLIANCE", soon(2)))
    with pytest.raises(ClientError):
        store.set_retention("c.bin", stored.version_id, Retention("GOVERNANCE", until), bypass_governance=True)
    store.set_retention("c.bin", stored.version_id, Retention("COMPLIANCE", soon(20)))  # extending is fine
    assert store.get_retention("c.bin", stored.version_id).until == soon(20)


def test_legal_hold_blocks_delete_until_released(store):
    stored = store.put("held.bin", b"x", retention=Retention("GOVERNANCE", soon()))
    store.set_legal_hold("held.bin", stored.version_id, True)
    assert store.get_legal_hold("held.bin", stored.version_id) is True
    with pytest.raises(ClientError):
        store.s3.delete_object(
            Bucket=store.bucket, Key="held.bin", VersionId=stored.version_id, BypassGovernanceRetention=True
        )
    store.set_legal_hold("held.bin", stored.version_id, False)
    store.s3.delete_object(
        Bucket=store.bucket, Key="held.bin", VersionId=stored.version_id, BypassGovernanceRetention=True
    )
    assert store.head("held.bin") is None


def test_a_relative_data_folder_is_used_as_given(tmp_path, monkeypatch):
    """`ev-ingest s3 serve --data-dir .s3data` used to write into .s3data/.s3data (weed runs
    inside the folder): the folder is made absolute before weed sees it."""
    from ev_ingest.store import EmbeddedS3

    monkeypatch.chdir(tmp_path)
    server = EmbeddedS3(Path(".s3data"), secret_key="x" * 16)
    assert server.data_dir == tmp_path / ".s3data" and f"-dir={tmp_path / '.s3data'}" in server.command()


def test_wrong_credentials_are_refused(s3_server):
    intruder = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="guess",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError):
        intruder.list_buckets()


def test_keys_are_deterministic_and_sanitised():
    start = datetime(2026, 11, 19, 0, 0, tzinfo=UTC)
    assert k.export_key("HQ", "nvr1", 4593152, start, start + timedelta(hours=1), "mp4") == (
        "exports/site=HQ/server=nvr1/camera=4593152/date=2026-11-19/20261119T000000Z_20261119T010000Z.mp4"
    )
    assert k.safe_part("../../etc; rm -rf / `x`") == "etc_rm_-rf_x"
    assert k.safe_part("Gate\x00\n") == "Gate"
    assert k.safe_part("..") == "_"
    assert k.motion_key("events", "HQ", "nvr/../2", 1, start).startswith(
        "motion/events/site=HQ/server=nvr___2/camera=1/date=2026-11-19/"
    )
