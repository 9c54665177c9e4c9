"""Every registry Batch (and the conditioning Batches) as a user runs it: ``larvastudy run NAME`` end to end.

Each run is the real CLI in an empty folder on the default SQLite storage, start-up, simulations and export
included, with the default ``-j`` (every core). Printed per Batch: simulations, figures written and wall time.

Run: ``python bench/bench_registry.py [--skip-long] [--out bench/results/registry-runs.txt]``.
``--skip-long`` leaves out tactile_detection (40 simulations of 10 h) and growth (8 of 24 h).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from _report import report

#: larvaworld's registry, in its order, then larvastudy's conditioning Batches.
BATCHES = ["PItest_off", "patchy_food", "food_grid", "growth", "tactile_detection", "anemotaxis", "chemotaxis",
           "chemorbit", "PItrain_mini", "PItrain", "conditioning_mini", "conditioning"]
LONG = {"growth", "tactile_detection"}


def run(name: str) -> str:
    """One ``larvastudy run name`` in an empty folder: its result line."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", name], cwd=folder, check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        study = Path(folder) / "storage" / name
        rows = len(pd.read_csv(study / "par_df.csv"))
        figures = len(list((study / "figures").glob("*.png")))
    return f"{name:<20} {rows:>4} simulations  {figures:>3} figures  {seconds:8.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"larvastudy run NAME, end to end in an empty folder ({platform.python_implementation()} "
             f"{platform.python_version()}, {os.cpu_count()} cores, default -j)"]
    lines += [run(name) for name in BATCHES if not (args.skip_long and name in LONG)]
    report(lines, args.out)


if __name__ == "__main__":
    main()
