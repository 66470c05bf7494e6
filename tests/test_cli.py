"""The `ev-ingest` command against the simulator: every verb, text and --json."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import httpx
import pytest

from pipelines.cli.main import main
from tests.conftest import FROZEN_NOW

START = (FROZEN_NOW - timedelta(hours=3)).isoformat()
END = (FROZEN_NOW - timedelta(hours=3) + timedelta(minutes=2)).isoformat()


@pytest.fixture
def server_env(sim, monkeypatch):
    monkeypatch.setenv("EV_URL", f"exacqvision://admin@{sim.url.removeprefix('http://')}")
    return sim


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cameras_and_recordings(server_env, capsys):
    code, out, _ = run(capsys, "cameras", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)["cameras"]][:2] == [4593152, 4593408]
    code, out, _ = run(capsys, "recordings", "4593152", "--start", START, "--end", END)
    assert code == 0 and "1 clips, 0.03 h recorded" in out


def test_export_writes_the_file_and_prints_its_sha256(server_env, capsys, tmp_path):
    code, out, _ = run(
        capsys, "export", "4593152", "--start", START, "--end", END, "-o", str(tmp_path / "a.mp4"), "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["sha256"] == hashlib.sha256((tmp_path / "a.mp4").read_bytes()).hexdigest()


def test_exports_into_a_folder_are_named_by_camera_and_never_overwritten(server_env, capsys, tmp_path):
    for camera in ("4593152", "4593408"):
        code, out, _ = run(capsys, "export", camera, "--start", START, "--end", END, "-o", str(tmp_path), "--json")
        assert code == 0 and json.loads(out)["path"].startswith(str(tmp_path / f"{camera}_"))
    assert len(list(tmp_path.glob("*.mp4"))) == 2  # the second camera's export did not replace the first
    first = sorted(tmp_path.glob("4593152_*.mp4"))[0]
    before = first.read_bytes()
    code, _, err = run(capsys, "export", "4593152", "--start", START, "--end", END, "-o", str(tmp_path))
    assert code == 1 and "exists: not overwritten" in err and first.read_bytes() == before


def motion_window(sim) -> tuple[str, str]:
    """Two minutes of the Lobby camera around its first ground-truth event of the morning:
    which minutes hold motion depends on the (moving) test day, so ask the simulator."""
    truth = httpx.get(
        sim.url + "/_sim/truth",
        params={"camera": 4593152, "start": (FROZEN_NOW - timedelta(hours=6)).isoformat(), "end": START},
    ).json()
    first = datetime.fromisoformat(next(e for e in truth["events"] if 5 <= e["duration_s"] <= 60)["start"])
    return (first - timedelta(seconds=30)).isoformat(), (first + timedelta(seconds=90)).isoformat()


def test_frame_and_motion(server_env, capsys, tmp_path):
    code, out, _ = run(capsys, "frame", "4593152", "--at", START, "-o", str(tmp_path / "f.jpg"))
    assert code == 0 and (tmp_path / "f.jpg").read_bytes()[:2] == b"\xff\xd8"
    start, end = motion_window(server_env)
    run(capsys, "export", "4593152", "--start", start, "--end", end, "-o", str(tmp_path / "m.mp4"))
    code, out, _ = run(
        capsys,
        "motion",
        str(tmp_path / "m.mp4"),
        "--mode",
        "full",
        "--json",
        "--start",
        start,
        "--out",
        str(tmp_path / "summary"),
        "--workers",
        "1",
    )
    report = json.loads(out)
    assert code == 0 and {"start_s", "end_s", "peak", "start", "end"} <= set(report["events"][0])
    assert (tmp_path / "summary" / "m.events.parquet").exists()


def test_errors_are_one_clear_line(server_env, capsys, monkeypatch, tmp_path):
    code, _, err = run(capsys, "recordings", "999", "--start", START, "--end", END)
    assert code == 1 and err.startswith("ev-ingest recordings: error: ") and "unknown camera" in err
    monkeypatch.setenv("EV_PASSWORD", "not-the-password")
    code, _, err = run(capsys, "cameras")
    assert code == 1 and "refused the credentials" in err and "not-the-password" not in err


def test_password_file_must_be_private(server_env, capsys, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    secret.chmod(0o644)
    code, _, err = run(capsys, "cameras", "--password-file", str(secret))
    assert code == 1 and "chmod 600" in err
