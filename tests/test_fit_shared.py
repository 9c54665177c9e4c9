"""Many processes, one fit: real `larvastudy run` and `worker` processes on SQLite and PostgreSQL share a fit's
trial budget exactly, and a process that dies or goes silent loses its trial to the others."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from larvastudy.study import load_study, open_storage, storage_url
from larvastudy.study.fitleases import LEASES

optuna.logging.set_verbosity(optuna.logging.WARNING)
FIT = ("chemotaxis_fit", "--sampler", "tpe", "--study-name", "f")


def larvastudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "larvastudy.cli", *args]


def start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(larvastudy(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> list[int]:
    """Each process's own COMPLETE trials, as its summary line says; every one must exit 0."""
    ran = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (out, err)
        ran.append(int(re.search(r"trials \((\d+) by this process\)", out).group(1)))
    return ran


def states(url: str) -> list[TrialState]:
    return [t.state for t in load_study(open_storage(storage_url(url)), "f")[0].trials]


def leaseholder_pids(url: str) -> set[int]:
    engine = sqlalchemy.create_engine(storage_url(url))
    try:
        with engine.connect() as con:
            if not sqlalchemy.inspect(con).has_table(LEASES.name):
                return set()
            return {int(owner.split(":")[1]) for owner in con.execute(sqlalchemy.select(LEASES.c.owner)).scalars()}
    finally:
        engine.dispose()


def test_two_runs_started_together_make_the_budget_together(tmp_path):
    db = str(tmp_path / "s.db")
    procs = [start(tmp_path, "run", *FIT, "--n-trials", "8", "--storage", db, "--set", "duration=3.0")
             for _ in range(2)]
    ran = finish(procs)
    assert states(db) == [TrialState.COMPLETE] * 8 and sum(ran) == 8 and min(ran) > 0, ran
    more = start(tmp_path, "run", *FIT, "--n-trials", "10", "--storage", db, "--set", "duration=3.0")
    assert finish([more]) == [2] and states(db) == [TrialState.COMPLETE] * 10  # a larger budget adds the difference


def test_a_worker_joins_a_fit_on_postgres(tmp_path, postgres):
    url = postgres
    run = start(tmp_path, "run", *FIT, "--n-trials", "8", "--storage", url, "--set", "duration=3.0")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not leaseholder_pids(url):
        time.sleep(0.1)
    worker = start(tmp_path, "worker", "f", "--storage", url)
    ran = finish([run, worker])
    assert states(url) == [TrialState.COMPLETE] * 8 and sum(ran) == 8 and min(ran) > 0, ran


def _lose_a_trial(tmp_path: Path, how: signal.Signals) -> None:
    """Two runs share 8 trials; one is sent ``how`` while it holds a trial: the other runs that point again,
    after the lease expires (SIGSTOP: alive but silent) or at once (SIGKILL: provably dead on this host)."""
    db = str(tmp_path / "s.db")
    args = ("run", *FIT, "--n-trials", "8", "--storage", db, "--grace", "2", "--set", "duration=4.0")
    victim = start(tmp_path, *args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and victim.pid not in leaseholder_pids(db):
        time.sleep(0.05)
    other = start(tmp_path, *args)
    os.kill(victim.pid, how)
    if how == signal.SIGSTOP:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and victim.pid in leaseholder_pids(db):
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGCONT)  # its late result is dropped: the trial is no longer its own
        ran = finish([victim, other])
        assert sum(ran) == 8, ran
    else:
        victim.communicate(timeout=60)
        assert finish([other])[0] > 0
    assert states(db) == [TrialState.COMPLETE] * 8  # the lost trial ran again: no FAIL, no RUNNING, no extra


def test_a_silent_processs_trial_is_rerun_after_its_lease_expires(tmp_path):
    _lose_a_trial(tmp_path, signal.SIGSTOP)


def test_a_killed_processs_trial_is_rerun_at_once(tmp_path):
    _lose_a_trial(tmp_path, signal.SIGKILL)


def test_a_running_trial_an_earlier_version_left_is_given_back(tmp_path):
    db = str(tmp_path / "s.db")
    assert finish([start(tmp_path, "run", *FIT, "--n-trials", "1", "--storage", db)]) == [1]
    study = load_study(open_storage(storage_url(db)), "f")[0]
    left = study.ask()  # RUNNING with no lease, as a killed run of an earlier larvastudy left it
    left.suggest_float("gain_dict.Odor", 0.0, 600.0)
    left.suggest_float("crawler.freq", 1.0, 1.6)
    assert finish([start(tmp_path, "run", *FIT, "--n-trials", "2", "--storage", db)]) == [1]
    assert states(db) == [TrialState.COMPLETE] * 2  # the left trial's point ran, nothing else
