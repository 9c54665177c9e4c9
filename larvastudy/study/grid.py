"""A Batch's grid in Optuna's terms: trial parameters, distributions and GridSampler bookkeeping.

Every trial carries the system attributes GridSampler writes (``search_space`` and ``grid_id``), so
``optuna.load_study(..., sampler=grid_sampler(batch))`` treats the study as its own grid study,
and the numeric distributions let TPE or CMA-ES continue it later.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import GridSampler

from larvastudy.spec.batch import REPLICATE, Batch


def search_space(batch: Batch) -> dict[str, list[Any]]:
    """GridSampler's search space: every axis plus ``replicate``, sorted by name as GridSampler stores it."""
    space = {**batch.sample, REPLICATE: list(range(batch.Nsims))}
    return {name: list(space[name]) for name in sorted(space)}


def distributions(batch: Batch) -> dict[str, BaseDistribution]:
    """Each trial parameter's distribution: Int/Float over the axis's range, else categorical."""
    dists: dict[str, BaseDistribution] = {}
    for axis, values in batch.sample.items():
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            dists[axis] = IntDistribution(min(values), max(values))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            dists[axis] = FloatDistribution(min(values), max(values))
        else:
            dists[axis] = CategoricalDistribution(values)
    dists[REPLICATE] = IntDistribution(0, batch.Nsims - 1)
    return dists


def grid_sampler(batch: Batch) -> GridSampler:
    """The GridSampler this study is a grid study of (seeded with the Batch seed)."""
    return GridSampler(search_space(batch), seed=batch.seed)


def grid_ids(batch: Batch) -> np.ndarray:
    """``grid_ids(batch)[point, replicate]``: the GridSampler ``grid_id`` of each simulation.

    GridSampler numbers the Cartesian product of the name-sorted axes after shuffling it with
    ``numpy.random.RandomState(seed)``; a shuffle's permutation depends only on the length, so
    shuffling the positions reproduces it (checked against GridSampler in the tests).
    """
    names = [*batch.sample, REPLICATE]
    sizes = [len(values) for values in batch.sample.values()] + [batch.Nsims]
    order = sorted(range(len(names)), key=names.__getitem__)
    position = np.arange(int(np.prod(sizes))).reshape([sizes[k] for k in order]).transpose(np.argsort(order))
    shuffled = list(range(position.size))
    np.random.RandomState(batch.seed).shuffle(shuffled)
    grid_id = np.empty(position.size, dtype=np.int64)
    grid_id[shuffled] = np.arange(position.size)
    return grid_id[position].reshape(-1, batch.Nsims)
