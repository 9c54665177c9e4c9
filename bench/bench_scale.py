"""Sweeps at scale: 1,000, 10,000 and 100,000 near-no-op simulations end to end through the CLI.

Run: ``python bench/bench_scale.py [--sizes 1000 10000 100000] [--out bench/results/scale.txt]``.

Each size is a grid of PItest_off simulations of one larva for 0.005 minutes (one engine step), so
what is measured is larvastudy itself: start-up, claims, trial writes and the export of par_df,
summary, figures and tables. ``larvastudy run FILE -j 2 --yes`` from an empty SQLite storage gives
the end-to-end time and peak memory; ``larvastudy export`` again alone gives the export's. Peak
memory is the largest resident size of any one process (the run's own, not its workers').
The growth ratios compare each size with the one before: a cost linear in the grid grows as much
as the grid, and memory should grow less.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _program import LARVASTUDY
from _report import report

#: ``larvastudy ARGS`` run as a child of a fresh interpreter, which prints the child's wall time and peak RSS.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[2:], cwd=sys.argv[1], capture_output=True, text=True)
if done.returncode:
    sys.exit(done.stderr)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "stdout": done.stdout}))
"""
GRID = """\
description = "near-no-op PItest_off grid for the scale benchmark"
experiment = "PItest_off"
Nsims = 1
metrics = ["PI", "PI2", "v_mu", "sv_mu", "exec_fraction"]
[sample]
"gain_dict.CS" = {{ range = [-100.0, 100.0], Ngrid = {rows} }}
"gain_dict.UCS" = {{ range = [-100.0, 100.0], Ngrid = {cols} }}
[fixed]
duration = 0.005
Npoints = 1
"""


def measure(folder: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(folder), LARVASTUDY, *args], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def grid_shape(size: int) -> tuple[int, int]:
    """Two axis lengths whose product is ``size``, as square as possible."""
    rows = next(r for r in range(math.isqrt(size), 0, -1) if size % r == 0)
    return rows, size // rows


def run_size(size: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="larvastudy-scale-"))
    try:
        rows, cols = grid_shape(size)
        (folder / "scale.toml").write_text(GRID.format(rows=rows, cols=cols))
        run = measure(folder, "run", "scale.toml", "-j", "2", "--yes")
        assert f"{size}/{size} simulations complete" in run["stdout"], run["stdout"]
        export = measure(folder, "export", "scale")
        figures = [png_size(p) for p in (folder / "storage" / "scale" / "figures").glob("*.png")]
        return {"size": size, "shape": f"{rows} x {cols}", "run": run, "export": export,
                "largest_px": max((max(f) for f in figures), default=0), "figures": len(figures)}
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    results = [run_size(size) for size in args.sizes]
    lines = [f"scale benchmark ({started}): near-no-op PItest_off grids, `larvastudy run FILE -j 2 --yes` from an "
             "empty SQLite storage, then `larvastudy export` alone; peak = largest process RSS"]
    for r in results:
        run, export = r["run"], r["export"]
        lines.append(f"{r['size']:>7,} simulations ({r['shape']}):  end to end {run['seconds']:6.1f} s "
                     f"({r['size'] / run['seconds']:6.0f} simulations/s), peak {run['peak_mb']:6.0f} MB;  "
                     f"export alone {export['seconds']:5.1f} s, peak {export['peak_mb']:5.0f} MB;  "
                     f"{r['figures']} figures, largest {r['largest_px']} px")
    for before, after in itertools.pairwise(results):
        grow = after["size"] / before["size"]
        lines.append(f"{after['size']:,} vs {before['size']:,} ({grow:.0f}x the simulations): end to end "
                     f"{after['run']['seconds'] / before['run']['seconds']:.1f}x, export "
                     f"{after['export']['seconds'] / before['export']['seconds']:.1f}x, peak memory "
                     f"{after['run']['peak_mb'] / before['run']['peak_mb']:.1f}x")
    report(lines, args.out)


if __name__ == "__main__":
    main()
