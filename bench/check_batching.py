"""Batching never changes a result: every shipped grid Batch run with ``-j 1`` and ``-j 2`` (different
chunks, so different batches of larvae stepped together) gives bit-identical par_df values.

Run: ``python bench/check_batching.py [--duration 3] [--nsims 2] [--out bench/results/batching.txt]``.
Each run is the real ``larvastudy run NAME --set duration=D --nsims N -j J`` in an empty folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from larvastudy.definition.batch import list_batches, load_batch

from _report import report

#: par_df columns that measure the run, not the simulation.
TIMING = ["duration_s", "trial"]


def par_df(name: str, folder: Path, jobs: int, duration: float, nsims: int) -> pd.DataFrame:
    """The par_df of ``larvastudy run name`` with ``jobs`` processes, rows in seed order."""
    run = [sys.executable, "-m", "larvastudy.cli", "run", name, "--set", f"duration={duration}",
           "--nsims", str(nsims), "-j", str(jobs)]
    subprocess.run(run, cwd=folder, check=True, capture_output=True)
    table = pd.read_csv(folder / "storage" / name / "par_df.csv").drop(columns=TIMING)
    return table.sort_values("seed").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="minutes per simulation")
    parser.add_argument("--nsims", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"batching check: every shipped grid Batch, --set duration={args.duration:g} --nsims {args.nsims}, "
             "par_df of -j 1 against -j 2 (timing columns dropped)"]
    for name in list_batches():
        if not load_batch(name, check=False).space.is_grid:
            continue
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            a = par_df(name, Path(one), 1, args.duration, args.nsims)
            b = par_df(name, Path(two), 2, args.duration, args.nsims)
        verdict = "bit-identical" if a.equals(b) else f"DIFFERENT in {int((a != b).any(axis=1).sum())} rows"
        lines.append(f"{name:18s} {len(a):4d} simulations: {verdict}")
    report(lines, args.out)


if __name__ == "__main__":
    main()
