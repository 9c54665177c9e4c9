"""Bookkeeping speed: naive ``study.optimize`` + GridSampler vs larvastudy, both with no-op simulations.

Run: ``python bench/bench_bookkeeping.py [--out bench/results/bookkeeping.txt] [--budget 150] [--no-postgres]``.
Each case starts from an empty database (a SQLite file in a temporary folder, or a throwaway
PostgreSQL 15 server). larvastudy's figure is its whole ``run_batch`` (setup, claims, one worker
process, trial writes) with ``simulate`` a no-op, so what is left is bookkeeping. The naive side's
objective suggests the grid parameters and returns 0; it stops after ``--budget`` seconds, and as it
slows down as the study grows, its rate over the trials it did is an upper bound for a full run.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import optuna

from larvastudy.api import run_batch
from larvastudy.definition.batch import Batch, batch_from_kwargs
from larvastudy.engine import SimResult
from larvastudy.study import search_space

#: The throwaway PostgreSQL server of the tests (tests/pgserver.py: test infrastructure, not in the package).
_PGSERVER = Path(__file__).resolve().parents[1] / "tests" / "pgserver.py"


def _load_pgserver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pgserver", _PGSERVER)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_PGSERVER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pgserver = _load_pgserver()

SIZES = (1_000, 10_000)


def noop_simulate(jobs: Sequence[tuple[Mapping[str, Any], int]]) -> list[SimResult]:
    """The engine seam with no simulation: every metric of every job is 0 for one larva."""
    return [SimResult(seed, {name: np.zeros(1) for name in config["metrics"]}) for config, seed in jobs]


def grid(size: int) -> Batch:
    """A 10 x 10-point dish grid with ``size / 100`` replicates."""
    sample = {"Npoints": list(range(2, 12)), "crawler.freq": [round(1.0 + 0.1 * i, 1) for i in range(10)]}
    return batch_from_kwargs(experiment="dish", sample=sample, fixed={"duration": 0.05}, Nsims=size // 100,
                             name=f"bench{size}")


def larvastudy_rate(batch: Batch, url: str) -> tuple[int, float]:
    start = time.perf_counter()
    summary = run_batch(batch, storage=url, simulate=noop_simulate)
    assert summary.complete == batch.grid_size
    return summary.complete, time.perf_counter() - start


def naive_rate(batch: Batch, url: str, budget: float) -> tuple[int, float]:
    space = search_space(batch)
    study = optuna.create_study(study_name=f"naive{batch.grid_size}", storage=url,
                                sampler=optuna.samplers.GridSampler(space, seed=batch.seed))
    start = time.perf_counter()
    study.optimize(lambda trial: [trial.suggest_categorical(k, v) for k, v in space.items()] and 0.0,
                   n_trials=batch.grid_size, timeout=budget)
    elapsed = time.perf_counter() - start
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))), elapsed


def compare(label: str, database: Callable[[], AbstractContextManager[str]], budget: float) -> list[str]:
    lines = []
    for size in SIZES:
        batch = grid(size)
        with database() as url:
            done, seconds = naive_rate(batch, url, budget)
            ours, our_seconds = larvastudy_rate(batch, url)
        naive, fast = done / seconds, ours / our_seconds
        partial = "" if done == size else f" (stopped at {done} after {seconds:.0f} s)"
        lines.append(f"{label:10s} {size:6d} trials:  naive {naive:8.1f} trials/s{partial}   "
                     f"larvastudy {fast:8.1f} trials/s ({our_seconds:.1f} s)   ratio {fast / naive:6.1f}x")
        print(lines[-1], flush=True)
    return lines


@contextmanager
def sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="larvastudy-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per naive case (default 150)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines = ["bookkeeping benchmark: no-op simulations, trials/s from an empty database "
             f"(naive: study.optimize + GridSampler, capped at {args.budget:.0f} s; larvastudy: run_batch, 1 worker)"]
    lines += compare("SQLite", sqlite_file, args.budget)
    if args.no_postgres or not pgserver.available():
        lines.append("PostgreSQL: skipped" + ("" if args.no_postgres else " (no server binaries or psycopg)"))
    else:
        lines += compare("PostgreSQL", pgserver.temporary_postgres, args.budget)
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
