"""The `ev-ingest` command.

    ev-ingest simulator [--port 8780] [--cameras 4] [--faults SPEC]   an exacqVision look-alike
    ev-ingest cameras | recordings | export | frame                    talk to a server (EV_URL)
    ev-ingest motion FILE... [--mode gated] [--json]                   motion summaries of files
    ev-ingest s3 serve [--data-dir] [--port]                           the embedded S3 store
    ev-ingest retention status|horizon|audit|apply|hold|release|dispose   what is protected, and proof
    ev-ingest audit log | keys init|show | case export | verify        audit trail, signing, evidence
    ev-ingest archive --date YYYY-MM-DD [--catch-up]                   the nightly archival, without Airflow
    ev-ingest report --date YYYY-MM-DD [-o report.html]                the HTML report of a nightly run

The server comes from `--url` or EV_URL (`exacqvision://user@host:port/?server_id=0`),
the password from EV_PASSWORD or `--password-file` (never a command-line argument:
other users can read those). `--json` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pipelines.terminal import SafeFormatter, say

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


TIME_HELP = "ISO 8601, e.g. 2026-11-20T09:00Z; a time without a zone is UTC"


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-20T09:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_region(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("region is x0,y0,x1,y1 in 0..1, e.g. 0,0.5,1,1") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise argparse.ArgumentTypeError(
            f"region {text!r}: fractions of the frame, 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            "(e.g. 0,0.5,1,1 for the lower half), not pixels"
        )
    return x0, y0, x1, y1


def check_port_free(host: str, port: int) -> None:
    """A clear error before anything starts (and before anything claims to listen there)."""
    probe = socket.socket()
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    finally:
        probe.close()


def read_password_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(f"{path} is readable by other users; run: chmod 600 {path}")
    return path.read_text().strip()


def client_from_args(args: argparse.Namespace) -> Any:
    from ev_ingest.client import ClientSettings, ExacqClient

    password = read_password_file(args.password_file) if args.password_file else os.environ.get("EV_PASSWORD")
    url = args.url or os.environ.get("EV_URL")
    if not url:
        raise CliError("no server: pass --url or set EV_URL (e.g. exacqvision://admin@127.0.0.1:8780)")
    settings = ClientSettings.from_url(
        url,
        username=args.user or os.environ.get("EV_USER"),
        password=password,
        server_id=os.environ.get("EV_SERVER_ID"),
        tls_verify=False if args.insecure else None,
    )
    return ExacqClient(settings=settings)


def emit(args: argparse.Namespace, payload: Any, text: Callable[[], list[str]]) -> None:
    """The payload as JSON with --json, else the text lines, each made safe for a terminal."""
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        say(*text())


# --- server verbs --------------------------------------------------------------------


def cmd_cameras(args: argparse.Namespace) -> int:
    with client_from_args(args) as ev:
        listing = ev.cameras.listing(show_all=args.all)
    rows = [c.model_dump(mode="json", by_alias=True) for c in listing.cameras]
    emit(
        args,
        {"server": listing.name, "timezone": listing.timezone, "cameras": rows},
        lambda: (
            [f"{listing.name} (UTC{listing.timezone:+g})"]
            + [
                f"  {c.id:>10}  {c.name:<24} {c.resolution.width}x{c.resolution.height} "
                f"{'ok' if c.operating else 'DOWN'}"
                for c in listing.cameras
            ]
        ),
    )
    return EXIT_OK


def cmd_recordings(args: argparse.Namespace) -> int:
    with client_from_args(args) as ev:
        clips = ev.search.recordings(args.camera, args.start, args.end)
    total = sum(c.seconds for c in clips)
    if not clips and not args.json:
        print(
            f"no recordings of camera {args.camera} from {args.start:%Y-%m-%d %H:%M} to {args.end:%Y-%m-%d %H:%M} "
            "UTC (`ev-ingest cameras` lists the cameras; the simulator records the last 7 days)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    emit(
        args,
        {"camera": args.camera, "clips": [c.model_dump(mode="json") for c in clips], "seconds": total},
        lambda: (
            [f"{c.start.isoformat()}  ->  {c.end.isoformat()}  ({c.seconds:.0f} s)" for c in clips]
            + [f"{len(clips)} clips, {total / 3600:.2f} h recorded"]
        ),
    )
    return EXIT_OK


def export_path(output: Path, camera: int, start: datetime, end: datetime, fmt: str) -> Path:
    """Where an export lands: a folder gets `<camera>_<start>_<end>.<ext>` (every server
    names its exports `Export.mp4`: a second camera's would replace the first). An existing
    file is never overwritten."""
    from ev_ingest.store.keys import stamp

    path = (
        output / f"{camera}_{stamp(start)}_{stamp(end)}.{'zip' if fmt == 'ps_zip' else fmt}"
        if output.is_dir()
        else output
    )
    if path.exists():
        raise CliError(f"{path} exists: not overwritten (move it away or choose another -o)")
    return path


def cmd_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    path = export_path(args.output, args.camera, args.start, args.end, args.format)
    with client_from_args(args) as ev, tqdm(total=100, unit="%", desc="export", disable=args.json or None) as bar:

        def progress(percent: int) -> None:
            bar.update(percent - bar.n)

        result = ev.exports.export(
            args.camera,
            args.start,
            args.end,
            path,
            format=args.format,
            name=args.name,
            on_progress=progress,
            timeout=args.timeout,
        )
    emit(
        args,
        {"path": str(path), "size": result.size, "sha256": result.sha256, "resumed": result.resumed},
        lambda: [f"{path}  {result.size} bytes", f"sha256 {result.sha256}"],
    )
    return EXIT_OK


def cmd_frame(args: argparse.Namespace) -> int:
    with client_from_args(args) as ev:
        data = (
            ev.search.recorded_frame(args.camera, args.at, width=args.width)
            if args.at
            else ev.video.jpeg(args.camera, width=args.width)
        )
    args.output.write_bytes(data)
    emit(args, {"path": str(args.output), "size": len(data)}, lambda: [f"{args.output}  {len(data)} bytes"])
    return EXIT_OK


# --- local verbs ----------------------------------------------------------------------


def cmd_motion(args: argparse.Namespace) -> int:
    from pipelines.video import MotionConfig, analyze
    from pipelines.video.summary import write_parquet

    show_progress = not args.json and sys.stderr.isatty()
    if show_progress:
        from tqdm import tqdm  # 0.07 s to import: only for a terminal that shows the bar
    else:
        from contextlib import nullcontext as tqdm  # type: ignore[assignment]

    settings = {
        "region": args.region,
        "masks": tuple(args.mask) if args.mask else None,
        "pixel_threshold": args.threshold,
        "min_region": args.min_region,
        "detector": args.detector,
    }
    config = MotionConfig(**{k: v for k, v in settings.items() if v is not None})
    reports = []
    for path in args.files:
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"
        bar_args = {"total": 1.0, "desc": path.name, "bar_format": bar_format, "leave": False} if show_progress else {}
        with tqdm(**bar_args) as bar:

            def progress(done: float, total: float, bar: Any = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            summary = analyze(
                path,
                mode=args.mode,
                config=config,
                start=args.start,
                workers=args.workers,
                progress=progress if show_progress else None,
            )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_parquet(summary.timeline_table(), args.out / f"{path.stem}.timeline.parquet")
            write_parquet(summary.events_table(), args.out / f"{path.stem}.events.parquet")
        report = summary.as_json()
        if args.snapshots or args.clips:
            report["media"] = write_media(path, summary, args.snapshots, args.clips)
        reports.append(report)
        for warning in summary.warnings:  # on stderr, also with --json: a partial summary is never silent
            say(f"{path}: warning: {warning}", file=sys.stderr)
        if not args.json:
            say(
                f"{path}: {len(summary.events)} events, {summary.duration_s:.0f} s of video in "
                f"{summary.elapsed_s:.1f} s ({summary.realtime_factor:.0f}x real time, {args.mode})",
                *(
                    f"  {event.start_s:8.2f} s -> {event.end_s:8.2f} s  peak {event.peak:.3f}"
                    for event in summary.events
                ),
            )
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return EXIT_OK


def write_media(path: Path, summary: Any, snapshots: Path | None, clips: Path | None) -> list[dict[str, str]]:
    """A snapshot and/or a clip per event, named <file>.<n>.jpg / <file>.<n>.mp4."""
    from pipelines.video import media
    from pipelines.video.decode import is_zip

    if is_zip(path):
        raise CliError(f"{path}: snapshots and clips are made from single-file recordings, not a ps_zip")
    made = []
    suffix = media.clip_suffix(path) if clips else ""
    shots = media.snapshots(path, summary.events) if snapshots else []
    for number, event in enumerate(summary.events, start=1):
        item: dict[str, str] = {}
        if snapshots and shots[number - 1] is not None:
            snapshots.mkdir(parents=True, exist_ok=True)
            target = snapshots / f"{path.stem}.{number:03d}.jpg"
            target.write_bytes(shots[number - 1])  # type: ignore[arg-type]
            item["snapshot"] = str(target)
        if clips:
            clips.mkdir(parents=True, exist_ok=True)
            target = clips / f"{path.stem}.{number:03d}{suffix}"
            target.write_bytes(media.clip(path, event))
            item["clip"] = str(target)
        made.append(item)
    return made


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


# --- parser --------------------------------------------------------------------------


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="exacqvision://user@host:port (default: EV_URL)")
    parser.add_argument("--user", help="user name (default: from the URL or EV_USER)")
    parser.add_argument("--password-file", type=Path, help="file holding the password (mode 600)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


class _OneLineParser(argparse.ArgumentParser):
    """A usage mistake in one line (and where to look), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="ev-ingest", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what is done (INFO), e.g. each request and upload"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, server: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if server:
            _server_options(p)
        p.set_defaults(handler=handler)
        return p

    command("cameras", cmd_cameras, "list the server's cameras", server=True).add_argument(
        "--all", action="store_true", help="include unused quality streams"
    )
    p = command("recordings", cmd_recordings, "recorded clips of a camera", server=True)
    p.add_argument("camera", type=int)
    p.add_argument("--start", type=parse_time, required=True, help=TIME_HELP)
    p.add_argument("--end", type=parse_time, required=True, help=TIME_HELP)
    p = command("export", cmd_export, "export a camera's video to a file (prints its SHA-256)", server=True)
    p.add_argument("camera", type=int)
    p.add_argument("--start", type=parse_time, required=True, help=TIME_HELP)
    p.add_argument("--end", type=parse_time, required=True, help=TIME_HELP)
    p.add_argument("--format", default="mp4", help="mp4 (default) or ps_zip")
    p.add_argument("--name", help="the export's name on the server")
    p.add_argument("-o", "--output", type=Path, default=Path("."), help="file or folder (default: .)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the server to prepare it")
    p = command("frame", cmd_frame, "save a camera's live frame, or a recorded one with --at", server=True)
    p.add_argument("camera", type=int)
    p.add_argument("--at", type=parse_time, help=TIME_HELP)
    p.add_argument("--width", type=int)
    p.add_argument("-o", "--output", type=Path, default=Path("frame.jpg"))

    p = command("motion", cmd_motion, "motion events and a per-second timeline of video files")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--mode", choices=["full", "gated", "keyframe"], default="gated")
    p.add_argument("--region", type=parse_region, help="x0,y0,x1,y1 (0..1): only look here")
    p.add_argument("--start", type=parse_time, help="wall-clock time of the first frame (" + TIME_HELP + ")")
    p.add_argument("--workers", type=int, default=None, help="processes (default: 2)")
    p.add_argument("--out", type=Path, help="write <name>.timeline.parquet and <name>.events.parquet here")
    p.add_argument("--snapshots", type=Path, help="write a JPEG per event (its peak frame, region boxed) here")
    p.add_argument("--clips", type=Path, help="write a clip per event (packets copied, no re-encoding) here")
    p.add_argument("--mask", type=parse_region, action="append", help="x0,y0,x1,y1 (0..1): never look here (repeat)")
    p.add_argument("--threshold", type=int, help="luma change that counts a pixel as moving (default 20)")
    p.add_argument("--min-region", type=float, help="smallest moving region, fraction of the frame (default 0.0015)")
    p.add_argument("--detector", choices=["running_average", "mog2"], help="background model")

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
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: serve https (with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")

    s3 = sub.add_parser("s3", help="the embedded S3 store").add_subparsers(dest="s3_command", required=True)
    p = s3.add_parser("serve", help="run SeaweedFS on 127.0.0.1 with credentials from the environment")
    p.add_argument("--data-dir", type=Path, default=Path(".s3data"))
    p.add_argument("--port", type=int, default=8333)
    p.set_defaults(handler=cmd_s3_serve, json=False)

    from pipelines import cli_archive, cli_compliance

    cli_archive.register(sub, command)
    cli_compliance.register(sub, command)
    return parser


def one_line(exc: BaseException) -> str:
    """A problem in one line: pydantic's multi-line reports folded to `field: message`."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors())
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage mistake (already printed in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    try:
        return args.handler(args)
    except RecursionError:
        print(f"ev-ingest {args.command}: error: an answer nested too deeply to read", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if isinstance(exc, known_errors()):
            say(f"ev-ingest {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        # boto3's errors (no credentials, an unreachable or refusing store) are the user's to
        # fix too; matched by module so that commands without boto3 never import it.
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        say(f"ev-ingest {args.command}: store error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def known_errors() -> tuple[type[BaseException], ...]:
    """The errors users fix themselves, of the parts this command loaded: importing the
    client or the store just to name their errors cost `ev-ingest motion` 0.4 s of start-up."""
    known: list[type[BaseException]] = [CliError, ValueError, OSError]
    for module, name in (
        ("ev_ingest.client._exceptions", "ExacqError"),
        ("ev_ingest.store.archive", "StoreError"),
        ("pipelines.video.decode", "VideoError"),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None:
            known.append(getattr(loaded, name))
    return tuple(known)


if __name__ == "__main__":
    sys.exit(main())
