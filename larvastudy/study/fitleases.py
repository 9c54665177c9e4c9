"""Leases of an adaptive fit's trials: any number of processes, on any machines sharing the storage, run
one fit and share its trial budget.

Table ``larvastudy_fit_leases`` has one row per RUNNING fit trial: its ``owner`` (:func:`owner_id`) and
``lease_until`` (the database's clock), which the owner's heartbeat keeps pushing back. In one
transaction with the study row locked (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on
PostgreSQL) a process asking for a trial

- gives back the trials of others' stale leases (expired, or of an owner that provably died, see
  :mod:`larvastudy.study.owner`): they become WAITING with the point they had, so it is run again;
- counts COMPLETE trials (warm-start copies aside) and leased ones against the budget, and gets none
  once they reach it;
- takes the oldest WAITING trial, else creates one, RUNNING and leased to itself.

A trial is finished in one transaction with its lease, only by the process holding it: a process whose
lease was given back meanwhile drops its late results, so no trial is told twice and the budget is
met exactly. A stopped process (Ctrl-C, SIGTERM, SIGHUP) gives its trials back as WAITING: no FAIL
trial, nothing counted. The trial rows are written with Optuna's RDB tables (internals pinned by
``optuna<6``, as in :func:`larvastudy.study.records.add_trials`); Optuna's ``tell`` would also call the
sampler's ``after_trial``, which the samplers larvastudy uses need only for constraints it never sets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from larvastudy.study import optuna_internals as internals
from larvastudy.study.leases import Clock, T, transact
from larvastudy.study.owner import is_dead, owner_id
from larvastudy.study.study import COPIED_FROM

LEASES = Table(
    "larvastudy_fit_leases", MetaData(),
    Column("trial_id", Integer, primary_key=True, autoincrement=False),
    Column("study_id", Integer, nullable=False, index=True),
    Column("owner", String(255), nullable=False),
    Column("lease_until", Float, nullable=False),
)
_L = LEASES.c


class FitLeases:
    """This process's side of one fit study's leases (see the module). Thread-safe: the heartbeat renews
    from another thread."""

    def __init__(self, storage: optuna.storages.RDBStorage, study_id: int, grace: float):
        self.owner = owner_id()
        self._engine, self._study_id, self._grace = storage.engine, study_id, grace
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the leases table if need be, and give back (WAITING) RUNNING trials without a lease: an earlier
        larvastudy's, left by a killed run (a trial and its lease are made together). Call under ``setup_lock``."""
        LEASES.create(self._engine, checkfirst=True)

        def work(session: Session) -> None:
            trials = internals.rdb_models().TrialModel.__table__
            session.execute(update(trials).where(
                trials.c.study_id == self._study_id, trials.c.state == TrialState.RUNNING,
                trials.c.trial_id.not_in(select(_L.trial_id).where(_L.study_id == self._study_id)))
                .values(state=TrialState.WAITING, datetime_start=None))

        self._transact(work)

    def take(self, budget: int) -> int | None:
        """A trial id leased to this process, or None once COMPLETE and leased trials reach ``budget``."""

        def work(session: Session) -> int | None:
            models = internals.rdb_models()
            trials = models.TrialModel.__table__
            models.StudyModel.find_or_raise_by_id(self._study_id, session, for_update=True)
            self._give_back_stale(session)
            if self._complete(session) + self._leased(session) >= budget:
                return None
            now = _utc_now()
            waiting = session.execute(select(trials.c.trial_id).where(
                trials.c.study_id == self._study_id, trials.c.state == TrialState.WAITING)
                .order_by(trials.c.number).limit(1)).scalar()
            trial_id: int
            if waiting is not None:
                session.execute(update(trials).where(trials.c.trial_id == waiting)
                                .values(state=TrialState.RUNNING, datetime_start=now))
                trial_id = waiting
            else:
                number = session.execute(select(func.count()).where(trials.c.study_id == self._study_id)).scalar_one()
                trial_id = session.execute(insert(trials).returning(trials.c.trial_id), {
                    "study_id": self._study_id, "number": number, "state": TrialState.RUNNING,
                    "datetime_start": now}).scalar_one()
            session.execute(insert(LEASES).values(trial_id=trial_id, study_id=self._study_id, owner=self.owner,
                                                  lease_until=Clock() + self._grace))
            return trial_id

        return self._transact(work)

    def finish(self, trial_id: int, state: TrialState, values: Sequence[float] | None,
               user_attrs: Mapping[str, Any]) -> bool:
        """Store trial ``trial_id`` as ``state`` with ``values`` and ``user_attrs`` if this process still holds
        its lease (then True), and end the lease."""

        def work(session: Session) -> bool:
            conn = session.connection()  # a Connection's result tells the rows a DELETE removed
            held = conn.execute(delete(LEASES).where(_L.trial_id == trial_id, _L.owner == self.owner)).rowcount
            if not held:
                return False
            models = internals.rdb_models()
            trial = models.TrialModel
            session.execute(update(trial.__table__)
                            .where(trial.trial_id == trial_id, trial.state == TrialState.RUNNING)
                            .values(state=state, datetime_complete=_utc_now()))
            attrs = models.TrialUserAttributeModel.__table__
            session.execute(delete(attrs).where(attrs.c.trial_id == trial_id, attrs.c.key.in_(list(user_attrs))))
            session.execute(insert(attrs), [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                            for key, value in user_attrs.items()])
            if values:
                rows = []
                for objective, value in enumerate(values):
                    stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                    rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
                session.execute(insert(models.TrialValueModel.__table__), rows)
            return True

        return self._transact(work)

    def release(self) -> int:
        """Give back every trial this process holds (its workers stopped) as WAITING; returns how many."""
        return self._transact(lambda session: self._give_back(session, _L.owner == self.owner))

    def renew(self) -> None:
        """Extend the lease of every trial this process holds."""
        self._transact(lambda session: session.execute(
            update(LEASES).where(_L.study_id == self._study_id, _L.owner == self.owner)
            .values(lease_until=Clock() + self._grace)))

    def counts(self) -> tuple[int, int]:
        """The study's simulated COMPLETE trials (warm-start copies aside) and its leased ones."""
        return self._transact(lambda session: (self._complete(session), self._leased(session)))

    def _give_back_stale(self, session: Session) -> int:
        owners = session.execute(select(_L.owner).distinct()
                                 .where(_L.study_id == self._study_id, _L.owner != self.owner))
        dead = [owner for owner in owners.scalars() if is_dead(owner)]
        return self._give_back(session, _L.owner != self.owner, or_(_L.lease_until < Clock(), _L.owner.in_(dead)))

    def _give_back(self, session: Session, *where: Any) -> int:
        """Make the RUNNING trials of the leases matching ``where`` WAITING, and drop those leases."""
        ids = session.execute(select(_L.trial_id).where(_L.study_id == self._study_id, *where)).scalars().all()
        if ids:
            trials = internals.rdb_models().TrialModel.__table__
            session.execute(update(trials).where(trials.c.trial_id.in_(ids), trials.c.state == TrialState.RUNNING)
                            .values(state=TrialState.WAITING, datetime_start=None))
            session.execute(delete(LEASES).where(_L.trial_id.in_(ids)))
        return len(ids)

    def _complete(self, session: Session) -> int:
        models = internals.rdb_models()
        trials, attrs = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
        copied = select(attrs.c.trial_id).join(trials).where(trials.c.study_id == self._study_id,
                                                             attrs.c.key == COPIED_FROM)
        return session.execute(select(func.count()).where(
            trials.c.study_id == self._study_id, trials.c.state == TrialState.COMPLETE,
            trials.c.trial_id.not_in(copied))).scalar_one()

    def _leased(self, session: Session) -> int:
        return session.execute(select(func.count()).where(_L.study_id == self._study_id)).scalar_one()

    def _transact(self, work: Callable[[Session], T]) -> T:
        return transact(self._engine, self._lock, work)


def _utc_now() -> datetime:
    """Now as the naive UTC time RDBStorage stores."""
    return datetime.now(UTC).replace(tzinfo=None)
