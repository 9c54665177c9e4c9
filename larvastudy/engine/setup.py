"""Compile one (config tree, seed) pair into flat per-larva arrays and its random draws.

Everything random about a simulation is drawn here, from streams spawned off
``SeedSequence(seed)`` in a fixed order and sized by the simulation's own config, so a simulation is
a pure function of (config, seed) whether it runs alone or inside a batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from larvastudy.engine import deb
from larvastudy.engine.arrays import Bools, Complexes, Floats, Ints
from larvastudy.engine.association import MODE as ASSOCIATIVE
from larvastudy.engine.association import (
    AssociationGroup,
    AssociationSetup,
    association_group,
    association_setup,
    last_learning_step,
)
from larvastudy.engine.bouts import discrete_pmf
from larvastudy.engine.metrics import resolve_metrics
from larvastudy.engine.touch import TouchSetup, compile_touch
from larvastudy.engine.turner import PARAM_NAMES as TURNER_PARAMS
from larvastudy.engine.turner import WARMUP_FLIPS, NeuralParams, warmup_trajectory
from larvastudy.engine.wind import WIND_BUGS, WindSetup, compile_wind
from larvastudy.errors import SpecError
from larvastudy.machine import gigabytes, physical_memory

TWO_PI = 2.0 * math.pi
FEED_CHUNK = 500  # steps of feeding-decision uniforms drawn at a time per simulation
#: Memory of one larva's state in the loop (about 60 float arrays, rounded up), beside its bout tables.
BYTES_PER_LARVA = 1_000
#: Share of this machine's memory one simulation may need (its batch-mates and other workers need the rest).
MEMORY_SHARE = 0.5
#: The model of larvaworld 2.5.1 as it runs, bugs included (docs/model.md's deviations, UPSTREAM_BUGS): the default.
LARVAWORLD = "larvaworld-2.5.1"
#: The model with 2.5.1's bugs fixed as docs/model.md's deviations say.
CORRECTED = "corrected"
FIDELITIES = (LARVAWORLD, CORRECTED)
#: The bugs of larvaworld 2.5.1 the engine reproduces, by the deviation of docs/model.md that fixes each.
UPSTREAM_BUGS = {
    "shared_phase": 1,          # one initial crawler/feeder phase for all larvae
    "unclipped_olfactor": 2,    # olfactor output (and so turner input) outside [-1, 1]
    "long_bouts": 3,            # runs of Nexp + 1 strides, pauses of k + 1 ticks
    "arena_polygon": 4,         # a circular arena is its 60-gon
    "food_detection": 5,        # a random source within reach; at the body position while > 10 sources are left
    "memory_gain_ids": 12,      # the RL memory adapts the gains its olfactor declares, not the arena's odors
    "first_epoch_skipped": 13,  # the trial that starts at tick 0 never starts
    "pose_not_reset": 14,       # a new trial zeroes the angular velocity but leaves the larva where it is
    # Not a bug: larvaworld's crawler is active when built, so larvae move in their first step; the corrected
    # model keeps the start of larvastudy before fidelity existed (still in step 1).
    "crawl_from_first_step": 15,
    **WIND_BUGS,                # 16-18: the wind (engine/wind.py)
    "deb_empty_substrate": 25,  # the DEB digests its default substrate, which has no food: its gut absorbs nothing
}
#: The odor intensity larvaworld's ``PrefTrainCondition`` switches sources on to (``peak_intensity``).
PEAK_INTENSITY = 2.0
#: Trial conditions the engine runs (larvaworld picks the condition by experiment name; here it is named).
CONDITIONS = ("preference_training",)
#: The bugs each fidelity reproduces.
BUGS = {LARVAWORLD: frozenset(UPSTREAM_BUGS), CORRECTED: frozenset()}

#: Per-larva float parameters, in the order the loop reads them.
AGENT_PARAMS = (
    "length", "radius", "torque_coef", "ang_damping", "body_spring_k", "bend_correction_coef",
    "lin_vel_coef", "ang_vel_coef", "crawler_freq", "crawler_amp", "crawler_phase_peak",
    "att_base", "att_max", "att_phase", "att_on_output", "att_on_input",
    "decay_coef", "feeder_freq", "bite", "eeb", "feed_bouts", "has_feeder", "has_olfactor",
    "velocity_mode",
)

SUPPORTED = {
    "crawler.mode": ("realistic",),
    "turner.mode": ("neural",),
    "interference.mode": ("phasic", "default"),
    "interference.suppression_mode": ("amplitude", "oscillation", "both"),
    "intermitter.mode": ("default",),
    "intermitter.run_mode": ("stridechain",),
    "olfactor.perception": ("log",),
    "physics.ang_mode": ("torque", "velocity"),
    "arena.geometry": ("circular", "rectangular"),
    "odorscape.odorscape": ("Gaussian",),
    "distribution.mode": ("uniform", "periphery"),
    "distribution.shape": ("circle",),
    "memory.mode": ("RL", ASSOCIATIVE),
    "memory.modality": ("olfaction",),
    "memory.state_spacePerSide": (0,),
}


def _check_supported(where: str, key: str, value: object) -> None:
    allowed = SUPPORTED[key]
    if value not in allowed:
        raise SpecError(f"{where}{key} = {value!r} is not supported by the engine; "
                        f"supported: {', '.join(map(str, allowed))}")


def _choice(where: str, key: str, value: object) -> str:
    """``value`` of a setting whose supported values are names, once checked."""
    _check_supported(where, key, value)
    return str(value)   # one of SUPPORTED[key]'s names: already a str


def _positive(where: str, value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise SpecError(f"{where} must be > 0, got {number!r}")
    return number


@dataclass
class MemorySetup:
    """The RL olfactory memories of one simulation's larvae (larvaworld's ``RLOlfMemory``), one row per larva with
    a memory. ``layers`` (shared by the simulation's memories) maps each odor the memory adapts to its odor layer,
    -1 where the arena has no such odor."""

    rows: Ints                              # (m,) larva indices
    layers: tuple[int, ...]                 # (k,) odor layer of each memory odor, -1 if none
    actions: Floats                         # (m, A, k) gain of each memory odor under each action
    alpha: Floats
    gamma: Floats
    epsilon: Floats
    niters: Ints                            # (m,) steps between gain updates
    learn_last: Ints                        # (m,) last step (1-based) with learning on
    state_specific: Bools                   # (m,) state_specific_best
    explore: Floats                         # (m, K) uniforms of the epsilon draws, one per learning update
    random_action: Ints                     # (m, K) actions drawn when exploring


@dataclass(frozen=True)
class _GroupMemory:
    """The RL memory of one larva group's larvae (see :class:`MemorySetup`): its parameters and its draws."""

    layers: tuple[int, ...]
    actions: Floats                         # (A, k)
    alpha: float
    gamma: float
    epsilon: float
    niters: int
    learn_last: int
    state_specific: bool
    explore: Floats                         # (n, K)
    random_action: Ints                     # (n, K)


@dataclass(frozen=True)
class Event:
    """What larvaworld's ``PrefTrainCondition`` does after ``step`` steps: empty or refill the food grid, set every
    odor source's intensity, and move the larvae back to their start (or, in 2.5.1, only stop their turning)."""

    step: int
    grid: str | None                        # "empty", "reset" or None
    intensities: tuple[float, ...] | None   # per odor source
    reset_pose: bool


#: What simulations that step together share (SimSetup.signature): hashable, compared whole.
Signature: TypeAlias = tuple[Hashable, ...]


@dataclass
class SimSetup:
    """One simulation, ready to be concatenated with others of the same ``signature``."""

    signature: Signature                    # simulations of one signature step together (fields below alike)
    bugs: frozenset[str]                    # of UPSTREAM_BUGS, reproduced
    sensing: bool                           # some larva smells an odor
    feeding: bool                           # some larva has feeding bouts
    n: int
    nsteps: int
    dt: float
    metrics: tuple[str, ...]
    params: dict[str, Floats]               # AGENT_PARAMS + TURNER_PARAMS, each (n,)
    pos: Complexes                          # (n,) joint positions
    head: Floats                            # (n,) head orientation
    crawler_phase: Floats
    feeder_phase: Floats
    turner: Floats                          # (6, n): E_l, E_r, C_l, C_r, H_l, H_r
    strides: Floats                         # (n, K) stride lengths (body lengths)
    chains: Ints                            # (n, K) run lengths (strides)
    pauses: Ints                            # (n, K) pause lengths (ticks)
    arena: tuple[str, float, float]         # geometry, width, height
    odor_pos: Complexes                     # (So,) odor-source positions
    odor_layer: tuple[int, ...]             # layer index of each odor source
    odor_intensity: Floats                  # (So,)
    odor_spread: Floats                     # (So,) variance (m²)
    gains: Floats                           # (n, n_layers)
    food_pos: Complexes                     # (Sf,) food-source positions
    food_amount: Floats                     # (Sf,)
    grid: Floats | None                     # (gx, gy) food grid or None
    landmarks: dict[str, complex]           # named points for distance metrics
    odor_only: int                          # sources without food (they count for larvaworld's detection switch)
    feed_rng: np.random.Generator | None
    memory: MemorySetup | None = None
    association: AssociationSetup | None = None
    events: tuple[Event, ...] = ()
    wind: WindSetup | None = None
    touch: TouchSetup | None = None         # the touchers (docs/model.md, "Tactile detection")
    energetics: deb.EnergeticsSetup | None = None


@dataclass
class _Group:
    """One larva group of a simulation, compiled: the simulation's arrays are its groups' concatenated."""

    n: int
    params: dict[str, float]                # AGENT_PARAMS
    tparams: NeuralParams
    gains: Floats                           # (n, n_layers)
    pos: Complexes
    head: Floats
    crawler_phase: Floats
    feeder_phase: Floats
    turner: Floats                          # (6, n)
    strides: Floats                         # (n, K)
    chains: Ints                            # (n, K)
    pauses: Ints                            # (n, K)
    memory: _GroupMemory | None
    association: AssociationGroup | None


_Scalar = TypeVar("_Scalar", bound=np.generic)


def edge_padded(tables: Sequence[npt.NDArray[_Scalar]]) -> npt.NDArray[_Scalar]:
    """2-d ``tables`` stacked row-wise, each widened to the widest by repeating its last column."""
    width = max(t.shape[1] for t in tables)
    return np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1])), mode="edge") for t in tables])


def _turner_params(cfg: Mapping[str, Any], where: str) -> NeuralParams:
    lo, hi = (float(v) for v in cfg["activation_range"])
    base = float(cfg["base_activation"])
    if not lo <= base <= hi:
        raise SpecError(f"{where}turner.base_activation = {base} must lie in activation_range {[lo, hi]}")
    return NeuralParams(base_activation=base, activation_low=lo, activation_high=hi,
                        tau=_positive(f"{where}turner.tau", cfg["tau"]),
                        w_ee=float(cfg["w_ee"]), w_ce=float(cfg["w_ce"]), w_ec=float(cfg["w_ec"]),
                        w_cc=float(cfg["w_cc"]), m=float(cfg["m"]), n=_positive(f"{where}turner.n", cfg["n"]))


def _group_params(dt: float, model: Mapping[str, Any], layer_ids: list[str], where: str
                  ) -> tuple[dict[str, float], NeuralParams, Floats, Mapping[str, Any], Mapping[str, Any]]:
    body, physics, brain = model["body"], model["physics"], model["brain"]
    if int(body["Nsegs"]) != 2:
        raise SpecError(f"{where}body.Nsegs = {body['Nsegs']!r} is not supported; the engine models 2 segments")
    crawler, turner, inter, intermit = (brain[k] for k in ("crawler", "turner", "interference", "intermitter"))
    olf, feeder = brain.get("olfactor"), brain.get("feeder")
    _choice(where, "crawler.mode", crawler["mode"])
    _choice(where, "turner.mode", turner["mode"])
    _choice(where, "intermitter.mode", intermit["mode"])
    _choice(where, "intermitter.run_mode", intermit["run_mode"])
    imode = _choice(where, "interference.mode", inter["mode"])
    smode = _choice(where, "interference.suppression_mode", inter["suppression_mode"])
    angmode = _choice(where, "physics.ang_mode", physics["ang_mode"])
    freq = _positive(f"{where}crawler.freq", crawler["freq"])
    if freq * dt >= 1:
        raise SpecError(f"{where}crawler.freq = {freq} must be below 1/dt = {1 / dt:g} Hz")
    eeb = float(intermit["EEB"])
    if not 0 <= eeb <= 1:
        raise SpecError(f"{where}intermitter.EEB = {eeb} must lie in [0, 1]")
    length = _positive(f"{where}body.length", body["length"])
    gains = np.zeros(len(layer_ids))
    if olf is not None:
        _choice(where, "olfactor.perception", olf["perception"])
        for i, odor_id in enumerate(layer_ids):
            gains[i] = float(olf["gain_dict"].get(odor_id, 0.0))
    feeder_freq = _positive(f"{where}feeder.freq", feeder["freq"]) if feeder else 1.0
    if feeder and feeder_freq * dt >= 1:
        raise SpecError(f"{where}feeder.freq = {feeder_freq} must be below 1/dt = {1 / dt:g} Hz")
    params = {
        "length": length,
        "radius": float(body["radius"]),
        "torque_coef": float(physics["torque_coef"]),
        "ang_damping": float(physics["ang_damping"]),
        "body_spring_k": float(physics["body_spring_k"]),
        "bend_correction_coef": float(physics["bend_correction_coef"]),
        "lin_vel_coef": float(physics["lin_vel_coef"]),
        "ang_vel_coef": float(physics["ang_vel_coef"]),
        "velocity_mode": float(angmode == "velocity"),
        "crawler_freq": freq,
        "crawler_amp": float(crawler["max_scaled_vel"]),
        "crawler_phase_peak": float(crawler["max_vel_phase"]),
        # 'default' interference is a constant attenuation while active: the phasic formula
        # with attenuation_max = 0.
        "att_base": float(inter["attenuation"]),
        "att_max": float(inter["attenuation_max"]) if imode == "phasic" else 0.0,
        "att_phase": float(inter["max_attenuation_phase"]),
        "att_on_output": float(smode in ("amplitude", "both")),
        "att_on_input": float(smode in ("oscillation", "both")),
        "decay_coef": float(olf["decay_coef"]) if olf else 0.0,
        "has_olfactor": float(olf is not None),
        "feeder_freq": feeder_freq,
        "bite": float(feeder["V_bite"]) * length**3 * 1000.0 if feeder else 0.0,
        "has_feeder": float(feeder is not None),
        "feed_bouts": float(bool(intermit["feed_bouts"]) and feeder is not None),
        "eeb": eeb,
    }
    return params, _turner_params(turner, where), gains, crawler, intermit


def _memory_group(memory: Mapping[str, Any], olf: Mapping[str, Any] | None, layer_ids: list[str], dt: float,
                  nsteps: int, bugs: frozenset[str], where: str, n: int, rng: np.random.Generator) -> _GroupMemory:
    """One group's RL memory (larvaworld's ``RLOlfMemory``) for its ``n`` larvae: which odor layers it adapts, its
    parameters, and its draws from ``rng``."""
    _choice(where, "memory.mode", memory["mode"])
    _choice(where, "memory.modality", memory["modality"])
    _check_supported(where, "memory.state_spacePerSide", memory["state_spacePerSide"])
    if olf is None:
        raise SpecError(f"{where}memory adapts olfactory gains: the model needs an olfactor")
    # larvaworld's memory adapts the gains its olfactor declares when it is built; odors first met in the arena are
    # added with gain 0 and never learned (deviation 12). Corrected: the arena's odors.
    ids = [str(k) for k in olf["gain_dict"]] if "memory_gain_ids" in bugs else list(layer_ids)
    space = [float(g) for g in memory["gain_space"]]
    if not space:
        raise SpecError(f"{where}memory.gain_space must list at least one gain")
    update_dt = _positive(f"{where}memory.update_dt", memory["update_dt"])
    niters = int(update_dt * 60 / dt)
    for key in ("alpha", "gamma", "epsilon"):
        if not 0 <= float(memory[key]) <= 1:
            raise SpecError(f"{where}memory.{key} = {memory[key]!r} must lie in [0, 1]")
    actions = np.array(list(itertools.product(space, repeat=len(ids))),
                       dtype=float).reshape(len(space) ** len(ids), len(ids))
    # updates at steps 1, 1 + niters, 1 + 2 niters, ... (larvaworld's iterator starts at niters)
    updates = nsteps if niters <= 1 else (nsteps - 1) // niters + 1
    explore = rng.random((n, updates))
    return _GroupMemory(
        layers=tuple(layer_ids.index(i) if i in layer_ids else -1 for i in ids), actions=actions,
        alpha=float(memory["alpha"]), gamma=float(memory["gamma"]), epsilon=float(memory["epsilon"]),
        niters=niters, learn_last=last_learning_step(float(memory["train_dur"]), dt, nsteps),
        state_specific=bool(memory["state_specific_best"]),
        explore=explore, random_action=rng.integers(0, len(actions), (n, updates)),
    )


def _events(trials: Mapping[str, Any] | None, dt: float, nsteps: int, sources: list[str], source_layers: list[str],
            intensities: list[float], has_grid: bool, bugs: frozenset[str]) -> tuple[tuple[Event, ...], int]:
    """larvaworld's ``PrefTrainCondition`` (lib/sim/conditions.py) as a schedule of events, and the step count: the
    run ends when the last epoch does. Epoch bounds are minutes; an epoch starts after ``int(t0 * 60 / dt)`` steps.
    In 2.5.1 the condition is checked after the step counter advanced, so an epoch starting at 0 never starts
    (deviation 13)."""
    if not trials or trials.get("condition") is None:
        return (), nsteps
    condition = trials["condition"]
    if condition not in CONDITIONS:
        raise SpecError(f"trials.condition = {condition!r} is not supported; supported: {', '.join(CONDITIONS)}")
    if not has_grid:
        raise SpecError(f"trials.condition = {condition!r} empties and refills the food grid: the arena needs one")
    epochs = list(trials["epochs"])
    if not epochs:
        raise SpecError(f"trials.condition = {condition!r} needs epochs")
    bounds = [(int(float(ep["age_range"][0]) * 60 / dt), int(float(ep["age_range"][1]) * 60 / dt)) for ep in epochs]
    end = bounds[-1][1]
    if 1 <= end < nsteps:
        nsteps = end
    level = list(intensities)
    odors = {odor: [i for i, layer in enumerate(source_layers) if layer == odor] for odor in ("CS", "UCS")}
    counters = {"CS": 0, "UCS": 0}

    def toggle(cs: float, ucs: float) -> None:
        for odor, value in (("CS", cs), ("UCS", ucs)):
            for i in odors[odor]:
                level[i] = value

    events = []
    c = PEAK_INTENSITY
    for ep, (start, _) in zip(epochs, bounds, strict=True):
        if (start == 0 and "first_epoch_skipped" in bugs) or start >= nsteps:
            continue
        quality = float(ep["substrate"]["quality"])
        if quality not in (0.0, 1.0):   # larvaworld's condition acts on these two only
            continue
        odor = "CS" if quality == 1.0 else "UCS"
        counters[odor] += 1
        reset = counters[odor] <= 4
        if counters[odor] <= 3:
            toggle(c, 0.0) if odor == "CS" else toggle(0.0, c)
        elif counters[odor] == 4:
            if odor == "CS":   # the test trials: only the CS on the left and the UCS on the right remain
                for odor_, name in (("CS", "CS_r"), ("UCS", "UCS_l")):
                    for i in [i for i in odors[odor_] if sources[i] == name]:
                        odors[odor_].remove(i)
                        level[i] = 0.0
            toggle(c, c)
        events.append(Event(step=start, grid="reset" if quality == 1.0 else "empty", intensities=tuple(level),
                            reset_pose=reset))
    return tuple(events), nsteps


def _check_memory(need: float, what: str) -> None:
    """A SpecError, before anything is allocated, if ``need`` bytes exceed this simulation's share of memory."""
    memory = physical_memory()
    if memory is not None and need > MEMORY_SHARE * memory:
        raise SpecError(f"one simulation of {what} needs about {gigabytes(need)} of memory, more than half of this "
                        f"machine's {gigabytes(memory)}: make it smaller")


def _placement(rng: np.random.Generator, n: int, dist: Mapping[str, Any]) -> tuple[Complexes, Floats]:
    """larvaworld's uniform/circle placement: independent radial draws for x and y (spec §7); or its periphery/circle
    placement: evenly spaced on the ellipse of radii ``scale``, from angle 0 (``xy_along_circle``)."""
    (X, Y), (sx, sy) = dist["loc"], dist["scale"]
    o1, o2 = (float(v) for v in dist["orientation_range"])
    if dist["mode"] == "periphery":
        angles = np.linspace(0.0, TWO_PI, n + 1)[:-1]
        heading = np.mod(np.radians(rng.uniform(o1, o2, n)), TWO_PI)
        return (X + np.cos(angles) * float(sx)) + 1j * (Y + np.sin(angles) * float(sy)), heading
    a = rng.uniform(0.0, TWO_PI, n)
    x = X + np.sqrt(rng.uniform(0.0, float(sx) ** 2, n)) * np.cos(a)
    y = Y + np.sqrt(rng.uniform(0.0, float(sy) ** 2, n)) * np.sin(a)
    heading = np.mod(np.radians(rng.uniform(o1, o2, n)), TWO_PI)
    return x + 1j * y, heading


def compile_sim(tree: Mapping[str, Any], seed: int, bugs: frozenset[str] | None = None) -> SimSetup:
    """Turn a resolved experiment tree and a seed into a :class:`SimSetup`. ``bugs`` (of :data:`UPSTREAM_BUGS`)
    overrides the tree's ``fidelity``, all of whose bugs or none run, e.g. to measure one deviation alone."""
    dt = _positive("dt", tree["dt"])
    duration = _positive("duration", tree["duration"])
    nsteps = round(duration * 60.0 / dt)
    fidelity = tree.get("fidelity", LARVAWORLD)
    if fidelity not in FIDELITIES:
        raise SpecError(f"fidelity = {fidelity!r} is not a model; use {' or '.join(map(repr, FIDELITIES))}")
    bugs = BUGS[fidelity] if bugs is None else frozenset(bugs)
    if nsteps < 1:
        raise SpecError(f"duration = {duration!r} min is shorter than one step (dt = {dt!r} s)")
    env = tree["env_params"]
    geometry = _choice("", "arena.geometry", env["arena"]["geometry"])
    width, height = (_positive("env_params.arena.dims", v) for v in env["arena"]["dims"])

    sources = env["food_params"]["source_units"]
    _choice("env_params.", "odorscape.odorscape", env["odorscape"]["odorscape"])
    layers = env["odorscape"]["odor_layers"]
    layer_ids = [str(layer["id"]) for layer in layers]
    odor_pos, odor_layer, odor_int, odor_spread, odor_names = [], [], [], [], []
    for i, layer in enumerate(layers):
        for name in layer["sources"]:
            odor_names.append(name)
            if name not in sources:
                raise SpecError(f"odor layer {layer['id']!r} names unknown source {name!r}; "
                                f"sources: {', '.join(sources) or 'none'}")
            odor_pos.append(complex(*sources[name]["pos"]))
            odor_layer.append(i)
            odor_int.append(float(layer["intensity"]))
            odor_spread.append(_positive(f"odor layer {layer['id']!r} spread", layer["spread"]))
    food_names = [k for k, s in sources.items() if float(s["amount"]) > 0]
    grid_cfg = env["food_params"].get("food_grid")
    grid = None
    if grid_cfg:
        gx, gy = (int(v) for v in grid_cfg["grid_dims"])
        _check_memory(8.0 * gx * gy, f"a food grid of {gx:,} x {gy:,} cells")
        grid = np.full((gx, gy), float(grid_cfg["initial_value"]))

    events, nsteps = _events(tree.get("trials"), dt, nsteps, odor_names, [layer_ids[i] for i in odor_layer], odor_int,
                             grid is not None, bugs)
    # An eighth stream, spawned after the seven older ones so that their draws stay as they were: the memories'.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    place_rng, phase_rng, warm_rng, stride_rng, chain_rng, pause_rng, feed_rng, memory_rng = streams
    # larvaworld draws one oscillator phase per process, shared by every crawler and feeder (deviation 1); here one
    # per simulation, from its seed.
    shared_phase = phase_rng.uniform(0.0, TWO_PI) if "shared_phase" in bugs else None

    def phases(n: int) -> Floats:
        return np.full(n, shared_phase) if shared_phase is not None else phase_rng.uniform(0.0, TWO_PI, n)

    groups: list[_Group] = []
    debs: list[tuple[int, deb.GroupEnergetics | None, float, float]] = []   # (n, energetics, V_bite, EEB) per group
    food_x = deb.food_concentration(env["food_params"], "deb_empty_substrate" in bugs)
    for gid, group in tree["larva_groups"].items():
        where = f"larva_groups.{gid}.model."
        dist = group["distribution"]
        _choice(f"larva_groups.{gid}.", "distribution.mode", dist["mode"])
        _choice(f"larva_groups.{gid}.", "distribution.shape", dist["shape"])
        n = int(dist["N"])
        if n < 1:
            raise SpecError(f"larva_groups.{gid}.distribution.N = {n} must be >= 1")
        params, tparams, gains, crawler, intermit = _group_params(dt, group["model"], layer_ids, where)
        energetics, feeder = group["model"].get("energetics"), group["model"]["brain"].get("feeder")
        debs.append((n, None, 0.0, params["eeb"]))
        if energetics and (group["model"]["brain"].get("toucher") or {}).get("touch_sensors"):
            raise SpecError(f"{where}toucher: touch sensors on a growing larva (energetics) are not modelled; "
                            f"use a toucher without touch_sensors or a model without energetics")
        if energetics:   # a growing larva (docs/model.md, "Growth"): it starts as a hatchling
            compiled = deb.compile_group(energetics, float((group.get("life_history") or {}).get("age", 0.0)), food_x,
                                         dt, where)
            debs[-1] = (n, compiled, float(feeder["V_bite"]) if feeder else 0.0, params["eeb"])
            params.update(deb.at_hatching(compiled, debs[-1][2], params["eeb"]))
        memory_cfg, olfactor = group["model"]["brain"].get("memory"), group["model"]["brain"].get("olfactor")
        memory = association = None
        if memory_cfg and memory_cfg["mode"] == ASSOCIATIVE:
            _choice(where, "memory.modality", memory_cfg["modality"])
            if olfactor is None:
                raise SpecError(f"{where}memory conditions olfactory gains: the model needs an olfactor")
            association = association_group(memory_cfg, dt, nsteps, where)
        elif memory_cfg:
            memory = _memory_group(memory_cfg, olfactor, layer_ids, dt, nsteps, bugs, where, n, memory_rng)
        k_strides = int(nsteps * dt * params["crawler_freq"]) + 2
        k_feeds = int(nsteps * dt * params["feeder_freq"]) + 2 if params["feed_bouts"] else 0
        k_runs = k_strides + k_feeds + 2
        _check_memory(n * (BYTES_PER_LARVA + 8.0 * (k_strides + 2 * k_runs)),
                      f"{n:,} larvae over {nsteps:,} steps (duration {duration!r} min, dt {dt!r} s)")
        pos, head = _placement(place_rng, n, dist)
        warm = warmup_trajectory(dt, tparams)[warm_rng.binomial(WARMUP_FLIPS, 0.5, n)].T
        chain_k, chain_p = discrete_pmf(intermit["stridechain_dist"], 1.0)
        pause_k, pause_p = discrete_pmf(intermit["pause_dist"], dt)
        groups.append(_Group(
            n=n, params=params, tparams=tparams, gains=np.tile(gains, (n, 1)), pos=pos, head=head,
            crawler_phase=phases(n), feeder_phase=phases(n),
            turner=warm,
            strides=stride_rng.normal(float(crawler["stride_dst_mean"]), float(crawler["stride_dst_std"]),
                                      (n, k_strides)),
            chains=chain_rng.choice(chain_k, size=(n, k_runs), p=chain_p),
            pauses=pause_rng.choice(pause_k, size=(n, k_runs), p=pause_p),
            memory=memory, association=association,
        ))
    if not groups:
        raise SpecError("the experiment has no larva groups")

    agent_params = {k: np.concatenate([np.full(g.n, g.params[k]) for g in groups]) for k in AGENT_PARAMS}
    for k in TURNER_PARAMS:
        agent_params[k] = np.concatenate([np.full(g.n, getattr(g.tparams, k)) for g in groups])
    metrics = resolve_metrics(tree)
    memories = _memory_setup(groups)
    starts = np.cumsum([0] + [g.n for g in groups])[:-1].tolist()   # each group's first larva
    associations = association_setup([(start, g.n, g.association) for start, g in zip(starts, groups, strict=True)
                                      if g.association is not None])
    wind = compile_wind(env, [(g.n, group["model"]["brain"])
                              for g, group in zip(groups, tree["larva_groups"].values(), strict=True)], dt, bugs)
    touch = compile_touch([(f"larva_groups.{gid}.model.", group["model"], g.n)
                           for (gid, group), g in zip(tree["larva_groups"].items(), groups, strict=True)], len(sources))
    energetics_setup = deb.simulation_setup(debs, dt, nsteps)
    landmarks = {name: complex(*src["pos"]) for name, src in sources.items()}
    feeding = bool(agent_params["feed_bouts"].any())
    sensing = bool(agent_params["has_olfactor"].any()) and bool(odor_pos)
    signature = (bugs, dt, nsteps, geometry, tuple(odor_layer), len(layer_ids), len(food_names),
                 None if grid is None else grid.shape, sensing, feeding, tuple(sorted(landmarks)), metrics,
                 None if memories is None else (memories.layers, memories.actions.shape[1:]),
                 associations is not None, events, None if wind is None else wind.signature, touch is not None,
                 None if energetics_setup is None else (energetics_setup.interval, energetics_setup.dt))
    return SimSetup(
        signature=signature, bugs=bugs, sensing=sensing, feeding=feeding, n=int(sum(g.n for g in groups)),
        nsteps=nsteps, dt=dt, metrics=metrics,
        params=agent_params, pos=np.concatenate([g.pos for g in groups]),
        head=np.concatenate([g.head for g in groups]),
        crawler_phase=np.concatenate([g.crawler_phase for g in groups]),
        feeder_phase=np.concatenate([g.feeder_phase for g in groups]),
        turner=np.concatenate([g.turner for g in groups], axis=1),
        strides=edge_padded([g.strides for g in groups]), chains=edge_padded([g.chains for g in groups]),
        pauses=edge_padded([g.pauses for g in groups]),
        arena=(geometry, width, height), odor_pos=np.array(odor_pos, dtype=complex),
        odor_layer=tuple(odor_layer), odor_intensity=np.array(odor_int), odor_spread=np.array(odor_spread),
        gains=np.concatenate([g.gains for g in groups]),
        food_pos=np.array([complex(*sources[k]["pos"]) for k in food_names], dtype=complex),
        food_amount=np.array([float(sources[k]["amount"]) for k in food_names]), grid=grid,
        landmarks=landmarks, odor_only=len(sources) - len(food_names), feed_rng=feed_rng if feeding else None,
        memory=memories, association=associations, events=events, wind=wind, touch=touch,
        energetics=energetics_setup,
    )


def _memory_setup(groups: list[_Group]) -> MemorySetup | None:
    """The memories of a simulation's groups as one :class:`MemorySetup` (None without any)."""
    offsets = np.cumsum([0] + [g.n for g in groups])
    # (larvae, memory, first larva) of each group with a memory
    parts = [(g.n, g.memory, offsets[i]) for i, g in enumerate(groups) if g.memory is not None]
    if not parts:
        return None
    first = parts[0][1]
    for _, memory, _ in parts:
        if memory.layers != first.layers or memory.actions.shape != first.actions.shape:
            raise SpecError("every memory of one simulation must adapt the same odors with as many gains to choose "
                            "from")

    def per_larva(values: Sequence[float]) -> npt.NDArray[Any]:
        """One value per group, for each of its larvae (the array's dtype is the values' type)."""
        return np.concatenate([np.full(n, value) for (n, _, _), value in zip(parts, values, strict=True)])

    memories = [memory for _, memory, _ in parts]
    return MemorySetup(
        rows=np.concatenate([np.arange(start, start + n) for n, _, start in parts]), layers=first.layers,
        actions=np.concatenate([np.broadcast_to(memory.actions, (n, *first.actions.shape)) for n, memory, _ in parts]),
        alpha=per_larva([m.alpha for m in memories]), gamma=per_larva([m.gamma for m in memories]),
        epsilon=per_larva([m.epsilon for m in memories]), niters=per_larva([m.niters for m in memories]).astype(int),
        learn_last=per_larva([m.learn_last for m in memories]).astype(int),
        state_specific=per_larva([m.state_specific for m in memories]).astype(bool),
        explore=edge_padded([m.explore for m in memories]),
        random_action=edge_padded([m.random_action for m in memories]),
    )
