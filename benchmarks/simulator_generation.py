"""Simulator cost: 24 hours of recordings for 8 cameras at 720p, and export download speed.

In one run, with an empty video-library cache (so the one-off GOP encoding counts):
a metadata search over 24 h for all 8 cameras, then an export of every camera-hour
(192 exports: create, wait for 100%, size known), timed end to end over HTTP through
our client (target: under 60 s); then one export downloaded over loopback with plain
httpx (target: over 300 MB/s), and the same interval exported twice to check that the
bytes are identical.

    .venv/bin/python benchmarks/simulator_generation.py [--cameras 8] [--hours 24]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    cache = tempfile.TemporaryDirectory()
    os.environ["EV_SIM_CACHE"] = cache.name  # cold: the library is encoded inside the timed part
    from ev_ingest.client import ExacqClient
    from ev_ingest.simulator import SimulatorConfig, SimulatorServer

    config = SimulatorConfig(port=0, cameras=args.cameras, width=1280, height=720, export_rate=1e9)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=args.hours)
    with (
        SimulatorServer(config) as sim,
        ExacqClient(sim.url, "admin", os.environ.get("EV_PASSWORD", "admin256"), max_concurrency=4) as client,
    ):
        began = time.perf_counter()
        cameras = [c.id for c in client.cameras.list()]
        found = client.search.metadata(cameras, start, end)
        recorded = sum(c.seconds for cam in cameras for c in found.clips(cam))
        sizes = []
        for camera in cameras:
            for hour in range(args.hours):
                a = start + timedelta(hours=hour)
                export_id = client.exports.create(camera, a, a + timedelta(hours=1))
                client.exports.wait(export_id, poll_interval=0.01)
                with httpx.stream(
                    "GET", f"{sim.url}/v1/export.web", params={"export": export_id, "action": "download"}
                ) as head:
                    sizes.append(int(head.headers["content-length"]))  # headers only: the body is not read
                client.exports.finish(export_id)
        generated = time.perf_counter() - began
        camera = cameras[0]
        ids = [client.exports.create(camera, end - timedelta(hours=3), end) for _ in range(2)]
        digests, rates = [], []
        for export_id in ids:
            client.exports.wait(export_id, poll_interval=0.01)
            digest, size = hashlib.sha256(), 0
            t0 = time.perf_counter()
            with httpx.stream(
                "GET", f"{sim.url}/v1/export.web", params={"export": export_id, "action": "download"}
            ) as answer:
                for chunk in answer.iter_raw(1 << 20):
                    size += len(chunk)
                    digest.update(chunk)
            rates.append(size / (time.perf_counter() - t0) / 1e6)
            digests.append(digest.hexdigest())
    print(
        f"\nsite               {args.cameras} cameras at 1280x720 25 fps, {args.hours} h each "
        f"({recorded / 3600:.0f} camera-hours recorded)"
    )
    print(f"search + {len(sizes)} exports  {generated:6.1f} s  (cold library cache; target < 60 s)")
    print(f"bytes exported     {sum(sizes) / 1e9:6.1f} GB  ({statistics_line(sizes)})")
    print(f"download (3 h)     {max(rates):6.0f} MB/s over loopback incl. SHA-256 (target > 300 MB/s)")
    print(f"deterministic      {'yes' if digests[0] == digests[1] else 'NO'} (two exports of the same interval)")
    cache.cleanup()
    return 0


def statistics_line(sizes: list[int]) -> str:
    return f"{min(sizes) / 1e6:.0f}-{max(sizes) / 1e6:.0f} MB per camera-hour"


if __name__ == "__main__":
    sys.exit(main())
