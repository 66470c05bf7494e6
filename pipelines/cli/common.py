"""What every `ev-ingest` verb shares: exit codes, the user's errors, times, output, config.

Each verb module (server, analyst, stand_ins, night, officer) imports this one and no
other verb module; `pipelines.cli.main` assembles them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.terminal import say

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig

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


def emit(args: argparse.Namespace, payload: Any, text: Callable[[], list[str]]) -> None:
    """The payload as JSON with --json, else the text lines, each made safe for a terminal."""
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        say(*text())


def one_line(exc: BaseException) -> str:
    """A problem in one line: pydantic's multi-line reports folded to `field: message`."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors())
    return " ".join(str(exc).split()) or type(exc).__name__


def load_config(path: Any) -> PipelineConfig:
    """The pipeline config, imported on use: `ev-ingest motion` starts without it (issue 17)."""
    from pipelines.config import load_config as load

    return load(path)


def say_gaps(gaps: list[Any]) -> None:
    """A hold that may miss video is a failure, never a quiet nothing: one line per gap."""
    for gap in gaps:
        say(f"ev-ingest: holds of {gap.server} may miss video: {gap.detail}", file=sys.stderr)
