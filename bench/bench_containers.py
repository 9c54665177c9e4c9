"""Two processes with one host name in different PID namespaces (containers) on one sweep, as issue 16
measured it: a cheap 3,000-simulation dish sweep (``Npoints`` 1..30 x ``Nsims = 100``, ``duration = 1.0``)
on one SQLite file, through the real ``larvastudy`` command.

Run (as root, on Linux with ``unshare``): ``python bench/bench_containers.py [--out bench/results/containers.txt]``.

1. ``run -j 1`` and ``worker -j 1`` in the same PID namespace (the reference).
2. ``run -j 1``, and ``worker -j 1`` in a new PID namespace (``unshare --pid --fork --mount-proc``), as two
   containers with ``--network host`` would be.

Each, ``--repeat`` times (default 3; two processes on one SQLite file vary a lot from run to run): wall
time until both exit, claims taken from "lost" processes (``larvastudy_claim_events``), and COMPLETE /
FAIL trials.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _program import LARVASTUDY
from _report import report

SWEEP = """\
description = "issue 16's container sweep"
experiment = "dish"
Nsims = 100
[sample]
Npoints = [{points}]
[fixed]
duration = 1.0
model = "explorer"
""".format(points=", ".join(str(n) for n in range(1, 31)))
#: A command in a new PID namespace (and so a new /proc); ``sh`` is its PID 1, so larvastudy gets an ordinary PID.
NEW_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", '"$@"; exit $?', "sh"]


def scenario(isolated: bool, repeat: int) -> str:
    """``repeat`` runs of a scenario: the median wall time, and every run's wall time and lost claims."""
    runs = []
    for _ in range(repeat):
        folder = Path(tempfile.mkdtemp(prefix="larvastudy-containers-"))
        try:
            (folder / "cheap.toml").write_text(SWEEP)
            runs.append(_once(folder, isolated))
        finally:
            shutil.rmtree(folder)
    where = "worker in a new PID namespace" if isolated else "both in one PID namespace   "
    walls = sorted(wall for wall, _, _ in runs)
    return (f"{where}: median {walls[len(walls) // 2]:5.1f} s wall; runs: "
            + "; ".join(f"{wall:.1f} s, {lost} lost, {trials}" for wall, lost, trials in runs))


def _once(folder: Path, isolated: bool) -> tuple[float, int, str]:
    """One run: wall time, lost claims, and what the study holds."""
    db = folder / "storage" / "larvastudy.db"
    start = time.monotonic()
    run = subprocess.Popen([LARVASTUDY, "run", "cheap.toml", "-j", "1"], cwd=folder, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    while not _claims_ready(db):
        time.sleep(0.05)
    worker = subprocess.Popen([*(NEW_PID_NAMESPACE if isolated else []), LARVASTUDY, "worker", "cheap", "-j", "1"],
                              cwd=folder, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    worker.communicate()
    run.communicate()
    wall = time.monotonic() - start
    with sqlite3.connect(db) as con:
        lost = con.execute("select count(*) from larvastudy_claim_events where event = 'lost'").fetchone()[0]
        trials = dict(con.execute("select state, count(*) from trials group by state").fetchall())
    return wall, lost, (f"{trials.get('COMPLETE', 0)} COMPLETE / {trials.get('FAIL', 0)} FAIL trials, "
                        f"exits {run.returncode}/{worker.returncode}")


def _claims_ready(db: Path) -> bool:
    """Whether the run has set up the study's claims, so that a worker can join it."""
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from larvastudy_claims").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="", help="a word for the version measured, e.g. before or after")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (two processes on SQLite vary)")
    args = parser.parse_args()
    lines = [f"containers benchmark{' (' + args.label + ')' if args.label else ''}: 3,000 dish simulations "
             "(Npoints 1..30 x 100, duration 1.0), `run -j 1` + `worker -j 1` on one SQLite file, one host name"]
    lines += [scenario(isolated, args.repeat) for isolated in (False, True)]
    report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
