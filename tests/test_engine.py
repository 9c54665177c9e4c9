"""The engine's contracts (determinism, batching, errors) and a few behavioural checks; the spec's validation
targets themselves are tested in test_fidelity.py against tests/data/larvaworld_reference.toml."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import MODELS, experiment_tree
from larvastudy.engine import simulate, simulate_many
from larvastudy.engine.setup import compile_sim
from larvastudy.errors import SpecError

SEEDS = range(6)


def tree(experiment: str, **overrides) -> dict:
    return apply_overrides(experiment_tree(experiment), overrides)


@pytest.fixture(scope="module")
def dish_runs():
    return simulate_many([(tree("dish"), seed) for seed in SEEDS])


def mean_over(runs, metric: str) -> float:
    return float(np.mean([r.value(metric) for r in runs]))


def test_dish_dispersal_plausible(dish_runs):
    # larvaworld: mean distance from the origin ≈ 32 mm after 90 s; dispersal grows with time.
    assert 15 < mean_over(dish_runs, "dsp_0_60") < 50
    assert mean_over(dish_runs, "dsp_0_40") < mean_over(dish_runs, "dsp_0_60")


def test_pi_follows_the_gains():
    attracted = tree("PItest_off", **{"gain_dict.CS": 100.0, "gain_dict.UCS": -100.0})
    repelled = tree("PItest_off", **{"gain_dict.CS": -100.0, "gain_dict.UCS": 100.0})
    runs = simulate_many([(attracted, s) for s in range(3)] + [(repelled, s) for s in range(3)])
    assert mean_over(runs[:3], "PI") > 0.3 and mean_over(runs[:3], "PI2") > 0.1
    assert mean_over(runs[3:], "PI") < -0.3 and mean_over(runs[3:], "PI2") < -0.1


def test_navigator_approaches_the_source():
    runs = simulate_many([(tree("chemotaxis"), s) for s in range(3)])
    start = 80.0   # larvae start around (-40, 0) mm, the source is at (+40, 0) mm
    assert mean_over(runs, "final_dst_to_Source") < 0.6 * start
    assert mean_over(runs, "mean_dst_to_Source") < start


def test_feeding_depends_on_eeb():
    eager, never = tree("food_grid", duration=2.0), tree("food_grid", duration=2.0, EEB=0.0)
    fed, starved = simulate_many([(eager, 1), (never, 1)])
    assert fed.value("amount_eaten") > 0 and fed.value("on_food_dur_ratio") > 0.9
    assert starved.value("amount_eaten") == 0.0
    bite = 0.001 * 0.005**3 * 1000 * 1000   # spec §5.5: a full bite adds 1.25e-4
    assert np.allclose(np.round(fed.per_larva["amount_eaten"] / bite), fed.per_larva["amount_eaten"] / bite)


def test_same_config_and_seed_is_bit_identical_in_another_process():
    here = simulate(tree("PItest_off", duration=0.5), 42).summary()
    code = ("import json; from larvastudy.engine import simulate;"
            "from larvastudy.definition.presets import experiment_tree;"
            "from larvastudy.definition.paths import apply_overrides;"
            "print(json.dumps(simulate(apply_overrides(experiment_tree('PItest_off'), {'duration': 0.5}), 42)"
            ".summary()))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.dumps(here) == there.strip()   # same floats to the last bit (NaN for dispersal at 60 s)
    assert simulate(tree("PItest_off", duration=0.5), 43).summary() != here


_VARIANTS = st.fixed_dictionaries({
    "experiment": st.sampled_from(["PItest_off", "dish", "chemotaxis", "chemorbit", "patchy_food", "food_grid",
                                   "PItrain_mini", "PItrain", "anemotaxis",
                                   "tactile_detection", "growth"]),
    "model": st.sampled_from([None, *MODELS]),
    "seed": st.integers(0, 2**32),
    "Npoints": st.integers(1, 6),
    "tau": st.sampled_from([0.1, 0.12]),
    "freq": st.sampled_from([1.2, 1.42]),
    "fidelity": st.sampled_from(["larvaworld-2.5.1", "corrected"]),
    # RL memories choosing every 1.2 s and learning for 6 s, so that a 0.3-minute run explores, exploits and goes
    # greedy, or as registered
    "memory": st.sampled_from([{}, {"update_dt": 0.02, "train_dur": 0.1}]),
    # the windsensor's weights (they act in the corrected model), or as preset
    "wind": st.sampled_from([{}, {"windsensor.weights.bend_ang": 0.01, "windsensor.weights.hunch_lin": 0.5}]),
    # DEBs stepping every 6 s (60 steps), so that a 0.3-minute run grows them three times, or as registered
    "deb": st.sampled_from([{}, {"DEB.dt": 1 / 14_400}]),
})


def _memory_overrides(variant: dict) -> dict:
    """The variant's memory settings its larvae have: an RL memory's all, an associative memory's ``train_dur``."""
    if variant["model"] == "forager_RW":
        return {k: v for k, v in variant["memory"].items() if k == "train_dur"}
    rl = variant["model"] in ("forager_RL", "RLnavigator") or (
        variant["model"] is None and variant["experiment"].startswith("PItrain"))
    return variant["memory"] if rl else {}


def _has_deb(variant: dict) -> bool:
    return variant["model"] in ("rover", "sitter") or (variant["model"] is None and variant["experiment"] == "growth")


@settings(max_examples=25, deadline=None)
@given(st.lists(_VARIANTS, min_size=2, max_size=5))
def test_batch_equals_single(variants):
    jobs = [(tree(v["experiment"], **({"model": v["model"]} if v["model"] else {}), duration=0.3,
                  Npoints=v["Npoints"], tau=v["tau"], fidelity=v["fidelity"], **{"crawler.freq": v["freq"]},
                  **_memory_overrides(v), **(v["deb"] if _has_deb(v) else {}),
                  **(v["wind"] if v["experiment"] == "anemotaxis" and v["model"] is None else {})), v["seed"])
            for v in variants]
    batched = simulate_many(jobs)
    for job, together in zip(jobs, batched, strict=True):
        alone = simulate(*job)
        assert together.per_larva.keys() == alone.per_larva.keys()
        for name, values in alone.per_larva.items():
            np.testing.assert_array_equal(together.per_larva[name], values, err_msg=name)


def test_unsupported_experiment_names_missing_parts():
    with pytest.raises(SpecError, match=r"thermotaxis.*thermo sensor"):
        experiment_tree("thermotaxis")
    with pytest.raises(SpecError, match="unknown experiment 'nope'"):
        experiment_tree("nope")


def test_a_model_chosen_for_an_experiment_keeps_the_modules_the_experiment_gives_its_larvae():
    """anemotaxis gives its larvae a windsensor whatever their model: choosing one (as a sweep over ``model`` does)
    keeps it, its registry axes still resolve, and in the corrected model it still steers; other experiments' larvae
    get nothing."""
    chosen = tree("anemotaxis", model="navigator", fidelity="corrected", **{"windsensor.weights.bend_ang": 0.5})
    assert chosen["larva_groups"]["explorer"]["model"]["brain"]["windsensor"]["weights"]["bend_ang"] == 0.5
    without = tree("anemotaxis", model="navigator", fidelity="corrected")
    assert simulate(chosen, 1).value("anemotaxis") != simulate(without, 1).value("anemotaxis")
    assert "windsensor" not in tree("dish", model="navigator")["larva_groups"]["explorer"]["model"]["brain"]


def test_engine_level_errors_are_spec_errors():
    with pytest.raises(SpecError, match=re.escape("crawler.mode = 'gaussian'")):
        compile_sim(tree("dish", **{"crawler.mode": "gaussian"}), 0)
    with pytest.raises(SpecError, match=re.escape("EEB = 2.0")):
        compile_sim(tree("dish", EEB=2.0), 0)
    with pytest.raises(SpecError, match="metric 'PI'"):
        compile_sim({**tree("dish"), "metrics": ["PI"]}, 0)


@pytest.mark.parametrize("model", ["feeder", "forager"])
def test_feeding_models_run_in_an_arena_without_food(model):
    """A feeder in the food-less dish searches and never eats (it used to crash looking for the nearest source)."""
    config = apply_overrides(experiment_tree("dish"), {"duration": 0.2, "model": model})
    result = simulate(config, seed=2)
    assert np.isfinite(result.per_larva["v_mu"]).all() and result.value("v_mu") > 0


def test_several_sources_of_one_odor_give_the_same_results_alone_and_batched():
    """patchy_food has several sources per odor layer: their sum must not depend on how many larvae share
    the step (a BLAS matrix product did: dispersal differed in the last bits, then grew over the run)."""
    jobs = [(tree("patchy_food", duration=0.7), seed) for seed in range(8)]
    for job, together in zip(jobs, simulate_many(jobs), strict=True):
        alone = simulate(*job)
        for name, values in alone.per_larva.items():
            np.testing.assert_array_equal(together.per_larva[name], values, err_msg=name)
