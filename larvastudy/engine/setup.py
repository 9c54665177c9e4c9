"""Compile one (config tree, seed) pair into flat per-larva arrays and its random draws.

Everything random about a simulation is drawn here, from streams spawned off
``SeedSequence(seed)`` in a fixed order and sized by the simulation's own config, so a simulation is
a pure function of (config, seed) whether it runs alone or inside a batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from larvastudy.engine.bouts import discrete_pmf
from larvastudy.engine.metrics import resolve_metrics
from larvastudy.engine.turner import PARAM_NAMES as TURNER_PARAMS
from larvastudy.engine.turner import WARMUP_FLIPS, NeuralParams, warmup_trajectory
from larvastudy.errors import SpecError
from larvastudy.machine import gigabytes, physical_memory

TWO_PI = 2.0 * math.pi
FEED_CHUNK = 500  # steps of feeding-decision uniforms drawn at a time per simulation
#: Memory of one larva's state in the loop (about 60 float arrays, rounded up), beside its bout tables.
BYTES_PER_LARVA = 1_000
#: Share of this machine's memory one simulation may need (its batch-mates and other workers need the rest).
MEMORY_SHARE = 0.5
#: The model of larvaworld 2.5.1 as it runs, bugs included (docs/model.md, deviations 1-5): the default.
LARVAWORLD = "larvaworld-2.5.1"
#: The model with 2.5.1's bugs fixed as docs/model.md's deviations 1-5 say.
CORRECTED = "corrected"
FIDELITIES = (LARVAWORLD, CORRECTED)
#: The bugs of larvaworld 2.5.1 the engine reproduces, by the deviation of docs/model.md that fixes each.
UPSTREAM_BUGS = {
    "shared_phase": 1,          # one initial crawler/feeder phase for all larvae
    "unclipped_olfactor": 2,    # olfactor output (and so turner input) outside [-1, 1]
    "long_bouts": 3,            # runs of Nexp + 1 strides, pauses of k + 1 ticks
    "arena_polygon": 4,         # a circular arena is its 60-gon
    "food_detection": 5,        # a random source within reach; at the body position while > 10 sources are left
}
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
    "distribution.mode": ("uniform",),
    "distribution.shape": ("circle",),
}


def _choice(where: str, key: str, value: Any) -> str:
    allowed = SUPPORTED[key]
    if value not in allowed:
        raise SpecError(f"{where}{key} = {value!r} is not supported by the engine; "
                        f"supported: {', '.join(allowed)}")
    return value


def _positive(where: str, value: Any) -> float:
    value = float(value)
    if not value > 0:
        raise SpecError(f"{where} must be > 0, got {value!r}")
    return value


@dataclass
class SimSetup:
    """One simulation, ready to be concatenated with others of the same ``signature``."""

    signature: tuple                        # simulations of one signature step together (fields below alike)
    bugs: frozenset[str]                    # of UPSTREAM_BUGS, reproduced
    sensing: bool                           # some larva smells an odor
    feeding: bool                           # some larva has feeding bouts
    n: int
    nsteps: int
    dt: float
    metrics: tuple[str, ...]
    params: dict[str, np.ndarray]           # AGENT_PARAMS + TURNER_PARAMS, each (n,)
    pos: np.ndarray                         # (n,) complex joint positions
    head: np.ndarray                        # (n,) head orientation
    crawler_phase: np.ndarray
    feeder_phase: np.ndarray
    turner: np.ndarray                      # (6, n): E_l, E_r, C_l, C_r, H_l, H_r
    strides: np.ndarray                     # (n, K) stride lengths (body lengths)
    chains: np.ndarray                      # (n, K) run lengths (strides)
    pauses: np.ndarray                      # (n, K) pause lengths (ticks)
    arena: tuple[str, float, float]         # geometry, width, height
    odor_pos: np.ndarray                    # (So,) complex odor-source positions
    odor_layer: tuple[int, ...]             # layer index of each odor source
    odor_intensity: np.ndarray              # (So,)
    odor_spread: np.ndarray                 # (So,) variance (m²)
    gains: np.ndarray                       # (n, n_layers)
    food_pos: np.ndarray                    # (Sf,) complex food-source positions
    food_amount: np.ndarray                 # (Sf,)
    grid: np.ndarray | None                 # (gx, gy) food grid or None
    landmarks: dict[str, complex]           # named points for distance metrics
    odor_only: int                          # sources without food (they count for larvaworld's detection switch)
    feed_rng: np.random.Generator | None


def _turner_params(cfg: Mapping[str, Any], where: str) -> NeuralParams:
    lo, hi = (float(v) for v in cfg["activation_range"])
    base = float(cfg["base_activation"])
    if not lo <= base <= hi:
        raise SpecError(f"{where}turner.base_activation = {base} must lie in activation_range {[lo, hi]}")
    return NeuralParams(base_activation=base, activation_low=lo, activation_high=hi,
                        tau=_positive(f"{where}turner.tau", cfg["tau"]),
                        w_ee=float(cfg["w_ee"]), w_ce=float(cfg["w_ce"]), w_ec=float(cfg["w_ec"]),
                        w_cc=float(cfg["w_cc"]), m=float(cfg["m"]), n=_positive(f"{where}turner.n", cfg["n"]))


def _group_params(dt: float, model: Mapping[str, Any], layer_ids: list[str],
                  where: str) -> tuple[dict[str, float], NeuralParams, np.ndarray, Mapping, Mapping]:
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


def _check_memory(need: float, what: str) -> None:
    """A SpecError, before anything is allocated, if ``need`` bytes exceed this simulation's share of memory."""
    memory = physical_memory()
    if memory is not None and need > MEMORY_SHARE * memory:
        raise SpecError(f"one simulation of {what} needs about {gigabytes(need)} of memory, more than half of this "
                        f"machine's {gigabytes(memory)}: make it smaller")


def _placement(rng: np.random.Generator, n: int, dist: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """larvaworld's uniform/circle placement: independent radial draws for x and y (spec §7)."""
    (X, Y), (sx, sy) = dist["loc"], dist["scale"]
    o1, o2 = (float(v) for v in dist["orientation_range"])
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
    nsteps = int(round(duration * 60.0 / dt))
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
    odor_pos, odor_layer, odor_int, odor_spread = [], [], [], []
    for i, layer in enumerate(layers):
        for name in layer["sources"]:
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

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    place_rng, phase_rng, warm_rng, stride_rng, chain_rng, pause_rng, feed_rng = streams
    # larvaworld draws one oscillator phase per process, shared by every crawler and feeder (deviation 1); here one
    # per simulation, from its seed.
    shared_phase = phase_rng.uniform(0.0, TWO_PI) if "shared_phase" in bugs else None

    def phases(n: int) -> np.ndarray:
        return np.full(n, shared_phase) if shared_phase is not None else phase_rng.uniform(0.0, TWO_PI, n)

    groups = []
    for gid, group in tree["larva_groups"].items():
        where = f"larva_groups.{gid}.model."
        dist = group["distribution"]
        _choice(f"larva_groups.{gid}.", "distribution.mode", dist["mode"])
        _choice(f"larva_groups.{gid}.", "distribution.shape", dist["shape"])
        n = int(dist["N"])
        if n < 1:
            raise SpecError(f"larva_groups.{gid}.distribution.N = {n} must be >= 1")
        params, tparams, gains, crawler, intermit = _group_params(dt, group["model"], layer_ids, where)
        k_strides = int(nsteps * dt * params["crawler_freq"]) + 2
        k_feeds = int(nsteps * dt * params["feeder_freq"]) + 2 if params["feed_bouts"] else 0
        k_runs = k_strides + k_feeds + 2
        _check_memory(n * (BYTES_PER_LARVA + 8.0 * (k_strides + 2 * k_runs)),
                      f"{n:,} larvae over {nsteps:,} steps (duration {duration!r} min, dt {dt!r} s)")
        pos, head = _placement(place_rng, n, dist)
        warm = warmup_trajectory(dt, tparams)[warm_rng.binomial(WARMUP_FLIPS, 0.5, n)].T
        chain_k, chain_p = discrete_pmf(intermit["stridechain_dist"], 1.0)
        pause_k, pause_p = discrete_pmf(intermit["pause_dist"], dt)
        groups.append(dict(
            n=n, params=params, tparams=tparams, gains=np.tile(gains, (n, 1)), pos=pos, head=head,
            crawler_phase=phases(n), feeder_phase=phases(n),
            turner=warm,
            strides=stride_rng.normal(float(crawler["stride_dst_mean"]), float(crawler["stride_dst_std"]),
                                      (n, k_strides)),
            chains=chain_rng.choice(chain_k, size=(n, k_runs), p=chain_p),
            pauses=pause_rng.choice(pause_k, size=(n, k_runs), p=pause_p),
        ))
    if not groups:
        raise SpecError("the experiment has no larva groups")

    def cat(key: str) -> np.ndarray:
        return np.concatenate([g[key] for g in groups])

    def cat_padded(key: str) -> np.ndarray:
        width_ = max(g[key].shape[1] for g in groups)
        return np.concatenate([np.pad(g[key], ((0, 0), (0, width_ - g[key].shape[1])), mode="edge")
                               for g in groups])

    params = {k: np.concatenate([np.full(g["n"], g["params"][k]) for g in groups]) for k in AGENT_PARAMS}
    for k in TURNER_PARAMS:
        params[k] = np.concatenate([np.full(g["n"], getattr(g["tparams"], k)) for g in groups])
    metrics = resolve_metrics(tree, sources)
    landmarks = {name: complex(*src["pos"]) for name, src in sources.items()}
    feeding = bool(params["feed_bouts"].any())
    sensing = bool(params["has_olfactor"].any()) and bool(odor_pos)
    signature = (bugs, dt, nsteps, geometry, tuple(odor_layer), len(layer_ids), len(food_names),
                 None if grid is None else grid.shape, sensing, feeding, tuple(sorted(landmarks)), metrics)
    return SimSetup(
        signature=signature, bugs=bugs, sensing=sensing, feeding=feeding, n=int(sum(g["n"] for g in groups)),
        nsteps=nsteps, dt=dt, metrics=metrics,
        params=params, pos=cat("pos"), head=cat("head"), crawler_phase=cat("crawler_phase"),
        feeder_phase=cat("feeder_phase"), turner=np.concatenate([g["turner"] for g in groups], axis=1),
        strides=cat_padded("strides"), chains=cat_padded("chains"), pauses=cat_padded("pauses"),
        arena=(geometry, width, height), odor_pos=np.array(odor_pos, dtype=complex),
        odor_layer=tuple(odor_layer), odor_intensity=np.array(odor_int), odor_spread=np.array(odor_spread),
        gains=cat("gains"), food_pos=np.array([complex(*sources[k]["pos"]) for k in food_names], dtype=complex),
        food_amount=np.array([float(sources[k]["amount"]) for k in food_names]), grid=grid,
        landmarks=landmarks, odor_only=len(sources) - len(food_names), feed_rng=feed_rng if feeding else None,
    )
