"""Storage and memory of a grid with many replicates: a dish sweep of 2 points x 5,000 simulations.

Run: ``python bench/bench_storage.py [--nsims 5000] [--before CHECKOUT] [--out bench/results/storage.txt]``.

Issue 16: every COMPLETE grid trial used to store GridSampler's whole search space, ``replicate``'s
Nsims values included, so the database grew with points x Nsims^2. This runs the real
``larvastudy run FILE -j 2`` from an empty SQLite storage, then ``larvastudy export`` alone, and
then ``larvastudy report`` (which reads every trial through Optuna), and reports the database size
(with its WAL file) after the run and after the export, the bytes of trial system attributes per
trial, and each command's wall time and peak memory (the largest RSS of any one of its processes).
``--before``
measures a checkout of another version too (on ``PYTHONPATH``, ahead of the installed package), for
a side by side comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _program import LARVASTUDY
from _report import report
from bench_scale import MEASURE

SWEEP = """\
description = "dish sweep with many replicates for the storage benchmark"
experiment = "dish"
Nsims = {nsims}
[sample]
Npoints = [1, 2]
[fixed]
duration = 0.05
"""


def measure(folder: Path, env: dict[str, str], *args: str) -> dict:
    """Wall time, peak RSS and stdout of ``larvastudy ARGS`` run in ``folder``."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(folder), sys.executable, LARVASTUDY, *args],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"larvastudy {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def size_mb(path: Path) -> float:
    """The SQLite file's size with its write-ahead log, in MB."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()) / 1e6


def database(path: Path) -> dict:
    """The SQLite file's size in MB and the mean bytes of system attributes per trial."""
    with sqlite3.connect(path) as conn:
        trials = conn.execute("select count(*) from trials").fetchone()[0]
        attrs = conn.execute("select coalesce(sum(length(value_json)), 0) from trial_system_attributes").fetchone()[0]
    return {"mb": size_mb(path), "trials": trials, "attr_bytes": attrs / max(trials, 1)}


def run_version(nsims: int, checkout: Path | None) -> dict:
    """Run and export the sweep with the installed larvastudy, or the one in ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout)) if checkout else dict(os.environ)
    folder = Path(tempfile.mkdtemp(prefix="larvastudy-storage-"))
    try:
        (folder / "sweep.toml").write_text(SWEEP.format(nsims=nsims))
        run = measure(folder, env, "run", "sweep.toml", "-j", "2", "--yes")
        total = 2 * nsims
        assert f"{total}/{total} simulations complete" in run["stdout"], run["stdout"]
        after_run = database(folder / "storage" / "larvastudy.db")
        export = measure(folder, env, "export", "sweep")
        db_export_mb = size_mb(folder / "storage" / "larvastudy.db")
        return {"run": run, "export": export, "report": measure(folder, env, "report", "sweep"), "db": after_run,
                "db_export_mb": db_export_mb}
    finally:
        shutil.rmtree(folder)


def commit(folder: Path) -> str:
    """The short commit checked out in ``folder`` (with ``+`` if its files differ from it)."""
    git = ["git", "-C", str(folder)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout
    return f"{head}{'+' if dirty.strip() else ''}" if head else folder.name


def line(label: str, r: dict) -> str:
    db = r["db"]
    times = ";  ".join(f"{command} {r[command]['seconds']:5.1f} s, peak {r[command]['peak_mb']:5.0f} MB"
                       for command in ("run", "export", "report"))
    return (f"{label:>17}: database {db['mb']:5.1f} MB after run ({db['attr_bytes']:6,.0f} B of system attributes "
            f"per trial), {r['db_export_mb']:5.1f} MB after export;  {times}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nsims", type=int, default=5000)
    parser.add_argument("--before", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started, load = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    results = {f"before ({commit(args.before)})": run_version(args.nsims, args.before.resolve())} if args.before else {}
    results[f"now ({commit(Path(__file__).parent)})"] = run_version(args.nsims, None)
    lines = [f"storage benchmark ({started}): dish, Npoints = [1, 2], duration 0.05 min, Nsims = {args.nsims:,} "
             f"({2 * args.nsims:,} simulations); `larvastudy run FILE -j 2` from an empty SQLite storage, then "
             "`larvastudy export` and `larvastudy report` alone; peak = largest process RSS; load average "
             f"{load:.1f} before, {os.getloadavg()[0]:.1f} after (other processes make times noisy; sizes are exact)"]
    lines += [line(label, r) for label, r in results.items()]
    if args.before:
        before, now = results.values()
        ratios = "; ".join(f"{c} peak {before[c]['peak_mb'] / now[c]['peak_mb']:.1f}x, time "
                           f"{before[c]['seconds'] / now[c]['seconds']:.1f}x" for c in ("run", "export", "report"))
        lines.append(f"before / now: database {before['db']['mb'] / now['db']['mb']:.1f}x; {ratios}")
    report(lines, args.out)


if __name__ == "__main__":
    main()
