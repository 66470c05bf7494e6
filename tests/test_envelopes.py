"""Issue 24 item 3: records are signed as exact bytes, typed (DSSE envelopes), and the
records an archive already holds (legacy signed JSON) keep verifying.

Each test tries to make a record lie: its bytes re-serialised, its signature presented as
another kind's, its type swapped, a stranger's checkpoint; and checks that what was written
before envelopes (manifests, audit records, checkpoints) still verifies and that a chain
goes on from them. Against the real store (SeaweedFS) where a store is involved.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, verified_manifests, write_manifest
from ev_ingest.store import checkpoint as checkpoints
from ev_ingest.store.archive import json_bytes
from ev_ingest.store.records import AUDIT_CHAIN, Chain, manifest_chain, read_version, verify_chain
from ev_ingest.store.signing import AUDIT, CHECKPOINT, MANIFEST, PACKAGE_INDEX, Signer, Verifier, pae, sha256_hex
from pipelines.compliance import auditor
from pipelines.config import PipelineConfig
from tests.conftest import SIGNER

VERIFIER = Verifier([SIGNER.public])
OLD = clock.midnight(20)


def manifest(n: int) -> Manifest:
    start = OLD + timedelta(hours=n)
    return Manifest(run_id=f"run{n}", site="HQ", interval_start=start, interval_end=start + timedelta(hours=1))


def legacy_append(store: ArchiveStore, chain: Chain, key: str, document: dict) -> bytes:
    """What `Chain.append` stored before envelopes: signed JSON with a `signature` member."""
    sequence, previous = chain.head()
    body = json_bytes(SIGNER.sign({**document, "sequence": sequence + 1, "previous": previous}))
    claim = json_bytes({"key": key, "sha256": sha256_hex(body), "chain": chain.name})
    assert store.create_once(chain.claim_key(sequence + 1), claim)
    store.put(key, body, content_type="application/json")
    return body


def config_for(store: ArchiveStore) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sites": [{"name": "HQ", "servers": [{"name": "nvr1"}]}],
            "store": {"bucket": store.bucket, "endpoint_url": store.settings.endpoint_url},
            "retention": {"days": 1},
        }
    )


def test_pae_is_dssev1() -> None:
    # The test vector of the DSSE protocol (secure-systems-lab/dsse, protocol.md).
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_a_stored_record_is_an_envelope_an_outsider_can_check_by_hand(store: ArchiveStore) -> None:
    """Only the published public key and the DSSE spec are needed: no code of ours."""
    _, stored = write_manifest(store, manifest(1), None, SIGNER)
    log = AuditLog(store, None, SIGNER)
    audit_key = log.record("verify", key="x")
    for key, kind in ((stored.key, MANIFEST), (audit_key, AUDIT)):
        envelope = json.loads(store.get_bytes(key))
        assert set(envelope) == {"payloadType", "payload", "signatures"}
        assert envelope["payloadType"] == kind
        body = base64.b64decode(envelope["payload"])
        (signature,) = envelope["signatures"]
        assert signature["keyid"] == SIGNER.fingerprint
        message = b"DSSEv1 %d %s %d %s" % (len(kind), kind.encode(), len(body), body)
        public: Ed25519PublicKey = SIGNER.public
        public.verify(base64.b64decode(signature["sig"]), message)  # raises if it does not hold
        assert "signature" not in json.loads(body)  # the record itself carries no signature
    assert [m.run_id for m in verified_manifests(store, VERIFIER, "HQ").manifests] == ["run1"]


def test_re_serialised_bytes_or_a_swapped_type_do_not_verify() -> None:
    envelope = SIGNER.seal(MANIFEST, manifest(1).model_dump(mode="json"))
    assert VERIFIER.check(envelope, MANIFEST) is None
    # The same JSON, other bytes (indented): what is signed is the bytes, not their meaning.
    document = json.loads(base64.b64decode(envelope["payload"]))
    reserialised = {**envelope, "payload": base64.b64encode(json.dumps(document, indent=1).encode()).decode()}
    assert VERIFIER.check(reserialised, MANIFEST) == "signature does not match the content"
    # A manifest's signature presented as an audit record, a checkpoint or a package index.
    for other in (AUDIT, CHECKPOINT, PACKAGE_INDEX):
        assert "not of the kind" in str(VERIFIER.check(envelope, other))
        relabelled = {**envelope, "payloadType": other}  # the type is inside what is signed
        assert VERIFIER.check(relabelled, other) == "signature does not match the content"
    stranger = Signer.generate()
    assert "untrusted key" in str(VERIFIER.check(stranger.seal(MANIFEST, document), MANIFEST))
    unsigned = {**envelope, "signatures": []}
    assert VERIFIER.check(unsigned, MANIFEST) == "unsigned"
    beside = {**envelope, "entries": []}  # a member a naive reader would take for the record's
    assert VERIFIER.check(beside, MANIFEST) == "envelope members outside the signature: entries"
    with pytest.raises(InvalidSignature):  # the bare payload is not what was signed: PAE binds the type
        SIGNER.public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), base64.b64decode(envelope["payload"]))


def test_a_signed_payload_giving_a_key_twice_is_refused() -> None:
    """Bytes a first-wins reader and a last-wins reader read differently never open, even
    when the trusted key signed them."""
    body = b'{"run_id":"run1","entries":[],"run_id":"run2"}'
    envelope = SIGNER.envelope(MANIFEST, body)
    assert VERIFIER.check(envelope, MANIFEST) == "signed payload is not JSON (or gives a key twice)"
    assert VERIFIER.check(SIGNER.envelope(MANIFEST, body.replace(b',"run_id":"run2"', b"")), MANIFEST) is None


def test_a_manifest_planted_as_an_audit_record_is_not_trusted(store: ArchiveStore) -> None:
    """A real manifest envelope (the archive's own key) claimed into the audit chain."""
    _, stored = write_manifest(store, manifest(1), None, SIGNER)
    log = AuditLog(store, None, SIGNER)
    log.record("verify", key="first")
    body = store.get_bytes(stored.key)
    audit = Chain(store, AUDIT_CHAIN)
    sequence, _ = audit.head()
    planted = "audit/date=2026-01-01/planted.json"
    assert store.create_once(
        audit.claim_key(sequence + 1), json_bytes({"key": planted, "sha256": sha256_hex(body), "chain": AUDIT_CHAIN})
    )
    store.put(planted, body, content_type="application/json")
    assert [r["key"] for r in log.trusted()] == ["first"]
    records = [read_version(store, k, None) for k in store.list_keys("audit/")]
    problems, _ = verify_chain(AUDIT_CHAIN, records, audit.claimed(), VERIFIER)
    assert [(p.key, p.problem) for p in problems if p.problem == "signature"] == [(planted, "signature")]
    assert "not of the kind audit" in next(p.detail for p in problems if p.key == planted)


def test_records_written_before_envelopes_still_verify_and_the_chain_goes_on(store: ArchiveStore) -> None:
    chain = Chain(store, manifest_chain("HQ"))
    for n in (1, 2):
        old = manifest(n)
        legacy_append(store, chain, old.key, old.model_dump(mode="json", exclude={"sequence", "previous", "signature"}))
    second = store.get_bytes(manifest(2).key)
    third, _ = write_manifest(store, manifest(3), None, SIGNER)
    assert third.sequence == 3 and third.previous == sha256_hex(second)  # linked to the old bytes
    assert [m.run_id for m in verified_manifests(store, VERIFIER, "HQ").manifests] == ["run1", "run2", "run3"]
    # An old hold record is still a hold: the trail is read in both forms.
    audit = Chain(store, AUDIT_CHAIN)
    legacy_append(store, audit, "audit/date=2026-01-01/hold.json", {"action": "legal-hold", "at": OLD.isoformat()})
    AuditLog(store, None, SIGNER).record("verify", key="new")
    assert [r["action"] for r in AuditLog(store, None, SIGNER).trusted()] == ["legal-hold", "verify"]
    report = auditor.audit(
        store, config_for(store), audit_log=AuditLog(store, None, SIGNER), verifier=VERIFIER, deep=True
    )
    assert not [f for f in report.findings if f.problem in ("signature", "chain", "gap")], report.findings
    # An old record is still held to its signature.
    tampered = json.loads(store.get_bytes(manifest(1).key)) | {"run_id": "rewritten"}
    store.put(manifest(1).key, json_bytes(tampered), content_type="application/json")
    found = verified_manifests(store, VERIFIER, "HQ")
    assert [m.run_id for m in found.manifests] == ["run1", "run2", "run3"]  # the chained version counts
    assert any("rolled back or rewritten" in p.problem for p in found.problems)


def test_checkpoints_old_and_new_are_checked_against_the_trusted_key_only() -> None:
    current = {"site=HQ": {1: "a" * 64, 2: "b" * 64}}
    state = checkpoints.ChainState.of("site=HQ", current["site=HQ"])
    new = checkpoints.make("bucket", OLD.isoformat(), None, [state], SIGNER)
    assert new["payloadType"] == CHECKPOINT
    legacy = SIGNER.sign(
        {
            "type": checkpoints.CHECKPOINT_TYPE,
            "bucket": "bucket",
            "at": OLD.isoformat(),
            "audit_key": None,
            "chains": {"site=HQ": state.as_json()},
        }  # fmt: skip
    )
    for stored in (new, legacy):
        loaded = checkpoints.load(json_bytes(stored))
        assert checkpoints.check(loaded, "bucket", VERIFIER, current) == []
        cut = {"site=HQ": {1: "a" * 64}}
        assert [p for _, p, _ in checkpoints.check(loaded, "bucket", VERIFIER, cut)] == ["truncated"]
    forged = checkpoints.make("bucket", OLD.isoformat(), None, [state], Signer.generate())
    (problem,) = checkpoints.check(checkpoints.load(json_bytes(forged)), "bucket", VERIFIER, current)
    assert problem[1] == "checkpoint" and "untrusted key" in problem[2]
    # A manifest's envelope is not a checkpoint, even signed by the right key.
    as_manifest = SIGNER.seal(MANIFEST, {"type": checkpoints.CHECKPOINT_TYPE, "bucket": "bucket", "chains": {}})
    (problem,) = checkpoints.check(as_manifest, "bucket", VERIFIER, current)
    assert "not of the kind checkpoint" in problem[2]
