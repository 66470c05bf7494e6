"""Issue 23 item 4: which key the archive trusts, against the real store (SeaweedFS).

- The published public key is locked as long as the records it verifies; replacing it,
  hiding it behind a delete marker or planting another under its prefix is an audit
  finding (`public-key`), exit 1.
- `signing.fingerprint` pins the key: another key neither signs nor is trusted, and the
  change is said in one line.
- An outside auditor with the public key alone runs status, audit and audit log.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ev_ingest import clock
from ev_ingest.store import ArchiveStore, Manifest, ManifestEntry, Retention, write_manifest
from ev_ingest.store.signing import PUBLIC_KEY_PREFIX, Signer, public_pem
from pipelines.cli.main import main
from pipelines.compliance import records, signing_keys
from pipelines.config import PipelineConfig
from tests.conftest import S3_SECRET, SIGNER
from tests.test_chain_integrity import OLD, audit, commit, config_for


def public_key_findings(store: ArchiveStore) -> set[tuple[str, str]]:
    report = audit(store, config_for(store))
    return {(f.key, f.detail.split(" (")[0].split(":")[0]) for f in report.findings if f.problem == "public-key"}


def locked_commit(store: ArchiveStore, config: Any) -> Retention:
    """One night as the nightly commit makes it: locked objects, the key published locked."""
    lock = records.records_lock(config)
    stored = store.put("exports/site=HQ/camera=1/locked.mp4", b"footage", retention=lock)
    entry = ManifestEntry.of(stored, "export", server="nvr1", camera_id=1, start=OLD, end=OLD, retention=lock)
    signing_keys.publish_public_key(store, SIGNER, lock)
    write_manifest(
        store, Manifest(run_id="r", site="HQ", interval_start=OLD, interval_end=OLD, entries=[entry]), lock, SIGNER
    )
    return lock


def test_the_published_key_is_locked_and_every_change_to_it_is_reported(store: ArchiveStore) -> None:
    config = config_for(store)
    lock = locked_commit(store, config)
    key = f"{PUBLIC_KEY_PREFIX}{SIGNER.fingerprint}.pem"
    assert store.get_retention(key) == lock and public_key_findings(store) == set()
    # A later record kept longer extends the key's lock; a shorter one never shortens it,
    # and a rerun stores nothing new.
    longer = Retention(lock.mode, lock.until + timedelta(days=30))
    signing_keys.publish_public_key(store, SIGNER, longer)
    signing_keys.publish_public_key(store, SIGNER, lock)
    assert store.get_retention(key) == longer and len(store.versions(key)) == 1

    # A stranger's key stored under our name (the lock keeps our version, not the name).
    store.put(key, public_pem(Signer.generate().public))
    # Junk, unlocked, under a name no key has; our key with a stranger's appended.
    planted = f"{PUBLIC_KEY_PREFIX}{'0' * 64}.pem"
    store.put(planted, b"not a key")
    appended = Signer.generate()
    wrapped = f"{PUBLIC_KEY_PREFIX}{appended.fingerprint}.pem"
    store.put(
        wrapped, public_pem(appended.public) + b"# rotated: use this one\n" + public_pem(Signer.generate().public)
    )
    found = public_key_findings(store)
    assert (key, "2 versions") in found
    assert any(k == key and d.startswith("holds the key") and d.endswith("not the one named") for k, d in found)
    assert (planted, "not a public key") in found and (wrapped, "holds more than the key's PEM") in found
    # The next commit puts ours back on top, once (the history stays reported).
    signing_keys.publish_public_key(store, SIGNER, lock)
    signing_keys.publish_public_key(store, SIGNER, lock)
    assert store.get_bytes(key) == public_pem(SIGNER.public) and len(store.versions(key)) == 3
    # Hidden behind a delete marker: reported, never taken as "no key published".
    store.s3.delete_object(Bucket=store.bucket, Key=key)
    assert (key, "a delete marker hides the published key") in public_key_findings(store)


def test_a_published_key_removed_or_unlocked_under_governance_is_reported(store: ArchiveStore) -> None:
    """GOVERNANCE lets the S3 key's holder bypass a lock: what they do is reported."""
    config = config_for(store)
    lock = locked_commit(store, config)
    key = f"{PUBLIC_KEY_PREFIX}{SIGNER.fingerprint}.pem"
    # The lock shortened (allowed with the bypass): kept for less than what the key verifies.
    version = store.head(key).version_id
    store.set_retention(key, version, Retention(lock.mode, clock.now() + timedelta(hours=1)), bypass_governance=True)
    assert any(k == key and d.startswith("kept until") for k, d in public_key_findings(store))
    # Every version removed: the key that signed the manifests is not published.
    for version in store.versions(key):
        store.s3.delete_object(Bucket=store.bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    assert (key, "the key that signed the archive's manifests is not published") in public_key_findings(store)


def test_old_archives_published_their_key_unlocked_and_the_next_commit_locks_it(store: ArchiveStore) -> None:
    config = config_for(store)
    signing_keys.publish_public_key(store, SIGNER)  # as archives before issue 23 published it
    lock = locked_commit(store, config)  # the next commit
    key = f"{PUBLIC_KEY_PREFIX}{SIGNER.fingerprint}.pem"
    assert store.get_retention(key) == lock and public_key_findings(store) == set()


@pytest.fixture
def officer(store: ArchiveStore, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    """Run `ev-ingest` with a config of our choosing: (exit code, stdout, stderr)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)

    def run(signing: dict[str, Any], *argv: str) -> tuple[int, str, str]:
        document = config_for(store).model_dump(mode="json", exclude_defaults=True)
        path = tmp_path / "ev.yaml"
        path.write_text(yaml.safe_dump({**document, "signing": signing}))
        code = main([*argv, "--config", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def test_a_pinned_fingerprint_refuses_a_changed_key(
    store: ArchiveStore, officer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(store, 1)
    pin = {"fingerprint": SIGNER.fingerprint}
    assert officer(pin, "retention", "audit")[0] == 0  # the pinned key itself
    stranger = Signer.generate()
    stranger.write(tmp_path / "stranger.pem")
    monkeypatch.setenv("EV_SIGNING_KEY_FILE", str(tmp_path / "stranger.pem"))
    # A verb that signs: refused, said in one line, nothing written.
    audits = len(store.list_keys("audit/"))
    code, out, err = officer(pin, "retention", "apply")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "the signing key changed" in err
    assert len(store.list_keys("audit/")) == audits
    # Read-only with only the changed key: it is not trusted, so there is nothing to check with.
    code, _, err = officer(pin, "retention", "audit")
    assert code != 0 and "the signing key changed" in err
    # With the pinned key's public half, the audit checks against it, never the stranger's.
    (tmp_path / "ours.pem").write_bytes(public_pem(SIGNER.public))
    pinned = PipelineConfig.model_validate({**config_for(store).model_dump(mode="json"), "signing": pin})
    assert set(signing_keys.verifier_for(pinned, [tmp_path / "ours.pem"]).keys) == {SIGNER.fingerprint}
    # A changed key is never quietly set aside, even with the public keys: an error, in one line.
    with_ours = {**pin, "public_keys": [str(tmp_path / "ours.pem")]}
    code, out, err = officer(with_ours, "retention", "audit")
    assert code != 0 and out == "" and err.count("the signing key changed") == 1
    monkeypatch.delenv("EV_SIGNING_KEY_FILE")  # an outside auditor: no private key at all
    code, out, _ = officer(with_ours, "retention", "audit")
    assert code == 0 and "not recorded (public keys only)" in out
    # A signing key that is configured but unusable is an error, not a quiet read-only audit.
    (tmp_path / "open.pem").write_bytes((tmp_path / "stranger.pem").read_bytes())
    (tmp_path / "open.pem").chmod(0o644)
    monkeypatch.setenv("EV_SIGNING_KEY_FILE", str(tmp_path / "open.pem"))
    code, out, err = officer({}, "retention", "audit")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1


def test_an_outside_auditor_with_the_public_key_alone(
    store: ArchiveStore, officer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(store, 1)
    officer({}, "retention", "audit")  # the operator's audit: one signed record to show
    (tmp_path / "public.pem").write_bytes(public_pem(SIGNER.public))
    monkeypatch.delenv("EV_SIGNING_KEY_FILE")
    public = {"public_keys": [str(tmp_path / "public.pem")]}
    code, out, err = officer(public, "retention", "audit")
    assert (code, err) == (0, "") and "OK; not recorded (public keys only)" in out
    code, out, _ = officer(public, "audit", "log")
    assert code == 0 and "audit" in out and "signed" in out and "NOT TRUSTED" not in out
    code, out, _ = officer(public, "retention", "status", "--json")
    assert code == 0 and json.loads(out.split("\n\n")[0])  # rows of the archived day
    # The key on the command line alone: every verb that only reads.
    given = ("--public-key", str(tmp_path / "public.pem"))
    for verb in (("retention", "audit"), ("retention", "status"), ("audit", "log")):
        code, out, err = officer({}, *verb, *given)
        assert (code, err) == (0, ""), (verb, out, err)
    # The horizon of this one-hour archive alerts (exit 1): it is judged, not refused for want of a key.
    code, out, err = officer({}, "retention", "horizon", *given)
    assert code == 1 and err == "" and "unarchived" in out
    # A key on the command line decides nothing that writes; a checkpoint needs the signing key.
    code, _, err = officer({}, "retention", "apply", *given)
    assert code != 0 and "--public-key is for status, horizon, audit" in err
    code, _, err = officer(public, "retention", "audit", "--checkpoint-out", str(tmp_path / "ck.json"))
    assert code != 0 and "--checkpoint-out needs the signing key" in err and not (tmp_path / "ck.json").exists()
    # A forged record is still found with the public key alone.
    store.put("audit/date=2000-01-01/planted.json", json.dumps({"action": "audit", "sequence": 9}).encode())
    code, out, _ = officer(public, "retention", "audit")
    assert code == 1 and "audit/date=2000-01-01/planted.json" in out
    # Writing verbs still need the private key, said in one line.
    code, _, err = officer(public, "retention", "apply")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "signing key" in err
