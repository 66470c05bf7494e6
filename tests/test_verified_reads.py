"""Decisions rest only on verified manifests (issue 23 item 4).

One nightly hour is archived and committed (signed, chained). Then a manifest is attacked as
someone with write access to the bucket would, and every deciding reader is asked: the one
verified reader (`verified_manifests`) behind status, apply, the hold sync, holds by camera
and range, case export and the nightly's "already archived"; and `verified_manifest`, the
motion DAG's and a rerun's read of one just-committed key. Each attack must be ignored (the
chained, signed version decides) and reported, never believed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from ev_ingest.client import ExacqClient
from ev_ingest.store import ArchiveStore, RecordIndex, verified_manifest, verified_manifests
from ev_ingest.store.records import Chain, manifest_chain
from ev_ingest.store.signing import MANIFEST, Signer, Verifier, decode
from pipelines.compliance import auditor, holds, policy, records, status
from pipelines.nightly.run import run_nightly
from tests.conftest import PASSWORD, SIGNER, START, pipeline_config
from tests.holds import sync_holds

VERIFIER = Verifier([SIGNER.public])


@pytest.fixture
def archived(sim: Any, store: ArchiveStore) -> tuple[Any, Any]:
    """(config, the committed manifest) of one hour of the simulator's cameras."""
    config = pipeline_config(sim, store={"bucket": store.bucket})
    result = run_nightly(config, store, "HQ", START, START + timedelta(hours=1), workers=1, summarize=False)
    assert len(result.manifest.exports()) >= 2
    return config, result.manifest


def dropped(manifest: Any) -> bytes:
    """The manifest with its first export dropped, unsigned (what an attacker would store)."""
    document = manifest.model_dump(mode="json")
    first = next(e for e in document["entries"] if e["kind"] == "export")
    document["entries"] = [e for e in document["entries"] if e is not first]
    return json.dumps(document).encode()


def problems_of(store: ArchiveStore, key: str) -> list[str]:
    return [p.problem for p in verified_manifests(store, VERIFIER, "HQ").problems if p.key == key]


def test_a_rewritten_manifest_decides_nothing(archived: tuple[Any, Any], store: ArchiveStore) -> None:
    config, manifest = archived
    exports = {e.key for e in manifest.exports()}
    store.s3.put_object(Bucket=store.bucket, Key=manifest.key, Body=dropped(manifest))

    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.key for m in found.manifests] == [manifest.key]
    assert {e.key for e in found.manifests[0].exports()} == exports  # the chained version, whole
    assert any("rolled back or rewritten" in p for p in problems_of(store, manifest.key))
    # Every decision sees every export; the forgery is named where the caller reports.
    untrusted: list[str] = []
    log = records.audit_log(store, config)
    assert {r.camera_id for r in status.status(store, config, log, "HQ", None, untrusted)} == {
        e.camera_id for e in manifest.exports()
    }
    assert len(untrusted) == 1 and untrusted[0].startswith(manifest.key)
    assert {e.key for e in holds.select_entries(store, VERIFIER, "HQ", None, None, None, None)} == exports
    assert policy.apply_policy(store, config.retention, "HQ", log)["unreadable"] == 1
    index = RecordIndex.of_day(store, "HQ", manifest.interval_start, VERIFIER)
    assert all(index.get(key) is not None for key in exports)  # nothing is exported again
    # The motion DAG's and a rerun's one-key read refuses the unchained latest version.
    assert verified_manifest(store, VERIFIER, manifest.key) is None


def test_a_planted_manifest_is_never_read(archived: tuple[Any, Any], store: ArchiveStore) -> None:
    _, manifest = archived
    planted = manifest.key.replace(".json", "-planted.json")
    store.s3.put_object(Bucket=store.bucket, Key=planted, Body=dropped(manifest))
    # Even signed by the archive's own key, a manifest no claim names is not a commit.
    signed = json.dumps(SIGNER.seal(MANIFEST, {})).encode()
    store.s3.put_object(Bucket=store.bucket, Key=planted.replace("-planted", "-signed"), Body=signed)
    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.key for m in found.manifests] == [manifest.key]
    assert {p.key for p in found.problems} == {planted, planted.replace("-planted", "-signed")}
    assert all("unchained" in p.problem for p in found.problems)
    assert verified_manifest(store, VERIFIER, planted) is None


def test_a_rollback_and_a_strangers_place_are_reported(archived: tuple[Any, Any], store: ArchiveStore) -> None:
    _, manifest = archived
    first = store.get_bytes(manifest.key)
    # A later commit of the same key (a rerun that found more), then the first bytes again.
    chain = Chain(store, manifest_chain("HQ"))
    document = decode(json.loads(first))
    newer = {k: v for k, v in document.items() if k not in ("sequence", "previous", "signature")}
    newer["run_id"] = "rerun"
    chain.append(manifest.key, newer, SIGNER, None)
    store.s3.put_object(Bucket=store.bucket, Key=manifest.key, Body=first)
    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.run_id for m in found.manifests] == ["rerun"]  # the newest commit decides, not the latest bytes
    assert any("rolled back or rewritten" in p for p in problems_of(store, manifest.key))
    # A stranger with write access takes the next place for the same key with its own key:
    # reported, and the archive's newest commit still decides (the manifest is not hidden).
    chain.append(manifest.key, {**newer, "run_id": "stranger"}, Signer.generate(), None)
    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.run_id for m in found.manifests] == ["rerun"]
    assert any("not trusted" in p for p in problems_of(store, manifest.key))
    assert verified_manifest(store, VERIFIER, manifest.key) is None


def test_a_removed_manifest_is_found_from_its_claim(archived: tuple[Any, Any], store: ArchiveStore) -> None:
    """A delete marker (S3 DELETE is allowed under Object Lock: it hides, never destroys)."""
    _, manifest = archived
    store.s3.delete_object(Bucket=store.bucket, Key=manifest.key)
    assert store.head(manifest.key) is None
    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.key for m in found.manifests] == [manifest.key]
    assert {e.key for e in found.manifests[0].exports()} == {e.key for e in manifest.exports()}


def test_a_persons_hold_outlives_a_case_and_a_tag(archived: tuple[Any, Any], sim: Any, store: ArchiveStore) -> None:
    """Holders come from the signed trail (issue 23 item 3): a deleted case lets go only its
    own hold, a tag written by hand releases nothing, and the audit names a hold nobody in
    the trail placed as well as a trail's hold missing from the store."""
    config, manifest = archived
    log = records.audit_log(store, config)
    cased, tagged, planted = manifest.exports()[:3]
    assert holds.set_hold(store, cased.key, True, "subpoena 7", log, cased.version_id)
    assert holds.set_hold(store, tagged.key, True, "subpoena 8", log, tagged.version_id)
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        case = ev.cases.create("Break-in 9")
        try:
            ev.bookmarks.create(
                "door",
                cased.camera_id,
                cased.start + timedelta(minutes=5),
                cased.start + timedelta(minutes=6),
                case=case.guid,
            )
            assert sync_holds(ev, store, log)["held"] >= 1
        finally:
            ev.cases.delete(case.guid)
        # Anyone with write access can write the sync's tag: it must not make a person's hold the sync's.
        store.set_tags(tagged.key, tagged.version_id, {holds.HOLD_TAG: case.guid})
        assert sync_holds(ev, store, log)["released"] >= 1
    assert store.get_legal_hold(cased.key, cased.version_id)  # the case's hold went, the person's stayed
    assert store.get_legal_hold(tagged.key, tagged.version_id)
    release = [r for r in log.entries() if r["action"] == "legal-hold-release" and r["key"] == cased.key]
    assert len(release) == 1 and release[0]["still_held_by"] == ["subpoena 7"]
    assert not [r for r in log.entries() if r["action"] == "legal-hold-release" and r["key"] == tagged.key]
    # Status says who holds it; a release by hand is still refused, naming the person.
    rows = status.status(store, config, log, "HQ", None, [])
    assert any("'subpoena 7'" in holder for row in rows for holder in row.holders)
    with pytest.raises(holds.HoldRefused, match="subpoena 7"):
        holds.set_hold(store, cased.key, False, "manual", log, cased.version_id)
    # Clean now; then a hold placed around the pipeline, and a person's hold removed around it.
    assert not [f for f in auditor.audit(store, config, "HQ", audit_log=log).findings if "hold" in f.problem]
    store.set_legal_hold(planted.key, planted.version_id, True)
    store.set_legal_hold(tagged.key, tagged.version_id, False)
    found = {(f.key, f.problem): f.detail for f in auditor.audit(store, config, "HQ", audit_log=log).findings}
    assert set(found) == {(planted.key, "unplaced-hold"), (tagged.key, "legal-hold")}
    assert "subpoena 8" in found[(tagged.key, "legal-hold")]
