"""Export download: our client against curl fetching the same URL, in one run.

Starts the simulator in its own process (720p cameras), creates an export of at least
`--size-gb` (1 GB by default) and downloads it, round-robin, each in a fresh process:
curl to /dev/null; curl piped into sha256sum; `ExacqClient.exports.download` to
/dev/null with SHA-256 on the way (the default) and without (`sha256=False`). Prints
MB/s, the like-for-like ratios (target >= 0.8) and our client's peak RSS (< 150 MB).

Why two ratios: SHA-256 runs at ~1.8 GB/s on one core here, and the simulator serving
the bytes takes most of the other of this machine's two cores, so any hashing client
(curl | sha256sum included) is bound by the hash, not by the transfer.

    .venv/bin/python benchmarks/client_download.py [--size-gb 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

PY = sys.executable


def start_simulator(password: str) -> tuple[subprocess.Popen[bytes], str]:
    from ev_ingest.simulator import free_port

    port = free_port()
    env = {**os.environ, "EV_PASSWORD": password}
    process = subprocess.Popen(
        [PY, "-m", "pipelines.cli", "simulator", "--port", str(port), "--cameras", "2", "--resolution", "1280x720"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/v1/login.web", params={"output": "json"}, timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the simulator did not start")


def ours(url: str, password: str, export_id: str, hashing: str = "sha256") -> dict:
    from ev_ingest.client import ExacqClient

    with ExacqClient(url, "admin", password) as client, open(os.devnull, "wb") as sink:
        began = time.perf_counter()
        result = client.exports.download(export_id, sink, sha256=hashing == "sha256")
        elapsed = time.perf_counter() - began
    return {
        "bytes": result.size,
        "elapsed": elapsed,
        "sha256": result.sha256,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def curl_sha256sum(url: str, export_id: str) -> dict:
    """curl | sha256sum: the command-line way to get the same bytes and their hash."""
    began = time.perf_counter()
    out = subprocess.run(
        f"curl -s '{url}/v1/export.web?export={export_id}&action=download' | sha256sum",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    return {"elapsed": time.perf_counter() - began, "sha256": out}


def curl(url: str, export_id: str) -> dict:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            os.devnull,
            "-w",
            "%{size_download} %{time_total}",
            f"{url}/v1/export.web?export={export_id}&action=download",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"bytes": int(out[0]), "elapsed": float(out[1])}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ours", nargs=4, metavar=("URL", "PASSWORD", "EXPORT", "HASHING"))
    args = parser.parse_args()
    if args.ours:
        print(json.dumps(ours(*args.ours)))
        return 0
    if not shutil.which("curl"):
        print("curl is not installed: apt-get install curl", file=sys.stderr)
        return 1
    password = secrets.token_urlsafe(12)
    process, url = start_simulator(password)
    try:
        from ev_ingest.client import ExacqClient

        with ExacqClient(url, "admin", password) as client:
            camera = client.cameras.list()[0].id
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            probe = client.exports.create(camera, end - timedelta(hours=1), end)
            client.exports.wait(probe, poll_interval=0.2)
            per_hour = (
                int(
                    httpx.head(f"{url}/v1/export.web", params={"export": probe, "action": "download"}).headers.get(
                        "content-length", 0
                    )
                    or 0
                )
                or curl(url, probe)["bytes"]
            )
            client.exports.finish(probe)
            hours = max(1, min(24 * 6, round(args.size_gb * 1e9 / per_hour + 0.5)))
            export_id = client.exports.create(camera, end - timedelta(hours=hours), end)
            client.exports.wait(export_id, poll_interval=0.2, timeout=600)
        print(f"export: {hours} h of 720p video from the simulator", file=sys.stderr)
        theirs, theirs_hashed, mine, mine_plain = [], [], [], []

        def run_ours(hashing: str) -> dict:
            answer = subprocess.run(
                [PY, __file__, "--ours", url, password, export_id, hashing], capture_output=True, text=True, check=True
            )
            return json.loads(answer.stdout.strip().splitlines()[-1])

        for _ in range(args.repeat):
            theirs.append(curl(url, export_id))
            mine.append(run_ours("sha256"))
            theirs_hashed.append(curl_sha256sum(url, export_id))
            mine_plain.append(run_ours("none"))
        size = mine[0]["bytes"]
        assert all(r["bytes"] == size for r in theirs + mine + mine_plain), "downloads differ in size"
        assert len({r["sha256"] for r in mine + theirs_hashed}) == 1, "downloads differ in content"

        def rate(runs: list[dict]) -> float:
            return statistics.median(size / r["elapsed"] for r in runs) / 1e6

        curl_rate, curl_hashed = rate(theirs), rate(theirs_hashed)
        ours_hashed, ours_plain = rate(mine), rate(mine_plain)
        peak = max(r["peak_rss_mb"] for r in mine + mine_plain)
        rows = [
            ("curl", curl_rate, ""),
            ("ev_ingest.client", ours_plain, f"(sha256=False)  ratio {ours_plain / curl_rate:.2f}"),
            ("curl | sha256sum", curl_hashed, ""),
            ("ev_ingest.client + SHA-256", ours_hashed, f"(the default)   ratio {ours_hashed / curl_hashed:.2f}"),
        ]
        print(f"\nexport size {size / 1e9:.2f} GB ({hours} h of 720p), medians of {args.repeat}")
        for name, value, note in rows:
            print(f"{name:<28}{value:8.0f} MB/s  {note}")
        print(f"hashing client vs plain curl: {ours_hashed / curl_rate:.2f} (the hash is the bound, see above)")
        print(f"client peak RSS             {peak:8.0f} MB  (target < 150 MB)")
    finally:
        process.terminate()
        process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
