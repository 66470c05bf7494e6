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
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from pipelines.cli import analyst, night, officer, recorder, stand_ins
from pipelines.cli.common import EXIT_ERROR, EXIT_USAGE, CliError, one_line
from pipelines.cli.recorder import server_options
from pipelines.terminal import SafeFormatter, say


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
            server_options(p)
        p.set_defaults(handler=handler)
        return p

    recorder.register(sub, command)
    analyst.register(sub, command)
    stand_ins.register(sub, command)
    night.register(sub, command)
    officer.register(sub, command)
    return parser


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
