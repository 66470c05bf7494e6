"""How tests/data/legacy-package.zip was made: run once with the code of main before issue 24
(records and index in the old signed-JSON format). Kept for the record; not run by the suite.
Its key: f5943c4a0f86ff04609331d75d45c5558c2e8fe7d8ffd405422c7c459fcf9068 (private half discarded)."""

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ev_ingest.client import Case
from ev_ingest.store import ArchiveStore, AuditLog, EmbeddedS3, Manifest, ManifestEntry, StoreSettings
from ev_ingest.store.records import write_manifest
from ev_ingest.store.signing import Signer, public_pem
from pipelines.compliance import evidence

secret = "legacy-secret-" + "x" * 16
signer = Signer.generate()
start = datetime(2026, 11, 28, 14, tzinfo=UTC)
with tempfile.TemporaryDirectory() as d, EmbeddedS3(Path(d), secret_key=secret) as s3:
    store = ArchiveStore(
        StoreSettings(bucket="legacy", endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=secret)
    )
    store.ensure_bucket()
    key = "exports/site=HQ/server=nvr1/camera=4593408/date=2026-11-28/20261128T140000Z_20261128T150000Z.mp4"
    stored = store.put(key, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    entry = ManifestEntry.of(
        stored,
        "export",
        server="nvr1",
        camera_id=4593408,
        start=start,
        end=start + timedelta(hours=1),
        retention=None,
        camera_name="Parking North",
    )
    write_manifest(
        store,
        Manifest(
            run_id="nightly-legacy",
            site="HQ",
            interval_start=start,
            interval_end=start + timedelta(hours=1),
            entries=[entry],
            planned=1,
        ),
        None,
        signer,
    )
    AuditLog(store, None, signer).record("legal-hold", key=key, version_id=stored.version_id, reason="legacy")
    out = Path("/work/wt-a/tests/data/legacy-package.zip")
    evidence.build_package(store, signer, Case(guid="legacy-case", name="Legacy case"), [entry], out)
print(signer.fingerprint)
print(public_pem(signer.public).decode())
