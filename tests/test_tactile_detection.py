"""Tactile detection (docs/model.md, "Tactile detection"): larvaworld 2.5.1's Toucher, the tactile_detection
experiment and its metric cum_food_detected."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from larvastudy.cli import main
from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import simulate, simulate_many
from larvastudy.engine.loop import BatchRun
from larvastudy.engine.setup import compile_sim
from larvastudy.engine.touch import batch_touchers
from larvastudy.errors import InertParameterWarning, SpecError

L = 0.005   # body length (m), as every preset


def tree(**overrides: object) -> dict:
    return apply_overrides(experiment_tree("tactile_detection"), {"duration": 0.5, **overrides})


def touchers(food: complex, fidelity: str = "larvaworld-2.5.1", perception: str = "log"):
    """One toucher_2 larva (sensors on contour vertices 0 and 2) and one food source at ``food``."""
    config = tree(model="toucher_2", N=1, fidelity=fidelity, perception=perception)
    config["env_params"]["food_params"]["source_units"]["Patch"]["pos"] = [food.real, food.imag]
    setup = compile_sim(config, 0)
    n = np.ones(1)
    assert setup.touch is not None
    return batch_touchers([setup], [setup.touch], [1], 0.1, L * n, 0.003 * n, 0.05 * n, 0.05 * n,
                          clip=fidelity == "corrected")


# The larva's joint at the origin, head and tail along +x. Sensor 2 is larvaworld's contour vertex (0.05, 0.1) on the
# tail segment (drosophila_larva body plan: x < 0.5), at joint + L·((0.05 − 0.5) + 0.1i)·e^{i·tail} = (−2.25, 0.5) mm;
# sensor 0, vertex (1, 0), is the head tip at (2.5, 0) mm. Food 2.9 mm above sensor 2 is within the larva's radius
# (3 mm) of it and 5.8 mm from the head tip.
POS, UNIT, TAIL = np.zeros(1, dtype=complex), np.ones(1, dtype=complex), np.zeros(1)
NEAR_SENSOR_2 = complex(-0.00225, 0.0005 + 0.0029)
AWAY = np.full(1, 0.02 + 0j)   # the joint moved 20 mm: no sensor touches the food


def test_toucher_response_worked_from_larvaworlds_source():
    """larvaworld's Sensor.update: output = output·exp(−dt·decay_coef) + dt·Σ gain·dX, every sensor registered with a
    reading of 0, 'log' dX = cur/prev − 1, or 0 while prev = 0. Gaining contact is never sensed; losing it is −1:
    dt·gain = 0.1·40 = 4.0, then it decays by exp(−0.01) = 0.990049834 per step. Unclipped in 2.5.1 (its apply_noise
    clips only Python floats, never the numpy output); clipped to [−1, 1] by 'corrected' (deviation 2)."""
    lw = touchers(NEAR_SENSOR_2)
    outs, tips = zip(*[lw.step(pos, UNIT, TAIL, None, None) for pos in (POS, POS, AWAY, AWAY)], strict=True)
    np.testing.assert_allclose(np.concatenate(outs), [0.0, 0.0, -4.0, -4.0 * math.exp(-0.01)], rtol=1e-12)
    assert not np.concatenate(tips).any()   # food at sensor 2 only, not at the head tip
    fixed = touchers(NEAR_SENSOR_2, fidelity="corrected")
    outs = [fixed.step(pos, UNIT, TAIL, None, None)[0] for pos in (POS, AWAY, AWAY)]
    np.testing.assert_allclose(np.concatenate(outs), [0.0, -1.0, -math.exp(-0.01)], rtol=1e-12)


def test_sensors_sit_where_larvaworld_puts_them():
    """larvaworld 2.5.1 itself (toucher_2, seed 1, a larva's first pose: joint, head and tail orientation as its
    Larva reports them) put touch_sensor_0 and touch_sensor_2 at these points (get_sensor_position)."""
    pos = np.array([complex(-0.0016980671025577899, 0.0013904258316776888)])
    heading = np.array([4.525932273597346])
    x, y = touchers(0j).sensor_points(pos, np.exp(1j * heading), heading)
    np.testing.assert_allclose(x[0], [-0.002161512571964584, -0.0007896325542574026], rtol=0, atol=1e-15)
    np.testing.assert_allclose(y[0], [-0.0010662422974936727, 0.003508738054050555], rtol=0, atol=1e-15)
    # and with the body bent, sensor 2 follows the tail segment: joint + L·(−0.45 + 0.1i)·e^{i·tail}
    x, y = touchers(0j).sensor_points(np.zeros(1, dtype=complex), np.ones(1, dtype=complex), np.full(1, np.pi / 2))
    np.testing.assert_allclose([x[0, 1], y[0, 1]], [-0.1 * L, -0.45 * L], rtol=0, atol=1e-15)


def test_null_perception_senses_contact_and_the_head_tip_finds_food():
    """'null' perception: dX = cur, so each step in contact adds 4.0: 4.0, then 4.0·0.990049834 + 4.0. Food 2 mm
    ahead of the head tip (2.5 mm) is within the larva's radius of it and of sensor 0 there."""
    null = touchers(complex(0.0045, 0.0), perception="null")
    (a, tip_a), (b, tip_b) = (null.step(POS, UNIT, TAIL, None, None) for _ in range(2))
    np.testing.assert_allclose([a[0], b[0]], [4.0, 4.0 * math.exp(-0.01) + 4.0], rtol=1e-12)
    assert tip_a[0] and tip_b[0]


#: Larvae placed uniformly within 3 mm of the patch centre: they detect food, and touch sensors would lose contact.
ON_PATCH = {"distribution.mode": "uniform", "distribution.scale": [0.003, 0.003]}


def _low_and_high(model: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-larva metrics of larvae starting on the patch, at both ends of the registry's two axes."""
    low, high = (simulate(tree(model=model, initial_gain=gain, decay_coef=decay, **ON_PATCH), 3).per_larva
                 for gain, decay in ((25.0, 0.01), (75.0, 0.5)))
    return low, high


def test_the_toucher_preset_mounts_no_sensors_so_the_registry_axes_are_inert():
    """larvaworld's toucher preset has touch_sensors [] (its Toucher default): it senses nothing and the registry's
    initial_gain and decay_coef change nothing, to the bit, even for larvae starting on the patch, which detect food
    and leave it. decay_coef is the toucher's (no olfactor in the model). toucher_2 (sensors 0 and 2), the same
    runs: the axes act."""
    low, high = _low_and_high("toucher")
    assert (low["cum_food_detected"] > 0).sum() > 15   # most detect food, and so would touch it with sensors
    for name, values in low.items():
        np.testing.assert_array_equal(values, high[name], err_msg=name)
    low, high = _low_and_high("toucher_2")
    assert not np.array_equal(low["cum_food_detected"], high["cum_food_detected"])
    assert not np.array_equal(low["cum_dst"], high["cum_dst"])


def test_the_registry_batch_warns_that_its_axes_are_inert():
    with pytest.warns(InertParameterWarning) as caught:
        batch_from_kwargs("tactile_detection", sample={"initial_gain": [25.0, 75.0], "decay_coef": [0.01, 0.5]},
                          fixed={"duration": 0.1})
    assert sorted(str(w.message).split()[0] for w in caught if w.category is InertParameterWarning) == [
        "'decay_coef'", "'initial_gain'"]
    with warnings.catch_warnings():   # with sensors they act
        warnings.simplefilter("error", InertParameterWarning)
        batch_from_kwargs("tactile_detection", sample={"initial_gain": [25.0, 75.0]},
                          fixed={"duration": 0.1, "model": "toucher_2"})


def test_larvae_placed_outside_the_arena_stay_there():
    """periphery placement: 30 larvae evenly spaced on the circle of radius 0.03 m (angles k·12°), in a 0.05 m square
    whose allowed region is ±0.024 m. In larvaworld 2.5.1 (bench: its first minute, seed 1) exactly larvae 3-5, 10-12,
    18-20 and 25-27 move: the others' head tips cannot be turned or moved inside. Here the same, for every seed."""
    config = tree(duration=1.0)
    angles = np.linspace(0, 2 * np.pi, 31)[:-1]
    np.testing.assert_allclose(compile_sim(config, 0).pos, 0.03 * np.exp(1j * angles))
    moving = [tuple(np.nonzero(r.per_larva["cum_dst"] > 0)[0]) for r in simulate_many([(config, s) for s in range(3)])]
    assert moving == [(3, 4, 5, 10, 11, 12, 18, 19, 20, 25, 26, 27)] * 3


@pytest.fixture(scope="module")
def on_patch() -> dict[tuple[str, float], np.ndarray]:
    """cum_food_detected (mean over 30 larvae) of toucher_2 larvae starting on the patch (within 3 mm of its
    centre), 1 minute, 12 seeds, per (fidelity, initial_gain)."""
    out = {}
    for fidelity in ("larvaworld-2.5.1", "corrected"):
        for gain in (0.0, 75.0):
            config = tree(model="toucher_2", duration=1.0, fidelity=fidelity, initial_gain=gain, **ON_PATCH)
            out[fidelity, gain] = np.array([r.value("cum_food_detected")
                                            for r in simulate_many([(config, s) for s in range(12)])])
    return out


def cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.mean() - b.mean()) / math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))


def test_touch_keeps_larvae_on_food_when_its_output_stays_in_range(on_patch):
    """Corrected (output within [−1, 1]): losing contact drives the turner input to −1, and larvae with gain 75 stay on
    the patch longer than without touch (gain 0). Measured: 61.6 ± 7.3 vs 19.7 ± 4.1 steps in 60 s (mean ± sd over 12
    seeds), d = 6.8, p = 5e-14."""
    with_touch, without = on_patch["corrected", 75.0], on_patch["corrected", 0.0]
    assert stats.ttest_ind(with_touch, without).pvalue < 1e-4
    assert cohen_d(with_touch, without) > 2


def test_larvaworlds_unlimited_touch_output_drives_larvae_off_food(on_patch):
    """larvaworld 2.5.1 (output unclipped: −7.5 on losing contact at gain 75): the turner input leaves its range and the
    larvae leave the patch sooner than without touch. Measured: 7.7 ± 1.3 vs 19.4 ± 4.0 steps, d = −3.8, p = 4e-9."""
    with_touch, without = on_patch["larvaworld-2.5.1", 75.0], on_patch["larvaworld-2.5.1", 0.0]
    assert stats.ttest_ind(with_touch, without).pvalue < 1e-3
    assert cohen_d(with_touch, without) < -1.5


#: larvaworld 2.5.1 itself, the same condition (toucher_2 larvae placed uniformly within 3 mm of the patch centre, 1
#: minute), seeds 1-3: cum_food_detected, mean over its 30 larvae, per run (a scratch run of ExpRun, 17-80 s each).
LARVAWORLD_RUNS = {0.0: [16.233, 19.567, 21.633], 75.0: [7.267, 5.833, 7.633]}


@pytest.mark.parametrize("gain", [0.0, 75.0])
def test_time_on_food_matches_larvaworlds_own_runs(on_patch, gain):
    """The default model against larvaworld's runs: means within 3 combined standard errors (here 12 seeds, there 3).
    Measured: 19.4 vs 19.1 steps without touch, 7.7 vs 6.9 at gain 75."""
    here, there = on_patch["larvaworld-2.5.1", gain], np.array(LARVAWORLD_RUNS[gain])
    se = math.sqrt(here.var(ddof=1) / here.size + there.var(ddof=1) / there.size)
    assert abs(here.mean() - there.mean()) < 3 * se


class _Poses(BatchRun):
    """Records every larva's joint and head orientation at the start of each step (before the move)."""

    def __init__(self, setups):
        super().__init__(setups)
        self.poses: list[np.ndarray] = []

    def _move(self, lin, ang):
        self.poses.append(self.pos + 0.5 * L * np.exp(1j * self.head))   # the head tip, half a length ahead
        return super()._move(lin, ang)


def test_cum_food_detected_counts_steps_and_only_for_larvae_that_look():
    """cum_food_detected is larvaworld's Larva.cum_food_detected: the steps whose pose (before the move) has the
    Patch (food never eaten: no feeder) within the larva's radius, 3 mm, of the head tip; on_food_dur_ratio is it over
    the 300 steps. Counted here from the recorded poses. Explorers (no feeder, no toucher) never detect food, even
    on it."""
    start_on_patch = tree(**{"distribution.mode": "uniform", "distribution.scale": [0.001, 0.001]})
    run = _Poses([compile_sim(start_on_patch, 0)])
    (touch,) = run.run()
    tips = np.array(run.poses)   # (steps, larvae), the Patch at the origin
    counted = (np.abs(tips) <= 0.003).sum(axis=0)
    assert tips.shape == (300, 30) and (counted > 0).sum() > 20 and len(set(counted)) > 10   # they find it, leave
    np.testing.assert_array_equal(touch["cum_food_detected"], counted)
    np.testing.assert_allclose(touch["on_food_dur_ratio"], counted / 300, rtol=1e-15)
    assert not simulate(apply_overrides(start_on_patch, {"model": "explorer"}), 0).per_larva[
        "cum_food_detected"].any()


@pytest.mark.parametrize(("change", "message"), [
    ({"brute_force": True}, "toucher.brute_force = true"),
    ({"perception": "square"}, "toucher.perception = 'square'"),
    ({"initial_gain": -1.0}, "toucher.initial_gain = -1.0 must be >= 0"),
    ({"touch_sensors": [0, 6]}, "touch_sensors holds 6; a contour vertex is 0 to 5"),
])
def test_toucher_settings_the_engine_does_not_run_are_refused(change, message):
    config = experiment_tree("tactile_detection")
    config["larva_groups"]["toucher"]["model"]["brain"]["toucher"].update(change)
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(")):
        compile_sim(config, 0)


def test_a_toucher_among_more_than_ten_sources_is_refused():
    config = experiment_tree("tactile_detection")
    config["env_params"]["food_params"]["source_units"] = {f"S{i}": {"pos": [0.0, 0.0], "radius": 0.01, "amount": 0.1}
                                                           for i in range(11)}
    with pytest.raises(SpecError, match="toucher among 11 sources"):
        compile_sim(config, 0)


def test_cli_runs_the_registry_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The registry's 40 settings, larvae starting on the patch (they detect food): each row is what one setting
    gives for that row's seed (seeds differ per setting), so the axes are inert through the CLI too. In process
    (``main``), as the subprocess spends most of its time importing."""
    monkeypatch.chdir(tmp_path)
    fixed = {"duration": 0.5, "N": 3, **ON_PATCH}
    assert main(["run", "tactile_detection", *(f"--set={k}={v}" for k, v in fixed.items())]) == 0
    par_df = pd.read_csv(tmp_path / "storage" / "tactile_detection" / "par_df.csv")
    assert len(par_df) == 40 and set(par_df["state"]) == {"COMPLETE"}
    assert {"initial_gain", "decay_coef", "cum_food_detected"} <= set(par_df.columns)
    assert par_df["initial_gain"].nunique() == 10 and par_df["decay_coef"].nunique() == 4
    assert (par_df["cum_food_detected"] > 0).sum() > 30
    one_setting = tree(initial_gain=25.0, decay_coef=0.01, **fixed)
    runs = simulate_many([(one_setting, int(seed)) for seed in par_df["seed"]])
    np.testing.assert_allclose(par_df["cum_food_detected"], [r.value("cum_food_detected") for r in runs], rtol=1e-12)
