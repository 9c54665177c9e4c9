"""The ``fidelity`` parameter (issue 13, item 2). ``"larvaworld-2.5.1"``, the default, runs 2.5.1's model as it
runs, bugs included; ``"corrected"`` runs the model with the bugs fixed (docs/model.md, deviations 1-5), to the
last bit the engine of d278bf8, before the parameter existed. Statistical comparisons with larvaworld's own runs
are in tests/test_fidelity.py."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larvastudy.definition.batch import load_batch
from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import simulate
from larvastudy.engine.arena import Arena
from larvastudy.engine.loop import EXEC, PAUSE, BatchRun
from larvastudy.engine.setup import CORRECTED, LARVAWORLD, compile_sim

#: Made by tests/data/make_corrected_engine_golden.py on the engine of d278bf8.
_RECORD = json.loads((Path(__file__).parent / "data" / "corrected_engine_d278bf8.json").read_text())
CONDITIONS, SEED, GOLDEN = _RECORD["conditions"], _RECORD["seed"], _RECORD["sums"]


def tree(experiment: str, fidelity: str, **overrides) -> dict:
    config = apply_overrides(experiment_tree(experiment), overrides)
    config["fidelity"] = fidelity
    return config


@pytest.mark.parametrize("experiment", sorted(CONDITIONS))
def test_corrected_is_the_engine_before_the_parameter(experiment):
    result = simulate(tree(experiment, CORRECTED, **CONDITIONS[experiment]), SEED)
    sums = {name: float(result.per_larva[name].sum()) for name in GOLDEN[experiment]}  # metrics of d278bf8
    assert sums == pytest.approx(GOLDEN[experiment], rel=1e-12, abs=0)


@pytest.mark.parametrize("experiment", sorted(CONDITIONS))
def test_the_default_is_larvaworlds_model_and_differs(experiment):
    default = simulate(apply_overrides(experiment_tree(experiment), CONDITIONS[experiment]), SEED)
    larvaworld = simulate(tree(experiment, LARVAWORLD, **CONDITIONS[experiment]), SEED)
    assert ({k: v.tolist() for k, v in default.per_larva.items()}
            == {k: v.tolist() for k, v in larvaworld.per_larva.items()})
    sums = {name: float(values.sum()) for name, values in larvaworld.per_larva.items()}
    assert sums["v_mu"] != GOLDEN[experiment]["v_mu"]


def test_larvaworld_starts_every_crawler_and_feeder_at_one_seeded_phase():
    """Deviation 1: 2.5.1 draws one oscillator phase per process for all larvae; here one per simulation."""
    shared = compile_sim(tree("patchy_food", LARVAWORLD), 3)
    assert np.unique(np.r_[shared.crawler_phase, shared.feeder_phase]).size == 1
    assert compile_sim(tree("patchy_food", LARVAWORLD), 4).crawler_phase[0] != shared.crawler_phase[0]
    own = compile_sim(tree("patchy_food", CORRECTED), 3)
    assert np.unique(own.crawler_phase).size == own.n and np.unique(own.feeder_phase).size == own.n


class _OlfactorPeak(BatchRun):
    """Records the largest |olfactor output| of a run."""

    peak = 0.0

    def _sense(self, t: int, tip: np.ndarray) -> np.ndarray:
        out = super()._sense(t, tip)
        self.peak = max(self.peak, float(np.abs(out).max()))
        return out


@pytest.mark.parametrize(("fidelity", "limited"), [(LARVAWORLD, False), (CORRECTED, True)])
def test_olfactor_output_is_limited_only_when_corrected(fidelity, limited):
    """Deviation 2: at gain 1300 the olfactor drive leaves [-1, 1]; 2.5.1 never clips it (spec §10.7)."""
    run = _OlfactorPeak([compile_sim(tree("chemotaxis", fidelity, duration=1.0, **{"gain_dict.Odor": 1300.0}), 1)])
    run.run()
    assert (run.peak <= 1.0) == limited and run.peak > 0.5


class _Bouts(BatchRun):
    """Records the state and the completed strides after every step."""

    def __init__(self, setups):
        super().__init__(setups)
        self.states, self.completions = [], []

    def _intermit(self, completed, *args) -> None:
        super()._intermit(completed, *args)
        self.states.append(self.state.copy())
        self.completions.append(completed.copy())


def _bouts(fidelity: str) -> tuple[list[int], list[int]]:
    """Strides per finished run and steps per finished pause of explorers whose every run is drawn as 3 strides
    and every pause as 5 ticks."""
    config = tree("dish", fidelity, duration=1.0, Npoints=4,
                  **{"stridechain_dist.range": [3, 3], "pause_dist.range": [0.5, 0.5]})
    run = _Bouts([compile_sim(config, 0)])
    run.run()
    states, strides = np.array(run.states), np.array(run.completions)
    runs, pauses = [], []
    for larva in range(states.shape[1]):
        change = np.flatnonzero(np.diff(states[:, larva])) + 1
        for start, stop in itertools.pairwise(change):   # whole bouts only: the first and last may be cut
            if states[start, larva] == PAUSE:
                pauses.append(int(stop - start))
            elif states[start, larva] == EXEC:             # the stride completing at ``stop`` ends the run
                runs.append(int(strides[start:stop + 1, larva].sum()))
    return runs, pauses


@pytest.mark.parametrize(("fidelity", "strides", "ticks"), [(LARVAWORLD, 4, 6), (CORRECTED, 3, 5)])
def test_runs_and_pauses_last_one_bout_unit_longer_in_larvaworld(fidelity, strides, ticks):
    """Deviation 3: 2.5.1 ends a run after Nexp + 1 strides (``>``) and a pause of k ticks after k + 1."""
    runs, pauses = _bouts(fidelity)
    assert len(runs) > 10 and len(pauses) > 10
    assert set(runs) == {strides} and set(pauses) == {ticks}


def test_larvaworlds_circular_arena_is_its_60_gon():
    """Deviation 4: vertices at multiples of 6° on the circle of radius 0.96·D/2 (``util.circle_to_polygon``)."""
    width = np.array([0.1])
    polygon, circle = Arena("circular", width, width, polygon=True), Arena("circular", width, width)
    radius, apothem = 0.048, 0.048 * np.cos(np.pi / 60)
    between = (apothem + radius) / 2
    at_vertex, at_edge = between * np.exp(1j * np.radians(12.0)), between * np.exp(1j * np.radians(15.0))
    assert not polygon.outside(np.array([at_vertex]))[0] and polygon.outside(np.array([at_edge]))[0]
    assert not circle.outside(np.array([at_edge]))[0]
    rows = np.array([0, 0])
    reach = polygon.reach(np.array([0j, 0j]), np.exp(1j * np.radians([0.0, 3.0])), rows)
    np.testing.assert_allclose(reach, [radius, apothem], rtol=1e-12)


def _food_run(fidelity: str, sources: dict[str, complex]) -> BatchRun:
    """One forager in patchy_food's arena with these food sources."""
    config = tree("patchy_food", fidelity, Npoints=1)
    config["env_params"]["food_params"]["source_units"] = {
        name: {"pos": [z.real, z.imag], "radius": 0.003, "amount": 0.001} for name, z in sources.items()}
    config["env_params"]["odorscape"]["odor_layers"][0]["sources"] = list(sources)
    return BatchRun([compile_sim(config, 0)])


def test_larvaworld_finds_food_at_the_body_while_more_than_ten_sources_are_left():
    """Deviation 5: with over 10 sources 2.5.1 looks within reach of the body position, else of the head tip."""
    far = {f"far{k}": complex(0.09, -0.09 + 0.015 * k) for k in range(10)}
    run = _food_run(LARVAWORLD, {"near": 0.01 + 0j, **far})
    run.pos[:] = 0.0
    tip = np.array([0.009 + 0j])           # the tip within 3 mm of the source, the body 10 mm away
    found, _ = run._detect_food(tip, np.zeros(1))
    assert not found[0]
    run.food_amount[1] = 0.0               # a source eaten up leaves 10: the head tip counts again
    found, where = run._detect_food(tip, np.zeros(1))
    assert found[0] and where[0] == 0


@pytest.mark.parametrize(("fidelity", "choice", "source"), [(LARVAWORLD, 0.2, 0), (LARVAWORLD, 0.7, 1),
                                                              (CORRECTED, 0.2, 1), (CORRECTED, 0.7, 1)])
def test_overlapping_sources_larvaworld_picks_one_at_random(fidelity, choice, source):
    """2.5.1 chooses at random among the sources within reach; the corrected model takes the nearest."""
    run = _food_run(fidelity, {"a": 0.0125 + 0j, "b": 0.0095 + 0j})
    found, where = run._detect_food(np.array([0.01 + 0j]), np.array([choice]))
    assert found[0] and where[0] == source


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "larvastudy.cli", *args], cwd=folder, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def test_a_study_made_before_fidelity_existed_keeps_the_corrected_model(tmp_path):
    """Its stored definition has no ``fidelity``; it ran the corrected model, so it continues with it, and the
    default asks for a new study."""
    assert cli(tmp_path, "run", "dish", "--set", "duration=0.05", "--nsims", "1").returncode == 0
    db = tmp_path / "storage" / "larvastudy.db"
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("select value_json from study_user_attributes where key = 'batch'").fetchone()
        definition = json.loads(stored)
        del definition["fixed"]["fidelity"]
        conn.execute("update study_user_attributes set value_json = ? where key = 'batch'", (json.dumps(definition),))
    refused = cli(tmp_path, "run", "dish", "--set", "duration=0.05", "--nsims", "2")
    assert refused.returncode == 2 and "fidelity: corrected -> larvaworld-2.5.1" in refused.stderr
    resumed = cli(tmp_path, "run", "dish", "--set", "duration=0.05", "--set", "fidelity=corrected", "--nsims", "2")
    assert resumed.returncode == 0, resumed.stderr
    par_df = pd.read_csv(tmp_path / "storage" / "dish" / "par_df.csv")
    assert sorted(par_df.replicate) == [0] * 6 + [1] * 6
    for row in par_df.itertuples():   # replicate 0 ran before the definition was rewritten, 1 after it
        fidelity = CORRECTED if row.replicate else LARVAWORLD
        batch = replace(load_batch("dish"), fixed={"duration": 0.05, "fidelity": fidelity})
        assert row.v_mu == simulate(batch.config({"Npoints": row.Npoints}), row.seed).value("v_mu")


def test_fidelity_must_name_a_model(tmp_path):
    result = cli(tmp_path, "run", "dish", "--set", "fidelity=newest")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "'newest'" in result.stderr and "'larvaworld-2.5.1' or 'corrected'" in result.stderr
    assert not (tmp_path / "storage").exists()


def test_fidelity_as_a_sampled_axis_runs_both_models_in_one_study(tmp_path):
    """Both models side by side in one sweep: each row of par_df is the simulation of its own fidelity, and the
    figures compare them."""
    (tmp_path / "both.toml").write_text(
        'experiment = "dish"\nNsims = 2\n[sample]\nfidelity = ["larvaworld-2.5.1", "corrected"]\n'
        '[fixed]\nduration = 0.2\nNpoints = 5\n')
    result = cli(tmp_path, "run", "both.toml")
    assert result.returncode == 0, result.stderr
    par_df = pd.read_csv(tmp_path / "storage" / "both" / "par_df.csv")
    assert sorted(par_df.fidelity) == [CORRECTED] * 2 + [LARVAWORLD] * 2
    for row in par_df.itertuples():
        config = tree("dish", row.fidelity, duration=0.2, Npoints=5)
        assert row.num_pauses == simulate(config, row.seed).value("num_pauses")
    figures = {p.stem for p in (tmp_path / "storage" / "both" / "figures").iterdir()}
    assert "num_pauses_boxplot" in figures, figures


@pytest.mark.parametrize("fidelity", [LARVAWORLD, CORRECTED])
@pytest.mark.parametrize("experiment", ["dish", "food_grid"])
def test_bout_and_feed_counts_are_larvaworlds_intermitter_counters(experiment, fidelity):
    """``num_pauses``/``num_stridechains`` count bouts that ended (larvaworld registers a bout when it ends, by the
    next bout or by a feeding bout starting), ``num_feeds`` every feeding motion, successful or failed."""
    config = tree(experiment, fidelity, duration=1.0)
    config["metrics"] = ["num_pauses", "num_stridechains", "num_feeds", "successful_feeds", "failed_feeds",
                         "amount_eaten"]
    run = _Bouts([compile_sim(config, 5)])
    (result,) = run.run()
    states = np.array([np.full(run.n, EXEC), *run.states])   # the first step starts a run (spec §3.6)
    before, after = states[:-1], states[1:]
    np.testing.assert_array_equal(result["num_pauses"], ((before == PAUSE) & (after != PAUSE)).sum(axis=0))
    np.testing.assert_array_equal(result["num_stridechains"], ((before == EXEC) & (after != EXEC)).sum(axis=0))
    np.testing.assert_array_equal(result["num_feeds"], result["successful_feeds"] + result["failed_feeds"])
    bite = 0.001 * 0.005**3 * 1000 * 1000
    assert (result["amount_eaten"] <= result["successful_feeds"] * bite * (1 + 1e-9)).all()
    if experiment == "food_grid":
        assert result["successful_feeds"].min() > 50 and result["num_pauses"].sum() < result["num_stridechains"].sum()
    else:
        assert result["num_feeds"].sum() == 0 and result["num_pauses"].mean() > 3


def test_every_metric_has_its_unit_in_figure_labels():
    from larvastudy.engine.metrics import UNITS, available_metrics
    from larvastudy.export.figures import metric_label

    names = available_metrics(["CS", "UCS", "Source"])
    assert set(names) - set(UNITS) == {f"{k}_dst_to_{s}" for k in ("final", "mean") for s in ("CS", "UCS", "Source")}
    assert metric_label("amount_eaten") == "amount_eaten (mL)" and metric_label("PI") == "PI"
    assert metric_label("final_dst_to_Source") == "final_dst_to_Source (mm)"
    assert metric_label("num_pauses") == "num_pauses (pauses)"
