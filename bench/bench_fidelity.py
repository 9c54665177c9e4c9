"""What each of larvaworld 2.5.1's bugs changes: both ``fidelity`` models and each deviation alone, side by side.

For every condition, the same seeds run larvaworld's model (all of ``engine.setup.UPSTREAM_BUGS``), the
corrected one (none), and larvaworld's with one bug fixed (deviation k of docs/model.md alone). Each cell is the
mean over seeds of a metric's mean over larvae, ± its standard error; ``*`` marks a cell that differs from
larvaworld's model by more than 3 combined standard errors (paired seeds make that conservative).

Run: ``python bench/bench_fidelity.py [--seeds 20] [--out bench/results/fidelity.txt]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine.loop import BatchRun
from larvastudy.engine.setup import UPSTREAM_BUGS, compile_sim

from _report import report

#: name: (experiment, overrides, metrics shown)
CONDITIONS = {
    "dish (30 explorers, 5 min)": ("dish", {}, ["v_mu", "exec_fraction", "num_pauses", "num_stridechains",
                                                "dsp_0_60"]),
    "PItest_off (30 navigator_x2, CS 150 / UCS 0, 5 min)": ("PItest_off", {}, ["PI", "PI2", "v_mu",
                                                                               "num_pauses", "dsp_0_60"]),
    "chemotaxis (8 navigators, default gain 150, 5 min)": ("chemotaxis", {}, ["final_dst_to_Source", "v_mu",
                                                                       "num_pauses", "dsp_0_60"]),
    "chemotaxis (8 navigators, gain 1300, 5 min)": ("chemotaxis", {"gain_dict.Odor": 1300.0},
                                                    ["final_dst_to_Source", "v_mu", "num_pauses", "dsp_0_60"]),
    "food_grid (5 feeders, 10 min)": ("food_grid", {}, ["amount_eaten", "num_pauses", "num_stridechains",
                                                        "num_feeds", "v_mu", "exec_fraction"]),
    "patchy_food (30 foragers, 10 min)": ("patchy_food", {}, ["amount_eaten", "on_food_dur_ratio", "num_pauses",
                                                              "num_feeds", "v_mu"]),
    "anemotaxis (30 explorers, windsensor bend_ang 0.01, 0.5 min)": (
        "anemotaxis", {"Npoints": 30, "windsensor.weights.bend_ang": 0.01}, ["anemotaxis", "cum_dst", "v_mu"]),
    "tactile_detection (30 toucher_2 on the patch, initial_gain 75, 1 min)": (
        "tactile_detection", {"model": "toucher_2", "initial_gain": 75.0, "distribution.mode": "uniform",
                              "distribution.scale": [0.003, 0.003], "duration": 1.0},
        ["cum_food_detected", "v_mu", "num_pauses"]),
    "growth (a rover and a sitter, 60 min)": ("growth", {"duration": 60.0}, ["reserve_density", "deb_length",
                                                                             "deb_f_deviation", "num_feeds"]),
}
LARVAWORLD, CORRECTED = frozenset(UPSTREAM_BUGS), frozenset()
#: Column name: the bugs reproduced.
VARIANTS = {"larvaworld": LARVAWORLD, "corrected": CORRECTED,
            **{f"fix {k}": LARVAWORLD - {bug} for bug, k in UPSTREAM_BUGS.items()}}


def run(experiment: str, overrides: dict, metrics: list[str], bugs: frozenset[str], seeds: int) -> dict:
    """Per metric, the per-simulation means over larvae, one per seed."""
    tree = apply_overrides(experiment_tree(experiment), overrides)
    tree["metrics"] = metrics
    results = BatchRun([compile_sim(tree, seed, bugs) for seed in range(seeds)]).run()
    return {m: np.array([r[m].mean() for r in results]) for m in metrics}


def cell(values: np.ndarray, reference: np.ndarray | None) -> str:
    if not np.isfinite(values).all():   # the simulations' state overflowed (BatchRun.diverged)
        return f"{np.count_nonzero(~np.isfinite(values))}/{values.size} diverged"
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
    mark = ""
    if reference is not None:
        ref_se = reference.std(ddof=1) / np.sqrt(reference.size)
        mark = "*" if abs(mean - reference.mean()) > 3 * np.hypot(se, ref_se) else ""
    return f"{mean:.4g}±{se:.2g}{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    lines = [f"fidelity benchmark  ({platform.python_implementation()} {platform.python_version()}, "
             f"numpy {np.__version__}, {args.seeds} seeds per cell)",
             "columns: larvaworld = fidelity 'larvaworld-2.5.1'; corrected = 'corrected'; fix k = larvaworld's "
             "model with only deviation k of docs/model.md applied",
             "deviations: " + ", ".join(f"{k} {bug}" for bug, k in UPSTREAM_BUGS.items()),
             "* = differs from larvaworld's model by more than 3 combined standard errors"]
    width = 18
    for name, (experiment, overrides, metrics) in CONDITIONS.items():
        measured = {variant: run(experiment, overrides, metrics, bugs, args.seeds)
                    for variant, bugs in VARIANTS.items()}
        lines += ["", name, f"{'metric':<20}" + "".join(f"{v:>{width}}" for v in VARIANTS)]
        for metric in metrics:
            reference = measured["larvaworld"][metric]
            lines.append(f"{metric:<20}" + "".join(
                f"{cell(measured[v][metric], None if v == 'larvaworld' else reference):>{width}}" for v in VARIANTS))
    lines += ["", f"wall time {time.perf_counter() - start:.0f} s"]
    report(lines, args.out)


if __name__ == "__main__":
    main()
