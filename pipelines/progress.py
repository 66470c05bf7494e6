"""Progress of long work for people: `done/total`, what is being done, and an ETA, one line
per step on stderr (never stdout, which carries results and --json)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from pipelines.terminal import say


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts steps of one phase and estimates the rest from the pace so far."""

    def __init__(self, phase: str, total: int, out: TextIO | None = None) -> None:
        self.phase = phase
        self.total = total
        self.done = 0
        self.began = time.monotonic()
        self.out = out or sys.stderr

    def eta(self) -> str:
        if not self.done or self.done >= self.total:
            return ""
        elapsed = time.monotonic() - self.began
        return f", about {duration(elapsed / self.done * (self.total - self.done))} left"

    def step(self, label: str, note: str = "") -> None:
        self.done += 1
        say(
            f"[{self.phase} {self.done}/{self.total}] {label}{f' ({note})' if note else ''}"
            f"{self.eta()}, {duration(time.monotonic() - self.began)} so far",
            file=self.out,
            flush=True,
        )
