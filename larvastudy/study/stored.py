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
from larvastudy.study import optuna_internals as internals
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
    models = internals.rdb_models()

    study, attrs, system, directions = (m.__table__.c for m in (models.StudyModel, models.StudyUserAttributeModel,
                                                                 models.StudySystemAttributeModel,
                                                                 models.StudyDirectionModel))
    trial = models.TrialModel.__table__.c
    with engine.connect() as con:
        study_id = con.execute(select(study.study_id).where(study.study_name == name)).scalar()
        if study_id is None:
            raise missing_study(engine, name)
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


@dataclass(frozen=True)
class Listed:
    """One study of a storage as ``larvastudy studies`` lists it: its Batch definition (None if another
    program made it), a fit's sampler, trials counted by state and its last change (naive UTC)."""

    name: str
    study_id: int
    batch: dict[str, Any] | None
    sampler: str | None
    counts: dict[str, int]
    last_change: datetime | None

    @property
    def kind(self) -> str:
        """``grid``, ``fit (<sampler>)``, or ``not larvastudy``."""
        if self.batch is None:
            return "not larvastudy"
        return "grid" if self.sampler is None else f"fit ({self.sampler_name})"

    @property
    def sampler_name(self) -> str | None:
        """A fit's sampler as ``--sampler`` names it (``TPESampler``: ``tpe``)."""
        return None if self.sampler is None else str(self.sampler).removesuffix("Sampler").lower()

    @property
    def complete(self) -> int:
        return self.counts.get("COMPLETE", 0)

    def progress(self) -> str:
        """Simulations done of all (a grid), or complete points and their simulations (a fit)."""
        if self.batch is None:
            return f"{self.complete} complete trials"
        if self.sampler is not None:
            return f"{self.complete} trials x {self.batch.get('Nsims', 1)} simulations"
        return f"{self.complete}/{_grid_size(self.batch)} simulations"

    def holds(self) -> str:
        """What the study holds, for a question before deleting it."""
        unit = "simulations" if self.batch is not None and self.sampler is None else "trials"
        when = "" if self.last_change is None else f", last change {self.last_change:%Y-%m-%d %H:%M} UTC"
        return f"study {self.name} holds {self.complete} complete {unit} ({sum(self.counts.values())} trials{when})"


def list_studies(engine: sqlalchemy.Engine) -> list[Listed]:
    """Every study of the storage, by name, in three set-based queries (as fast for 100,000 trials as for 16)."""
    models = internals.rdb_models()

    study, attrs = (m.__table__.c for m in (models.StudyModel, models.StudyUserAttributeModel))
    trial = models.TrialModel.__table__.c
    with engine.connect() as con:
        names: dict[int, str] = dict(con.execute(select(study.study_id, study.study_name)).all())
        found: dict[int, dict[str, Any]] = {i: {} for i in names}
        for study_id, key, value in con.execute(select(attrs.study_id, attrs.key, attrs.value_json)
                                                .where(attrs.key.in_(("batch", "sampler")))):
            found[study_id][key] = json.loads(value)
        counts: dict[int, dict[str, int]] = {i: {} for i in names}
        last: dict[int, datetime] = {}
        for study_id, state, n, complete, start in con.execute(
                select(trial.study_id, trial.state, func.count(), func.max(trial.datetime_complete),
                       func.max(trial.datetime_start)).group_by(trial.study_id, trial.state)):
            counts[study_id][state.name] = n
            for moment in (complete, start):
                if moment is not None and (study_id not in last or moment > last[study_id]):
                    last[study_id] = moment
    return sorted((Listed(name, i, found[i].get("batch") if isinstance(found[i].get("batch"), dict) else None,
                          found[i].get("sampler"), counts[i], last.get(i)) for i, name in names.items()),
                  key=lambda listed: listed.name)


def fits_of(listed: list[Listed], batch_name: str) -> list[Listed]:
    """The fits of Batch ``batch_name`` among ``listed``: its fit studies named ``<batch_name>-<sampler>``."""
    return [s for s in listed if s.sampler is not None and s.batch is not None and s.batch.get("name") == batch_name
            and s.name.startswith(f"{batch_name}-") and "-" not in s.name.removeprefix(f"{batch_name}-")]


def named_fits(fits: list[Listed]) -> str:
    """``fits`` for a message: ``chemotaxis_fit-tpe (tpe, 30 trials), ...``."""
    return ", ".join(f"{s.name} ({s.sampler_name}, {s.complete} trials)" for s in fits)


def missing_study(engine: sqlalchemy.Engine, name: str) -> SpecError:
    """The error for a study ``name`` the storage lacks, naming the fits of a Batch of that name if it has some."""
    where = display_url(str(engine.url))
    fits = fits_of(list_studies(engine), name)
    if fits:
        return SpecError(f"no grid study {shown(name)} in {where}; its fits: {named_fits(fits)}")
    return SpecError(f"no larvastudy study {shown(name)} in {where}{invalid_hint(name)}")


def _grid_size(batch: dict[str, Any]) -> int | str:
    from larvastudy.definition.batch import Batch

    try:
        return Batch.from_dict(batch, check=False).grid_size
    except (SpecError, TypeError, KeyError):
        return "?"
