"""This process's side of a grid sweep's claims (:mod:`larvastudy.study.claims` holds the tables, the
claim states and what a study's claims say): claim simulations, keep their leases, record their outcomes
with their trials, exactly once however many processes race, die or report late."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from larvastudy.definition.batch import Batch
from larvastudy.execution.tasks import Outcome, SweepTask, TrialFactory
from larvastudy.study.claims import (
    CLAIMS,
    DONE,
    EVENTS,
    FAILED,
    INTERRUPTED,
    LOST,
    PENDING,
    RUNNING,
    Renumbered,
    dead_owners,
    lost_detail,
    stale_condition,
    state_counts,
    stored_nsims,
)
from larvastudy.study.leases import Clock, T, transact
from larvastudy.study.owner import owner_id
from larvastudy.study.records import add_trials

_C = CLAIMS.c


@dataclass(frozen=True)
class Recorded:
    """What :meth:`ClaimBook.record` did: the outcomes it stored (those of claims still held), how many
    simulations it gave up on (out of retries), and how many of the study's simulations are done."""

    stored: list[Outcome[SweepTask]]
    given_up: int
    done: int


class ClaimBook:
    """This process's side of the claims of one study: claim, renew, record.

    ``tasks``: every simulation of the sweep, ``tasks[i]`` being task ``i`` (first try); ``grace``:
    seconds a claim stays leased without a heartbeat; ``retries``: reruns of a failing simulation;
    ``costs``: each grid point's predicted cost per simulation, in the unit of :meth:`claim`'s ``work``
    (default 1); ``replicates``: work only on the replicates below it (a run asking for fewer than the study
    holds). Thread-safe (the heartbeat renews from another thread).

    ``batch`` must be the study's stored Batch: tasks are numbered by its ``Nsims``, and :meth:`claim` and
    :meth:`record` raise :class:`~larvastudy.study.claims.Renumbered` once another run has given the study more
    replicates (:func:`~larvastudy.study.claims.renumber`), so that a process started before never runs or
    records a task by its old number.
    """

    def __init__(self, storage: optuna.storages.RDBStorage, study_id: int, batch: Batch, tasks: list[SweepTask], *,
                 grace: float, retries: int, costs: np.ndarray | None = None, replicates: int | None = None):
        self.owner = owner_id()
        self._engine, self._study_id, self._tasks = storage.engine, study_id, tasks
        self._nsims, self._grace, self._retries = batch.Nsims, grace, retries
        self._scope = (_C.study_id == study_id if replicates is None or replicates >= batch.Nsims
                       else and_(_C.study_id == study_id, _C.task % batch.Nsims < replicates))
        self._costs = np.ones(len(tasks) // batch.Nsims) if costs is None else costs
        self._factory = TrialFactory(batch)
        self._lock = threading.Lock()

    def prepare(self, done: Callable[[], set[tuple[int, int]]], fresh: bool) -> None:
        """Create the tables and this study's rows, and make failed simulations pending again. ``done()``:
        the simulations already COMPLETE (e.g. stored by an older larvastudy), asked only when an existing
        study lacks rows. ``fresh``: the study was just created, so rows under its id are a deleted study's (SQLite
        reuses ids) and go. Call under ``setup_lock``."""
        CLAIMS.create(self._engine, checkfirst=True)
        EVENTS.create(self._engine, checkfirst=True)
        known = set() if fresh else set(self._transact(lambda session: session.execute(
            select(_C.task).where(_C.study_id == self._study_id)).scalars().all()))
        complete = done() if len(known) < len(self._tasks) and not fresh else set()

        def work(session: Session) -> None:
            if fresh:
                session.execute(delete(CLAIMS).where(_C.study_id == self._study_id))
                session.execute(delete(EVENTS).where(EVENTS.c.study_id == self._study_id))
            new = [{"study_id": self._study_id, "task": i,
                    "state": DONE if (t.grid_point, t.replicate) in complete else PENDING,
                    "owner": None, "lease_until": None, "tries": 0, "failures": 0}
                   for i, t in enumerate(self._tasks) if i not in known]
            if new:
                session.execute(insert(CLAIMS), new)
            session.execute(update(CLAIMS).where(self._in(FAILED)).values(state=PENDING, failures=0))

        self._transact(work)

    def claim(self, n: int, work: float = math.inf) -> list[SweepTask]:
        """Claim up to ``n`` simulations, lowest tasks first, until their predicted cost reaches ``work``
        (at least one): pending ones, and stale ones, whose lost try is kept as a :data:`LOST` event."""

        most = n if math.isinf(work) else min(n, math.ceil(work / max(self._costs.min(), 1e-12)) + 1)

        def claim(session: Session) -> list[SweepTask]:
            dead = dead_owners(session, self._study_id, self.owner)
            rows = session.execute(
                select(_C.task, _C.state, _C.owner, _C.tries)
                .where(self._scope, or_(_C.state == PENDING, stale_condition(dead, self.owner)))
                .order_by(_C.task).limit(most).with_for_update(skip_locked=True)).all()
            self._check_numbering(session)
            if not rows:
                return []
            costs = np.cumsum(self._costs[np.array([r.task for r in rows]) // self._nsims])
            rows = rows[:max(1, int(np.searchsorted(costs, work, side="right")))]
            session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_([r.task for r in rows]))
                            .values(state=RUNNING, owner=self.owner, lease_until=Clock() + self._grace,
                                    tries=_C.tries + 1))
            self._log(session, [(r.task, r.owner) for r in rows if r.state == RUNNING], LOST,
                      lambda owner: lost_detail(owner, owner in dead))
            return [self._task(r.task, r.tries + 1) for r in rows]

        return self._transact(claim)

    def release(self, why: str = "stopped (Ctrl-C, SIGTERM or SIGHUP) before finishing") -> int:
        """Give back every claim this process holds, unfinished (call once its workers are stopped): they
        become pending with no failure counted, each kept as an :data:`INTERRUPTED` event. Returns how many."""

        def work(session: Session) -> int:
            held = session.execute(select(_C.task).where(self._in(RUNNING), _C.owner == self.owner)).scalars().all()
            if held:
                session.execute(update(CLAIMS).where(self._in(RUNNING), _C.owner == self.owner)
                                .values(state=PENDING, owner=None, lease_until=None))
                self._log(session, [(task, self.owner) for task in held], INTERRUPTED, lambda owner: why)
            return len(held)

        return self._transact(work)

    def renew(self) -> None:
        """Extend the lease of every claim this process holds."""
        self._transact(lambda session: session.execute(
            update(CLAIMS).where(self._in(RUNNING), _C.owner == self.owner).values(lease_until=Clock() + self._grace)))

    def record(self, outcomes: list[Outcome[SweepTask]]) -> Recorded:
        """Store the trials of ``outcomes`` whose claims this process still holds, and settle those claims:
        done, or pending to be retried (failed once out of retries)."""
        by_task = {self._index(o.task): o for o in outcomes}

        def work(session: Session) -> Recorded:
            held = session.execute(select(_C.task, _C.failures).where(
                self._in(RUNNING), _C.owner == self.owner, _C.task.in_(by_task)).order_by(_C.task).with_for_update()
            ).all()
            self._check_numbering(session)
            ok = [r.task for r in held if by_task[r.task].error is None]
            failed = [r.task for r in held if by_task[r.task].error is not None]
            given_up = sum(r.failures >= self._retries for r in held if r.task in failed)
            if ok:
                session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_(ok))
                                .values(state=DONE, owner=None, lease_until=None))
            if failed:
                session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_(failed))
                                .values(state=case((_C.failures >= self._retries, FAILED), else_=PENDING),
                                        owner=None, lease_until=None, failures=_C.failures + 1))
            stored = [by_task[r.task] for r in held]
            add_trials(session, self._study_id, [self._factory.trial(o) for o in stored])
            done = session.execute(select(func.count()).where(self._in(DONE))).scalar_one()
            return Recorded(stored, given_up, done)

        return self._transact(work)

    def counts(self) -> dict[str, int]:
        """Simulations of the study per claim state."""
        return self._transact(lambda session: state_counts(session, self._study_id, self._scope))

    def _log(self, session: Session, lost: list[tuple[int, str]], event: str, detail: Callable[[str], str]) -> None:
        """Keep ``(task, owner)`` claims that ended unfinished as ``event`` rows of the audit table."""
        if lost:
            at = session.execute(select(Clock())).scalar_one()
            session.execute(insert(EVENTS), [{"study_id": self._study_id, "task": task, "owner": owner,
                                              "event": event, "at": at, "detail": detail(owner)[:255]}
                                             for task, owner in lost])

    def _in(self, state: str) -> Any:
        return and_(self._scope, _C.state == state)

    def _check_numbering(self, session: Session) -> None:
        """Raise :class:`Renumbered` if the study's Nsims is no longer this book's. Called after the claim rows
        are locked: a renumbering, which locks them all first, is then either wholly visible or not begun."""
        nsims = stored_nsims(session, self._study_id)
        if nsims != self._nsims:
            raise Renumbered(f"another run gave this study {nsims} replicates per point (it had {self._nsims} when "
                             "this process started), so its simulations are numbered anew; start this process "
                             "again to work on it")

    def _index(self, task: SweepTask) -> int:
        return task.grid_point * self._nsims + task.replicate

    def _task(self, index: int, attempt: int) -> SweepTask:
        return dataclasses.replace(self._tasks[index], attempt=attempt)

    def _transact(self, work: Callable[[Session], T]) -> T:
        return transact(self._engine, self._lock, work)
