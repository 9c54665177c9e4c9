"""One Optuna study per Batch: creating or resuming it, and refusing a changed definition."""

from __future__ import annotations

import json
import warnings

import optuna
from optuna.trial import TrialState

from larvastudy.errors import SpecError
from larvastudy.spec.batch import REPLICATE, Batch
from larvastudy.study.grid import grid_sampler
from larvastudy.study.storage import display_url

#: Study user attribute holding ``Batch.to_dict()``.
BATCH_ATTR = "batch"
#: Definition fields that must match for a run to continue an existing study.
_IDENTITY = ("experiment", "sample", "fixed", "Nsims", "metrics", "optimization", "seed")


def open_study(batch: Batch, storage: optuna.storages.RDBStorage, study_name: str) -> optuna.Study:
    """The study ``study_name`` for ``batch``: created if new, else checked to hold the same sweep."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=grid_sampler(batch))
    except KeyError:
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=grid_sampler(batch),
                                    direction=batch.direction)
    stored = study.user_attrs.get(BATCH_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise SpecError(f"study {study_name!r} in {display_url(storage.url)} was not made by larvastudy; "
                            "choose another study name")
        study.set_user_attr(BATCH_ATTR, batch.to_dict())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([batch.objective_metric()])
    else:
        _check_same(batch, stored, study_name, storage.url)
    return study


def load_study(storage: optuna.storages.RDBStorage, study_name: str,
               batch: Batch | None = None) -> tuple[optuna.Study, Batch]:
    """An existing larvastudy study and the Batch it was made from (checked to equal ``batch`` if given)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        stored = study.user_attrs[BATCH_ATTR]
    except KeyError:
        raise SpecError(f"no larvastudy study {study_name!r} in {display_url(storage.url)}") from None
    if batch is None:
        batch = Batch.from_dict(stored)
    else:
        _check_same(batch, stored, study_name, storage.url)
    study.sampler = grid_sampler(batch)
    return study, batch


def completed(study: optuna.Study) -> set[tuple[int, int]]:
    """``(grid point, replicate)`` of every COMPLETE grid trial."""
    return {(t.user_attrs["grid_point"], t.params[REPLICATE])
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "grid_point" in t.user_attrs}


def _check_same(batch: Batch, stored: dict, study_name: str, url: str) -> None:
    current = json.loads(json.dumps(batch.to_dict()))
    changed = [key for key in _IDENTITY if stored.get(key) != current[key]]
    if changed:
        raise SpecError(f"study {study_name!r} in {display_url(url)} was made with a different "
                        f"{', '.join(changed)}; use another study name (--study) to start a new study")
