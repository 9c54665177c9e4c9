"""Engine speed: one PItest_off simulation vs the 4x4 grid x 10 replicates batched, side by side.

Run: ``python bench/bench_engine.py [--repeat 3] [--out bench/results/engine.txt]``.
Single-threaded (one core): numpy here calls no BLAS in the hot loop.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import platform
import time
from pathlib import Path

import numpy as np

from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import simulate, simulate_many

from _report import report

LARVAWORLD_SECONDS = 210.0   # one PItest_off simulation in larvaworld 2.5.1 on this machine kind (issue 2)


def grid_jobs(replicates: int) -> list[tuple[dict, int]]:
    gains = np.linspace(-100, 100, 4)
    base = experiment_tree("PItest_off")
    return [(apply_overrides(base, {"gain_dict.CS": float(cs), "gain_dict.UCS": float(ucs)}), seed)
            for (cs, ucs), seed in itertools.product(itertools.product(gains, gains), range(replicates))]


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    single_job = (experiment_tree("PItest_off"), 0)   # the experiment as registered: CS 150, UCS 0
    jobs = grid_jobs(10)
    simulate(*single_job)   # warm caches (turner warm-up trajectory)
    single = best_of(args.repeat, lambda: simulate(*single_job))
    corrected_job = (apply_overrides(single_job[0], {"fidelity": "corrected"}), 0)
    corrected = best_of(args.repeat, functools.partial(simulate, *corrected_job))
    batched = best_of(args.repeat, lambda: simulate_many(jobs))
    steps = 3000
    larvae = 30
    lines = [
        f"engine benchmark  ({platform.python_implementation()} {platform.python_version()}, numpy {np.__version__},"
        f" {platform.machine()}, best of {args.repeat})",
        f"one PItest_off simulation (30 larvae x 3000 steps):   {single:7.3f} s"
        f"   {larvae * steps / single / 1e6:6.2f} M agent-steps/s   target <= 0.25 s",
        f"the same, fidelity 'corrected' (its circular arena):  {corrected:7.3f} s"
        f"   {larvae * steps / corrected / 1e6:6.2f} M agent-steps/s",
        f"160 PItest_off simulations batched (4x4 grid x 10):  {batched:7.3f} s"
        f"   {len(jobs) * larvae * steps / batched / 1e6:6.2f} M agent-steps/s   target <= 3 s",
        f"batched vs 160 x single:                            {160 * single / batched:7.2f} x faster",
        f"one simulation vs larvaworld 2.5.1 (~{LARVAWORLD_SECONDS:.0f} s, quoted): "
        f"{LARVAWORLD_SECONDS / single:7.0f} x faster",
        f"per simulation inside the batch vs larvaworld:       "
        f"{LARVAWORLD_SECONDS / (batched / len(jobs)):7.0f} x faster",
    ]
    # One line per experiment added since (issue 14): one simulation of each as registered, and larvastudy's odor
    # conditioning as the conditioning_mini Batch runs it (its trained, rewarded cell).
    conditioning = apply_overrides(experiment_tree("PItrain_mini"), {"model": "forager_RW", "fidelity": "corrected"})
    for name, tree, larvae_, steps_ in (
            ("PItrain_mini", experiment_tree("PItrain_mini"), 30, 600),
            ("PItrain", experiment_tree("PItrain"), 30, 24_000), ("anemotaxis", experiment_tree("anemotaxis"), 4, 300),
            ("tactile_detection", experiment_tree("tactile_detection"), 30, 360_000),
            ("growth", experiment_tree("growth"), 2, 864_000), ("conditioning_mini", conditioning, 30, 600)):
        seconds = best_of(args.repeat if steps_ <= 3000 else 1, functools.partial(simulate, tree, 0))
        lines.append(f"one {name} simulation ({larvae_} larvae x {steps_} steps):".ljust(60)
                     + f"{seconds:7.3f} s   {larvae_ * steps_ / seconds / 1e6:6.2f} M agent-steps/s")
    report(lines, args.out)


if __name__ == "__main__":
    main()
