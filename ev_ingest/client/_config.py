"""Connection settings, named constants, and redaction of secrets.

Settings come from arguments, an `exacqvision://user:password@host:port/?...` URL, or
the environment (`EV_URL`, `EV_USER`, `EV_PASSWORD`, `EV_SERVER_ID`). The password is a
`SecretStr`: it never shows in a repr, a log line or an exception.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ev_ingest.client._exceptions import ConfigurationError

# Timeouts (seconds). Reads are long because exports stream for minutes; connects are short.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
WRITE_TIMEOUT = 60.0
POOL_TIMEOUT = 300.0  # waiting for a connection slot is bounded by the per-server limit
DEFAULT_TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT, write=WRITE_TIMEOUT, pool=POOL_TIMEOUT)

# Every call ends within this many seconds, retries and trickled bytes included (`_deadline`);
# a streamed body instead keeps to the floors below.
CALL_DEADLINE = 120.0
# Bodies held in memory are capped: a JSON answer, and one part of a native stream.
MAX_JSON_BYTES = 32 << 20
MAX_PART_BYTES = 32 << 20
# A download must keep up at least this rate (after CALL_DEADLINE of grace), a native
# stream must deliver a frame at least this often: a trickling server ends in an error.
MIN_DOWNLOAD_RATE = 64 << 10
MAX_FRAME_GAP = READ_TIMEOUT
MAX_DOWNLOAD_BYTES = 1 << 40  # an endless body must not fill the disk either

# Retries: bounded, exponential with full jitter, idempotent calls only.
MAX_RETRIES = 4
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 8.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})

# Per-server concurrency: requests in flight at once (downloads count while they stream).
DEFAULT_MAX_CONCURRENCY = 4

# Exports.
EXPORT_POLL_INTERVAL = 1.0
EXPORT_WAIT_TIMEOUT = 1800.0
EXPORT_STALL_POLLS = 120  # polls in a row without progress before we call the export stuck
DOWNLOAD_CHUNK = 1 << 20
DOWNLOAD_RESUMES = 5  # how often a dropped download resumes (Range) or restarts


class ClientSettings(BaseModel):
    """Where the server is and how to talk to it. Strict: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="http(s)://host:port of the exacqVision Web Service")
    username: str = Field(min_length=1)
    password: SecretStr
    server_id: str = Field("0", description="Server id sent to login.web as `s` (0 for a single server)")
    tls_verify: bool = Field(True, description="Verify TLS certificates (on by default)")
    ca_file: Path | None = Field(None, description="A private CA bundle to verify the server with")
    api_prefix: str = Field("/v1", description="'/v1' for current servers, '' for old unversioned ones")
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1, le=64)
    max_retries: int = Field(MAX_RETRIES, ge=0, le=10)
    deadline_s: float = Field(CALL_DEADLINE, gt=0, le=3600, description="Total time one call may take")

    def verify(self) -> bool | ssl.SSLContext:
        """What httpx verifies with: the system's CAs, a private CA's context, or (explicitly) nothing."""
        if self.ca_file is not None:
            if not self.ca_file.is_file():
                raise ConfigurationError(f"ca_file {self.ca_file} does not exist")
            return ssl.create_default_context(cafile=str(self.ca_file))  # httpx deprecated a bare path
        return self.tls_verify

    @classmethod
    def build(cls, **values: object) -> ClientSettings:
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            # pydantic's message may echo input values; name the fields only.
            fields = ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"invalid exacqVision client settings: {fields}") from None

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> ClientSettings:
        """Parse `exacqvision://user:password@host:port/?server_id=0&tls_verify=true&tls=false`.

        `deadline_s=` sets the total time one call may take (default 120 s).

        `http://` and `https://` URLs are accepted too. `tls=true` (or the `exacqvisions`
        scheme) selects https; `ca_file=` names a private CA bundle.
        """
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.scheme not in ("exacqvision", "exacqvisions", "http", "https"):
            raise ConfigurationError("the URL scheme must be exacqvision://, http:// or https://")
        if not parts.hostname:
            raise ConfigurationError("the URL has no host")
        secure = parts.scheme in ("https", "exacqvisions") or _truthy(query.get("tls", "false"))
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = f":{parts.port}" if parts.port else ""
        values: dict[str, object] = {
            "base_url": f"{'https' if secure else 'http'}://{host}{port}",
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "server_id": query.get("server_id"),
            "tls_verify": _truthy(query["tls_verify"]) if "tls_verify" in query else None,
            "ca_file": query.get("ca_file"),
            "api_prefix": query.get("api_prefix"),
            "deadline_s": query.get("deadline_s"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(**values)

    @classmethod
    def from_env(cls, **overrides: object) -> ClientSettings:
        url = os.environ.get("EV_URL")
        if not url:
            raise ConfigurationError("EV_URL is not set (e.g. exacqvision://admin@127.0.0.1:8780)")
        env = {
            "username": os.environ.get("EV_USER"),
            "password": os.environ.get("EV_PASSWORD"),
            "server_id": os.environ.get("EV_SERVER_ID"),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_url(url, **env)


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


# --- redaction ---------------------------------------------------------------------

# Export ids are capabilities too: anyone holding one downloads the export without a session.
_SECRET_PARAMS = re.compile(
    r"(?i)([?&;](?:s|p|search_id|session_id|auth|token|password|sessionId|export|export_id)=)[^&;#\s\"']*"
)
_USERINFO = re.compile(r"(?i)(\w+://[^:/@\s]+:)[^@/\s]+@")


def redact(text: str) -> str:
    """Replace session ids, passwords and URL credentials in `text` with `***`."""
    return _USERINFO.sub(r"\1***@", _SECRET_PARAMS.sub(r"\1***", text))


def redact_url(url: httpx.URL | str) -> str:
    return redact(str(url))


def export_label(export_id: str) -> str:
    """How an export is named in messages and logs: a stable tag, not the capability itself."""
    return f"export #{hashlib.sha256(export_id.encode()).hexdigest()[:10]}"


class RedactingFilter(logging.Filter):
    """Redacts secrets from httpx's request log lines (it logs full URLs at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(str(a)) if isinstance(a, str | httpx.URL) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(RedactingFilter())
