"""The time loop: many simulations of one signature stepped together, vectorized over all larvae.

Step order follows larvaworld's ``ExpRun`` (spec §1, §3.5): food detection and odor sensing at the
head tip of the previous pose, then feeder → crawler → intermitter → turner, then the body moves
(torque physics, arena correction, head move, tail drag) and a completed bite is eaten. Larvae of one
simulation never interact except through shared food, so stepping them together is exact; bites
taken from one source or grid cell in one step are served in larva order, as upstream.

Every per-larva constant is a full array (array-array arithmetic is the cheapest numpy call on
small arrays), and every branch on batch composition computes per larva what a lone simulation
would, so a simulation's results do not depend on what it is batched with. For the same reason no
complex × complex product with two nonzero imaginary parts is taken: numpy's SIMD loops may fuse
it (FMA) differently for different array lengths; products where one factor is real (or complex
with a zero imaginary part) round the same either way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from larvastudy.engine.arena import Arena, grid_cells
from larvastudy.engine.arrays import Bools, Complexes, Floats, Ints
from larvastudy.engine.association import Associations
from larvastudy.engine.deb import Energetics
from larvastudy.engine.metrics import GROWTH_METRICS, LEARNING_METRICS, Recorder
from larvastudy.engine.setup import AGENT_PARAMS, FEED_CHUNK, TWO_PI, Event, MemorySetup, SimSetup, edge_padded
from larvastudy.engine.touch import batch_touchers
from larvastudy.engine.turner import PARAM_NAMES as TURNER_PARAMS
from larvastudy.engine.turner import NeuralTurner
from larvastudy.engine.wind import Wind, anemotaxis

EXEC, PAUSE, FEED = 0, 1, 2
ANG_CORRECTION = 8.0 * math.pi / 90.0   # rad/s removed per arena-correction iteration
LIN_CORRECTION = 0.00011                # m/s removed per linear-correction iteration
MAX_CORRECTIONS = 100


_T = TypeVar("_T")


def _clip(x: Floats, low: Floats, high: Floats) -> Floats:
    return np.minimum(np.maximum(x, low), high)


def _draw(table: Ints, width: int, rows: Ints, counter: Ints) -> Ints:
    """Next pre-drawn value per selected larva: ``table[row, counter[row]]`` on the flat table."""
    drawn: Ints = table[rows * width + counter[rows]]
    return drawn


def _each(values: list[_T | None]) -> list[_T]:
    """What every simulation of a batch has: a signature implies whether they have it (food grid, feeding draws,
    memories), so one simulation without it is a bug."""
    present = [value for value in values if value is not None]
    if len(present) != len(values):
        raise ValueError("simulations of one signature differ: some lack what the others have")
    return present


class BatchRun:
    """Simulations sharing one signature, concatenated larva by larva."""

    # State whose type numpy's stubs lose (engine/arrays.py). From odor_pos on, it exists only with odors or food.
    pos: Complexes
    start_pos: Complexes
    unit: Complexes
    imag_unit: Complexes
    head: Floats
    start_head: Floats
    tail: Floats
    two_pi: Floats
    pi: Floats
    inv_two_pi: Floats
    inv_dt: Floats
    dt_arr: Floats
    att_scale: Floats
    crawler_phase: Floats
    feeder_phase: Floats
    strides_w: int
    chains_w: int
    pauses_w: int
    stride_rows: Ints
    stride_i: Ints
    chain_i: Ints
    pause_i: Ints
    n_exp: Ints
    pause_len: Ints
    n_str: Ints
    ticks: Ints
    counts: dict[str, Ints]
    odor_pos: Complexes                 # (sources, larvae)
    odor_int: Floats
    layer_starts: Ints | None
    layer_empty: Bools
    gain_sum: Floats
    decay: Floats
    food_pos: Complexes                 # (larvae, sources)
    food_amount: Floats
    odor_only: Ints
    grid: Floats | None                 # the simulations' food grids, flat, one after the other
    grid_shape: tuple[int, ...]         # (gx, gy), with a grid
    grid_full: Floats

    def __init__(self, setups: list[SimSetup]):
        first = setups[0]
        self.nsteps, self.dt = first.nsteps, first.dt
        self.sizes = [s.n for s in setups]
        self.offsets: list[int] = np.cumsum([0, *self.sizes])[:-1].tolist()   # each simulation's first larva
        self.n = n = int(sum(self.sizes))
        self.sim = np.repeat(np.arange(len(setups)), self.sizes)
        cat = np.concatenate
        p: dict[str, Floats] = {k: cat([s.params[k] for s in setups]) for k in AGENT_PARAMS + TURNER_PARAMS}
        self.p = p
        dt = self.dt

        def per_larva(values: Sequence[object]) -> npt.NDArray[Any]:
            return np.repeat(np.asarray(values), self.sizes, axis=0)

        self.zeros, self.ones, self.minus_one = np.zeros(n), np.ones(n), np.full(n, -1.0)
        self.two_pi, self.pi = np.full(n, TWO_PI), np.full(n, math.pi)
        self.inv_two_pi = np.full(n, 1.0 / TWO_PI)
        self.inv_dt, self.dt_arr = np.full(n, 1.0 / dt), np.full(n, dt)
        self.half = 0.5 * p["length"]
        # Complex copies for complex arithmetic without per-step casts; a zero imaginary part keeps
        # the products exact (see the module docstring).
        self.half_c, self.imag_unit = self.half + 0j, np.full(n, 1j)
        self.sensing, self.feed = first.sensing, first.feeding
        bugs = first.bugs   # larvaworld's, where reproduced (setup.UPSTREAM_BUGS)
        self.clip_sensors, self.upstream_food = "unclipped_olfactor" not in bugs, "food_detection" in bugs
        self.arena = Arena(first.arena[0], per_larva([s.arena[1] for s in setups]),
                           per_larva([s.arena[2] for s in setups]), polygon="arena_polygon" in bugs)
        # Body.
        self.pos, self.head = cat([s.pos for s in setups]), cat([s.head for s in setups])
        self.tail, self.unit = self.head.copy(), np.exp(1j * self.head)
        self.omega, self.bend = np.zeros(n), np.zeros(n)
        self.tail_gain = 2.0 * dt * p["bend_correction_coef"] / p["length"]
        self.velocity_mode = p["velocity_mode"] > 0
        self.any_velocity_mode = bool(self.velocity_mode.any())
        ks = np.arange(1, MAX_CORRECTIONS + 1) * ANG_CORRECTION
        self.correction_rounds = (ks[:8], ks[8:])
        # The position correction keeps inside tips inside; only larvae placed outside (tactile_detection's periphery)
        # or whose body grows (a longer body may reach over the boundary) need the tests for tips and joints outside.
        self.may_be_outside = (first.energetics is not None
                               or bool(self.arena.outside(self.pos + self.half_c * self.unit).any()))
        # Crawler, feeder, interference.
        self.crawler_phase = cat([s.crawler_phase for s in setups])
        self.feeder_phase = cat([s.feeder_phase for s in setups])
        self.crawl_step = TWO_PI * dt * p["crawler_freq"]
        self.feed_step = TWO_PI * dt * p["feeder_freq"]
        self.att_scale = np.full(n, -0.5)
        self.att_needs_clip = bool(np.any(p["att_base"] < 0) or np.any(p["att_base"] + p["att_max"] > 1))
        self.att_output = p["att_on_output"] > 0
        self.att_input = p["att_on_input"] > 0
        self.turner = NeuralTurner(dt, p, cat([s.turner for s in setups], axis=1))

        # Pre-drawn bouts and stride lengths, flattened row by row.
        strides = edge_padded([s.strides for s in setups])
        chains = edge_padded([s.chains for s in setups])
        pauses = edge_padded([s.pauses for s in setups])
        self.strides, self.strides_w = strides.ravel(), strides.shape[1]
        self.chains, self.chains_w = chains.ravel(), chains.shape[1]
        self.pauses, self.pauses_w = pauses.ravel(), pauses.shape[1]
        rows = np.arange(n)
        self.stride_i, self.chain_i, self.pause_i = np.zeros(n, int), np.zeros(n, int), np.full(n, -1)
        self.freq_length = p["crawler_freq"] * p["length"]
        self.stride_rows = rows * self.strides_w
        self.n_exp = self.chains[rows * self.chains_w]
        self.pause_len = np.zeros(n, int)
        # larvaworld ends a run after Nexp + 1 strides and a pause of k ticks after k + 1 (deviation 3).
        self.bout_extra = 1 if "long_bouts" in bugs else 0
        self.n_str, self.ticks = np.zeros(n, int), np.zeros(n, int)
        self.state = np.full(n, EXEC, np.int8)   # the first step starts a run (spec §3.6), whose crawler moves
        # in that step in larvaworld (its crawler is built active), from the second step on in the corrected model
        self.crawling = np.ones(n) if "crawl_from_first_step" in bugs else np.zeros(n)
        self.crawl_mask = self.crawling > 0
        self.feeding = np.zeros(n)

        if self.sensing:
            # Odor arrays are (sources or layers, larvae): sums over the short axis stay contiguous.
            self.odor_pos = per_larva([s.odor_pos for s in setups]).T.copy()
            self.odor_int = per_larva([s.odor_intensity for s in setups]).T.copy()
            self.odor_scale = (-0.5 / per_larva([s.odor_spread for s in setups])).T.copy()
            layers = first.gains.shape[1]
            # Sources are listed layer by layer; several sources of one odor are summed row by row, in
            # source order (a matrix product would round differently for different numbers of larvae).
            self.layer_starts = None
            if list(first.odor_layer) != list(range(layers)):
                counts = np.bincount(first.odor_layer, minlength=layers)
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                self.layer_starts = np.minimum(starts, len(first.odor_layer) - 1)
                self.layer_empty = counts == 0
            self.gains = (cat([s.gains for s in setups]) * dt).T.copy()
            self.gain_sum = self.gains.sum(axis=0)
            self.odor_last = np.ones((layers, n))
            self.odor_out = np.zeros(n)
            self.decay = np.exp(-p["decay_coef"] * dt)
        self.amount_eaten, self.food_steps = np.zeros(n), np.zeros(n)
        # Finished bouts and feeding motions, larvaworld's intermitter counters (engine/metrics.py).
        self.counts = {name: np.zeros(n, int) for name in
                       ("num_pauses", "num_stridechains", "successful_feeds", "failed_feeds")}
        if self.feed:
            self.food_pos = per_larva([s.food_pos for s in setups])
            self.n_food = first.food_pos.size
            self.food_keys = self.sim[:, None] * self.n_food + np.arange(self.n_food)
            self.food_amount = cat([s.food_amount for s in setups])
            self.grid = None
            if first.grid is not None:
                self.grid = cat([grid.ravel() for grid in _each([s.grid for s in setups])])
                self.grid_shape = first.grid.shape
            self.can_feed = p["has_feeder"] > 0
            self.feed_bouts = p["feed_bouts"] > 0
            # Food is found within the larva's radius of the head tip, not the source's (spec §5.3).
            self.reach2 = np.square(p["radius"])[:, None]
            self.feed_rngs = _each([s.feed_rng for s in setups])
            self.odor_only = per_larva([s.odor_only for s in setups])
            self.uniforms = np.empty((0, 1, n))

        # Odor learning (docs/model.md, "Odor learning"): the memories and the trial events.
        self.memory = _Memories(setups, self.sizes, dt) if first.memory is not None else None
        self.association = None   # docs/model.md, "Odor conditioning"; without odors it has nothing to condition
        if first.association is not None and self.sensing:
            self.association = Associations(_each([s.association for s in setups]), self.offsets, first.gains.shape[1])
        self.events = {event.step: event for event in first.events}   # one schedule for the whole batch
        self.odor_can_vanish = any(e.intensities is not None and 0.0 in e.intensities for e in first.events)
        self.start_pos, self.start_head = self.pos.copy(), self.head.copy()
        self.reset_to_start = "pose_not_reset" not in bugs
        if self.feed and self.grid is not None:
            self.grid_full = self.grid.copy()

        # The wind (docs/model.md, "Anemotaxis"): None without a windscape.
        self.wind = (Wind(_each([s.wind for s in setups]), self.sizes, "wind_weights_unused" not in bugs)
                     if first.wind is not None else None)
        # Tactile detection (docs/model.md, "Tactile detection"): touch sensors, and food found by a toucher.
        self.touch = None if first.touch is None else batch_touchers(
            setups, _each([s.touch for s in setups]), self.sizes, dt, p["length"], p["radius"], self.arena.width,
            self.arena.height, self.clip_sensors)
        # Growth (docs/model.md, "Growth"): DEBs and guts, stepped every `interval` steps.
        self.deb = (Energetics(_each([s.energetics for s in setups]), self.offsets, n)
                    if first.energetics is not None else None)
        landmarks = {name: per_larva([s.landmarks[name] for s in setups]) for name in first.landmarks}
        self.recorder = Recorder(first.metrics, self.pos, p["length"], landmarks,
                                 self.arena.width, self.nsteps, dt)

    # -- sensing -----------------------------------------------------------------------------
    def _sense(self, t: int, tip: Complexes) -> Floats:
        """Olfactor output after sensing at ``tip`` ('log' perception, spec §4.2)."""
        conc = self.odor_int * np.exp(np.square(np.abs(tip - self.odor_pos)) * self.odor_scale)
        if self.layer_starts is not None:
            conc = np.add.reduceat(conc, self.layer_starts, axis=0)
            conc[self.layer_empty] = 0.0
        if t > 0:
            ratio = conc / self.odor_last
            if self.odor_can_vanish:   # larvaworld's log perception: no change sensed after a concentration of 0
                ratio = np.where(self.odor_last > 0, ratio, 1.0)
            drive = (self.gains * ratio).sum(axis=0) - self.gain_sum
            self.odor_out = self.odor_out * self.decay + drive
            if self.clip_sensors:  # deviation 2: the declared output range [-1, 1], which larvaworld skips
                self.odor_out = _clip(self.odor_out, self.minus_one, self.ones)
        self.odor_last = conc
        return self.odor_out

    def _detect_food(self, tip: Complexes, choice: Floats) -> tuple[Bools, Ints]:
        """Per larva: whether food is found (spec §5.3), and the index of that source or grid cell.

        Sources are looked for within the larva's radius of the head tip; the corrected model takes the nearest
        (deviation 5). larvaworld takes one at random (with the uniform draw ``choice``) and, while more than 10
        sources are left, the nearest within reach of the body position, for larvae without a feeder too.
        """
        if self.grid is not None:
            where = grid_cells(tip.real, tip.imag, self.grid_shape, self.sim, self.arena.width, self.arena.height)
            return (self.grid[where] > 0) & self.can_feed, where
        if self.food_pos.size == 0:  # an arena without food (e.g. a feeder in the dish): nothing to find
            return np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=int)
        rows = np.arange(self.n)
        left = self.food_amount[self.food_keys] > 0
        if not self.upstream_food:
            d2 = np.square(np.abs(tip[:, None] - self.food_pos))
            d2[(d2 > self.reach2) | ~left] = np.inf
            nearest = d2.argmin(axis=1)
            return np.isfinite(d2[rows, nearest]) & self.can_feed, self.food_keys[rows, nearest]
        many = self.odor_only + left.sum(axis=1) > 10
        d2 = np.square(np.abs(np.where(many, self.pos, tip)[:, None] - self.food_pos))
        within = (d2 <= self.reach2) & left
        count = within.sum(axis=1)
        source = (np.cumsum(within, axis=1) > np.floor(choice * count)[:, None]).argmax(axis=1)   # drawn
        if np.count_nonzero(many):
            source = np.where(many, np.where(within, d2, np.inf).argmin(axis=1), source)          # nearest
        return (count > 0) & (self.can_feed | many), self.food_keys[rows, source]

    def _eat(self, eaters: Ints, where: Ints) -> None:
        """Serve one bite to each eater, in larva order where several share a source or cell."""
        store = self.grid if self.grid is not None else self.food_amount
        keys = where[eaters]
        order = np.argsort(keys, kind="stable")
        keys, eaters = keys[order], eaters[order]
        bite = self.p["bite"][eaters]
        # Bites summed per simulation (keys are simulation-major), as alone: a sum over the whole batch would round
        # the food left before each bite differently for a simulation batched after others.
        sims = self.sim[eaters]
        row = np.cumsum(np.r_[True, sims[1:] != sims[:-1]]) - 1
        column = np.arange(keys.size) - np.searchsorted(sims, sims)
        table = np.zeros((row[-1] + 1, column.max() + 1))
        table[row, column] = bite
        cum = np.cumsum(table, axis=1)[row, column]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        served = cum - bite   # bites of the simulation's eaters before this one, then those of its cell's before it
        before = served - served[first[np.searchsorted(first, np.arange(keys.size), side="right") - 1]]
        eaten = np.clip(store[keys] - before, 0.0, bite)
        np.subtract.at(store, keys, eaten)
        self.amount_eaten[eaters] += 1000.0 * eaten
        if self.deb is not None:
            self.deb.intake[eaters] += eaten

    def _feed_uniforms(self, t: int) -> Floats:
        """This step's uniform draws, (draws, larvae), from each simulation's own stream: one per larva for the
        feeding decision, and in larvaworld's model one more for its choice among sources within reach."""
        if t % FEED_CHUNK == 0:
            rows, draws = min(FEED_CHUNK, self.nsteps - t), 2 if self.upstream_food else 1
            self.uniforms = np.concatenate([rng.random((rows, draws, n))
                                            for rng, n in zip(self.feed_rngs, self.sizes, strict=True)], axis=2)
        drawn: Floats = self.uniforms[t % FEED_CHUNK]
        return drawn

    # -- behaviour -----------------------------------------------------------------------------
    def _coupling(self, phase: Floats) -> Floats:
        """Phasic crawl-bend interference factor (spec §3.4), no wrap-around of the phase difference."""
        p = self.p
        shifted = phase - p["att_phase"]
        att = p["att_base"] + p["att_max"] * np.exp(self.att_scale * shifted * shifted)
        # exp(...) lies in (0, 1], so att lies in [base, base + max]: clip only where that leaves [0, 1].
        return _clip(att, self.zeros, self.ones) if self.att_needs_clip else att

    def _crawl(self) -> tuple[Floats, Bools]:
        """Advance active crawlers; return (linear velocity m/s, completed-stride mask).

        Branch-free: with tens of larvae some stride completes in almost every step.
        """
        self.crawler_phase += self.crawl_step * self.crawling
        completed = self.crawler_phase >= self.two_pi
        self.crawler_phase -= self.two_pi * completed
        self.stride_i += completed
        stride_speed = self.freq_length * self.strides[self.stride_rows + self.stride_i]
        p = self.p
        wave = p["crawler_amp"] * np.cos(self.crawler_phase - p["crawler_phase_peak"]) + self.ones
        return stride_speed * wave * self.crawling, completed

    def _start_runs(self, rows: Ints) -> None:
        self.chain_i[rows] += 1
        self.n_exp[rows] = _draw(self.chains, self.chains_w, rows, self.chain_i)
        self.state[rows], self.n_str[rows], self.ticks[rows] = EXEC, 0, 0

    def _intermit(self, completed: Bools, feed_motion: Bools | None, on_food: Bools | None,
                  uniform: Floats | None) -> None:
        """Intermitter step (spec §3.6, §5.4): runs of Nexp strides and pauses of k ticks, one more of each
        in larvaworld's model (deviation 3). The feeding arguments are all None or none is (``self.feed``)."""
        self.ticks += 1
        counts = self.counts
        if feed_motion is not None:
            assert on_food is not None and uniform is not None
            keep = uniform <= self.p["eeb"]
            stop = feed_motion & ~(on_food & keep)
            start = ~feed_motion & on_food & keep & (self.state != FEED) & self.feed_bouts
            counts["successful_feeds"] += feed_motion & on_food
            counts["failed_feeds"] += feed_motion & ~on_food
            if np.count_nonzero(start):   # the run or pause under way ends
                counts["num_stridechains"] += start & (self.state == EXEC)
                counts["num_pauses"] += start & (self.state == PAUSE)
                self.state[start], self.ticks[start] = FEED, 0
            if np.count_nonzero(stop):
                self._start_runs(stop.nonzero()[0])
        self.n_str += completed
        ended = (self.n_str >= self.n_exp + self.bout_extra) & (self.state == EXEC)
        rested = (self.ticks >= self.pause_len + self.bout_extra) & (self.state == PAUSE)
        counts["num_stridechains"] += ended
        counts["num_pauses"] += rested
        if np.count_nonzero(ended):
            rows = ended.nonzero()[0]
            self.pause_i[rows] += 1
            self.pause_len[rows] = _draw(self.pauses, self.pauses_w, rows, self.pause_i)
            self.state[rows], self.ticks[rows] = PAUSE, 0
        if np.count_nonzero(rested):
            self._start_runs(rested.nonzero()[0])

    # -- body ----------------------------------------------------------------------------------
    def _correct_heading(self, rows: Ints, omega: Floats, low: Floats, high: Floats) -> None:
        """Walk ω towards and through zero until the head tip is inside (spec §2.3, deviation 4).

        Candidate k is ``clip(ω − k·δ, low, high)`` for k = 1…100; the first whose tip is inside wins,
        and ω = 0 if none is. Candidates are tested in two vectorized rounds (most larvae need a few).
        A joint farther outside than the tip is from it (tactile_detection's placement) gets ω = 0 untested.
        """
        result = np.zeros(rows.size)
        pending = (np.flatnonzero(~self.arena.beyond(self.pos[rows], rows, self.half[rows])) if self.may_be_outside
                   else np.arange(rows.size))
        for steps in self.correction_rounds:
            r = rows[pending, None]
            w = omega[r]
            candidates = _clip(w - np.sign(w) * steps, low[r], high[r])
            tips = self.pos[r] + self.half[r] * np.exp(1j * (self.head[r] + candidates * self.dt))
            inside = ~self.arena.outside(tips, r)
            found = inside.any(axis=1)
            result[pending[found]] = candidates[found, inside[found].argmax(axis=1)]
            pending = pending[~found]
            if not pending.size:
                break
        omega[rows] = result

    def _correct_speed(self, rows: Ints, v: Floats, tip: Complexes, unit: Complexes) -> None:
        """Slow down in 0.00011 m/s decrements until the moved tip is inside; else v = 0 (spec §2.3).

        The arena is convex and the tip inside, so the allowed speeds form [0, v_max]: the number of
        decrements is computed directly instead of iterated. A tip outside (placed there, as tactile_detection's
        larvae are) stays: a shorter step does not bring it in.
        """
        v_max = self.arena.reach(tip[rows], unit[rows], rows) / self.dt
        if self.may_be_outside:
            v_max[self.arena.outside(tip[rows], rows)] = 0.0
        k = np.maximum(np.ceil((v[rows] - v_max) / LIN_CORRECTION), 1.0)
        slowed = v[rows] - k * LIN_CORRECTION
        v[rows] = np.where((k <= MAX_CORRECTIONS) & (slowed >= 0), slowed, 0.0)

    def _move(self, lin: Floats, ang: Floats) -> Floats:
        """Torque physics, arena correction, head move and tail drag; return the velocity (m/s)."""
        p, dt = self.p, self.dt_arr
        v = lin * p["lin_vel_coef"]
        omega = self.omega + dt * (p["torque_coef"] * ang - p["ang_damping"] * self.omega
                                   - p["body_spring_k"] * self.bend)
        if self.any_velocity_mode:
            omega = np.where(self.velocity_mode, ang * p["ang_vel_coef"], omega)
        # Bounds keep the head within ±π of the tail; wrap(θt − θh) = −bend.
        low = (self.bend + self.pi) * -self.inv_dt
        high = (self.pi - self.bend) * self.inv_dt
        omega = _clip(omega, low, high)
        unit: Complexes = np.exp((self.head + omega * dt) * self.imag_unit)
        tip = self.pos + self.half_c * unit
        out = self.arena.outside(tip)
        if np.count_nonzero(out):
            rows = out.nonzero()[0]
            self._correct_heading(rows, omega, low, high)
            unit[rows] = np.exp(1j * (self.head[rows] + omega[rows] * self.dt))
            tip[rows] = self.pos[rows] + self.half[rows] * unit[rows]
        step = (v * dt) * unit
        out = self.arena.outside(tip + step)
        if np.count_nonzero(out):
            rows = out.nonzero()[0]
            self._correct_speed(rows, v, tip, unit)
            step[rows] = (v[rows] * self.dt) * unit[rows]
        self.pos += step
        self.head += omega * dt   # ω as corrected
        self.unit, self.omega = unit, omega
        self.tail += self.bend * _clip(v * self.tail_gain, self.zeros, self.ones)
        angle = self.head - self.tail   # wrapped into [-π, π] (rint is far cheaper than mod)
        self.bend = angle - self.two_pi * np.rint(angle * self.inv_two_pi)
        return v

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> list[dict[str, np.ndarray]]:
        """Step every simulation to the end; per simulation, each metric per larva.

        A simulation whose state overflows (a too large ``dt`` makes the turner unstable) steps on
        silently; :meth:`diverged` names it afterwards."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._steps()
        learned = {name: np.full(self.n, np.nan) for name in LEARNING_METRICS}
        for memory in (self.memory, self.association):
            if memory is not None:
                learned = {name: np.where(np.isnan(values), learned[name], values)
                           for name, values in memory.learned_gains(self.n).items()}
        wind = {} if self.wind is None else {"anemotaxis": anemotaxis(self.recorder.first_pos, self.pos,
                                                                      self.wind.axis)}
        grown = (self.deb.metrics(self.n) if self.deb is not None
                 else {name: np.full(self.n, np.nan) for name in GROWTH_METRICS})
        per_larva = self.recorder.per_larva(self.pos, {"amount_eaten": self.amount_eaten, "food_steps": self.food_steps,
                                                       **self.counts, **learned, **wind, **grown})
        return [{k: v[a:b] for k, v in per_larva.items()} for a, b in self._bounds()]

    def diverged(self) -> list[str | None]:
        """Per simulation, why its final state is not finite (then its metrics mean nothing), else None."""
        turner = self.turner
        finite = (np.isfinite(self.pos) & np.isfinite(self.head) & np.isfinite(self.bend)
                  & np.isfinite(turner.E).all(axis=0) & np.isfinite(turner.C).all(axis=0)
                  & np.isfinite(turner.H).all(axis=0))
        return [None if finite[a:b].all() else
                f"the simulation diverged: {b - a - int(finite[a:b].sum())} of {b - a} larvae ended with a "
                f"non-finite position or turner state (dt = {self.dt} s may be too large)"
                for a, b in self._bounds()]

    def _bounds(self) -> list[tuple[int, int]]:
        """Each simulation's slice of the larva arrays."""
        bounds = np.cumsum([0, *self.sizes]).tolist()
        return list(itertools.pairwise(bounds))

    def _steps(self) -> None:
        all_on_output = bool(self.att_output.all())
        any_on_input = bool(self.att_input.any())
        memory, association = self.memory, self.association
        if 0 in self.events:
            self._event(self.events[0])
        for t in range(self.nsteps):
            tip = self.pos + self.half_c * self.unit
            feed_motion = on_food = uniforms = None
            if self.feed:
                uniforms = self._feed_uniforms(t)
                on_food, food_at = self._detect_food(tip, uniforms[-1])
                self.food_steps += on_food
            if memory is not None:   # the memory rewrites the gains before the olfactor senses (reward: food)
                self._learn(memory, t, on_food)
            drive = self._sense(t, tip) if self.sensing else self.zeros
            if association is not None:   # conditioned on what was sensed; the gains act from the next step
                self._associate(association, t, on_food)
            if self.touch is not None:   # the toucher's output joins the turner input; its larvae find food
                touched, found = self.touch.step(self.pos, self.unit, self.tail, *(
                    (self.food_amount[self.food_keys] > 0, self.grid) if self.feed else (None, None)))
                drive = _clip(drive + touched, self.minus_one, self.ones) if self.clip_sensors else drive + touched
                self.food_steps += found
            att = self.ones
            if self.feed:
                self.feeder_phase += self.feed_step * self.feeding
                feed_motion = self.feeder_phase >= self.two_pi
                self.feeder_phase[feed_motion] -= TWO_PI
                att = np.where(self.feeding > 0, self._coupling(self.feeder_phase), att)
            lin, completed = self._crawl()
            if self.wind is not None and self.wind.sensing:   # sensed at the heading before this step's move
                drive, lin = self.wind.step(self.head, drive, lin)
            att = np.where(self.crawl_mask, self._coupling(self.crawler_phase), att)
            crawled = self.crawling
            self._intermit(completed, feed_motion, on_food, None if uniforms is None else uniforms[0])
            # att <= 1, so the turner input stays in [-1, 1] where the sensors' summed output does (deviation 2).
            if any_on_input:
                drive = drive * np.where(self.att_input, att, self.ones)
            ang = self.turner.step(drive)
            ang = ang * (att if all_on_output else np.where(self.att_output, att, self.ones))
            v = self._move(lin, ang)
            if feed_motion is not None and on_food is not None:   # self.feed
                eaters = (feed_motion & on_food).nonzero()[0]
                if eaters.size:
                    self._eat(eaters, food_at)
                self.feeding = (self.state == FEED).astype(float)
            if self.deb is not None and (t + 1) % self.deb.interval == 0:
                self._grow(self.deb)
            self.crawl_mask = self.state == EXEC
            self.crawling = self.crawl_mask.astype(float)
            self.recorder.record(t, self.pos, np.abs(v), crawled)
            event = self.events.get(t + 1)
            if event is not None and t + 1 < self.nsteps:
                self._event(event)

    def _grow(self, deb: Energetics) -> None:
        """A DEB step; the body's length, its bite and, where hunger drives it, the EEB follow (as at set-up)."""
        deb.step()
        p, rows = self.p, deb.rows
        p["length"][rows], p["bite"][rows] = deb.length(), deb.bite()
        p["eeb"][rows] = deb.eeb(p["eeb"][rows])
        self.half = 0.5 * p["length"]
        self.half_c = self.half + 0j
        self.freq_length = p["crawler_freq"] * p["length"]
        self.tail_gain = 2.0 * self.dt * p["bend_correction_coef"] / p["length"]

    # -- odor learning ---------------------------------------------------------------------------
    def _learn(self, memory: _Memories, t: int, on_food: Bools | None) -> None:
        """One step of every memory (``self.memory``); where it chooses new gains, the olfactor's gains change."""
        reward = on_food[memory.rows] if on_food is not None else np.zeros(memory.rows.size, dtype=bool)
        rows, actions = memory.step(t + 1, reward)
        if rows.size and self.sensing:   # without odors in the arena the gains act on nothing
            larvae = memory.rows[rows]
            values = memory.actions[rows, actions]   # (changed, k)
            for j, layer in enumerate(memory.layers):
                if layer >= 0:
                    self.gains[layer, larvae] = values[:, j] * self.dt
            self.gain_sum[larvae] = self.gains[:, larvae].sum(axis=0)

    def _associate(self, association: Associations, t: int, on_food: Bools | None) -> None:
        """One step of every associative memory: the odors at the head and food under it set the gains."""
        rows = association.rows
        reward = on_food[rows] if on_food is not None else np.zeros(rows.size, dtype=bool)
        self.gains[:, rows] = association.step(t + 1, self.odor_last[:, rows] > 0, reward) * self.dt
        self.gain_sum[rows] = self.gains[:, rows].sum(axis=0)

    def _event(self, event: Event) -> None:
        """A new trial of larvaworld's PrefTrainCondition: the food grid, the odor sources, the larvae's pose."""
        if self.feed and self.grid is not None:   # without feeders no larva looks for food (nor is rewarded)
            if event.grid == "empty":
                self.grid[:] = 0.0
            elif event.grid == "reset":
                self.grid[:] = self.grid_full
        if self.touch is not None and self.touch.grid is not None:
            self.touch.grid.event(event.grid)
        if event.intensities is not None and self.sensing:
            self.odor_int[:] = np.asarray(event.intensities)[:, None]
        if event.reset_pose:
            self.omega[:] = 0.0
            if self.reset_to_start:   # larvaworld resets only the angular velocity (deviation 14)
                self.pos[:], self.head[:] = self.start_pos, self.start_head
                self.tail[:], self.bend[:] = self.start_head, 0.0
                self.unit = np.exp(1j * self.head)


class _Memories:
    """larvaworld's ``RLOlfMemory`` for every larva with one, vectorized: Q-learning over the olfactory gains with a
    single state (``state_spacePerSide = 0``), epsilon-greedy choices every ``niters`` steps while learning, and after
    ``train_dur`` a greedy choice every step that still updates the table (as upstream)."""

    def __init__(self, setups: list[SimSetup], sizes: list[int], dt: float):
        offsets = np.cumsum([0, *sizes])[:-1]
        memories: list[MemorySetup] = _each([s.memory for s in setups])
        cat = np.concatenate
        self.rows = cat([m.rows + off for m, off in zip(memories, offsets, strict=True)])
        self.layers = memories[0].layers
        self.actions = cat([m.actions for m in memories])   # (m, A, k)
        self.one_minus_alpha = cat([1 - m.alpha for m in memories])
        self.alpha, self.gamma = cat([m.alpha for m in memories]), cat([m.gamma for m in memories])
        self.epsilon = cat([m.epsilon for m in memories])
        self.niters, self.learn_last = cat([m.niters for m in memories]), cat([m.learn_last for m in memories])
        self.state_specific = cat([m.state_specific for m in memories])
        self.explore = edge_padded([m.explore for m in memories])
        self.random_action = edge_padded([m.random_action for m in memories])
        self.width = self.explore.shape[1]
        m = self.rows.size
        self.q = np.zeros((m, self.actions.shape[1]))
        self.last = np.zeros(m, dtype=int)            # lastAction
        self.reward_sum = np.zeros(m)                 # rewardSum
        self.iterator = self.niters.copy()            # starts at Niters: the first step chooses
        self.updates = np.zeros(m, dtype=int)         # learning updates so far (index into the draws)
        self.index = np.arange(m)

    def _q_update(self, rows: Ints) -> Ints:
        """Q[last] = (1 - alpha) Q[last] + alpha (rewardSum + gamma max Q) for ``rows``; the greedy action after it."""
        q = self.q[rows]
        best_next = q.max(axis=1)
        last = self.last[rows]
        self.q[rows, last] = (self.one_minus_alpha[rows] * q[np.arange(rows.size), last]
                              + self.alpha[rows] * (self.reward_sum[rows] + self.gamma[rows] * best_next))
        greedy: Ints = self.q[rows].argmax(axis=1)
        return greedy

    def step(self, k: int, reward: Bools) -> tuple[Ints, Ints]:
        """Memory step ``k`` (1-based) with this step's reward (on food); the rows that chose and their actions."""
        self.reward_sum += reward - 0.01
        learning = k <= self.learn_last
        self.iterator += learning
        due = learning & (self.iterator >= self.niters)
        chosen: list[Ints] = []
        actions: list[Ints] = []
        if np.count_nonzero(due):
            rows = due.nonzero()[0]
            draw = rows * self.width + self.updates[rows]
            explore = self.explore.ravel()[draw] < self.epsilon[rows]
            action = self.random_action.ravel()[draw].copy()
            exploit = rows[~explore]
            if exploit.size:
                action[~explore] = self._q_update(exploit)
            self.updates[rows] += 1
            self.last[rows] = action
            self.reward_sum[rows] = 0.0
            self.iterator[rows] = 0
            chosen.append(rows)
            actions.append(action)
        if not learning.all():
            after = (~learning).nonzero()[0]
            greedy = after[self.state_specific[after]]
            if greedy.size:
                action = self._q_update(greedy)
                self.last[greedy] = action
                chosen.append(greedy)
                actions.append(action)
            best = after[~self.state_specific[after]]
            if best.size:   # larvaworld's best_gain: the best action averaged over states, no update
                chosen.append(best)
                actions.append(self.q[best].argmax(axis=1))
        if not chosen:
            return self.index[:0], self.index[:0]
        return np.concatenate(chosen), np.concatenate(actions)

    def learned_gains(self, n: int) -> dict[str, Floats]:
        """``g_odor1``/``g_odor2`` per larva: the gain of each memory odor under the best action (NaN where none)."""
        best = self.actions[self.index, self.q.argmax(axis=1)]   # (m, k)
        out = {}
        for j, name in enumerate(("g_odor1", "g_odor2")):
            values = np.full(n, np.nan)
            if j < best.shape[1]:
                values[self.rows] = best[:, j]
            out[name] = values
        return out
