"""Issue 25 item 4, end to end: holds that cannot silently miss. Two recording servers whose
camera ids coincide are archived with `ev-ingest archive`; `ev-ingest retention apply
--holds` (or `ev-ingest archive --holds`, after the night) then syncs the holds of their
cases, and `ev-ingest retention audit` checks them.

- a case on one server whose bookmark names the other server's camera holds that server's
  export, and not the export of the same camera id on its own server;
- a server that cannot be listed lets go of nothing it may hold (its releases wait), and
  the run and the audit say so;
- a server whose bookmark list leaves out case bookmarks, and an item naming a server the
  site does not archive, are gaps: the run fails and the audit finds them, until a sync
  without them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from ev_ingest.client import ExacqClient
from ev_ingest.store import read_manifest
from pipelines.cli.main import main
from tests.conftest import FROZEN_NOW, PASSWORD, S3_SECRET

LOBBY, PARKING = 4593152, 4593408
DAY = (FROZEN_NOW - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
pytestmark = pytest.mark.slow  # whole days through the CLI: `make test` runs them, `make check` does not


class Site:
    """Two simulators archived as site HQ (nvr1, nvr2), and the CLI against them."""

    def __init__(self, make_sim: Any, make_store: Any, tmp_path: Any, capsys: Any, **nvr1: Any) -> None:
        small = {"cameras": 2, "width": 64, "height": 64, "fps": 1}
        self.sims = {"nvr1": make_sim(seed=1, **small, **nvr1), "nvr2": make_sim(seed=2, **small)}
        self.store = make_store()
        self.path = tmp_path / "ev.yaml"
        self.capsys = capsys
        self.write_config()
        code, result, _ = self.cli("archive", "--date", DAY.strftime("%Y-%m-%d"), "--no-motion")
        assert code == 0 and result["objects"] == 4  # 2 servers x 2 cameras, ids shared
        self.entries = {(e.server, e.camera_id): e for e in read_manifest(self.store, result["manifest"]).exports()}

    def write_config(self, down: str | None = None) -> None:
        servers = [
            {"name": name, "url": f"exacqvision://admin@{'127.0.0.1:9' if name == down else sim.url.split('://')[1]}"}
            for name, sim in self.sims.items()
        ]
        config = {
            "sites": [{"name": "HQ", "servers": servers}],
            "store": {"bucket": self.store.bucket, "endpoint_url": self.store.settings.endpoint_url},
            "export": {"format": "mp4", "chunk_minutes": 1440, "poll_interval_s": 0.05},
            "retention": {"mode": "GOVERNANCE", "days": 7},
        }
        self.path.write_text(yaml.safe_dump(config))

    def cli(self, *argv: str) -> tuple[int, dict[str, Any], str]:
        code = main([*argv, "--json", "--config", str(self.path)])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return code, json.loads(out), err

    def sync(self, via: str = "retention") -> tuple[int, dict[str, Any], str]:
        """The hold sync, by `retention apply --holds` or after the night, `archive --holds`."""
        if via == "archive":
            code, result, err = self.cli("archive", "--date", DAY.strftime("%Y-%m-%d"), "--no-motion", "--holds")
        else:
            code, result, err = self.cli("retention", "apply", "--holds")
        return code, result["holds"], err

    def held(self, server: str, camera: int) -> bool:
        entry = self.entries[(server, camera)]
        return bool(self.store.get_legal_hold(entry.key, entry.version_id))

    def gaps_found(self) -> list[str]:
        code, report, _ = self.cli("retention", "audit")
        gaps = [f"{f['key']} {f['detail']}" for f in report["findings"] if f["problem"] == "hold-gap"]
        assert (code == 0) == report["ok"]
        return gaps

    def case(self, server: str, name: str, camera: int, on: str | None = None) -> str:
        """A case on `server` with a bookmark 10:00-10:05 of DAY on `camera` (of server `on`,
        as a server-qualified item, when given): the case's guid."""
        start = DAY + timedelta(hours=10)
        with ExacqClient(self.sims[server].url, "admin", PASSWORD) as ev:
            guid = ev.cases.create(name).guid
            if on is None:
                ev.bookmarks.create(f"{name} bookmark", camera, start, start + timedelta(minutes=5), case=guid)
                return guid
        bookmark(self.sims[server].url, f"{name} bookmark", camera, on, start, start + timedelta(minutes=5), guid)
        return guid

    def delete_case(self, server: str, guid: str) -> None:
        with ExacqClient(self.sims[server].url, "admin", PASSWORD) as ev:
            ev.cases.delete(guid)


def bookmark(url: str, name: str, camera: int, server: str, start: datetime, end: datetime, case: str) -> None:
    """A bookmark whose item is `camera` of `server` (the simulator's `itemServer`)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        login = http.post("/login.web", data={"u": "admin", "p": PASSWORD, "s": "0", "responseVersion": "2"})
        session = login.json()["sessionId"]
        params = {"s": session, "name": name, "start": start.isoformat(), "end": end.isoformat()}
        answer = http.post("/bookmarks.web", params={**params, "itemId": camera, "itemServer": server, "case": case})
        assert answer.json()["success"], answer.text


@pytest.fixture
def site(make_sim, make_store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ev-ingest")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    return lambda **nvr1: Site(make_sim, make_store, tmp_path, capsys, **nvr1)


def test_a_case_holds_the_camera_of_the_server_its_bookmark_names(site):
    hq = site()
    theft = hq.case("nvr1", "Theft 3", LOBBY, on="nvr2")
    code, holds, _ = hq.sync()
    assert code == 0 and holds["held"] == 1 and holds["gaps"] == []
    assert hq.held("nvr2", LOBBY)
    assert not hq.held("nvr1", LOBBY)  # the same camera id on the case's own server is other video
    assert hq.sync()[1]["held"] == 0  # idempotent
    # A case of nvr2 on its own camera; then nvr2 cannot be reached while the case goes.
    fire = hq.case("nvr2", "Fire 8", PARKING)
    assert hq.sync()[1]["held"] == 1 and hq.held("nvr2", PARKING)
    hq.delete_case("nvr2", fire)
    hq.write_config(down="nvr2")
    code, holds, err = hq.sync()
    assert code == 1 and "holds of nvr2 may miss video" in err
    assert holds["released"] == 0 and holds["deferred"] == 1 and hq.held("nvr2", PARKING)  # nothing let go blind
    assert hq.held("nvr2", LOBBY)  # nvr1's case still holds it
    assert hq.gaps_found() == ["holds/nvr2 unlisted-server: its cases and bookmarks could not be listed"]
    hq.write_config()
    code, holds, _ = hq.sync()
    assert code == 0 and holds["released"] == 1 and not hq.held("nvr2", PARKING)
    assert hq.gaps_found() == []
    hq.delete_case("nvr1", theft)
    assert hq.sync()[1]["released"] == 1 and not hq.held("nvr2", LOBBY)


def test_case_bookmarks_the_list_leaves_out_and_items_on_unknown_servers_are_gaps(site):
    hq = site(unlisted_case_bookmarks=True)
    burglary = hq.case("nvr1", "Burglary 5", LOBBY)
    code, holds, err = hq.sync(via="archive")  # end to end through the night's own command
    assert code == 1 and holds["held"] == 0 and len(holds["gaps"]) == 1
    assert "no listed bookmark names any" in err and "Burglary 5" in err
    assert hq.gaps_found() == [
        "holds/nvr1 unlisted-case-bookmarks: open case(s) Burglary 5: no listed bookmark names any"
    ]
    trail = set(hq.store.list_keys("audit/"))
    assert hq.sync()[0] == 1 and set(hq.store.list_keys("audit/")) == trail  # the same gap: nothing new written
    hq.delete_case("nvr1", burglary)
    assert hq.sync()[0] == 0 and hq.gaps_found() == []  # a sync without the gap clears the finding
    hq.case("nvr2", "Assault 2", LOBBY, on="nvr9")
    code, holds, err = hq.sync(via="archive")
    assert code == 1 and holds["held"] == 0 and "server 'nvr9', which site does not archive" in err
    assert [g.split(":")[0] for g in hq.gaps_found()] == ["holds/nvr2 unknown-server"]
    assert not any(hq.held(server, camera) for server, camera in hq.entries)
