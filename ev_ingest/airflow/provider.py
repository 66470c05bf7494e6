"""The Airflow provider entry point (`apache_airflow_provider` in pyproject.toml).

With ev-ingest installed, Airflow knows the `exacqvision` connection type (the CLI's
`connections add --conn-type exacqvision` and the UI's connection form), its hook and
its trigger, as it knows those of any provider package. Importing this module imports
nothing of Airflow: the provider manager calls `get_provider_info()` while it scans.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

HOOK = "ev_ingest.airflow.hooks.ExacqVisionHook"


def get_provider_info() -> dict[str, Any]:
    try:
        release = version("ev-ingest")
    except PackageNotFoundError:  # running from a source tree that was never installed
        release = "0.0.0"
    return {
        "package-name": "ev-ingest",
        "name": "exacqVision (ev-ingest)",
        "description": "exacqVision Web Service connections, hook and deferrable export trigger.",
        "versions": [release],
        "integrations": [{"integration-name": "exacqVision", "tags": ["service"]}],
        "hooks": [{"integration-name": "exacqVision", "python-modules": ["ev_ingest.airflow.hooks"]}],
        "triggers": [{"integration-name": "exacqVision", "python-modules": ["ev_ingest.airflow.triggers"]}],
        "connection-types": [
            {
                "connection-type": "exacqvision",
                "hook-class-name": HOOK,
                "hook-name": "exacqVision",
                # The UI's connection form: host, port, user and password are the standard
                # fields; TLS is the scheme; the rest are these extra fields.
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Scheme (http, or https for TLS)", "login": "User"},
                    "placeholders": {"host": "nvr1.example.internal", "port": "443", "schema": "https"},
                },
                "conn-fields": {
                    "server_id": {
                        "label": "Server id",
                        "description": "the exacqVision server id the login names (s=)",
                        "schema": {"type": ["string", "null"], "default": "0"},
                    },
                    "tls_verify": {
                        "label": "Verify TLS certificates",
                        "description": "leave on; turn off only on purpose",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "ca_file": {
                        "label": "CA file",
                        "description": "PEM file of a private CA, on the workers and the triggerer",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
