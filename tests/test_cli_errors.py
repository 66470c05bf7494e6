"""Every verb's failure modes end in one clear line (issue 18): no traceback, no usage dump,
exit 1 (2 for a mistake in the command line), nothing claimed that did not happen."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.cli.main import main
from tests.conftest import FROZEN_NOW, S3_SECRET


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error_line(err: str, verb: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ev-ingest {verb}: "), err
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def config_file(tmp_path: Path, sim: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ev.yaml"
    host = sim.url.removeprefix("http://")
    path.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "name": "HQ",
                        "timezone": "UTC",
                        "servers": [{"name": "nvr1", "url": f"exacqvision://admin@{host}"}],
                    }
                ],
                "store": {"bucket": "cli-errors", "endpoint_url": s3_server.endpoint_url},
                "thumbnails": {"interval_s": 3600, "width": 160},
            }
        )
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    return path


def test_servers_refuse_a_busy_port_before_claiming_it(capsys, busy_port, monkeypatch, tmp_path) -> None:
    code, out, err = run(capsys, "simulator", "--port", str(busy_port))
    assert code == 1 and "cannot listen" in one_error_line(err, "simulator") and "simulator on" not in out + err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ev")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    code, _, err = run(capsys, "s3", "serve", "--port", str(busy_port), "--data-dir", str(tmp_path / "s3"))
    assert code == 1 and f"127.0.0.1:{busy_port}" in one_error_line(err, "s3")


def test_a_local_store_without_credentials_fails_at_once(capsys, config_file, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    began = time.monotonic()
    code, _, err = run(capsys, "archive", "--config", str(config_file), "--date", f"{FROZEN_NOW:%Y-%m-%d}")
    assert code == 1 and "AWS_ACCESS_KEY_ID" in one_error_line(err, "archive")
    # No probe of the cloud's metadata address (seconds of timeouts): the check comes first.
    assert time.monotonic() - began < 5.0


def test_store_verbs_on_wrong_input(capsys, config_file) -> None:
    cfg = ("--config", str(config_file))
    code, _, err = run(capsys, "retention", "hold", "--key", "exports/nope.mp4", *cfg)
    assert code == 1 and "no object 'exports/nope.mp4'" in one_error_line(err, "retention")
    code, _, err = run(capsys, "archive", "--date", "9999-12-31", *cfg)
    assert code == 1 and "9999-12-31" in one_error_line(err, "archive")
    day = f"{FROZEN_NOW - timedelta(days=3):%Y-%m-%d}"
    code, _, err = run(capsys, "report", "--date", day, "-o", str(config_file.parent / "r.html"), *cfg)
    assert code == 1 and f"no nightly run of site 'HQ' is archived for {day}" in one_error_line(err, "report")
    code, _, err = run(capsys, "retention", "status", "--config", str(config_file.parent / "missing.yaml"))
    assert code == 1 and "missing.yaml" in one_error_line(err, "retention")


def test_usage_mistakes_and_empty_answers(capsys, sim, monkeypatch, tmp_path) -> None:
    code, _, err = run(capsys, "motion", str(tmp_path / "x.mp4"), "--region", "10,10,200,200")
    assert code == 2 and "not pixels" in one_error_line(err, "motion")
    monkeypatch.setenv("EV_URL", f"exacqvision://admin@{sim.url.removeprefix('http://')}")
    long_ago = FROZEN_NOW - timedelta(days=60)
    code, _, err = run(
        capsys,
        "recordings",
        "4593152",
        "--start",
        long_ago.isoformat(),
        "--end",
        (long_ago + timedelta(hours=1)).isoformat(),
    )
    assert code == 1 and "no recordings of camera 4593152" in err
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    code, _, err = run(capsys, "cameras", "--url", f"exacqvision://admin@127.0.0.1:{port}")
    assert code == 1 and "could not talk to the exacqVision server" in one_error_line(err, "cameras")


def test_compliance_verbs_on_wrong_input(capsys, config_file, tmp_path, monkeypatch) -> None:
    not_a_zip = tmp_path / "case.zip"
    not_a_zip.write_bytes(b"not a zip")
    code, out, _ = run(capsys, "verify", str(not_a_zip))
    assert code == 1 and "not a readable zip" in out
    code, _, err = run(
        capsys, "case", "export", "No such case", "-o", str(tmp_path / "c.zip"), "--config", str(config_file)
    )
    assert code == 1 and "no case 'No such case'" in one_error_line(err, "case")
    assert not (tmp_path / "c.zip").exists()
    monkeypatch.delenv("EV_SIGNING_KEY_FILE")
    code, _, err = run(capsys, "keys", "show", "--config", str(config_file))
    assert code == 1 and "no signing key" in one_error_line(err, "keys")
