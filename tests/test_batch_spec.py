"""Batch definitions: the shipped studies, grid expansion, larvaworld compatibility, every validation error."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from larvastudy.definition.batch import (
    MAX_SIMULATIONS,
    Batch,
    Optimization,
    batch_from_kwargs,
    list_batches,
    load_batch,
)
from larvastudy.definition.space import grid_values
from larvastudy.engine import simulate
from larvastudy.errors import InertParameterWarning, SpecError

FAST = {"duration": 0.05}


def test_shipped_batches_load():
    assert set(list_batches()) >= {"PItest_off", "chemotaxis", "chemorbit", "patchy_food", "food_grid", "dish"}
    for name in list_batches():
        batch = load_batch(name)
        assert batch.name == name and batch.metrics and batch.objective_metric() in batch.metrics


def test_pitest_off_is_the_registry_grid():
    batch = load_batch("PItest_off")
    grid = [-100.0, -33.3333333333, 33.3333333333, 100.0]  # linspace(-100, 100, 4) to 12 significant digits
    assert batch.sample == {"gain_dict.CS": grid, "gain_dict.UCS": grid}
    assert batch.grid_size == 16 and len(batch.points()) == 16
    assert batch.points()[1] == {"gain_dict.CS": -100.0, "gain_dict.UCS": grid[1]}
    assert {"PI", "PI2", "v_mu"} <= set(batch.metrics)
    assert batch.axis_columns() == {"gain_dict.CS": "CS", "gain_dict.UCS": "UCS"}
    assert (batch.objective_metric(), batch.direction) == ("PI", "maximize")
    gains = batch.config(batch.points()[1])["larva_groups"]["navigator_x2"]["model"]["brain"]["olfactor"]["gain_dict"]
    assert gains == {"CS": -100.0, "UCS": grid[1]}


def test_registry_decisions_in_shipped_batches():
    patchy = load_batch("patchy_food")
    assert "feeder.freq" in patchy.sample and patchy.axis_columns()["feeder.freq"] == "freq"
    assert patchy.optimization.fit_par == "ingested_food_volume"
    assert (patchy.objective_metric(), patchy.direction) == ("amount_eaten", "maximize")
    assert "EEB_decay" in load_batch("food_grid").sample
    for name in ("chemotaxis", "chemorbit"):
        batch = load_batch(name)
        assert batch.sample["odor_layers[0].intensity"] == [300.0, 800.0, 1300.0]
        assert (batch.objective_metric(), batch.direction) == ("final_dst_to_Source", "minimize")
    dish = load_batch("dish")
    assert dish.sample == {"Npoints": [5, 10, 15, 20, 25, 30]} and dish.Nsims == 20
    assert dish.fixed == {"duration": 5.0, "model": "explorer", "fidelity": "larvaworld-2.5.1"}


@pytest.mark.parametrize("spec, values", [
    ({"range": [0, 10], "Ngrid": 3}, [0, 5, 10]),
    ({"range": [0, 10], "Ngrid": 4}, [0.0, 3.33333333333, 6.66666666667, 10.0]),  # 12 significant digits
    ({"range": [0.1, 0.5], "Ngrid": 3}, [0.1, 0.3, 0.5]),  # linspace gives 0.30000000000000004
    ({"range": [0.0, 1.0], "Ngrid": 1}, [0.0]),
    ([[1, 3], 3], [1, 2, 3]),
    ({"values": ["a", "b"], "range": None}, ["a", "b"]),
    (np.array([1.5, 2.5]), [1.5, 2.5]),
    ((True, False), [True, False]),
])
def test_grid_values(spec, values):
    got = grid_values("x", spec)
    assert got == values and [type(v) for v in got] == [type(v) for v in values]


def test_kwargs_accept_a_larvaworld_registry_entry():
    entry = {"exp": "PItest_off", "exp_kws": {"enrichment": {"proc_keys": ["PI"]}},
             "space_search": {"gain_dict.CS": [[-100.0, 100.0], 2], "duration": 0.05},
             "optimization": {"fit_par": None, "minimize": True, "absolute": False, "threshold": 0.001,
                              "max_Nsims": 5, "operator": "mean"}}
    batch = batch_from_kwargs("PItest_off", **entry)
    assert batch.sample == {"gain_dict.CS": [-100.0, 100.0]}
    assert batch.fixed == {"duration": 0.05, "fidelity": "larvaworld-2.5.1"}
    assert batch.optimization == Optimization(threshold=0.001, max_Nsims=5)
    assert (batch.name, batch.direction) == ("PItest_off", "maximize")
    old = batch_from_kwargs("PItest_off", fixed=FAST, optimization={"fit_par": "PI2", "operations": {"abs": True}})
    assert old.optimization == Optimization(fit_par="PI2", absolute=True)


def test_config_applies_model_before_its_parameters_and_roundtrips():
    batch = batch_from_kwargs("dish", sample={"model": ["navigator", "forager"]}, fixed={**FAST, "decay_coef": 0.3},
                              name="models")
    tree = batch.config({"model": "forager"})
    model = tree["larva_groups"]["explorer"]["model"]
    assert model["name"] == "forager" and model["brain"]["olfactor"]["decay_coef"] == 0.3
    assert tree["metrics"] == list(batch.metrics) and tree["duration"] == 0.05
    assert load_batch("dish").base_tree()["larva_groups"]["explorer"]["model"]["name"] == "explorer"
    assert Batch.from_dict(batch.to_dict()) == batch
    assert dataclasses.replace(batch, Nsims=3).grid_size == 6


def test_axis_columns_keep_ambiguous_names():
    batch = batch_from_kwargs("PItest_off", fixed=FAST, sample={
        "odor_layers[0].intensity": [1.0], "odor_layers[1].intensity": [2.0], "gain_dict.CS": [1.0]})
    assert batch.axis_columns() == {"odor_layers[0].intensity": "odor_layers[0].intensity",
                                    "odor_layers[1].intensity": "odor_layers[1].intensity", "gain_dict.CS": "CS"}


@pytest.mark.parametrize("kwargs, message", [
    ({"experiment": "nope"}, "unknown experiment 'nope'"),
    ({"experiment": "maze"}, "needs arena borders"),
    ({"sample": {"olfactor.gain_dikt.CS": [1.0]}}, "unknown parameter 'olfactor.gain_dikt.CS'; did you mean"),
    ({"sample": {"gain_dict.Odor": ["high"]}}, "gain_dict.Odor takes a number, got 'high'"),
    ({"sample": {"amount": [1.0]}, "experiment": "patchy_food"}, "ambiguous parameter 'amount'"),
    ({"sample": {"gain_dict.odor": [0.0]}, "experiment": "chemotaxis"},
     "'gain_dict.odor': no odor 'odor' in this arena, so its gain would change nothing; odor ids: Odor"),
    ({"fixed": {"env_params.odorscape.odorscape": "Diffusion"}},
     "env_params.odorscape.odorscape = 'Diffusion' is not supported by the engine; supported: Gaussian"),
    ({"N": 10}, "BatchRun argument 'N': the replicates per grid point are Nsims here"),
    ({"store_data": True}, "larvastudy always stores every simulation"),
    ({"fixed": {"durashun": 1.0}}, "unknown parameter 'durashun'"),
    ({"sample": {"gain_dict.CS": []}}, "needs at least one value"),
    ({"sample": {"gain_dict.CS": 5.0}}, "constants belong in fixed"),
    ({"sample": {"gain_dict.CS": {"range": [1.0, 0.0]}}}, "range needs finite lo < hi, got [1.0, 0.0]"),
    ({"sample": {"gain_dict.CS": {"range": [0.0, 1.0], "Ngrid": 0}}}, "Ngrid must be a whole number >= 1, got 0"),
    ({"sample": {"gain_dict.CS": {"range": [0.0], "Ngrid": 2}}}, "range must be two numbers"),
    ({"sample": {"gain_dict.CS": {"step": 1}}},
     "unknown key 'step'; an axis takes values, range, Ngrid, log, zip, when"),
    ({"sample": {"gain_dict.CS": [1.0, 1]}}, "value 1 is listed twice"),
    ({"sample": {"gain_dict.CS": [1.0, "a"]}}, "values mix numbers and strings"),
    ({"sample": {"gain_dict.CS": [[1.0]]}}, "values must be numbers, strings or booleans"),
    ({"sample": {"gain_dict.CS": [float("nan")]}}, "values must be finite"),
    ({"sample": {"gain_dict.CS": ["high"]}}, "gain_dict.CS takes a number, got 'high'"),
    ({"sample": {"Npoints": [10, 2.5]}}, "distribution.N takes a whole number, got 2.5"),
    ({"sample": {"EEB": [0.5, 1.5]}}, "sample 'EEB' value 1.5: "),
    ({"sample": {"model": ["navigator_x2", "Levy"]}}, "model 'Levy' needs"),
    ({"sample": {"crawler.freq": [1.0, 12.0]}}, "crawler.freq = 12.0 must be below 1/dt"),
    ({"sample": {"replicate": [1]}}, "'replicate' is reserved"),
    ({"sample": {"duration": [1.0]}, "fixed": {"duration": 1.0}}, "'duration' is both sampled and fixed"),
    ({"sample": {"Npoints": [3], "distribution.N": [4]}}, "set the same parameter"),
    ({"Nsims": 0}, "Nsims must be a whole number >= 1, got 0"),
    ({"Nsims": 1.5}, "Nsims must be a whole number >= 1"),
    ({"seed": -1}, "seed must be a whole number from 0 to 2**32 - 1"),
    ({"metrics": ["PI", "bogus"]}, "unknown metric 'bogus'"),
    ({"optimization": {"fit_par": "bogus"}}, "unknown optimization fit_par 'bogus'"),
    ({"optimization": {"operator": "median"}}, "operator must be one of mean, std"),
    ({"optimization": {"minimise": True}}, "optimization: unknown key 'minimise'"),
    ({"optimization": {"max_Nsims": 0}}, "max_Nsims must be a whole number >= 1"),
    ({"exp": "dish"}, "disagrees with the registry entry's 'dish'"),
    ({"space_kws": {"n": 3}}, "builds the grid from space_search alone"),
    ({"exp_kws": {"duration": 3}}, "exp_kws: unknown key 'duration'"),
    ({"sample": {"gain_dict.CS": [1.0]}, "space_search": {"gain_dict.CS": [2.0]}}, "is given twice"),
])
def test_validation_errors_are_one_line(kwargs, message):
    kwargs = {"experiment": "PItest_off", "fixed": FAST, **kwargs}
    with pytest.raises(SpecError) as err:
        batch_from_kwargs(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_size_limit_needs_allow_large():
    batch = batch_from_kwargs("dish", fixed=FAST, Nsims=MAX_SIMULATIONS + 1)
    with pytest.raises(SpecError, match="confirm with --yes"):
        batch.check_size()
    batch.check_size(allow_large=True)


def test_a_grid_beyond_this_machines_memory_is_refused_before_it_is_built():
    axis = {"range": [-100.0, 100.0], "Ngrid": 100_000}
    with pytest.raises(SpecError, match=r"10,000,000,000 grid points x 1 replicates .* needing about 40,000.0 GB"):
        batch_from_kwargs("PItest_off", sample={"gain_dict.CS": axis, "gain_dict.UCS": axis}, fixed=FAST)
    with pytest.raises(SpecError, match=r"Ngrid = 1,000,000,000 is more values than any sweep could run"):
        batch_from_kwargs("dish", sample={"crawler.freq": {"range": [1.0, 2.0], "Ngrid": 10**9}}, fixed=FAST)
    with pytest.raises(SpecError, match="needing about"):
        batch_from_kwargs("dish", fixed=FAST, Nsims=10**9)


@pytest.mark.parametrize("text, message", [
    ('experiment = "dish"\n[sample]\nNpoints = [3, 4]\n[fixed]\nduration = 0.05\n', None),
    ('experiment = "dish"\nsample = [', "custom.toml: "),
    ('experiment = "dish"\nNsim = 3\n', "custom.toml: unknown key 'Nsim'; allowed: name"),
    ('Nsims = 3\n', "custom.toml: missing key 'experiment'"),
    ('experiment = "dish"\n[sample]\nNpoints = { range = [1, 3], Ngrid = 0 }\n', "custom.toml: sample 'Npoints'"),
])
def test_load_batch_from_a_file(tmp_path, text, message):
    path = tmp_path / "custom.toml"
    path.write_text(text)
    if message is None:
        batch = load_batch(str(path))
        assert (batch.name, batch.sample, batch.grid_size) == ("custom", {"Npoints": [3, 4]}, 2)
    else:
        with pytest.raises(SpecError, match=message.replace("[", r"\[")):
            load_batch(path)


def test_load_batch_unknown_name_or_file(tmp_path):
    with pytest.raises(SpecError, match=r"unknown Batch 'PItest_of'; available: .*PItest_off"):
        load_batch("PItest_of")
    with pytest.raises(SpecError, match="no such Batch file"):
        load_batch(tmp_path / "missing.toml")


def test_gain_for_an_arena_odor_the_model_lacks_is_added() -> None:
    """navigator_x2 has gains for CS and UCS only; in the chemotaxis arena (odor "Odor") a gain for it acts."""
    batch = batch_from_kwargs("chemotaxis", sample={"gain_dict.Odor": [0.0, 300.0]},
                              fixed={"duration": 0.2, "model": "navigator_x2"})
    olfactor = next(iter(batch.config(batch.points()[1])["larva_groups"].values()))["model"]["brain"]["olfactor"]
    assert olfactor["gain_dict"] == {"CS": 150.0, "UCS": 0.0, "Odor": 300.0}
    a, b = (simulate(batch.config(point), seed=3) for point in batch.points())
    assert not np.array_equal(a.per_larva["final_dst_to_Source"], b.per_larva["final_dst_to_Source"])
    with pytest.raises(SpecError, match="no odor 'Ghost' in this arena"):
        batch_from_kwargs("PItest_off", sample={"gain_dict.Ghost": [-50.0, 50.0]}, fixed=FAST)


def test_larvaworld_registry_names_mean_what_docs_model_says():
    """docs/model.md, deviation 6: ``Odor.mean`` is the odor's intensity, ``freq`` the feeder's frequency."""
    chemotaxis = batch_from_kwargs("chemotaxis", sample={"Odor.mean": [1.0, 2.0]}, fixed={"duration": 0.1})
    layer = chemotaxis.config(chemotaxis.points()[1])["env_params"]["odorscape"]["odor_layers"][0]
    assert (layer["id"], layer["intensity"]) == ("Odor", 2.0)
    assert chemotaxis.axis_columns() == {"Odor.mean": "Odor.mean"}
    patchy = batch_from_kwargs("patchy_food", sample={"freq": [1.5, 2.5]}, fixed={"duration": 0.1})
    feeder = patchy.config(patchy.points()[1])["larva_groups"]
    assert {g["model"]["brain"]["feeder"]["freq"] for g in feeder.values()} == {2.5}


@pytest.mark.parametrize("experiment, sample, inert", [
    ("food_grid", {"EEB_decay": [0.1, 2.0]}, "'EEB_decay' is declared but never read"),
    ("chemotaxis", {"Odor.mean": [300.0, 1300.0]}, "'Odor.mean' cancels out under log perception"),
    ("chemotaxis", {"Source.radius": [0.001, 0.01]}, "'Source.radius' only sets how a source is drawn"),
    ("dish", {"ang_vel_coef": [1.0, 2.0]}, "'ang_vel_coef' only acts when physics.ang_mode = 'velocity'"),
])
def test_parameters_inert_upstream_too_warn_once(experiment, sample, inert):
    with pytest.warns(InertParameterWarning) as caught:
        batch_from_kwargs(experiment, sample=sample, fixed={"duration": 0.1})
    assert [str(w.message) for w in caught if w.category is InertParameterWarning] == [
        next(str(w.message) for w in caught if inert in str(w.message))]


def test_an_inert_intensity_changes_results_only_by_rounding():
    """The claim the warning makes: same seed, intensities 300 and 1300, equal to 12 digits after 3 s."""
    batch = batch_from_kwargs("chemotaxis", sample={"Odor.mean": [300.0, 1300.0]}, fixed={"duration": 0.05})
    low, high = (simulate(batch.config(point), 7).summary() for point in batch.points())
    assert low.keys() == high.keys() and low != high
    assert all(math.isclose(low[k], high[k], rel_tol=1e-12, abs_tol=1e-12) for k in low if not math.isnan(low[k]))
