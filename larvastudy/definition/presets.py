"""Model presets and experiments as declarative config trees (larvaworld 2.5.1, spec §6-§7).

Every number here is addressable by a dotted path (see :mod:`larvastudy.definition.paths`), e.g.
``larva_groups.navigator_x2.model.brain.olfactor.gain_dict.CS`` or
``env_params.odorscape.odor_layers[0].intensity``. The engine reads nothing else.

Layout deviation from larvaworld: an odor belongs to an *odor layer* (id, intensity, spread and the
names of the sources that emit it) instead of to each source. Every preset gives all sources of one
id the same odor, so nothing changes behaviourally, and the seed page's
``env_params.odorscape.odor_layers[0].intensity`` becomes a real path.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from larvastudy.engine import BASE_METRICS, BOUT_METRICS, FEED_METRICS, GROWTH_METRICS, LARVAWORLD
from larvastudy.errors import SpecError

Tree = dict[str, Any]

_BODY: Tree = {"length": 0.005, "Nsegs": 2, "radius": 0.003}

_PHYSICS: Tree = {
    "ang_mode": "torque",
    "torque_coef": 0.5,
    "ang_damping": 1.0,
    "body_spring_k": 1.0,
    "bend_correction_coef": 1.0,
    "lin_vel_coef": 1.0,
    "ang_vel_coef": 1.0,
}

_CRAWLER: Tree = {
    "mode": "realistic",
    "freq": 1.42,
    "stride_dst_mean": 0.23,
    "stride_dst_std": 0.04,
    "max_scaled_vel": 0.51,
    "max_vel_phase": 3.49,
}

_TURNER: Tree = {
    "mode": "neural",
    "base_activation": 20.0,
    "activation_range": [10.0, 40.0],
    "tau": 0.1,
    "w_ee": 3.0,
    "w_ce": 0.1,
    "w_ec": 4.0,
    "w_cc": 4.0,
    "m": 100.0,
    "n": 2.0,
}

_INTERFERENCE: Tree = {
    "mode": "phasic",
    "attenuation": 0.1,
    "attenuation_max": 0.6,
    "max_attenuation_phase": 3.4,
    "suppression_mode": "amplitude",
}

#: Default bout distributions (larvaworld ``default_bout_distros``, spec §3.6).
_STRIDECHAIN_DIST: Tree = {"name": "lognormal", "mu": 1.39115, "sigma": 1.14667, "range": [1.0, 142.0]}
_PAUSE_DIST: Tree = {"name": "exponential", "beta": 1.01503, "range": [0.12, 15.94]}


def _intermitter(eeb: float, feed_bouts: bool) -> Tree:
    return {
        "mode": "default",
        "run_mode": "stridechain",
        "EEB": eeb,
        # Declared by larvaworld but never read by its model (spec §3.6); kept so the food_grid
        # registry axis resolves, and equally inert here.
        "EEB_decay": 1.0,
        "feed_bouts": feed_bouts,
        "stridechain_dist": copy.deepcopy(_STRIDECHAIN_DIST),
        "pause_dist": copy.deepcopy(_PAUSE_DIST),
    }


def _olfactor(gains: dict[str, float]) -> Tree:
    # input_noise is declared by larvaworld's sensors but inert there (spec §4.2, §10.7) and here: kept so the
    # PItrain registry axis resolves.
    return {"gain_dict": dict(gains), "decay_coef": 0.1, "perception": "log", "input_noise": 0.0}


#: larvaworld's ``RLOlfMemory`` defaults (lib/model/modules/memory.py): Q-learning over the olfactory gains.
#: ``update_dt`` and ``train_dur`` are in minutes (larvaworld documents seconds but computes
#: ``Niters = int(update_dt * 60 / dt)`` and stops learning after ``train_dur * 60`` s).
_RL_MEMORY: Tree = {
    "mode": "RL",
    "modality": "olfaction",
    "update_dt": 1.0,
    "train_dur": 30.0,
    "Delta": 0.1,
    "alpha": 0.05,
    "gamma": 0.6,
    "epsilon": 0.15,
    "state_spacePerSide": 0,
    "state_specific_best": True,
    "gain_space": [-300.0, -50.0, 50.0, 300.0],
}


#: larvastudy's associative olfactory memory (engine/association.py; not larvaworld's): Rescorla-Wagner conditioning
#: of each odor's gain by food at ``alpha`` per second while learning is on (``train_dur`` minutes, as the RL
#: memory's), a fully conditioned odor expressed off food with ``gain`` (the top of the RL memory's gain space).
_ASSOCIATIVE_MEMORY: Tree = {
    "mode": "associative",
    "modality": "olfaction",
    "alpha": 0.05,
    "gain": 300.0,
    "train_dur": 30.0,
}


_FEEDER: Tree = {"freq": 2.0, "V_bite": 0.001}

#: larvaworld's ``Windsensor`` (lib/model/modules/sensor.py): gain 1, perception 'null', decay 0.1, and the weights
#: its NengoBrain reads (larvaworld gives them no defaults; 0 here). No larvaworld preset has one (docs/model.md,
#: "Anemotaxis").
_WINDSENSOR: Tree = {"gain_dict": {"windsensor": 1.0}, "decay_coef": 0.1, "perception": "null",
                     "weights": dict.fromkeys(("hunch_lin", "hunch_ang", "bend_lin", "bend_ang"), 0.0)}


def _energetics(species: str, k_abs: float) -> Tree:
    """larvaworld's ``energetics`` of the rover and sitter models (``module_modes.energetics_kws``): a DEB of the
    phenotype (``DEB``'s defaults: one-minute steps, 25 °C, hunger drives the EEB) and its gut (``Gut``'s defaults
    but ``k_abs``). docs/model.md, "Growth"."""
    return {
        "DEB": {"species": species, "assimilation_mode": "gut", "dt": 1 / (24 * 60), "T": 298.15,
                "hunger_as_EEB": True, "hunger_gain": 1.0},
        "gut": {"k_abs": k_abs, "k_dig": 1.0, "k_g": 1.0, "f_abs": 1.0, "f_dig": 1.0, "y_P_X": 0.9, "M_gm": 0.01,
                "M_c_per_cm2": 5e-8, "J_g_per_cm2": 1e-2 / (24 * 60 * 60), "r_w2l": 0.2, "r_gut_w": 0.7,
                "constant_M_c": True},
    }


def _toucher(sensors: list[int]) -> Tree:
    """larvaworld's ``Toucher`` defaults (lib/model/modules/sensor.py) with touch sensors on these vertices of the body
    contour (docs/model.md, "Tactile detection"); the ``toucher`` preset mounts none."""
    return {"mode": "default", "initial_gain": 40.0, "decay_coef": 0.1, "perception": "log",
            "touch_sensors": list(sensors), "brute_force": False}


def _model(olfactor: dict[str, float] | None, feeder: bool, eeb: float, memory: Tree | None = None,
           touch: list[int] | None = None, energetics: Tree | None = None) -> Tree:
    brain: Tree = {
        "crawler": copy.deepcopy(_CRAWLER),
        "turner": copy.deepcopy(_TURNER),
        "interference": copy.deepcopy(_INTERFERENCE),
        "intermitter": _intermitter(eeb, feed_bouts=feeder),
    }
    if olfactor is not None:
        brain["olfactor"] = _olfactor(olfactor)
    if feeder:
        brain["feeder"] = copy.deepcopy(_FEEDER)
    if memory:
        brain["memory"] = copy.deepcopy(memory)
    if touch is not None:
        brain["toucher"] = _toucher(touch)
    model = {"body": copy.deepcopy(_BODY), "physics": copy.deepcopy(_PHYSICS), "brain": brain}
    if energetics is not None:
        model["energetics"] = energetics
    return model


MODELS: dict[str, Tree] = {
    "explorer": _model(None, feeder=False, eeb=0.0),
    "navigator": _model({"Odor": 150.0}, feeder=False, eeb=0.0),
    "navigator_x2": _model({"CS": 150.0, "UCS": 0.0}, feeder=False, eeb=0.0),
    "feeder": _model(None, feeder=True, eeb=0.5),
    "forager": _model({"Odor": 150.0}, feeder=True, eeb=0.5),
    "forager_x2": _model({"CS": 150.0, "UCS": 0.0}, feeder=True, eeb=0.5),
    "max_forager": _model({"Odor": 150.0}, feeder=True, eeb=0.9),
    "max_feeder": _model(None, feeder=True, eeb=0.9),
    # larvaworld's forager_RL is the forager (its olfactor knows only "Odor") plus an RL olfactory memory.
    "forager_RL": _model({"Odor": 150.0}, feeder=True, eeb=0.5, memory=_RL_MEMORY),
    # ...and RLnavigator the navigator plus the memory (no feeder, so never rewarded: larvaworld detects food
    # only for larvae with a feeder or toucher).
    "RLnavigator": _model({"Odor": 150.0}, feeder=False, eeb=0.0, memory=_RL_MEMORY),
    # larvastudy's: the forager whose odor gains are conditioned by food (Rescorla-Wagner), naive at first.
    "forager_RW": _model({}, feeder=True, eeb=0.5, memory=_ASSOCIATIVE_MEMORY),
    # The explorer plus a tactile sensor: larvaworld's toucher mounts no touch sensors (so its toucher never senses),
    # toucher_2 two, at the head tip and beside the tail (contour vertices 0 and 2).
    "toucher": _model(None, feeder=False, eeb=0.0, touch=[]),
    "toucher_2": _model(None, feeder=False, eeb=0.0, touch=[0, 2]),
    # larvaworld's rover and sitter: the feeder with DEB energetics and a gut, differing in the DEB's digestion
    # efficiency kap_X, the gut's absorption rate k_abs and the EEB.
    "rover": _model(None, feeder=True, eeb=0.67, energetics=_energetics("rover", 0.8)),
    "sitter": _model(None, feeder=True, eeb=0.37, energetics=_energetics("sitter", 0.4)),
}

#: larvaworld presets whose modules this engine does not implement, with what they need.
UNSUPPORTED_MODELS: dict[str, str] = {
    "Levy": "constant crawler, sinusoidal turner and exec-mode intermitter",
}


def _group(model: str, n: int, loc: tuple[float, float], scale: tuple[float, float],
           orientation: tuple[float, float], modules: Tree | None = None, mode: str = "uniform") -> Tree:
    """A larva group of ``model``, whose brain gains ``modules`` (name: config) when the experiment is expanded."""
    return {
        "model": model,
        **({"modules": copy.deepcopy(modules)} if modules else {}),
        "distribution": {
            "N": n,
            "mode": mode,
            "shape": "circle",
            "loc": [float(v) for v in loc],
            "scale": [float(v) for v in scale],
            "orientation_range": [float(v) for v in orientation],
        },
    }


def _source(x: float, y: float, amount: float = 0.0) -> Tree:
    return {"pos": [x, y], "radius": 0.003, "amount": amount}


def _layer(odor_id: str, c: float, sources: list[str]) -> Tree:
    """Gaussian odor layer of larvaworld's ``Odor.oG(c, id)``: intensity 2c, spread (variance) 0.01·√c."""
    return {"id": odor_id, "intensity": 2.0 * c, "spread": 0.01 * math.sqrt(c), "sources": sources}


def _env(geometry: str, dims: tuple[float, float], sources: Tree, layers: list[Tree],
         food_grid: Tree | None = None, windscape: Tree | None = None) -> Tree:
    return {
        "arena": {"geometry": geometry, "dims": list(dims)},
        "food_params": {"source_units": sources, "food_grid": food_grid},
        "odorscape": {"odorscape": "Gaussian", "odor_layers": layers},
        **({"windscape": windscape} if windscape else {}),
    }


_PATCHES = {f"SourceGroup_{k}": _source(0.07 * math.cos(math.radians(45 * k)),
                                        0.07 * math.sin(math.radians(45 * k)), amount=0.001)
            for k in range(8)}


def _experiment(duration: float, env: Tree, groups: Tree, metrics: list[str]) -> Tree:
    """An experiment of ``duration`` minutes at larvaworld's dt = 0.1 s."""
    return {"dt": 0.1, "duration": duration, "env_params": env, "larva_groups": groups, "metrics": metrics}


EXPERIMENTS: dict[str, Tree] = {
    "PItest_off": _experiment(
        5.0, _env("circular", (0.1, 0.1), {"CS": _source(-0.04, 0.0), "UCS": _source(0.04, 0.0)},
                  [_layer("CS", 1.0, ["CS"]), _layer("UCS", 1.0, ["UCS"])]),
        {"navigator_x2": _group("navigator_x2", 30, (0, 0), (0.005, 0.02), (0, 360))},
        ["PI", "PI2", *BASE_METRICS]),
    "chemotaxis": _experiment(
        5.0, _env("rectangular", (0.1, 0.06), {"Source": _source(0.04, 0.0)}, [_layer("Odor", 2.0, ["Source"])]),
        {"navigator": _group("navigator", 8, (-0.04, 0), (0.005, 0.02), (-30, 30))},
        ["final_dst_to_Source", "mean_dst_to_Source", *BASE_METRICS]),
    "chemorbit": _experiment(
        5.0, _env("rectangular", (0.1, 0.06), {"Source": _source(0.0, 0.0)}, [_layer("Odor", 1.0, ["Source"])]),
        {"navigator": _group("navigator", 3, (0, 0), (0, 0), (0, 360))},
        ["final_dst_to_Source", "mean_dst_to_Source", *BASE_METRICS]),
    "dish": _experiment(
        5.0, _env("circular", (0.1, 0.1), {}, []),
        {"explorer": _group("explorer", 30, (0, 0), (0.02, 0.02), (0, 360))},
        [*BASE_METRICS, *BOUT_METRICS]),
    "patchy_food": _experiment(
        10.0, _env("rectangular", (0.2, 0.2), copy.deepcopy(_PATCHES), [_layer("Odor", 2.0, list(_PATCHES))]),
        {"forager": _group("forager", 30, (0, 0), (0, 0), (0, 360))},
        ["amount_eaten", "on_food_dur_ratio", *BASE_METRICS, *BOUT_METRICS, *FEED_METRICS]),
    "food_grid": _experiment(
        10.0, _env("rectangular", (0.02, 0.02), {}, [], food_grid={"grid_dims": [51, 51], "initial_value": 1e-6}),
        {"feeder": _group("feeder", 5, (0, 0), (0, 0), (0, 360))},
        ["amount_eaten", "on_food_dur_ratio", *BASE_METRICS, *BOUT_METRICS, *FEED_METRICS]),
    # larvaworld's single_patch arena (one odorless patch, 0.1 amount, radius 0.01 m) and 30 touchers evenly spaced on
    # a circle of radius 0.03 m, outside the 0.05 m square where the arena's corners are not (docs/model.md).
    "tactile_detection": _experiment(
        600.0, _env("rectangular", (0.05, 0.05), {"Patch": {"pos": [0.0, 0.0], "radius": 0.01, "amount": 0.1}}, []),
        {"toucher": _group("toucher", 30, (0, 0), (0.03, 0.03), (0, 360), mode="periphery")},
        ["cum_food_detected", "on_food_dur_ratio", *BASE_METRICS]),
}


def _preference_training(epoch_minutes: float, duration: float) -> Tree:
    """PItrain / PItrain_mini: larvaworld's ``CS_UCS_on_food_x2`` arena (a CS and a UCS source on each side, all
    emitting at first, over a 51 x 51 food grid), forager_RL larvae, and the ``odor_preference`` trials: 8 epochs
    of ``epoch_minutes`` whose substrate quality alternates 1.0 / 0.0, driven by larvaworld's
    ``PrefTrainCondition`` (docs/model.md, "Odor learning")."""
    bounds = [k * epoch_minutes for k in range(9)]
    return {
        "dt": 0.1,
        "duration": duration,
        "env_params": _env("circular", (0.1, 0.1),
                           {"CS_l": _source(-0.04, 0.0), "CS_r": _source(0.04, 0.0),
                            "UCS_l": _source(-0.04, 0.0), "UCS_r": _source(0.04, 0.0)},
                           [_layer("CS", 1.0, ["CS_l", "CS_r"]), _layer("UCS", 1.0, ["UCS_l", "UCS_r"])],
                           food_grid={"grid_dims": [51, 51], "initial_value": 1e-6}),
        "larva_groups": {"forager_RL": _group("forager_RL", 30, (0, 0), (0.005, 0.02), (0, 360))},
        "trials": {
            "condition": "preference_training",
            "epochs": [{"age_range": [t0, t1], "substrate": {"quality": q}}
                       for t0, t1, q in zip(bounds[:-1], bounds[1:], [1.0, 0.0] * 4, strict=True)],
        },
        "metrics": ["PI", "g_odor1", "g_odor2", "amount_eaten", "on_food_dur_ratio", *BASE_METRICS],
    }


def _growth() -> Tree:
    """growth: larvaworld's ``dE("growth", dur=24 * 60.0, age=0.0)``, its ``GTRvsS`` rover and sitter groups (one larva
    each, hatched at the start) on the ``food_grid`` arena, whose substrate is the standard medium at quality 1
    (docs/model.md, "Growth")."""
    env = _env("rectangular", (0.02, 0.02), {}, [], food_grid={"grid_dims": [51, 51], "initial_value": 1e-6,
                                                               "substrate": {"type": "standard", "quality": 1.0}})
    groups = {gid: {**_group(gid, 1, (0, 0), (0.005, 0.005), (0, 360)), "life_history": {"age": 0.0}}
              for gid in ("rover", "sitter")}
    return _experiment(24 * 60.0, env, groups, [*GROWTH_METRICS, "amount_eaten", "on_food_dur_ratio", *BASE_METRICS,
                                                *FEED_METRICS])


EXPERIMENTS["growth"] = _growth()
EXPERIMENTS["PItrain_mini"] = _preference_training(0.125, 1.0)
EXPERIMENTS["PItrain"] = _preference_training(5.0, 41.0)
# larvaworld's windy_arena (a 0.3 m square, a wind of speed 10 towards pi) with 4 explorers at the centre. larvaworld's
# explorer has no windsensor, so its larvae never feel the wind; here they carry one, which the default fidelity
# ignores (deviation 16) and "corrected" runs, so the registry's windsensor.weights axes resolve.
EXPERIMENTS["anemotaxis"] = _experiment(
    0.5, _env("rectangular", (0.3, 0.3), {}, [], windscape={"wind_direction": math.pi, "wind_speed": 10.0}),
    {"explorer": _group("explorer", 4, (0, 0), (0, 0), (0, 360), modules={"windsensor": _WINDSENSOR})},
    ["anemotaxis", "v_mu", "sv_mu", "cum_dst", "exec_fraction", *BOUT_METRICS])

#: Other larvaworld experiments, with the model parts they need that this engine lacks.
UNSUPPORTED_EXPERIMENTS: dict[str, str] = {
    "PItest_on": "PItest_off's arena plus a food grid under forager_x2 (not calibrated here yet)",
    "PItest_off_OSN": "an external Brian2 olfactory-sensory-neuron server",
    "dispersion": "Levy-walk modules (constant crawler, sinusoidal turner)",
    "focus": "Levy-walk modules (constant crawler, sinusoidal turner)",
    "maze": "arena borders and collisions (Box2D)",
    "thermotaxis": "the thermo sensor",
    "uniform_food": "a calibrated uniform food layer",
    "patch_grid": "nearest-source lookup for more than 10 sources",
    "catch_me": "larva-larva interaction and termination conditions",
}


def _check_known(kind: str, name: str, known: Mapping[str, Tree], unsupported: Mapping[str, str]) -> None:
    """A SpecError unless ``name`` is in ``known``, naming what the engine lacks for a larvaworld one it refuses."""
    if name in known:
        return
    if name in unsupported:
        raise SpecError(f"{kind} {name!r} needs {unsupported[name]}, which the engine lacks; "
                        f"supported: {', '.join(known)}")
    raise SpecError(f"unknown {kind} {name!r}; supported: {', '.join(known)}")


def experiment_tree(name: str) -> Tree:
    """A fresh config tree for experiment ``name``, with every group's model expanded."""
    _check_known("experiment", name, EXPERIMENTS, UNSUPPORTED_EXPERIMENTS)
    tree = copy.deepcopy(EXPERIMENTS[name])
    tree["experiment"] = name
    # Which model runs: larvaworld 2.5.1's as it is (the default), or "corrected" (docs/model.md's deviations).
    tree["fidelity"] = LARVAWORLD
    for gid, group in tree["larva_groups"].items():
        group["model"] = group_model(name, gid, group["model"])
        group.pop("modules", None)
    return tree


def group_model(experiment: str, group: str, name: str) -> Tree:
    """Model preset ``name`` for larva group ``group`` of ``experiment``, with the brain modules the experiment gives
    that group's larvae whatever their model (anemotaxis' windsensor)."""
    model = model_tree(name)
    declared = EXPERIMENTS.get(experiment, {}).get("larva_groups", {}).get(group, {})
    model["brain"].update(copy.deepcopy(declared.get("modules", {})))
    return model


def model_tree(name: str) -> Tree:
    """A fresh config tree for model preset ``name`` (its ``name`` key records the preset)."""
    _check_known("model", name, MODELS, UNSUPPORTED_MODELS)
    return {"name": name, **copy.deepcopy(MODELS[name])}
