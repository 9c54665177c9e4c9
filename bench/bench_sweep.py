"""End-to-end sweeps through the CLI, side by side with 1 and 2 worker processes.

Run: ``python bench/bench_sweep.py [--out bench/results/sweep.txt]``. Each run starts from an empty
SQLite storage in a temporary folder and includes start-up, storage and export.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CASES = [
    ("main job, PItest_off --nsims 10 (160 simulations)", ["PItest_off", "--nsims", "10"]),
    ("simulation-bound, PItest_off --nsims 40 (640 simulations)", ["PItest_off", "--nsims", "40"]),
]


def timed_run(args: list[str], jobs: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="larvastudy-bench-"))
    try:
        start = time.perf_counter()
        subprocess.run([shutil.which("larvastudy") or "larvastudy", "run", *args, "-j", str(jobs)],
                       cwd=folder, check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["sweep benchmark: `larvastudy run ...` wall time from an empty storage, start-up and export included"]
    for label, case in CASES:
        one, two = timed_run(case, 1), timed_run(case, 2)
        lines.append(f"{label}:  -j 1 {one:6.2f} s   -j 2 {two:6.2f} s   speed-up {one / two:4.2f}x")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
