"""The time loop: many simulations of one signature stepped together, vectorized over all larvae.

Step order follows larvaworld's ``ExpRun`` (spec §1, §3.5): food detection and odor sensing at the
head tip of the previous pose, then feeder → crawler → intermitter → turner, then the body moves
(torque physics, arena correction, head move, tail drag) and a completed bite is eaten. Larvae of one
simulation never interact except through shared food, so stepping them together is exact; bites
taken from one source or grid cell in one step are served in larva order, as upstream.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from larvastudy.engine.arena import Arena
from larvastudy.engine.metrics import Recorder
from larvastudy.engine.setup import AGENT_PARAMS, FEED_CHUNK, TURNER_PARAMS, TWO_PI, SimSetup
from larvastudy.engine.turner import NeuralParams, neural_step

EXEC, PAUSE, FEED = 0, 1, 2
ANG_CORRECTION = 8.0 * math.pi / 90.0   # rad/s removed per arena-correction iteration
LIN_CORRECTION = 0.00011                # m/s removed per linear-correction iteration
MAX_CORRECTIONS = 100


def _compact(values: np.ndarray) -> Any:
    """A float where all larvae share the value (cheaper arithmetic), else the array."""
    return float(values[0]) if np.all(values == values[0]) else values


def _coupling(phase: np.ndarray, base: Any, peak: Any, at: Any) -> np.ndarray:
    """Phasic crawl-bend interference factor (spec §3.4), no wrap-around of the phase difference."""
    return np.clip(base + peak * np.exp(-0.5 * (phase - at) ** 2), 0.0, 1.0)


def _pick(value: Any, rows: np.ndarray) -> Any:
    """``value[rows]`` for a per-larva array; a shared float as it is."""
    return value if np.isscalar(value) else value[rows]


def _draw(table: np.ndarray, width: int, rows: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """Next pre-drawn value per selected larva: ``table[row, counter[row]]`` on the flat table."""
    return table[rows * width + counter[rows]]


class BatchRun:
    """Simulations sharing one signature, concatenated larva by larva."""

    def __init__(self, setups: list[SimSetup]):
        first = setups[0]
        self.setups, self.nsteps, self.dt = setups, first.nsteps, first.dt
        self.sizes = [s.n for s in setups]
        self.sim = np.repeat(np.arange(len(setups)), self.sizes)
        self.n = int(sum(self.sizes))
        cat = np.concatenate
        self.p = {k: _compact(cat([s.params[k] for s in setups])) for k in AGENT_PARAMS}
        self.turner_params = NeuralParams(
            dt=self.dt, **{k: _compact(cat([s.params[k] for s in setups])) for k in TURNER_PARAMS})

        def per_larva(values: list[Any]) -> np.ndarray:
            return np.repeat(np.asarray(values), self.sizes, axis=0)

        self.arena = Arena(first.arena[0], per_larva([s.arena[1] for s in setups]),
                           per_larva([s.arena[2] for s in setups]))
        self.pos, self.head = cat([s.pos for s in setups]), cat([s.head for s in setups])
        self.tail, self.unit = self.head.copy(), np.exp(1j * self.head)
        self.omega, self.bend = np.zeros(self.n), np.zeros(self.n)
        self.crawler_phase = cat([s.crawler_phase for s in setups])
        self.feeder_phase = cat([s.feeder_phase for s in setups])
        turner = cat([s.turner for s in setups], axis=1)
        self.E, self.C, self.H = turner[0:2].copy(), turner[2:4].copy(), turner[4:6].copy()

        def table(key: str) -> tuple[np.ndarray, int]:
            arrays = [getattr(s, key) for s in setups]
            width = max(a.shape[1] for a in arrays)
            return cat([np.pad(a, ((0, 0), (0, width - a.shape[1])), mode="edge") for a in arrays]).ravel(), width

        self.strides, self.strides_w = table("strides")
        self.chains, self.chains_w = table("chains")
        self.pauses, self.pauses_w = table("pauses")
        rows = np.arange(self.n)
        self.stride_i, self.chain_i = np.zeros(self.n, int), np.zeros(self.n, int)
        self.pause_i = np.full(self.n, -1)
        self.stride = self.strides[rows * self.strides_w]
        self.n_exp = self.chains[rows * self.chains_w]
        self.pause_len = np.zeros(self.n, int)
        self.n_str, self.ticks = np.zeros(self.n, int), np.zeros(self.n, int)
        self.state = np.full(self.n, EXEC, np.int8)   # the first step starts a run (spec §3.6)
        self.crawling = np.zeros(self.n, bool)        # ...whose crawler moves from step 2 on
        self.feeding = np.zeros(self.n, bool)

        # Odor: concentration per odor source, summed into layers.
        self.sensing = first.signature[7]
        if self.sensing:
            self.odor_pos = per_larva([s.odor_pos for s in setups])
            self.odor_int = per_larva([s.odor_intensity for s in setups])
            self.odor_inv2s = 0.5 / per_larva([s.odor_spread for s in setups])
            n_layers = first.signature[4]
            self.layer_matrix = None
            if list(first.odor_layer) != list(range(n_layers)):
                self.layer_matrix = np.zeros((len(first.odor_layer), n_layers))
                self.layer_matrix[np.arange(len(first.odor_layer)), first.odor_layer] = 1.0
            self.gains = cat([s.gains for s in setups])
            self.odor_last = None
            self.odor_out = np.zeros(self.n)
            self.decay = np.exp(-self.p["decay_coef"] * self.dt)

        # Food: sources and grid cells shared by the larvae of one simulation.
        self.feed = first.signature[8]
        self.amount_eaten, self.food_steps = np.zeros(self.n), np.zeros(self.n)
        if self.feed:
            self.food_pos = per_larva([s.food_pos for s in setups])
            self.n_food = first.food_pos.size
            self.food_amount = cat([s.food_amount for s in setups])
            self.grid = cat([s.grid.ravel() for s in setups]) if first.grid is not None else None
            if self.grid is not None:
                self.grid_shape = first.grid.shape
            self.feed_rngs = [s.feed_rng for s in setups]
            # Food is found within the larva's radius of the head tip, not the source's (spec §5.3).
            self.reach2 = np.square(self._arr("radius"))[:, None]
            self.uniforms = np.empty((0, self.n))

        landmarks = {name: per_larva([s.landmarks[name] for s in setups]) for name in first.landmarks}
        self.recorder = Recorder(first.metrics, self.pos, self._arr("length"), landmarks,
                                 self.arena.width, self.nsteps, self.dt)

    def _arr(self, key: str) -> np.ndarray:
        value = self.p[key]
        return np.full(self.n, value) if np.isscalar(value) else value

    # -- sensing -----------------------------------------------------------------------------
    def _sense(self, t: int, tip: np.ndarray) -> np.ndarray:
        diff = tip[:, None] - self.odor_pos
        conc = self.odor_int * np.exp(-(diff.real**2 + diff.imag**2) * self.odor_inv2s)
        if self.layer_matrix is not None:
            conc = conc @ self.layer_matrix
        if t > 0:
            change = conc / self.odor_last - 1.0      # 'log' perception: relative change
            self.odor_out = self.odor_out * self.decay + self.dt * (self.gains * change).sum(axis=1)
            # Deviation 3 (docs/model.md): the declared output range [-1, 1] is enforced.
            np.clip(self.odor_out, -1.0, 1.0, out=self.odor_out)
        self.odor_last = conc
        return self.odor_out

    def _detect_food(self, tip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per larva: whether food is under the head tip, and the index of that source or cell."""
        if self.grid is not None:
            gx, gy = self.grid_shape
            ix = np.clip(np.floor(gx * (tip.real / self.arena.width + 0.5)), 0, gx - 1).astype(int)
            iy = np.clip(np.floor(gy * (tip.imag / self.arena.height + 0.5)), 0, gy - 1).astype(int)
            where = (self.sim * gx + ix) * gy + iy
            return (self.grid[where] > 0) & (self.p["has_feeder"] > 0), where
        diff = tip[:, None] - self.food_pos
        d2 = diff.real**2 + diff.imag**2
        keys = self.sim[:, None] * self.n_food + np.arange(self.n_food)
        d2[(d2 > self.reach2) | (self.food_amount[keys] <= 0)] = np.inf
        # Deviation 5: the nearest source within reach (larvaworld picks at random; presets never overlap).
        nearest = d2.argmin(axis=1)
        found = np.isfinite(d2[np.arange(self.n), nearest]) & (self.p["has_feeder"] > 0)
        return found, keys[np.arange(self.n), nearest]

    def _eat(self, eaters: np.ndarray, where: np.ndarray) -> None:
        """Serve one bite to each eater, in larva order where several share a source or cell."""
        store = self.grid if self.grid is not None else self.food_amount
        keys = where[eaters]
        bite = self._arr("bite")[eaters]
        order = np.argsort(keys, kind="stable")
        keys, bite, eaters = keys[order], bite[order], eaters[order]
        cum = np.cumsum(bite)
        first = np.r_[True, keys[1:] != keys[:-1]]
        before = cum - bite - np.maximum.accumulate(np.where(first, cum - bite, 0.0))
        eaten = np.clip(store[keys] - before, 0.0, bite)
        np.subtract.at(store, keys, eaten)
        self.amount_eaten[eaters] += 1000.0 * eaten

    def _feed_uniforms(self, t: int) -> np.ndarray:
        if t % FEED_CHUNK == 0:
            rows = min(FEED_CHUNK, self.nsteps - t)
            self.uniforms = np.concatenate([rng.random((rows, n)) for rng, n in zip(self.feed_rngs, self.sizes)],
                                           axis=1)
        return self.uniforms[t % FEED_CHUNK]

    # -- behaviour -----------------------------------------------------------------------------
    def _start_runs(self, rows: np.ndarray) -> None:
        self.chain_i[rows] += 1
        self.n_exp[rows] = _draw(self.chains, self.chains_w, rows, self.chain_i)
        self.state[rows], self.n_str[rows], self.ticks[rows] = EXEC, 0, 0

    def _intermit(self, t: int, completed: np.ndarray, feed_motion: np.ndarray | None,
                  on_food: np.ndarray | None) -> None:
        """Intermitter step (spec §3.6, §5.4); deviation 4: runs of Nexp strides, pauses of Tp."""
        self.ticks += 1
        if feed_motion is not None:
            u = self._feed_uniforms(t)
            keep = u <= self.p["eeb"]
            stop = feed_motion & ~(on_food & keep)
            start = ~feed_motion & on_food & keep & (self.state != FEED) & (self.p["feed_bouts"] > 0)
            if start.any():
                self.state[start], self.ticks[start] = FEED, 0
            if stop.any():
                self._start_runs(np.flatnonzero(stop))
        self.n_str += completed
        ended = (self.state == EXEC) & (self.n_str >= self.n_exp)
        if ended.any():
            rows = np.flatnonzero(ended)
            self.pause_i[rows] += 1
            self.pause_len[rows] = _draw(self.pauses, self.pauses_w, rows, self.pause_i)
            self.state[rows], self.ticks[rows] = PAUSE, 0
        rested = (self.state == PAUSE) & (self.ticks >= self.pause_len)
        rested[ended] = False
        if rested.any():
            self._start_runs(np.flatnonzero(rested))

    def _crawl(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance active crawlers; return (linear velocity m/s, completed-stride mask)."""
        p = self.p
        self.crawler_phase += (TWO_PI * self.dt) * p["crawler_freq"] * self.crawling
        completed = self.crawler_phase >= TWO_PI
        if completed.any():
            rows = np.flatnonzero(completed)
            self.crawler_phase[rows] -= TWO_PI
            self.stride_i[rows] += 1
            self.stride[rows] = _draw(self.strides, self.strides_w, rows, self.stride_i)
        scaled = p["crawler_freq"] * self.stride * (1.0 + p["crawler_amp"] * np.cos(self.crawler_phase - p["crawler_phase_peak"]))
        return scaled * p["length"] * self.crawling, completed

    # -- body ----------------------------------------------------------------------------------
    def _correct_heading(self, rows: np.ndarray, omega: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        """Walk ω towards and through zero until the head tip is inside (spec §2.3, deviation 6)."""
        w, lo, hi = omega[rows], low[rows], high[rows]
        half = 0.5 * self._arr("length")[rows]
        pos, head = self.pos[rows], self.head[rows]
        delta = ANG_CORRECTION * np.sign(w)
        pending = np.ones(rows.size, bool)
        for _ in range(MAX_CORRECTIONS):
            w[pending] -= delta[pending]
            under, over = pending & (w < lo), pending & (w > hi)
            w[under], delta[under] = lo[under], np.abs(delta[under])
            w[over], delta[over] = hi[over], -np.abs(delta[over])
            pending &= self.arena.outside(pos + half * np.exp(1j * (head + w * self.dt)), rows)
            if not pending.any():
                break
        w[pending] = 0.0
        omega[rows] = w

    def _correct_speed(self, rows: np.ndarray, v: np.ndarray, tip: np.ndarray, unit: np.ndarray) -> None:
        """Slow down until the moved head tip is inside; give up with v = 0 (spec §2.3)."""
        vv = v[rows]
        pending = np.ones(rows.size, bool)
        for _ in range(MAX_CORRECTIONS):
            vv[pending] -= LIN_CORRECTION
            pending &= vv >= 0
            pending &= self.arena.outside(tip[rows] + self.dt * vv * unit[rows], rows)
            if not pending.any():
                break
        vv[pending | (vv < 0)] = 0.0
        v[rows] = vv

    def _move(self, lin: np.ndarray, ang: np.ndarray) -> np.ndarray:
        """Torque physics, arena correction, head move and tail drag; return the signed step (m)."""
        p, dt = self.p, self.dt
        v = lin * p["lin_vel_coef"]
        omega = self.omega + dt * (-p["ang_damping"] * self.omega - p["body_spring_k"] * self.bend
                                   + p["torque_coef"] * ang)
        if np.any(p["velocity_mode"]):
            omega = np.where(np.asarray(p["velocity_mode"]) > 0, ang * p["ang_vel_coef"], omega)
        # Bounds keep the head within ±π of the tail; wrap(θt − θh) = −bend.
        low, high = (-math.pi - self.bend) / dt, (math.pi - self.bend) / dt
        np.clip(omega, low, high, out=omega)
        half = 0.5 * p["length"]
        unit = np.exp(1j * (self.head + omega * dt))
        tip = self.pos + half * unit
        out = self.arena.outside(tip)
        if out.any():
            rows = np.flatnonzero(out)
            self._correct_heading(rows, omega, low, high)
            unit[rows] = np.exp(1j * (self.head[rows] + omega[rows] * dt))
            tip[rows] = self.pos[rows] + _pick(half, rows) * unit[rows]
        step = (v * dt) * unit
        out = self.arena.outside(tip + step)
        if out.any():
            rows = np.flatnonzero(out)
            self._correct_speed(rows, v, tip, unit)
            step[rows] = (v[rows] * dt) * unit[rows]
        self.pos += step
        self.head += omega * dt
        self.unit, self.omega = unit, omega
        d = v * dt
        self.tail += self.bend * np.clip(d * (2.0 * p["bend_correction_coef"] / p["length"]), 0.0, 1.0)
        self.bend = np.mod(self.head - self.tail + math.pi, TWO_PI) - math.pi
        return v

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> list[dict[str, np.ndarray]]:
        """Step every simulation to the end; per simulation, each metric per larva."""
        p, dt = self.p, self.dt
        feeder_step = TWO_PI * dt * p["feeder_freq"]
        att_on_input = np.any(p["att_on_input"])
        for t in range(self.nsteps):
            tip = self.pos + (0.5 * p["length"]) * self.unit
            drive = self._sense(t, tip) if self.sensing else 0.0
            att = 1.0
            feed_motion = on_food = None
            if self.feed:
                on_food, food_at = self._detect_food(tip)
                self.food_steps += on_food
                self.feeder_phase += feeder_step * self.feeding
                feed_motion = self.feeder_phase >= TWO_PI
                self.feeder_phase[feed_motion] -= TWO_PI
                att = np.where(self.feeding, _coupling(self.feeder_phase, p["att_base"], p["att_max"], p["att_phase"]), 1.0)
            lin, completed = self._crawl()
            att = np.where(self.crawling, _coupling(self.crawler_phase, p["att_base"], p["att_max"], p["att_phase"]), att)
            crawled = self.crawling
            self._intermit(t, completed, feed_motion, on_food)
            # Deviation 3: the turner input is limited to its declared range [-1, 1].
            drive = np.clip(drive, -1.0, 1.0) if not np.isscalar(drive) else drive
            if att_on_input:
                drive = drive * np.where(np.asarray(p["att_on_input"]) > 0, att, 1.0)
            ang = neural_step(self.E, self.C, self.H, np.broadcast_to(drive, (self.n,)), self.turner_params)
            ang = ang * (np.where(p["att_on_output"] > 0, att, 1.0) if not np.isscalar(p["att_on_output"])
                         else (att if p["att_on_output"] else 1.0))
            v = self._move(lin, ang)
            if self.feed:
                eaters = np.flatnonzero(feed_motion & on_food)
                if eaters.size:
                    self._eat(eaters, food_at)
            self.crawling = self.state == EXEC
            self.feeding = self.state == FEED
            self.recorder.record(t, self.pos, np.abs(v), crawled)
        per_larva = self.recorder.per_larva(self.pos, self.amount_eaten, self.food_steps)
        bounds = np.cumsum([0, *self.sizes])
        return [{k: v[a:b] for k, v in per_larva.items()} for a, b in zip(bounds[:-1], bounds[1:])]
