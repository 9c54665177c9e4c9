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

This module holds what is stored: the tables, the states, the counts and the renumbering of a study's
claims. A process's own side (claim, renew, record) is :class:`larvastudy.execution.claimbook.ClaimBook`.
"""

from __future__ import annotations

import json
from typing import Any

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
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from larvastudy.errors import ConflictError
from larvastudy.study import optuna_internals as internals
from larvastudy.study.leases import Clock
from larvastudy.study.owner import is_dead

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


def lost_detail(owner: str, died: bool) -> str:
    why = "died" if died else "stopped renewing its lease (lease expired)"
    return f"lost: worker {owner} {why} before finishing; rerun"


def claim_counts(engine: sqlalchemy.Engine, study_id: int) -> dict[str, int]:
    """Simulations of a study per claim state, running ones split into running and :data:`STALE`
    (all 0 if no run has set up its claims yet)."""
    if not sqlalchemy.inspect(engine).has_table(CLAIMS.name):
        return dict.fromkeys((PENDING, RUNNING, STALE, DONE, FAILED), 0)
    with Session(engine) as session:
        return state_counts(session, study_id)


def event_counts(engine: sqlalchemy.Engine, study_id: int) -> dict[str, int]:
    """How many claims of a study were given back (:data:`INTERRUPTED`) or taken from lost processes
    (:data:`LOST`), over the study's life."""
    counts = dict.fromkeys((INTERRUPTED, LOST), 0)
    if sqlalchemy.inspect(engine).has_table(EVENTS.name):
        with Session(engine) as session:
            counts.update(session.execute(select(EVENTS.c.event, func.count()).where(EVENTS.c.study_id == study_id)
                                          .group_by(EVENTS.c.event)).all())
    return counts


def state_counts(session: Session, study_id: int, scope: Any = None) -> dict[str, int]:
    """Claims per state of the study's tasks in ``scope`` (a condition; default all)."""
    state = case((stale_condition(dead_owners(session, study_id)), STALE), else_=_C.state)
    rows = session.execute(select(state, func.count()).where(_C.study_id == study_id if scope is None else scope)
                           .group_by(state)).all()
    return {**dict.fromkeys((PENDING, RUNNING, STALE, DONE, FAILED), 0), **dict(rows)}


def dead_owners(session: Session, study_id: int, me: str | None = None) -> list[str]:
    """Owners of the study's running claims that provably died (never ``me``)."""
    owners = session.execute(select(_C.owner).distinct().where(_C.study_id == study_id, _C.state == RUNNING))
    return [owner for owner in owners.scalars() if owner != me and is_dead(owner)]


def stale_condition(dead: list[str], me: str | None = None) -> Any:
    """The condition of a stale claim (see the module), ``dead`` being :func:`dead_owners`; never one of ``me``'s."""
    stale = and_(_C.state == RUNNING, or_(_C.lease_until < Clock(), _C.owner.in_(dead)))
    return stale if me is None else and_(stale, _C.owner != me)


class Renumbered(ConflictError):
    """The study's Nsims changed since this process set up its claims (see
    :class:`~larvastudy.execution.claimbook.ClaimBook`)."""


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
    the caller's transaction (under ``setup_lock``), which must also store the new Nsims (see
    :class:`~larvastudy.execution.claimbook.ClaimBook`).

    Refused (a ConflictError naming ``where``, the study) while live processes hold claims; claims of lost ones
    (stale) go back to pending first, kept as :data:`LOST` events. A study without claims yet gets them from
    the next run's :meth:`~larvastudy.execution.claimbook.ClaimBook.prepare`.
    """
    if not sqlalchemy.inspect(session.connection()).has_table(CLAIMS.name):
        return
    tasks = session.execute(select(_C.task, _C.state, _C.owner).where(_C.study_id == study_id)
                            .with_for_update()).all()  # PostgreSQL: wait for claims and records under way
    dead = dead_owners(session, study_id)
    stale = session.execute(select(_C.task, _C.owner).where(_C.study_id == study_id, stale_condition(dead))).all()
    live = {r.owner for r in tasks if r.state == RUNNING} - {r.owner for r in stale}
    if live:
        raise ConflictError(f"{where} is being run by {len(live)} process{'es' if len(live) > 1 else ''}; "
                            "wait for them or stop them, then run it again")
    if stale:
        at = session.execute(select(Clock())).scalar_one()
        session.execute(insert(EVENTS), [{"study_id": study_id, "task": r.task, "owner": r.owner, "event": LOST,
                                          "at": at, "detail": lost_detail(r.owner, r.owner in dead)[:255]}
                                         for r in stale])
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
