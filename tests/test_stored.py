"""Reading a stored study straight from RDBStorage's tables gives what Optuna itself reads (it fails
loudly where an Optuna upgrade changes the tables)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import optuna
import pytest
from optuna.trial import TrialState

from larvastudy.errors import SpecError
from larvastudy.study.storage import open_engine, open_storage, storage_url
from larvastudy.study.stored import read_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_read_study_matches_optuna(tmp_path, direction):
    url = storage_url(tmp_path / "s.db")
    study = optuna.create_study(study_name="s", storage=open_storage(url), direction=direction)
    study.set_user_attr("batch", {"name": "s", "nested": [1, 2.5]})
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["distance"])
    for value in (3.0, -1.5, 7.25):
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"point": {"x": value}}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    study.ask()  # left RUNNING

    stored = read_study(open_engine(url), "s", best=True)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert stored.user_attrs == study.user_attrs and stored.metric_names == study.metric_names
    assert stored.directions == [d.name for d in study.directions]
    assert stored.counts == dict(Counter(t.state.name for t in trials))
    assert stored.best.number == study.best_trial.number and stored.best.value == study.best_value
    assert stored.best.user_attrs == study.best_trial.user_attrs
    utc = [t.datetime_start.astimezone(UTC).replace(tzinfo=None) for t in complete]
    assert stored.first_start == min(utc)
    assert stored.last_complete == max(t.datetime_complete.astimezone(UTC).replace(tzinfo=None)
                                       for t in complete)
    assert read_study(open_engine(url), "s").best is None  # only read when asked


def test_a_missing_study_is_one_line(tmp_path):
    url = storage_url(tmp_path / "s.db")
    optuna.create_study(study_name="other", storage=open_storage(url))
    with pytest.raises(SpecError, match="no larvastudy study 'nope'"):
        read_study(open_engine(url), "nope")
