"""The simulator's configuration: a strict, typed model (unknown fields are errors)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ev_ingest.simulator.faults import FaultSpec

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "admin256"  # the simulator's documented default; EV_PASSWORD overrides it


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Literal["full", "strict"] = Field(
        "full",
        description="full: every path the client uses, guesses included; strict: only what the seed and the "
        "public clients show (text/plain 400s, varied camera formats, no guessed paths or invented fields)",
    )
    host: str = Field("127.0.0.1", description="Address to bind; loopback unless told otherwise.")
    port: int = Field(8780, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    cameras: int = Field(4, ge=1, le=256)
    idle_cameras: int = Field(0, ge=0, le=256, description="The last this many cameras recorded nothing at all.")
    seed: int = Field(1, ge=0)
    width: int = Field(1280, ge=64, le=3840, multiple_of=2)
    height: int = Field(720, ge=64, le=2160, multiple_of=2)
    fps: int = Field(25, ge=1, le=60)
    timezone_hours: int = Field(0, ge=-12, le=14, description="Server timezone as an hour offset from UTC.")
    retention_days: float = Field(7.0, gt=0, le=400, description="How far back recordings reach.")
    session_idle_s: float = Field(1800.0, gt=0, description="Idle time after which a session expires.")
    export_idle_s: float = Field(900.0, gt=0, description="Idle time after which an export is freed.")
    export_rate: float = Field(3600.0, gt=0, description="Seconds of video an export prepares per second.")
    max_range_days: float = Field(31.0, gt=0, description="Longest time range a request may ask for.")
    download_rate: float = Field(0.0, ge=0, description="Export downloads' bytes per second (0: unlimited).")
    short_exports: float = Field(
        0.0, ge=0, lt=1, description="Share of an export's recorded plays left off its end (a short export)."
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve https (with tls_key).")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    clock_offset_s: float = Field(0.0, description="The server clock's offset from the real one (clock skew).")
    unlisted_case_bookmarks: bool = Field(
        False, description="The bookmark list leaves out bookmarks that belong to a case (as some real servers do)."
    )
    footage: Path | None = Field(
        None,
        description="A folder of real clips beside their truth.json (tests/footage): the first footage_cameras "
        "cameras play one clip each, forward and back over the day, instead of the synthetic scene.",
    )
    footage_cameras: int = Field(2, ge=0, le=64, description="How many cameras play a clip of footage.")
    faults: str | None = Field(None, description="Fault spec, e.g. '5xx=0.05,reset=0.02,slow=0.1:2s'.")
    users_file: Path | None = Field(None, description="'user:password' lines; default: admin / EV_PASSWORD.")
    frozen_now: datetime | None = Field(None, description="A fixed clock for reproducible tests.")
    server_name: str = "ev-ingest simulator"
    serial: str = "18-62-66-32-4E-AF"
    version: str = "24.09.1.0"

    @field_validator("faults")
    @classmethod
    def _valid_faults(cls, value: str | None) -> str | None:
        FaultSpec.parse(value)
        return value

    def user_table(self) -> dict[str, str]:
        if self.users_file is None:
            return {DEFAULT_USER: os.environ.get("EV_PASSWORD") or DEFAULT_PASSWORD}
        users = {}
        for number, line in enumerate(self.users_file.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user:
                raise ValueError(f"{self.users_file}:{number}: expected 'user:password'")
            users[user] = password
        return users
