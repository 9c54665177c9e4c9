"""Soak: a sweep killed with kill -9 at random moments and restarted each time ends exactly like an
uninterrupted run. The default run has a short form; ``pytest -m slow`` runs the long one too
(a 1,000-simulation sweep killed 20 times)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, batch_from_kwargs
from larvastudy.errors import SpecError, StorageError
from larvastudy.export import build_par_df
from larvastudy.study import load_study, open_storage, storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
SCRIPT = """
import sys
from larvastudy.errors import SpecError, StorageError
from larvastudy.api import run_batch
from larvastudy.definition.batch import batch_from_kwargs
run_batch(batch_from_kwargs(**{sweep!r}), storage=sys.argv[1], n_jobs=2, chunk_size=CHUNK)
"""
#: Simulations per claim: small, so that kills land between many recorded claims (automatic claims
#: of this sweep are two of 150, and a kill would mostly find all or nothing stored).
CHUNK = 10


def sweep(nsims: int) -> dict:
    """4 x 5 grid points x ``nsims`` replicates of a 0.5 s dish simulation."""
    return {"experiment": "dish", "sample": {"Npoints": [2, 3, 4, 5], "crawler.freq": [1.2, 1.3, 1.4, 1.5, 1.6]},
            "fixed": {"duration": 0.5}, "Nsims": nsims, "name": "soak"}


def timed_run(script, db) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, str(script), str(db)], check=True)
    return time.monotonic() - start


@pytest.mark.parametrize("nsims, kills", [(15, 5), pytest.param(50, 20, marks=pytest.mark.slow)])
def test_kill_9_at_random_moments_then_resume(tmp_path, request, nsims, kills):
    if kills > 5 and "slow" not in request.config.getoption("markexpr"):
        pytest.skip("long form: run with -m slow")
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    spec = sweep(nsims)
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.format(sweep=spec).replace("CHUNK", str(CHUNK)))
    reference, db = tmp_path / "reference.db", tmp_path / "killed.db"
    full = timed_run(script, reference)
    startup = timed_run(script, reference)  # start-up and setup only: the study is complete
    stored = []
    for _ in range(kills):  # kills land in start-up, setup, claims, simulations and writes
        proc = subprocess.Popen([sys.executable, str(script), str(db)], start_new_session=True)
        time.sleep(rng.uniform(0.5 * startup, startup + 2 * (full - startup) / kills))
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
        proc.wait()
        stored.append(sum(complete_keys(db).values()) if db.exists() else 0)
    batch = batch_from_kwargs(**spec)
    assert stored == sorted(stored) and any(0 < n < batch.grid_size for n in stored), f"seed {seed}: {stored}"
    assert run_batch(batch, storage=db, n_jobs=2, chunk_size=CHUNK).complete == batch.grid_size, f"seed {seed}"
    keys = complete_keys(db)
    assert len(keys) == batch.grid_size and set(keys.values()) == {1}, f"seed {seed}"
    study, _ = load_study(open_storage(storage_url(db)), "soak")
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    tables = [build_par_df(load_study(open_storage(storage_url(path)), "soak")[0], batch)
              .drop(columns=["trial", "duration_s"]) for path in (db, reference)]
    assert tables[0].equals(tables[1]), f"seed {seed}"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def complete_keys(db) -> Counter:
    """COMPLETE trials per (grid point, replicate)."""
    try:
        study, _ = load_study(open_storage(storage_url(db)), "soak")
    except StorageError:  # a damaged database is a failure, never "nothing stored yet"
        raise
    except SpecError:  # killed before the study was made
        return Counter()
    return Counter((t.user_attrs["grid_point"], t.params[REPLICATE])
                   for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
