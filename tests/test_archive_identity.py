"""Archive identity: the archive never reports "archived" for video it does not hold.

Against the real simulator and SeaweedFS: two recording servers whose camera ids
coincide, a day that has not ended, an object planted at a deterministic key, and an
upload whose run died before its manifest.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from ev_ingest import clock
from ev_ingest.client import ExacqClient
from ev_ingest.store import read_manifest
from pipelines import connections
from pipelines.config import PipelineConfig
from pipelines.nightly import steps
from pipelines.nightly.export_job import ExportJob
from pipelines.nightly.run import run_nightly
from tests.conftest import FROZEN_NOW, PASSWORD

LOBBY = 4593152
SMALL = dict(cameras=2, width=160, height=120, fps=5)


def config_for(*servers, timezone: str = "America/New_York", **export) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sites": [
                {
                    "name": "HQ",
                    "timezone": timezone,
                    "servers": [
                        {"name": name, "url": f"exacqvision://admin@{sim.url.split('://')[1]}", **extra}
                        for name, sim, extra in servers
                    ],
                }
            ],
            "export": {"format": "mp4", "chunk_minutes": 60, "poll_interval_s": 0.05, **export},
            "retention": {"mode": "GOVERNANCE", "days": 7},
        }
    )


def served(sim, camera: int, start: datetime, end: datetime) -> bytes:
    """What the server sends for an export of that camera and interval."""
    buffer = io.BytesIO()
    with ExacqClient(sim.url, "admin", PASSWORD) as ev:
        ev.exports.export(camera, start, end, buffer, poll_interval=0.05)
    return buffer.getvalue()


def versions(store) -> dict[str, list[str]]:
    return {k: store.versions(k) for k in store.list_keys("")}


def test_two_servers_whose_camera_ids_coincide_are_both_archived(make_sim, make_store):
    nvr1, nvr2 = make_sim(seed=1, **SMALL), make_sim(seed=2, **SMALL)
    config = config_for(("nvr1", nvr1, {}), ("nvr2", nvr2, {}))
    store = make_store()
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=3)
    end = start + timedelta(hours=1)
    result = run_nightly(config, store, "HQ", start, end, summarize=False)
    exports = result.manifest.exports()
    assert not result.failures and len(exports) == 4  # 2 servers x 2 cameras, ids shared
    assert {(e.server, e.camera_id) for e in exports} == {(s, c) for s in ("nvr1", "nvr2") for c in (LOBBY, 4593408)}
    for entry in exports:
        sim = {"nvr1": nvr1, "nvr2": nvr2}[entry.server]
        assert f"/server={entry.server}/camera={entry.camera_id}/" in entry.key
        wanted = hashlib.sha256(served(sim, entry.camera_id, entry.start, entry.end)).hexdigest()
        assert entry.sha256 == wanted == store.verify(entry.key, wanted, entry.version_id).actual
    lobby = [e.sha256 for e in exports if e.camera_id == LOBBY]
    assert len(set(lobby)) == 2  # the two servers' Lobby cameras hold different video
    before = versions(store)
    again = run_nightly(config, store, "HQ", start, end, summarize=False)
    assert versions(store) == before and again.manifest.same_content(result.manifest)


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
def test_a_day_that_has_not_ended_is_archived_in_part_and_completed_later(make_sim, make_store):
    sim = make_sim(frozen_now=None, cameras=1, width=160, height=120, fps=5, export_rate=1e7)
    config = config_for(("nvr1", sim, {}), timezone="UTC", chunk_minutes=240, settle_s=60)
    store = make_store()
    today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today, today + timedelta(days=1)
    ended = [b for _, b in steps.chunk_grid(start, end, 240) if b <= clock.now() - timedelta(seconds=65)]

    first = run_nightly(config, store, "HQ", start, end, summarize=False)
    manifest = first.manifest
    assert not manifest.complete and manifest.pending == 6 - len(ended) and not first.failures
    assert sorted(e.end for e in manifest.exports()) == ended  # only chunks that had ended
    assert len(store.list_keys("exports/")) == len(ended)  # nothing of an unfinished chunk was stored
    for entry in manifest.exports():
        assert entry.size == len(served(sim, LOBBY, entry.start, entry.end))

    sim.state.site.clock_offset_s = 86400  # a day later on the server's clock
    second = run_nightly(config, store, "HQ", start, end, summarize=False)
    assert second.manifest.complete and second.manifest.pending == 0 and len(second.manifest.exports()) == 6
    earlier = {e.key: e.version_id for e in manifest.exports()}
    assert all(e.version_id == earlier[e.key] for e in second.manifest.exports() if e.key in earlier)
    assert read_manifest(store, manifest.key).complete

    with pytest.raises(steps.IntervalError, match="has not started"):
        run_nightly(config, store, "HQ", start + timedelta(days=3), end + timedelta(days=3), summarize=False)


def test_a_planted_object_is_never_recorded_as_an_export(sim, make_store):
    config = config_for(("nvr1", sim, {"include_cameras": [LOBBY]}))
    store = make_store()
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=6)
    end = start + timedelta(hours=1)
    stamps = f"{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}"
    key = f"exports/site=HQ/server=nvr1/camera={LOBBY}/date={start:%Y-%m-%d}/{stamps}.mp4"  # deterministic
    planted = b"\0" * 192
    fake = hashlib.sha256(b"what the real export would hash to").hexdigest()
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=planted, Tagging=f"sha256={fake}", Metadata={"sha256": fake})
    result = run_nightly(config, store, "HQ", start, end, summarize=False)
    (entry,) = result.manifest.exports()
    wanted = hashlib.sha256(served(sim, LOBBY, start, end)).hexdigest()
    assert entry.key == key and entry.sha256 == wanted and entry.size > len(planted)
    assert store.verify(key, wanted, entry.version_id).ok
    (finding,) = result.failures
    assert finding.kind == "conflict" and "not written by a committed run" in finding.error
    assert len(store.versions(key)) == 2  # the planted version is kept, as evidence of the conflict


def test_an_upload_whose_run_died_before_its_manifest_is_recorded_not_duplicated(sim, make_store):
    config = config_for(("nvr1", sim, {"include_cameras": [LOBBY]}))
    store = make_store()
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=7)
    end = start + timedelta(hours=1)
    body = served(sim, LOBBY, start, end)
    job = ExportJob("HQ", "nvr1", LOBBY, "Lobby", start.isoformat(), end.isoformat(), start.isoformat(), 3600)
    stored = store.put(job.key, body)  # what a run that died before committing left behind
    result = run_nightly(config, store, "HQ", start, end, summarize=False)
    (entry,) = result.manifest.exports()
    assert (
        not result.failures and entry.version_id == stored.version_id and store.versions(job.key) == [stored.version_id]
    )


def test_a_scheduled_runs_pendulum_interval_plans(sim):
    """Scheduled runs get `data_interval_end` as a pendulum DateTime: the interval and the
    plan must work on it (it used to end in "can't compare offset-naive and offset-aware")."""
    config = config_for(("nvr1", sim, {"include_cameras": [LOBBY]}))
    moment = pendulum.instance(FROZEN_NOW.replace(hour=7, minute=0), tz="UTC")
    start, end = config.site("HQ").previous_day(moment)
    assert type(start) is datetime and start.tzinfo is UTC and end - start == timedelta(days=1)
    with connections.connect(config.sites[0].servers[0]) as client:
        planned = steps.plan(client, config, "HQ", "nvr1", start, end)
    assert len(planned.jobs) == 24 and planned.pending == 0


def test_an_exports_recorded_start_is_its_earliest_clip_whatever_the_order() -> None:
    """Issue 24: a server may list clips out of order; t = 0 of the export is the earliest."""
    hour = datetime(2026, 11, 28, 9, tzinfo=UTC)
    minute = timedelta(minutes=1)
    clips = [
        (hour + 30 * minute, hour + 40 * minute),
        (hour + 5 * minute, hour + 10 * minute),
        (hour + 8 * minute, hour + 12 * minute),  # overlaps the one before: counted once
        (hour - 5 * minute, hour + 1 * minute),  # starts before the chunk: clipped to it
        (hour + 70 * minute, hour + 80 * minute),  # after the chunk: not in it
    ]
    spans = steps.recorded_spans(clips, hour, hour + 60 * minute)
    assert spans == [
        (hour, hour + minute),
        (hour + 5 * minute, hour + 12 * minute),
        (hour + 30 * minute, hour + 40 * minute),
    ]
    assert sum((b - a).total_seconds() for a, b in spans) == 18 * 60


def test_a_short_export_is_a_failure_the_next_run_retries(make_sim, make_store):
    """Issue 24: an export that holds less than the server said it recorded is never stored
    (so never locked as complete); once the server exports it whole, it is archived."""
    short = make_sim(seed=1, short_exports=0.5, **SMALL)
    store = make_store()
    start = FROZEN_NOW.replace(minute=0) - timedelta(hours=3)
    end = start + timedelta(hours=1)
    result = run_nightly(config_for(("nvr1", short, {})), store, "HQ", start, end, summarize=False)
    assert not result.manifest.exports() and len(result.failures) == 2
    assert {f.kind for f in result.failures} == {"short"}
    assert all("holds 1800.0 s of video, the server recorded 3600.0 s" in f.error for f in result.failures)
    assert store.list_keys("exports/") == []  # nothing stored, nothing locked
    assert not result.manifest.complete or result.manifest.failures  # never a clean night
    whole = make_sim(seed=1, **SMALL)  # the same recordings, exported whole
    again = run_nightly(config_for(("nvr1", whole, {})), store, "HQ", start, end, summarize=False)
    assert not again.failures and len(again.manifest.exports()) == 2
