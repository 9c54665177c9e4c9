"""What a sweep runs: deterministic seeds, its simulations, and how many a claim takes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from larvastudy.spec.batch import Batch
from larvastudy.study.records import Task

#: ``progress(done, failed, total, elapsed)``: simulations (grid sweeps) or trials (fits) complete,
#: earlier runs included; failed in this run; in the sweep or trial budget; seconds since the run started.
ProgressCallback = Callable[[int, int, int, float], None]
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


def all_tasks(batch: Batch) -> list[Task]:
    """Every (grid point, replicate) in grid order: task ``i`` is point ``i // Nsims``, replicate ``i % Nsims``."""
    return [Task(i, r, trial_seed(batch, point, r), params=point)
            for i, point in enumerate(batch.points()) for r in range(batch.Nsims)]


def claim_size(batch: Batch, pending: int, n_workers: int, chunk_size: int | None = None) -> int:
    """Simulations per claim, i.e. per engine call: ``chunk_size``, or automatically.

    Automatic: at most about :data:`CHUNK_LARVAE` larvae per call, with the ``pending`` simulations
    split into equal calls whose number is a multiple of ``n_workers``, so every worker gets the same
    share (an odd call out would leave one worker idle at the end).
    """
    if chunk_size is not None:
        return chunk_size
    groups = batch.config(batch.points()[0])["larva_groups"].values()
    per_call = CHUNK_LARVAE // max(1, sum(int(g["distribution"]["N"]) for g in groups))
    calls = n_workers * math.ceil(pending / (max(1, per_call) * n_workers))
    return max(1, math.ceil(pending / calls))
