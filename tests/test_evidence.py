"""Issue 14: the tamper-evident archive and the compliance officer's verbs, against the real
store (SeaweedFS) and the simulator, each attack of the issue tried as a local process would.

- The embedded store's back doors (every gRPC and internal HTTP port, issue 23) refuse callers
  without its certificate, `weed shell` included; the filer still asks for its JWT; `weed`
  gets no secret from our environment; its data is readable by its owner only.
- A forged manifest, a record removed with a governance bypass, a collection destroyed
  through the master: `retention audit --deep` reports findings, exits 1, never a traceback,
  and still stores its signed record.
- status, audit log, keys, hold/release by camera and range, dispose, case export and an
  offline verify, on a real nightly archive.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError

from ev_ingest.client import ExacqClient
from ev_ingest.store import ArchiveStore, EmbeddedS3, Retention, StoreSettings
from ev_ingest.store.embedded import weed_binary
from ev_ingest.store.records import AUDIT_CHAIN, Chain
from ev_ingest.store.signing import AUDIT, MANIFEST, PACKAGE_INDEX
from pipelines.cli.main import main
from pipelines.compliance import auditor, disposal, records
from pipelines.nightly.run import run_nightly
from tests import reaper
from tests.conftest import PASSWORD, S3_SECRET, SIGNER, START, pipeline_config

pytestmark = pytest.mark.usefixtures("_password_env")


def archive_in(sim: Any, s3: EmbeddedS3, bucket: str, folder: Path) -> tuple[Any, ArchiveStore, Any, Path]:
    """One nightly hour of three cameras in `bucket`, and the config file the CLI reads."""
    config = pipeline_config(sim, store={"bucket": bucket, "endpoint_url": s3.endpoint_url})
    store = ArchiveStore(
        StoreSettings(bucket=bucket, endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=S3_SECRET)
    )
    store.ensure_bucket()
    result = run_nightly(config, store, "HQ", START, START + timedelta(hours=1), workers=1, summarize=False)
    path = folder / "ev.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    return config, store, result, path


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, s3_server: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# Every port of the embedded store but S3's: gRPC and internal HTTP, all mutual TLS (issue 23).
INTERNAL_PORTS = (
    "s3_grpc",
    "filer",
    "filer_grpc",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "admin",
    "admin_grpc",
)


def tls_without_a_certificate(port: int) -> str:
    """The TLS error a caller that trusts anything but presents no certificate gets (or '')."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /dir/lookup?volumeId=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            tls.recv(100)  # TLS 1.3 says "certificate required" after the handshake, on first read
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    return ""


def test_store_back_doors_refuse_unsigned_requests(s3_server: Any, store: ArchiveStore) -> None:
    until = Retention("COMPLIANCE", START + timedelta(days=400))
    store.put("manifests/site=X/locked.json", b'{"a": 1}', retention=until)
    ports, tls = s3_server.ports, s3_server.tls
    # Plain HTTP to any internal port gets nothing: the master's token hand-out, its volume
    # growth and collection deletion, the filer's files and the volume's chunks.
    for port, path in (
        (ports.master, "/dir/lookup?volumeId=1"),
        (ports.master, "/vol/grow?count=1"),
        (ports.master, f"/col/delete?collection={store.bucket}"),
        (ports.filer, f"/buckets/{store.bucket}/manifests/site=X/locked.json"),
        (ports.volume, "/1,01637037d6"),
    ):
        answer = httpx.get(f"http://127.0.0.1:{port}{path}")
        assert (answer.status_code, answer.text.strip()) == (400, "Client sent an HTTP request to an HTTPS server.")
    # TLS without a client certificate: refused by every gRPC and internal HTTP port.
    assert {name: tls_without_a_certificate(getattr(ports, name)) for name in INTERNAL_PORTS} == dict.fromkeys(
        INTERNAL_PORTS, "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    )
    # The certificate alone is not the filer's JWT: the owner's TLS still needs a signed token.
    filer = f"https://127.0.0.1:{ports.filer}/buckets/{store.bucket}/manifests/site=X/locked.json"
    assert httpx.get(filer, verify=tls.ssl_context()).status_code == 401
    assert httpx.put(filer, content=b"forged", verify=tls.ssl_context()).status_code == 401
    assert httpx.delete(filer, verify=tls.ssl_context()).status_code == 401
    assert store.get_bytes("manifests/site=X/locked.json") == b'{"a": 1}'
    # The CA's key was never written: no one can sign another certificate the store takes.
    assert sorted(p.name for p in tls.folder.iterdir()) == ["ca.crt", "store.crt", "store.key"]
    assert "PRIVATE KEY" not in tls.ca.read_text() + tls.cert.read_text()
    # weed inherits no secret of ours; its files are its owner's only; gRPC = HTTP + 10000.
    environ = Path(f"/proc/{s3_server._process.pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert "EV_PASSWORD" in os.environ and "EV_PASSWORD" not in names and "EV_SIGNING_KEY_FILE" not in names
    assert stat.S_IMODE(s3_server.data_dir.stat().st_mode) == 0o700
    exposed = [p for p in s3_server.data_dir.rglob("*") if p.is_file() and p.stat().st_mode & 0o077]
    # weed chmods its .vif (volume version info, no content) 0644; the 0700 folder covers it.
    assert [p.name for p in exposed if p.suffix != ".vif"] == []
    assert (ports.admin_grpc, ports.filer_grpc) == (ports.admin + 10000, ports.filer + 10000)


def weed_shell(s3: EmbeddedS3, folder: Path, commands: str) -> subprocess.Popen[str]:
    """`weed shell` run from `folder` (where it looks for security.toml), HOME there too."""
    folder.mkdir(exist_ok=True)
    master = f"127.0.0.1:{s3.ports.master}.{s3.ports.master_grpc}"
    filer = f"127.0.0.1:{s3.ports.filer}.{s3.ports.filer_grpc}"
    (folder / "commands").write_text(commands)
    with (folder / "commands").open() as stdin:
        return subprocess.Popen(
            [weed_binary(), "shell", "-debug", f"-master={master}", f"-filer={filer}"],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=folder, env={"PATH": os.environ["PATH"], "HOME": str(folder)},
        )  # fmt: skip


def test_weed_shell_needs_the_stores_certificate(s3_server: Any, store: ArchiveStore, tmp_path: Path) -> None:
    """Issue 23: `weed shell` without credentials removed a case's records and exports. Now a
    shell without the certificate never reaches the master; the owner's shell (with it) does."""
    store.put("evidence/kept.bin", b"kept", retention=Retention("COMPLIANCE", START + timedelta(days=400)))
    stranger = weed_shell(s3_server, tmp_path / "stranger", f"fs.rm -r /buckets/{store.bucket}\n")
    assert stranger.stderr is not None and stranger.stdout is not None
    refused = 0
    for line in stranger.stderr:  # weed retries for ever: read until it has been refused twice
        refused += "reconnection attempt" in line
        if refused == 2:
            break
    stranger.kill()
    stranger.communicate(timeout=10)  # reaps it and closes its pipes
    assert refused == 2
    assert store.get_bytes("evidence/kept.bin") == b"kept"

    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "security.toml").write_text(s3_server.tls.client_toml())
    owner = weed_shell(s3_server, tmp_path / "owner", "fs.ls /buckets\n")
    out, _ = owner.communicate(timeout=60)
    assert owner.returncode == 0 and store.bucket in out.split()


def test_the_officers_verbs_on_a_nightly_archive(sim, s3_server, cli_env, tmp_path, capsys) -> None:
    config, store, result, path = archive_in(sim, s3_server, "officer-verbs", tmp_path)
    entry = next(e for e in result.manifest.exports() if e.camera_id == 4593408)
    cfg = ("--config", str(path))

    code, out, _ = run(capsys, "keys", "show", *cfg)
    assert code == 0 and SIGNER.fingerprint in out
    assert store.head(f"keys/signing/{SIGNER.fingerprint}.pem") is not None  # published by the commit

    code, out, _ = run(capsys, "retention", "status", "--json", *cfg)
    rows = json.loads(out)
    assert code == 0 and {(r["camera_id"], r["objects"], r["held"]) for r in rows} == {
        (e.camera_id, 1, 0) for e in result.manifest.exports()
    }
    assert all(r["modes"] == ["GOVERNANCE"] and r["retain_until"].endswith("-05:00") for r in rows)  # site's zone

    # A hold by camera and time range, shown with its reason; a release needs --force and a reason.
    window = (entry.start + timedelta(minutes=1)).isoformat(), (entry.start + timedelta(minutes=2)).isoformat()
    code, out, _ = run(capsys, "retention", "hold", "--camera", "4593408", "--start", window[0], "--end", window[1],
                       "--reason", "insurance claim 7", *cfg)  # fmt: skip
    assert code == 0 and entry.key in out and store.get_legal_hold(entry.key, entry.version_id)
    code, out, _ = run(capsys, "retention", "status", *cfg)
    assert "insurance claim 7" in out
    code, _, err = run(capsys, "retention", "release", "--key", entry.key, *cfg)
    assert code == 1 and "--force" in err and len(err.strip().splitlines()) == 1
    assert store.get_legal_hold(entry.key, entry.version_id)
    # While it is held, not even a governance bypass deletes it.
    with pytest.raises(ClientError) as denied:
        store.s3.delete_object(
            Bucket=store.bucket, Key=entry.key, VersionId=entry.version_id, BypassGovernanceRetention=True
        )
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    code, out, _ = run(
        capsys, "retention", "release", "--key", entry.key, "--force", "--reason", "claim withdrawn", *cfg
    )
    assert code == 0 and not store.get_legal_hold(entry.key, entry.version_id)

    # Nothing has expired: dispose lists nothing, deletes nothing.
    code, out, _ = run(capsys, "retention", "dispose", "--yes", *cfg)
    assert code == 0 and out.startswith("0 expired")

    code, out, _ = run(capsys, "retention", "audit", "--deep", *cfg)
    assert code == 0 and "OK" in out, out
    code, out, _ = run(capsys, "audit", "log", *cfg)
    assert code == 0 and "NOT TRUSTED" not in out
    assert {"legal-hold", "legal-hold-release", "audit"} <= {line.split()[2] for line in out.splitlines()}

    # The evidence package of a case, verified offline; one changed byte is found.
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        case = ev.cases.create("Break-in 2026-17")
        ev.bookmarks.create("door", 4593408, entry.start + timedelta(minutes=5), entry.start + timedelta(minutes=6),
                            case=case.guid)  # fmt: skip
    package = tmp_path / "case.zip"
    code, out, _ = run(capsys, "case", "export", "Break-in 2026-17", "-o", str(package), *cfg)
    assert code == 0 and package.exists()
    with zipfile.ZipFile(package) as z:
        names = z.namelist()
        assert [n for n in names if n.startswith("footage/")] == [f"footage/nvr1/4593408/{entry.key.rsplit('/', 1)[1]}"]
        assert "CHAIN_OF_CUSTODY.txt" in names and any(n.startswith("records/manifests/") for n in names)
        # Written as typed envelopes over exact bytes (issue 24 item 3): the index, and every record.
        assert json.loads(z.read("index.json"))["payloadType"] == PACKAGE_INDEX
        assert {json.loads(z.read(n))["payloadType"] for n in names if n.startswith("records/")} == {MANIFEST, AUDIT}
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:  # the simulator is shared: leave no open case
        ev.cases.delete(case.guid)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", SIGNER.fingerprint)
    assert code == 0 and "VERIFIED" in out
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("footage/"):
                data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
            target.writestr(item, data)
    code, out, _ = run(capsys, "verify", str(tampered))
    assert code == 1 and "FAILED" in out and "footage/nvr1/4593408" in out


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
def test_attacks_are_audit_findings_never_a_crash(sim, tmp_path, capsys, monkeypatch) -> None:
    with EmbeddedS3(tmp_path / "s3", secret_key=S3_SECRET) as s3:
        reaper.registered(s3)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        config, store, result, path = archive_in(sim, s3, "attacked", tmp_path)
        cfg = ("--config", str(path))
        assert auditor.audit(store, config, audit_log=records.audit_log(store, config)).ok

        def audit(*extra: str) -> tuple[int, dict[str, Any], set[tuple[str, str]]]:
            code, out, err = run(capsys, "retention", "audit", "--json", *extra, *cfg)
            assert out.startswith("{"), err
            report = json.loads(out)
            assert report["audit_key"] and store.head(report["audit_key"]) is not None  # its record, always
            return code, report, {(f["key"], f["problem"]) for f in report["findings"]}

        # The last manifest removed with a governance bypass, its claim too: the chain is
        # shorter than the last audit saw, and its exports are listed by no manifest.
        manifest = store.head(result.manifest.key)
        claim = Chain(store, "site=HQ").claim_key(result.manifest.sequence)
        for key, version in ((result.manifest.key, manifest.version_id), (claim, store.head(claim).version_id)):
            store.s3.delete_object(Bucket=store.bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
        code, report, problems = audit()
        assert code == 1 and ("chain/site=HQ/", "truncated") in problems
        assert {(e.key, "unlisted") for e in result.manifest.exports()} <= problems

        # A forged manifest (valid JSON, an export dropped, not signed by our key).
        forged = {
            **result.manifest.model_dump(mode="json"),
            "entries": result.manifest.model_dump(mode="json")["entries"][1:],
        }
        store.s3.put_object(Bucket=store.bucket, Key=result.manifest.key, Body=json.dumps(forged).encode())
        # An audit record removed with a governance bypass: a gap in the audit chain.
        victim = Chain(store, AUDIT_CHAIN).record(1)
        store.s3.delete_object(
            Bucket=store.bucket, Key=victim.key, VersionId=victim.version_id, BypassGovernanceRetention=True
        )
        code, report, problems = audit()
        assert code == 1 and (result.manifest.key, "signature") in problems
        assert (Chain(store, AUDIT_CHAIN).claim_key(1), "gap") in problems
        # `retention apply` never decides on the forged manifest: it reads the version the
        # chain names (every export, the dropped one too), says the forgery, exits 1.
        code, out, err = run(capsys, "retention", "apply", "--json", *cfg)
        assert code == 1 and json.loads(out)["unreadable"] == 1 and "not trusted" in err

        # The store's owner (who holds its certificate) destroys the bucket's whole collection
        # through the master: what mutual TLS cannot stop, the audit reports.
        answer = httpx.get(
            f"https://127.0.0.1:{s3.ports.master}/col/delete?collection={store.bucket}", verify=s3.tls.ssl_context()
        )
        assert answer.status_code < 300
        code, report, problems = audit("--deep")
        assert code == 1 and {p for _, p in problems} & {"unreadable", "missing", "sha256"}
        code, out, err = run(capsys, "retention", "apply", *cfg)
        assert code == 1 and "could not be read" in err and len(err.strip().splitlines()) == 1


def test_s3_serve_exits_when_weed_dies(tmp_path) -> None:
    """`ev-ingest s3 serve` must not sit on as if it served a store that is gone."""
    import subprocess
    import sys

    import psutil

    from ev_ingest.store.embedded import free_ports
    from tests.conftest import ROOT

    port = free_ports(1)[0]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "ev",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "s3", "serve", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "S3 at" in serve.stderr.readline()  # printed once the store answers
        (weed,) = [p for p in psutil.Process(serve.pid).children() if p.name() == "weed"]
        weed.kill()
        assert serve.wait(timeout=60) == 1
        assert "SeaweedFS exited" in serve.stderr.read()
    finally:
        serve.kill()
        serve.wait()
        serve.stderr.close()


def test_no_key_no_commit_and_keys_only_from_private_files(tmp_path, monkeypatch, capsys) -> None:
    from ev_ingest.store.signing import Signer, SigningError
    from pipelines.compliance import signing_keys
    from pipelines.config import PipelineConfig

    config = PipelineConfig.model_validate({"sites": [{"name": "HQ", "servers": [{"name": "nvr1"}]}]})
    monkeypatch.delenv("EV_SIGNING_KEY_FILE")
    with pytest.raises(SigningError, match="no signing key"):
        signing_keys.signer_for(config)
    loose = tmp_path / "loose.pem"
    Signer.generate().write(loose)
    loose.chmod(0o644)
    monkeypatch.setenv("EV_SIGNING_KEY_FILE", str(loose))
    with pytest.raises(SigningError, match="readable by others"):
        signing_keys.signer_for(config)
    # `keys init` makes a 0600 key and never overwrites one.
    made = tmp_path / "made.pem"
    code, out, _ = run(capsys, "keys", "init", "-o", str(made))
    assert code == 0 and stat.S_IMODE(made.stat().st_mode) == 0o600
    assert Signer.from_file(made).fingerprint in out
    code, _, err = run(capsys, "keys", "init", "-o", str(made))
    assert code == 1 and "never overwritten" in err


def test_dispose_deletes_only_expired_unheld_versions(store) -> None:
    from ev_ingest.store import AuditLog

    log = AuditLog(store, None, SIGNER)
    expired = store.put("exports/site=X/old.mp4", b"retention ran out")  # no lock left: expired
    held = store.put("exports/site=X/held.mp4", b"held for a case", legal_hold=True)
    locked = store.put(
        "exports/site=X/kept.mp4", b"still retained", retention=Retention("GOVERNANCE", START + timedelta(days=30))
    )
    found = disposal.expired(store)
    assert [(e.key, e.version_id) for e in found] == [(expired.key, expired.version_id)]
    assert disposal.dispose(store, found, log) == 1
    assert store.head(expired.key, expired.version_id) is None
    assert store.head(held.key, held.version_id) is not None and store.head(locked.key, locked.version_id) is not None
    assert [(r["action"], r["key"]) for r in log.trusted()] == [("dispose", expired.key)]


def test_the_chain_head_is_found_from_the_last_group_of_claims(store) -> None:
    """Claims are grouped by thousands: the head comes from the last group, across a boundary."""
    chain = Chain(store, "site=T")
    for sequence in (998, 999, 1000):
        assert store.create_once(chain.claim_key(sequence), json.dumps({"sha256": f"h{sequence}"}).encode())
    assert chain.claim_key(999).split("/")[-2:] == ["0000000", "0000000999.json"]
    assert chain.head() == (1000, "h1000")
    assert sorted(chain.claims()) == [998, 999, 1000]
    assert not store.create_once(chain.claim_key(1000), b"{}")  # a place is taken once
