"""A sandbox archive for notebooks: the embedded simulator and S3 store, with a few days archived.

    from pipelines.sandbox import Sandbox
    with Sandbox(days=2) as box:          # starts both, archives the last 2 days if empty
        archive = box.archive             # a pipelines.analytics.datasets.Archive over the bucket
        client = box.client()             # an ExacqClient on the simulator

Runs the same steps as the nightly DAG (`pipelines.nightly.run.run_nightly`), without Airflow.
Small by default (2 cameras, 160x120 at 5 fps) so a notebook starts in a few minutes
(two days of two cameras archived and analysed; a `folder` reuses them).

Without `folder` it works in a new temporary folder and removes it on exit (nothing is
left in /tmp); with `folder` the archive is kept there and reused by the next sandbox on
that folder (a cache on purpose). Its records are signed with a key of its own
(`<folder>/signing.pem`), never the deployment's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from ev_ingest import clock
from ev_ingest.client import ExacqClient
from ev_ingest.simulator import SimulatorConfig, SimulatorServer
from ev_ingest.store import ArchiveStore, EmbeddedS3, StoreSettings
from ev_ingest.store.signing import Signer
from pipelines.analytics.datasets import Archive
from pipelines.config import PipelineConfig
from pipelines.nightly.run import run_nightly

SITE = "sandbox"


class Sandbox:
    def __init__(
        self,
        days: int = 2,
        cameras: int = 2,
        resolution: tuple[int, int] = (160, 120),
        fps: int = 5,
        folder: str | Path | None = None,
    ) -> None:
        self.days = days
        self._password = secrets.token_urlsafe(12)
        self._secret = secrets.token_urlsafe(18)
        self._owned = folder is None  # a folder we made is ours to remove
        self._folder = Path(folder or tempfile.mkdtemp(prefix="ev-sandbox-"))
        self._folder.mkdir(parents=True, exist_ok=True)
        self._key = self._folder / "signing.pem"
        if not self._key.exists():
            Signer.generate().write(self._key)
        # The simulator's clock stands still at yesterday noon (UTC) for the sandbox's life,
        # so its recordings and searches do not move under a notebook; derived from the one
        # clock, never a calendar date (retention dates must lie in the store's future).
        self.now = clock.midnight(1) + timedelta(hours=12)
        self.sim = SimulatorServer(
            SimulatorConfig(
                port=0,
                cameras=cameras,
                width=resolution[0],
                height=resolution[1],
                fps=fps,
                frozen_now=self.now,
                export_rate=1e6,
                users_file=self._users(),
            )
        )
        self.s3 = EmbeddedS3(self._folder / "s3", secret_key=self._secret)

    def _users(self) -> Path:
        path = self._folder / "users.txt"
        path.write_text(f"admin:{self._password}\n")
        path.chmod(0o600)
        return path

    def __enter__(self) -> Sandbox:
        self.s3.start()
        self.sim.start()
        self.store = ArchiveStore(
            StoreSettings(
                bucket="sandbox-archive",
                endpoint_url=self.s3.endpoint_url,
                access_key=self.s3.access_key,
                secret_key=self._secret,
            )
        )
        self.store.ensure_bucket()
        self.archive = Archive.from_store(self.store)
        if not self.store.list_keys("manifests/"):
            self.fill()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()
        self.s3.stop()
        if self._owned:
            shutil.rmtree(self._folder, ignore_errors=True)

    def config(self) -> PipelineConfig:
        return PipelineConfig.model_validate(
            {
                "sites": [
                    {
                        "name": SITE,
                        "timezone": "UTC",
                        "servers": [
                            {
                                "name": "sim",
                                "url": f"exacqvision://admin@{self.sim.url.split('://')[1]}",
                                "password_env": "EV_SANDBOX_PASSWORD",
                            }
                        ],
                    }
                ],
                "export": {"chunk_minutes": 360, "poll_interval_s": 0.05},
                "store": {"bucket": self.store.bucket, "endpoint_url": self.s3.endpoint_url},
                "retention": {"mode": "GOVERNANCE", "days": 30},
                "motion": {"target_width": 160},
                "signing": {"key_file": str(self._key)},
            }
        )

    def fill(self) -> list[Any]:
        """Archive the `days` whole days before the sandbox's clock (UTC)."""
        os.environ["EV_SANDBOX_PASSWORD"] = self._password
        end = self.now.replace(hour=0)
        return [
            run_nightly(
                self.config(), self.store, SITE, end - timedelta(days=d + 1), end - timedelta(days=d), workers=None
            )
            for d in range(self.days)
        ]

    def client(self) -> ExacqClient:
        return ExacqClient(self.sim.url, "admin", self._password)
