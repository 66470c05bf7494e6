"""Issue 25 item 5, end to end through `ev-ingest archive`: staying ahead of the recorder.

The simulator is a recorder that keeps 4.5 days of video (`retention_days`): on its frozen
clock (TODAY 12:00) its video begins at TODAY-4d 00:00. One night (N-3) is archived, then
three nights are missed (an outage). Footage of a night starting at `u` is overwritten
near `u + 108 h`, so N-2, N-1 and N0 have 24, 48 and 72 hours left.

- the alert fires while unarchived footage is within the margin (60 h here);
- `--catch-up` archives the owed nights oldest first (the chain's order proves it), and
  nothing is lost when capacity allows; a rerun archives nothing new;
- with capacity for one night, the oldest goes first and the alert fires for what stays;
- footage the recorder overwrote before it was archived is a failure ("overwritten"),
  never "no footage", also for a camera that recorded nothing at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from ev_ingest.store import Manifest, ManifestEntry, ManifestFailure, NoFootage, RecorderEdge, read_manifest
from pipelines.cli.main import main
from pipelines.config import PipelineConfig
from pipelines.nightly import horizon
from tests.conftest import FROZEN_NOW, S3_SECRET

TODAY = FROZEN_NOW.replace(hour=0, minute=0, second=0, microsecond=0)
pytestmark = pytest.mark.slow  # whole days through the CLI: `make test` runs them, `make check` does not


def night(days_before_today: int) -> str:
    return (TODAY - timedelta(days=days_before_today)).strftime("%Y-%m-%d")


N3, N2, N1, N0 = night(4), night(3), night(2), night(1)


class Recorder:
    """One simulated recorder archived as site HQ/nvr1 in 6-hour chunks, and the CLI."""

    def __init__(self, make_sim: Any, make_store: Any, tmp_path: Any, capsys: Any, **sim: Any) -> None:
        settings = {"cameras": 2, "width": 64, "height": 64, "fps": 1, "retention_days": 4.5, **sim}
        self.sim = make_sim(seed=3, **settings)
        self.store = make_store()
        self.capsys = capsys
        self.path = tmp_path / "ev.yaml"
        config = {
            "sites": [
                {
                    "name": "HQ",
                    "servers": [{"name": "nvr1", "url": f"exacqvision://admin@{self.sim.url.split('://')[1]}"}],
                }
            ],
            "store": {"bucket": self.store.bucket, "endpoint_url": self.store.settings.endpoint_url},
            "export": {"format": "mp4", "chunk_minutes": 360, "poll_interval_s": 0.05},
            "retention": {"mode": "GOVERNANCE", "days": 7},
            "horizon": {"margin_hours": 60, "lookback_days": 7},
        }
        self.path.write_text(yaml.safe_dump(config))

    def archive(self, *argv: str) -> tuple[int, dict[str, Any], str]:
        code = main(["archive", *argv, "--no-motion", "--json", "--config", str(self.path)])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return code, json.loads(out), err

    def retention(self, *argv: str) -> tuple[int, str]:
        code = main(["retention", *argv, "--config", str(self.path)])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out

    def versions(self) -> int:
        return len(self.store.all_versions(""))


@pytest.fixture
def recorder(make_sim, make_store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ev-ingest")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    return lambda **sim: Recorder(make_sim, make_store, tmp_path, capsys, **sim)


def owed_cameras(result: dict[str, Any]) -> dict[int, tuple[float, float | None]]:
    return {r["camera_id"]: (r["unarchived_hours"], r["hours_left"]) for r in result["horizon"]}


def test_a_three_night_outage_is_caught_up_oldest_first_and_alerted_until_then(recorder):
    site = recorder()
    code, before, _ = site.archive("--date", N3)
    # Archived whole, and the edge seen: the three missed nights are owed, N-2 and N-1 within the margin.
    assert before["failures"] == [] and before["objects"] == 8
    assert code == 1 and len(before["alerts"]) == 2, before["alerts"]
    for row in before["horizon"]:
        assert row["unarchived_hours"] == 72 and row["oldest_unarchived"].startswith(N2)
        assert 23 < row["hours_left"] <= 24 and not row["at_least"]
        assert row["owed_nights"] == [N2, N1, N0]
    assert "overwritten by the recorder in 2" in before["alerts"][0]
    edge = read_manifest(site.store, before["manifest"]).recorders
    assert [e.oldest.strftime("%Y-%m-%d %H:%M") for e in edge if e.oldest] == [f"{N3} 00:00"]

    code, caught, _ = site.archive("--catch-up", "--date", N0)
    assert code == 0, caught["alerts"]
    assert [n["date"] for n in caught["nights"]] == [N2, N1, N0]
    assert all(n["objects"] == 8 and n["failures"] == [] for n in caught["nights"])
    # Oldest first in the signed chain too, not only in what was printed.
    places = [read_manifest(site.store, n["manifest"]).sequence for n in caught["nights"]]
    assert places == sorted(places)
    assert caught["alerts"] == [] and all(r["unarchived_hours"] == 0 for r in caught["horizon"])

    code, shown = site.retention("horizon", "--json")
    assert code == 0 and json.loads(shown)["alerts"] == []
    versions = site.versions()
    code, again, _ = site.archive("--catch-up", "--date", N0)
    assert code == 0 and [n["date"] for n in again["nights"]] == [N0]  # nothing else owed
    assert site.versions() == versions  # and nothing new written


def test_with_capacity_for_one_night_the_oldest_goes_first_and_the_rest_is_alerted(recorder):
    site = recorder()
    site.archive("--date", N3)
    code, result, _ = site.archive("--catch-up", "--max-nights", "1", "--date", N0)
    assert [n["date"] for n in result["nights"]] == [N2]  # the night nearest the horizon
    assert code == 1
    for hours, left in owed_cameras(result).values():
        assert hours == 48 and 47 < left <= 48  # N-1 and N0 still owed; N-1 has 48 h
    assert len(result["alerts"]) == 2 and all("overwritten by the recorder in 4" in a for a in result["alerts"])
    # The officer's view says the same, as a table in `retention status` and `retention horizon`.
    code, shown = site.retention("horizon")
    assert code == 1 and shown.count("ALERT: HQ/nvr1/") == 2
    assert f"    48.0 h  {N1} 00:00" in shown  # per camera: unarchived hours, oldest, overwritten in
    code, shown = site.retention("status")
    assert "recorder horizon (alert within 60 h of an overwrite):" in shown and "ALERT: HQ/nvr1/4593152" in shown
    # And the night's report, as its run saw it (the same bytes on a rerun).
    page = site.path.parent / "report.html"
    assert main(["report", "--date", N2, "-o", str(page), "--config", str(site.path)]) == 0
    site.capsys.readouterr()
    text = page.read_text()
    assert '<h2 class="bad">Recorder horizon</h2>' in text and text.count(f"{N1}, {N0}") == 2
    # A manifest planted for N-1 (no claim of the chain names it) does not make it archived.
    planted = read_manifest(site.store, result["manifest"]).model_dump(mode="json")
    moved = {k: planted[k].replace(N2, N1) for k in ("interval_start", "interval_end")}
    key = f"manifests/site=HQ/date={N1}/nightly-{N1.replace('-', '')}T000000Z.json"
    site.store.put(key, json.dumps({**planted, **moved, "sequence": None, "signature": None}).encode())
    code, again, _ = site.archive("--catch-up", "--max-nights", "1", "--date", N0)
    assert [n["date"] for n in again["nights"]] == [N1]  # owed all the same: archived now
    assert code == 1 and again["alerts"] == []  # N0, the night asked for, still waits: said, exit 1


def test_footage_the_recorder_overwrote_is_a_failure_never_no_footage(recorder):
    # 4.25 days kept: the video begins at N-3 06:00; the second camera recorded nothing at all.
    site = recorder(retention_days=4.25, idle_cameras=1)
    code, result, _ = site.archive("--date", N3)
    assert code == 1
    lost = sorted((f["camera_id"], f["start"][11:16], f["kind"]) for f in result["failures"])
    assert lost == [(4593152, "00:00", "overwritten"), (4593408, "00:00", "overwritten")]
    assert "overwritten by the recorder before it was archived" in result["failures"][0]["error"]
    assert result["objects"] == 3  # the first camera's 06:00, 12:00 and 18:00 chunks
    quiet = sorted((q["camera_id"], q["start"][11:16]) for q in result["no_footage"])
    assert quiet == [(4593408, "06:00"), (4593408, "12:00"), (4593408, "18:00")]
    assert {r["camera_id"]: r["lost_hours"] for r in result["horizon"]} == {4593152: 6, 4593408: 6}
    # A night wholly before the recorder's video: every chunk lost, none "without footage".
    code, older, _ = site.archive("--date", night(5))
    assert code == 1 and older["no_footage"] == [] and older["objects"] == 0
    assert {f["kind"] for f in older["failures"]} == {"overwritten"} and len(older["failures"]) == 8


def _config() -> PipelineConfig:
    return PipelineConfig.model_validate(
        {"sites": [{"name": "HQ", "servers": [{"name": "nvr1"}]}], "horizon": {"margin_hours": 24, "lookback_days": 3}}
    )


def _night(day: datetime, edge: RecorderEdge | None, archived: bool) -> Manifest:
    start, end = day, day + timedelta(days=1)
    if archived:
        entry = ManifestEntry(key=f"k/{day:%d}", sha256="0" * 64, size=1, kind="export", version_id=None,
                              server="nvr1", camera_id=7, start=start, end=end)  # fmt: skip
        rows: dict[str, Any] = {"entries": [entry]}
    else:
        rows = {"no_footage": []}
    return Manifest(run_id=f"nightly-{day:%Y%m%d}", site="HQ", interval_start=start, interval_end=end,
                    recorders=[edge] if edge else [], **rows)  # fmt: skip


def test_the_horizon_is_unknown_and_alerted_when_no_answer_showed_the_recorder():
    """Pure: owed footage with no edge seen is an alert (unknown), never a quiet OK; an edge
    that was only bounded gives hours as a lower bound."""
    now = datetime(2030, 1, 10, 12, tzinfo=UTC)
    day = datetime(2030, 1, 8, tzinfo=UTC)
    config = _config()
    archived = _night(day, None, archived=True)
    (row,) = horizon.camera_horizons([archived], config, "HQ", now=now)
    assert row.unarchived_hours == 24 and row.hours_left is None  # Jan 9 owed, nothing known of the recorder
    assert "no search has shown where the recorder's video begins" in (row.alert(24) or "")
    bounded = RecorderEdge(server="nvr1", searched_from=day - timedelta(hours=24), oldest=None, seen_at=now)
    (row,) = horizon.camera_horizons([_night(day, bounded, archived=True)], config, "HQ", now=now)
    # Kept at least 84.5 h: Jan 9 00:00 is overwritten no sooner than Jan 12 12:00, 48 h away.
    assert row.at_least and row.hours_left == 48 and row.alert(24) is None and row.alert(72)
    assert horizon.owed_nights([row]) == ["2030-01-09"]
    gone = [NoFootage(server="nvr1", camera_id=7, start=day, end=day + timedelta(days=1))]
    quiet = Manifest(run_id="nightly-x", site="HQ", interval_start=day, interval_end=day + timedelta(days=1),
                     no_footage=gone)  # fmt: skip
    assert horizon.camera_horizons([quiet], config, "HQ", now=now)[0].owed_nights == ["2030-01-09"]


# --- the attacker's cases (a helper's review of this change), pure: hand-made manifests ---

H = timedelta(hours=1)
NOW = datetime(2030, 1, 10, 12, tzinfo=UTC)
DAY = datetime(2030, 1, 9, tzinfo=UTC)


def test_a_motion_only_server_shows_no_edge_and_nothing_is_called_overwritten():
    """Motion-only cameras quiet for the whole window before 07:00: their first clip is no
    edge (the recorder may hold 30 days of quiet), so no chunk is "overwritten"."""
    motion = [[(DAY + 7 * H, DAY + 7 * H + timedelta(seconds=40)), (DAY + 9 * H, DAY + 9 * H + timedelta(minutes=1))]]
    assert horizon.learn_edge("nvr1", DAY - 48 * H, motion, NOW, timedelta(0)) is None
    steady = [[(DAY + 7 * H, NOW)]]  # a continuous camera whose video begins at 07:00: that is the edge
    edge = horizon.learn_edge("nvr1", DAY - 48 * H, steady + motion, NOW, timedelta(0))
    assert edge is not None and edge.oldest == DAY + 7 * H and horizon.overwritten(edge, DAY)
    reaches = [[(DAY - 48 * H, NOW)]]  # video from the window's start: a lower bound, no edge
    bound = horizon.learn_edge("nvr1", DAY - 48 * H, reaches + motion, NOW, timedelta(0))
    assert bound is not None and bound.oldest is None and not horizon.overwritten(bound, DAY)


def _run(day: datetime, rows: dict[str, Any], edges: list[RecorderEdge], created: datetime) -> Manifest:
    return Manifest(run_id=f"nightly-{day:%Y%m%d}", site="HQ", interval_start=day, interval_end=day + 24 * H,
                    created_at=created, recorders=edges, **rows)  # fmt: skip


def _quiet(day: datetime, camera: int, server: str = "nvr1") -> NoFootage:
    return NoFootage(server=server, camera_id=camera, start=day, end=day + 24 * H)


def test_a_later_answer_that_proves_a_deeper_recorder_wins_over_an_old_short_edge():
    config = _config()
    short = RecorderEdge(server="nvr1", searched_from=DAY - 72 * H, oldest=DAY - 6 * H, seen_at=DAY + 12 * H)
    deeper = RecorderEdge(server="nvr1", searched_from=DAY - 48 * H, oldest=None, seen_at=NOW)
    night = [_quiet(DAY - 24 * H, 7)]
    runs = [
        _run(DAY - 24 * H, {"no_footage": night}, [short], DAY),
        _run(
            DAY,
            {
                "failures": [
                    ManifestFailure(server="nvr1", camera_id=7, start=DAY, end=DAY + 24 * H, error="x", kind="export")
                ]
            },
            [deeper],
            NOW,
        ),  # fmt: skip
    ]
    (row,) = horizon.camera_horizons(runs, config, "HQ", now=NOW)
    # The old edge said 18 h deep (Jan 9 already gone); the newer answer proves at least 84 h.
    assert row.at_least and row.unarchived_hours == 24 and row.hours_left == 48 and row.lost_hours == 0


def test_a_camera_taken_out_owes_nothing_new_and_a_server_never_listed_owes_its_nights():
    config = PipelineConfig.model_validate(
        {"sites": [{"name": "HQ", "servers": [{"name": "nvr1"}, {"name": "nvr2"}]}], "horizon": {"margin_hours": 24}}
    )
    edge = RecorderEdge(server="nvr1", searched_from=DAY - 72 * H, oldest=None, seen_at=NOW)
    down = ManifestFailure(server="nvr2", camera_id=0, start=DAY - 24 * H, end=DAY, error="down", kind="plan")
    runs = [
        _run(
            DAY - 24 * H,
            {"no_footage": [_quiet(DAY - 24 * H, 7), _quiet(DAY - 24 * H, 8)], "failures": [down]},
            [edge],
            DAY,
        ),  # fmt: skip
        _run(DAY, {"no_footage": [_quiet(DAY, 7)]}, [edge], NOW),  # camera 8 no longer listed
    ]
    rows = {(r.server, r.camera_id): r for r in horizon.camera_horizons(runs, config, "HQ", now=NOW)}
    assert rows[("nvr1", 8)].unarchived_hours == 0 and rows[("nvr1", 7)].unarchived_hours == 0
    never = rows[("nvr2", 0)]  # down on every run: its cameras are unknown, its nights owed
    assert never.unarchived_hours == 48 and never.hours_left is None
    assert "no search has shown where the recorder's video begins" in (never.alert(24) or "")


def test_owed_footage_past_a_known_edge_is_lost_not_alerted_forever():
    config = _config()
    edge = RecorderEdge(server="nvr1", searched_from=DAY - 72 * H, oldest=NOW - 30 * H, seen_at=NOW)
    failed = ManifestFailure(server="nvr1", camera_id=7, start=DAY - 24 * H, end=DAY, error="x", kind="export")
    runs = [
        _run(DAY - 24 * H, {"failures": [failed]}, [], DAY),
        _run(DAY, {"no_footage": [_quiet(DAY, 7)]}, [edge], NOW),
    ]
    (row,) = horizon.camera_horizons(runs, config, "HQ", now=NOW)
    # Jan 8 00:00..24:00 owed; the recorder keeps 30 h (from Jan 9 06:00): all of it is gone.
    assert row.unarchived_hours == 0 and row.lost_hours == 24 and row.alert(24) is None


def test_a_rerun_past_the_edge_keeps_the_chunk_proven_quiet():
    from pipelines.nightly.steps import carried_forward

    before = _run(DAY, {"no_footage": [_quiet(DAY, 8)]}, [], DAY)
    lost = ManifestFailure(server="nvr1", camera_id=8, start=DAY, end=DAY + 24 * H, error="x", kind="overwritten")
    merged = carried_forward(before, _run(DAY, {"failures": [lost]}, [], NOW))
    assert merged.failures == [] and [q.camera_id for q in merged.no_footage] == [8]
    assert merged.same_content(before)  # nothing new to write


def test_a_local_day_east_of_utc_plus_12_is_that_day():
    from pipelines.config import SiteConfig

    for zone in ("Pacific/Kiritimati", "Pacific/Auckland", "UTC", "America/New_York", "Pacific/Pago_Pago"):
        site = SiteConfig(name="x", timezone=zone, servers=[{"name": "a"}])
        start, end = site.local_day(datetime(2030, 1, 10))
        assert f"{start.astimezone(site.zone):%Y-%m-%d %H:%M}" == "2030-01-10 00:00", zone
        assert f"{end.astimezone(site.zone):%Y-%m-%d %H:%M}" == "2030-01-11 00:00", zone


def test_a_server_down_before_it_ever_listed_a_camera_owes_those_nights_by_its_cameras():
    config = _config()
    down = ManifestFailure(server="nvr1", camera_id=0, start=DAY - 24 * H, end=DAY, error="down", kind="plan")
    edge = RecorderEdge(server="nvr1", searched_from=DAY - 48 * H, oldest=None, seen_at=NOW)
    runs = [_run(DAY - 24 * H, {"failures": [down]}, [], DAY), _run(DAY, {"no_footage": [_quiet(DAY, 7)]}, [edge], NOW)]
    (row,) = horizon.camera_horizons(runs, config, "HQ", now=NOW)
    assert (row.camera_id, row.unarchived_hours, row.owed_nights) == (7, 24, ["2030-01-08"])


def test_nights_count_a_25_hour_day_once():
    from pipelines.config import SiteConfig

    paris = SiteConfig(name="x", timezone="Europe/Paris", servers=[{"name": "a"}])
    first, _ = paris.local_day(datetime(2026, 10, 25))  # the clocks go back: 25 hours
    nights = horizon._nights(paris, first, first + 49 * H)
    assert [f"{a.astimezone(paris.zone):%m-%d}" for a, _ in nights] == ["10-25", "10-26"]
    assert [(b - a) / H for a, b in nights] == [25, 24]


def test_the_earliest_clip_must_be_a_continuous_cameras_to_be_the_edge():
    """A camera installed three hours ago records continuously, but another camera's motion
    clip is older: the server held video before, so that is no edge."""
    fresh = [(NOW - 3 * H, NOW)]
    older = [(DAY + 2 * H, DAY + 2 * H + timedelta(minutes=1))]
    assert horizon.learn_edge("nvr1", DAY - 48 * H, [fresh, older], NOW, timedelta(0)) is None
    assert horizon.learn_edge("nvr1", DAY - 48 * H, [], NOW, timedelta(0)) is None  # no answer held a clip
    assert horizon.learn_edge("nvr1", DAY - 48 * H, [[], []], NOW, timedelta(0)) is None
