"""What worker processes run and give back: the contracts between the runs (sweep, fit) and the workers.

A :class:`Task` is one simulation to run; a grid sweep's are :class:`SweepTask` (a grid point of
``Batch.points()``), a fit's are :class:`FitTask` (a replicate of the point an Optuna trial suggested).
An :class:`Outcome` is what one task gave. :class:`TrialFactory` turns a sweep's outcomes into the trials
the study stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from optuna.trial import FrozenTrial, TrialState

from larvastudy.definition.batch import REPLICATE, Batch
from larvastudy.study.grid import GRID_ID, distributions, grid_ids


@dataclass(frozen=True, kw_only=True)
class Task:
    """One simulation to run: its replicate, seed and the point's parameter values (so a worker needs
    nothing else to run it)."""

    replicate: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SweepTask(Task):
    """One try of one simulation of a grid sweep: ``grid_point`` indexes ``Batch.points()``; ``attempt``
    numbers the tries of that simulation (1 for the first)."""

    grid_point: int
    attempt: int = 1


@dataclass(frozen=True, kw_only=True)
class FitTask(Task):
    """One replicate of the point that the fit's Optuna trial number ``trial_number`` suggested."""

    trial_number: int


TaskT = TypeVar("TaskT", bound=Task)


@dataclass(frozen=True)
class Outcome(Generic[TaskT]):
    """What one simulation gave: metric means and stds, the objective value, or an error."""

    task: TaskT
    metrics: dict[str, float]
    value: float | None
    error: str | None
    started: datetime
    finished: datetime


class TrialFactory:
    """Turns outcomes of one Batch's grid sweep into FrozenTrials in the layout the exporter reads.

    COMPLETE trials of a Cartesian grid carry GridSampler's ``grid_id`` system attribute, and nothing
    whose size grows with the grid: the search space is stored once on the study
    (:data:`~larvastudy.study.grid.SPACE_ATTR`). FAIL trials carry no ``grid_id``, so that GridSampler,
    unlike with its own failed trials (optuna#4721), still sees their grid point as unvisited. The
    ``tries`` user attribute numbers the tries of a simulation.
    """

    def __init__(self, batch: Batch):
        self._points = batch.points()
        self._dists = distributions(batch)
        self._grid_ids = grid_ids(batch) if batch.space.is_product else None

    def trial(self, outcome: Outcome[SweepTask]) -> FrozenTrial:
        task = outcome.task
        user_attrs: dict[str, Any] = {**outcome.metrics, "seed": task.seed, "grid_point": task.grid_point,
                                      "tries": task.attempt}
        system_attrs = {}
        if outcome.error is None:
            state = TrialState.COMPLETE
            if self._grid_ids is not None:
                system_attrs = {GRID_ID: int(self._grid_ids[task.grid_point, task.replicate])}
        else:
            state = TrialState.FAIL
            user_attrs["error"] = outcome.error
        params = {**self._points[task.grid_point], REPLICATE: task.replicate}
        return FrozenTrial(
            number=-1, trial_id=-1, state=state, value=outcome.value if outcome.error is None else None,
            values=None, datetime_start=outcome.started, datetime_complete=outcome.finished,
            params=params, distributions={name: self._dists[name] for name in params},
            user_attrs=user_attrs, system_attrs=system_attrs, intermediate_values={},
        )
