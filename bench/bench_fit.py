"""Fitting: how close grid, random and TPE get to the targets with the same budget, side by side.

Run: ``python bench/bench_fit.py [--budgets 16 49] [--seeds 3] [--out bench/results/fit.txt]``.

The problem is ``studies/chemotaxis_fit.toml``'s: targets are chemotaxis metrics (final and mean
distance to the source, v_mu; 30 larvae, 2 min) simulated 12 times at olfactory gain 137 and crawler
frequency 1.27 Hz (off every grid line), each scaled by its replicate SD; every sampler searches gain in [0, 600] x
frequency in [1.0, 1.6] Hz with a budget of points of 4 replicates each (the grid: a square grid of
that many points). Reported: the best point's target distance in SDs (lower is better), mean and
worst over ``--seeds`` Batch seeds, and the noise floor, the distance of the true parameters
re-simulated with other seeds. Every run starts from an empty SQLite storage.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import report

from larvastudy.engine import simulate_many
from larvastudy.execution import run_batch
from larvastudy.spec.batch import batch_from_kwargs
from larvastudy.study import load_study, open_storage, storage_url

#: Off every grid line (a grid through the truth would flatter the grid).
TRUTH = {"gain_dict.Odor": 137.0, "crawler.freq": 1.27}
RANGES = {"gain_dict.Odor": (0.0, 600.0), "crawler.freq": (1.0, 1.6)}
METRICS = ["final_dst_to_Source", "mean_dst_to_Source", "v_mu"]
FIXED = {"duration": 2.0, "Npoints": 30}
COMMON = {"fixed": FIXED, "Nsims": 4, "metrics": METRICS}


def targets() -> dict[str, dict[str, float]]:
    batch = batch_from_kwargs("chemotaxis", fixed={**FIXED, **TRUTH}, metrics=METRICS)
    results = simulate_many([(batch.base_tree(), 10_000 + seed) for seed in range(12)])
    values = {m: [r.value(m) for r in results] for m in METRICS}
    return {m: {"value": float(np.mean(v)), "scale": float(np.std(v, ddof=1))} for m, v in values.items()}


def best_distance(sampler: str, budget: int, seed: int, goal: dict[str, dict[str, float]]) -> float:
    if sampler == "grid":
        side = round(math.sqrt(budget))
        sample = {k: {"range": list(r), "Ngrid": side} for k, r in RANGES.items()}
    else:
        sample = {k: {"range": list(r)} for k, r in RANGES.items()}
    batch = batch_from_kwargs("chemotaxis", sample=sample, targets=goal, seed=seed, name="bench", **COMMON)
    with tempfile.TemporaryDirectory(prefix="larvastudy-bench-") as folder:
        url = storage_url(Path(folder) / "fit.db")
        options = {} if sampler == "grid" else {"sampler": sampler, "n_trials": budget}
        run_batch(batch, storage=url, n_jobs=2, **options)
        study, _ = load_study(open_storage(url), "bench" if sampler == "grid" else f"bench-{sampler}")
        if sampler != "grid":
            return float(study.best_value)
        by_point: dict[int, list] = {}
        for trial in study.trials:
            by_point.setdefault(trial.user_attrs["grid_point"], []).append(trial.user_attrs)
        return min(_distance({m: np.mean([a[m] for a in reps]) for m in METRICS}, goal) for reps in by_point.values())


def _distance(metrics: dict[str, float], goal: dict[str, dict[str, float]]) -> float:
    return math.sqrt(np.mean([((metrics[m] - t["value"]) / t["scale"]) ** 2 for m, t in goal.items()]))


def noise_floor(goal: dict[str, dict[str, float]], seeds: int) -> float:
    batch = batch_from_kwargs("chemotaxis", fixed={**FIXED, **TRUTH}, metrics=METRICS)
    floors = []
    for seed in range(seeds):
        results = simulate_many([(batch.base_tree(), 20_000 + 4 * seed + r) for r in range(4)])
        floors.append(_distance({m: np.mean([r.value(m) for r in results]) for m in METRICS}, goal))
    return float(np.mean(floors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 49],
                        help="points per sampler (a square for the grid)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    goal = targets()
    lines = [f"fit benchmark: chemotaxis, targets from gain 137 / crawler 1.27 Hz ({', '.join(METRICS)}), "
             f"points of 4 replicates, {args.seeds} seeds; distance = RMS error in replicate SDs (lower is better)",
             f"noise floor (true parameters, other seeds): {noise_floor(goal, args.seeds):.3f}"]
    for budget in args.budgets:
        results = {}
        for sampler in ("grid", "random", "tpe"):
            start = time.perf_counter()
            distances = [best_distance(sampler, budget, seed, goal) for seed in range(args.seeds)]
            results[sampler] = float(np.mean(distances))
            lines.append(f"budget {budget:3d}  {sampler:6s} best distance mean {results[sampler]:6.3f}  worst "
                         f"{max(distances):6.3f}  ({(time.perf_counter() - start) / args.seeds:.1f} s per fit)")
        lines.append(f"budget {budget:3d}  TPE {results['grid'] / results['tpe']:.2f}x closer than the grid, "
                     f"random search {results['grid'] / results['random']:.2f}x")
    report(lines, args.out)


if __name__ == "__main__":
    main()
