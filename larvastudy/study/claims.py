"""Claims: which process runs which simulation, so that any number of processes share a sweep exactly once.

Table ``larvastudy_claims``, in the study's own database, has one row per simulation (study, task =
grid point x Nsims + replicate) in one of four states:

- ``pending``: anyone may claim it;
- ``running``: ``owner`` holds it until ``lease_until`` (the database's clock, in seconds), and its
  heartbeat keeps pushing that back;
- ``done``: its COMPLETE trial is stored;
- ``failed``: it failed more than ``retries`` times; the next run or worker to start makes it pending.

A process claims a batch in one transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite). A running claim whose lease expired, or whose owner is a dead process
on this machine, can be claimed again; the lost try is kept as a FAIL trial. Results are stored in one
transaction together with their trials, and only for claims their writer still owns: each simulation
gets exactly one COMPLETE trial however many processes race, die or report late.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import optuna
import sqlalchemy
from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, and_, case, delete, func, insert,
                        or_, select, update)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from larvastudy.spec.batch import Batch
from larvastudy.study.records import Outcome, Task, TrialFactory, add_trials

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
T = TypeVar("T")

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


def _lost(owner: str, died: bool) -> str:
    why = "died" if died else "stopped renewing its lease (lease expired)"
    return f"lost: worker {owner} {why} before finishing; rerun"


class _Clock(FunctionElement):
    """The database server's clock in seconds since the epoch: leases never depend on workers' clocks."""

    type = Float()
    inherit_cache = True


@compiles(_Clock, "sqlite")
def _sqlite_clock(element: _Clock, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(_Clock, "postgresql")
def _postgresql_clock(element: _Clock, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())"


@compiles(_Clock, "mysql")
def _mysql_clock(element: _Clock, compiler: Any, **kw: Any) -> str:
    return "UNIX_TIMESTAMP(NOW(6))"


def owner_id() -> str:
    """A name for this process that no other process, here or elsewhere, ever had: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead(owner: str) -> bool:
    """Whether ``owner`` is a process of this machine that no longer runs (never true for other machines)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process its parent has not reaped yet is a zombie
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def claim_counts(storage: optuna.storages.RDBStorage, study_id: int) -> dict[str, int]:
    """Simulations of a study per claim state (all 0 if no run has set up its claims yet)."""
    if not sqlalchemy.inspect(storage.engine).has_table(CLAIMS.name):
        return {PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0}
    with Session(storage.engine) as session:
        return _counts(session, study_id)


def _counts(session: Session, study_id: int) -> dict[str, int]:
    rows = session.execute(select(_C.state, func.count()).where(_C.study_id == study_id).group_by(_C.state)).all()
    return {PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0, **dict(rows)}


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
    seconds a claim stays leased without a heartbeat; ``retries``: reruns of a failing simulation.
    Thread-safe (the heartbeat renews from another thread).
    """

    def __init__(self, storage: optuna.storages.RDBStorage, study_id: int, batch: Batch, tasks: list[Task], *,
                 grace: float, retries: int):
        self.owner = owner_id()
        self._engine, self._study_id, self._tasks = storage.engine, study_id, tasks
        self._nsims, self._grace, self._retries = batch.Nsims, grace, retries
        self._factory = TrialFactory(batch)
        self._lock = threading.Lock()

    def prepare(self, done: set[tuple[int, int]], fresh: bool) -> None:
        """Create the table and this study's rows (``done``: simulations already COMPLETE, e.g. stored by
        an older larvastudy), and make failed simulations pending again. ``fresh``: the study was just
        created, so rows under its id are a deleted study's (SQLite reuses ids) and go. Call under
        ``setup_lock``."""
        CLAIMS.create(self._engine, checkfirst=True)

        def work(session: Session) -> None:
            if fresh:
                session.execute(delete(CLAIMS).where(_C.study_id == self._study_id))
            known = set(session.execute(select(_C.task).where(_C.study_id == self._study_id)).scalars())
            new = [{"study_id": self._study_id, "task": i, "state": DONE if (t.point, t.replicate) in done else PENDING,
                    "owner": None, "lease_until": None, "tries": 0, "failures": 0}
                   for i, t in enumerate(self._tasks) if i not in known]
            if new:
                session.execute(insert(CLAIMS), new)
            session.execute(update(CLAIMS).where(self._in(FAILED)).values(state=PENDING, failures=0))

        self._transact(work)

    def claim(self, n: int) -> list[Task]:
        """Claim up to ``n`` simulations, lowest tasks first: pending ones, and running ones whose owner
        is gone (lease expired, or a dead process on this machine), whose lost try becomes a FAIL trial."""

        def work(session: Session) -> list[Task]:
            owners = session.execute(select(_C.owner).distinct().where(self._in(RUNNING))).scalars()
            dead = [owner for owner in owners if owner != self.owner and _dead(owner)]
            stale = and_(_C.state == RUNNING, or_(_C.lease_until < _Clock(), _C.owner.in_(dead)))
            rows = session.execute(
                select(_C.task, _C.state, _C.owner, _C.tries)
                .where(_C.study_id == self._study_id, or_(_C.state == PENDING, stale))
                .order_by(_C.task).limit(n).with_for_update(skip_locked=True)).all()
            if not rows:
                return []
            session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_([r.task for r in rows]))
                            .values(state=RUNNING, owner=self.owner, lease_until=_Clock() + self._grace,
                                    tries=_C.tries + 1))
            now = datetime.now()
            lost = [Outcome(self._task(r.task, r.tries), {}, None, _lost(r.owner, r.owner in dead), now, now)
                    for r in rows if r.state == RUNNING]
            add_trials(session, self._study_id, [self._factory.trial(o) for o in lost])
            return [self._task(r.task, r.tries + 1) for r in rows]

        return self._transact(work)

    def renew(self) -> None:
        """Extend the lease of every claim this process holds."""
        self._transact(lambda session: session.execute(
            update(CLAIMS).where(self._in(RUNNING), _C.owner == self.owner).values(lease_until=_Clock() + self._grace)))

    def record(self, outcomes: list[Outcome], interrupted: bool = False) -> Recorded:
        """Store the trials of ``outcomes`` whose claims this process still holds, and settle those claims:
        done, or pending to be retried (failed once out of retries). ``interrupted``: the tries were
        stopped, not failed, so they do not count as failures."""
        by_task = {self._index(o.task): o for o in outcomes}

        def work(session: Session) -> Recorded:
            held = session.execute(select(_C.task, _C.failures).where(
                self._in(RUNNING), _C.owner == self.owner, _C.task.in_(by_task)).order_by(_C.task).with_for_update()
            ).all()
            ok = [r.task for r in held if by_task[r.task].error is None]
            failed = [r.task for r in held if by_task[r.task].error is not None]
            given_up = 0 if interrupted else sum(r.failures >= self._retries for r in held if r.task in failed)
            if ok:
                session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_(ok))
                                .values(state=DONE, owner=None, lease_until=None))
            if failed:
                settle = ({} if interrupted else
                          {"state": case((_C.failures >= self._retries, FAILED), else_=PENDING),
                           "failures": _C.failures + 1})
                session.execute(update(CLAIMS).where(_C.study_id == self._study_id, _C.task.in_(failed))
                                .values(**{"state": PENDING, "owner": None, "lease_until": None, **settle}))
            stored = [by_task[r.task] for r in held]
            add_trials(session, self._study_id, [self._factory.trial(o) for o in stored])
            done = session.execute(select(func.count()).where(self._in(DONE))).scalar_one()
            return Recorded(stored, given_up, done)

        return self._transact(work)

    def counts(self) -> dict[str, int]:
        """Simulations of the study per claim state."""
        return self._transact(lambda session: _counts(session, self._study_id))

    def _in(self, state: str) -> Any:
        return and_(_C.study_id == self._study_id, _C.state == state)

    def _index(self, task: Task) -> int:
        return task.point * self._nsims + task.replicate

    def _task(self, index: int, attempt: int) -> Task:
        return dataclasses.replace(self._tasks[index], attempt=attempt)

    def _transact(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one transaction; run once more on a new connection if the database dropped
        this one (PostgreSQL ends a transaction left idle by a frozen process, see ``open_storage``)."""
        try:
            return self._transact_once(work)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return self._transact_once(work)

    def _transact_once(self, work: Callable[[Session], T]) -> T:
        with self._lock, Session(self._engine) as session, session.begin():
            return work(session)
