"""Sweeps on real SQLite files: exactly once under n_jobs=2, failures, kill -9 and Ctrl-C, then resume."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, batch_from_kwargs
from larvastudy.errors import ConflictError, SpecError
from larvastudy.execution.plan import trial_seed
from larvastudy.export import build_par_df
from larvastudy.study import grid_sampler, load_study, open_storage, storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
AXES = {"Npoints": [2, 3, 4], "crawler.freq": [1.2, 1.4, 1.6], "model": ["explorer", "navigator"], "EEB": [0.0, 0.5]}


def dish(**changes):
    kwargs = {"experiment": "dish", "sample": {"Npoints": [2, 3]}, "fixed": {"duration": 0.05}, "Nsims": 2,
              "name": "sweep", **changes}
    return batch_from_kwargs(**kwargs)


def trials(db: Path, name: str = "sweep", states=None) -> list[optuna.trial.FrozenTrial]:
    study, _ = load_study(open_storage(storage_url(db)), name)
    return study.get_trials(deepcopy=False, states=states)


def results(db: Path, name: str = "sweep") -> dict[tuple[int, int], str]:
    """Each COMPLETE trial's user attributes but ``tries`` (as JSON, so NaN compares equal), by (point, replicate)."""
    done = trials(db, name, states=(TrialState.COMPLETE,))
    keys = [(t.user_attrs["grid_point"], t.params[REPLICATE]) for t in done]
    assert len(keys) == len(set(keys)), "a simulation has two COMPLETE trials"
    return {key: json.dumps({k: v for k, v in t.user_attrs.items() if k != "tries"}, sort_keys=True)
            for key, t in zip(keys, done, strict=True)}


@settings(max_examples=8, deadline=None)
@given(axes=st.lists(st.sampled_from(sorted(AXES)), unique=True, max_size=2),
       sizes=st.lists(st.integers(1, 3), min_size=2, max_size=2), nsims=st.integers(1, 3),
       chunk_size=st.none() | st.integers(1, 4))
def test_every_simulation_completes_exactly_once(tmp_path_factory, axes, sizes, nsims, chunk_size):
    batch = dish(sample={a: AXES[a][:n] for a, n in zip(axes, sizes, strict=False)}, Nsims=nsims)  # axes: 0 to 2
    db = tmp_path_factory.mktemp("sweep") / "s.db"
    calls = []
    summary = run_batch(batch, storage=db, n_jobs=2, chunk_size=chunk_size, progress=lambda *a: calls.append(a))
    assert (summary.complete, summary.failed, summary.total) == (batch.grid_size, 0, batch.grid_size)
    assert calls[-1][:3] == (batch.grid_size, 0, batch.grid_size)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    every = trials(db)
    assert len(every) == batch.grid_size and all(t.state == TrialState.COMPLETE for t in every)
    points = batch.points()
    for t in every:
        point, replicate = t.user_attrs["grid_point"], t.params[REPLICATE]
        assert t.params == {**points[point], REPLICATE: replicate}
        assert t.user_attrs["seed"] == trial_seed(batch, points[point], replicate)
        assert t.value == t.user_attrs[batch.objective_metric()]
        assert set(batch.metrics) | {f"{m}_std" for m in batch.metrics} <= t.user_attrs.keys()
    assert set(results(db)) == {(i, r) for i in range(len(points)) for r in range(nsims)}
    again = run_batch(batch, storage=db, n_jobs=2)
    assert again.already_finished and "already complete" in str(again) and len(trials(db)) == batch.grid_size


def test_a_failing_simulation_fails_only_its_trial(tmp_path):
    # Each value is valid alone, but crawler.freq 6 Hz needs dt < 1/6 s: that combination fails at run time.
    batch = dish(sample={"crawler.freq": [1.0, 6.0], "dt": [0.1, 0.2]})
    db = tmp_path / "s.db"
    summary = run_batch(batch, storage=db, n_jobs=2, chunk_size=4)
    assert (summary.complete, summary.failed, summary.total) == (6, 2, 8) and not summary.finished
    assert "2 failed" in str(summary)
    failed = trials(db, states=(TrialState.FAIL,))
    assert {t.user_attrs["grid_point"] for t in failed} == {3}
    assert all("crawler.freq = 6.0 must be below 1/dt = 5 Hz" in t.user_attrs["error"] for t in failed)
    before = results(db)
    again = run_batch(batch, storage=db, n_jobs=1)
    assert (again.complete, again.failed) == (6, 2) and results(db) == before
    assert len(trials(db, states=(TrialState.FAIL,))) == 4


def test_up_front_errors_do_not_touch_storage(tmp_path):
    db = tmp_path / "s.db"
    with pytest.raises(SpecError, match="confirm with --yes"):
        run_batch(dish(Nsims=100_001), storage=db)
    with pytest.raises(SpecError, match="n_jobs must be"):
        run_batch(dish(), storage=db, n_jobs=0)
    with pytest.raises(SpecError, match="chunk_size must be"):
        run_batch(dish(), storage=db, chunk_size=0)
    assert not db.exists()
    run_batch(dish(), storage=db)
    with pytest.raises(ConflictError, match="holds another definition: seed: 0 -> 3"):
        run_batch(dish(seed=3), storage=db)
    assert len(trials(db)) == 4


def test_grid_study_continues_with_other_samplers(tmp_path):
    batch = dish(sample={"crawler.freq": [1.2, 1.6], "Npoints": [2, 3]})
    db = tmp_path / "s.db"
    run_batch(batch, storage=db)
    study, _ = load_study(open_storage(storage_url(db)), "sweep")
    assert isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study)
    assert grid_sampler(batch).is_exhausted(study)
    study.sampler = optuna.samplers.TPESampler(seed=0)
    study.optimize(lambda t: t.suggest_float("crawler.freq", 1.2, 1.6) + t.suggest_int("Npoints", 2, 3), n_trials=2)
    assert len(study.trials) == batch.grid_size + 2


SCRIPT = """
import sys
from larvastudy.api import run_batch
from larvastudy.execution import SweepInterrupted
from larvastudy.definition.batch import batch_from_kwargs

batch = batch_from_kwargs(**{batch!r})
try:
    run_batch(batch, storage=sys.argv[1], n_jobs=2, chunk_size=2,
              progress=lambda done, failed, total, elapsed: print("done", done, flush=True))
except SweepInterrupted as stop:
    print(stop, flush=True)
    sys.exit(130)
"""
SLOW = {"experiment": "dish", "sample": {"Npoints": [4, 6, 8]}, "fixed": {"duration": 0.5}, "Nsims": 8,
        "name": "sweep"}


def start_sweep(tmp_path: Path, db: Path, stop_after: int) -> tuple[subprocess.Popen, Path]:
    """Run the SLOW sweep in a subprocess, returning once ``stop_after`` chunks are stored."""
    script = tmp_path / "sweep_script.py"
    script.write_text(textwrap.dedent(SCRIPT.format(batch=SLOW)))
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    for _ in range(stop_after):
        assert proc.stdout.readline().startswith("done"), "the sweep ended early"
    return proc, script


def wait_until_gone(script: Path, timeout: float = 10.0) -> None:
    """Wait for every process running ``script`` (the sweep and its forked workers) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).endswith(str(script))]
        if not alive:
            return
        time.sleep(0.1)
    pytest.fail(f"processes still running {script}")


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    db = tmp_path / "killed.db"
    proc, script = start_sweep(tmp_path, db, stop_after=rng.randint(2, 6))
    time.sleep(rng.uniform(0.0, 0.1))  # land anywhere: inside a simulation chunk or a write
    proc.kill()
    proc.wait()
    wait_until_gone(script)  # orphaned workers notice and exit
    partial = results(db)
    batch = batch_from_kwargs(**SLOW)
    assert 0 < len(partial) < batch.grid_size, f"seed {seed}"
    assert not trials(db, states=(TrialState.RUNNING,))
    resumed = run_batch(batch, storage=db, n_jobs=2)
    assert not resumed.already_finished and resumed.complete == batch.grid_size
    reference = tmp_path / "reference.db"
    run_batch(batch, storage=reference, n_jobs=1)
    assert results(db) == results(reference), f"seed {seed}"
    tables = [build_par_df(load_study(open_storage(storage_url(p)), "sweep")[0], batch).drop(
        columns=["trial", "duration_s"]) for p in (db, reference)]
    assert tables[0].equals(tables[1])


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    db = tmp_path / "s.db"
    proc, script = start_sweep(tmp_path, db, stop_after=2)
    batch = batch_from_kwargs(**SLOW)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted: " in out and "run the same sweep again to resume" in out
    wait_until_gone(script, timeout=2.0)
    assert not trials(db, states=(TrialState.FAIL,)), "a stopped simulation is not a failure"
    assert len(results(db)) >= 2  # the chunk it had seen stored, at least
    assert run_batch(batch, storage=db, n_jobs=2).complete == batch.grid_size
    assert len(results(db)) == batch.grid_size
