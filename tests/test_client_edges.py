"""Client behaviour a real server cannot be made to show on demand (httpx.MockTransport),
settings parsing, redaction and pickling of errors, and the per-server concurrency limit."""

from __future__ import annotations

import json
import pickle
import threading
import traceback
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ev_ingest.client import (
    AuthenticationError,
    ClientSettings,
    ConfigurationError,
    ExacqClient,
    NotExacqVisionError,
    NotFoundError,
    ProtocolError,
    ServerError,
    redact,
)
from tests.conftest import FROZEN_NOW, PASSWORD

SESSION = "0dff389d-9e47-466b-88da-c9fb175015b1"


def mock_client(handler, **kwargs) -> ExacqClient:
    return ExacqClient("http://exacq.test", "admin", PASSWORD, transport=httpx.MockTransport(handler), **kwargs)


def login_ok(request: httpx.Request) -> httpx.Response | None:
    if request.url.path.endswith("login.web"):
        # The seed's sample spells it sessionID: accept both spellings.
        return httpx.Response(200, json={"success": True, "sessionID": SESSION})
    return None


def test_retry_after_is_honoured_and_retries_are_bounded(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr("ev_ingest.client._client.time.sleep", sleeps.append)
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := login_ok(request)) is not None:
            return answer
        calls["n"] += 1
        if calls["n"] < 3:
            return httpx.Response(503, headers={"Retry-After": "1.5"})
        return httpx.Response(200, json={"timezone": 2, "Cameras": [{"id": 5898496, "name": "Head 1"}]})

    with mock_client(handler) as client:
        assert client.cameras.list()[0].id == 5898496
    assert sleeps == [1.5, 1.5]

    def always_down(request: httpx.Request) -> httpx.Response:
        return login_ok(request) or httpx.Response(502)

    sleeps.clear()
    with mock_client(always_down, max_retries=3) as client, pytest.raises(ServerError, match="retries exhausted"):
        client.cameras.list()
    assert len(sleeps) == 3 and all(0 <= s <= 8 for s in sleeps)


def test_export_create_is_not_replayed_after_a_server_error(monkeypatch):
    monkeypatch.setattr("ev_ingest.client._client.time.sleep", lambda s: None)
    creates = []

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := login_ok(request)) is not None:
            return answer
        if "config.web" in request.url.path:
            return httpx.Response(200, json={"timezone": 0, "Cameras": []})
        if "export.web" in request.url.path:
            creates.append(request)
        return httpx.Response(500)

    start = datetime(2026, 1, 1, tzinfo=UTC)
    with mock_client(handler) as client, pytest.raises(ServerError):
        client.exports.create(1, start, start + timedelta(hours=1))
    assert len(creates) == 1  # a 500 may have created it: replaying could orphan a second export


def test_html_login_page_means_not_exacqvision():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html><body>Welcome to nginx!</body></html>")

    with mock_client(handler) as client, pytest.raises(NotExacqVisionError, match="did not answer JSON"):
        client.cameras.list()


def test_expired_session_gets_html_then_relogin_once():
    logins = []
    sessions = iter(["first-session-id", "second-session-id"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("login.web"):
            logins.append(1)
            return httpx.Response(200, json={"success": True, "sessionId": next(sessions)})
        if request.url.params["s"] == "first-session-id":
            return httpx.Response(200, html="<html>login</html>")  # the login page: session gone
        return httpx.Response(200, json={"timezone": 0, "Cameras": [{"id": 7}]})

    with mock_client(handler) as client:
        assert client.cameras.list()[0].id == 7
    assert len(logins) == 2


def test_html_where_json_expected_after_relogin_is_a_protocol_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return login_ok(request) or httpx.Response(200, html="<html>maintenance</html>")

    with mock_client(handler) as client, pytest.raises(ProtocolError, match="HTML"):
        client.cameras.list()


def test_malformed_json_is_retried_then_reported(monkeypatch):
    monkeypatch.setattr("ev_ingest.client._client.time.sleep", lambda s: None)

    def handler(request: httpx.Request) -> httpx.Response:
        return login_ok(request) or httpx.Response(
            200, content=b'{"Cameras": [', headers={"content-type": "application/json"}
        )

    with mock_client(handler, max_retries=2) as client, pytest.raises(ProtocolError, match="malformed JSON"):
        client.cameras.list()


def test_settings_from_url_and_env(monkeypatch, tmp_path):
    settings = ClientSettings.from_url("exacqvision://op%40site:p%3Ass@nvr.example:8443/?server_id=2&tls=true")
    assert settings.base_url == "https://nvr.example:8443" and settings.username == "op@site"
    assert settings.password.get_secret_value() == "p:ss" and settings.server_id == "2"
    assert settings.tls_verify is True  # on by default
    assert "p:ss" not in repr(settings)
    ca = tmp_path / "ca.pem"
    private = ClientSettings.from_url(f"https://nvr:443?ca_file={ca}", username="u", password="x")
    with pytest.raises(ConfigurationError, match="ca.pem does not exist"):
        private.verify()  # a typo in the CA path is named, not a vague TLS failure later
    # (test_tls.py verifies a real https server with a private CA)
    assert ClientSettings.from_url("exacqvision://u:x@h/?tls_verify=false").verify() is False
    monkeypatch.setenv("EV_URL", "exacqvision://127.0.0.1:8780")
    monkeypatch.setenv("EV_USER", "admin")
    monkeypatch.setenv("EV_PASSWORD", "from-env")
    monkeypatch.setenv("EV_SERVER_ID", "3")
    env = ClientSettings.from_env()
    assert env.base_url == "http://127.0.0.1:8780" and env.server_id == "3"
    assert env.password.get_secret_value() == "from-env"
    with pytest.raises(ConfigurationError, match="scheme"):
        ClientSettings.from_url("ftp://x")
    with pytest.raises(ConfigurationError, match="password") as caught:
        ClientSettings.from_url("exacqvision://user@host")
    assert "user@host" not in str(caught.value)


def test_redaction():
    text = "GET http://h/v1/config.web?s=abc123&output=json and exacqvision://admin:hunter2@h/ p=hunter2"
    assert redact(text) == "GET http://h/v1/config.web?s=***&output=json and exacqvision://admin:***@h/ p=hunter2"


def test_errors_pickle_and_hide_secrets(sim):
    with ExacqClient(sim.url, "admin", PASSWORD) as client:
        client.cameras.list()
        session = client._session_id
        try:
            client.search.recordings(99, FROZEN_NOW - timedelta(hours=1), FROZEN_NOW)
        except NotFoundError as exc:
            error = exc
            printed = "".join(traceback.format_exception(exc))
    assert session not in printed and PASSWORD not in printed and "s=***" in printed
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is NotFoundError and clone.status == 404 and str(clone) == str(error)
    with ExacqClient(sim.url, "admin", "wrong-" + PASSWORD) as bad:
        with pytest.raises(AuthenticationError) as caught:
            bad.cameras.list()
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))
    assert PASSWORD not in json.dumps(caught.value.__dict__)


def test_concurrency_limit_holds_at_the_server(make_sim):
    server = make_sim(faults="slow=1.0:50ms")
    with ExacqClient(server.url, "admin", PASSWORD, max_concurrency=3) as client:
        client.cameras.list()
        threads = [threading.Thread(target=client.cameras.list) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stats = httpx.get(server.url + "/_sim/stats").json()
    assert stats["requests"] >= 13 and stats["peak_in_flight"] == 3


def test_the_docs_path_table_is_the_code_table():
    """The docs' path table, with each path's evidence, is generated from paths.TABLE."""
    from pathlib import Path

    from ev_ingest.client import paths

    page = (Path(__file__).parents[1] / "docs" / "client.md").read_text()
    assert paths.markdown_table() in page
    assert {p.evidence for p in paths.TABLE} == {"CONFIRMED", "OBSERVED", "SEED", "GUESS"}


def test_bookmark_cameras_from_either_shape_and_none_is_an_error():
    from ev_ingest.client.models import Bookmark

    assert Bookmark.model_validate({"guid": "a", "itemType": 0, "itemId": 4593152}).camera_ids == [4593152]
    assert Bookmark.model_validate({"guid": "b", "items": [{"type": 0, "id": 4593408}]}).camera_ids == [4593408]
    with pytest.raises(ValueError, match="names no camera"):
        Bookmark.model_validate({"guid": "c", "itemType": 2, "itemId": 7}).camera_ids  # noqa: B018
