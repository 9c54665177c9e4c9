"""A sweep stopped and joined, as issue 10 measured it: the 1,200-simulation dish sweep (``Npoints``
5..60 x ``Nsims = 100``, ``duration = 2.0``) through the real ``larvastudy`` command.

Run: ``python bench/bench_lifecycle.py [--out bench/results/lifecycle.txt]``.

0. ``run -j 2`` uninterrupted: its wall time (the issue stopped it 8 s in; it now takes less than that).
1. ``run -j 2``, Ctrl-C (SIGINT) after 3 s: how long it takes to stop, how many simulations are
   stored, how many FAIL trials were written, what ``status`` counts as running.
2. ``run -j 1``, and 4 s later ``worker`` on the same study: how many simulations each ran.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _program import LARVASTUDY
from _report import report

SWEEP = """\
description = "issue 10's Ctrl-C sweep"
experiment = "dish"
Nsims = 100
[sample]
Npoints = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]
[fixed]
duration = 2.0
model = "explorer"
"""


def larvastudy(folder: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([LARVASTUDY, *args], cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def whole(folder: Path, seconds: float) -> list[str]:
    start = time.monotonic()
    run = larvastudy(folder, "run", "dish1200.toml", "-j", "2")
    run.communicate()
    return [f"`run -j 2` uninterrupted: exit {run.returncode} after {time.monotonic() - start:.1f} s"]


def stop_after(folder: Path, seconds: float) -> list[str]:
    run = larvastudy(folder, "run", "dish1200.toml", "-j", "2")
    time.sleep(seconds)
    run.send_signal(signal.SIGINT)
    sent = time.monotonic()
    run.communicate()
    stopped = time.monotonic() - sent
    with sqlite3.connect(folder / "storage" / "larvastudy.db") as db:
        states = dict(db.execute("select state, count(*) from trials group by state").fetchall())
    status = larvastudy(folder, "status", "dish1200").communicate()[0]
    running = re.search(r"simulations: (\d+) running", status)[1]
    return [f"Ctrl-C {seconds:.0f} s into `run -j 2`: exit {run.returncode} after {stopped:.1f} s; "
            f"{states.get('COMPLETE', 0)} simulations stored, {states.get('FAIL', 0)} FAIL trials; "
            f"status: {running} running"]


def join_after(folder: Path, seconds: float) -> list[str]:
    run = larvastudy(folder, "run", "dish1200.toml", "-j", "1")
    time.sleep(seconds)
    worker = larvastudy(folder, "worker", "dish1200")
    out = worker.communicate()[0]
    run.communicate()
    ran = int(re.search(r"this worker ran (\d+)", out)[1])
    return [f"`worker` started {seconds:.0f} s after `run -j 1`: exit {worker.returncode}, ran {ran} of 1200 "
            f"simulations; run exit {run.returncode}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["lifecycle benchmark: the 1,200-simulation dish sweep (Npoints 5..60 x 100 replicates, duration 2.0)"]
    for scenario, seconds in ((whole, 0.0), (stop_after, 3.0), (join_after, 4.0)):
        folder = Path(tempfile.mkdtemp(prefix="larvastudy-life-"))
        try:
            (folder / "dish1200.toml").write_text(SWEEP)
            lines += scenario(folder, seconds)
        finally:
            shutil.rmtree(folder)
    report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
