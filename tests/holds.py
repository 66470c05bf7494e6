"""The hold sync of a one-server site, as tests call it (`pipelines.compliance.case_holds`)."""

from __future__ import annotations

from typing import Any

from pipelines.compliance import case_holds


def sync_holds(client: Any, store: Any, audit_log: Any, server: str = "nvr1", site: str = "HQ") -> dict[str, int]:
    listing = case_holds.list_cases(client, server)
    return case_holds.sync_legal_holds([listing], store, site, audit_log, [server]).counts()
