"""Vectorized numpy re-implementation of the larvaworld 2.5.1 larva model (see docs/model.md).

``simulate(config, seed)`` runs one simulation; ``simulate_many(jobs)`` runs many at once, stepping
all larvae of all simulations that share a structure together. Both give bit-identical results for
the same (config, seed). ``check_config(config)`` only compiles one, so a definition's errors surface
before anything runs.

This is the engine's public API: larvastudy.definition imports only these names, never the submodules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from larvastudy.engine.loop import BatchRun
from larvastudy.engine.metrics import (
    BASE_METRICS,
    BOUT_METRICS,
    FEED_METRICS,
    GROWTH_METRICS,
    available_metrics,
    canonical,
    tree_metrics,
)
from larvastudy.engine.setup import CORRECTED, FIDELITIES, LARVAWORLD, Signature, compile_sim

__all__ = [
    "BASE_METRICS", "BOUT_METRICS", "CORRECTED", "FEED_METRICS", "FIDELITIES", "GROWTH_METRICS", "LARVAWORLD",
    "SimResult",
    "available_metrics", "canonical", "check_config", "simulate", "simulate_many", "tree_metrics",
]

#: Larvae stepped together at most; larger job lists are split into several batches.
MAX_BATCH_LARVAE = 20_000


@dataclass(frozen=True)
class SimResult:
    """Metrics of one simulation: ``per_larva[name]`` is an array with one value per larva; ``error``
    says why they mean nothing (the simulation diverged), else None."""

    seed: int
    per_larva: dict[str, np.ndarray]
    error: str | None = None

    def value(self, name: str, operator: str = "mean") -> float:
        """Metric ``name`` aggregated over larvae with ``operator`` ('mean' or 'std'), as a float."""
        values = self.per_larva[canonical(name)]
        if operator == "mean":
            return float(np.mean(values))
        if operator == "std":
            return float(np.std(values))
        raise ValueError(f"unknown operator {operator!r}; use 'mean' or 'std'")

    def summary(self) -> dict[str, float]:
        """Every metric's mean over larvae, plus ``<name>_std``."""
        out: dict[str, float] = {}
        for name in self.per_larva:
            out[name] = self.value(name)
            out[f"{name}_std"] = self.value(name, "std")
        return out


def check_config(config: Mapping[str, Any]) -> None:
    """A :class:`~larvastudy.errors.SpecError` if the engine cannot run the resolved experiment tree ``config``
    (an unknown choice, a value out of range, more memory than this machine has...); it compiles the
    simulation (seed 0) without running it."""
    compile_sim(config, seed=0)


def simulate(config: Mapping[str, Any], seed: int) -> SimResult:
    """Run one simulation of a resolved experiment tree."""
    return simulate_many([(config, seed)])[0]


def simulate_many(jobs: Sequence[tuple[Mapping[str, Any], int]]) -> list[SimResult]:
    """Run many (config, seed) simulations, batched by structure; results in job order."""
    setups = [compile_sim(config, seed) for config, seed in jobs]
    groups: dict[Signature, list[int]] = defaultdict(list)
    for i, setup in enumerate(setups):
        groups[setup.signature].append(i)
    results: dict[int, SimResult] = {}   # by job
    for indices in groups.values():
        for chunk in _chunks(indices, [setups[i].n for i in indices]):
            run = BatchRun([setups[i] for i in chunk])
            for i, per_larva, error in zip(chunk, run.run(), run.diverged(), strict=True):
                results[i] = SimResult(seed=int(jobs[i][1]), per_larva=per_larva, error=error)
    return [results[i] for i in range(len(jobs))]


def _chunks(indices: list[int], sizes: list[int]) -> list[list[int]]:
    chunks: list[list[int]] = [[]]
    total = 0
    for i, n in zip(indices, sizes, strict=True):
        if chunks[-1] and total + n > MAX_BATCH_LARVAE:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += n
    return chunks
