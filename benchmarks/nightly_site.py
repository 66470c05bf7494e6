"""The nightly run for growing sites: wall time, bytes per second into S3, scaling with cameras.

For each camera count, a fresh simulator and SeaweedFS store, and one nightly archival
of `--hours` (24 by default) through the same steps as the DAGs (`run_nightly`:
plan -> export into S3 with SHA-256 -> manifest -> motion summaries), timed in two
parts: archiving (exports into S3) and summarising (motion).

    .venv/bin/python benchmarks/nightly_site.py --cameras 1 2 4 --resolution 1280x720 --fps 25 --hours 24

Disk: each 720p camera-hour of the simulator is about 330 MB; size `--hours` and
`--cameras` to the free space (16 cameras x 24 h at 720p is about 130 GB).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cameras: int, width: int, height: int, fps: int, hours: int) -> dict[str, float]:
    from ev_ingest.simulator import SimulatorConfig, SimulatorServer
    from ev_ingest.store import ArchiveStore, EmbeddedS3, StoreSettings
    from pipelines.config import PipelineConfig
    from pipelines.nightly import motion_step
    from pipelines.nightly.run import run_nightly

    password, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(16)
    os.environ["EV_BENCH_PASSWORD"] = password
    os.environ["EV_PASSWORD"] = password
    with (
        tempfile.TemporaryDirectory(dir=ROOT / ".cache") as folder,
        EmbeddedS3(Path(folder) / "s3", secret_key=secret) as s3,
        SimulatorServer(
            SimulatorConfig(port=0, cameras=cameras, width=width, height=height, fps=fps, export_rate=1e6)
        ) as sim,
    ):
        config = PipelineConfig.model_validate(
            {
                "sites": [
                    {
                        "name": "bench",
                        "servers": [
                            {
                                "name": "sim",
                                "password_env": "EV_BENCH_PASSWORD",
                                "url": f"exacqvision://admin@{sim.url.split('://')[1]}",
                            }
                        ],
                    }
                ],
                "export": {"chunk_minutes": 60, "poll_interval_s": 0.05},
                "store": {"bucket": "bench-nightly", "endpoint_url": s3.endpoint_url},
            }
        )
        store = ArchiveStore(
            StoreSettings(
                bucket="bench-nightly", endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=secret
            )
        )
        store.ensure_bucket()
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        began = time.perf_counter()
        result = run_nightly(config, store, "bench", end - timedelta(hours=hours), end, summarize=False)
        archived = time.perf_counter() - began
        began = time.perf_counter()
        for entry in result.manifest.exports():
            motion_step.summarize_export(store, config, "bench", entry)
        summarised = time.perf_counter() - began
        size = sum(e.size for e in result.manifest.exports())
    return {
        "exports": len(result.manifest.exports()),
        "failed": len(result.failures),
        "bytes": size,
        "archive_s": archived,
        "motion_s": summarised,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.split("x"))
    (ROOT / ".cache").mkdir(exist_ok=True)
    print(f"site: {args.resolution} @ {args.fps} fps, {args.hours} h per camera, hourly exports, motion gated")
    print(f"{'cameras':>8}{'exports':>9}{'GB':>8}{'archive s':>11}{'MB/s to S3':>12}{'motion s':>10}{'total s':>9}")
    base = None
    for count in args.cameras:
        r = run(count, width, height, args.fps, args.hours)
        total = r["archive_s"] + r["motion_s"]
        base = base or total / count
        print(
            f"{count:>8}{r['exports']:>9}{r['bytes'] / 1e9:>8.2f}{r['archive_s']:>11.1f}"
            f"{r['bytes'] / r['archive_s'] / 1e6:>12.0f}{r['motion_s']:>10.1f}{total:>9.1f}"
            f"   ({total / count / base:.2f}x the per-camera time of the first row)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
