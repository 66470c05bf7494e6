"""The verbs that talk to a recording server (EV_URL): `cameras`, `recordings`, `export`, `frame`.

The server comes from `--url` or EV_URL (`exacqvision://user@host:port/?server_id=0`),
the password from EV_PASSWORD or `--password-file` (never a command-line argument:
other users can read those).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.cli.common import EXIT_ERROR, EXIT_OK, TIME_HELP, CliError, emit, parse_time


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


def server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="exacqvision://user@host:port (default: EV_URL)")
    parser.add_argument("--user", help="user name (default: from the URL or EV_USER)")
    parser.add_argument("--password-file", type=Path, help="file holding the password (mode 600)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


def register(sub: Any, command: Any) -> None:
    """The server verbs, each with the server options."""
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
