"""A Batch's grid in Optuna's terms: trial parameters, distributions and GridSampler bookkeeping.

In a plain Cartesian grid every trial carries the system attributes GridSampler writes
(``search_space`` and ``grid_id``), so ``optuna.load_study(..., sampler=grid_sampler(batch))`` treats
the study as its own grid study, and the numeric distributions let TPE or CMA-ES continue it later.
GridSampler knows only Cartesian products, so trials of zipped or nested spaces carry no such
attributes (their ``grid_point`` user attribute identifies the point).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.samplers import GridSampler

from larvastudy.spec.batch import REPLICATE, Batch


def search_space(batch: Batch) -> dict[str, list[Any]]:
    """GridSampler's search space of a Cartesian grid: every axis plus ``replicate``, sorted by name as
    GridSampler stores it."""
    space = {name: batch.space.values(name) for name in batch.parameters()}
    space[REPLICATE] = list(range(batch.Nsims))
    return {name: space[name] for name in sorted(space)}


def distributions(batch: Batch) -> dict[str, BaseDistribution]:
    """Each trial parameter's distribution: Int/Float over the axis's values, else categorical."""
    return {**batch.space.grid_distributions(), REPLICATE: IntDistribution(0, batch.Nsims - 1)}


def grid_sampler(batch: Batch) -> GridSampler | None:
    """The GridSampler a Cartesian grid study is a grid study of (seeded with the Batch seed); None for
    zipped or nested spaces, which GridSampler cannot express."""
    return GridSampler(search_space(batch), seed=batch.seed) if batch.space.is_product else None


def grid_ids(batch: Batch) -> np.ndarray:
    """``grid_ids(batch)[point, replicate]``: the GridSampler ``grid_id`` of each simulation of a
    Cartesian grid.

    GridSampler numbers the Cartesian product of the name-sorted axes after shuffling it with
    ``numpy.random.RandomState(seed)``; a shuffle's permutation depends only on the length, so
    shuffling the positions reproduces it (checked against GridSampler in the tests).
    """
    names = [*batch.parameters(), REPLICATE]
    sizes = [len(batch.space.values(name)) for name in batch.parameters()] + [batch.Nsims]
    order = sorted(range(len(names)), key=names.__getitem__)
    position = np.arange(int(np.prod(sizes))).reshape([sizes[k] for k in order]).transpose(np.argsort(order))
    shuffled = list(range(position.size))
    np.random.RandomState(batch.seed).shuffle(shuffled)
    grid_id = np.empty(position.size, dtype=np.int64)
    grid_id[shuffled] = np.arange(position.size)
    return grid_id[position].reshape(-1, batch.Nsims)
