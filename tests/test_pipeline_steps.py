"""The archival steps end to end without Airflow: simulator -> client -> SeaweedFS -> motion.

The DAG tests run the same steps through Airflow; these pin the steps themselves:
idempotent reruns, manifests, motion against the simulator's ground truth, holds and
the audit.
"""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import httpx
import pyarrow.parquet as pq
import pytest

from ev_ingest.client import ExacqClient
from ev_ingest.store.signing import decode
from pipelines.analytics.datasets import Archive
from pipelines.compliance import auditor, holds, records
from pipelines.config import ConfigError, PipelineConfig, load_config
from pipelines.nightly import steps
from pipelines.nightly.run import run_nightly
from tests.conftest import END, PASSWORD, START, day, stamp
from tests.holds import sync_holds


def test_run_archives_every_planned_export(archived):
    config, store, result = archived
    manifest = result.manifest
    assert manifest.planned == 6 and len(manifest.exports()) == 6 and not result.failures  # 3 cameras x 2 h
    assert {e.camera_id for e in manifest.exports()} == {4593152, 4593408, 4593920}
    lobby = next(e for e in manifest.exports() if e.camera_id == 4593152)
    span = f"{stamp(START)}_{stamp(START + timedelta(hours=1))}"
    assert lobby.key == f"exports/site=HQ/server=nvr1/camera=4593152/date={day(0)}/{span}.mp4"
    assert lobby.retention_mode == "GOVERNANCE" and lobby.retain_until == lobby.end + timedelta(days=30)
    assert store.head(manifest.key) is not None and store.get_retention(lobby.key, lobby.version_id) is not None


def test_archived_bytes_equal_a_direct_download(archived, sim):
    config, store, result = archived
    entry = next(e for e in result.manifest.exports() if e.camera_id == 4593920)  # motion-triggered, with gaps
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        direct = hashlib.sha256()
        export_id = ev.exports.create(entry.camera_id, entry.start, entry.end)
        ev.exports.wait(export_id, poll_interval=0.05)
        for chunk in ev.exports.iter_download(export_id):
            direct.update(chunk)
    assert direct.hexdigest() == entry.sha256 == store.verify(entry.key, entry.sha256, entry.version_id).actual


def test_motion_summaries_match_ground_truth(archived, sim):
    config, store, result = archived
    events_entries = [e for e in result.motion_manifest.entries if e.kind == "motion_events"]
    assert len(events_entries) == 6
    truth = httpx.get(sim.url + "/_sim/truth", params={"start": START.isoformat(), "end": END.isoformat()}).json()
    for camera in (4593152, 4593408, 4593920):
        found = []
        for entry in (e for e in events_entries if e.camera_id == camera):
            table = pq.read_table(io.BytesIO(store.get_bytes(entry.key)))
            found += table.to_pylist()
        expected = [e for e in truth["events"] if e["camera"] == camera and e["duration_s"] > 2.5]
        for event in expected:  # gated mode: every event longer than a GOP, within 1 s
            assert any(
                abs((f["start"] - _t(event["start"])).total_seconds()) <= 1.0
                and abs((f["end"] - _t(event["end"])).total_seconds()) <= 1.0
                for f in found
            ), event


def _t(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_rerun_of_the_same_interval_writes_nothing_new(archived):
    config, store, result = archived
    before = {k: store.versions(k) for k in store.list_keys("")}
    again = run_nightly(config, store, "HQ", START, END, workers=1)
    after = {k: store.versions(k) for k in store.list_keys("")}
    assert after == before  # no new key, no new version
    assert again.manifest.same_content(result.manifest)


def test_audit_is_clean_then_flags_tampering(archived):
    config, store, result = archived
    log = records.audit_log(store, config)
    clean = auditor.audit(store, config, "HQ", deep=True, audit_log=log)
    assert clean.ok and clean.checked == len(result.manifest.entries) + len(result.motion_manifest.entries)
    victim = result.manifest.exports()[0]
    store.s3.put_object(Bucket=store.bucket, Key=victim.key, Body=b"not the evidence")  # behind our back
    report = auditor.audit(store, config, "HQ", audit_log=log)
    assert [f.problem for f in report.findings] == ["superseded"] and report.findings[0].key == victim.key
    assert decode(store.get_json(report.audit_key))["findings"][0]["problem"] == "superseded"
    assert store.get_retention(report.audit_key) is not None  # the audit trail is locked too
    # Readers show the version the manifest recorded, not what replaced it ...
    archive = Archive.from_store(store)
    events = archive.motion_events("HQ", cameras=[victim.camera_id], start=START)
    inside = events[(events["start"] >= victim.start) & (events["end"] <= victim.end)]
    assert not inside.empty
    event = {**inside.iloc[0].to_dict(), "site": "HQ"}
    assert archive.event_frame(event)[:2] == b"\xff\xd8"
    # ... and a reader that can only see the latest bytes refuses them instead of decoding them.
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        Archive(archive.filesystem, archive.base).event_frame(event)


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
def test_legal_holds_follow_cases(archived, sim):
    config, store, result = archived
    entry = next(e for e in result.manifest.exports() if e.camera_id == 4593408)
    log = records.audit_log(store, config)
    counts = dict.fromkeys(["held", "restored", "released", "unreadable", "deferred", "gaps"], 0)
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        case = ev.cases.create("Incident 42")
        ev.bookmarks.create(
            "loading bay",
            4593408,
            entry.start + timedelta(minutes=5),
            entry.start + timedelta(minutes=6),
            case=case.guid,
        )
        # The export, the two motion summaries and the event snapshots derived from it.
        listed = records.manifests(store, log.verifier, "HQ")
        derived = [e for m in listed for e in m.entries if e.derived_from == entry.key]
        snapshots = {e.key for e in derived if e.kind == "motion_snapshot"}
        held = 3 + len(snapshots)
        assert snapshots and sync_holds(ev, store, log) == {**counts, "held": held}
        assert store.get_legal_hold(entry.key, entry.version_id)
        assert sync_holds(ev, store, log) == counts  # idempotent
        # A release of what an open case holds is refused, and says how to force it.
        with pytest.raises(holds.HoldRefused, match="Incident|--force"):
            holds.set_hold(store, entry.key, False, "manual", log, entry.version_id)
        # A hold removed behind the pipeline's back (tag untouched): the audit finds it, the
        # next sync places it again.
        # What the audit finds already (whatever earlier tests left in the shared store) is
        # taken from this test's own audit, never assumed.
        earlier = {(f.key, f.problem) for f in auditor.audit(store, config, "HQ").findings}
        assert (entry.key, "legal-hold") not in earlier
        store.set_legal_hold(entry.key, entry.version_id, False)
        found = auditor.audit(store, config, "HQ")
        assert {(f.key, f.problem) for f in found.findings} - earlier == {(entry.key, "legal-hold")}
        assert sync_holds(ev, store, log) == {**counts, "restored": 1}
        assert store.get_legal_hold(entry.key, entry.version_id)
        # A bookmark that names no camera (a shape this client does not know) stops the sync
        # before anything changes: a hold that silently covers nothing is what this prevents.
        odd = ev.bookmarks.create("odd", 4593408, entry.start, entry.start + timedelta(minutes=1), case=case.guid)
        ev.bookmarks.update(odd.guid, itemType=3)
        with pytest.raises(ValueError, match="names no camera"):
            sync_holds(ev, store, log)
        ev.bookmarks.delete(odd.guid)
        assert store.get_legal_hold(entry.key, entry.version_id)
        # Cases have no status (the seed's Update Case takes name and description): deleting
        # the case is what ends its holds.
        ev.cases.delete(case.guid)
        assert sync_holds(ev, store, log) == {**counts, "released": held}
    assert not store.get_legal_hold(entry.key, entry.version_id)
    assert {(f.key, f.problem) for f in auditor.audit(store, config, "HQ").findings} == earlier
    actions = [a["action"] for a in log.entries()]
    assert "legal-hold" in actions and "legal-hold-release" in actions


def test_thumbnails_and_contact_sheet(archived, sim):
    from pipelines.nightly.thumbnails import thumbnails_to_store

    config, store, result = archived
    span = (START, START + timedelta(hours=1))
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        entries = thumbnails_to_store(ev, store, config, "HQ", "nvr1", 4593152, "Lobby", *span)
        assert [e.kind for e in entries] == ["thumbnail"] * 3 + ["contact_sheet"]
        sheet = store.get_bytes(entries[-1].key)
        assert sheet[:2] == b"\xff\xd8" and entries[-1].key.endswith(f"date={day(0)}/contact_sheet.jpg")
        assert "/server=nvr1/camera=4593152/" in entries[-1].key
        before = {k: store.versions(k) for k in store.list_keys("thumbnails/")}
        again = thumbnails_to_store(ev, store, config, "HQ", "nvr1", 4593152, "Lobby", *span)
    assert {k: store.versions(k) for k in store.list_keys("thumbnails/")} == before  # a rerun writes nothing new
    assert [e.version_id for e in again] == [e.version_id for e in entries]


def test_config_errors_name_the_field(tmp_path, sim):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - name: HQ\n    timezone: Mars/Olympus\n    servers: []\nexport: {chunk_minutes: 0}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    text = str(caught.value)
    assert "sites.0.timezone" in text and "sites.0.servers" in text and "export.chunk_minutes" in text
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text("sites: [{name: HQ, servers: [{name: n, url: 'exacqvision://admin:hunter2@h:80'}]}]\n")
    with pytest.raises(ConfigError, match="password_env") as caught:
        load_config(leaky)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_interval_is_the_previous_local_day():
    from datetime import UTC, datetime

    site = PipelineConfig.model_validate(
        {"sites": [{"name": "HQ", "timezone": "America/New_York", "servers": [{"name": "n"}]}]}
    ).site("HQ")
    start, end = site.previous_day(datetime(2026, 11, 21, 7, 0, tzinfo=UTC))  # 02:00 in New York
    assert (start, end) == (datetime(2026, 11, 20, 5, tzinfo=UTC), datetime(2026, 11, 21, 5, tzinfo=UTC))
    assert steps.run_id_for("HQ", start) == "nightly-20261120T050000Z"


def test_events_between_two_moments_with_names_in_the_sites_zone(archived):
    """Issue 18: `start` is a moment, not its day; `end` exists; names beside ids; the site's zone."""
    _, store, result = archived
    archive = Archive.from_store(store)
    whole = archive.motion_events("HQ", start=START, end=END)
    window = (START + timedelta(minutes=30), START + timedelta(minutes=60))
    part = archive.motion_events("HQ", start=window[0], end=window[1], tz="America/New_York")
    assert 0 < len(part) < len(whole)
    assert part["start"].between(window[0], window[1], inclusive="left").all()
    assert str(part["start"].dt.tz) == "America/New_York"
    names = {e.camera_name for e in result.manifest.exports()}
    assert set(part["camera_name"]) <= names and "" not in set(whole["camera_name"])
    assert whole.groupby("camera_name").duration_s.sum().idxmax() in names  # the busiest camera, one line
    with pytest.raises(ValueError, match="not after"):
        archive.motion_events("HQ", start=END, end=START)


def test_event_frames_outline_the_moving_region(archived):
    import cv2
    import numpy as np

    _, store, _ = archived
    archive = Archive.from_store(store)
    events = archive.motion_events("HQ", start=START, end=END)
    event = {**events[events["bbox"].map(lambda b: not np.isnan(b).any())].iloc[0].to_dict(), "site": "HQ"}
    plain = cv2.imdecode(np.frombuffer(archive.event_frame(event, box=False), np.uint8), cv2.IMREAD_COLOR)
    boxed = cv2.imdecode(np.frombuffer(archive.event_frame(event), np.uint8), cv2.IMREAD_COLOR)
    x0, y0 = (int(event["bbox"][0] * plain.shape[1]), int(event["bbox"][1] * plain.shape[0]))
    blue, green, red = boxed[y0 + 1, x0 + 1].astype(int)  # on the outline (2 px, JPEG-blurred)
    assert green > 150 and red < 120 and blue < 120 and not np.array_equal(plain, boxed)


def test_the_heatmap_averages_over_every_second_of_the_hour():
    """A motion-triggered camera that recorded 10 busy minutes is not busier than one that
    recorded the whole hour at a sixth of the motion: the same total motion, the same cell."""
    import pandas as pd

    from pipelines.analytics import plots

    hour = pd.Timestamp("2026-01-05T09:00:00Z")
    triggered = pd.DataFrame({"camera_id": 1, "ts": [hour + pd.Timedelta(seconds=s) for s in range(600)], "score": 0.6})
    continuous = pd.DataFrame(
        {"camera_id": 2, "ts": [hour + pd.Timedelta(seconds=s) for s in range(3600)], "score": 0.1}
    )
    figure = plots.activity_heatmap(pd.concat([triggered, continuous], ignore_index=True))
    grid = figure.axes[0].images[0].get_array()
    assert abs(grid[0, 9] - grid[1, 9]) < 1e-9 and abs(grid[0, 9] - 10.0) < 1e-6  # 10 % moving, both
    assert grid.mask[0, 8]  # an hour with nothing recorded is blank, not "no motion"


def test_the_motion_catch_up_finds_nights_without_summaries(store):
    """Nights whose motion run failed or never ran are found from the archive alone (no clock):
    the last CATCH_UP_DAYS nights of each site before its newest, without a `-motion` manifest."""
    from pipelines.nightly.motion_step import CATCH_UP_DAYS, unsummarised

    def night(site: str, on: str, motion: bool) -> str:
        key = f"manifests/site={site}/date={on}/nightly-{on.replace('-', '')}T000000Z.json"
        store.put_json(key, {"planted": True})
        if motion:
            store.put_json(key.replace(".json", "-motion.json"), {"planted": True})
        return key

    old = night("HQ", "2026-01-01", motion=False)  # CATCH_UP_DAYS or more before the newest night
    summarised = night("HQ", "2026-01-06", motion=True)
    missed = night("HQ", "2026-01-07", motion=False)
    newest = night("HQ", f"2026-01-{1 + CATCH_UP_DAYS:02d}", motion=False)
    other_site = night("Annex", "2025-06-01", motion=False)
    store.put_json("manifests/site=HQ/date=2026-01-07/thumbnails-20260107T000000Z.json", {"planted": True})
    found = unsummarised(store, ["HQ", "Annex", "Empty"])
    assert sorted(found) == sorted([missed, newest, other_site])
    assert old not in found and summarised not in found
