"""Stand-ins for what a site runs, for demos, tests and development: `ev-ingest simulator`
(an exacqVision look-alike) and `ev-ingest s3 serve` (the embedded SeaweedFS store).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from pipelines.cli.common import EXIT_OK, CliError


def check_port_free(host: str, port: int) -> None:
    """A clear error before anything starts (and before anything claims to listen there)."""
    probe = socket.socket()
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    finally:
        probe.close()


def cmd_simulator(args: argparse.Namespace) -> int:
    from ev_ingest.simulator import SimulatorConfig
    from ev_ingest.simulator.server import serve_forever

    width, _, height = args.resolution.partition("x")
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        cameras=args.cameras,
        seed=args.seed,
        width=int(width),
        height=int(height),
        fps=args.fps,
        faults=args.faults,
        profile=args.profile,
        users_file=args.users,
        timezone_hours=args.timezone,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        footage=args.footage,
        footage_cameras=args.footage_cameras,
    )
    check_port_free(args.host, args.port)
    scheme = "https" if args.tls_cert else "http"
    print(
        f"exacqVision simulator on {scheme}://{args.host}:{args.port} ({args.cameras} cameras, {args.resolution})",
        file=sys.stderr,
    )
    serve_forever(config)
    return EXIT_OK


def cmd_s3_serve(args: argparse.Namespace) -> int:
    from ev_ingest.store import EmbeddedS3, Ports

    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not secret:
        raise CliError("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: the store refuses to run without credentials")
    check_port_free("127.0.0.1", args.port)
    server = EmbeddedS3(
        args.data_dir,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", "ev-ingest"),
        secret_key=secret,
        ports=Ports.free(s3=args.port),
    )
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait below, not to handlers
    server.start()
    print(f"S3 at {server.endpoint_url} (data in {args.data_dir}); Ctrl-C stops it", file=sys.stderr)
    try:
        while signal.sigtimedwait(stop_signals, 1.0) is None:  # a stop signal, or weed's death
            if not server.running:
                code = server.wait(0)
                raise CliError(f"SeaweedFS exited (code {code}); see {server.data_dir / 'weed.log'}")
    finally:
        server.stop()
    return EXIT_OK


def register(sub: Any, command: Any) -> None:
    """`ev-ingest simulator` and `ev-ingest s3 serve`."""
    p = command("simulator", cmd_simulator, "run the exacqVision simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8780)
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--resolution", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--timezone", type=int, default=0, help="server UTC offset in hours")
    p.add_argument(
        "--faults", help="e.g. 5xx=0.05,reset=0.02,slow=0.1:2s,expire=0.01,truncate=0.01,bounce=0.01,closefail=1"
    )
    p.add_argument(
        "--profile",
        choices=["full", "strict"],
        default="full",
        help="strict: only what the seed and public clients show (no guessed paths or invented fields)",
    )
    p.add_argument("--users", type=Path, help="file of user:password lines")
    p.add_argument(
        "--footage",
        type=Path,
        help="a folder of real clips and their truth.json (tests/footage): the first cameras play them",
    )
    p.add_argument("--footage-cameras", type=int, default=2, help="how many cameras play a clip (with --footage)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: serve https (with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")

    s3 = sub.add_parser("s3", help="the embedded S3 store").add_subparsers(dest="s3_command", required=True)
    p = s3.add_parser("serve", help="run SeaweedFS on 127.0.0.1 with credentials from the environment")
    p.add_argument("--data-dir", type=Path, default=Path(".s3data"))
    p.add_argument("--port", type=int, default=8333)
    p.set_defaults(handler=cmd_s3_serve, json=False)
