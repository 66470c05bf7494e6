"""Issue 25 item 3, end to end: `ev-ingest archive` against the strict simulator with each
answer real servers give that the seed's happy path does not: an empty window (success,
no search id, no videoInfo), a failing search close, an expired session answered with a
bare 302 to login.web, a body that does not decode. Each costs at most what it touches.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
import yaml

from ev_ingest.store import read_manifest
from pipelines.cli.main import main
from tests.conftest import FROZEN_NOW, S3_SECRET

LOBBY, PARKING, DOCK = 4593152, 4593408, 4593664
pytestmark = pytest.mark.slow  # whole days through the CLI: `make test` runs them, `make check` does not
DAY = (FROZEN_NOW - timedelta(days=2)).strftime("%Y-%m-%d")  # ended on the server's clock


@pytest.fixture
def archive_with(make_sim, make_store, tmp_path, monkeypatch, capsys):
    """`ev-ingest archive --date DAY --json` against a strict simulator with `faults`:
    (exit code, the JSON it printed, the simulator, the store)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ev-ingest")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)

    def run(faults: str | None, cameras: int = 2, idle: int = 0):
        small = {"width": 64, "height": 64, "fps": 1}  # a whole day of video, kept small
        sim = make_sim(profile="strict", cameras=cameras, idle_cameras=idle, faults=faults, **small)
        store = make_store()
        config = {
            "sites": [
                {"name": "HQ", "servers": [{"name": "nvr1", "url": f"exacqvision://admin@{sim.url.split('://')[1]}"}]}
            ],
            "store": {"bucket": store.bucket, "endpoint_url": store.settings.endpoint_url},
            "export": {"format": "mp4", "chunk_minutes": 1440, "poll_interval_s": 0.05},
            "retention": {"mode": "GOVERNANCE", "days": 7},
        }
        path = tmp_path / "ev.yaml"
        path.write_text(yaml.safe_dump(config))
        code = main(["archive", "--date", DAY, "--no-motion", "--json", "--config", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, json.loads(out), sim, store

    return run


def faults_seen(sim) -> dict[str, int]:
    return httpx.get(sim.url + "/_sim/stats").json()["faults"]


def test_an_empty_window_is_no_footage(archive_with):
    code, result, _, store = archive_with(None, cameras=3, idle=1)
    assert code == 0 and result["failures"] == []
    assert [(q["camera_id"], q["server"]) for q in result["no_footage"]] == [(DOCK, "nvr1")]
    assert {e.camera_id for e in read_manifest(store, result["manifest"]).exports()} == {LOBBY, PARKING}


def test_a_failing_search_close_costs_nothing(archive_with):
    code, result, sim, store = archive_with("closefail=1.0")
    assert code == 0 and result["failures"] == [] and result["objects"] == 2
    assert faults_seen(sim)["closefail"] == 2  # each camera's search close answered 404


def test_a_bare_302_to_the_login_page_is_one_re_login(archive_with):
    """Every request on a session used before is bounced half the time: each bounce costs
    one login, and the night is archived whole."""
    code, result, sim, store = archive_with("bounce=0.5")
    bounced = faults_seen(sim)["bounce"]
    assert code == 0 and result["failures"] == [] and result["objects"] == 2
    assert bounced >= 3
    assert len(sim.state.issued) == 1 + bounced  # the first login, and one per bounce


def test_a_body_that_does_not_decode_costs_its_camera_only(archive_with):
    code, result, sim, store = archive_with(f"garble=1.0,@camera={PARKING}")
    assert code == 1
    [failure] = result["failures"]
    assert (failure["camera_id"], failure["kind"]) == (PARKING, "plan")
    assert "decode" in failure["error"]
    assert {e.camera_id for e in read_manifest(store, result["manifest"]).exports()} == {LOBBY}
