"""larvaworld 2.5.1's DEB energetics and gut (``lib/model/deb/deb.py``, ``deb_equations.py``, ``gut.py``), vectorized
over the larvae that have them (docs/model.md, "Growth").

A larva with ``energetics`` hatches at the start (age 0: the egg is integrated here once, as larvaworld's
``grow_larva`` does), its body length and bite volume follow its structure, and every ``interval`` steps (the DEB's
own time step, one minute) the food it ate since the last DEB step passes its gut, whose absorption is the
assimilation flux of one explicit-Euler step of the reserve ``E``, structure ``V`` and maturity ``E_H``. After each
DEB step the hunger ``clip(base_EEB + hunger_gain (1 - e), 0, 1)`` becomes the intermitter's EEB.
Units as larvaworld's: days, cm, J, C-mol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from larvastudy.engine.arrays import Floats, Ints
from larvastudy.errors import SpecError

#: Primary parameters of larvaworld's AmP export (``models/amp/Drosophila_melanogaster.json``).
T_REF, T_A = 293.1, 28890.0          # K
ZOOM, V_COND, KAP, P_M, K_J, E_G = 0.05054, 0.03568, 0.8024, 8674.0, 0.002, 4434.0
E_HB, E_HP, F_M, DEL_M = 0.1853, 285.5, 6.5, 0.629
MU_X, MU_E, D_V = 525000.0, 550000.0, 0.17
W_E = 12.0 * 1.0 + 1.0 * 1.8 + 16.0 * 0.5 + 14.0 * 0.15   # g/mol, reserve's chemical indices (C, H1.8, O0.5, N0.15)
V_SEED = 1e-30                       # cm³, the egg's structure
#: The egg's initial reserve (J) that larvaworld's embryo solver (``get_lb``/``get_ue0``) finds for these parameters;
#: taken from larvaworld (it does not depend on kap_X, so rover and sitter share it), not re-solved here.
E_0 = 1.6789660694284634
#: kap_X, the digestion efficiency, is what the phenotypes differ in (``rover_sitter_model.PHENOTYPE_VALUES``).
KAP_X = {"default": 0.8, "rover": 0.890476, "sitter": 0.523810}
# Compound parameters, in larvaworld's order of operations (DEBPars._derive).
P_AM = ZOOM * P_M / KAP              # J/d.cm², {p_Am}
E_M = P_AM / V_COND                  # J/cm³, [E_m]
#: The substrate larvaworld calls "standard" (g/cm³ of each nutritious compound) and each compound's weight ``ww``
#: (nC + nH/12 + 16 nO/12, as ``Compound`` computes it; agar is not nutritious).
STANDARD = {"glucose": (0.1, 6 + 12 / 12 * 1 + 6 / 12 * 16), "yeast": (0.05, 19 + 14 / 12 * 1 + 2 / 12 * 16)}
SUBSTRATES = ("standard",)
SPECIES = tuple(KAP_X)
_GUT_KEYS = ("k_abs", "k_dig", "k_g", "f_abs", "f_dig", "y_P_X", "M_gm", "M_c_per_cm2", "J_g_per_cm2", "r_w2l",
             "r_gut_w")


def substrate_x(quality: float) -> float:
    """Molar concentration (C-mol/cm³) of the nutritious compounds of the standard substrate at ``quality``
    (larvaworld's ``Substrate.get_X``: their density over their mean weight)."""
    d_x = sum(d for d, _ in STANDARD.values()) * quality
    w_x = sum(d * w for d, w in STANDARD.values()) / sum(d for d, _ in STANDARD.values())
    return d_x / w_x if d_x > 0 else 0.0


def half_saturation(species: str) -> float:
    """``K = J_X_Am / F_m`` (C-mol/cm³) of a phenotype, in larvaworld's order of operations."""
    y_e_x = KAP_X[species] * MU_X / MU_E
    j_x_am = (1.0 / y_e_x) * (P_AM / MU_E)
    return j_x_am / F_M


def temperature_factor(temperature: float) -> float:
    """Arrhenius correction from ``T_REF`` to ``temperature`` (K), larvaworld's ``tempcorr`` with only ``T_A``."""
    return float(np.exp(np.asarray(T_A / T_REF - T_A / temperature)))


@dataclass(frozen=True)
class Hatchling:
    """The state at hatching: reserve (J), structure (cm³), maturity (J), age (d)."""

    E: float
    V: float
    E_H: float
    age: float


@lru_cache(maxsize=16)
def hatch(tc: float, dt: float) -> Hatchling:
    """Integrate the egg (no assimilation, no acceleration) from ``E_0`` in explicit-Euler steps of ``dt`` days at
    temperature factor ``tc`` until maturity reaches ``E_HB``: larvaworld's ``run_stage("egg")``."""
    e, v, e_h, age = E_0, V_SEED, 0.0, 0.0
    p_m, v_t, k_j = tc * P_M, tc * V_COND, tc * K_J
    while e_h < E_HB:
        if not e > 0 or age > 10:
            raise SpecError(f"the egg does not hatch (at 25 °C it takes 0.72 d) at DEB dt = {dt!r} d and temperature "
                            f"factor {tc:.4g}")
        v = max(v, 0.0)
        denom = KAP * e + E_G * v
        p_c = e * (E_G * v_t * 1.0 * v ** (2.0 / 3.0) + p_m * v) / denom if denom > 0.0 else 0.0
        p_r = (1.0 - KAP) * p_c - k_j * e_h
        e += (0.0 - p_c) * dt
        v = max(v + (KAP * p_c - p_m * v) / E_G * dt, 0.0)
        e_h += p_r * dt
        age += dt
    return Hatchling(E=e, V=v, E_H=e_h, age=age)


def length_m(v: Floats | float) -> Any:
    """Body length (m) of structure ``v`` (cm³): larvaworld's ``deb.Lw * 10 / 1000`` with ``Lw = L / del_M``."""
    return np.power(v, 1.0 / 3.0) / DEL_M * 10 / 1000


def bite(v_bite: Floats | float, v: Floats | float) -> Any:
    """Bite volume of a larva of structure ``v`` (cm³): the feeder's ``V_bite * self.V * 1000`` with the DEB's V."""
    return v_bite * v * 1000


@dataclass
class GroupEnergetics:
    """One larva group's DEB and gut parameters, compiled (each later one value per larva)."""

    dt: float                       # d, the DEB's time step
    tc: float                       # temperature factor
    x: float                        # C-mol/cm³ of food in what the larva eats (0 in 2.5.1: deviation 25)
    k: float                        # half saturation
    gain: float                     # hunger_gain
    as_eeb: bool                    # hunger_as_EEB
    gut: dict[str, float]


def compile_group(energetics: Mapping[str, Any], age: float, x_food: float, dt: float, where: str
                  ) -> GroupEnergetics:
    """A group's ``energetics`` (larvaworld's ``energetics.DEB`` and ``energetics.gut``) checked and compiled;
    ``x_food`` is the food's molar concentration the DEB digests, ``dt`` the simulation's step (s)."""
    deb, gut = energetics["DEB"], energetics["gut"]
    species = str(deb["species"])
    if species not in SPECIES:
        raise SpecError(f"{where}energetics.DEB.species = {species!r} is not a phenotype; use {', '.join(SPECIES)}")
    if deb["assimilation_mode"] != "gut":
        raise SpecError(f"{where}energetics.DEB.assimilation_mode = {deb['assimilation_mode']!r} is not supported; "
                        "supported: gut")
    if not gut["constant_M_c"]:
        raise SpecError(f"{where}energetics.gut.constant_M_c = False is not supported; supported: True")
    if age != 0:
        raise SpecError(f"{where[:-len('model.')]}life_history.age = {age!r} h is not supported: the engine starts "
                        "DEB larvae at hatching (age 0)")
    for key in ("dt", "T", *_GUT_KEYS):
        value = float((deb if key in ("dt", "T") else gut)[key])
        if not value > 0:
            raise SpecError(f"{where}energetics.{'DEB' if key in ('dt', 'T') else 'gut'}.{key} = {value!r} must be > 0")
    if float(deb["dt"]) * 24 * 60 * 60 < dt:
        raise SpecError(f"{where}energetics.DEB.dt = {deb['dt']!r} d must be at least one simulation step "
                        f"(dt = {dt!r} s)")
    gain = float(deb["hunger_gain"])
    if not 0 <= gain <= 1:
        raise SpecError(f"{where}energetics.DEB.hunger_gain = {gain!r} must lie in [0, 1]")
    return GroupEnergetics(dt=float(deb["dt"]), tc=temperature_factor(float(deb["T"])), x=x_food,
                           k=half_saturation(species), gain=gain, as_eeb=bool(deb["hunger_as_EEB"]),
                           gut={key: float(gut[key]) for key in _GUT_KEYS})


def interval(deb_dt: float, dt: float, limit: int) -> int:
    """Simulation steps per DEB step: larvaworld's ``run_check`` adds ``dt`` to a buffer each step and steps the DEB
    when it reaches ``deb_dt * 24 * 60 * 60`` seconds (0.1 s six hundred times is 60.00000000000058 >= 60). Counted
    up to ``limit`` (a run's steps + 1: the DEB never steps in the run)."""
    target, total, steps = deb_dt * 24 * 60 * 60, 0.0, 0
    while total < target and steps < limit:
        total += dt
        steps += 1
    return max(steps, 1)


def food_concentration(food_params: Mapping[str, Any], empty: bool) -> float:
    """The molar concentration of the food the DEBs digest: none in larvaworld 2.5.1, whose DEB keeps its default,
    empty substrate (deviation 25); corrected, the food grid's substrate (standard, quality 1 unless it says)."""
    substrate = dict((food_params.get("food_grid") or {}).get("substrate") or {"type": "standard", "quality": 1.0})
    if substrate.get("type", "standard") not in SUBSTRATES:
        raise SpecError(f"env_params.food_params.food_grid.substrate.type = {substrate['type']!r} is not supported; "
                        f"supported: {', '.join(SUBSTRATES)}")
    quality = float(substrate.get("quality", 1.0))
    if not 0 <= quality <= 1:
        raise SpecError(f"env_params.food_params.food_grid.substrate.quality = {quality!r} must lie in [0, 1]")
    return 0.0 if empty else substrate_x(quality)


def at_hatching(group: GroupEnergetics, v_bite: float, eeb: float) -> dict[str, float]:
    """A DEB larva's body at the start (hatching): its length (m), bite volume and EEB (the hunger, where it drives
    the intermitter; larvaworld's DEB updates it at every egg step)."""
    h = hatch(group.tc, group.dt)
    hunger = float(np.clip(eeb + group.gain * (1 - h.E / h.V / E_M), 0, 1))
    return {"length": float(length_m(h.V)), "bite": float(bite(v_bite, h.V)), "eeb": hunger if group.as_eeb else eeb}


@dataclass
class EnergeticsSetup:
    """The DEB larvae of one simulation: their rows, shared DEB step, and per-larva parameters."""

    rows: Ints
    interval: int                   # simulation steps per DEB step
    dt: float                       # d
    params: dict[str, Floats]       # tc, x, k, gain, as_eeb, v_bite, base_eeb and the gut's keys, (m,)
    hatch: dict[str, Floats]        # E, V, E_H at hatching, (m,)


def simulation_setup(groups: Sequence[tuple[int, GroupEnergetics | None, float, float]], dt: float, nsteps: int
                     ) -> EnergeticsSetup | None:
    """One simulation's DEB larvae from its groups' ``(n, energetics, V_bite, EEB)``, stepped ``nsteps`` steps of
    ``dt`` seconds; None without any."""
    offsets = np.cumsum([0] + [n for n, *_ in groups])
    parts = [(n, g, v_bite, eeb, offsets[i]) for i, (n, g, v_bite, eeb) in enumerate(groups) if g is not None]
    if not parts:
        return None
    steps = {g.dt for _, g, *_ in parts}
    if len(steps) > 1:
        raise SpecError(f"every DEB of one simulation must step at one energetics.DEB.dt; got {sorted(steps)}")

    def per_larva(values: Sequence[float]) -> Floats:
        return np.concatenate([np.full(n, value, dtype=float) for (n, *_), value in zip(parts, values, strict=True)])

    deb_dt = parts[0][1].dt
    hatchlings = [hatch(g.tc, deb_dt) for _, g, *_ in parts]
    params = {
        "tc": per_larva([g.tc for _, g, *_ in parts]), "x": per_larva([g.x for _, g, *_ in parts]),
        "k": per_larva([g.k for _, g, *_ in parts]), "gain": per_larva([g.gain for _, g, *_ in parts]),
        "as_eeb": per_larva([float(g.as_eeb) for _, g, *_ in parts]),
        "v_bite": per_larva([v for _, _, v, _, _ in parts]), "base_eeb": per_larva([e for *_, e, _ in parts]),
        **{key: per_larva([g.gut[key] for _, g, *_ in parts]) for key in _GUT_KEYS},
    }
    return EnergeticsSetup(
        rows=np.concatenate([np.arange(start, start + n) for n, *_, start in parts]),
        interval=interval(deb_dt, dt, nsteps + 1), dt=deb_dt, params=params,
        hatch={key: per_larva([getattr(h, key) for h in hatchlings]) for key in ("E", "V", "E_H")},
    )


class Energetics:
    """The DEBs and guts of a batch's DEB larvae (rows ``rows`` of the batch), stepped every ``interval`` steps."""

    def __init__(self, setups: Sequence[EnergeticsSetup], offsets: Sequence[int], n: int):
        """The growing larvae of a batch's simulations, whose larvae start at ``offsets``, of ``n`` larvae in all."""
        cat = np.concatenate
        self.rows = cat([s.rows + off for s, off in zip(setups, offsets, strict=True)])
        self.interval, self.dt = setups[0].interval, setups[0].dt
        p = {key: cat([s.params[key] for s in setups]) for key in setups[0].params}
        self.p = p
        self.E, self.V, self.E_H = (cat([s.hatch[key] for s in setups]) for key in ("E", "V", "E_H"))
        self.L_b = np.power(self.V, 1.0 / 3.0)       # structural length at hatching: acceleration s_M = L / L_b
        self.intake = np.zeros(n)                     # food eaten since the last DEB step (X_V_buffer), per batch larva
        m = self.rows.size
        self.M_X, self.M_P, self.M_Pu, self.M_g = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
        self.M_c = np.zeros(m)   # the egg's carriers (negligible): the first step absorbs nothing anyway (M_P = 0)
        self.p_M = p["tc"] * P_M
        self.v, self.k_J = p["tc"] * V_COND, p["tc"] * K_J
        self.seconds = self.dt * 24 * 60 * 60
        self.f = p["x"] / (p["k"] + p["x"])            # the substrate's functional response (base_f)
        # the gut's radius relative to body length, volume per body volume, area per body area
        r_gut = 0.5 * p["r_w2l"] * p["r_gut_w"]
        self.r_gut_V, self.r_gut_A = np.pi * r_gut, 2 * np.pi * r_gut
        self.hunger = self._hunger()

    def _hunger(self) -> Floats:
        """``clip(base_EEB + hunger_gain (1 - e), 0, 1)`` with the scaled reserve density ``e = E / V / [E_m]``."""
        p = self.p
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(self.V > 0, self.E / self.V / E_M, 0.0)
        hunger: Floats = np.clip(p["base_eeb"] + p["gain"] * (1 - e), 0, 1)
        return hunger

    def eeb(self, eeb: Floats) -> Floats:
        """The EEB of the DEB larvae: the hunger where it drives the intermitter, else ``eeb`` (theirs, (m,))."""
        out: Floats = np.where(self.p["as_eeb"] > 0, self.hunger, eeb)
        return out

    def _gut(self, eaten: Floats, alive: Floats) -> Floats:
        """larvaworld's ``Gut.update`` (resize, ingest, digest, void the excess); the absorbed energy (J) per larva."""
        p = self.p
        L = np.power(self.V, 1.0 / 3.0)
        A_g = self.r_gut_A * L**2
        V_gm = self.r_gut_V * self.V
        M_c_max = p["M_c_per_cm2"] * A_g
        J_g = p["J_g_per_cm2"] * A_g
        M_X = self.M_X + p["x"] * eaten   # what a feeding motion ingests: 0 without
        M_g = self.M_g + (J_g * self.seconds - p["k_g"] * self.M_g)
        dM_X = np.where(M_X > 0, -np.minimum(M_X, p["k_dig"] * p["f_dig"] * M_g), 0.0)
        M_X = M_X + dM_X
        added = -p["y_P_X"] * dM_X
        dM_Pu = np.where((self.M_P > 0) & (self.M_c > 0),
                         np.minimum(self.M_P, p["k_abs"] * p["f_abs"] * self.M_c * self.seconds), 0.0)
        M_P = self.M_P + (added - dM_Pu)
        excess = M_X + M_P - p["M_gm"] * V_gm
        with np.errstate(divide="ignore", invalid="ignore"):
            r_P = M_P / (M_P + M_X)
        over = excess > 0
        M_P = np.where(over, M_P - r_P * excess, M_P)
        M_X = np.where(over, M_X - (1 - r_P) * excess, M_X)
        keep = alive > 0   # a dead larva's DEB is not stepped, nor its gut
        self.M_X, self.M_P = np.where(keep, M_X, self.M_X), np.where(keep, M_P, self.M_P)
        self.M_g, self.M_c = np.where(keep, M_g, self.M_g), np.where(keep, M_c_max, self.M_c)
        self.M_Pu = np.where(keep, self.M_Pu + dM_Pu, self.M_Pu)
        absorbed: Floats = dM_Pu * MU_E
        return absorbed

    def step(self) -> None:
        """One DEB step with the food eaten since the last: the gut's absorption is the assimilation flux (J/d) of an
        explicit-Euler step of Table S1/S2 for a larva (``deb_equations.step``), then the hunger."""
        alive = (self.E > 0).astype(float)
        p_A = self._gut(self.intake[self.rows], alive) / self.dt
        self.intake[:] = 0.0
        E, V, E_H = self.E, np.maximum(self.V, 0.0), self.E_H
        s_M = np.maximum(1.0, np.power(V, 1.0 / 3.0) / self.L_b)
        denom = KAP * E + E_G * V
        with np.errstate(divide="ignore", invalid="ignore"):
            p_C = np.where(denom > 0, E * (E_G * self.v * s_M * np.power(V, 2.0 / 3.0) + self.p_M * V) / denom, 0.0)
        p_G = KAP * p_C - self.p_M * V
        p_R = (1.0 - KAP) * p_C - self.k_J * E_H
        keep = alive > 0
        self.E = np.where(keep, E + (p_A - p_C) * self.dt, E)
        self.V = np.where(keep, np.maximum(V + p_G / E_G * self.dt, 0.0), self.V)
        self.E_H = np.where(keep, E_H + p_R * self.dt, E_H)
        self.hunger = self._hunger()

    def length(self) -> Floats:
        """Body length (m) per DEB larva."""
        out: Floats = length_m(self.V)
        return out

    def bite(self) -> Floats:
        """Bite volume per DEB larva."""
        out: Floats = bite(self.p["v_bite"], self.V)
        return out

    def metrics(self, n: int) -> dict[str, Floats]:
        """:data:`GROWTH_METRICS` per batch larva (NaN for larvae without a DEB)."""
        values = {
            "deb_f_deviation": self.f - 1,
            "deb_length": np.power(self.V, 1.0 / 3.0) / DEL_M * 10,        # mm
            "deb_mass": (self.V * D_V + self.E * W_E / MU_E) * 1000,       # mg, dry
            "reserve_density": np.where(self.V > 0, self.E / np.where(self.V > 0, self.V, 1.0) / E_M, 0.0),
            "hunger": self.hunger,
        }
        out = {}
        for name, value in values.items():
            full = np.full(n, np.nan)
            full[self.rows] = value
            out[name] = full
        return out
