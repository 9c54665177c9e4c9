"""Per-larva metrics of larvaworld's enrichment (spec §8) and its intermitter's endpoint counts, accumulated
step by step.

Every metric is a value per larva; a simulation's metric is its mean (or std) over larvae.
``PI`` per larva is its side at the end (+1 CS side, -1 UCS side, 0 in the neutral band), so its
mean is larvaworld's PI (not rounded to 3 decimals here). :data:`UNITS` gives every metric's unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from larvastudy.errors import SpecError

BASE_METRICS = ("v_mu", "sv_mu", "cum_dst", "exec_fraction", "dsp_0_40", "dsp_0_60")
#: Bouts a larva finished, counted as larvaworld's ``Intermitter`` registers them (``Npauses``, ``Nstridechains``):
#: a pause or run still going at the end does not count.
BOUT_METRICS = ("num_pauses", "num_stridechains")
#: Feeding motions (larvaworld's ``Nfeeds``) and those with food under the mouth or without it (``Nfeeds_success``,
#: ``Nfeeds_fail``); zero for larvae without a feeder.
FEED_METRICS = ("num_feeds", "successful_feeds", "failed_feeds")
#: ``cum_food_detected``: the steps a larva found food (larvaworld's ``Larva.cum_food_detected``; larvae with a feeder
#: or a toucher look for it), of which ``on_food_dur_ratio`` is the fraction.
FOOD_METRICS = ("amount_eaten", "on_food_dur_ratio", "cum_food_detected", *FEED_METRICS)
PI_METRICS = ("PI", "PI2")
#: The best gain an RL olfactory memory has learned for its first and second odor, per larva (larvaworld's
#: ``RLOlfMemory.first_odor_best_gain`` / ``second_odor_best_gain``, plotted as ``g_odor1`` / ``g_odor2`` from
#: its ``best_gains`` table; 2.5.1 records neither), or the gain an associative memory expresses off food
#: (engine/association.py). NaN for a larva without a memory or a memory with one odor.
LEARNING_METRICS = ("g_odor1", "g_odor2")
#: The displacement from the position after step 1 to the last, projected on the wind direction (larvaworld's
#: ``comp_wind``; engine/wind.py). Only with a windscape.
WIND_METRICS = ("anemotaxis",)
#: A DEB larva's ``f - 1`` (larvaworld's ``DEB.deb_f_deviation``) and its recorded length, dry mass, scaled reserve
#: density and hunger (``DEB.dict``'s ``length``, ``mass``, ``reserve_density``, ``hunger``) at the end; NaN for larvae
#: without energetics (engine/deb.py).
GROWTH_METRICS = ("deb_f_deviation", "deb_length", "deb_mass", "reserve_density", "hunger")
#: Every metric's unit ("" where it has none); ``<kind>_dst_to_<source>`` metrics are in mm.
UNITS = {
    "v_mu": "mm/s", "sv_mu": "body lengths/s", "cum_dst": "mm", "exec_fraction": "fraction of steps",
    "dsp_0_40": "mm", "dsp_0_60": "mm", "num_pauses": "pauses", "num_stridechains": "runs",
    "num_feeds": "feeding motions", "successful_feeds": "feeding motions", "failed_feeds": "feeding motions",
    # 1000 x the litres eaten: a bite is V_bite · L³ · 1000 L with L in m (spec §5.5); larvaworld names no unit.
    "amount_eaten": "mL", "on_food_dur_ratio": "fraction of steps", "cum_food_detected": "steps", "PI": "", "PI2": "",
    # The olfactor output grows by dt · gain · (C/C_prev - 1) per step: a gain is per second.
    "g_odor1": "1/s", "g_odor2": "1/s",
    "anemotaxis": "mm",   # larvaworld: m
    "deb_f_deviation": "", "deb_length": "mm", "deb_mass": "mg", "reserve_density": "", "hunger": "",
}
#: larvaworld names accepted for compatibility. ``ingested_food_volume`` is undefined in 2.5.1
#: (spec §8); the food a larva ate, ``amount_eaten``, is its documented stand-in.
METRIC_ALIASES = {"ingested_food_volume": "amount_eaten"}
DISPERSAL_TIMES = {"dsp_0_40": 40.0, "dsp_0_60": 60.0}


def available_metrics(source_names: list[str] | Mapping[str, Any], odor_ids: tuple[str, ...] = (),
                      memory: bool = False, wind: bool = False, growth: bool = False) -> list[str]:
    """Every metric the engine can compute in an arena with these named sources and odor ids (PI needs a CS and
    a UCS, as sources or odors; PI2 the sources themselves), with ``memory`` if some larva has a memory (RL or
    associative), ``wind`` if the arena has a windscape and ``growth`` if some larva has energetics."""
    names = list(BASE_METRICS) + list(BOUT_METRICS) + list(FOOD_METRICS)
    if "CS" in source_names and "UCS" in source_names:
        names += list(PI_METRICS)
    elif "CS" in odor_ids and "UCS" in odor_ids:
        names.append("PI")
    if memory:
        names += list(LEARNING_METRICS)
    if wind:
        names += list(WIND_METRICS)
    if growth:
        names += list(GROWTH_METRICS)
    for src in source_names:
        names += [f"final_dst_to_{src}", f"mean_dst_to_{src}"]
    return names


def unit(name: str) -> str:
    """The unit of metric ``name`` (aliases resolved; "" for none)."""
    name = canonical(name)
    if name.startswith(("final_dst_to_", "mean_dst_to_")):
        return "mm"
    return UNITS.get(name, "")


def canonical(name: str) -> str:
    """A metric's canonical name (aliases resolved)."""
    return METRIC_ALIASES.get(name, name)


def tree_metrics(tree: Mapping[str, Any]) -> list[str]:
    """Every metric the engine can compute for experiment tree ``tree``."""
    env = tree["env_params"]
    odor_ids = tuple(str(layer["id"]) for layer in env["odorscape"]["odor_layers"])
    # learned gains wherever larvae may learn: with a memory, or in a training experiment (NaN without a memory)
    memory = bool((tree.get("trials") or {}).get("condition")) or any(
        group["model"]["brain"].get("memory") for group in tree["larva_groups"].values()
        if isinstance(group.get("model"), Mapping))
    # growth metrics wherever larvae may grow: with energetics, or in an experiment giving its larvae a life history
    # (NaN without energetics)
    growth = any(group.get("life_history") or (isinstance(group.get("model"), Mapping)
                                               and group["model"].get("energetics"))
                 for group in tree["larva_groups"].values())
    return available_metrics(list(env["food_params"]["source_units"]), odor_ids, memory,
                             env.get("windscape") is not None, growth)


def resolve_metrics(tree: Mapping[str, Any]) -> tuple[str, ...]:
    """The experiment's metric list, checked and with aliases resolved."""
    allowed = tree_metrics(tree)
    wanted = [canonical(m) for m in tree.get("metrics", BASE_METRICS)]
    for name in wanted:
        if name not in allowed:
            raise SpecError(f"metric {name!r} is not available for experiment "
                            f"{tree.get('experiment', '?')!r}; available: {', '.join(allowed)}")
    return tuple(dict.fromkeys(wanted))


class Recorder:
    """Accumulates what the requested metrics need, for every larva of a batch."""

    def __init__(self, metrics: tuple[str, ...], start: np.ndarray, length: np.ndarray,
                 landmarks: dict[str, np.ndarray], arena_width: np.ndarray, nsteps: int, dt: float):
        self.metrics, self.start, self.length = metrics, start.copy(), length
        self.nsteps, self.dt, self.arena_width = nsteps, dt, arena_width
        n = start.shape[0]
        self.speed_sum = np.zeros(n)       # Σ |v| over steps 2..N
        self.first_speed = np.zeros(n)
        self.crawl_steps = np.zeros(n)
        self.dispersal = {m: np.full(n, np.nan) for m in DISPERSAL_TIMES if m in metrics}
        self.dispersal_step = {round(t / dt) - 1: m for m, t in DISPERSAL_TIMES.items() if m in self.dispersal}
        self.tracked = {src: landmarks[src] for src in landmarks
                        if f"mean_dst_to_{src}" in metrics or f"final_dst_to_{src}" in metrics}
        self.dst_sum = {src: np.zeros(n) for src in self.tracked}
        self.first_pos = start.copy()   # the position after step 1, larvaworld's first recorded row
        self.pi2 = "PI2" in metrics
        if self.pi2:
            self.cs, self.ucs = landmarks["CS"], landmarks["UCS"]
            self.pi2_sum = np.zeros(n)

    def record(self, t: int, pos: np.ndarray, speed: np.ndarray, crawling: np.ndarray) -> None:
        """Record the state after step ``t`` (0-based): positions, |velocity| and crawler activity."""
        if t == 0:
            self.first_speed += speed
            self.first_pos = pos.copy()
        else:
            self.speed_sum += speed
        self.crawl_steps += crawling
        if self.pi2:
            self.pi2_sum += np.abs(pos - self.ucs) - np.abs(pos - self.cs)
        for src, where in self.tracked.items():
            self.dst_sum[src] += np.abs(pos - where)
        name = self.dispersal_step.get(t)
        if name is not None:
            self.dispersal[name] = np.abs(pos - self.start) * 1000.0

    def per_larva(self, pos: np.ndarray, counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every requested metric per larva, after the last step; ``counts`` holds ``amount_eaten``, the steps on
        food (``food_steps``), the :data:`BOUT_METRICS`, the successful and failed feeds, the :data:`LEARNING_METRICS`,
        with wind the :data:`WIND_METRICS` and the :data:`GROWTH_METRICS`."""
        n, dt = self.nsteps, self.dt
        v_mu = self.speed_sum / max(n - 1, 1) * 1000.0
        out: dict[str, np.ndarray] = {
            "v_mu": v_mu,
            "sv_mu": v_mu / (self.length * 1000.0),
            "cum_dst": (self.speed_sum + self.first_speed) * dt * 1000.0,
            "exec_fraction": self.crawl_steps / n,
            "amount_eaten": counts["amount_eaten"],
            "on_food_dur_ratio": counts["food_steps"] / n,
            "cum_food_detected": counts["food_steps"],
            "num_feeds": (counts["successful_feeds"] + counts["failed_feeds"]).astype(float),
            **{name: counts[name].astype(float) for name in (*BOUT_METRICS, "successful_feeds", "failed_feeds")},
            **self.dispersal,
            **{name: counts[name] for name in (*LEARNING_METRICS, *WIND_METRICS, *GROWTH_METRICS) if name in counts},
        }
        if "PI" in self.metrics:
            band = 0.1 * self.arena_width
            out["PI"] = (pos.real <= -band).astype(float) - (pos.real >= band)
        if self.pi2:
            out["PI2"] = self.pi2_sum / n / abs(self.ucs - self.cs)
        for src, where in self.tracked.items():
            out[f"mean_dst_to_{src}"] = self.dst_sum[src] / n * 1000.0
            out[f"final_dst_to_{src}"] = np.abs(pos - where) * 1000.0
        return {name: out[name] for name in self.metrics}
