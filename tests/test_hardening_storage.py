"""Issue 16: trial records whose size does not depend on the grid's, GridSampler on such studies, and
studies written before (every trial carrying the whole search space) still read, resumed and exported."""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from optuna.samplers import GridSampler
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, Batch, batch_from_kwargs
from larvastudy.export import export_study
from larvastudy.study import grid_sampler, load_study, open_storage, search_space, storage_url
from larvastudy.study.grid import SPACE_ATTR, BatchGridSampler

from seams import failing_simulate, noop_simulate, written_by_an_earlier_version

optuna.logging.set_verbosity(optuna.logging.ERROR)


def dish(nsims: int, npoints: Sequence[int] = (2, 3)) -> Batch:
    return batch_from_kwargs(experiment="dish", sample={"Npoints": list(npoints)}, fixed={"duration": 0.05},
                             Nsims=nsims, name="sweep")


def sql(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


def grid_study(db: Path, batch: Batch) -> optuna.Study:
    """The study as a plain Optuna user opens it, with the Batch's GridSampler."""
    return optuna.load_study(study_name="sweep", storage=storage_url(db), sampler=grid_sampler(batch))


def suggest_all(trial: optuna.Trial) -> float:
    """The objective of a :func:`dish` grid: suggest what the trials store, with the same distributions."""
    return trial.suggest_int("Npoints", 2, 3) + trial.suggest_int(REPLICATE, 0, trial.study.user_attrs["batch"]
                                                                   ["Nsims"] - 1) * 0.0


def simulations(trials: Sequence[optuna.trial.FrozenTrial]) -> list[tuple[int, int]]:
    return sorted((t.params["Npoints"], t.params[REPLICATE]) for t in trials)


def test_trial_records_do_not_grow_with_nsims(tmp_path):
    per_trial = {}
    for nsims in (10, 1000):
        db = tmp_path / f"n{nsims}.db"
        run_batch(dish(nsims), storage=db, simulate=noop_simulate)
        [(trials,)] = sql(db, "select count(*) from trials")
        assert trials == 2 * nsims
        per_trial[nsims] = {table: sql(db, f"select coalesce(sum(length(value_json)), 0) from {table}")[0][0] / trials
                            for table in ("trial_system_attributes", "trial_user_attributes")}
        assert sql(db, "select distinct key from trial_system_attributes") == [("grid_id",)]
        [(space,)] = sql(db, f"select value_json from study_system_attributes where key = '{SPACE_ATTR}'")
        assert str(nsims - 1) in space  # stored once, on the study
    for table, small in per_trial[10].items():
        assert per_trial[1000][table] <= small + 4, table  # longer numbers only (grid ids, seeds)


def test_gridsampler_runs_exactly_what_a_partial_sweep_left_and_stops(tmp_path):
    batch, db = dish(3), tmp_path / "s.db"
    assert run_batch(batch, storage=db, simulate=failing_simulate).complete == 3
    study = grid_study(db, batch)
    assert isinstance(study.sampler, BatchGridSampler) and not study.sampler.is_exhausted(study)
    before = len(study.trials)
    study.optimize(suggest_all, n_trials=20)
    added = study.trials[before:]
    assert simulations(added) == [(3, 0), (3, 1), (3, 2)]
    assert all(set(t.system_attrs) == {"grid_id"} for t in added)
    assert grid_sampler(batch).is_exhausted(study)


def test_gridsampler_on_a_full_sweep_only_reevaluates_once_as_optuna_does(tmp_path):
    batch, db = dish(3), tmp_path / "s.db"
    run_batch(batch, storage=db, simulate=noop_simulate)
    study = grid_study(db, batch)
    assert study.sampler.is_exhausted(study)
    study.optimize(suggest_all, n_trials=20)  # GridSampler's documented re-evaluation, then study.stop()
    assert len(study.trials) == batch.grid_size + 1


def test_optunas_own_gridsampler_trials_count_too(tmp_path):
    batch, db = dish(3, npoints=(3,)), tmp_path / "s.db"
    run_batch(batch, storage=db, simulate=failing_simulate)  # 3 FAIL trials: no grid_id
    plain = optuna.load_study(study_name="sweep", storage=storage_url(db),
                              sampler=GridSampler(search_space(batch), seed=batch.seed))
    plain.optimize(suggest_all, n_trials=1)
    theirs = plain.trials[-1].system_attrs
    assert theirs["search_space"] == search_space(batch)
    study = grid_study(db, batch)
    study.optimize(suggest_all, n_trials=20)
    ours = [t.system_attrs["grid_id"] for t in study.trials[4:]]
    assert sorted(ours) == sorted({0, 1, 2} - {theirs["grid_id"]}) and study.sampler.is_exhausted(study)


def test_a_study_of_another_grid_gets_optunas_own_trial_records(tmp_path):
    batch, db = dish(3), tmp_path / "s.db"
    run_batch(batch, storage=db, simulate=noop_simulate)
    other = dish(2)
    study = optuna.load_study(study_name="sweep", storage=storage_url(db), sampler=grid_sampler(other))
    assert not study.sampler.is_exhausted(study)  # the study's trials are another grid's points
    study.optimize(suggest_all, n_trials=1)
    assert study.trials[-1].system_attrs["search_space"] == search_space(other)


def test_the_gridsampler_internals_it_relies_on_are_optunas():
    """BatchGridSampler overrides GridSampler internals: if this fails, Optuna changed them; see its docstring."""
    assert {"_search_space", "_n_min_trials", "_rng"} <= vars(GridSampler({"x": [1]})).keys()
    for method in (GridSampler.after_trial, GridSampler.is_exhausted):
        assert "self._get_unvisited_grid_ids(study)" in inspect.getsource(method), method
    study = optuna.create_study(sampler=GridSampler({"x": [1, 2]}))
    study.optimize(lambda t: t.suggest_int("x", 1, 2), n_trials=1)
    assert set(study.trials[0].system_attrs) == {"grid_id", "search_space"}


@pytest.fixture
def old_partial(tmp_path) -> tuple[Batch, Path]:
    batch, db = dish(3), tmp_path / "old.db"
    run_batch(batch, storage=db, simulate=failing_simulate)
    written_by_an_earlier_version(db, batch)
    assert sql(db, "select count(*) from trial_system_attributes where key = 'search_space'") == [(3,)]
    return batch, db


def test_a_study_written_by_an_earlier_version_resumes_and_exports(old_partial, tmp_path):
    batch, db = old_partial
    summary = run_batch(batch, storage=db, simulate=noop_simulate)
    assert (summary.complete, summary.failed) == (6, 0)
    study = grid_study(db, batch)
    assert study.sampler.is_exhausted(study)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert simulations(done) == [(n, r) for n in (2, 3) for r in range(3)]
    assert [len(t.system_attrs) for t in done] == [2, 2, 2, 1, 1, 1]  # old trials keep their copy
    par_df = export_study(*load_study(open_storage(storage_url(db)), "sweep"), tmp_path / "out").par_df
    assert sorted(zip(par_df["Npoints"], par_df["replicate"], strict=True)) == simulations(done)
    assert (par_df["state"] == "COMPLETE").all()


def test_gridsampler_continues_a_study_written_by_an_earlier_version(old_partial, tmp_path):
    batch, db = old_partial
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    study = grid_study(copy, batch)
    study.optimize(suggest_all, n_trials=20)
    assert simulations(study.trials[6:]) == [(3, 0), (3, 1), (3, 2)] and study.sampler.is_exhausted(study)
