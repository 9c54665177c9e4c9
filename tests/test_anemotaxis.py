"""Anemotaxis (issue 14, part 2): larvaworld 2.5.1's WindScape and Windsensor, the anemotaxis metric, and what the
registry's anemotaxis Batch measures. docs/model.md, "Anemotaxis", describes the model and its deviations 16-18."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import simulate, simulate_many
from larvastudy.engine.loop import BatchRun
from larvastudy.engine.setup import CORRECTED, LARVAWORLD, compile_sim
from larvastudy.engine.wind import Wind, anemotaxis
from larvastudy.errors import InertParameterWarning, SpecError

BEND, HUNCH = "windsensor.weights.bend_ang", "windsensor.weights.hunch_lin"


def tree(fidelity: str = LARVAWORLD, **overrides) -> dict:
    return apply_overrides(experiment_tree("anemotaxis"), {"fidelity": fidelity, **overrides})


def wind(fidelity: str, bugs: frozenset[str] | None = None, **overrides) -> Wind:
    """The windsensor of one larva of the anemotaxis experiment (wind of speed 10 towards pi), as the loop wires it;
    ``bugs`` (of UPSTREAM_BUGS) override the fidelity's, as bench/bench_fidelity.py measures one deviation alone."""
    sensor = BatchRun([compile_sim(tree(fidelity, Npoints=1, **overrides), 0, bugs)]).wind
    assert sensor is not None
    return sensor


#: Headings 0, pi/2, pi, 3pi/2 (the last as -pi/2, which larvaworld's orientation % 2pi turns into 270 degrees).
HEADINGS = np.array([0.0, math.pi / 2, math.pi, -math.pi / 2])


def test_the_wind_a_larva_feels_worked_from_larvaworlds_source():
    """WindScape.get_value: abs(angle_dif(rad2deg(orientation), wind_direction)) / 180 * wind_speed, with angle_dif in
    degrees ((a - b + 180) % 360 - 180). windy_arena: wind_speed 10, wind_direction pi (radians, WindScape's default).

    2.5.1 reads pi as 3.14159 degrees (deviation 17): heading 0 feels 3.14159 / 180 * 10 = 0.174533, heading 90 degrees
    (90 - 3.14159) / 18 = 4.825467, heading 180 degrees (180 - 3.14159) / 18 = 9.825467, heading 270 degrees
    |(270 - 3.14159 + 180) % 360 - 180| / 18 = 93.14159 / 18 = 5.174533. Corrected (pi = 180 degrees): 10, 5, 0, 5:
    nothing facing downwind, the full speed facing upwind."""
    assert wind(LARVAWORLD).felt(HEADINGS) == pytest.approx(
        [0.1745329252, 4.8254670748, 9.8254670748, 5.1745329252], abs=1e-9)
    assert wind(CORRECTED).felt(HEADINGS) == pytest.approx([10.0, 5.0, 0.0, 5.0], abs=1e-12)


def test_the_windsensor_integrates_the_wind_as_larvaworlds():
    """Sensor.update with perception 'null' (dX = the input), gain_dict {'windsensor': 1.0}, decay_coef 0.1, dt 0.1:
    output = output * exp(-0.01) + 0.1 * input. larvaworld 2.5.1's own Windsensor(weights=..., dt=0.1), stepped with
    inputs 5, 5, 0, 10, returned 0.5, 0.995024916874584, 0.9851242535279617, 1.9753221034276318 (unclipped: the output
    is a numpy float, which Effector.apply_noise never limits to its output_range).

    The brain adds it to the turner input: 2.5.1's DefaultBrain unweighted (A_in = A_olf + ... + A_wind, deviation
    18); corrected, times bend_ang + hunch_ang and limited to [-1, 1], and the speed times 1 + clip(hunch_lin *
    output, -1, 1)."""
    expected = [0.5, 0.995024916874584, 0.9851242535279617, 1.9753221034276318]
    headings = [math.pi / 2, math.pi / 2, math.pi, 0.0]   # corrected: the wind felt is 5, 5, 0, 10
    weights = {BEND: 0.3, HUNCH: -0.6}
    upstream = wind(CORRECTED, frozenset({"wind_weights_unused"}), **weights)   # deviation 18 alone (16, 17 fixed)
    corrected = wind(CORRECTED, **weights)
    drive, lin = np.array([0.25]), np.array([2.0])
    for heading, output in zip(headings, expected, strict=True):
        up_drive, up_lin = upstream.step(np.array([heading]), drive, lin)
        assert upstream.output[0] == pytest.approx(output, rel=1e-14)
        assert up_drive[0] == pytest.approx(0.25 + output, rel=1e-14) and up_lin[0] == 2.0
        new_drive, new_lin = corrected.step(np.array([heading]), drive, lin)
        assert new_drive[0] == pytest.approx(min(0.25 + 0.3 * output, 1.0), rel=1e-14)
        assert new_lin[0] == pytest.approx(2.0 * (1.0 + max(-0.6 * output, -1.0)), rel=1e-14)


def test_the_anemotaxis_metric_is_larvaworlds():
    """comp_final_anemotaxis (the registry's Batch runs only the 'wind' processing, so comp_wind_metrics fails on the
    missing initial_x and this fallback runs): the displacement from the first recorded position (after step 1) to
    the last, times cos(atan2(dy, dx) - deg2rad(wind_direction)). larvaworld 2.5.1's anemotaxis experiment, seed 1:
    first and last positions (m, as printed to 6 decimals) and its e['anemotaxis'] (m) per larva.

    Corrected, the same positions projected on pi (radians, towards -x), worked through comp_final_anemotaxis's
    steps: larva 2, dx = 22.036 mm, dy = -8.648 mm, d = sqrt(dx² + dy²) = 23.6722 mm, atan2(dy, dx) = -0.373980,
    angle_dif(-0.373980, pi) = -3.515572 (its degree formula, (a + 180) % 360 - 180, leaves radians unwrapped: the
    cosine is the same), cos = -0.930881, so -22.036 mm; larvae 1, 3, 4 likewise: +1.893, -10.683, -25.594 mm."""
    first = np.array([-0.000060 - 0.000107j, 0.000132 - 0.000034j, -0.000161 + 0.000035j, 0.000111 + 0.000082j])
    last = np.array([-0.001953 + 0.027958j, 0.022168 - 0.008682j, 0.010522 + 0.018458j, 0.025705 - 0.004146j])
    larvaworld = np.array([-0.000352, 0.021529, 0.011677, 0.025323]) * 1000   # mm
    axis = np.full(4, math.radians(math.pi))   # 2.5.1 converts the radians of wind_direction once more (deviation 17)
    assert anemotaxis(first, last, axis) == pytest.approx(larvaworld, abs=2e-3)
    corrected = anemotaxis(first, last, np.full(4, math.pi))
    assert corrected == pytest.approx([1.893, -22.036, -10.683, -25.594], abs=1e-9)


def test_in_larvaworld_the_registrys_axes_act_on_nothing():
    """The registry's explorer has no windsensor (deviation 16): in 2.5.1 its larvae never feel the wind and the
    windsensor.weights axes match no parameter, so every setting gives the same run to the bit."""
    base = simulate(tree(), 5)
    for weights in ({BEND: 20.0}, {HUNCH: -20.0}, {BEND: -20.0, HUNCH: 20.0}):
        other = simulate(tree(**weights), 5)
        for name, values in base.per_larva.items():
            np.testing.assert_array_equal(other.per_larva[name], values, err_msg=name)
    assert simulate(tree(CORRECTED, **{BEND: 0.01}), 5).value("anemotaxis") != simulate(tree(CORRECTED), 5).value(
        "anemotaxis")


def test_the_weights_warn_as_inert_in_larvaworlds_model_only():
    sample = {BEND: [-20.0, 20.0]}
    with pytest.warns(InertParameterWarning, match="acts on nothing in larvaworld 2.5.1, whose explorer has no"):
        batch_from_kwargs("anemotaxis", sample=sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertParameterWarning)
        batch_from_kwargs("anemotaxis", sample=sample, fixed={"fidelity": CORRECTED})


def _anemotaxis(bend: float) -> np.ndarray:
    jobs = [(tree(CORRECTED, Npoints=30, **{BEND: bend}), seed) for seed in range(20)]
    return np.array([r.value("anemotaxis") for r in simulate_many(jobs)])


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = (a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float(d), float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_the_windsensor_steers_the_larvae_along_the_wind():
    """Corrected, the windsensor's output (about 10 x the wind felt, so up to 100) times bend_ang joins the turner
    input: a positive weight damps turning while a larva faces upwind, so runs upwind last and the larvae drift
    upwind; a negative weight makes them turn while facing upwind and drift downwind (klinokinesis). 20 seeds x 30
    larvae, 30 s (the registry's duration), anemotaxis mean ± s.e. (mm, downwind positive), measured:
    bend_ang 0 (control) -0.45 ± 0.57; +0.01: -6.49 ± 0.89 (d = -1.81, p = 2e-6); -0.01: +1.91 ± 0.36 (d = +1.10,
    p = 0.0015). At the registry's |weight| 20 the input saturates at ±1 from the first step (turning stops, resp.
    never pauses), so orientation is lost there."""
    control, upwind, downwind = _anemotaxis(0.0), _anemotaxis(0.01), _anemotaxis(-0.01)
    d_up, p_up = _welch(upwind, control)
    d_down, p_down = _welch(downwind, control)
    assert upwind.mean() < 0 < downwind.mean()
    assert d_up < -1.0 and p_up < 1e-3
    assert d_down > 0.5 and p_down < 0.01


def test_hunch_lin_scales_the_speed_within_zero_and_twice():
    """Corrected, the speed is multiplied by 1 + clip(hunch_lin * output, -1, 1): at the registry's +20 the larvae
    crawl about twice as fast, at -20 they stop once the sensor's output reaches 0.05 (one step facing 9 degrees or
    more off downwind)."""
    runs = simulate_many([(tree(CORRECTED, Npoints=10, **{HUNCH: h}), 3) for h in (0.0, 20.0, -20.0)])
    normal, fast, stopped = (r.value("v_mu") for r in runs)
    assert 1.6 * normal < fast <= 2.0 * normal and stopped < 0.1 * normal


@pytest.mark.parametrize("override, message", [
    ({"wind_speed": -1.0}, "wind_speed = -1.0 must be >= 0"),
    ({"windsensor.perception": "log"}, "windsensor.perception = 'log' is not supported"),
    ({"windsensor.decay_coef": -0.1}, "windsensor.decay_coef = -0.1 must be >= 0"),
])
def test_bad_wind_config_is_a_spec_error(override, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        compile_sim(tree(CORRECTED, **override), 0)


def test_wind_puffs_and_unknown_weights_are_refused():
    config = tree(CORRECTED)
    config["env_params"]["windscape"]["puffs"] = {"PuffGroup": {"N": 1, "duration": 1.0, "speed": 100.0}}
    with pytest.raises(SpecError, match="puffs are not supported"):
        compile_sim(config, 0)
    config = tree(CORRECTED)
    config["larva_groups"]["explorer"]["model"]["brain"]["windsensor"]["weights"]["bend_angle"] = 1.0
    with pytest.raises(SpecError, match=re.escape("windsensor.weights.bend_angle is not a weight; weights: hunch_lin")):
        compile_sim(config, 0)


def test_anemotaxis_needs_a_windscape():
    config = experiment_tree("dish")
    config["metrics"] = ["anemotaxis"]
    with pytest.raises(SpecError, match="metric 'anemotaxis' is not available for experiment 'dish'"):
        compile_sim(config, 0)


def test_cli_runs_the_registrys_anemotaxis_batch(tmp_path):
    result = subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", "anemotaxis", "--set", "duration=0.1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "9/9 simulations complete" in result.stdout
    assert "'windsensor.weights.bend_ang' acts on nothing in larvaworld 2.5.1" in result.stderr
    out = tmp_path / "storage" / "anemotaxis"
    par_df = pd.read_csv(out / "par_df.csv")
    assert sorted(zip(par_df["bend_ang"], par_df["hunch_lin"], strict=True)) == [
        (b, h) for b in (-20.0, 0.0, 20.0) for h in (-20.0, 0.0, 20.0)]
    assert np.isfinite(par_df["anemotaxis"]).all() and (par_df["fit"] == par_df["anemotaxis"]).all()
    assert (out / "figures" / "anemotaxis_heatmap.png").stat().st_size > 10_000


def test_a_simulation_with_wind_gives_the_same_numbers_alone_or_batched():
    jobs = [(tree(CORRECTED, Npoints=n, duration=0.2, **{BEND: bend, HUNCH: hunch}), seed)
            for n, bend, hunch, seed in ((3, 0.01, 0.5, 1), (5, -0.02, 0.0, 2), (1, 0.0, -0.3, 3), (4, 20.0, 20.0, 4))]
    for job, together in zip(jobs, simulate_many(jobs), strict=True):
        alone = simulate(*job)
        for name, values in alone.per_larva.items():
            np.testing.assert_array_equal(together.per_larva[name], values, err_msg=name)
