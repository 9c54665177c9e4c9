"""The wind (docs/model.md, "Anemotaxis"): larvaworld 2.5.1's ``WindScape`` (lib/model/envs/valuegrid.py), its
``Windsensor`` (lib/model/modules/sensor.py) and how its output reaches the locomotor, vectorized over larvae, and
the ``anemotaxis`` metric of its ``comp_wind`` (lib/process/dataset.py).

A larva heading ``θ`` feels ``|wrap(θ − φ)| / π · speed`` of a wind blowing towards ``φ`` (0 downwind, ``speed``
upwind); its windsensor integrates it (perception ``null``): ``W ← W·exp(−decay_coef·dt) + dt·gain·value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from larvastudy.engine.arrays import Complexes, Floats
from larvastudy.errors import SpecError

#: The windsensor's weights (larvaworld's ``NengoBrain`` reads these four): sensor output to the turner input
#: (``*_ang``) and to the linear velocity (``*_lin``).
WEIGHTS = ("hunch_lin", "hunch_ang", "bend_lin", "bend_ang")
#: The bugs of larvaworld 2.5.1 this module reproduces (engine.setup.UPSTREAM_BUGS, deviations 16-18).
WIND_BUGS = {
    "no_windsensor": 16,         # the registry's explorer has no windsensor: no larva feels the wind
    "wind_in_degrees": 17,       # the wind direction (radians) is read as degrees, by the sensor and the metric
    "wind_weights_unused": 18,   # the default brain adds the sensor output to the turner input unweighted
}


@dataclass(frozen=True)
class WindSetup:
    """One simulation's wind and its larvae's windsensors, as the loop uses them."""

    direction_deg: float        # the direction the sensor compares headings with, in degrees
    axis: float                 # the direction the anemotaxis metric projects on, in radians
    speed: float
    sensing: bool               # some larva's windsensor acts
    decay: Floats               # (n,) exp(-decay_coef dt), 0 without a windsensor
    gain: Floats                # (n,) dt * gain_dict.windsensor, 0 without a windsensor
    to_turner: Floats           # (n,) weight of the sensor output in the turner input
    to_crawler: Floats          # (n,) weight of the sensor output in the linear velocity (corrected only)

    @property
    def signature(self) -> tuple[bool]:
        """What simulations stepped together must share."""
        return (self.sensing,)


def compile_wind(env: Mapping[str, Any], brains: Sequence[tuple[int, Mapping[str, Any]]], dt: float,
                 bugs: frozenset[str]) -> WindSetup | None:
    """The wind of ``env`` (None without a ``windscape``) and the windsensors of ``brains`` (larvae, brain config)
    per group; ``bugs`` of :data:`WIND_BUGS` are reproduced."""
    scape = env.get("windscape")
    if scape is None:
        return None
    if scape.get("puffs"):
        raise SpecError("env_params.windscape.puffs are not supported by the engine; supported: a constant wind")
    direction = float(scape["wind_direction"])
    speed = float(scape["wind_speed"])
    if not speed >= 0:
        raise SpecError(f"env_params.windscape.wind_speed = {speed!r} must be >= 0")
    parts: list[tuple[int, float, float, float, float]] = []
    for n, brain in brains:
        sensor = brain.get("windsensor")
        if sensor is None or "no_windsensor" in bugs:
            parts.append((n, 0.0, 0.0, 0.0, 0.0))
            continue
        if sensor["perception"] != "null":
            raise SpecError(f"windsensor.perception = {sensor['perception']!r} is not supported by the engine; "
                            "supported: null")
        decay_coef = float(sensor["decay_coef"])
        if not decay_coef >= 0:
            raise SpecError(f"windsensor.decay_coef = {decay_coef!r} must be >= 0")
        weights = sensor["weights"]
        unknown = sorted(set(weights) - set(WEIGHTS))
        if unknown:
            raise SpecError(f"windsensor.weights.{unknown[0]} is not a weight; weights: {', '.join(WEIGHTS)}")
        w = {k: float(weights.get(k, 0.0)) for k in WEIGHTS}
        if "wind_weights_unused" in bugs:   # larvaworld's DefaultBrain: A_in = A_olf + ... + A_wind
            turner, crawler = 1.0, 0.0
        else:
            turner, crawler = w["bend_ang"] + w["hunch_ang"], w["hunch_lin"] + w["bend_lin"]
        parts.append((n, math.exp(-dt * decay_coef), dt * float(sensor["gain_dict"]["windsensor"]), turner, crawler))

    def per_larva(i: int) -> Floats:
        return np.concatenate([np.full(part[0], part[i]) for part in parts])

    degrees = "wind_in_degrees" in bugs
    return WindSetup(direction_deg=direction if degrees else math.degrees(direction),
                     axis=math.radians(direction) if degrees else direction, speed=speed,
                     sensing=any(part[2] != 0 for part in parts), decay=per_larva(1), gain=per_larva(2),
                     to_turner=per_larva(3), to_crawler=per_larva(4))


class Wind:
    """The windsensors of a batch's larvae (one :class:`WindSetup` per simulation, all of one signature)."""

    def __init__(self, setups: Sequence[WindSetup], sizes: Sequence[int], weighted: bool):
        """The wind of a batch's simulations of ``sizes`` larvae; ``weighted``: the corrected model's weights act."""
        def per_larva(values: Sequence[float]) -> Floats:
            return np.repeat(np.asarray(values, dtype=float), sizes)

        cat = np.concatenate
        self.sensing = setups[0].sensing
        self.weighted = weighted   # the weights act (corrected), not larvaworld's unweighted sum (deviation 18)
        self.direction_deg = per_larva([s.direction_deg for s in setups])
        self.speed_per_deg = per_larva([s.speed / 180.0 for s in setups])
        self.axis = per_larva([s.axis for s in setups])
        self.decay, self.gain = cat([s.decay for s in setups]), cat([s.gain for s in setups])
        self.to_turner, self.to_crawler = cat([s.to_turner for s in setups]), cat([s.to_crawler for s in setups])
        n = self.decay.size
        self.output = np.zeros(n)
        self.low, self.high = np.full(n, -1.0), np.ones(n)

    def felt(self, head: Floats) -> Floats:
        """``WindScape.get_value``: ``|angle_dif(degrees(θ mod 2π), direction)| / 180 · speed``, in degrees."""
        heading = np.rad2deg(np.mod(head, 2.0 * math.pi))
        difference = np.mod(heading - self.direction_deg + 180.0, 360.0) - 180.0
        felt: Floats = np.abs(difference) * self.speed_per_deg
        return felt

    def step(self, head: Floats, drive: Floats, lin: Floats) -> tuple[Floats, Floats]:
        """Sense the wind at heading ``head`` (the pose before this step's move); the turner input ``drive`` and the
        linear velocity ``lin`` with the sensor output added as the brain wires it."""
        self.output = self.output * self.decay + self.gain * self.felt(head)
        if not self.weighted:   # larvaworld's DefaultBrain: the summed activation, unlimited (deviation 18)
            return drive + self.to_turner * self.output, lin
        # corrected: the weights act, each limited to the turner's input range [-1, 1]
        drive = np.clip(drive + self.to_turner * self.output, self.low, self.high)
        return drive, lin * (1.0 + np.clip(self.to_crawler * self.output, self.low, self.high))


def anemotaxis(first: Complexes, last: Complexes, axis: Floats) -> Floats:
    """larvaworld's ``comp_final_anemotaxis`` in mm: the displacement from the first recorded position (after step
    1) to the last, projected on the wind direction ``axis`` (radians): ``d · cos(atan2(dy, dx) − axis)``."""
    shift = last - first
    projected: Floats = np.abs(shift) * np.cos(np.angle(shift) - axis) * 1000.0
    return projected
