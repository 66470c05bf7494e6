"""The client against hostile and broken servers (tests/hostile.py, on a real socket): each
ends in one clear error, within the call's deadline, without holding what it is sent."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ev_ingest import clock
from ev_ingest.client import (
    ApiError,
    DownloadError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    SessionExpiredError,
    TransportError,
)
from tests.hostile import (
    CAMERAS,
    HostileServer,
    answer,
    deep_json,
    endless_chunked,
    giant_json,
    json_answer,
    native_parts,
    trickle,
)

START = datetime(2026, 1, 5, tzinfo=UTC)  # the hostile server does not look at times


def test_giant_json_is_refused_by_its_length(make_client):
    with HostileServer({"/config.web": giant_json(1 << 30)}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match=r"announces 1074 MB, over the 32 MiB"):
            client.cameras.list()


def test_endless_body_is_refused_at_the_cap(make_client):
    with HostileServer({"/config.web": endless_chunked}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match="grew past the limit"):
            client.cameras.list()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_trickled_answer_ends_at_the_call_deadline(make_client, where):
    prefix = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    if where == "headers":
        prefix = b"HTTP/1.1 200 OK\r\nX-Slow: "
    with HostileServer({"/config.web": trickle(prefix, 0.2)}) as server:
        client = make_client(server.url(deadline_s=1.5), max_retries=1)
        began = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"deadline of 1.5 s"):
            client.cameras.list()
        # Without the deadline this never ends (each byte resets the 60 s read timeout).
        assert time.monotonic() - began < 30


def test_huge_retry_after_is_not_obeyed(make_client):
    busy = lambda sock: answer(sock, b"{}", "503 Service Unavailable", {"Retry-After": "999999"})  # noqa: E731
    with HostileServer({"/config.web": busy}) as server:
        client = make_client(server.url(), max_retries=2)
        began = time.monotonic()
        with pytest.raises(ServerError, match="retries exhausted"):
            client.cameras.list()
        assert time.monotonic() - began < 60  # obeyed, it would be 11 days
        assert server.requests.count("/config.web") == 3


def test_trickled_download_is_given_up_and_leaves_nothing(make_client, tmp_path):
    export_id = "capability-5f1e2d"  # anyone holding it could download the export
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n"
    with HostileServer({"/export.web?action=download": trickle(head + b"\0" * 100, 0.2)}) as server:
        client = make_client(server.url(deadline_s=1.5))
        with pytest.raises(DownloadError, match=r"export #[0-9a-f]{10}: the server sends too slowly") as failed:
            client.exports.download(export_id, tmp_path / "clip.mp4")
    assert export_id not in str(failed.value)
    assert list(tmp_path.iterdir()) == []


def test_absurdly_deep_json_is_a_protocol_error(make_client):
    with HostileServer({"/config.web": deep_json(200_000)}) as server:
        client = make_client(server.url(), max_retries=0)
        with pytest.raises(ProtocolError, match="malformed JSON from /config.web"):
            client.cameras.list()


def test_native_part_with_a_huge_datalen_is_refused(make_client):
    part = b"--evframe\r\nContent-Type: video/h264\r\nDataLen: 8300000000\r\nIframe: 1\r\n\r\n"
    with HostileServer({"/video.web": native_parts([part], then_close=False)}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match="DataLen"):
            next(iter(client.video.native_frames(4593152)))


def test_stream_cut_mid_part_is_a_client_error_not_an_httpx_one(make_client):
    part = b"--evframe\r\nContent-Type: video/h264\r\nDataLen: 5000\r\nIframe: 1\r\n\r\n" + b"\0" * 100
    with HostileServer({"/video.web": native_parts([part])}) as server:  # then the connection closes
        client = make_client(server.url())
        with pytest.raises(TransportError, match="native stream of camera 4593152: the connection failed"):
            list(client.video.native_frames(4593152))


def test_search_answer_in_an_unknown_shape_raises_instead_of_finding_nothing(make_client):
    nested = {"search_id": "1", "frames": 90000, "videoInfo": [{"camera": 4593152, "recordings": [{"s": 1}]}]}
    with HostileServer({"/search.web": json_answer(nested)}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match="unrecognised answer to search of camera 4593152: videoInfo is not"):
            client.search.recordings(4593152, START, START + timedelta(hours=1))
    with HostileServer({"/search.web": json_answer({"cameras": {}})}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match="not a search answer"):
            client.search.recordings(4593152, START, START + timedelta(hours=1))


def test_planner_isolates_a_camera_whose_search_answers_in_an_unknown_shape():
    """A search answer whose clips carry other field names is that camera's failure (kind
    "plan", with the reason), never an "archived" day with no exports, and never its
    server's whole night (issue 25)."""
    from ev_ingest.client import ExacqClient
    from pipelines.nightly import steps
    from tests.conftest import pipeline_config

    day = clock.midnight(2)  # any ended interval: derived from now, not a date in the code
    shifted = {"search_id": "1", "frames": 10, "videoInfo": [{"clips": [{"begin": "x", "finish": "y"}]}]}
    with HostileServer({"/search.web": json_answer(shifted)}) as server:
        url = f"http://127.0.0.1:{server.port}"
        config = pipeline_config(SimpleNamespace(url=url))
        with ExacqClient(url, "admin", "pw") as client:
            planned = steps.plan(client, config, "HQ", "nvr1", day, day + timedelta(hours=1))
    assert planned.jobs == []
    [failure] = planned.failures
    assert (failure.kind, failure.camera_id, failure.server) == ("plan", 4593152, "nvr1")
    assert "unrecognised answer to search of camera 4593152: clips.0" in failure.error
    assert steps.Plan.from_dict(planned.as_dict()).failures == planned.failures  # survives XCom


@pytest.mark.parametrize("empty", [{}, {"success": True}, {"videoInfo": [{}]}, {"success": True, "videoInfo": []}])
def test_a_window_without_footage_is_no_recordings_not_an_error(make_client, empty, caplog):
    """Real servers leave the search keys out when a window has no footage (ExacqMan 8746a95)."""
    with HostileServer({"/search.web": json_answer(empty)}) as server:
        client = make_client(server.url())
        with caplog.at_level(logging.INFO, logger="ev_ingest.client.search"):
            assert client.search.recordings(4593152, START, START + timedelta(hours=1)) == []
    assert "camera 4593152: the server has no footage in the window" in caplog.text
    assert "/logout.web" not in server.requests  # no search id: nothing to close


@pytest.mark.parametrize(
    ("refusal", "error", "reason"),
    [
        ({"success": False}, ApiError, "search of camera 4593152"),  # a refusal (after one re-login)
        ({"success": "yes"}, ProtocolError, "not a successful search answer"),
        ([], ProtocolError, "not a successful search answer"),
        ({"cameras": {}}, ProtocolError, "not a search answer"),
        ({"videoInfo": [{"recordings": []}]}, ProtocolError, "videoInfo is not a list of"),
    ],
)
def test_a_refused_or_foreign_search_answer_is_still_an_error(make_client, refusal, error, reason):
    with HostileServer({"/search.web": json_answer(refusal)}) as server:
        client = make_client(server.url())
        with pytest.raises(error, match=reason) as raised:
            client.search.recordings(4593152, START, START + timedelta(hours=1))
    assert type(raised.value) is error


@pytest.mark.parametrize("status", ["404 Not Found", "400 Bad Request"])
def test_a_failing_search_close_is_logged_never_fatal(make_client, status, caplog):
    found = {
        "search_id": "secret-search-7",
        "frames": 10,
        "videoInfo": [{"clips": [{"startTime": "2026-01-05T10:00:00Z", "endTime": "2026-01-05T10:30:00Z"}]}],
    }
    routes = {"/search.web": json_answer(found), "/logout.web?search_id": lambda s: answer(s, b"nope", status)}
    with HostileServer(routes) as server:
        client = make_client(server.url())
        with caplog.at_level(logging.INFO):
            clips = client.search.recordings(4593152, START, START + timedelta(hours=1))
    assert [(c.start.hour, c.end.minute) for c in clips] == [(10, 30)]
    assert "/logout.web" in server.requests  # the close was tried
    assert "camera 4593152: closing its search failed" in caplog.text
    assert "secret-search-7" not in caplog.text  # the search id is a capability


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
@pytest.mark.parametrize("attack", ["giant", "endless", "deep"])
def test_the_command_stays_small_against_a_hostile_server(attack, tmp_path):
    """`ev-ingest cameras` in a process of its own: one clear line, exit 1, peak RSS < 300 MB."""
    behaviour = {"giant": giant_json(1 << 30), "endless": endless_chunked, "deep": deep_json(200_000)}[attack]
    with HostileServer({"/config.web": behaviour}) as server:
        probe = (
            "import resource, subprocess, sys\n"
            "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "print(done.stderr.strip())\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
        env.update(EV_URL=server.url(deadline_s=20), EV_PASSWORD="pw")
        out = subprocess.run(
            [sys.executable, "-c", probe, sys.executable, "-m", "pipelines.cli", "cameras"],
            capture_output=True, text=True, env=env, timeout=300,
        ).stdout.splitlines()  # fmt: skip
    code, peak_kb = map(int, out[0].split())
    assert code == 1 and len(out[1:]) == 1 and out[1].startswith("ev-ingest cameras: error: "), out
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert json.dumps(CAMERAS) not in out[1]


def _redirect(sock, location: str = "/login.web") -> None:
    answer(sock, b"", "302 Found", {"Location": location})  # no HTML to hint at a login page


def test_a_bare_redirect_to_the_login_page_logs_in_again(make_client):
    """A real server says "session gone" with a 302 to login.web (issue 25): log in once more, replay."""
    sent = iter([_redirect])
    routes = {"/config.web": lambda sock: next(sent, json_answer(CAMERAS))(sock)}
    with HostileServer(routes) as server:
        client = make_client(server.url())
        assert [c.id for c in client.cameras.list()] == [4593152]
    assert server.requests.count("/login.web") == 2
    assert server.requests.count("/config.web") == 2


def test_a_session_always_sent_to_the_login_page_is_expired_not_malformed(make_client):
    with HostileServer({"/config.web": _redirect}) as server:
        client = make_client(server.url())
        with pytest.raises(SessionExpiredError, match="sends a fresh session to its login page"):
            client.cameras.list()
    assert server.requests.count("/login.web") == 2  # one re-login, not a loop


def test_a_redirect_elsewhere_is_a_protocol_error(make_client):
    with HostileServer({"/config.web": lambda sock: _redirect(sock, "https://elsewhere.example/x")}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match=r"answered a redirect \(HTTP 302\)") as raised:
            client.cameras.list()
    assert type(raised.value) is ProtocolError
    assert server.requests.count("/login.web") == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_does_not_decode_is_a_client_error_not_an_httpx_one(make_client, encoding):
    garbage = lambda sock: answer(sock, b"\x1f\x8b not compressed at all", headers={"Content-Encoding": encoding})  # noqa: E731
    with HostileServer({"/config.web": garbage}) as server:
        client = make_client(server.url())
        with pytest.raises(ProtocolError, match="could not be decoded") as raised:
            client.cameras.list()
    assert type(raised.value) is ProtocolError
