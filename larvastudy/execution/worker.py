"""Worker side: run a chunk of simulations in one engine call and reduce each to metrics and an objective."""

from __future__ import annotations

import ctypes
import itertools
import json
import math
import os
import queue
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from larvastudy.definition.batch import Batch, Optimization
from larvastudy.definition.objective import distance
from larvastudy.engine import SimResult
from larvastudy.execution.plan import simulation_cost
from larvastudy.execution.tasks import Outcome, Task, TaskT
from larvastudy.signals import STOP_SIGNALS

#: The engine seam: ``simulate(jobs)`` runs ``(config, seed)`` jobs and returns their results in order.
#: The default is :func:`larvastudy.engine.simulate_many`; benchmarks pass a no-op. It must be picklable
#: (a module-level function) where worker processes are spawned rather than forked.
Simulate = Callable[[Sequence[tuple[Mapping[str, Any], int]]], list[SimResult]]
#: Seconds between checks, while idle, that the parent process is still alive (where the kernel cannot tell us).
PARENT_CHECK = 1.0
#: ``prctl`` option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def objective(batch: Batch, result: SimResult) -> float:
    """One simulation's objective: the distance of its metric means to ``batch.targets``, else the
    objective metric reduced over larvae as ``batch.optimization`` says (absolute, mean or std)."""
    if batch.targets:
        return distance(batch.targets, result.summary())
    opt = batch.optimization or Optimization()
    values = result.per_larva[batch.objective_metric()]
    if opt.absolute:
        values = np.abs(values)
    return float(np.std(values) if opt.operator == "std" else np.mean(values))


def run_chunk(batch: Batch, tasks: Sequence[TaskT], simulate: Simulate) -> list[Outcome[TaskT]]:
    """Simulate ``tasks`` together; if that raises, one by one, so an error fails only its own trial.

    The simulations of one engine call run together, so each is given its share of the call's wall
    time, in proportion to its predicted cost, as consecutive start and finish times.
    """
    started = datetime.now()
    try:
        configs = _configs(batch, tasks)
        results = simulate([(config, t.seed) for config, t in zip(configs, tasks, strict=True)])
    except Exception as exc:  # any engine error becomes the trial's recorded error
        if len(tasks) > 1:
            return [outcome for task in tasks for outcome in run_chunk(batch, [task], simulate)]
        return [Outcome(tasks[0], {}, None, f"{type(exc).__name__}: {exc}", started, datetime.now())]
    edges = _shares(started, datetime.now(), [simulation_cost(config) for config in configs])
    return [_outcome(batch, task, result, start, end)
            for task, result, (start, end) in zip(tasks, results, itertools.pairwise(edges), strict=True)]


def _configs(batch: Batch, tasks: Sequence[Task]) -> list[Mapping[str, Any]]:
    """Each task's resolved tree, built once per point (a point's replicates share its parameter values)."""
    keys = [json.dumps(dict(task.params), sort_keys=True, default=repr) for task in tasks]
    trees: dict[str, Mapping[str, Any]] = {}
    for key, task in zip(keys, tasks, strict=True):
        if key not in trees:
            trees[key] = batch.config(task.params)
    return [trees[key] for key in keys]


def _shares(started: datetime, finished: datetime, costs: list[float]) -> list[datetime]:
    """``len(costs) + 1`` times from ``started`` to ``finished`` dividing the span in proportion to ``costs``."""
    span, total = finished - started, sum(costs)
    fractions = np.cumsum([0.0, *costs]) / total if total > 0 else np.linspace(0.0, 1.0, len(costs) + 1)
    return [started + span * float(f) for f in fractions[:-1]] + [finished]


def _outcome(batch: Batch, task: TaskT, result: SimResult, started: datetime, finished: datetime) -> Outcome[TaskT]:
    if result.error is not None:
        return Outcome(task, {}, None, result.error, started, finished)
    value = objective(batch, result)
    error = None if math.isfinite(value) else f"objective {batch.objective_name()} is {value}"
    return Outcome(task, result.summary(), value, error, started, finished)


def worker_main(batch: Batch, simulate: Simulate, inbox: Any, results: Any, worker_id: int, parent_pid: int) -> None:
    """Process entry point: run the chunks put in ``inbox``, put ``(worker_id, outcomes)`` in ``results``."""
    for sig in STOP_SIGNALS:  # a terminal's or scheduler's signal to the whole group is for the parent, which
        signal.signal(sig, signal.SIG_IGN)  # stops the workers itself (SIGKILL): none dies as a failed chunk
    _die_with(parent_pid)
    results.cancel_join_thread()  # never block at exit on a parent that is gone
    while True:
        try:
            tasks = inbox.get(timeout=PARENT_CHECK)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the parent was killed (where _die_with cannot tell the kernel)
                os._exit(0)  # skip interpreter cleanup: a lock inherited from another parent thread could hang it
            continue
        results.put((worker_id, run_chunk(batch, tasks, simulate)))


def _die_with(parent_pid: int) -> None:
    """On Linux, have the kernel kill this process the moment its parent dies (``PR_SET_PDEATHSIG``), even
    in the middle of a chunk; if the parent is already gone, exit now."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)
