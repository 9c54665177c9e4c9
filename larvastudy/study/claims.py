"""Claims: which process runs which simulation, so that any number of processes share a sweep exactly once.

Table ``larvastudy_claims``, in the study's own database, has one row per simulation (study, task =
grid point x Nsims + replicate) in one of four states:

- ``pending``: anyone may claim it;
- ``running``: ``owner`` holds it until ``lease_until`` (the database's clock, in seconds), and its
  heartbeat keeps pushing that back;
- ``done``: its COMPLETE trial is stored;
- ``failed``: it failed more than ``retries`` times; the next run or worker to start makes it pending.

A running claim whose lease expired, or whose owner provably died, is *stale*: nothing runs it, and
the next claim of another process takes it again (a process never takes back its own claims: its
workers still run them). An owner (:mod:`larvastudy.study.owner`) provably died only if it was a process
of this host, this boot and this PID namespace that is gone (a kill -9 is noticed at once); an owner
in another container with the same host name (Docker ``--network host``, Kubernetes ``hostNetwork``),
or on another machine, is only ever freed by its lease.

A process claims a batch in one transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite). Results are stored in one transaction together with their trials, and
only for claims their writer still owns: each simulation gets exactly one COMPLETE trial however many
processes race, die or report late.

Work that was stopped (Ctrl-C, SIGTERM, SIGHUP) or lost (its process died or went silent) is not a failure:
it goes back to pending with no FAIL trial, and table ``larvastudy_claim_events`` keeps the audit:
which simulation, whose claim, when, and why.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from larvastudy.errors import ConflictError
from larvastudy.spec.batch import Batch
from larvastudy.study import optuna_internals as internals
from larvastudy.study.leases import Clock, T, transact
from larvastudy.study.owner import is_dead, owner_id
from larvastudy.study.records import Outcome, Task, TrialFactory, add_trials

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
#: Not a stored state: a running claim nothing runs any more (see the module), counted apart by :func:`claim_counts`.
STALE = "stale"
#: Events of ``larvastudy_claim_events``: a claim given back by a stopped process, or taken from a lost one.
INTERRUPTED, LOST = "interrupted", "lost"

CLAIMS = Table(
    "larvastudy_claims", MetaData(),
    Column("study_id", Integer, primary_key=True, autoincrement=False),
    Column("task", Integer, primary_key=True, autoincrement=False),
    Column("state", String(8), nullable=False, index=True),
    Column("owner", String(255)),
    Column("lease_until", Float),
    Column("tries", Integer, nullable=False),  # claims taken so far
    Column("failures", Integer, nullable=False),  # errors since the last reset
)
_C = CLAIMS.c

EVENTS = Table(
    "larvastudy_claim_events", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, nullable=False, index=True),
    Column("task", Integer, nullable=False),
    Column("owner", String(255), nullable=False),  # whose claim it was
    Column("event", String(16), nullable=False),  # INTERRUPTED or LOST
    Column("at", Float, nullable=False),  # the database's clock, seconds since the epoch
    Column("detail", String(255), nullable=False),
)


def _lost(owner: str, died: bool) -> str:
    why = "died" if died else "stopped renewing its lease (lease expired)"
    return f"lost: worker {owner} {why} before finishing; rerun"


def claim_counts(engine: sqlalchemy.Engine, study_id: int) -> dict[str, int]:
    """Simulations of a study per claim state, running ones split into running and :data:`STALE`
    (all 0 if no run has set up its claims yet)."""
    if not sqlalchemy.inspect(engine).has_table(CLAIMS.name):
        return dict.fromkeys((PENDING, RUNNING, STALE, DONE, FAILED), 0)
    with Session(engine) as session:
        return _counts(session, study_id)


def event_counts(engine: sqlalchemy.Engine, study_id: int) -> dict[str, int]:
    """How many claims of a study were given back (:data:`INTERRUPTED`) or taken from lost processes
    (:data:`LOST`), over the study's life."""
    counts = dict.fromkeys((INTERRUPTED, LOST), 0)
    if sqlalchemy.inspect(engine).has_table(EVENTS.name):
        with Session(engine) as session:
            counts.update(session.execute(select(EVENTS.c.event, func.count()).where(EVENTS.c.study_id == study_id)
                                          .group_by(EVENTS.c.event)).all())
    return counts


def _counts(session: Session, study_id: int, scope: Any = None) -> dict[str, int]:
    """Claims per state of the study's tasks in ``scope`` (a condition; default all)."""
    state = case((_stale(_dead_owners(session, study_id)), STALE), else_=_C.state)
    rows = session.execute(select(state, func.count()).where(_C.study_id == study_id if scope is None else scope)
                           .group_by(state)).all()
    return {**dict.fromkeys((PENDING, RUNNING, STALE, DONE, FAILED), 0), **dict(rows)}


def _dead_owners(session: Session, study_id: int, me: str | None = None) -> list[str]:
    """Owners of the study's running claims that provably died (never ``me``)."""
    owners = session.execute(select(_C.owner).distinct().where(_C.study_id == study_id, _C.state == RUNNING))
    return [owner for owner in owners.scalars() if owner != me and is_dead(owner)]


def _stale(dead: list[str], me: str | None = None) -> Any:
    """The condition of a stale claim (see the module), ``dead`` being :func:`_dead_owners`; never one of ``me``'s."""
    stale = and_(_C.state == RUNNING, or_(_C.lease_until < Clock(), _C.owner.in_(dead)))
    return stale if me is None else and_(stale, _C.owner != me)


class Renumbered(ConflictError):
    """The study's Nsims changed since this process set up its claims (see :class:`ClaimBook`)."""


def stored_nsims(session: Session, study_id: int) -> int:
    """The ``Nsims`` of the study's stored Batch (its ``batch`` user attribute, in Optuna's table: internal,
    pinned by ``optuna<6``), as the caller's transaction sees it."""
    models = internals.rdb_models()

    attrs = models.StudyUserAttributeModel.__table__.c
    nsims: int = json.loads(session.execute(select(attrs.value_json).where(attrs.study_id == study_id,
                                                                    attrs.key == "batch")).scalar_one())["Nsims"]
    return nsims


def renumber(session: Session, study_id: int, points: int, old: int, new: int, where: str) -> None:
    """Number the study's claims (and their audit rows) for ``new`` replicates per point instead of ``old``
    (``new`` > ``old``), adding pending claims for the new replicates of its ``points`` grid points, inside
    the caller's transaction (under ``setup_lock``), which must also store the new Nsims (see :class:`ClaimBook`).

    Refused (a ConflictError naming ``where``, the study) while live processes hold claims; claims of lost ones
    (stale) go back to pending first, kept as :data:`LOST` events. A study without claims yet gets them from
    the next run's :meth:`ClaimBook.prepare`.
    """
    if not sqlalchemy.inspect(session.connection()).has_table(CLAIMS.name):
        return
    tasks = session.execute(select(_C.task, _C.state, _C.owner).where(_C.study_id == study_id)
                            .with_for_update()).all()  # PostgreSQL: wait for claims and records under way
    dead = _dead_owners(session, study_id)
    stale = session.execute(select(_C.task, _C.owner).where(_C.study_id == study_id, _stale(dead))).all()
    live = {r.owner for r in tasks if r.state == RUNNING} - {r.owner for r in stale}
    if live:
        raise ConflictError(f"{where} is being run by {len(live)} process{'es' if len(live) > 1 else ''}; "
                            "wait for them or stop them, then run it again")
    if stale:
        at = session.execute(select(Clock())).scalar_one()
        session.execute(insert(EVENTS), [{"study_id": study_id, "task": r.task, "owner": r.owner, "event": LOST,
                                          "at": at, "detail": _lost(r.owner, r.owner in dead)[:255]} for r in stale])
        session.execute(update(CLAIMS).where(_C.study_id == study_id, _C.state == RUNNING)
                        .values(state=PENDING, owner=None, lease_until=None))
    # Through negative numbers: no two rows of the primary key (study_id, task) ever meet midway.
    for table, column in ((CLAIMS, _C.task), (EVENTS, EVENTS.c.task)):
        session.execute(update(table).where(table.c.study_id == study_id)
                        .values(task=-((column // old) * new + column % old) - 1))
        session.execute(update(table).where(table.c.study_id == study_id).values(task=-column - 1))
    session.execute(insert(CLAIMS), [{"study_id": study_id, "task": p * new + r, "state": PENDING, "owner": None,
                                       "lease_until": None, "tries": 0, "failures": 0}
                                      for p in range(points) for r in range(old, new)])


@dataclass(frozen=True)
class Recorded:
    """What :meth:`ClaimBook.record` did: the outcomes it stored (those of claims still held), how many
    simulations it gave up on (out of retries), and how many of the study's simulations are done."""

    stored: list[Outcome]
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
    :meth:`record` raise :class:`Renumbered` once another run has given the study more replicates
    (:func:`renumber`), so that a process started before never runs or records a task by its old number.
    """

    def __init__(self, storage: optuna.storages.RDBStorage, study_id: int, batch: Batch, tasks: list[Task], *,
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
                    "state": DONE if (t.point, t.replicate) in complete else PENDING,
                    "owner": None, "lease_until": None, "tries": 0, "failures": 0}
                   for i, t in enumerate(self._tasks) if i not in known]
            if new:
                session.execute(insert(CLAIMS), new)
            session.execute(update(CLAIMS).where(self._in(FAILED)).values(state=PENDING, failures=0))

        self._transact(work)

    def claim(self, n: int, work: float = math.inf) -> list[Task]:
        """Claim up to ``n`` simulations, lowest tasks first, until their predicted cost reaches ``work``
        (at least one): pending ones, and stale ones, whose lost try is kept as a :data:`LOST` event."""

        most = n if math.isinf(work) else min(n, math.ceil(work / max(self._costs.min(), 1e-12)) + 1)

        def claim(session: Session) -> list[Task]:
            dead = _dead_owners(session, self._study_id, self.owner)
            rows = session.execute(
                select(_C.task, _C.state, _C.owner, _C.tries)
                .where(self._scope, or_(_C.state == PENDING, _stale(dead, self.owner)))
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
                      lambda owner: _lost(owner, owner in dead))
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

    def record(self, outcomes: list[Outcome]) -> Recorded:
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
        return self._transact(lambda session: _counts(session, self._study_id, self._scope))

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

    def _index(self, task: Task) -> int:
        return task.point * self._nsims + task.replicate

    def _task(self, index: int, attempt: int) -> Task:
        return dataclasses.replace(self._tasks[index], attempt=attempt)

    def _transact(self, work: Callable[[Session], T]) -> T:
        return transact(self._engine, self._lock, work)
