"""The configured things, connected outside Airflow: a client for a recording server
(`connect`, the password from the environment) and the archive store (`open_store`,
credentials from boto3's chain). Under Airflow the hook and its connections do this.

The nightly steps, the hold sync and the CLI all connect here: one place, below them.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from ev_ingest.client import ClientSettings, ExacqClient
from ev_ingest.store import ArchiveStore, StoreSettings
from pipelines.config import PipelineConfig, ServerConfig


def connect(server: ServerConfig, **options: Any) -> ExacqClient:
    """A client for a configured server, outside Airflow: the password comes from the environment."""
    if not server.url:
        raise ValueError(f"server {server.name!r} has no url (in Airflow it uses its connection instead)")
    password = os.environ.get(server.password_env)
    settings = ClientSettings.from_url(
        server.url,
        username=server.username,
        password=password,
        max_concurrency=server.max_concurrent_exports + 2,
        **options,
    )
    return ExacqClient(settings=settings)


def open_store(config: PipelineConfig, **overrides: Any) -> ArchiveStore:
    """The archive store of the config, credentials from the environment (boto3's chain).

    For a store on this machine (a loopback `endpoint_url`: SeaweedFS, MinIO) credentials
    must be in the environment: without them boto3 would probe the cloud's instance
    metadata address for seconds before failing; this fails at once, in one line. (A
    remote endpoint may rightly rely on an instance role.)"""
    settings = StoreSettings.from_env(
        bucket=config.store.bucket, endpoint_url=config.store.endpoint_url, region=config.store.region, **overrides
    )
    host = urlsplit(settings.endpoint_url or "").hostname or ""
    local = host == "localhost" or host.startswith("127.") or host == "::1"
    if local and not (settings.access_key and settings.secret_key):
        raise ValueError(
            f"no credentials for the store at {settings.endpoint_url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return ArchiveStore(settings)
