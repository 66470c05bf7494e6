"""`ExacqVisionHook`: an Airflow connection (conn type `exacqvision`) turned into a client.

Connection fields: host, port, login, password; schema `https` for TLS (default http);
extra: `{"server_id": "0", "tls_verify": true, "ca_file": "/path/ca.pem", "api_prefix": "/v1",
"max_concurrency": 4}`. Credentials come from the connection (the secrets backend), never
from task arguments, so they stay out of XCom and rendered templates.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from ev_ingest.client import AsyncExacqClient, ClientSettings, ExacqClient


class ExacqVisionHook(BaseHook):
    conn_name_attr = "exacqvision_conn_id"
    default_conn_name = "exacqvision_default"
    conn_type = "exacqvision"
    hook_name = "exacqVision"

    def __init__(self, exacqvision_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exacqvision_conn_id = exacqvision_conn_id

    @staticmethod
    def settings_from_connection(conn: Any) -> ClientSettings:
        # Extra fields as the UI form stores them (`extra__exacqvision__<name>`) or plain.
        extra = {k.removeprefix("extra__exacqvision__"): v for k, v in (conn.extra_dejson or {}).items()}
        scheme = "https" if (conn.schema or "").lower() == "https" else "http"
        port = f":{conn.port}" if conn.port else ""
        return ClientSettings.build(
            base_url=f"{scheme}://{conn.host}{port}",
            username=conn.login,
            password=conn.password,
            server_id=str(extra.get("server_id", "0")),
            tls_verify=extra.get("tls_verify", True),
            ca_file=extra.get("ca_file"),
            api_prefix=extra.get("api_prefix"),
            max_concurrency=extra.get("max_concurrency"),
        )

    def settings(self) -> ClientSettings:
        return self.settings_from_connection(self.get_connection(self.exacqvision_conn_id))

    def get_conn(self) -> ExacqClient:
        return ExacqClient(settings=self.settings())

    def get_async_conn(self) -> AsyncExacqClient:
        return AsyncExacqClient(settings=self.settings())

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Scheme (http or https)", "login": "User"},
            "placeholders": {"extra": '{"server_id": "0", "tls_verify": true}', "port": "80"},
        }
