"""A Batch's grid in Optuna's terms: trial parameters, distributions and GridSampler bookkeeping.

Optuna's own GridSampler gives every trial two system attributes: ``grid_id`` and a copy of the whole
``search_space``, whose ``replicate`` axis alone holds Nsims values, so a study of points x Nsims
trials would grow with points x Nsims^2 (306 MB for 2 x 5,000 simulations; bench/results/storage.txt). A larvastudy
grid study instead stores the search space once, as the study system attribute :data:`SPACE_ATTR`,
and its trials carry only ``grid_id``. :func:`grid_sampler` returns a :class:`BatchGridSampler`, a
GridSampler that counts those trials as visited (and Optuna's own, which carry their space), so
``optuna.load_study(..., sampler=grid_sampler(batch))`` treats the study as its own grid study; the
numeric distributions let TPE or CMA-ES continue it later.

GridSampler knows only Cartesian products, so trials of zipped or nested spaces carry no such
attributes (their ``grid_point`` user attribute identifies the point).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState

from larvastudy.definition.batch import REPLICATE, Batch
from larvastudy.study import optuna_internals as internals
from larvastudy.study.distributions import grid_distributions

#: Study system attribute holding the grid's search space, shared by the trials that carry only ``grid_id``.
SPACE_ATTR = "larvastudy:search_space"
#: GridSampler's trial system attributes: the grid point's index, and (Optuna's trials only) the search space.
GRID_ID, SEARCH_SPACE = "grid_id", "search_space"
_logger = optuna.logging.get_logger(__name__)


def search_space(batch: Batch) -> dict[str, list[Any]]:
    """GridSampler's search space of a Cartesian grid: every axis plus ``replicate``, sorted by name as
    GridSampler stores it."""
    space = {name: batch.space.values(name) for name in batch.parameters()}
    space[REPLICATE] = list(range(batch.Nsims))
    return {name: space[name] for name in sorted(space)}


def distributions(batch: Batch) -> dict[str, BaseDistribution]:
    """Each trial parameter's distribution: Int/Float over the axis's values, else categorical."""
    return {**grid_distributions(batch.space), REPLICATE: IntDistribution(0, batch.Nsims - 1)}


def grid_sampler(batch: Batch) -> BatchGridSampler | None:
    """The GridSampler a Cartesian grid study is a grid study of (seeded with the Batch seed); None for
    zipped or nested spaces, which GridSampler cannot express."""
    return BatchGridSampler(search_space(batch), seed=batch.seed) if batch.space.is_product else None


def share_space(study: optuna.Study, space: dict[str, list[Any]]) -> bool:
    """Whether ``space`` is the study's shared search space (:data:`SPACE_ATTR`), which a study without
    one gets: the first process to set it wins (Optuna's storage ignores the loser's duplicate insert)."""
    storage, study_id = internals.storage_of(study), internals.study_id(study)
    if SPACE_ATTR not in storage.get_study_system_attrs(study_id):
        storage.set_study_system_attr(study_id, SPACE_ATTR, space)
    return same_space(storage.get_study_system_attrs(study_id)[SPACE_ATTR], space)


def same_space(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    """Whether two search spaces are equal as GridSampler compares them (1 == 1.0, NaN == NaN)."""
    return a.keys() == b.keys() and all(len(a[k]) == len(b[k]) and all(map(_equal, a[k], b[k])) for k in a)


def _equal(x: Any, y: Any) -> bool:
    return x == y or (isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y))


class BatchGridSampler(GridSampler):
    """A GridSampler whose trials carry only ``grid_id``, the search space being the study's :data:`SPACE_ATTR`.

    It overrides two GridSampler internals (optuna is pinned ``<6``; ``tests/test_hardening_storage.py``
    fails if they change): :meth:`_get_unvisited_grid_ids` counts a trial as visited if it carries
    Optuna's per-trial ``search_space`` equal to this one, or only ``grid_id`` in a study whose shared
    space is this one; :meth:`before_trial` records only ``grid_id``, taking the trial's number if that
    point is free (GridSampler's duplicate-free first pass on a fresh study) or else a random free point,
    since a larvastudy sweep's trial numbers are not its grid ids. In a study whose shared space is
    another grid's, it records trials exactly as GridSampler does.
    """

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if GRID_ID in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        if not share_space(study, self._search_space):
            super().before_trial(study, trial)
            return
        free = self._get_unvisited_grid_ids(study)
        if not free:
            _logger.warning("the grid is exhausted: GridSampler re-evaluates a configuration")
            free = list(range(self._n_min_trials))
        grid_id = trial.number if trial.number in set(free) else int(self._rng.rng.choice(free))
        internals.storage_of(study).set_trial_system_attr(internals.trial_id(trial), GRID_ID, grid_id)

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        storage, study_id = internals.storage_of(study), internals.study_id(study)
        shared = same_space(storage.get_study_system_attrs(study_id).get(SPACE_ATTR) or {}, self._search_space)
        visited, running = set(), set()
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            attrs = trial.system_attrs
            if GRID_ID in attrs and (shared if SEARCH_SPACE not in attrs else same_space(attrs[SEARCH_SPACE],
                                                                                    self._search_space)):
                if trial.state.is_finished():
                    visited.add(attrs[GRID_ID])
                elif trial.state == TrialState.RUNNING:
                    running.add(attrs[GRID_ID])
        every = set(range(self._n_min_trials))
        return sorted(every - visited - running or every - visited)


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
