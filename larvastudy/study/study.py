"""One Optuna study per Batch: creating or resuming it, and refusing a changed definition."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from larvastudy.definition.batch import REPLICATE, Batch
from larvastudy.definition.space import round_value
from larvastudy.errors import ConflictError, DefinitionChanged, SpecError
from larvastudy.names import check_name
from larvastudy.study.grid import grid_sampler, search_space, share_space
from larvastudy.study.identity import differences
from larvastudy.study.replicates import extend
from larvastudy.study.storage import display_url
from larvastudy.study.stored import missing_study

#: Study user attribute holding ``Batch.to_dict()``.
BATCH_ATTR = "batch"
#: Study user attribute naming the sampler of an adaptive fit (absent for grid sweeps).
SAMPLER_ATTR = "sampler"
#: Study user attribute of a fit: the latest run's ``sampler``, ``n_trials``, ``threshold`` and stop ``rule`` in
#: words; ``larvastudy worker`` runs by it and ``status`` shows it.
FIT_RUN_ATTR = "fit_run"
#: User attribute of a trial copied into a fit by a warm start: ``<study>#<trial numbers>``.
COPIED_FROM = "copied_from"
#: Definition fields that must match for a run to continue an existing study.
_IDENTITY = ("experiment", "sample", "fixed", "Nsims", "metrics", "optimization", "seed", "targets")
#: Those of a grid sweep, whose Nsims may change: more replicates extend it, fewer export the first ones.
_GRID_IDENTITY = tuple(field for field in _IDENTITY if field != "Nsims")


def open_study(batch: Batch, storage: optuna.storages.RDBStorage, study_name: str) -> optuna.Study:
    """The study ``study_name`` for ``batch``: created if new (its name checked, see :mod:`larvastudy.names`),
    else checked to hold the same sweep but for ``Nsims``. A higher Nsims extends the study
    (:func:`~larvastudy.study.replicates.extend`; call under ``setup_lock``); with a lower one the study keeps
    its replicates, and its stored Batch (user attribute :data:`BATCH_ATTR`) its Nsims, whose GridSampler the
    study gets. A Cartesian grid's search space is stored on the study, once (its trials carry only
    ``grid_id``; see :mod:`larvastudy.study.grid`), also on a study made by an earlier version, whose trials
    each carry it."""
    _check_new_name(storage, study_name)
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=grid_sampler(batch),
                                direction=batch.direction, load_if_exists=True)
    held = batch
    if not _adopt(study, batch, storage, [batch.objective_name()], [batch.direction]):
        if is_fit(study):
            raise ConflictError(f"study {study_name!r} in {display_url(storage.url)} is an adaptive fit; give "
                                "the sweep another study name (--study-name, study_name=)")
        held = stored_batch(study.user_attrs, study_name, storage.url)
        _check_same(batch, held, study_name, storage.url, _GRID_IDENTITY)
        if batch.Nsims != held.Nsims:  # a fresh study object: Optuna's cache holds the trials as they were
            held = extend(study, held, batch.Nsims) if batch.Nsims > held.Nsims else held
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=grid_sampler(held))
    if held.space.is_product:
        share_space(study, search_space(held))
    return study


def open_fit_study(batch: Batch, storage: optuna.storages.RDBStorage, study_name: str,
                   sampler: optuna.samplers.BaseSampler, multi: bool) -> optuna.Study:
    """The adaptive-fit study ``study_name`` for ``batch``, created if new (one objective, or one per target
    when ``multi``), else checked to hold the same Batch and objectives. Its sampler may change between
    runs (e.g. random search first, then TPE). A new study's name is checked as :func:`open_study`'s."""
    _check_new_name(storage, study_name)
    directions: list[Literal["minimize", "maximize"]] = (["minimize"] * len(batch.targets) if multi
                                                         else [batch.direction])
    names = [f"{m}_error" for m in batch.targets] if multi else [batch.objective_name()]
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, directions=directions,
                                load_if_exists=True)
    if not _adopt(study, batch, storage, names, directions, type(sampler).__name__):
        if not is_fit(study):
            raise ConflictError(f"study {study_name!r} in {display_url(storage.url)} is a grid sweep; give the "
                                "fit another study name (--study-name, study_name=)")
        stored = stored_batch(study.user_attrs, study_name, storage.url)
        if stored.Nsims != batch.Nsims:
            raise SpecError(f"fit {study_name!r} in {display_url(storage.url)} scores each point by the mean of its "
                            f"{stored.Nsims} replicates, so its Nsims stays {stored.Nsims}; use another study name "
                            "(--study-name) for a fit with another Nsims")
        _check_same(batch, stored, study_name, storage.url)
        if [d.name.lower() for d in study.directions] != directions or study.metric_names != names:
            raise SpecError(f"study {study_name!r} in {display_url(storage.url)} optimises "
                            f"{', '.join(study.metric_names or [])}, not {', '.join(names)}; use another study name")
    return study


def _adopt(study: optuna.Study, batch: Batch, storage: optuna.storages.RDBStorage, objective_names: list[str],
           directions: Sequence[str], sampler: str | None = None) -> bool:
    """Record ``batch`` (and a fit's ``sampler``) on a study larvastudy has not set up yet; False if it had.
    A study made by another program is taken only if it is empty and optimises in ``directions``."""
    if BATCH_ATTR in study.user_attrs:
        return False
    where = f"study {study.study_name!r} in {display_url(storage.url)}"
    if study.get_trials(deepcopy=False):
        raise SpecError(f"{where} was not made by larvastudy; choose another study name")
    made = [d.name.lower() for d in study.directions]
    if made != directions:
        raise SpecError(f"{where} was made outside larvastudy to {', '.join(made)}, not to {', '.join(directions)} "
                        f"{', '.join(objective_names)}; choose another study name")
    study.set_user_attr(BATCH_ATTR, batch.to_dict())
    if sampler is not None:
        study.set_user_attr(SAMPLER_ATTR, sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objective_names)
    return True


def _check_new_name(storage: optuna.storages.RDBStorage, study_name: str) -> None:
    """A SpecError if there is no study ``study_name`` yet and that is not a valid name for one."""
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        check_name(study_name)


def is_fit(study: optuna.Study) -> bool:
    """Whether ``study`` is an adaptive fit (a trial per proposed point) rather than a grid sweep."""
    return SAMPLER_ATTR in study.user_attrs


def load_study(storage: optuna.storages.RDBStorage, study_name: str,
               batch: Batch | None = None) -> tuple[optuna.Study, Batch]:
    """An existing larvastudy study and the Batch it was made from, or ``batch`` if given, checked to be the same
    sweep (a grid sweep's Nsims may differ: see :func:`open_study`). A grid study's sampler is the GridSampler
    of its stored Batch."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise missing_study(storage.engine, study_name) from None
    stored = stored_batch(study.user_attrs, study_name, storage.url)
    if batch is None:
        batch = stored
    else:
        _check_same(batch, stored, study_name, storage.url, _IDENTITY if is_fit(study) else _GRID_IDENTITY)
    if not is_fit(study) and stored.space.is_product:
        study.sampler = grid_sampler(stored)
    return study, batch


def stored_batch(user_attrs: Mapping[str, Any], study_name: str, url: str) -> Batch:
    """The Batch a larvastudy study was made from (its ``batch`` user attribute, checked when it was made);
    a SpecError naming the study if it has none or another program's attribute of that name."""
    where = f"study {study_name!r} in {display_url(url)}"
    if BATCH_ATTR not in user_attrs:
        raise SpecError(f"no larvastudy study {study_name!r} in {display_url(url)}")
    try:
        return Batch.from_stored(user_attrs[BATCH_ATTR])
    except (AttributeError, TypeError, KeyError, SpecError):
        raise SpecError(f"{where} was not made by larvastudy (its user attribute {BATCH_ATTR!r} is not a Batch "
                        "definition); choose another study name") from None


def completed(study: optuna.Study) -> set[tuple[int, int]]:
    """``(grid point, replicate)`` of every COMPLETE grid trial."""
    return {(t.user_attrs["grid_point"], t.params[REPLICATE])
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "grid_point" in t.user_attrs}


def _comparable(value: Any) -> Any:
    """``value`` with its floats to :data:`~larvastudy.definition.space.DIGITS` significant digits: a study made
    before range values were rounded holds ``33.33333333333334`` where a Batch now has ``33.3333333333``,
    and is the same sweep (it keeps running on its stored values, see :func:`open_study`)."""
    if isinstance(value, float):
        return round_value(value)
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _check_same(batch: Batch, stored_batch: Batch, study_name: str, url: str,
                fields: Sequence[str] = _IDENTITY) -> None:
    current = json.loads(json.dumps(batch.to_dict()))
    stored = json.loads(json.dumps(stored_batch.to_dict()))  # later fields get defaults
    changed = [key for key in fields if _comparable(stored[key]) != _comparable(current[key])]
    if changed:
        raise DefinitionChanged(study_name, display_url(url), differences(stored, current, changed))
