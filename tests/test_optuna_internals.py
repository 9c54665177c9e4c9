"""Each Optuna internal larvastudy uses (larvastudy.study.optuna_internals), checked against the installed
Optuna: an upgrade that renames or removes one fails here, naming it, before anything else breaks."""

from __future__ import annotations

import optuna
import sqlalchemy

from larvastudy.study import optuna_internals as internals

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_rdb_models_are_the_tables_of_an_rdb_storage(tmp_path):
    models = internals.rdb_models()
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    tables = set(sqlalchemy.inspect(storage.engine).get_table_names())
    for model in ("StudyModel", "TrialModel", "TrialParamModel", "TrialValueModel", "TrialUserAttributeModel",
                  "TrialSystemAttributeModel", "StudyDirectionModel"):
        assert getattr(models, model).__table__.name in tables, model
    assert callable(models.StudyModel.find_or_raise_by_id)
    assert callable(models.TrialValueModel.value_to_stored_repr)
    trial = models.TrialModel.__table__.c
    assert {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"} <= set(trial.keys())


def test_a_study_and_its_trials_show_their_storage_and_ids(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    rdb = internals.rdb_storage(study)
    assert isinstance(rdb, optuna.storages.RDBStorage) and internals.storage_of(study) is not None
    assert internals.study_id(study) == rdb.get_study_id_from_name("s")
    trial = study.ask()
    assert internals.trial_id(trial) == study.get_trials(deepcopy=False)[0]._trial_id
    assert internals.rdb_storage(optuna.create_study()) is None  # in memory: no RDBStorage behind it


def test_forgetting_the_cached_trials_shows_trials_written_behind_optunas_back(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="s")
    assert study._get_trials(deepcopy=False, use_cache=True) == []  # what samplers read: now cached
    optuna.load_study(study_name="s", storage=url).add_trial(optuna.trial.create_trial(value=1.0))
    assert study._get_trials(deepcopy=False, use_cache=True) == []  # the cache hides the new trial
    internals.forget_cached_trials(study)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 1
