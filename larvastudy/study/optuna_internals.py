"""Every use of Optuna's internals outside a subclass, in one place.

larvastudy writes and reads RDBStorage's tables directly where Optuna's public API costs a query per
attribute (bulk inserts of finished trials, set-based reads of big studies, claims and leases beside
the trials), and reaches a Study's storage and ids for that. optuna is pinned ``<6`` in pyproject.toml
for these; ``tests/test_optuna_internals.py`` checks each one against the installed Optuna, so an
upgrade that changes one fails there, by name. The GridSampler subclass in
:mod:`larvastudy.study.grid` is the only other place (its override is tested in
``tests/test_hardening_storage.py``).
"""

from __future__ import annotations

from types import ModuleType

import optuna


def rdb_models() -> ModuleType:
    """``optuna.storages._rdb.models``: RDBStorage's SQLAlchemy models (``StudyModel``, ``TrialModel``, ...)."""
    from optuna.storages._rdb import models

    return models


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a Study reads and writes through (maybe a cache around the RDBStorage)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage."""
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The trial's id in its storage."""
    return trial._trial_id


def rdb_storage(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The RDBStorage behind the study's storage (unwrapping caches), or None for other storages."""
    storage: object = storage_of(study)
    while not isinstance(storage, optuna.storages.RDBStorage):
        storage = getattr(storage, "_backend", None)
        if storage is None:
            return None
    return storage


def forget_cached_trials(study: optuna.Study) -> None:
    """Drop the Study's per-thread copy of its trials, as ``Study.ask`` does, so that a sampler sees trials
    written to the storage behind Optuna's back (the fit leases)."""
    study._thread_local.cached_all_trials = None
