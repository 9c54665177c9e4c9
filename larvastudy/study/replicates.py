"""More replicates for a grid study: raising ``Nsims`` extends it, renumbering at once all that Nsims numbers.

A grid study's trials keep their simulations, seeds (independent of Nsims, see
:func:`larvastudy.execution.plan.trial_seed`) and values. What depends on Nsims is rewritten in one
transaction, so that the study is exactly what a sweep made at the new Nsims from the start would have
stored so far:

- the claims and their audit rows, numbered ``grid point x Nsims + replicate``
  (:func:`~larvastudy.study.claims.renumber`, which refuses while live processes hold claims);
- of a Cartesian grid, GridSampler's ``grid_id`` of every trial of the study's own grid (GridSampler
  shuffles the whole product, replicates included, so every id changes) and the shared search space
  (:data:`~larvastudy.study.grid.SPACE_ATTR`). Trials written by earlier versions each carry a copy of the
  old search space: the rewrite drops those copies, so that they read like the others. Trials carrying
  another grid's space (a user's GridSampler) are left as they are;
- the ``replicate`` parameter's distribution, ``IntDistribution(0, Nsims - 1)``;
- the stored Batch (user attribute ``batch``), last: processes that started before see the new Nsims and
  stop (:class:`~larvastudy.study.claims.Renumbered`).

The tables are Optuna's (internal, pinned by ``optuna<6``, like :func:`larvastudy.study.records.add_trials`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import IntDistribution, distribution_to_json
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from larvastudy.definition.batch import REPLICATE, Batch
from larvastudy.errors import StorageError
from larvastudy.study import optuna_internals as internals
from larvastudy.study.claims import renumber
from larvastudy.study.grid import GRID_ID, SEARCH_SPACE, SPACE_ATTR, grid_ids, same_space, search_space
from larvastudy.study.storage import display_url

#: Rows per ``IN (...)`` list: SQLite allows 999 bound values in older builds.
_CHUNK = 500


def extend(study: optuna.Study, stored: Batch, nsims: int) -> Batch:
    """Give grid study ``study``, made from ``stored``, ``nsims`` replicates per point (more than it has), in one
    transaction (see the module); call under ``setup_lock``. Returns the stored Batch with the new Nsims. A
    SpecError, with nothing changed, while other processes run the study."""
    models = internals.rdb_models()

    wider = dataclasses.replace(stored, Nsims=nsims, check=False)
    storage = internals.rdb_storage(study)
    if storage is None:
        raise StorageError(f"study {study.study_name!r} is not in an RDB storage: its replicates cannot be extended")
    where = f"study {study.study_name!r} in {display_url(storage.url)}"
    with Session(storage.engine) as session, session.begin():
        study_id = internals.study_id(study)
        renumber(session, study_id, len(stored.points()), stored.Nsims, nsims, where)
        if stored.space.is_product:
            _renumber_grid_ids(session, models, study_id, stored, wider)
            _set(session, models.StudySystemAttributeModel.__table__, study_id, SPACE_ATTR, search_space(wider))
        param = models.TrialParamModel.__table__.c
        session.execute(update(models.TrialParamModel.__table__)
                        .where(param.param_name == REPLICATE, param.trial_id.in_(_trial_ids(models, study_id)),
                               param.distribution_json == _replicate_json(stored.Nsims))
                        .values(distribution_json=_replicate_json(nsims)))
        _set(session, models.StudyUserAttributeModel.__table__, study_id, "batch", wider.to_dict())
    return wider


def _renumber_grid_ids(session: Session, models: Any, study_id: int, old: Batch, new: Batch) -> None:
    """Rewrite the ``grid_id`` of the trials of ``old``'s grid as ``new``'s grid numbers the same
    (point, replicate), dropping their copies of ``old``'s search space."""
    attr = models.TrialSystemAttributeModel.__table__
    rows = session.execute(select(attr.c.trial_system_attribute_id, attr.c.trial_id, attr.c.key, attr.c.value_json)
                           .where(attr.c.trial_id.in_(_trial_ids(models, study_id)),
                                  attr.c.key.in_([GRID_ID, SEARCH_SPACE]))).all()
    old_space, ours = search_space(old), {}
    copies = {text: same_space(json.loads(text), old_space) for text in {r.value_json for r in rows
                                                                       if r.key == SEARCH_SPACE}}
    foreign = {r.trial_id for r in rows if r.key == SEARCH_SPACE and not copies[r.value_json]}
    to_new = np.empty(old.grid_size, dtype=np.int64)
    to_new[grid_ids(old)] = grid_ids(new)[:, :old.Nsims]
    for r in rows:
        if r.key == GRID_ID and r.trial_id not in foreign:
            ours[r.trial_system_attribute_id] = json.dumps(int(to_new[json.loads(r.value_json)]))
    if ours:
        session.execute(update(attr).where(attr.c.trial_system_attribute_id == bindparam("row"))
                        .values(value_json=bindparam("text")),
                        [{"row": row, "text": text} for row, text in ours.items()])
    copied = [r.trial_system_attribute_id for r in rows if r.key == SEARCH_SPACE and r.trial_id not in foreign]
    for part in _chunks(copied):
        session.execute(delete(attr).where(attr.c.trial_system_attribute_id.in_(part)))


def _trial_ids(models: Any, study_id: int) -> Any:
    trial = models.TrialModel.__table__.c
    return select(trial.trial_id).where(trial.study_id == study_id)


def _replicate_json(nsims: int) -> str:
    return distribution_to_json(IntDistribution(0, nsims - 1))


def _set(session: Session, table: Table, study_id: int, key: str, value: Any) -> None:
    """Set a study attribute row of ``table`` (user or system attributes) to ``value``."""
    text = json.dumps(value)
    mine = (table.c.study_id == study_id) & (table.c.key == key)
    conn = session.connection()  # Core statements: a Connection's result tells the rows they changed
    if not conn.execute(update(table).where(mine).values(value_json=text)).rowcount:
        conn.execute(insert(table).values(study_id=study_id, key=key, value_json=text))


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]
