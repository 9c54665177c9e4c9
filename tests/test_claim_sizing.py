"""How much a claim takes: predicted costs, the time-sized budget and its correction, claims that stop at
the budget, and each simulation's share of its engine call's wall time."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larvastudy.api import run_batch
from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.plan import (
    CLAIM_SECONDS,
    SECONDS_PER_AGENT_STEP,
    SIMULATION_OVERHEAD,
    ClaimSizer,
    all_tasks,
    point_costs,
    simulation_cost,
)
from larvastudy.execution.worker import _shares
from larvastudy.study import load_study, open_storage, open_study, storage_url

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


def test_claims_hold_the_time_aimed_at_and_share_the_end_of_a_sweep():
    most = CLAIM_SECONDS / SECONDS_PER_AGENT_STEP
    assert ClaimSizer(n_workers=2, pending_work=1e12).work() == most
    assert ClaimSizer(n_workers=2, pending_work=1.5 * most).work() == 0.75 * most  # free workers: equal shares
    assert ClaimSizer(n_workers=2, pending_work=3.2 * most).work() == most  # more than 1.5 claims each
    sizer = ClaimSizer(n_workers=2, pending_work=3 * most)
    sizer.claimed("a", most)
    sizer.claimed("b", most)
    sizer.finished("a", None)  # one worker is free; the other's claim has (almost) all of its work left
    assert sizer.work() == pytest.approx((most + most) / 2, rel=1e-3)
    sizer.claimed("c", 0.9 * most)
    sizer.finished("b", None)
    sizer.finished("c", None)
    assert sizer.work() == most / 2  # a tenth of a claim left, but each engine call has a fixed cost
    assert ClaimSizer(n_workers=2, pending_work=1e12, chunk_size=7).work() == math.inf


def test_measured_throughput_corrects_the_budget():
    sizer = ClaimSizer(n_workers=1, pending_work=1e15)
    for claim in range(20):  # the machine runs twice as fast as assumed
        sizer.claimed(claim, 1e6)
        sizer.finished(claim, 1e6 * SECONDS_PER_AGENT_STEP / 2)
    assert sizer.work() == pytest.approx(2 * CLAIM_SECONDS / SECONDS_PER_AGENT_STEP, rel=1e-4)
    for claim, seconds in (("empty", 1.0), ("instant", 0.0), ("failed", None)):
        sizer.claimed(claim, 0.0 if claim == "empty" else 1e6)
        sizer.finished(claim, seconds)  # nothing to learn from
    assert sizer.work() == pytest.approx(2 * CLAIM_SECONDS / SECONDS_PER_AGENT_STEP, rel=1e-4)


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
    assert [t.grid_point * 3 + t.replicate for t in taken] == list(range(min(limit, max(1, fits))))
    rest = book.claim(100)
    assert len(rest) == 12 - len(taken)


def test_shares_tile_the_call_in_proportion_to_cost():
    start = datetime(2026, 1, 1)
    edges = _shares(start, start + timedelta(seconds=6), [1.0, 2.0, 3.0])
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(edges)] == [1.0, 2.0, 3.0]
    assert edges[0] == start and edges[-1] == start + timedelta(seconds=6)


def test_a_trials_duration_is_its_share_of_the_engine_call(tmp_path):
    batch = dish({"Npoints": [2, 20]}, {"duration": 1.0}, nsims=2)
    run_batch(batch, storage=tmp_path / "s.db", chunk_size=4)  # one engine call
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "sizing")
    trials = sorted(study.trials, key=lambda t: t.datetime_start)
    assert all(a.datetime_complete == b.datetime_start for a, b in itertools.pairwise(trials))
    small, large = ([t.duration.total_seconds() for t in trials if t.params["Npoints"] == n] for n in (2, 20))
    ratio = point_costs(batch)[1] / point_costs(batch)[0]
    assert math.isclose(large[0] / small[0], ratio, rel_tol=1e-3)
