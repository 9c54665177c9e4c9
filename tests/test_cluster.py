"""Many processes on one study: `larvastudy worker` on a real PostgreSQL 15 server, and SQLite runs that race.

Every test checks exactly once: each (grid point, replicate) has exactly one COMPLETE trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime

import optuna
import sqlalchemy
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import REPLICATE, batch_from_kwargs
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.plan import all_tasks
from larvastudy.execution.tasks import Outcome
from larvastudy.study import load_study, open_storage, open_study, storage_url
from larvastudy.study.claims import CLAIMS, DONE, EVENTS, LOST, RUNNING

optuna.logging.set_verbosity(optuna.logging.WARNING)
#: The program as this interpreter runs it: no reliance on an activated virtual environment's PATH.
LARVASTUDY = [sys.executable, "-m", "larvastudy.cli"]
#: 160 simulations of about 0.1 s of engine time each in chunks of 4: a few seconds for 4 workers on 2 cores.
SWEEP = {"experiment": "dish", "sample": {"Npoints": [2, 3, 4, 5]}, "fixed": {"duration": 3.0}, "Nsims": 40}


def exactly_once(url: str, name: str, size: int) -> list[optuna.trial.FrozenTrial]:
    """Assert every simulation has exactly one COMPLETE trial and nothing is left RUNNING; the trials."""
    study, _ = load_study(open_storage(url), name)
    trials = study.get_trials(deepcopy=False)
    done = Counter((t.user_attrs["grid_point"], t.params[REPLICATE]) for t in trials if t.state == TrialState.COMPLETE)
    assert len(done) == size and set(done.values()) == {1}
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    assert len(study.trials_dataframe()) == len(trials)
    return trials


def lost(url: str, name: str) -> list[sqlalchemy.Row]:
    """The audit rows of claims taken from lost processes: task, owner, detail (no trial is written for them)."""
    rdb = open_storage(url)
    with rdb.engine.connect() as con:
        return con.execute(sqlalchemy.select(EVENTS.c.task, EVENTS.c.owner, EVENTS.c.detail).where(
            EVENTS.c.study_id == rdb.get_study_id_from_name(name), EVENTS.c.event == LOST)).all()


def workers(url: str, name: str, n: int, *extra: str) -> list[subprocess.Popen]:
    """``n`` `larvastudy worker` processes, each in its own process group (its "machine")."""
    return [subprocess.Popen([*LARVASTUDY, "worker", name, "--storage", url, "--chunk-size", "4", *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            for _ in range(n)]


def new_study(url: str, name: str):
    batch = batch_from_kwargs(**SWEEP, name=name)
    open_study(batch, open_storage(url), name)
    return batch


def claims(url: str, name: str, state: str, pid: int | None = None) -> int:
    """How many simulations of study ``name`` are in claim ``state`` (held by process ``pid``, if given)."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.select(sqlalchemy.func.count()).where(
        CLAIMS.c.study_id == open_storage(url).get_study_id_from_name(name), CLAIMS.c.state == state)
    if pid is not None:
        query = query.where(CLAIMS.c.owner.like(f"%:{pid}:%"))
    try:
        with engine.connect() as con:
            return con.execute(query).scalar_one()
    except sqlalchemy.exc.ProgrammingError:  # no worker has created the table yet
        return 0
    finally:
        engine.dispose()


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def finish(procs: list[subprocess.Popen], timeout: float = 60.0) -> list[str]:
    outputs = []
    for proc in procs:
        out, errors = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, errors
        outputs.append(out)
    return outputs


def test_four_workers_share_a_study_exactly_once(postgres):
    batch = new_study(postgres, "four")
    outputs = finish(workers(postgres, "four", 4))
    trials = exactly_once(postgres, "four", batch.grid_size)
    assert len(trials) == batch.grid_size  # no failure, no rerun
    ran = [int(out.rsplit("this worker ran", 1)[1]) for out in outputs]
    assert sum(ran) == batch.grid_size and sum(r > 0 for r in ran) >= 2, ran


def test_a_killed_workers_simulations_are_rerun_by_the_others(postgres):
    batch = new_study(postgres, "kill")
    procs = workers(postgres, "kill", 4)
    victim = procs[0]
    wait_until(lambda: claims(postgres, "kill", RUNNING, victim.pid) and claims(postgres, "kill", DONE) > 8)
    os.killpg(victim.pid, signal.SIGKILL)  # the whole "machine": the worker and its engine process
    victim.wait()
    finish(procs[1:])
    trials = exactly_once(postgres, "kill", batch.grid_size)
    assert all(t.state == TrialState.COMPLETE for t in trials)  # losing a worker is no failure
    events = lost(postgres, "kill")
    assert events and all(e.owner.split(":")[1] == str(victim.pid) and "died" in e.detail for e in events)
    rerun = {divmod(e.task, batch.Nsims) for e in events}
    assert all(t.user_attrs["tries"] == 2 for t in trials
               if t.state == TrialState.COMPLETE and (t.user_attrs["grid_point"], t.params[REPLICATE]) in rerun)


def test_a_silent_worker_loses_its_lease_after_the_grace_period(postgres):
    """A worker that stops answering (SIGSTOP: a frozen machine) keeps its claims only ``--grace`` seconds;
    when it wakes up after the others finished, its late results are dropped and it exits 0."""
    batch = new_study(postgres, "silent")
    procs = workers(postgres, "silent", 3, "--grace", "2")
    frozen = procs[0]
    wait_until(lambda: claims(postgres, "silent", RUNNING, frozen.pid))
    os.killpg(frozen.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    finish(procs[1:])
    assert time.monotonic() - stopped > 2.0
    os.killpg(frozen.pid, signal.SIGCONT)
    finish([frozen])
    trials = exactly_once(postgres, "silent", batch.grid_size)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    events = lost(postgres, "silent")
    assert events and all(e.owner.split(":")[1] == str(frozen.pid) and "lease expired" in e.detail for e in events)


SQLITE_RUN = """
import sys
from larvastudy.api import run_batch
from larvastudy.execution.plan import all_tasks
from larvastudy.definition.batch import batch_from_kwargs
print(run_batch(batch_from_kwargs(**{sweep!r}), storage=sys.argv[1], chunk_size=4).ran)
"""


def test_two_runs_on_one_sqlite_file_cooperate(tmp_path):
    script = tmp_path / "run.py"
    sweep = {**SWEEP, "name": "both", "fixed": {"duration": 1.0}}
    script.write_text(SQLITE_RUN.format(sweep=sweep))
    db = tmp_path / "s.db"
    procs = [subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ran = [int(out) for out in finish(procs)]
    batch = batch_from_kwargs(**sweep)
    assert sum(ran) == batch.grid_size and min(ran) > 0, ran
    assert len(exactly_once(storage_url(db), "both", batch.grid_size)) == batch.grid_size


def test_failures_are_retried_and_each_error_kept(tmp_path):
    # crawler.freq 6 Hz needs dt < 1/6 s: grid point 3 fails every time.
    batch = batch_from_kwargs(experiment="dish", sample={"crawler.freq": [1.0, 6.0], "dt": [0.1, 0.2]},
                              fixed={"duration": 0.05}, Nsims=2, name="retry")
    summary = run_batch(batch, storage=tmp_path / "s.db", retries=2)
    assert (summary.complete, summary.failed) == (6, 2) and summary.ran == 6 + 2 * 3
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "retry")
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert sorted(t.user_attrs["tries"] for t in failed) == [1, 1, 2, 2, 3, 3]
    assert all("crawler.freq = 6.0 must be below 1/dt = 5 Hz" in t.user_attrs["error"] for t in failed)
    assert run_batch(batch, storage=tmp_path / "s.db", retries=0).ran == 2  # a new run tries them again


def test_an_expired_lease_is_claimed_again_and_its_late_results_dropped(tmp_path):
    batch = batch_from_kwargs(**{**SWEEP, "Nsims": 2}, name="lease")
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    open_study(batch, rdb, "lease")
    far, near = (ClaimBook(rdb, rdb.get_study_id_from_name("lease"), batch, all_tasks(batch), grace=0.5, retries=0)
                 for _ in range(2))
    far.owner = "elsewhere:1:cafe"  # a process on another machine: only its lease tells whether it lives
    far.prepare(set, fresh=True)
    mine = far.claim(3)
    assert [t.attempt for t in mine] == [1, 1, 1]
    now = datetime.now()
    rest = near.claim(100)
    assert len(rest) == 5
    assert {(t.grid_point, t.replicate) for t in rest}.isdisjoint((t.grid_point, t.replicate) for t in mine)
    assert near.record([Outcome(t, {}, 0.0, None, now, now) for t in rest]).done == 5
    far.renew()
    assert near.claim(100) == []
    time.sleep(0.6)
    taken = near.claim(100)
    assert [(t.grid_point, t.replicate, t.attempt) for t in taken] == [(t.grid_point, t.replicate, 2) for t in mine]
    late = far.record([Outcome(t, {}, 0.0, None, now, now) for t in mine])
    assert late.stored == [] and late.done == 5
    study, _ = load_study(rdb, "lease")
    assert not study.get_trials(states=(TrialState.FAIL,))
    events = lost(storage_url(tmp_path / "s.db"), "lease")
    assert sorted(e.task for e in events) == sorted(t.grid_point * batch.Nsims + t.replicate for t in mine)
    assert all(e.owner == "elsewhere:1:cafe" and "stopped renewing its lease" in e.detail for e in events)


def test_a_deleted_studys_claims_do_not_leak_into_a_new_one(tmp_path):
    db = tmp_path / "s.db"
    batch = batch_from_kwargs(**{**SWEEP, "fixed": {"duration": 0.05}, "Nsims": 2}, name="again")
    run_batch(batch, storage=db)
    optuna.delete_study(study_name="again", storage=storage_url(db))
    summary = run_batch(batch, storage=db)  # SQLite gives the new study the old one's id
    assert summary.ran == batch.grid_size and len(exactly_once(storage_url(db), "again", batch.grid_size)) == 8
