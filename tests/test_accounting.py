"""Issue 25 item 2: every camera accounted for.

For each camera and chunk a manifest says one of: archived, no footage (the server said
so) or failed (why); a server that is down is a failure of its own cameras, never of the
night. Against the real simulator in its strict profile (an empty window is answered as a
real server answers it: success, no search id, no videoInfo) and SeaweedFS.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
import yaml

from pipelines.analytics import report
from pipelines.analytics.datasets import Archive
from pipelines.cli.main import main
from pipelines.config import PipelineConfig
from pipelines.nightly.run import run_nightly
from tests.conftest import FROZEN_NOW, S3_SECRET

LOBBY, PARKING, DOCK = 4593152, 4593408, 4593664  # the third records nothing (idle_cameras=1)


def closed_port() -> int:
    """A loopback port nothing listens on: a recording server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_for(sim, store) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sites": [
                {
                    "name": "HQ",
                    "servers": [
                        {"name": "nvr1", "url": f"exacqvision://admin@{sim.url.split('://')[1]}"},
                        {"name": "nvr2", "url": f"exacqvision://admin@127.0.0.1:{closed_port()}"},  # down
                    ],
                }
            ],
            "store": {"bucket": store.bucket, "endpoint_url": store.settings.endpoint_url},
            "export": {"format": "mp4", "chunk_minutes": 60, "poll_interval_s": 0.05},
            "retention": {"mode": "GOVERNANCE", "days": 7},
        }
    )


def test_every_camera_and_chunk_is_archived_silent_or_failed(make_sim, make_store, capsys, monkeypatch, tmp_path):
    sim = make_sim(profile="strict", cameras=3, idle_cameras=1, width=160, height=120, fps=5)
    store = make_store()
    config = config_for(sim, store)
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=4)
    end = start + timedelta(hours=2)

    result = run_nightly(config, store, "HQ", start, end, summarize=False)
    manifest = result.manifest
    chunks = {start, start + timedelta(hours=1)}
    archived = {(e.server, e.camera_id, e.start) for e in manifest.exports()}
    silent = {(q.server, q.camera_id, q.start) for q in manifest.no_footage}
    failed = {(f.server, f.camera_id, f.kind) for f in manifest.failures}
    assert archived == {("nvr1", camera, chunk) for camera in (LOBBY, PARKING) for chunk in chunks}
    assert silent == {("nvr1", DOCK, chunk) for chunk in chunks}  # accounted for: not archived, not failed
    assert failed == {("nvr2", 0, "plan")}  # the server that is down: all its cameras, one failure
    [down] = manifest.failures
    assert down.error.startswith("planning failed: ")
    assert all(q.camera_name == "Loading Dock" for q in manifest.no_footage)

    # The signed manifest carries it: a rerun that changes nothing writes nothing new.
    before = {k: store.versions(k) for k in store.list_keys("")}
    again = run_nightly(config, store, "HQ", start, end, summarize=False)
    assert again.manifest.same_content(manifest) and {k: store.versions(k) for k in store.list_keys("")} == before

    # `retention status` shows the quiet camera as such, and the server that failed.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.settings.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    path = tmp_path / "ev.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    code = main(["retention", "status", "--config", str(path)])
    lines = capsys.readouterr().out.splitlines()
    horizon = lines[lines.index("") :]  # after a blank line: the recorder-horizon table
    assert horizon[1].startswith("recorder horizon") and any(f" {DOCK} " in line for line in horizon)
    lines = lines[: lines.index("")]
    [dock] = [line for line in lines if f" {DOCK} " in line]
    assert "no footage in 2 chunks (the server recorded none)" in dock and "NONE" not in dock
    [lobby] = [line for line in lines if f" {LOBBY} " in line]
    assert "no footage" not in lobby and "FAILED" not in lobby and "GOVERNANCE" in lobby
    [nvr2] = [line for line in lines if " nvr2 " in line]
    assert "FAILED 1 chunks" in nvr2
    assert code == 0

    # The report: a row for the camera that recorded nothing, and the count.
    html = report.render(Archive.from_store(store), "HQ", start, end)
    assert "chunks without footage (the server recorded none)" in html
    assert f"nvr1/{DOCK} Loading Dock" in html


def test_a_configured_camera_the_server_does_not_list_is_a_failure(make_sim, make_store):
    """Named in include_cameras, absent from the server's camera list: a `plan` failure of
    that camera (never silently missing from the night), the named camera it lists archived."""
    sim = make_sim(profile="strict", cameras=1, width=160, height=120, fps=5)
    store = make_store()
    config = config_for(sim, store)
    data = config.model_dump(mode="json")
    data["sites"][0]["servers"] = [{**data["sites"][0]["servers"][0], "include_cameras": [LOBBY, 4599040]}]
    config = PipelineConfig.model_validate(data)
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=4)
    result = run_nightly(config, store, "HQ", start, start + timedelta(hours=1), summarize=False)
    assert {(e.camera_id, e.server) for e in result.manifest.exports()} == {(LOBBY, "nvr1")}
    [failed] = result.manifest.failures
    assert (failed.camera_id, failed.kind) == (4599040, "plan") and "does not list this camera" in failed.error


def versions_of(store) -> dict[str, list[str]]:
    return {k: store.versions(k) for k in store.list_keys("")}


@pytest.mark.parametrize("then", ["server down", "footage overwritten"])
def test_a_rerun_never_forgets_what_was_archived(make_sim, make_store, then):
    """The night archived whole; a rerun with the server down, or after the recorder
    overwrote the video, must not turn archived chunks into a failure or "no footage": the
    manifest of record stays as it was (no new version)."""
    sim = make_sim(profile="strict", cameras=2, width=160, height=120, fps=5)
    store = make_store()
    config = config_for(sim, store)
    data = config.model_dump(mode="json")
    data["sites"][0]["servers"] = data["sites"][0]["servers"][:1]  # nvr1 only
    config = PipelineConfig.model_validate(data)
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=4)
    first = run_nightly(config, store, "HQ", start, start + timedelta(hours=1), summarize=False)
    assert len(first.manifest.exports()) == 2 and not first.manifest.failures
    before = versions_of(store)
    if then == "server down":
        data["sites"][0]["servers"][0]["url"] = f"exacqvision://admin@127.0.0.1:{closed_port()}"
        config = PipelineConfig.model_validate(data)
    else:
        sim.state.site.retention_days = 0.05  # the recorder kept only the last 72 minutes
    again = run_nightly(config, store, "HQ", start, start + timedelta(hours=1), summarize=False)
    assert again.manifest.same_content(first.manifest), (again.manifest.failures, again.manifest.no_footage)
    assert versions_of(store) == before


def test_a_camera_listed_twice_is_planned_once_and_no_cameras_is_a_failure():
    """Over a real socket: a server that lists a camera twice, and one that lists none."""
    from ev_ingest.client import ExacqClient
    from pipelines.nightly import steps
    from tests.conftest import pipeline_config
    from tests.hostile import CAMERAS, HostileServer, json_answer

    day = FROZEN_NOW.replace(minute=0) - timedelta(hours=4)
    twice = {**CAMERAS, "Cameras": CAMERAS["Cameras"] * 2}
    found = {"search_id": "1", "frames": 10, "videoInfo": [{"clips": [
        {"startTime": f"{day:%Y-%m-%dT%H}:10:00Z", "endTime": f"{day:%Y-%m-%dT%H}:20:00Z"}]}]}  # fmt: skip
    for cameras, jobs, failed in ((twice, 1, []), ({**CAMERAS, "Cameras": []}, 0, [(0, "plan")])):
        routes = {"/config.web": json_answer(cameras), "/search.web": json_answer(found)}
        with HostileServer(routes) as server:
            url = f"http://127.0.0.1:{server.port}"
            with ExacqClient(url, "admin", "pw") as client:
                planned = steps.plan(client, pipeline_config(SimpleNamespace(url=url)), "HQ", "nvr1", day,
                                       day + timedelta(hours=1))  # fmt: skip
        assert len(planned.jobs) == jobs
        assert [(f.camera_id, f.kind) for f in planned.failures] == failed


def test_a_camera_both_included_and_excluded_is_refused():
    with pytest.raises(ValueError, match=r"cameras \[4593152\] are both included and excluded"):
        PipelineConfig.model_validate(
            {
                "sites": [
                    {
                        "name": "HQ",
                        "servers": [{"name": "nvr1", "include_cameras": [4593152], "exclude_cameras": [4593152]}],
                    }
                ]
            }  # fmt: skip
        )


def test_a_server_whose_clock_is_behind_costs_its_own_cameras(make_sim, make_store):
    """nvr2's clock is a day behind: the interval has not ended on it (a ClockSkewError, its
    plan failure); nvr1 is archived and the manifest committed."""
    nvr1 = make_sim(profile="strict", cameras=1, width=160, height=120, fps=5)
    nvr2 = make_sim(profile="strict", cameras=1, width=160, height=120, fps=5, clock_offset_s=-86400)
    store = make_store()
    data = config_for(nvr1, store).model_dump(mode="json")
    data["sites"][0]["servers"][1]["url"] = f"exacqvision://admin@{nvr2.url.split('://')[1]}"
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=4)
    result = run_nightly(PipelineConfig.model_validate(data), store, "HQ", start, start + timedelta(hours=1),
                         summarize=False)  # fmt: skip
    assert {(e.server, e.camera_id) for e in result.manifest.exports()} == {("nvr1", LOBBY)}
    [failed] = result.manifest.failures
    assert (failed.server, failed.camera_id, failed.kind) == ("nvr2", 0, "plan") and "clock" in failed.error
