"""Odor learning (issue 14, part 1): larvaworld 2.5.1's RL olfactory memory, the PItrain trials, and what the
PItrain experiments measure. docs/model.md, "Odor learning", describes the model and its deviations 12-14."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from larvastudy.definition.paths import apply_overrides
from larvastudy.definition.presets import experiment_tree
from larvastudy.engine import simulate, simulate_many
from larvastudy.engine.association import Associations, AssociationSetup
from larvastudy.engine.loop import BatchRun, _Memories
from larvastudy.engine.setup import CORRECTED, LARVAWORLD, PEAK_INTENSITY, compile_sim
from larvastudy.errors import SpecError


def tree(experiment: str, fidelity: str = LARVAWORLD, **overrides) -> dict:
    return apply_overrides(experiment_tree(experiment), {"fidelity": fidelity, **overrides})


def upstream_reward_sum(rewards: list[bool]) -> float:
    """``Memory.step``'s ``self.rewardSum += int(reward) - 0.01``, step by step."""
    total = 0
    for reward in rewards:
        total += int(reward) - 0.01
    return total


def test_memory_update_rule_worked_from_larvaworlds_source():
    """RLmemory.update_gain / update_ext_gain / update_q_table with alpha 0.05, gamma 0.6, epsilon 0.15,
    Niters = int(update_dt * 60 / dt) = 600, one state (state_spacePerSide = 0), actions = product(gain_space, CS, UCS):

    step 1 (on food, u = 0.5: exploit): rewardSum 0.99, Q[0] = 0.05 * 0.99 = 0.0495, greedy action 0 = (-300, -300);
    steps 2-601 (300 on food, 300 off): rewardSum = 300 * 0.99 - 300 * 0.01 = 294,
      Q[0] = 0.95 * 0.0495 + 0.05 * (294 + 0.6 * 0.0495) = 14.74851, action 0 again;
    step 1201 (u = 0.1 < epsilon: explore): random action 7 = (-50, 300), no table update, rewardSum discarded;
    steps 1202-1801 (off food): rewardSum = -6, Q[7] = 0.05 * (-6 + 0.6 * 14.74851) = 0.1424553, greedy action 0."""
    setup = compile_sim(tree("PItrain_mini", CORRECTED, Npoints=1), 0)
    memory = _Memories([setup], [1], setup.dt)
    assert memory.niters.tolist() == [600] and memory.actions.shape == (1, 16, 2)
    assert memory.actions[0, 7].tolist() == [-50.0, 300.0] and memory.actions[0, 0].tolist() == [-300.0, -300.0]
    memory.explore, memory.random_action, memory.width = np.array([[0.5, 0.5, 0.1, 0.5]]), np.array([[0, 0, 7, 0]]), 4
    memory.learn_last[:] = 18_000   # train_dur 30 min, not the mini run's 600 steps
    rewards = {1: True, **{k: k <= 301 for k in range(2, 602)}, **dict.fromkeys(range(602, 1802), False)}
    chosen = {}
    for k in range(1, 1802):
        rows, actions = memory.step(k, np.array([rewards[k]]))
        if rows.size:
            chosen[k] = int(actions[0])
    assert chosen == {1: 0, 601: 0, 1201: 7, 1801: 0}
    q0 = 0.95 * 0.05 * upstream_reward_sum([True]) + 0.05 * (upstream_reward_sum([rewards[k] for k in range(2, 602)])
                                                             + 0.6 * (0.05 * upstream_reward_sum([True])))
    q0_exact = (1 - 0.05) * (0.05 * (upstream_reward_sum([True]) + 0.6 * 0.0)) + 0.05 * (
        upstream_reward_sum([rewards[k] for k in range(2, 602)]) + 0.6 * (0.05 * (upstream_reward_sum([True]) + 0.0)))
    q7_exact = (1 - 0.05) * 0.0 + 0.05 * (upstream_reward_sum([False] * 600) + 0.6 * q0_exact)
    assert memory.q[0, 0] == q0_exact and memory.q[0, 7] == q7_exact   # larvaworld's float operations, in its order
    assert memory.q[0, 0] == pytest.approx(14.74851, abs=1e-6) and q0 == pytest.approx(q0_exact, rel=1e-15)
    assert memory.q[0, 7] == pytest.approx(0.1424553, abs=1e-6)
    assert np.count_nonzero(memory.q) == 2


def test_after_train_dur_the_memory_is_greedy_every_step_and_still_updates_its_table():
    """larvaworld's learning_on is total_t <= train_dur * 60; after it update_ext_gain(randomize=False) runs every step:
    update_q_table with the reward summed since the last learning update (no longer reset), then the greedy action."""
    setup = compile_sim(tree("PItrain_mini", CORRECTED, Npoints=1, train_dur=0.1), 0)   # 6 s: steps 1-60 learn
    memory = _Memories([setup], [1], setup.dt)
    assert memory.learn_last.tolist() == [60]
    memory.explore[:] = 0.9   # never explore
    for k in range(1, 61):
        assert memory.step(k, np.array([True]))[0].size == (1 if k == 1 else 0)
    q = memory.q[0, 0]
    reward_sum = memory.reward_sum[0]   # 59 steps on food since step 1
    rows, actions = memory.step(61, np.array([True]))
    assert rows.tolist() == [0] and actions.tolist() == [0]
    assert memory.q[0, 0] == 0.95 * q + 0.05 * ((reward_sum + 0.99) + 0.6 * q)
    assert memory.reward_sum[0] == reward_sum + 0.99   # not reset after training


@pytest.mark.parametrize("fidelity, steps", [(LARVAWORLD, [75, 150, 225, 300, 375, 450, 525]),
                                             (CORRECTED, [0, 75, 150, 225, 300, 375, 450, 525])])
def test_trials_switch_substrate_and_odors_every_epoch(fidelity, steps):
    """PrefTrainCondition.check: at an epoch's start (int(t0 * 60 / dt) steps) quality 0 empties the food grid and
    starts a UCS trial (CS off, UCS at 2.0), quality 1 refills it and starts a CS trial; the 4th of a kind is a test.
    2.5.1 checks after the step counter advanced, so the epoch at 0 never starts (deviation 13): its test trial then
    has all four sources on, symmetric; corrected, the 4th CS trial keeps only CS left and UCS right."""
    setup = compile_sim(tree("PItrain_mini", fidelity), 0)
    assert setup.nsteps == 600 and compile_sim(tree("PItrain", fidelity), 0).nsteps == 24_000   # ends with its epochs
    assert [e.step for e in setup.events] == steps
    c = PEAK_INTENSITY   # sources CS_l, CS_r, UCS_l, UCS_r
    cs_trial, ucs_trial = (c, c, 0.0, 0.0), (0.0, 0.0, c, c)
    if fidelity == LARVAWORLD:
        expected = [ucs_trial, cs_trial, ucs_trial, cs_trial, ucs_trial, cs_trial, (c, c, c, c)]
    else:
        expected = [cs_trial, ucs_trial, cs_trial, ucs_trial, cs_trial, ucs_trial, (c, 0.0, 0.0, c), (c, 0.0, 0.0, c)]
    assert [e.intensities for e in setup.events] == expected
    assert [e.grid for e in setup.events] == ["reset" if s // 75 % 2 == 0 else "empty" for s in steps]
    assert all(e.reset_pose for e in setup.events)


@pytest.mark.parametrize("fidelity", [LARVAWORLD, CORRECTED])
def test_an_emptied_grid_rewards_nothing_and_a_new_trial_resets_the_larvae(fidelity):
    """Stopped one step into the first UCS trial (grid emptied after 75 steps): no larva was on food at step 76.
    Corrected, the trial restarts every larva at its start pose; 2.5.1 only zeroes its angular velocity
    (deviation 14)."""
    setup = compile_sim(tree("PItrain_mini", fidelity, duration=76 / 600), 1)
    run = BatchRun([setup])
    result = run.run()[0]
    assert (result["on_food_dur_ratio"] * 76 <= 75 + 1e-9).all() and result["on_food_dur_ratio"].mean() * 76 > 70
    moved = np.abs(run.pos - run.start_pos) * 1000   # mm from the start, one step into the new trial
    assert moved.max() < 0.5 if fidelity == CORRECTED else moved.min() > 0.5


def test_larvaworlds_memory_adapts_only_the_gain_its_olfactor_declares():
    """forager_RL's olfactor declares only 'Odor'; larvaworld's memory builds its actions for that gain, and the CS and
    UCS it meets get gain 0 and are never learned (deviation 12; upstream the second update then raises IndexError).
    So in 2.5.1 the memory cannot change behaviour in PItrain: no learning (alpha 0) gives the same run to the bit."""
    learned = simulate(tree("PItrain_mini", LARVAWORLD, train_dur=0.5, update_dt=0.05), 3)
    unlearned = simulate(tree("PItrain_mini", LARVAWORLD, train_dur=0.5, update_dt=0.05, alpha=0.0), 3)
    assert np.isnan(learned.per_larva["g_odor2"]).all() and learned.value("g_odor1") != unlearned.value("g_odor1")
    for name in ("PI", "v_mu", "amount_eaten", "cum_dst"):
        np.testing.assert_array_equal(learned.per_larva[name], unlearned.per_larva[name])
    corrected = simulate(tree("PItrain_mini", CORRECTED, train_dur=0.5, update_dt=0.05), 3)
    assert np.isfinite(corrected.per_larva["g_odor2"]).all()


def _scaled_pitrain(**overrides) -> dict:
    """PItrain at a fifth of its timescale: 1-minute epochs, gain updates every 12 s, learning for the 6 training
    minutes; corrected (in 2.5.1 the memory cannot act, see above)."""
    config = tree("PItrain", CORRECTED, duration=8.0, update_dt=0.2, train_dur=6.0, **overrides)
    for i, epoch in enumerate(config["trials"]["epochs"]):
        epoch["age_range"] = [float(i), float(i + 1)]
    return config


@pytest.fixture(scope="module")
def learning_runs():
    seeds = range(20)
    return {name: np.array([r.value("PI") for r in simulate_many([(_scaled_pitrain(**ov), s) for s in seeds])])
            for name, ov in {"trained": {}, "untrained": {"alpha": 0.0}, "no reward": {"initial_value": 0.0}}.items()}


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = (a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float(d), float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_odor_learning_does_not_associate_the_cs_with_food(learning_runs):
    """What PItrain measures with larvaworld's memory: not the CS-food association. The Q-table has one state, so the
    same gains are chosen whichever odor is on; the reward (food under the larva) follows the epoch, not the chosen
    gains. Measured (20 seeds x 30 larvae, PI mean ± s.e.):

    * this scaled protocol: trained -0.003 ± 0.037, untrained (alpha 0) -0.057 ± 0.036 (d = +0.33, p = 0.31),
      reward removed (empty grid) -0.005 ± 0.042 (trained - no reward: d = +0.01, p = 0.98);
    * PItrain itself (40 min), corrected: trained +0.090 ± 0.036, untrained -0.082 ± 0.030 (d = +1.15, p = 0.001),
      but reward removed +0.177 ± 0.030: learning moves the gains off the untrained greedy (-300, -300), with or
      without food; PItrain_mini makes one choice at step 1 only (trained = untrained to the bit);
    * larvaworld-2.5.1: trained = untrained to the bit (the memory adapts 'Odor' only, deviation 12)."""
    trained, untrained, no_reward = (learning_runs[k] for k in ("trained", "untrained", "no reward"))
    assert _welch(trained, untrained)[1] > 0.05 and _welch(trained, no_reward)[1] > 0.05
    assert abs(trained.mean()) < 0.1


# -- odor conditioning: larvastudy's associative memory (engine/association.py) ------------------------------


def test_rescorla_wagner_rule_and_its_expression_worked_by_hand():
    """alpha 0.05/s at dt 0.1 s is 0.005 per step; gain 300 1/s; learning for 6 steps. Odors (CS, UCS):

    * steps 1-2, CS alone on food: V_CS = 0.005, then 0.005 + 0.005 (1 - 0.005) = 0.009975, expressed on food as
      300 max(V_CS - 1, 0) = 0;
    * step 3, CS and UCS on food: error 1 - 0.009975 = 0.990025, both gain 0.005 x 0.990025 = 0.004950125
      (V_CS 0.014925125, V_UCS 0.004950125);
    * step 4, both off food: error -0.01987525, both lose 0.00009937625, and are expressed as 300 V;
    * step 5, UCS alone off food: V_UCS loses 0.005 V_UCS; step 6, no odor: nothing changes;
    * step 7, CS on food after learning ended: nothing changes."""
    memory = Associations([AssociationSetup(rows=np.array([0]), rate=np.array([0.005]), gain=np.array([300.0]),
                                            learn_last=np.array([6]))], [0], 2)
    cs, both, ucs, none = [True, False], [True, True], [False, True], [False, False]

    def step(k: int, present: list[bool], food: bool) -> list[float]:
        gains: list[float] = memory.step(k, np.array(present)[:, None], np.array([food]))[:, 0].tolist()
        return gains

    assert step(1, cs, True) == [0.0, 0.0] and memory.strength[:, 0].tolist() == [0.005, 0.0]
    assert step(2, cs, True) == [0.0, 0.0] and memory.strength[:, 0] == pytest.approx([0.009975, 0.0], rel=1e-12)
    step(3, both, True)
    assert memory.strength[:, 0] == pytest.approx([0.014925125, 0.004950125], rel=1e-12)
    gains = step(4, both, False)
    learned = [0.014925125 - 0.00009937625, 0.004950125 - 0.00009937625]
    assert memory.strength[:, 0] == pytest.approx(learned, rel=1e-12)
    assert gains == pytest.approx([300 * v for v in learned], rel=1e-12)
    step(5, ucs, False)
    assert memory.strength[:, 0] == pytest.approx([learned[0], learned[1] * 0.995], rel=1e-12)
    frozen = memory.strength.copy()
    step(6, none, True)
    step(7, cs, True)
    assert (memory.strength == frozen).all()
    by_larva = memory.learned_gains(2)
    assert by_larva["g_odor1"][0] == 300 * frozen[0, 0] and np.isnan(by_larva["g_odor1"][1])


def _conditioning(experiment: str, **overrides) -> dict:
    """The conditioning Batches' larvae and trials (larvastudy/studies/conditioning*.toml)."""
    return tree(experiment, CORRECTED, model="forager_RW", **overrides)


@pytest.fixture(scope="module", params=["PItrain_mini", pytest.param("PItrain", marks=pytest.mark.slow)])
def conditioning_runs(request):
    if request.param == "PItrain" and "slow" not in request.config.getoption("markexpr"):
        pytest.skip("PItrain itself (about 10 s a condition): run with -m slow")
    seeds = range(40 if request.param == "PItrain_mini" else 20)
    conditions = {"trained": {}, "untrained": {"alpha": 0.0}, "no reward": {"initial_value": 0.0},
                  "untrained, no reward": {"alpha": 0.0, "initial_value": 0.0}}
    return {name: simulate_many([(_conditioning(request.param, **ov), s) for s in seeds])
            for name, ov in conditions.items()}


def test_conditioning_with_the_cs_paired_with_food_makes_the_pi_positive(conditioning_runs):
    """The experiment's purpose (issue 14), with larvastudy's associative memory and the corrected trials. Measured
    (PI mean ± s.e., 30 larvae per simulation; Welch's t-test against the untrained larvae):

    * PItrain_mini, 40 seeds: trained +0.068 ± 0.008, untrained +0.002 ± 0.008 (d = 1.3, p < 1e-6), reward removed
      -0.008 ± 0.011; the conditioned CS gain (g_odor1) is 154 1/s after 22.5 s of CS with food;
    * PItrain, 20 seeds (-m slow): trained +0.872 ± 0.012, untrained -0.007 ± 0.036 (d = 7.4, p < 1e-20), reward
      removed +0.067 ± 0.042; g_odor1 178 1/s (V_CS settles near the share of CS time on food).

    With the reward removed V stays 0, so the larvae are untrained larvae on an empty grid to the bit."""
    pi = {name: np.array([r.value("PI") for r in runs]) for name, runs in conditioning_runs.items()}
    d, p = _welch(pi["trained"], pi["untrained"])
    assert pi["trained"].mean() > 0 and d > 0.8 and p < 0.001
    assert _welch(pi["no reward"], pi["untrained"])[1] > 0.01
    assert stats.ttest_1samp(pi["no reward"], 0.0).pvalue > 0.01
    for removed, untrained in zip(conditioning_runs["no reward"], conditioning_runs["untrained, no reward"],
                                  strict=True):
        for name, values in untrained.per_larva.items():
            np.testing.assert_array_equal(removed.per_larva[name], values, err_msg=name)
    assert all(r.value("g_odor1") > 100 and (r.per_larva["g_odor1"] > 0).all() for r in conditioning_runs["trained"])


def test_in_larvaworlds_trials_conditioning_cannot_show():
    """2.5.1's trials skip the first epoch, so the final test has the CS and the UCS on both sides (deviation 13):
    the conditioned larvae learn (g_odor1 > 0) but have no side to prefer (20 seeds: PI +0.010 ± 0.029, as
    untrained)."""
    runs = simulate_many([(tree("PItrain_mini", LARVAWORLD, model="forager_RW"), s) for s in range(20)])
    pis = np.array([r.value("PI") for r in runs])
    assert all((r.per_larva["g_odor1"] > 100).all() for r in runs)
    assert stats.ttest_1samp(pis, 0.0).pvalue > 0.01


def test_conditioned_larvae_give_the_same_results_alone_and_batched():
    jobs = [(_conditioning("PItrain_mini", alpha=alpha, Npoints=n, train_dur=0.5), seed)
            for alpha, n, seed in [(0.05, 30, 0), (0.0, 7, 1), (0.5, 12, 2), (0.05, 1, 3)]]
    for job, together in zip(jobs, simulate_many(jobs), strict=True):
        alone = simulate(*job)
        for name, values in alone.per_larva.items():
            np.testing.assert_array_equal(together.per_larva[name], values, err_msg=name)


def test_the_associative_memory_checks_its_parameters():
    with pytest.raises(SpecError, match=re.escape("memory.alpha = -0.1 must lie in [0, 1/dt = 10]")):
        compile_sim(_conditioning("PItrain_mini", alpha=-0.1), 0)
    with pytest.raises(SpecError, match=r"memory\.mode = 'MB' is not supported by the engine; supported: RL, "
                                        r"associative"):
        compile_sim(_conditioning("PItrain_mini", **{"memory.mode": "MB"}), 0)


def test_memory_parameters_the_engine_does_not_run_are_refused():
    with pytest.raises(SpecError, match="state_spacePerSide = 2 is not supported"):
        compile_sim(tree("PItrain_mini", state_spacePerSide=2), 0)
    with pytest.raises(SpecError, match=re.escape("epsilon = 1.5 must lie in")):
        compile_sim(tree("PItrain_mini", epsilon=1.5), 0)
    with pytest.raises(SpecError, match=r"needs a food grid|arena needs one"):
        config = tree("PItrain_mini")
        config["env_params"]["food_params"]["food_grid"] = None
        compile_sim(config, 0)
