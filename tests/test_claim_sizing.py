"""How much a claim takes: predicted costs, the time-sized budget and its correction, claims that stop at
the budget, and each simulation's share of its engine call's wall time."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import optuna
from hypothesis import given, settings
from hypothesis import strategies as st

from larvastudy.execution import run_batch
from larvastudy.execution.plan import (CLAIM_SECONDS, SECONDS_PER_AGENT_STEP, SIMULATION_OVERHEAD, ClaimSizer,
                                       all_tasks, point_costs, simulation_cost)
from larvastudy.execution.worker import _shares
from larvastudy.spec.batch import batch_from_kwargs
from larvastudy.study import load_study, open_storage, open_study, storage_url
from larvastudy.study.claims import ClaimBook

optuna.logging.set_verbosity(optuna.logging.WARNING)


def dish(sample, fixed=None, nsims=2):
    fixed = {"duration": 0.5, **(fixed or {})} if "duration" not in sample else fixed
    return batch_from_kwargs(experiment="dish", sample=sample, fixed=fixed, Nsims=nsims, name="sizing")


def test_cost_is_larvae_times_steps_plus_overhead():
    batch = dish({"Npoints": [4, 8], "crawler.freq": [1.2, 1.4]}, {"dt": 0.1})
    costs = point_costs(batch)
    steps = 0.5 * 60 / 0.1
    expected = {4: 4 * steps + SIMULATION_OVERHEAD, 8: 8 * steps + SIMULATION_OVERHEAD}
    assert costs.tolist() == [expected[p["Npoints"]] for p in batch.points()]
    assert costs.tolist() == [simulation_cost(batch.config(p)) for p in batch.points()]


def test_duration_and_time_step_axes_set_the_cost():
    batch = dish({"duration": [0.5, 1.0], "dt": [0.1, 0.2]}, {"Npoints": 3})
    assert point_costs(batch).tolist() == [simulation_cost(batch.config(p)) for p in batch.points()]
    assert len(set(point_costs(batch))) == 3  # 0.5/0.1 and 1.0/0.2 step the same number of times


def test_a_small_sweep_is_split_into_equal_claims_a_multiple_of_the_workers():
    per_claim = CLAIM_SECONDS / SECONDS_PER_AGENT_STEP
    assert ClaimSizer(n_workers=2, pending_work=1.5 * per_claim).work() == 1.5 * per_claim / 2
    assert ClaimSizer(n_workers=2, pending_work=2.5 * per_claim).work() == 2.5 * per_claim / 4
    assert ClaimSizer(n_workers=2, pending_work=4.5 * per_claim).work() == per_claim  # the tail is short anyway
    assert ClaimSizer(n_workers=2, pending_work=1e12).work() == per_claim
    assert ClaimSizer(n_workers=2, pending_work=1e12, chunk_size=7).work() == math.inf


def test_measured_throughput_corrects_the_budget():
    sizer = ClaimSizer(n_workers=1, pending_work=1e12)
    for _ in range(20):  # the machine runs twice as fast as assumed
        sizer.observe(work=1e6, seconds=1e6 * SECONDS_PER_AGENT_STEP / 2)
    assert math.isclose(sizer.work(), 2 * CLAIM_SECONDS / SECONDS_PER_AGENT_STEP, rel_tol=1e-4)
    sizer.observe(work=0, seconds=1.0)  # nothing to learn from
    sizer.observe(work=1e6, seconds=0.0)
    assert math.isclose(sizer.work(), 2 * CLAIM_SECONDS / SECONDS_PER_AGENT_STEP, rel_tol=1e-4)


@settings(max_examples=25, deadline=None)
@given(costs=st.lists(st.integers(1, 50), min_size=4, max_size=4), work=st.integers(1, 400),
       limit=st.integers(1, 12))
def test_a_claim_takes_the_lowest_tasks_until_their_cost_reaches_the_budget(tmp_path_factory, costs, work, limit):
    batch = dish({"Npoints": [2, 3, 4, 5]}, nsims=3)
    rdb = open_storage(storage_url(tmp_path_factory.mktemp("claims") / "s.db"))
    open_study(batch, rdb, "sizing")
    book = ClaimBook(rdb, rdb.get_study_id_from_name("sizing"), batch, all_tasks(batch), grace=60, retries=0,
                     costs=np.array(costs, dtype=float))
    book.prepare(set, fresh=True)
    taken = book.claim(limit, work)
    per_task = [costs[i // 3] for i in range(12)]
    fits = int(np.searchsorted(np.cumsum(per_task[:limit]), work, side="right"))
    assert [t.point * 3 + t.replicate for t in taken] == list(range(min(limit, max(1, fits))))
    rest = book.claim(100)
    assert len(rest) == 12 - len(taken)


def test_shares_tile_the_call_in_proportion_to_cost():
    start = datetime(2026, 1, 1)
    edges = _shares(start, start + timedelta(seconds=6), [1.0, 2.0, 3.0])
    assert [(b - a).total_seconds() for a, b in zip(edges, edges[1:])] == [1.0, 2.0, 3.0]
    assert edges[0] == start and edges[-1] == start + timedelta(seconds=6)


def test_a_trials_duration_is_its_share_of_the_engine_call(tmp_path):
    batch = dish({"Npoints": [2, 20]}, {"duration": 1.0}, nsims=2)
    run_batch(batch, storage=tmp_path / "s.db", chunk_size=4)  # one engine call
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "sizing")
    trials = sorted(study.trials, key=lambda t: t.datetime_start)
    assert all(a.datetime_complete == b.datetime_start for a, b in zip(trials, trials[1:]))
    small, large = ([t.duration.total_seconds() for t in trials if t.params["Npoints"] == n] for n in (2, 20))
    ratio = point_costs(batch)[1] / point_costs(batch)[0]
    assert math.isclose(large[0] / small[0], ratio, rel_tol=1e-3)
