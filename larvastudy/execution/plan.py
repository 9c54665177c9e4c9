"""What a sweep still has to run: deterministic seeds, the missing simulations, engine-call chunks."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from larvastudy.spec.batch import Batch
from larvastudy.study.records import Task

#: Larvae per engine call the automatic chunking aims at. The engine steps a chunk's larvae together,
#: and a step's fixed cost equals that of a few hundred larvae, so chunks of this size spend little on it.
CHUNK_LARVAE = 4000


def trial_seed(batch: Batch, point: Mapping[str, Any], replicate: int) -> int:
    """The simulation seed of (grid point, replicate): a hash of the Batch seed, the values and the replicate.

    It never depends on trial numbers or run order, so reruns and resumes reproduce results exactly.
    48 bits keep it exact in JSON readers that use doubles (the dashboard).
    """
    key = json.dumps([batch.seed, dict(point), replicate], sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "big")


def pending_tasks(batch: Batch, done: set[tuple[int, int]]) -> list[Task]:
    """Every (grid point, replicate) not in ``done``, in grid order."""
    return [Task(i, r, trial_seed(batch, point, r))
            for i, point in enumerate(batch.points()) for r in range(batch.Nsims) if (i, r) not in done]


def chunk(batch: Batch, tasks: list[Task], n_workers: int, chunk_size: int | None = None) -> list[list[Task]]:
    """Split ``tasks`` into contiguous engine calls: at most ``chunk_size`` simulations each, or automatically.

    Automatic: about :data:`CHUNK_LARVAE` larvae per call, at least one call per worker, and a
    multiple of ``n_workers`` calls of equal size so that the workers finish together.
    """
    if chunk_size is not None:
        n_chunks = math.ceil(len(tasks) / chunk_size)
    else:
        groups = batch.config(batch.points()[tasks[0].point])["larva_groups"].values()
        larvae = len(tasks) * sum(int(g["distribution"]["N"]) for g in groups)
        n_chunks = n_workers * math.ceil(larvae / CHUNK_LARVAE / n_workers)
    n_chunks = max(1, min(len(tasks), n_chunks))
    size, extra = divmod(len(tasks), n_chunks)
    bounds = [i * size + min(i, extra) for i in range(n_chunks + 1)]
    return [tasks[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
