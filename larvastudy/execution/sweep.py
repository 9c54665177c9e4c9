"""Running a Batch as an Optuna study: every (grid point, replicate) ends with exactly one COMPLETE trial.

The parent process is the only storage writer. It opens (or resumes) the study, lists the
simulations without a COMPLETE trial, has worker processes run them in chunks and records each
chunk's trials in one transaction as it arrives. A simulation that raises records a FAIL trial with
its error and the sweep goes on; rerunning the same sweep redoes exactly the missing simulations
(failed trials stay as history). Trials are written only once they are finished, so a kill -9 leaves
nothing half-done behind, and Ctrl-C stops the workers and records what was in flight as FAIL
"interrupted". A lock keeps a second process from sweeping the same SQLite study at the same time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from optuna.storages import RDBStorage

from larvastudy.errors import SpecError
from larvastudy.execution.plan import chunk, pending_tasks
from larvastudy.execution.pool import WorkerPool
from larvastudy.spec.batch import Batch
from larvastudy.study import (Outcome, TrialFactory, add_trials, completed, display_url, open_storage, open_study,
                              storage_url, sweep_lock)

#: ``progress(done, failed, total, elapsed)``: simulations complete (earlier runs included), failed in
#: this run, in the sweep, and seconds since the run started.
ProgressCallback = Callable[[int, int, int, float], None]


@dataclass(frozen=True)
class SweepSummary:
    """How a run left the study."""

    study_name: str
    storage_url: str  # password hidden
    complete: int
    failed: int  # failed in this run; they are rerun next time
    total: int
    elapsed: float
    already_finished: bool

    @property
    def finished(self) -> bool:
        return self.complete == self.total

    def __str__(self) -> str:
        where = f"study {self.study_name!r} in {self.storage_url}"
        if self.already_finished:
            return f"{where} is already complete ({self.total} simulations); nothing to run"
        failed = f", {self.failed} failed (their errors are on the FAIL trials; rerun to retry)" if self.failed else ""
        return f"{where}: {self.complete}/{self.total} simulations complete{failed} ({self.elapsed:.1f} s)"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; completed trials are stored and running it again resumes."""

    def __init__(self, summary: SweepSummary):
        super().__init__(f"interrupted: {summary.complete}/{summary.total} simulations of study "
                         f"{summary.study_name!r} are stored in {summary.storage_url}; "
                         "run the same sweep again to resume")
        self.summary = summary


def worker_count(n_jobs: int) -> int:
    """``n_jobs`` as a number of worker processes; -1 means one per CPU."""
    if n_jobs == -1:
        return os.cpu_count() or 1
    if not _positive_int(n_jobs):
        raise SpecError(f"n_jobs must be a whole number >= 1 (or -1 for every CPU), got {n_jobs!r}")
    return n_jobs


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def run_batch(batch: Batch, *, storage: str | None = None, study_name: str | None = None, n_jobs: int = 1,
              progress: ProgressCallback | None = None, allow_large: bool = False,
              chunk_size: int | None = None) -> SweepSummary:
    """Run (or resume) the sweep of ``batch`` in study ``study_name`` (default ``batch.name``).

    ``storage``: an Optuna RDB URL or SQLite path (default: see :func:`larvastudy.study.storage_url`).
    ``chunk_size``: simulations per engine call (default: automatic). Raises :class:`SpecError`
    before touching storage for a too-large grid or bad ``n_jobs``, and :class:`SweepInterrupted` on Ctrl-C.
    """
    batch.check_size(allow_large)
    n_workers = worker_count(n_jobs)
    if chunk_size is not None and not _positive_int(chunk_size):
        raise SpecError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    url, name = storage_url(storage), study_name or batch.name
    rdb = open_storage(url)
    with sweep_lock(url, name):
        study = open_study(batch, rdb, name)
        done = completed(study)
        run = _Run(batch, rdb, rdb.get_study_id_from_name(name), name, len(done), progress)
        tasks = pending_tasks(batch, done)
        if not tasks:
            return run.summary(already_finished=True)
        run.report()
        chunks = chunk(batch, tasks, n_workers, chunk_size)
        with WorkerPool(batch, min(n_workers, len(chunks))) as pool:
            try:
                for outcomes in pool.run(chunks):
                    run.record(outcomes)
            except KeyboardInterrupt:
                pool.terminate()
                now = datetime.now()
                run.record([Outcome(task, {}, None, "interrupted", now, now) for task in pool.in_flight()])
                raise SweepInterrupted(run.summary()) from None
        return run.summary()


class _Run:
    """Counts and records the trials of one run."""

    def __init__(self, batch: Batch, rdb: RDBStorage, study_id: int, name: str, complete: int,
                 progress: ProgressCallback | None):
        self._rdb, self._study_id, self._name, self._progress = rdb, study_id, name, progress
        self._factory = TrialFactory(batch)
        self._total, self._complete, self._failed = batch.grid_size, complete, 0
        self._start = time.monotonic()

    def record(self, outcomes: list[Outcome]) -> None:
        add_trials(self._rdb, self._study_id, [self._factory.trial(o) for o in outcomes])
        ok = sum(o.error is None for o in outcomes)
        self._complete += ok
        self._failed += len(outcomes) - ok
        self.report()

    def report(self) -> None:
        if self._progress is not None:
            self._progress(self._complete, self._failed, self._total, time.monotonic() - self._start)

    def summary(self, already_finished: bool = False) -> SweepSummary:
        return SweepSummary(self._name, display_url(self._rdb.url), self._complete, self._failed, self._total,
                            time.monotonic() - self._start, already_finished)
