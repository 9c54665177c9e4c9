"""An associative olfactory memory: larvastudy's model of odor-reward conditioning, not larvaworld's.

larvaworld's RL memory cannot learn which odor predicts food (docs/model.md, "Odor learning"); this memory can.
Each larva holds an associative strength ``V`` per odor of the arena, learned by the Rescorla-Wagner rule while
learning is on (steps ``1 .. learn_last``, larvaworld's ``train_dur``)::

    V_i += alpha * dt * x_i * (r - sum_j x_j V_j)

with ``x_i`` 1 where odor ``i`` reaches the larva's head (its concentration there is above 0: for a Gaussian odor,
while a source of it is on) and ``r`` 1 where the larva finds food (the feeder's detection, as the RL memory's
reward). The learned gain is expressed as an olfactory gain only while the expected reward exceeds the one at hand
(Gerber & Hendel 2006, "Outcome expectations drive learned behaviour in larval Drosophila")::

    gain_i = gain * max(V_i - r, 0)

so conditioned larvae approach the CS off food and not on it. Everything here is deterministic: no draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from larvastudy.engine.arrays import Bools, Floats, Ints
from larvastudy.errors import SpecError

#: The memory's mode in a model's ``brain.memory`` (larvaworld's is "RL").
MODE = "associative"


@dataclass(frozen=True)
class AssociationGroup:
    """One larva group's associative memory: its per-step learning rate, full gain and last learning step."""

    rate: float                  # alpha * dt
    gain: float                  # 1/s
    learn_last: int              # last step (1-based) with learning on


@dataclass
class AssociationSetup:
    """The associative memories of one simulation's larvae, one row per larva with one."""

    rows: Ints
    rate: Floats
    gain: Floats
    learn_last: Ints


def last_learning_step(train_dur: float, dt: float, nsteps: int) -> int:
    """The last step (1-based, at most ``nsteps``) with ``step * dt <= train_dur * 60``, in larvaworld's floats."""
    horizon = train_dur * 60
    last = max(int(horizon / dt) + 2, 0)
    while last > 0 and last * dt > horizon:
        last -= 1
    return min(last, nsteps)


def association_group(memory: Mapping[str, Any], dt: float, nsteps: int, where: str) -> AssociationGroup:
    """A group's ``brain.memory`` of mode "associative", checked."""
    alpha, gain, train_dur = (float(memory[k]) for k in ("alpha", "gain", "train_dur"))
    if not (math.isfinite(alpha) and alpha >= 0 and alpha * dt <= 1):
        raise SpecError(f"{where}memory.alpha = {memory['alpha']!r} must lie in [0, 1/dt = {1 / dt:g}] (per second)")
    if not math.isfinite(gain):
        raise SpecError(f"{where}memory.gain = {memory['gain']!r} must be a finite gain (1/s)")
    return AssociationGroup(rate=alpha * dt, gain=gain, learn_last=last_learning_step(train_dur, dt, nsteps))


def association_setup(groups: Sequence[tuple[int, int, AssociationGroup]]) -> AssociationSetup | None:
    """The simulation's associative memories from (first larva, larvae, memory) per group with one."""
    if not groups:
        return None
    return AssociationSetup(
        rows=np.concatenate([np.arange(start, start + n) for start, n, _ in groups]),
        rate=np.concatenate([np.full(n, g.rate) for _, n, g in groups]),
        gain=np.concatenate([np.full(n, g.gain) for _, n, g in groups]),
        learn_last=np.concatenate([np.full(n, g.learn_last) for _, n, g in groups]),
    )


class Associations:
    """Every associative memory of a batch: ``V`` is (odors, larvae with a memory)."""

    def __init__(self, setups: Sequence[AssociationSetup], offsets: Sequence[int], odors: int):
        """The memories of a batch's simulations (each has some), whose larvae start at ``offsets``, over ``odors``
        odor layers."""
        parts = list(zip(setups, offsets, strict=True))
        self.rows: Ints = np.concatenate([s.rows + off for s, off in parts])
        self.rate: Floats = np.concatenate([s.rate for s, _ in parts])
        self.gain: Floats = np.concatenate([s.gain for s, _ in parts])
        self.learn_last: Ints = np.concatenate([s.learn_last for s, _ in parts])
        self.strength: Floats = np.zeros((odors, self.rows.size))

    def step(self, k: int, present: Bools, reward: Bools) -> Floats:
        """Step ``k`` (1-based) with each odor's presence (odors, m) and the reward (m,); the gains (odors, m)."""
        r = reward.astype(float)
        x = present.astype(float)
        learning = k <= self.learn_last
        if learning.any():
            error = r - (x * self.strength).sum(axis=0)
            self.strength += np.where(learning, self.rate * error, 0.0) * x
        expressed: Floats = self.gain * np.maximum(self.strength - r, 0.0)
        return expressed

    def learned_gains(self, n: int) -> dict[str, Floats]:
        """``g_odor1``/``g_odor2`` per larva: the gain each of the first two odors is expressed with off food."""
        out = {}
        for j, name in enumerate(("g_odor1", "g_odor2")):
            values = np.full(n, np.nan)
            if j < self.strength.shape[0]:
                values[self.rows] = self.gain * np.maximum(self.strength[j], 0.0)
            out[name] = values
        return out
