"""What the audit reports: its findings (each about one key), and the report that
collects them (`guard`: whatever one check raises becomes a finding, never the end)."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pipelines.compliance.records import OBJECT_ERRORS, error_line


@dataclass
class Finding:
    key: str
    problem: str
    detail: str = ""


@dataclass
class AuditReport:
    site: str | None
    checked: int = 0
    verified: int = 0
    records: int = 0  # manifest versions and audit records whose signature and place were checked
    findings: list[Finding] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)  # chain -> last place seen
    audit_key: str | None = None
    checkpoint: dict[str, Any] | None = None  # signed, of every chain read: keep it outside the bucket
    claims: dict[str, dict[int, str | None]] = field(default_factory=dict, repr=False)  # chain -> place -> hash
    # fingerprint -> how long the objects of the manifests it signed are kept (None: unlocked)
    signed_until: dict[str, datetime | None] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "checked": self.checked,
            "verified": self.verified,
            "records": self.records,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "heads": self.heads,
            "audit_key": self.audit_key,
            "checkpoint": self.checkpoint,
        }

    def guard(self, key: str, step: Callable[[], list[Finding] | None]) -> None:
        """Run one check; whatever it raises becomes a finding about `key`."""
        try:
            self.findings.extend(step() or [])
        except OBJECT_ERRORS as exc:
            self.findings.append(Finding(key, "unreadable", error_line(exc)))
