"""Fitting: how close grid, random and TPE get to the truth with the same budget, side by side.

Run: ``python bench/bench_fit.py [--budgets 16 49] [--seeds 3] [--out bench/results/fit.txt]``.

The problem is ``studies/chemotaxis_fit.toml``'s: targets are chemotaxis metrics (final and mean
distance to the source, v_mu; 30 larvae, 2 min) simulated 12 times at olfactory gain 137 and crawler
frequency 1.27 Hz (off every grid line), each scaled by its replicate SD; every sampler searches gain in
[0, 600] x frequency in [1.0, 1.6] Hz with a budget of points of 4 replicates each (the grid: a square
grid of that many points). Every run starts from an empty SQLite storage.

Each sampler's winner (its best point) is judged on evaluations that did not choose it: the winner is
re-simulated with :data:`FRESH` new seeds and its target distance measured there (the best value a fit
itself reports is the minimum over noisy evaluations, biased low: with 49 points it fell below the noise
floor). Reported per sampler, mean and worst over ``--seeds`` Batch seeds: that fresh distance in
replicate SDs, and the winner's parameter error against the truth (each parameter's error as a share of
its search range, the larger of the two). The noise floor is the truth's own distance with fresh seeds.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from larvastudy.api import run_batch
from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.engine import simulate_many
from larvastudy.study import load_study, open_storage, storage_url

from _report import report

#: Off every grid line (a grid through the truth would flatter the grid).
TRUTH = {"gain_dict.Odor": 137.0, "crawler.freq": 1.27}
RANGES = {"gain_dict.Odor": (0.0, 600.0), "crawler.freq": (1.0, 1.6)}
METRICS = ["final_dst_to_Source", "mean_dst_to_Source", "v_mu"]
FIXED = {"duration": 2.0, "Npoints": 30}
COMMON = {"fixed": FIXED, "Nsims": 4, "metrics": METRICS}
#: Fresh replicates a winner (and the truth, for the noise floor) is re-simulated with.
FRESH = 12


def targets() -> dict[str, dict[str, float]]:
    batch = batch_from_kwargs("chemotaxis", fixed={**FIXED, **TRUTH}, metrics=METRICS)
    results = simulate_many([(batch.base_tree(), 10_000 + seed) for seed in range(12)])
    values = {m: [r.value(m) for r in results] for m in METRICS}
    return {m: {"value": float(np.mean(v)), "scale": float(np.std(v, ddof=1))} for m, v in values.items()}


def winner(sampler: str, budget: int, seed: int, goal: dict[str, dict[str, float]]) -> dict[str, float]:
    """The parameters of the best point a sampler finds with ``budget`` points (grid: its best grid point)."""
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
            return {k: float(v) for k, v in study.best_params.items() if k in RANGES}
        by_point: dict[int, list] = {}
        for trial in study.trials:
            by_point.setdefault(trial.user_attrs["grid_point"], []).append(trial)
        best = min(by_point.values(), key=lambda reps: _distance(
            {m: np.mean([t.user_attrs[m] for t in reps]) for m in METRICS}, goal))
        return {k: float(best[0].params[k]) for k in RANGES}


def fresh_distance(params: dict[str, float], goal: dict[str, dict[str, float]], first_seed: int) -> float:
    """The target distance of ``params`` re-simulated with :data:`FRESH` seeds no fit has used."""
    batch = batch_from_kwargs("chemotaxis", fixed={**FIXED, **params}, metrics=METRICS)
    results = simulate_many([(batch.base_tree(), first_seed + r) for r in range(FRESH)])
    return _distance({m: np.mean([r.value(m) for r in results]) for m in METRICS}, goal)


def parameter_error(params: dict[str, float]) -> float:
    """The larger of the parameters' errors against the truth, each as a share of its search range."""
    return max(abs(params[k] - TRUTH[k]) / (hi - lo) for k, (lo, hi) in RANGES.items())


def _distance(metrics: dict[str, float], goal: dict[str, dict[str, float]]) -> float:
    return math.sqrt(np.mean([((metrics[m] - t["value"]) / t["scale"]) ** 2 for m, t in goal.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 49],
                        help="points per sampler (a square for the grid)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    goal = targets()
    floor = np.mean([fresh_distance(TRUTH, goal, 20_000 + FRESH * s) for s in range(args.seeds)])
    lines = [f"fit benchmark: chemotaxis, targets from gain 137 / crawler 1.27 Hz ({', '.join(METRICS)}), "
             f"points of 4 replicates, {args.seeds} seeds; each winner re-simulated with {FRESH} fresh seeds: "
             "distance = RMS error in replicate SDs, parameter error = share of the search range (lower is better)",
             f"noise floor (the true parameters, {FRESH} fresh seeds): distance {floor:.3f}"]
    for budget in args.budgets:
        results = {}
        for sampler in ("grid", "random", "tpe"):
            start = time.perf_counter()
            winners = [winner(sampler, budget, seed, goal) for seed in range(args.seeds)]
            elapsed = (time.perf_counter() - start) / args.seeds
            distances = [fresh_distance(w, goal, 40_000 + FRESH * seed) for seed, w in enumerate(winners)]
            errors = [parameter_error(w) for w in winners]
            results[sampler] = float(np.mean(distances))
            lines.append(f"budget {budget:3d}  {sampler:6s} winner's fresh distance mean {results[sampler]:6.3f}  "
                         f"worst {max(distances):6.3f};  parameter error mean {np.mean(errors):5.1%}  worst "
                         f"{max(errors):5.1%}  ({elapsed:.1f} s per fit)")
        lines.append(f"budget {budget:3d}  fresh distance: TPE {results['grid'] / results['tpe']:.2f}x closer than "
                     f"the grid, random search {results['grid'] / results['random']:.2f}x")
    report(lines, args.out)


if __name__ == "__main__":
    main()
