"""What a test run starts ends with it, however it ends (issue 28).

A stand-in for a test run (a Python process that calls `reaper.start()`) starts services as
the deployment helpers do: in sessions of their own, one with a grandchild that detaches
again, and one with no marker at all (a process that set its title, or was started with an
environment of its own), registered instead. Then the run is ended as CI or a developer
would end it (SIGKILL, SIGTERM, Ctrl-C's SIGINT), and no process of what it started may be
left, nor the folder it registered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import reaper
from tests.conftest import ROOT

RUN = """
import subprocess, sys, tempfile, pathlib
from tests import reaper
token = reaper.start()
folder = pathlib.Path(tempfile.mkdtemp(prefix="ev-reaper-test-"))
reaper.remove_with_run(folder)
# As Deployment.start: services in sessions of their own, one whose child detaches again.
subprocess.Popen(["sleep", "600"], start_new_session=True)
subprocess.Popen(["bash", "-c", "setsid sleep 600 & exec sleep 600"], start_new_session=True)
# As redis-server, Celery or SeaweedFS: no marker to find, in a group of its own with a child.
unmarked = subprocess.Popen(["env", "-i", "bash", "-c", "sleep 600 & exec sleep 600"], start_new_session=True)
reaper.register(unmarked.pid)
print(token, folder, unmarked.pid, flush=True)
sys.stdin.read()  # the run "works" until it is ended from outside
"""


def left(token: str, within: float = 30.0) -> list[int]:
    """The processes still marked with the run's token once the reaper had `within` s."""
    deadline = time.monotonic() + within
    while (pids := reaper.marked(reaper.RUN_ENV, token)) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the watchdog's work, with a deadline
    return pids


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_an_ended_run_leaves_no_process_and_no_folder(how):
    env = {k: v for k, v in os.environ.items() if k != reaper.RUN_ENV}  # the stand-in is a run of its own
    with subprocess.Popen(
        [sys.executable, "-c", RUN], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as run:
        token, folder, unmarked = run.stdout.readline().split()
        group = {int(unmarked): reaper.start_time(int(unmarked))}
        deadline = time.monotonic() + 30
        while (len(reaper.marked(reaper.RUN_ENV, token)), len(reaper.group_members(group))) != (3, 2):
            assert time.monotonic() < deadline, "the stand-in's services did not start"
            time.sleep(0.05)  # the services starting
        assert not set(reaper.group_members(group)) & set(reaper.marked(reaper.RUN_ENV, token))
        run.send_signal(how)
        run.wait(30)
    assert left(token) == []
    deadline = time.monotonic() + 30
    while reaper.group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the watchdog's work, with a deadline
    assert reaper.group_members(group) == []
    deadline = time.monotonic() + 10
    while Path(folder).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(folder).exists()


def test_reap_ends_a_process_that_ignores_sigterm():
    token = "ignores-term"
    env = {**os.environ, reaper.DEPLOYMENT_ENV: token}
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)"
    with subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, start_new_session=True
    ) as stubborn:
        stubborn.stdout.readline()  # its handler is set
        assert reaper.reap(reaper.DEPLOYMENT_ENV, token, grace=0.5) == [stubborn.pid]
        assert stubborn.wait(10) == -signal.SIGKILL
