"""Issue 11 item 1: a higher Nsims extends a grid study, a lower one exports its first replicates; both keep
every stored trial, on SQLite and PostgreSQL, and never while other processes run the study."""

from __future__ import annotations

import dataclasses
import datetime
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, Batch, batch_from_kwargs, load_batch
from larvastudy.errors import ConflictError
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.plan import all_tasks, trial_seed
from larvastudy.execution.tasks import Outcome
from larvastudy.export import export_study
from larvastudy.study import grid_ids, grid_sampler, load_study, open_storage, open_study, storage_url
from larvastudy.study.claims import Renumbered

from seams import failing_simulate, noop_simulate, written_by_an_earlier_version

optuna.logging.set_verbosity(optuna.logging.ERROR)


def dish(nsims: int) -> Batch:
    return batch_from_kwargs(experiment="dish", sample={"Npoints": [2, 3], "crawler.freq": [1.2, 1.4]},
                             fixed={"duration": 0.05}, Nsims=nsims, name="sweep")


def suggest_all(trial: optuna.Trial) -> float:
    nsims = trial.study.user_attrs["batch"]["Nsims"]
    return (trial.suggest_int("Npoints", 2, 3) + trial.suggest_float("crawler.freq", 1.2, 1.4)
            + trial.suggest_int(REPLICATE, 0, nsims - 1) * 0.0)


def stored(url: str) -> dict[tuple[int, int], tuple[int, int, float]]:
    """Every COMPLETE trial as (point, replicate) -> (seed, grid_id, value); asserts there is one per simulation."""
    study, _ = load_study(open_storage(url), "sweep")
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    found = {(t.user_attrs["grid_point"], t.params[REPLICATE]): (t.user_attrs["seed"], t.system_attrs["grid_id"],
                                                                  t.value) for t in done}
    assert len(found) == len(done), "a simulation has two COMPLETE trials"
    return found


def expected(batch: Batch) -> dict[tuple[int, int], tuple[int, int, float]]:
    """What one uninterrupted sweep of ``batch`` stores, by (point, replicate)."""
    ids = grid_ids(batch)
    return {(p, r): (seed := trial_seed(batch, point, r), int(ids[p, r]), float(seed % 10))
            for p, point in enumerate(batch.points()) for r in range(batch.Nsims)}


def check_extended(url: str, top: Batch) -> None:
    """The study is one sweep of ``top`` (the highest Nsims asked for), GridSampler's own grid, exhausted."""
    assert stored(url) == expected(top)
    study = optuna.load_study(study_name="sweep", storage=url, sampler=grid_sampler(top))
    assert study.user_attrs["batch"]["Nsims"] == top.Nsims and study.sampler.is_exhausted(study)
    before = len(study.trials)
    study.optimize(suggest_all, n_trials=5)  # GridSampler re-evaluates once, then stops the study
    assert len(study.trials) == before + 1
    assert len({optuna.distributions.distribution_to_json(t.distributions[REPLICATE]) for t in study.trials}) == 1


@settings(max_examples=4, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1, max_size=3))
def test_any_sequence_of_nsims_stores_one_sweep_at_the_highest(tmp_path_factory, steps):
    url = storage_url(tmp_path_factory.mktemp("nsims") / "s.db")
    for nsims, fail in steps:
        summary = run_batch(dish(nsims), storage=url, simulate=failing_simulate if fail else noop_simulate)
        assert summary.total == dish(nsims).grid_size
    top = dish(max(n for n, _ in steps))
    run_batch(top, storage=url, simulate=noop_simulate)  # reruns what failed
    check_extended(url, top)
    last = dish(steps[-1][0])
    par_df = export_study(*load_study(open_storage(url), "sweep", last), tmp_path_factory.mktemp("out")).par_df
    assert len(par_df) == last.grid_size and (par_df["replicate"] < last.Nsims).all()


def test_a_lower_nsims_runs_and_exports_only_the_first_replicates(tmp_path):
    url = storage_url(tmp_path / "s.db")
    run_batch(dish(3), storage=url, simulate=failing_simulate)  # the 3-larva points fail
    summary = run_batch(dish(1), storage=url, simulate=noop_simulate)
    assert (summary.complete, summary.total, summary.ran) == (4, 4, 2)  # only replicate 0 of the failed points
    assert sorted(r for _, r in stored(url)) == [0] * 4 + [1] * 2 + [2] * 2
    exported = export_study(*load_study(open_storage(url), "sweep", dish(1)), tmp_path / "out")
    assert len(exported.par_df) == 4
    assert exported.note == "study sweep holds 3 replicates per point; exporting the first 1 (nothing is deleted)"
    assert load_study(open_storage(url), "sweep")[1].Nsims == 3


def test_a_study_written_by_an_earlier_version_is_extended_without_its_space_copies(tmp_path):
    db = tmp_path / "s.db"
    run_batch(dish(1), storage=db, simulate=noop_simulate)
    written_by_an_earlier_version(db, dish(1))
    run_batch(dish(2), storage=db, simulate=noop_simulate)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select distinct key from trial_system_attributes").fetchall() == [("grid_id",)]
    check_extended(storage_url(db), dish(2))


def test_extension_on_postgresql(postgres):
    run_batch(dish(1), storage=postgres, simulate=noop_simulate, n_jobs=2)
    run_batch(dish(3), storage=postgres, simulate=noop_simulate, n_jobs=2)
    check_extended(postgres, dish(3))


def outcome(task) -> Outcome:
    now = datetime.datetime.now()
    return Outcome(task, {"v_mu": 1.0}, 1.0, None, now, now)


def test_a_process_started_before_an_extension_never_uses_old_task_numbers(tmp_path):
    url = storage_url(tmp_path / "s.db")
    rdb = open_storage(url)
    batch = dish(1)
    open_study(batch, rdb, "sweep")
    study_id = rdb.get_study_id_from_name("sweep")
    idle = ClaimBook(rdb, study_id, batch, all_tasks(batch), grace=60, retries=0)
    idle.prepare(set, fresh=True)
    lost = ClaimBook(rdb, study_id, batch, all_tasks(batch), grace=0.05, retries=0)
    held = lost.claim(2)
    time.sleep(0.1)  # its lease expired: an extension may go ahead and free its claims
    open_study(dish(2), rdb, "sweep")
    with pytest.raises(Renumbered, match="another run gave this study 2 replicates per point"):
        idle.claim(1)
    with pytest.raises(Renumbered):
        lost.record([outcome(t) for t in held])
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("select count(*) from trials").fetchone() == (0,)
        assert conn.execute("select state, count(*) from larvastudy_claims group by state").fetchall() == [
            ("pending", 8)]
        assert conn.execute("select task, event from larvastudy_claim_events order by task").fetchall() == [
            (0, "lost"), (2, "lost")]  # tasks 0 and 1 at Nsims 1 are (point 1, replicate 0): task 2 at Nsims 2


SWEEP = """\
experiment = "dish"
Nsims = 200
[sample]
Npoints = [20, 30]
[fixed]
duration = 3.0
model = "explorer"
"""


def test_extension_is_refused_while_a_sweep_runs_and_works_once_it_stopped(tmp_path):
    (tmp_path / "life.toml").write_text(SWEEP)
    db = tmp_path / "s.db"
    run = subprocess.Popen([sys.executable, "-m", "larvastudy.cli", "run", "life.toml", "--storage", str(db)],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    batch = load_batch(tmp_path / "life.toml")
    try:
        while not _running(db):  # it holds a claim from now on until it stops (seconds of engine work)
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.02)
        before = _rows(db)
        with pytest.raises(ConflictError, match=r"'life' in .* is being run by 1 process; wait for them or stop them"):
            run_batch(dataclasses.replace(batch, Nsims=201), storage=db, simulate=noop_simulate)
        assert _rows(db)[1:] == before[1:]  # Nsims and claims as they were
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 143
    finally:
        run.kill()
    summary = run_batch(dataclasses.replace(batch, Nsims=201), storage=db, simulate=noop_simulate)
    assert (summary.complete, summary.total) == (402, 402) and _rows(db) == (402, 201, 402)


def _running(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from larvastudy_claims where state = 'running'").fetchone()[0]
    except sqlite3.OperationalError:  # no database or table yet
        return 0


def _rows(db: Path) -> tuple[int, int, int]:
    """COMPLETE trials, the stored Nsims and the number of claims."""
    with sqlite3.connect(db) as conn:
        [(done,)] = conn.execute("select count(*) from trials where state = 'COMPLETE'").fetchall()
        [(batch,)] = conn.execute("select value_json from study_user_attributes where key = 'batch'").fetchall()
        [(claims,)] = conn.execute("select count(*) from larvastudy_claims").fetchall()
    return done, json.loads(batch)["Nsims"], claims
