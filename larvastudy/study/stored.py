"""A stored study read straight from RDBStorage's tables: what ``status`` shows, in a few aggregate
queries, so that it costs the same for 16 trials as for 100,000 and needs no Optuna storage set-up.

The table layout is Optuna's (internal, pinned by ``optuna<6``, like :func:`larvastudy.study.records.add_trials`);
the tests check these readings against Optuna's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from larvastudy.errors import SpecError
from larvastudy.names import invalid_hint, shown
from larvastudy.study.storage import display_url

#: The study system attribute where ``Study.set_metric_names`` keeps the objectives' names.
_METRIC_NAMES = "study:metric_names"


@dataclass(frozen=True)
class BestTrial:
    """The best COMPLETE trial of a single-objective study."""

    number: int
    value: float
    user_attrs: dict[str, Any]


@dataclass(frozen=True)
class StoredStudy:
    """A study's user attributes, objective directions (``"MINIMIZE"``/``"MAXIMIZE"``) and names, trials
    counted by state, when its COMPLETE trials ran (naive UTC) and, with one objective, its best trial."""

    study_id: int
    user_attrs: dict[str, Any]
    directions: list[str]
    metric_names: list[str] | None
    counts: dict[str, int]
    first_start: datetime | None
    last_complete: datetime | None
    best: BestTrial | None


def read_study(engine: sqlalchemy.Engine, name: str, best: bool = False) -> StoredStudy:
    """The :class:`StoredStudy` called ``name`` (its best trial only if ``best``); a SpecError if there is none."""
    from optuna.storages._rdb import models  # internal, see the module

    study, attrs, system, directions = (m.__table__.c for m in (
        models.StudyModel, models.StudyUserAttributeModel, models.StudySystemAttributeModel, models.StudyDirectionModel))
    trial = models.TrialModel.__table__.c
    with engine.connect() as con:
        study_id = con.execute(select(study.study_id).where(study.study_name == name)).scalar()
        if study_id is None:
            raise SpecError(f"no larvastudy study {shown(name)} in {display_url(str(engine.url))}"
                            f"{invalid_hint(name)}")
        user_attrs = {key: json.loads(value) for key, value in
                      con.execute(select(attrs.key, attrs.value_json).where(attrs.study_id == study_id))}
        names = con.execute(select(system.value_json).where(system.study_id == study_id,
                                                            system.key == _METRIC_NAMES)).scalar()
        ways = [d.name for d in con.execute(select(directions.direction).where(directions.study_id == study_id)
                                            .order_by(directions.objective)).scalars()]
        counts = {state.name: n for state, n in con.execute(
            select(trial.state, func.count()).where(trial.study_id == study_id).group_by(trial.state))}
        first, last = con.execute(select(func.min(trial.datetime_start), func.max(trial.datetime_complete))
                                  .where(trial.study_id == study_id, trial.state == "COMPLETE")).one()
        top = _best(con, models, study_id, ways[0]) if best and len(ways) == 1 and counts.get("COMPLETE") else None
    return StoredStudy(study_id, user_attrs, ways, names and json.loads(names), counts, first, last, top)


def _best(con: sqlalchemy.Connection, models: Any, study_id: int, direction: str) -> BestTrial | None:
    trial, value, attrs = (m.__table__.c for m in (models.TrialModel, models.TrialValueModel,
                                                    models.TrialUserAttributeModel))
    order = value.value.desc() if direction == "MAXIMIZE" else value.value.asc()
    row = con.execute(select(trial.trial_id, trial.number, value.value)
                      .join_from(models.TrialModel.__table__, models.TrialValueModel.__table__,
                                 value.trial_id == trial.trial_id)
                      .where(trial.study_id == study_id, trial.state == "COMPLETE", value.objective == 0,
                             value.value_type == "FINITE")
                      .order_by(order, trial.number).limit(1)).one_or_none()
    if row is None:
        return None
    user_attrs = {key: json.loads(text) for key, text in
                  con.execute(select(attrs.key, attrs.value_json).where(attrs.trial_id == row.trial_id))}
    return BestTrial(row.number, row.value, user_attrs)
