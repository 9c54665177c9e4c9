"""A sweep's life as a user lives it, through the real ``larvastudy`` command on a real SQLite file:
stopped with Ctrl-C or SIGTERM, killed, joined by a worker, failing. Nothing here is a failure but a
simulation that raised, and nothing stored is lost."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlite_utils

from seams import exactly_once

#: 2 x ``Nsims`` simulations of 25 larvae for 3 minutes; Nsims = 150: several seconds of engine work in
#: ~1.5 s claims.
SWEEP = """\
description = "lifecycle test sweep"
experiment = "dish"
Nsims = {nsims}
[sample]
Npoints = [20, 30]
[fixed]
duration = 3.0
model = "explorer"
"""
PROGRESS = re.compile(r"^life: (\d+)/(\d+) simulations")


def larvastudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "larvastudy.cli", *args]


def start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(larvastudy(*args), cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_progress(proc: subprocess.Popen, done: int = 1, timeout: float = 120.0) -> list[str]:
    """Read ``proc``'s stderr until a progress line shows at least ``done`` simulations complete."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = PROGRESS.match(line)
        if match and int(match[1]) >= done:
            return lines
    pytest.fail("no progress line: " + "".join(lines))


def states(db: Path) -> Counter:
    return Counter(row["state"] for row in sqlite_utils.Database(db).query("select state from trials"))


def claims(db: Path) -> Counter:
    return Counter(row["state"] for row in sqlite_utils.Database(db).query("select state from larvastudy_claims"))


def status(folder: Path, db: Path) -> str:
    result = subprocess.run(larvastudy("status", "life", "--storage", str(db)), cwd=folder, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "life.toml").write_text(SWEEP.format(nsims=150))
    return tmp_path, tmp_path / "db" / "life.db"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_keeps_finished_work_writes_no_fail_and_resumes(sweep, signum):
    folder, db = sweep
    args = ("run", "life.toml", "--storage", str(db), "-j", "2", "--log-every", "0")
    proc = start(folder, *args)
    seen = int(PROGRESS.match(wait_for_progress(proc)[-1])[1])
    proc.send_signal(signum)
    stopped = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - stopped < 10, "a stop waits for at most the chunks being run"
    assert proc.returncode == 128 + signum, stderr
    assert states(db) == Counter({"COMPLETE": states(db)["COMPLETE"]}) and states(db)["COMPLETE"] >= seen
    assert claims(db)["running"] == 0 and claims(db)["done"] == states(db)["COMPLETE"]
    report = status(folder, db)
    assert "simulations: 0 running" in report and "stale" not in report
    resume = re.search(r"resume with: (.+)$", stderr, re.M)[1]
    assert shlex.split(resume) == ["larvastudy", *args]
    resumed = subprocess.run(larvastudy(*shlex.split(resume)[1:]), cwd=folder, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    exactly_once(db, 300)
    assert states(db) == Counter({"COMPLETE": 300})


def test_kill_9_leaves_stale_claims_not_running_ones_and_a_worker_finishes(sweep):
    folder, db = sweep
    proc = start(folder, "run", "life.toml", "--storage", str(db), "-j", "2", "--log-every", "0", "--grace", "2")
    wait_for_progress(proc)
    proc.kill()
    proc.wait()
    time.sleep(2.5)  # the lease has expired, and the orphaned workers have noticed and exited
    report = status(folder, db)
    assert "simulations: 0 running" in report and re.search(r", [1-9]\d* stale", report), report
    worker = subprocess.run(larvastudy("worker", "life", "--storage", str(db)), cwd=folder, capture_output=True,
                            text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    exactly_once(db, 300)
    assert states(db) == Counter({"COMPLETE": 300})
    assert re.search(r"[1-9]\d* taken from lost processes", status(folder, db))


def test_a_worker_joining_a_running_sweep_gets_work(sweep):
    folder, db = sweep
    (folder / "life.toml").write_text(SWEEP.format(nsims=600))  # about 10 s of work for one process
    run = start(folder, "run", "life.toml", "--storage", str(db), "-j", "1", "--log-every", "0")
    wait_for_progress(run)
    worker = subprocess.run(larvastudy("worker", "life", "--storage", str(db)), cwd=folder, capture_output=True,
                            text=True, timeout=300)
    assert run.wait(timeout=300) == 0
    assert worker.returncode == 0, worker.stderr
    assert int(re.search(r"this worker ran (\d+)", worker.stdout)[1]) > 0, worker.stdout
    exactly_once(db, 1200)


def test_run_exits_1_when_simulations_failed(tmp_path):
    # Each value is valid alone, but crawler.freq 6 Hz needs dt < 1/6 s: that combination fails at run time.
    (tmp_path / "fails.toml").write_text('experiment = "dish"\nNsims = 1\n[sample]\n"crawler.freq" = [1.0, 6.0]\n'
                                         'dt = [0.1, 0.2]\n[fixed]\nduration = 0.05\n')
    result = subprocess.run(larvastudy("run", "fails.toml"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "larvastudy: 1 simulations failed: `larvastudy status fails`" in result.stderr
    assert "3/4 simulations complete, 1 failed" in result.stdout
