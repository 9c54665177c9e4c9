"""Growth (issue 14, part 4): larvaworld 2.5.1's DEB energetics and gut, the body that follows them, the hunger that
drives the EEB, and the growth Batch. docs/model.md, "Growth", describes the model and deviation 25.

The reference numbers were printed by larvaworld 2.5.1 itself (``/work/venv-lw``, no simulation: a ``DEB`` built as
``LarvaMotile.build_energetics`` builds it from ``GTRvsS(age=0)``'s rover and sitter, then ``run_check(dt=0.1,
X_V=...)`` 600 times per DEB step), as in this script::

    from larvaworld.lib.model.deb.deb import DEB
    from larvaworld.lib.param import Substrate
    from larvaworld.lib.reg.larvagroup import GTRvsS
    for gid, g in GTRvsS(age=0.0, expand=True).items():
        for substrate in (None, Substrate(type="standard")):   # 2.5.1's empty one, and the corrected model's
            d = DEB(id="x", intermitter=None, gut_params=g.model.energetics.gut, **g.model.energetics.DEB,
                    **({"substrate": substrate} if substrate else {}))
            d.grow_larva(epochs=g.life_history.epochs)          # age 0: the egg only
            for tick in range(600):                              # step 1: three bites of 1e-6
                d.run_check(dt=0.1, X_V=1e-6 if tick in (10, 20, 30) else 0.0)
            for tick in range(600):                              # step 2: nothing eaten
                d.run_check(dt=0.1, X_V=0.0)
            for _ in range(1438):                                # to 24 h
                d.run(X_V=0.0)
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import deb as D
from larvastudy.engine import simulate, simulate_many
from larvastudy.engine.loop import BatchRun
from larvastudy.engine.setup import CORRECTED, LARVAWORLD, compile_sim
from larvastudy.errors import SpecError

#: larvaworld's state at hatching (age 0 in GTRvsS), the same for rover and sitter: E (J), V (cm³), E_H (J), age (d).
HATCH = (0.7373924799945776, 4.831790142540848e-05, 0.18568933143271826, 0.7201388888888866)
#: After DEB step 1 (3e-6 eaten) and step 2 (nothing): E, V, E_H; the same in both fidelities and phenotypes at step 1.
STEP1 = (0.7352705130672638, 4.835338426531048e-05, 0.18610726275468054)
STEP2_E = {LARVAWORLD: (0.7331490307644689, 0.7331490307644689), CORRECTED: (0.7339192077707176, 0.7335341192675933)}
STEP2_V_EH = (4.838852346548176e-05, 0.18652509523285532)
#: After 1440 DEB steps (24 h): E, V, E_H of the rover.
DAY = {LARVAWORLD: (1.7662219870154095e-10, 5.3349883786426136e-08, 0.32813352489253406),
       CORRECTED: (2.227863205022994e-10, 5.549882535926815e-08, 0.33061245511761206)}


def tree(fidelity: str = LARVAWORLD, **overrides) -> dict:
    return apply_overrides(experiment_tree("growth"), {"fidelity": fidelity, **overrides})


def energetics(fidelity: str) -> D.Energetics:
    """The growth experiment's two DEBs (rover, sitter), as the loop builds them."""
    setup = compile_sim(tree(fidelity, duration=1.0), 0)
    assert setup.energetics is not None
    return D.Energetics([setup.energetics], [0], setup.n)


def test_constants_and_hatchling_are_larvaworlds():
    """Temperature factor exp(T_A/T_ref - T_A/T) at 25 °C, K = J_X_Am / F_m per phenotype, the standard medium's
    X = 0.15 g/cm³ / 17.61 g/mol and f = X / (K + X), and the egg integrated to hatching: E, V, E_H, age, and the
    physical length Lw = V^(1/3) / del_M (cm) and dry mass V d_V + E w_E / mu_E (g) larvaworld gives the larva."""
    tc = D.temperature_factor(298.15)
    assert tc == pytest.approx(5.309550432086175, rel=1e-14)
    assert D.half_saturation("rover") == pytest.approx(0.00017979137608646297, rel=1e-14)
    assert D.half_saturation("sitter") == pytest.approx(0.0003056449961092175, rel=1e-14)
    x = D.substrate_x(1.0)
    assert x == pytest.approx(0.00851735015772871, rel=1e-14)
    assert x / (D.half_saturation("rover") + x) == pytest.approx(0.9793275324556442, rel=1e-14)
    hatchling = D.hatch(tc, 1 / (24 * 60))
    assert (hatchling.E, hatchling.V, hatchling.E_H, hatchling.age) == pytest.approx(HATCH, rel=1e-12)
    assert D.length_m(hatchling.V) * 100 == pytest.approx(0.057905352407738205, rel=1e-12)   # Lw, cm
    deb = energetics(LARVAWORLD)
    assert deb.metrics(2)["deb_mass"] == pytest.approx([4.025709828208382e-05 * 1000] * 2, rel=1e-12)
    setup = compile_sim(tree(), 0)   # the body starts as the hatchling: 0.58 mm long, bites of V_bite V 1000
    assert setup.params["length"] == pytest.approx([D.length_m(HATCH[1])] * 2, rel=1e-12)
    assert setup.params["bite"] == pytest.approx([0.001 * HATCH[1] * 1000] * 2, rel=1e-12)


@pytest.mark.parametrize("fidelity", [LARVAWORLD, CORRECTED])
def test_deb_and_gut_steps_are_larvaworlds(fidelity):
    """Two DEB steps: three bites of 1e-6 go into the gut (X 1e-6 C-mol each, corrected; none in 2.5.1, whose DEB
    substrate is empty), the enzyme M_g = J_g 60 s digests them into product M_P (yield 0.9), which the next step
    absorbs at k_abs M_c 60 s (M_c = 5e-8 A_g, A_g = 2 pi 0.07 L²): rover (k_abs 0.8) twice the sitter's (0.4).
    The absorbed C-mol times mu_E per DEB step (1/1440 d) is the assimilation flux of the Euler step of
    E, V, E_H. Then 1438 steps more to 24 h: the larva starves (E 0.74 -> 2e-10 J, length 0.58 -> 0.06 mm)."""
    deb = energetics(fidelity)
    for _ in range(3):
        deb.intake[0] += 1e-6
        deb.intake[1] += 1e-6
    deb.step()
    assert np.c_[deb.E, deb.V, deb.E_H] == pytest.approx(np.array([STEP1, STEP1]), rel=1e-12)
    if fidelity == CORRECTED:
        assert pytest.approx([2.150019332751743e-08] * 2, rel=1e-12) == deb.M_X
        assert pytest.approx([3.64667143110183e-09] * 2, rel=1e-12) == deb.M_P
    else:
        assert deb.M_X.tolist() == [0.0, 0.0] and deb.M_P.tolist() == [0.0, 0.0]
    assert deb.M_g == pytest.approx([4.0518571456687e-09] * 2, rel=1e-12)
    assert deb.M_Pu.tolist() == [0.0, 0.0]   # nothing absorbed in the step food arrives
    deb.step()
    assert pytest.approx(STEP2_E[fidelity], rel=1e-12) == deb.E
    assert np.c_[deb.V, deb.E_H] == pytest.approx(np.array([STEP2_V_EH, STEP2_V_EH]), rel=1e-12)
    if fidelity == CORRECTED:
        assert deb.M_Pu == pytest.approx([1.4003218295431027e-09, 7.001609147715514e-10], rel=1e-12)
    for _ in range(1438):
        deb.step()
    assert (deb.E[0], deb.V[0], deb.E_H[0]) == pytest.approx(DAY[fidelity], rel=1e-9)
    assert deb.length()[0] * 100 == pytest.approx((DAY[fidelity][1] ** (1 / 3)) / 0.629, rel=1e-12)


def test_the_deb_steps_every_600_steps_and_the_body_follows_it():
    """run_check adds dt = 0.1 s per step and steps the DEB once the buffer reaches 60 s: at step 600
    (0.1 x 600 = 60.00000000000058). The body length, bite and, with hunger_as_EEB, EEB follow each DEB step."""
    assert D.interval(1 / (24 * 60), 0.1, 10**6) == 600 and D.interval(1 / (24 * 60), 0.7, 10**6) == 86
    lengths = {}
    for steps in (599, 600, 1199, 1200):
        run = BatchRun([compile_sim(tree(duration=steps / 600, hunger_gain=1.0), 3)])
        run.run()
        assert run.deb is not None
        lengths[steps] = run.p["length"].copy()
        assert run.p["length"].tolist() == run.deb.length().tolist()
        assert run.p["bite"].tolist() == run.deb.bite().tolist()
        assert run.p["eeb"].tolist() == run.deb.hunger.tolist()
        assert run.half.tolist() == (0.5 * run.deb.length()).tolist()
    assert lengths[599].tolist() == [D.length_m(HATCH[1])] * 2
    assert (lengths[600] != lengths[599]).all() and lengths[1199].tolist() == lengths[600].tolist()
    assert (lengths[1200] != lengths[600]).all()


def test_food_eaten_feeds_the_deb_only_in_the_corrected_model():
    """Deviation 25: in 2.5.1 the gut digests the DEB's empty default substrate (X = 0): every larva starves the
    same, whatever it eats. Corrected, what a larva eats is absorbed: a larva that ate keeps more reserve than a
    starving one (beyond a few bites per minute the gut's carriers, not the food, limit absorption), and with the
    food grid empty it starves exactly as in 2.5.1."""
    short = {"duration": 5.0, "DEB.dt": 1 / 14_400, "Npoints": 3}   # 6 s DEB steps
    upstream = simulate(tree(LARVAWORLD, **short), 5).per_larva
    fed = simulate(tree(CORRECTED, **short), 5).per_larva
    starved = simulate(tree(CORRECTED, **short, initial_value=0.0), 5).per_larva
    assert (upstream["amount_eaten"] > 0).all() and (fed["amount_eaten"] > 0).all()
    assert np.unique(upstream["reserve_density"]).size == 1 and upstream["deb_f_deviation"].tolist() == [-1.0] * 6
    assert starved["amount_eaten"].tolist() == [0.0] * 6
    assert starved["reserve_density"].tolist() == upstream["reserve_density"].tolist()
    assert (fed["reserve_density"] > upstream["reserve_density"]).all()
    assert fed["deb_f_deviation"] == pytest.approx([0.9793275324556442 - 1] * 3 + [0.9653581362360532 - 1] * 3,
                                                   rel=1e-12)


def test_hunger_drives_the_eeb_and_so_feeding():
    """DEB.update_hunger: EEB = clip(base_EEB + hunger_gain (1 - e), 0, 1) after every DEB step. With base EEB 0 a
    larva never starts feeding; at 37 °C (temperature factor 215, DEB steps of 6 s) its reserve density falls
    within minutes and, with hunger_gain 1, the hunger makes it feed; with hunger_gain 0 (the registry's) it never
    does. Over 6 seeds x 2 larvae, 10 minutes each."""
    hot = {"duration": 10.0, "DEB.dt": 1 / 14_400, "T": 310.15, "EEB": 0.0}
    jobs = [(tree(CORRECTED, **hot, hunger_gain=gain), seed) for gain in (0.0, 1.0) for seed in range(6)]
    results = simulate_many(jobs)
    still, hungry = results[:6], results[6:]
    assert all(r.per_larva["num_feeds"].sum() == 0 and r.per_larva["hunger"].tolist() == [0.0, 0.0] for r in still)
    for r in hungry:
        e = r.per_larva["reserve_density"]
        assert r.per_larva["hunger"] == pytest.approx(np.clip(1 - e, 0, 1), rel=1e-12) and (e < 0.9).all()
    assert sum(r.per_larva["num_feeds"].sum() for r in hungry) > 0


def test_the_registry_axis_eeb_makes_larvae_feed_more():
    """The growth Batch's EEB axis (hunger_gain 0): EEB 0.8 against 0.5, 8 seeds x 2 larvae x 5 minutes, 2.5.1's
    model. Feeding motions per larva: 261 ± 13 against 210 ± 22 (Mann-Whitney U one-sided, p < 0.01; Cohen's d
    2.8 at this commit). Food eaten hardly changes: a bite empties its grid cell (1e-6, less than the hatchling's
    bite of 4.8e-5), so the next motion there fails and ends the feeding bout."""
    def feeds(eeb: float) -> np.ndarray:
        jobs = [(tree(duration=5.0, EEB=eeb, hunger_gain=0.0), seed) for seed in range(8)]
        return np.concatenate([r.per_larva["num_feeds"] for r in simulate_many(jobs)])

    low, high = feeds(0.5), feeds(0.8)
    assert stats.mannwhitneyu(high, low, alternative="greater").pvalue < 0.01
    pooled = np.sqrt((low.var(ddof=1) + high.var(ddof=1)) / 2)
    assert (high.mean() - low.mean()) / pooled > 1.0


@pytest.mark.parametrize(("override", "message"), [
    ({"species": "fly"}, "energetics.DEB.species = 'fly' is not a phenotype; use default, rover, sitter"),
    ({"assimilation_mode": "deb"}, "energetics.DEB.assimilation_mode = 'deb' is not supported; supported: gut"),
    ({"hunger_gain": 2.0}, "energetics.DEB.hunger_gain = 2.0 must lie in [0, 1]"),
    ({"k_abs": 0.0}, "energetics.gut.k_abs = 0.0 must be > 0"),
    ({"DEB.dt": 1e-7}, "energetics.DEB.dt = 1e-07 d must be at least one simulation step (dt = 0.1 s)"),
    ({"T": 200.0}, "the egg does not hatch (at 25 °C it takes 0.72 d) at DEB dt = 0.000694"),
    ({"life_history.age": 72.0}, "life_history.age = 72.0 h is not supported: the engine starts DEB larvae at "
                                 "hatching (age 0)"),
    ({"substrate.type": "cornmeal"}, "food_grid.substrate.type = 'cornmeal' is not supported; supported: standard"),
])
def test_bad_energetics_are_refused_in_one_line(override, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        compile_sim(tree(**override), 0)


def test_cli_runs_the_growth_batch(tmp_path):
    """``larvastudy run growth`` with a short duration: 8 EEB points, the fit metric in par_df, its figures."""
    result = subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", "growth", "--set", "duration=0.5"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "8/8 simulations complete" in result.stdout
    par_df = (tmp_path / "storage" / "growth" / "par_df.csv").read_text().splitlines()
    header = par_df[0].split(",")
    assert len(par_df) == 9 and {"EEB", "hunger_gain", "deb_f_deviation", "deb_length", "fit"} <= set(header)
    assert {row.split(",")[header.index("fit")] for row in par_df[1:]} == {"1.0"}   # |f - 1| with 2.5.1's f = 0
    assert (tmp_path / "storage" / "growth" / "figures" / "deb_length_line.png").exists()


def test_two_minutes_match_larvaworlds_own_growth_run():
    """larvaworld 2.5.1's own ExpRun of ``growth`` (``reg.conf.Exp.expand("growth")``, 2 minutes, hunger_gain 1 as
    the rover and sitter models have it, seed 1), read from its agents after each step: the body is 0.5790535 mm
    long from the first step, the DEB steps after step 600 and 1200 (E 0.73527, then 0.73315 J in both larvae,
    whatever they ate, X = 0), the length then 0.5793355 mm, and the intermitter's EEB is the hunger: 0.67332916
    and 0.37332916 at the start, 0.68051092 and 0.38051092 after 2 minutes; deb_f_deviation -1."""
    result = simulate(tree(duration=2.0), 1).per_larva
    assert result["deb_length"] == pytest.approx([0.5793355039954006] * 2, rel=1e-12)
    assert result["hunger"] == pytest.approx([0.6805109218162907, 0.38051092181629065], rel=1e-12)
    assert result["deb_f_deviation"].tolist() == [-1.0, -1.0]
    start = compile_sim(tree(duration=2.0), 1).params
    assert start["eeb"] == pytest.approx([0.6733291621753684, 0.3733291621753684], rel=1e-12)
    assert start["length"] == pytest.approx([0.0005790535240773821] * 2, rel=1e-12)


def test_touch_sensors_on_a_growing_larva_are_refused():
    """The touch sensors' positions follow the body length at the start; a DEB changes it, so the two are not
    combined (one line naming the group)."""
    config = tree()
    brain = config["larva_groups"]["rover"]["model"]["brain"]
    brain["toucher"] = experiment_tree("tactile_detection")["larva_groups"]["toucher"]["model"]["brain"]["toucher"]
    compile_sim(config, 0)   # the toucher preset mounts no sensors: nothing moves with the body
    brain["toucher"]["touch_sensors"] = [0, 2]
    with pytest.raises(SpecError, match=r"larva_groups\.rover\.model\.toucher: touch sensors on a growing larva"):
        compile_sim(config, 0)
