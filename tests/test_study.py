"""The Optuna side: GridSampler-compatible trials, the bulk trial writer, storage and study identity."""

from __future__ import annotations

import dataclasses
import datetime
import math
import multiprocessing
import sqlite3

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState
from sqlalchemy.orm import Session

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, batch_from_kwargs
from larvastudy.errors import ConflictError, SpecError, StorageError
from larvastudy.execution.tasks import Outcome, SweepTask, TrialFactory
from larvastudy.study import (
    add_trials,
    grid_ids,
    grid_sampler,
    load_study,
    open_storage,
    open_study,
    search_space,
    storage_url,
)
from larvastudy.study.records import trials_table

optuna.logging.set_verbosity(optuna.logging.WARNING)
AXES = {"gain_dict.CS": [-1.0, 0.5, 2.0], "gain_dict.UCS": [3, 4, 5], "model": ["navigator_x2", "forager_x2"]}


def small_batch(**changes):
    kwargs = {"experiment": "PItest_off", "sample": {"gain_dict.CS": [1.0, 2.0]}, "fixed": {"duration": 0.05},
              "Nsims": 2, "name": "small", **changes}
    return batch_from_kwargs(**kwargs)


@settings(max_examples=15, deadline=None)
@given(axes=st.lists(st.sampled_from(sorted(AXES)), unique=True, max_size=3),
       sizes=st.lists(st.integers(1, 3), min_size=3, max_size=3), nsims=st.integers(1, 3), seed=st.integers(0, 99))
def test_grid_ids_are_gridsamplers(axes, sizes, nsims, seed):
    sample = {a: AXES[a][:n] for a, n in zip(axes, sizes, strict=False)}  # axes: 0 to 3
    batch = small_batch(sample=sample, Nsims=nsims, seed=seed)
    study = optuna.create_study(sampler=grid_sampler(batch))
    study.optimize(lambda t: [t.suggest_categorical(k, v) for k, v in search_space(batch).items()] and 0.0,
                   n_trials=batch.grid_size)
    by_id = {t.system_attrs["grid_id"]: t.params for t in study.trials}
    ids = grid_ids(batch)
    for i, point in enumerate(batch.points()):
        for r in range(nsims):
            assert by_id[ids[i, r]] == {**point, REPLICATE: r}


def outcome(point: int, replicate: int, error: str | None = None) -> Outcome[SweepTask]:
    start = datetime.datetime(2025, 1, 2, 3, 4, 5)
    metrics = {"PI": 0.25 * point, "PI_std": 0.5, "v_mu": float("nan")}
    task = SweepTask(grid_point=point, replicate=replicate, seed=1000 + point)
    return Outcome(task, metrics, None if error else 0.25 * point, error, start, start + datetime.timedelta(seconds=2))


def test_bulk_writer_reads_back_like_add_trial(tmp_path):
    batch = small_batch()
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    factory = TrialFactory(batch)
    trials = [factory.trial(outcome(0, 1)), factory.trial(outcome(1, 0, error="ValueError: boom")),
              factory.trial(outcome(1, 1))]
    ours = optuna.create_study(study_name="bulk", storage=rdb, direction="maximize")
    ref = optuna.create_study(study_name="ref", storage=rdb, direction="maximize")
    for part in (trials[:1], trials[1:]):
        with Session(rdb.engine) as session, session.begin():
            add_trials(session, rdb.get_study_id_from_name("bulk"), part)
    for trial in trials:
        ref.add_trial(trial)
    fields = ("number", "state", "value", "params", "distributions", "system_attrs", "datetime_start",
              "datetime_complete")
    for a, b in zip(ours.get_trials(), ref.get_trials(), strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert a.user_attrs.keys() == b.user_attrs.keys() and a.user_attrs["PI"] == b.user_attrs["PI"]
    first, failed = ours.trials[0], ours.trials[1]
    assert first.params == {"gain_dict.CS": 1.0, REPLICATE: 1} and first.user_attrs["seed"] == 1000
    assert first.system_attrs == {"grid_id": int(grid_ids(batch)[0, 1])}  # the search space is the study's
    assert failed.state == TrialState.FAIL and failed.user_attrs["error"] == "ValueError: boom"
    assert failed.system_attrs == {} and failed.user_attrs["grid_point"] == 1


def test_open_study_refuses_a_changed_definition(tmp_path):
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    batch = small_batch()
    study = open_study(batch, rdb, "small")
    assert study.user_attrs["batch"] == batch.to_dict() and study.direction.name == "MAXIMIZE"
    open_study(dataclasses.replace(batch, description="same sweep, other words"), rdb, "small")
    for changes, found in [({"sample": {"gain_dict.CS": [1.0, 3.0]}}, "sample gain_dict.CS: [1.0, 2.0] -> [1.0, 3.0]"),
                           ({"fixed": {"duration": 0.1}}, "duration: 0.05 -> 0.1"), ({"seed": 1}, "seed: 0 -> 1"),
                           ({"experiment": "dish", "sample": {"Npoints": [1]}},
                            "experiment: PItest_off -> dish; sample gain_dict.CS: [1.0, 2.0] -> unset; "
                            "sample Npoints: unset -> [1]; metrics: ")]:
        with pytest.raises(ConflictError, match="holds another definition: ") as refused:
            open_study(small_batch(**changes), rdb, "small")
        assert found in str(refused.value)
    open_study(small_batch(Nsims=3), rdb, "small-3")
    assert load_study(rdb, "small")[1] == batch


def test_studies_not_made_by_larvastudy(tmp_path):
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    optuna.create_study(study_name="foreign", storage=rdb).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(SpecError, match=r"'foreign' .* was not made by larvastudy"):
        open_study(small_batch(), rdb, "foreign")
    batch = small_batch()
    other = "minimize" if batch.direction == "maximize" else "maximize"
    optuna.create_study(study_name="backwards", storage=rdb, direction=other)
    with pytest.raises(SpecError, match=f"'backwards' .* made outside larvastudy to {other}, not to {batch.direction}"):
        open_study(batch, rdb, "backwards")
    optuna.create_study(study_name="empty", storage=rdb, direction=batch.direction)
    assert open_study(batch, rdb, "empty").user_attrs["batch"]["name"] == "small"
    optuna.create_study(study_name="own-attr", storage=rdb).set_user_attr("batch", "my batch")
    for use in (lambda: open_study(batch, rdb, "own-attr"), lambda: load_study(rdb, "own-attr")):
        with pytest.raises(SpecError, match=r"'own-attr' .* not made by larvastudy .*'batch' is not a Batch"):
            use()
    with pytest.raises(SpecError, match="no larvastudy study 'missing'"):
        load_study(rdb, "missing")


def test_storage_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LARVASTUDY_STORAGE", raising=False)
    assert storage_url() == f"sqlite:///{tmp_path}/storage/larvastudy.db"
    assert storage_url("x.db") == f"sqlite:///{tmp_path}/x.db"
    assert storage_url("postgresql://u:pw@host/db") == "postgresql://u:pw@host/db"
    monkeypatch.setenv("LARVASTUDY_STORAGE", "sqlite:///env.db")
    assert storage_url() == "sqlite:///env.db"
    with pytest.raises(StorageError, match="invalid storage URL"):
        storage_url("not a url://")
    open_storage(storage_url("deep/er/s.db"))
    with sqlite3.connect(tmp_path / "deep/er/s.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _open(url: str) -> None:
    open_storage(url)


def test_processes_opening_a_new_database_at_once_never_race(tmp_path):
    """RDBStorage creates missing tables; without the setup lock, two processes opening a new SQLite
    file at once could both try ("table ... already exists")."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        url = storage_url(tmp_path / f"race{attempt}.db")
        procs = [ctx.Process(target=_open, args=(url,)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]


def test_trials_table_reads_what_get_trials_gives(tmp_path):
    """The SQL reader against Optuna's own: an Optuna upgrade that changes its tables must fail here."""
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    study = optuna.create_study(study_name="read", storage=rdb)
    dists = {"model": optuna.distributions.CategoricalDistribution(["navigator_x2", "forager_x2", None, 3]),
             "n": optuna.distributions.IntDistribution(1, 9), "x": optuna.distributions.FloatDistribution(0, 1)}
    def only(*names):
        return {name: dists[name] for name in names}

    study.add_trial(optuna.trial.create_trial(
        params={"model": "forager_x2", "n": 3, "x": 0.25}, distributions=dists, value=1.0,
        user_attrs={"seed": 2**62 + 1, "PI": float("nan"), "tags": ["a", 1], "nested": {"k": None}}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={"model": None, "n": 9},
                                              distributions=only("model", "n"),
                                              user_attrs={"error": "ValueError: boom"}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # no params, no attributes
    study.add_trial(optuna.trial.create_trial(params={"model": 3}, distributions=only("model"),
                                              value=2.0))
    study.enqueue_trial({"x": 0.5})  # WAITING: not read
    with Session(rdb.engine) as session, session.begin():  # larvastudy's bulk writer, with times
        add_trials(session, study._study_id, [TrialFactory(small_batch()).trial(outcome(1, 0, error="boom")),
                                              TrialFactory(small_batch()).trial(outcome(0, 1))])
    table = trials_table(study)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))
    assert len(table) == len(trials) == 6 and table["number"].tolist() == [t.number for t in trials]
    for row, trial in zip(table.to_dict("records"), trials, strict=True):
        assert row["state"] == trial.state.name
        for field in ("datetime_start", "datetime_complete"):  # naive UTC, FrozenTrial's naive local time
            local = getattr(trial, field)
            utc = local.astimezone(datetime.UTC).replace(tzinfo=None) if local else None
            assert (row[field].to_pydatetime() if pd.notna(row[field]) else None) == utc
        for prefix, stored in (("params_", trial.params), ("user_attrs_", trial.user_attrs)):
            read = {k[len(prefix):]: v for k, v in row.items()
                    if k.startswith(prefix) and not (isinstance(v, float) and math.isnan(v))}
            expected = {k: v for k, v in stored.items() if not (isinstance(v, float) and math.isnan(v))}
            assert read == expected
            assert {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in expected.items()}
    assert table.loc[0, "user_attrs_seed"] == 2**62 + 1  # not rounded through a float
    assert table.loc[0, "params_model"] == "forager_x2" and table.loc[1, "params_model"] is None
    memory = optuna.create_study()  # not RDB: read through get_trials, the same table (trials renumbered)
    memory.add_trials(trials)
    pd.testing.assert_frame_equal(trials_table(memory).drop(columns="number"), table.drop(columns="number"))


def test_a_study_made_before_range_values_were_rounded_runs_on_its_own_values(tmp_path):
    """Range values are rounded to 12 significant digits now; a study whose stored Batch holds linspace's
    exact values is the same sweep, and resumes and extends with those values (and their seeds)."""
    url = storage_url(tmp_path / "s.db")
    exact = np.linspace(0.1, 0.5, 3).tolist()
    assert exact[1] == 0.30000000000000004
    run_batch(small_batch(sample={"gain_dict.CS": exact}), storage=url)
    rounded = small_batch(sample={"gain_dict.CS": {"range": [0.1, 0.5], "Ngrid": 3}}, Nsims=3)
    assert rounded.space.values("gain_dict.CS") == [0.1, 0.3, 0.5]
    summary = run_batch(rounded, storage=url, study_name="small")
    assert summary.complete == 9
    study, _ = load_study(open_storage(url), "small")
    assert {t.params["gain_dict.CS"] for t in study.trials} == set(exact)
