"""Issue 23: nothing erased, rolled back or rewritten in the chains goes unnoticed, and the
audit never goes blind, against the real store (SeaweedFS), each attack as a local process
with bucket access would make it.

- A record and its claim removed from the middle: a gap. A tail cut, a chain rolled back
  and continued, a record rewritten with its claim: found against a checkpoint kept outside
  the bucket (`retention audit --checkpoint`), exit 1, no traceback. An older manifest
  stored again over a newer one: found without any checkpoint.
- A store that ignores `If-None-Match`: probed, said once; the oldest claim decides.
- Junk in one place (a claim `[]`, a non-JSON claim, junk under audit/, a huge manifest) is
  a finding about that place; the real `legal-hold` and `missing` findings still appear,
  and records are still written.
- A lawful disposal is honoured; ANSI escapes in a key are printed escaped.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, AuditLog, Manifest, ManifestEntry, write_manifest
from ev_ingest.store import records as store_records
from ev_ingest.store.checkpoint import tree_hash
from ev_ingest.store.records import AUDIT_CHAIN, Chain, missing_places
from ev_ingest.store.signing import CHECKPOINT, MANIFEST, Verifier, decode
from pipelines.cli.main import main
from pipelines.compliance import auditor, disposal, findings, signing_keys
from pipelines.config import PipelineConfig
from pipelines.terminal import safe
from tests.conftest import S3_SECRET, SIGNER

# Footage older than its retention: no lock needed, so an attacker's deletions need no bypass.
OLD = clock.midnight(20)
VERIFIER = Verifier([SIGNER.public])


def config_for(store: ArchiveStore, **retention_settings: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sites": [{"name": "HQ", "servers": [{"name": "nvr1"}]}],
            "store": {"bucket": store.bucket, "endpoint_url": store.settings.endpoint_url},
            "retention": {"days": 1, **retention_settings},
        }
    )


def commit(store: ArchiveStore, n: int, run: str | None = None, objects: int = 1) -> Manifest:
    """A manifest of `objects` small exports of hour `n`, signed and chained."""
    start = OLD + timedelta(hours=n)
    entries = []
    for i in range(objects):
        stored = store.put(f"exports/site=HQ/camera=1/h{n:02d}-{i}.mp4", f"footage {n} {i}".encode())
        entries.append(
            ManifestEntry.of(
                stored,
                "export",
                server="nvr1",
                camera_id=1,
                start=start,
                end=start + timedelta(hours=1),
                retention=None,
            )
        )
    manifest = Manifest(
        run_id=run or f"run{n}",
        site="HQ",
        interval_start=start,
        interval_end=start + timedelta(hours=1),
        entries=entries,
    )
    signing_keys.publish_public_key(store, SIGNER)  # as the nightly commit does: outside verifiers fetch it
    return write_manifest(store, manifest, None, SIGNER)[0]


def remove(store: ArchiveStore, key: str) -> None:
    """Every version of `key`, gone (as `weed shell` or a bypass would remove it)."""
    for version in store.versions(key):
        store.delete_version(key, version)


def problems(report: findings.AuditReport) -> set[tuple[str, str]]:
    return {(f.key, f.problem) for f in report.findings}


def audit(store: ArchiveStore, config: PipelineConfig, **kwargs: Any) -> findings.AuditReport:
    return auditor.audit(store, config, audit_log=AuditLog(store, None, SIGNER), verifier=VERIFIER, **kwargs)


@pytest.fixture
def cli(store: ArchiveStore, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    """Run `ev-ingest` against `store`: (exit code, stdout, stderr), never a traceback."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    path = tmp_path / "ev.yaml"
    path.write_text(yaml.safe_dump(config_for(store).model_dump(mode="json", exclude_defaults=True)))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--config", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def test_a_record_and_its_claim_removed_from_the_middle_leave_a_gap(store) -> None:
    config = config_for(store)
    manifests = [commit(store, n) for n in (1, 2, 3)]
    assert audit(store, config).ok
    chain = Chain(store, "site=HQ")
    remove(store, manifests[1].key)
    remove(store, chain.claim_key(2))
    found = problems(audit(store, config))
    assert (chain.claim_key(2), "gap") in found
    assert (manifests[1].entries[0].key, "unlisted") in found


def test_a_claim_planted_far_ahead_costs_one_finding_not_a_billion() -> None:
    assert missing_places({1, 2, 5, 10**9}, 10**9) == [(3, 4), (6, 10**9 - 1)]
    assert missing_places(set(), 0) == []


def test_checkpoint_finds_a_tail_cut_a_rollback_and_a_rewrite(store, cli, tmp_path) -> None:
    for n in (1, 2, 3):
        commit(store, n)
    kept = tmp_path / "outside" / "checkpoint.json"
    code, out, _ = cli("retention", "audit", "--checkpoint-out", str(kept))
    assert code == 0 and "OK" in out and f"written to {kept}" in out
    checkpoint = json.loads(kept.read_text())
    assert VERIFIER.check(checkpoint, CHECKPOINT) is None and decode(checkpoint)["chains"]["site=HQ"]["size"] == 3
    code, _, _ = cli("retention", "audit", "--checkpoint", str(kept))
    assert code == 0  # nothing changed since: proved

    # The tail cut: the last manifest and its claim removed.
    chain = Chain(store, "site=HQ")
    last = chain.record(3)
    remove(store, last.key)
    remove(store, chain.claim_key(3))
    code, out, _ = cli("retention", "audit", "--json", "--checkpoint", str(kept))
    assert code == 1 and ("chain/site=HQ/", "truncated") in {
        (f["key"], f["problem"]) for f in json.loads(out)["findings"]
    }
    # Rolled back and continued: place 3 taken again by another record.
    commit(store, 4)
    code, out, _ = cli("retention", "audit", "--checkpoint", str(kept), "--checkpoint-out", str(kept))
    assert code == 1 and "rewritten" in out and "chain/site=HQ/" in out
    assert json.loads(kept.read_text()) == checkpoint  # the evidence is never overwritten

    # A record rewritten together with its claim (consistent links, other bytes).
    first = chain.record(1)
    forged = SIGNER.seal(MANIFEST, {**first.document, "entries": []})  # even with the key: the checkpoint holds
    remove(store, first.key)
    store.put(first.key, store_records.json_bytes(forged))
    remove(store, chain.claim_key(1))
    claim = {"key": first.key, "sha256": store_records.sha256_hex(store_records.json_bytes(forged)), "chain": "site=HQ"}
    assert store.create_once(chain.claim_key(1), store_records.json_bytes(claim))
    report = audit(store, config_for(store), checkpoint=checkpoint)
    assert ("chain/site=HQ/", "rewritten") in problems(report)


def test_an_older_manifest_stored_again_is_a_rollback_without_any_checkpoint(store) -> None:
    config = config_for(store)
    commit(store, 1, run="night")
    newer = commit(store, 1, run="night", objects=2)  # a rerun of the night: same key, more objects
    report = audit(store, config)
    assert newer.sequence == 2 and report.ok, report.findings
    older = store.versions(newer.key)[-1]
    store.put(newer.key, store.get_bytes(newer.key, older))  # the older record, stored again
    found = problems(audit(store, config))
    assert (newer.key, "rollback") in found and (newer.key, "fork") in found
    assert (newer.entries[1].key, "unlisted") not in found  # the committed manifest still counts


def test_a_store_that_ignores_if_none_match(store, caplog) -> None:
    assert store.conditional_create()  # SeaweedFS honours it
    ignoring = ArchiveStore(store.settings)

    def strip(params: dict[str, Any], **_: Any) -> None:
        params.pop("IfNoneMatch", None)  # what many S3-compatible stores do with it

    ignoring.s3.meta.events.register("provide-client-params.s3.PutObject", strip)
    with caplog.at_level(logging.WARNING):
        assert not ignoring.conditional_create()
        assert not ignoring.conditional_create()  # probed once
    assert sum("ignores If-None-Match" in r.message for r in caplog.records) == 1
    assert store.list_keys("probes/") == []

    first = Chain(ignoring, "site=T")
    first.append("records/a.json", {"n": "a"}, SIGNER, None)
    # A second writer that read the head before the first wrote: its "create" of place 1
    # succeeds on this store (a second version); the oldest version decides, so it moves on.
    late = Chain(ignoring, "site=T")
    heads = iter([(0, None)])
    real = late.head
    late.head = lambda: next(heads, None) or real()  # type: ignore[method-assign]
    _, signed = late.append("records/b.json", {"n": "b"}, SIGNER, None)
    assert signed["sequence"] == 2 and len(store.versions(first.claim_key(1))) == 2
    assert first.record(1).document["n"] == "a" and first.record(2).document["n"] == "b"
    # An overwrite of a claim (a forged hash) steals nothing either.
    ignoring.put(first.claim_key(2), b'{"key": "records/b.json", "sha256": "forged"}')
    versions = [store_records.read_version(store, k, None) for k in ("records/a.json", "records/b.json")]
    found, head = store_records.verify_chain("site=T", versions, first.claimed(), VERIFIER)
    assert found == [] and head == 2


def test_junk_is_a_finding_about_its_place_and_hides_nothing(store, cli, monkeypatch) -> None:
    config = config_for(store)
    manifests = [commit(store, n) for n in (1, 2)]
    log = AuditLog(store, None, SIGNER)
    held = manifests[0].entries[0]
    log.record("legal-hold", key=held.key, version_id=held.version_id, reason="subpoena 7")  # not in the store
    gone = manifests[1].entries[0]
    store.delete_version(gone.key, gone.version_id)
    # The junk: a claim `[]` at the manifests' next place, a non-JSON claim at the audit
    # chain's, a junk object under audit/, a manifest over the size a record may have.
    monkeypatch.setattr(store_records, "MAX_RECORD_BYTES", 1 << 20)
    monkeypatch.setattr(auditor, "MAX_RECORD_BYTES", 1 << 20)
    manifest_claim = Chain(store, "site=HQ").claim_key(3)
    audit_claim = Chain(store, AUDIT_CHAIN).claim_key(Chain(store, AUDIT_CHAIN).head()[0] + 1)
    store.put(manifest_claim, b"[]")
    store.put(audit_claim, b"\x00 not json")
    store.put("audit/date=2026-01-01/junk.json", b"[1, 2")
    huge = f"manifests/site=HQ/date={OLD:%Y-%m-%d}/huge.json"
    store.put(huge, b'{"entries": [' + b" " * (2 << 20) + b"]}")

    report = audit(store, config)
    found = problems(report)
    assert {
        (manifest_claim, "claim"),
        (audit_claim, "claim"),
        ("audit/date=2026-01-01/junk.json", "unreadable"),
        (huge, "oversized"),
        (held.key, "legal-hold"),
        (gone.key, "missing"),
    } <= found
    assert all(f.key != "manifests/" and f.key != "audit/" for f in report.findings)  # no blind spot
    # Records are still written: the next manifest and audit records go on past the junk.
    assert commit(store, 3).sequence == 4
    assert log.record("note", text="after the junk")
    # The officer's verbs read around it: a finding or a one-line warning, exit 1.
    code, out, err = cli("retention", "status")
    assert code == 1 and huge in err
    code, out, _ = cli("audit", "log")
    assert code == 1 and "NOT TRUSTED" in out
    code, out, _ = cli("retention", "audit")
    assert code == 1 and "legal-hold" in out and "missing" in out


def test_a_lawful_disposal_is_honoured(store) -> None:
    config = config_for(store)
    manifest = commit(store, 1)
    log = AuditLog(store, None, SIGNER)
    expired = disposal.expired(store)
    assert {e.key for e in expired} == {manifest.entries[0].key}
    assert disposal.dispose(store, expired, log) == 1
    report = audit(store, config)
    assert report.ok, report.findings
    # A version removed without a signed disposal is still missing.
    other = commit(store, 2)
    store.delete_version(other.entries[0].key, other.entries[0].version_id)
    assert (other.entries[0].key, "missing") in problems(audit(store, config))


def test_the_daily_audit_rehashes_a_rotating_sample(store) -> None:
    manifest = commit(store, 1, objects=6)
    days = {auditor.rehash_day(e.key, 30) for e in manifest.entries}
    assert all(0 <= d < 30 for d in days) and len(days) > 1  # spread over the period
    assert audit(store, config_for(store, rehash_days=1)).verified == 6  # a period of one day: all
    day = clock.now().date().toordinal() % 30
    expected = sum(auditor.rehash_day(e.key, 30) == day for e in manifest.entries)
    assert audit(store, config_for(store)).verified == expected


def test_ansi_escapes_in_a_key_are_printed_escaped(store, cli) -> None:
    commit(store, 1)
    planted = "exports/site=HQ/x\x1b[2K\x1b[1A\rchecked 1 signed records: OK\n.mp4"
    store.put(planted, b"planted")
    code, out, _ = cli("retention", "audit")
    assert code == 1 and "\x1b" not in out and "\r" not in out
    assert "\\x1b[2K" in out and "unlisted" in out
    assert len(out.strip().splitlines()) == 1 + 1 + 3  # summary, the finding, the checkpoint of 2 chains
    assert safe("a\u202eb\tc") == "a\\u202eb\\tc" and safe("plain ünïcode") == "plain ünïcode"


def test_tree_hash_is_rfc_9162s() -> None:
    import hashlib

    leaf = [hashlib.sha256(b"\x00" + x.encode()).digest() for x in ("a", "b", "c")]
    node = hashlib.sha256(b"\x01" + leaf[0] + leaf[1]).digest()
    assert tree_hash(["a", "b", "c"]) == hashlib.sha256(b"\x01" + node + leaf[2]).hexdigest()
    assert tree_hash([]) == hashlib.sha256(b"").hexdigest()
