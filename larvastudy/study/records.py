"""Finished simulations as Optuna trials: writing many of them in one transaction, reading them as a table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import Session

from larvastudy.study import optuna_internals as internals

if TYPE_CHECKING:  # pandas is imported where it is used: workers import this module and never need it
    import pandas as pd

#: The finished states, the ones exports read.
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
#: :func:`trials_table`'s columns before the params and user attributes.
_TRIAL_COLUMNS = ("number", "state", "datetime_start", "datetime_complete", "value")


def add_trials(session: Session, study_id: int, trials: Sequence[FrozenTrial]) -> None:
    """Insert finished ``trials`` into a study, inside the caller's transaction on ``session``.

    Uses RDBStorage's tables (Optuna internals, pinned by ``optuna<6``) on purpose: ``Study.add_trial``
    issues a SELECT and an upsert per attribute, about 23 ms per trial with 16 metrics; bulk-inserting
    the fresh rows with SQLAlchemy Core costs a fraction of a millisecond per trial. Like Optuna, it
    locks the study row first, so that trial numbers (the count of the study's trials before them)
    stay unique with concurrent writers.
    The tests check that the result reads back exactly like ``Study.add_trial``'s.
    """
    if not trials:
        return
    models = internals.rdb_models()

    models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
    first = session.execute(select(func.count()).select_from(models.TrialModel)
                            .where(models.TrialModel.study_id == study_id)).scalar_one()
    rows = [{"study_id": study_id, "number": first + i, "state": t.state, "datetime_start": _utc(t.datetime_start),
             "datetime_complete": _utc(t.datetime_complete)} for i, t in enumerate(trials)]
    table = models.TrialModel.__table__
    trial_ids = session.execute(insert(table).returning(table.c.trial_id, sort_by_parameter_order=True),
                                rows).scalars().all()
    for model, values in _children(models, trial_ids, trials).items():
        if values:
            session.execute(insert(model.__table__), values)


def _utc(moment: datetime | None) -> datetime | None:
    """A local (or aware) time as the naive UTC time RDBStorage stores, as its TrialModel setters do."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _children(models: ModuleType, trial_ids: Sequence[int], trials: Sequence[FrozenTrial]
              ) -> dict[Any, list[dict[str, Any]]]:
    """The rows of the value, param and attribute tables, per model (attributes as JSON)."""
    tables: dict[Any, list[dict[str, Any]]] = {models.TrialValueModel: [], models.TrialParamModel: [],
                                      models.TrialUserAttributeModel: [], models.TrialSystemAttributeModel: []}
    shared: dict[int, tuple[Any, str]] = {}  # JSON of objects many trials share: distributions

    def dumps(value: Any, encode: Callable[[Any], str] = json.dumps) -> str:
        if isinstance(value, (int, float, str, bool)) or value is None:
            return encode(value)
        if id(value) not in shared:
            shared[id(value)] = (value, encode(value))  # keeps value alive, so its id is not reused
        return shared[id(value)][1]

    for trial_id, trial in zip(trial_ids, trials, strict=True):
        for objective, value in enumerate(trial.values or ()):  # every objective of a multi-objective trial
            stored, kind = models.TrialValueModel.value_to_stored_repr(value)
            tables[models.TrialValueModel].append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            tables[models.TrialParamModel].append(
                {"trial_id": trial_id, "param_name": name, "param_value": dist.to_internal_repr(value),
                 "distribution_json": dumps(dist, distribution_to_json)})
        for model, attrs in ((models.TrialUserAttributeModel, trial.user_attrs),
                             (models.TrialSystemAttributeModel, trial.system_attrs)):
            tables[model] += [{"trial_id": trial_id, "key": k, "value_json": dumps(v)} for k, v in attrs.items()]
    return tables


def trials_table(study: optuna.Study, states: Sequence[TrialState] = FINISHED) -> pd.DataFrame:
    """The study's trials in ``states``, one row per trial in number order, like ``Study.trials_dataframe``:
    ``number``, ``state`` (its name), ``datetime_start`` and ``datetime_complete`` (naive UTC, as RDBStorage
    stores them; FrozenTrial shows them in local time), ``value`` (the first objective's, NaN if none), then
    ``params_<name>`` (external values, e.g. a categorical's choice) and ``user_attrs_<key>``. These are object columns
    holding the values as Optuna gives them (ints stay ints), NaN where a trial lacks one.

    With an RDB storage it reads Optuna's tables with three set-based queries (Optuna internals, pinned by
    ``optuna<6``, like :func:`add_trials`): ``Study.get_trials`` builds a FrozenTrial per trial with every
    system attribute, in studies written by earlier versions a copy of the whole grid search space (about
    0.6 ms and 50 kB per trial). The tests check that both read the same. Other storages go through
    ``get_trials``.
    """
    storage = internals.rdb_storage(study)
    if storage is None:
        return _frozen_table(study.get_trials(deepcopy=False, states=tuple(states)))
    with storage.engine.connect() as conn:
        trials, params, attrs = _read_rdb(conn, internals.study_id(study), states)
    table = trials.set_index("trial_id").join([params.add_prefix("params_"), attrs.add_prefix("user_attrs_")])
    return table.sort_values("number").reset_index(drop=True)


def _read_rdb(conn: Connection, study_id: int, states: Sequence[TrialState]
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The trials' rows (``trial_id`` and the trial columns), and their params and user attributes pivoted
    to one column per name, indexed by trial id."""
    import pandas as pd
    models = internals.rdb_models()

    trial, value = models.TrialModel.__table__, models.TrialValueModel.__table__
    mine = (trial.c.study_id == study_id) & trial.c.state.in_(list(states))
    trials = pd.DataFrame(_columns(conn.execute(select(
        trial.c.trial_id, trial.c.number, trial.c.state, trial.c.datetime_start, trial.c.datetime_complete,
        value.c.value, value.c.value_type
    ).outerjoin(value, (value.c.trial_id == trial.c.trial_id) & (value.c.objective == 0)).where(mine)),
        ["trial_id", *_TRIAL_COLUMNS, "value_type"]))
    trials["value"] = [math.nan if kind is None else models.TrialValueModel.stored_repr_to_value(v, kind)
                       for v, kind in zip(trials["value"], trials.pop("value_type"), strict=True)]
    trials["state"] = [TrialState(state).name for state in trials["state"]]
    for column in ("datetime_start", "datetime_complete"):
        trials[column] = pd.to_datetime(trials[column])

    param = models.TrialParamModel.__table__
    params = _columns(conn.execute(select(param.c.trial_id, param.c.param_name, param.c.param_value,
                                          param.c.distribution_json).join(trial).where(mine)),
                      ["trial_id", "name", "internal", "distribution"])
    dists = {text: json_to_distribution(text) for text in set(params["distribution"])}
    params["value"] = [dists[text].to_external_repr(value)
                       for text, value in zip(params.pop("distribution"), params.pop("internal"), strict=True)]

    attr = models.TrialUserAttributeModel.__table__
    attrs = _columns(conn.execute(select(attr.c.trial_id, attr.c.key, attr.c.value_json).join(trial).where(mine)),
                     ["trial_id", "name", "json"])
    attrs["value"] = json.loads(f"[{','.join(attrs.pop('json'))}]")  # one parse: C speed, not 1 call per value
    return trials, _pivot(params), _pivot(attrs)


def _pivot(long: dict[str, list[Any]]) -> pd.DataFrame:
    """One column per ``name`` of ``value`` (Python objects, as given), one row per ``trial_id``; names in
    first-seen order."""
    import pandas as pd

    frame = pd.DataFrame({"trial_id": long["trial_id"], "name": long["name"],
                          "value": pd.Series(long["value"], dtype=object)})
    wide = frame.pivot(index="trial_id", columns="name", values="value")
    return wide[list(dict.fromkeys(long["name"]))].rename_axis(columns=None)


def _columns(result: Result[Any], names: list[str]) -> dict[str, list[Any]]:
    """The rows of ``result`` as one list per column (pandas would probe each SQLAlchemy Row)."""
    rows = result.all()
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def _datetimes(moments: list[datetime | None]) -> pd.DatetimeIndex:
    """``moments`` as datetime64 values, NaT for None."""
    import pandas as pd

    return pd.DatetimeIndex(moments)


def _frozen_table(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """:func:`trials_table`'s table of FrozenTrials."""
    import pandas as pd

    base = pd.DataFrame({"number": [t.number for t in trials], "state": [t.state.name for t in trials],
                         "datetime_start": _datetimes([_utc(t.datetime_start) for t in trials]),
                         "datetime_complete": _datetimes([_utc(t.datetime_complete) for t in trials]),
                         "value": [math.nan if not t.values else t.values[0] for t in trials]})
    params = pd.DataFrame([t.params for t in trials], index=base.index, dtype=object).add_prefix("params_")
    attrs = pd.DataFrame([t.user_attrs for t in trials], index=base.index, dtype=object).add_prefix("user_attrs_")
    return base.join([params, attrs])
