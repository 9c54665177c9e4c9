"""What a sweep runs: deterministic seeds, its simulations, what each costs, and how much a claim takes."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from larvastudy.definition import paths
from larvastudy.definition.batch import Batch
from larvastudy.execution.tasks import Outcome, SweepTask

#: ``progress(done, failed, total, elapsed)``: simulations (grid sweeps) or trials (fits) complete,
#: earlier runs included; failed in this run; in the sweep or trial budget; seconds since the run started.
ProgressCallback = Callable[[int, int, int, float], None]
#: Seconds of engine work one claim aims at: short enough that progress moves smoothly, a stopped or dead
#: process loses little and a worker joining a running sweep soon gets work; long enough that the engine
#: steps hundreds of larvae together (a step's fixed cost equals that of a few hundred larvae).
CLAIM_SECONDS = 1.5
#: Engine seconds per agent-step (one larva, one time step) before any is measured: about the engine
#: benchmark's batched throughput (bench/results/engine.txt, 5.2 M agent-steps/s).
SECONDS_PER_AGENT_STEP = 2e-7
#: A simulation's fixed cost (its config, setup, metrics and trial) in agent-steps: about 1.5 ms.
SIMULATION_OVERHEAD = 8000.0
#: Weight of the newest measurement in the running estimate of seconds per agent-step.
_LEARNING_RATE = 0.5
#: Resolved parameter paths that set how much work a simulation is.
_COST_KEYS = ("duration", "dt", "distribution.N")


def trial_seed(batch: Batch, point: Mapping[str, Any], replicate: int) -> int:
    """The simulation seed of (grid point, replicate): a hash of the Batch seed, the values and the replicate.

    It never depends on trial numbers or run order, so reruns and resumes reproduce results exactly.
    48 bits keep it exact in JSON readers that use doubles (the dashboard).
    """
    key = json.dumps([batch.seed, dict(point), replicate], sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "big")


def all_tasks(batch: Batch) -> list[SweepTask]:
    """Every (grid point, replicate) in grid order: task ``i`` is point ``i // Nsims``, replicate ``i % Nsims``."""
    return [SweepTask(grid_point=i, replicate=r, seed=trial_seed(batch, point, r), params=point)
            for i, point in enumerate(batch.points()) for r in range(batch.Nsims)]


def simulation_cost(config: Mapping[str, Any]) -> float:
    """Predicted work of one simulation of a resolved tree, in agent-steps: larvae x time steps plus
    :data:`SIMULATION_OVERHEAD` (just the overhead where the tree is invalid: the engine will say why)."""
    try:
        larvae = sum(int(group["distribution"]["N"]) for group in config["larva_groups"].values())
        steps = float(config["duration"]) * 60.0 / float(config["dt"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return SIMULATION_OVERHEAD
    return max(0.0, larvae * steps) + SIMULATION_OVERHEAD if math.isfinite(steps) else SIMULATION_OVERHEAD


def point_costs(batch: Batch) -> np.ndarray:
    """:func:`simulation_cost` of every grid point, resolving one tree per distinct value of the axes that
    set duration, time step or group sizes (one tree in all for most sweeps)."""
    points = batch.points()
    contexts = batch.space.covering_points()
    cost_axes = [axis for axis in batch.parameters()
                 if any(path.endswith(_COST_KEYS) for path in
                        paths.resolve(batch.config(next(p for p in contexts if axis in p)), axis))]
    by_key: dict[str, float] = {}
    costs = np.empty(len(points))
    for i, point in enumerate(points):
        key = repr([point.get(axis) for axis in cost_axes])
        if key not in by_key:
            by_key[key] = simulation_cost(batch.config(point))
        costs[i] = by_key[key]
    return costs


class ClaimSizer:
    """How much work one claim takes: about :data:`CLAIM_SECONDS` of engine time, from predicted costs
    (agent-steps) and the throughput measured on the chunks run so far.

    Near the end of a sweep a claim takes its fair share instead, so that the workers finish together:
    the work left plus what the other workers' claims still have to run, split over ``n_workers``,
    once that is at most 1.5 claims; but never less than half a claim, since every engine call has a
    fixed cost too.
    ``chunk_size`` fixes the number of simulations per claim instead.
    """

    def __init__(self, n_workers: int, pending_work: float, chunk_size: int | None = None):
        self.chunk_size = chunk_size
        self._workers, self._pending = n_workers, pending_work
        self._running: dict[Hashable, tuple[float, float]] = {}  # claim -> (its work, when it was claimed)
        self._seconds_per_step = SECONDS_PER_AGENT_STEP

    def work(self) -> float:
        """Agent-steps the next claim should hold (infinite with a fixed ``chunk_size``)."""
        if self.chunk_size is not None:
            return math.inf
        most = CLAIM_SECONDS / self._seconds_per_step
        now = time.monotonic()
        running = sum(max(0.0, work - (now - since) / self._seconds_per_step) for work, since in self._running.values())
        share = (self._pending + running) / self._workers
        return most if share > 1.5 * most else max(share, most / 2)

    def claimed(self, claim: Hashable, work: float) -> None:
        """``claim`` (any key naming it until it ends) of ``work`` agent-steps now runs."""
        self._pending = max(0.0, self._pending - work)
        self._running[claim] = (work, time.monotonic())

    def finished(self, claim: Hashable, seconds: float | None) -> None:
        """``claim`` ended; ``seconds``: how long it took, if it ran without errors."""
        work, _ = self._running.pop(claim)
        if work > 0 and seconds is not None and seconds > 0:
            self._seconds_per_step += _LEARNING_RATE * (seconds / work - self._seconds_per_step)


def chunk_seconds(outcomes: Sequence[Outcome[Any]]) -> float:
    """Wall time of the engine call that produced ``outcomes``, from its first start to its last end."""
    start = min(o.started for o in outcomes)
    return (max(o.finished for o in outcomes) - start).total_seconds()
