"""Run the simulator: in a background thread on a free port (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from ev_ingest.simulator.app import build_app
from ev_ingest.simulator.config import SimulatorConfig
from ev_ingest.simulator.faults import DroppedConnection
from ev_ingest.simulator.state import SimulatorState


class _QuietDrops(logging.Filter):
    """Simulated connection drops are expected: keep their tracebacks out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _listening_socket(host: str) -> socket.socket:
    """A socket bound to a free port, held until the server takes it over: a port merely
    found free can be taken by anyone (another server starting, an outgoing connection)
    before the server binds it."""
    sock = socket.socket()  # no SO_REUSEADDR: nobody else may bind the port meanwhile
    sock.bind((host, 0))
    return sock


def create_app(config: SimulatorConfig | None = None) -> Any:
    """The ASGI application (with fault injection around it)."""
    return build_app(config or SimulatorConfig())


class SimulatorServer:
    """A simulator on a real socket in a background thread; a context manager.

    >>> with SimulatorServer(SimulatorConfig(port=0, cameras=2)) as sim:
    ...     print(sim.url)
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        config = config or SimulatorConfig(port=0)
        self._socket: socket.socket | None = None
        if config.port == 0:
            self._socket = _listening_socket(config.host)
            config = config.model_copy(update={"port": self._socket.getsockname()[1]})
        self.config = config
        self.app = create_app(config)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=config.host,
                port=config.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                date_header=False,  # the app stamps its own (possibly skewed) clock
                ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
                ssl_keyfile=str(config.tls_key) if config.tls_key else None,
                timeout_keep_alive=30,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.config.host}:{self.config.port}"

    @property
    def state(self) -> SimulatorState:
        return self.app.state  # type: ignore[no-any-return]

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        # The held socket on a first start; a restart binds the same port again by number.
        held = [self._socket] if self._socket is not None and self._socket.fileno() != -1 else None
        self._thread = threading.Thread(target=self._server.run, args=(held,), name="ev-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()  # also when never started

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(config: SimulatorConfig) -> None:
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="info",
        lifespan="off",
        access_log=False,  # request lines carry session ids (`?s=`): no secrets in logs
        date_header=False,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
    )
