"""Whatever a test run starts stops with it, however the run ends (issue 28).

A test that starts services (an Airflow deployment, PostgreSQL, redis, SeaweedFS) stops
them in a `finally`; that runs on a failure or Ctrl-C, but not when pytest is killed or
timed out, and the services run in sessions of their own (so a terminal's Ctrl-C does not
reach them half-way through a shutdown). Two things close that gap:

- Every process the run starts carries a marker in its environment (`EV_TEST_RUN=<token>`,
  inherited by every descendant, also through `runuser`, `pg_ctl` and Airflow's forks).
  `reap(marker)` ends every process on the machine that carries it: SIGTERM, a grace period,
  then SIGKILL.
- `start()` puts the run's marker in this process's environment and starts a watchdog (this
  file, run as a script) that waits for end-of-file on a pipe only the test process holds.
  The kernel closes that pipe when the test process exits in any way, SIGKILL included; the
  watchdog then reaps the marker and removes the folders it was told of.

- A process that sets its title (setproctitle: the api-server, Celery, redis-server) overwrites
  the memory `/proc/PID/environ` reads, so its marker can vanish; a process started with an
  environment of its own (the embedded SeaweedFS) never had one. Each service is therefore
  also registered with the watchdog (`register(pid)`, started in a session of its own), which
  ends its whole process group: the leader (if its start time still matches) and every member,
  also when the leader has exited (Linux does not reuse a pid while a group of that id lives).

A deployment also has a marker of its own (`EV_TEST_DEPLOYMENT`), which its `stop()` reaps,
so a task runner or log server that outlives its parent is ended with the deployment.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol, TypeVar


class _Service(Protocol):
    @property
    def pid(self) -> int | None: ...


S = TypeVar("S", bound=_Service)

RUN_ENV = "EV_TEST_RUN"
DEPLOYMENT_ENV = "EV_TEST_DEPLOYMENT"
_watchdog: subprocess.Popen[bytes] | None = None


def marked(name: str, token: str) -> list[int]:
    """Every process on this machine whose environment has `name=token` (never this one)."""
    marker = f"{name}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:  # gone already, or a kernel thread
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def reap(name: str, token: str, grace: float = 10.0) -> list[int]:
    """End every process marked `name=token`: SIGTERM, up to `grace` s to exit, then SIGKILL.
    Returns the processes that had to be ended."""
    pids = marked(name, token)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = [pid for pid in marked(name, token) if not _zombie(pid)]
        if not left:
            return pids
        time.sleep(0.1)  # polling the processes' exit, with a deadline
    for pid in marked(name, token):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    fields = _stat(pid)
    return not fields or fields[0] == "Z"


def start() -> str:
    """Mark this test process (and so everything it starts) and start the watchdog; idempotent."""
    global _watchdog
    token = os.environ.get(RUN_ENV)
    if _watchdog is not None and token:
        return token
    token = secrets.token_hex(8)
    os.environ[RUN_ENV] = token
    environment = {k: v for k, v in os.environ.items() if k != RUN_ENV}  # the watchdog itself is not marked
    _watchdog = subprocess.Popen(
        [sys.executable, __file__, token], stdin=subprocess.PIPE, env=environment, start_new_session=True
    )
    return token


def remove_with_run(folder: Path) -> None:
    """Have the watchdog remove `folder` if the run dies before removing it itself."""
    _tell(f"folder {folder}")


def register(pid: int) -> None:
    """Have the watchdog end the process group led by `pid` (a service started with
    `start_new_session=True`) if the run dies before stopping it."""
    _tell(f"group {pid} {start_time(pid)}")


def registered(store: S) -> S:
    """`register` the embedded SeaweedFS `store` (started with an environment of its own, so
    unmarked); returns it."""
    if store.pid is not None:
        register(store.pid)
    return store


def _tell(line: str) -> None:
    if _watchdog is not None and _watchdog.stdin is not None:
        _watchdog.stdin.write(f"{line}\n".encode())
        _watchdog.stdin.flush()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else "-"  # field 22 of stat: start time in clock ticks


def group_members(leaders: dict[int, str]) -> list[int]:
    """Every live process in the groups led by `leaders` (pid -> start time at registration).
    A group whose leader's pid now names a newer process is someone else's: skipped."""
    ours = {pid for pid, started in leaders.items() if start_time(pid) in (started, "-")}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        fields = _stat(int(entry))
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) in ours:
            found.append(int(entry))
    return found


def end_groups(leaders: dict[int, str], grace: float = 10.0) -> None:
    """SIGTERM every member of the groups, up to `grace` s to exit, then SIGKILL."""
    for pid in group_members(leaders):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_members(leaders) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the processes' exit, with a deadline
    for pid in group_members(leaders):
        _signal(pid, signal.SIGKILL)


def _watch(token: str) -> None:
    folders: list[Path] = []
    leaders: dict[int, str] = {}
    for line in sys.stdin.buffer:  # until EOF: the run has ended
        kind, _, rest = line.decode().strip().partition(" ")
        if kind == "folder":
            folders.append(Path(rest))
        elif kind == "group":
            pid, start_time = rest.split()
            leaders[int(pid)] = start_time
    end_groups(leaders)
    reap(RUN_ENV, token)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the run must not end its reaper
    _watch(sys.argv[1])
