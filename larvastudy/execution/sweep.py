"""Running a Batch as an Optuna study: every (grid point, replicate) ends with exactly one COMPLETE trial.

Any number of processes, on any machines sharing the storage, can run the same sweep at once: each
claims batches of simulations in the study's claim table (:mod:`larvastudy.study.claims`), runs them
in its worker processes, keeps its claims leased with a heartbeat, and stores each batch's trials in
one transaction, only for the claims it still holds. A process returns once no simulation is left
pending or running. One that dies (kill -9, machine lost) leaves claims whose lease expires after
``grace`` seconds (at once for a dead process of this machine and PID namespace); the others then rerun
them and keep the lost try in the claims' audit table. A claim holds about a second or two of engine work
(:class:`~larvastudy.execution.plan.ClaimSizer`), so progress moves smoothly, a lost process costs little
and a process that joins gets work at once. A simulation that raises records a FAIL trial with its error
and is retried up to ``retries`` times; after that it is given up until the next run or worker starts.

Ctrl-C, SIGTERM or SIGHUP stops a run within about two seconds: the chunks that finish in that time are
stored, and what was still claimed goes back to pending (kept in the audit table, no FAIL trial).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from optuna.storages import RDBStorage

from larvastudy.definition.batch import Batch
from larvastudy.definition.space import is_int, is_number
from larvastudy.engine import simulate_many
from larvastudy.errors import SpecError
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.heartbeat import Heartbeat
from larvastudy.execution.interrupted import RunInterrupted
from larvastudy.execution.plan import ClaimSizer, ProgressCallback, all_tasks, chunk_seconds, point_costs
from larvastudy.execution.pool import WorkerPool
from larvastudy.execution.tasks import Outcome, SweepTask
from larvastudy.execution.worker import Simulate
from larvastudy.signals import check_stop, forget_stop, stop_on_signals, stop_signal, uninterrupted
from larvastudy.study import (
    completed,
    display_url,
    open_storage,
    open_study,
    setup_lock,
    storage_url,
)
from larvastudy.study import optuna_internals as internals
from larvastudy.study.claims import DONE, PENDING, RUNNING, STALE
from larvastudy.study.delete import replace_study
from larvastudy.study.study import stored_batch

#: Seconds a claim stays leased without a heartbeat: how long a dead machine's simulations wait to be rerun.
GRACE = 60.0
#: The allowed range of ``grace``. The heartbeat renews leases every ``grace / 4`` seconds: below 2 s a
#: renewal waiting on a busy database could come too late and other processes would take live claims.
MIN_GRACE, MAX_GRACE = 2.0, 86_400.0
#: Seconds between checks, once nothing is left to claim, for simulations other processes finish or lose.
WAIT = 1.0
#: Seconds a stopped run waits for the chunks its workers are running, to store them.
STOP_WAIT = 1.5
#: Simulations a claim takes at most (bounds one claim's query however cheap the simulations are).
MAX_CLAIM = 20_000


@dataclass(frozen=True)
class SweepSummary:
    """How a run left the study."""

    unit: ClassVar[str] = "simulations"  # what ``complete``, ``failed`` and ``total`` count

    study_name: str
    storage_url: str  # password hidden
    complete: int
    failed: int  # given up by this run after their retries; they are rerun next time
    total: int
    elapsed: float
    already_finished: bool
    ran: int = 0  # simulations whose COMPLETE or FAIL trial this run stored
    released: int = 0  # simulations a stopped run gave back as pending

    @property
    def finished(self) -> bool:
        return self.complete == self.total

    def __str__(self) -> str:
        where = f"study {self.study_name!r} in {self.storage_url}"
        if self.already_finished:
            return f"{where} is already complete ({self.total} simulations); nothing to run"
        failed = f", {self.failed} failed (their errors are on the FAIL trials; rerun to retry)" if self.failed else ""
        return f"{where}: {self.complete}/{self.total} simulations complete{failed} ({self.elapsed:.1f} s)"


class SweepInterrupted(RunInterrupted):
    """Ctrl-C, SIGTERM or SIGHUP (``signum``) stopped the sweep; finished simulations are stored, the rest are
    pending, and running the sweep again resumes it."""

    released_as = "are pending again"
    again = "run the same sweep again to resume"


def worker_count(n_jobs: int) -> int:
    """``n_jobs`` as a number of worker processes; -1 means one per CPU."""
    if n_jobs == -1:
        return os.cpu_count() or 1
    if not _positive_int(n_jobs):
        raise SpecError(f"n_jobs must be a whole number >= 1 (or -1 for every CPU), got {n_jobs!r}")
    return n_jobs


def check_grace(grace: object) -> float:
    """``grace`` if it is a number of seconds from :data:`MIN_GRACE` to :data:`MAX_GRACE`, else a SpecError."""
    if not is_number(grace) or not MIN_GRACE <= grace <= MAX_GRACE:
        raise SpecError(f"grace must be a number of seconds from {MIN_GRACE:g} to {MAX_GRACE:g} (leases are renewed "
                        f"every grace/4 s), got {grace!r}")
    return float(grace)


def _positive_int(value: object, minimum: int = 1) -> bool:
    return is_int(value) and value >= minimum


def sweep_batch(batch: Batch, *, storage: str | None = None, study_name: str | None = None, n_jobs: int = 1,
                progress: ProgressCallback | None = None, allow_large: bool = False, chunk_size: int | None = None,
                retries: int = 0, grace: float = GRACE, replace: bool = False,
                simulate: Simulate = simulate_many) -> SweepSummary:
    """Run (or resume, or join) the grid sweep of ``batch`` in study ``study_name`` (default ``batch.name``).

    ``storage``: an Optuna RDB URL or SQLite path (default: see :func:`larvastudy.study.storage_url`).
    ``chunk_size``: simulations per claim and engine call (default: automatic). ``retries``: reruns of
    a failing simulation; ``grace``: lease seconds (see the module). An existing study with fewer replicates
    than ``batch.Nsims`` is extended, one with more runs only its first ``batch.Nsims`` (see
    :func:`~larvastudy.study.open_study`). ``simulate``: the engine (a no-op in benchmarks). ``replace``:
    first delete the stored study of that name, if any, and everything of it (see
    :func:`larvastudy.study.delete_study`), so the sweep starts from scratch. Raises :class:`SpecError`
    before touching storage for a too-large grid or a bad option, and :class:`SweepInterrupted` on Ctrl-C,
    SIGTERM or SIGHUP. (:func:`larvastudy.api.run_batch` chooses between this and a fit.)
    """
    n_workers = worker_count(n_jobs)
    batch.check_size(allow_large)
    if chunk_size is not None and not _positive_int(chunk_size):
        raise SpecError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    if not _positive_int(retries, 0):
        raise SpecError(f"retries must be a whole number >= 0, got {retries!r}")
    check_grace(grace)
    url, name = storage_url(storage), study_name or batch.name
    with setup_lock(url):
        rdb = open_storage(url)
        if replace:
            replace_study(url, name)
        fresh = not _exists(rdb, name)
        study = open_study(batch, rdb, name)
        held = stored_batch(study.user_attrs, name, url)  # more replicates than batch if it asks for fewer
        costs = point_costs(held)
        book = ClaimBook(rdb, internals.study_id(study), held, all_tasks(held), grace=grace, retries=retries,
                         costs=costs, replicates=batch.Nsims)
        book.prepare(lambda: completed(study), fresh)
    counts = book.counts()
    run = _Run(name, display_url(url), counts[DONE], batch.grid_size, progress)
    left = counts[PENDING] + counts[RUNNING] + counts[STALE]
    if not left:
        return run.summary(already_finished=counts[DONE] == batch.grid_size)
    run.report()
    sizer = ClaimSizer(n_workers, left * float(costs.mean()), chunk_size)
    workers = min(n_workers, left if chunk_size is None else math.ceil(left / chunk_size))
    with (WorkerPool[SweepTask](held, workers, simulate) as pool, stop_on_signals(),
          Heartbeat(book.renew, grace / 4)):
        try:
            while pool.alive:
                for outcomes in pool.run(lambda: _claim(book, sizer, costs)):
                    _finished(sizer, outcomes)
                    run.record(book, outcomes)
                    check_stop()
                with uninterrupted():
                    counts = book.counts()
                run.report(counts[DONE])
                if not counts[PENDING] + counts[RUNNING] + counts[STALE]:
                    break
                time.sleep(WAIT)  # the rest is claimed by other processes: wait for them to finish or vanish
        except KeyboardInterrupt as stop:
            forget_stop()
            run.stop(pool, book)
            raise SweepInterrupted(run.summary(), stop_signal(stop)) from None
    return run.summary()


def _claim(book: ClaimBook, sizer: ClaimSizer, costs: np.ndarray) -> list[SweepTask]:
    """The next claim, as much work as ``sizer`` says (taken whole before a signal is acted on)."""
    with uninterrupted():
        tasks = book.claim(sizer.chunk_size or MAX_CLAIM, sizer.work())
    if tasks:
        sizer.claimed(_key(tasks[0]), float(sum(costs[t.grid_point] for t in tasks)))
    return tasks


def _finished(sizer: ClaimSizer, outcomes: list[Outcome[SweepTask]]) -> None:
    """Tell ``sizer`` a chunk ended, and how long it took if it ran without errors."""
    ok = all(o.error is None for o in outcomes)
    sizer.finished(_key(outcomes[0].task), chunk_seconds(outcomes) if ok else None)


def _key(task: SweepTask) -> tuple[int, int, int]:
    """A claim's name for :class:`ClaimSizer`: its first simulation's try (a run claims each try once)."""
    return task.grid_point, task.replicate, task.attempt


def _exists(rdb: RDBStorage, name: str) -> bool:
    try:
        rdb.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


class _Run:
    """Counts and reports one run's progress."""

    def __init__(self, name: str, url: str, complete: int, total: int, progress: ProgressCallback | None):
        self._name, self._url, self._progress = name, url, progress
        self._total, self._complete, self._failed, self._ran, self._released = total, complete, 0, 0, 0
        self._start = time.monotonic()

    def stop(self, pool: WorkerPool[SweepTask], book: ClaimBook) -> None:
        """Store what the workers finish within :data:`STOP_WAIT` seconds and give back the rest (at once on
        a second Ctrl-C; whatever else goes wrong meanwhile, e.g. a progress line to a terminal that hung up)."""
        try:
            for outcomes in pool.stop(STOP_WAIT):
                self.record(book, outcomes)
        except KeyboardInterrupt:
            pool.terminate()
        finally:
            with uninterrupted():
                self._released = book.release()

    def record(self, book: ClaimBook, outcomes: list[Outcome[SweepTask]]) -> None:
        """Store ``outcomes`` (a signal waits until the transaction is over: one cut short could leave the
        SQLite write lock held by this process's own idle connection) and report progress."""
        with uninterrupted():
            recorded = book.record(outcomes)
        self._failed += recorded.given_up
        self._ran += len(recorded.stored)
        self.report(recorded.done)

    def report(self, complete: int | None = None) -> None:
        self._complete = self._complete if complete is None else complete
        if self._progress is not None:
            self._progress(self._complete, self._failed, self._total, time.monotonic() - self._start)

    def summary(self, already_finished: bool = False) -> SweepSummary:
        return SweepSummary(self._name, self._url, self._complete, self._failed, self._total,
                            time.monotonic() - self._start, already_finished, self._ran, self._released)
