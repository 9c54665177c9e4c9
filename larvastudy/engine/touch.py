"""larvaworld 2.5.1's tactile sensor (``Toucher``, lib/model/modules/sensor.py), vectorized (docs/model.md,
"Tactile detection").

Touch sensors sit on vertices of the larva's body contour (``touch_sensors``, indices into
:data:`CONTOUR`); each senses contact (1) or none (0) with food within the larva's radius. The output is
larvaworld's leaky sensor: ``out = out · exp(−dt · decay_coef) + dt · Σ initial_gain · dX``, where the perceived
change ``dX`` of a sensor is ``cur / prev − 1`` ('log') or ``cur − prev`` ('linear'), both 0 while ``prev`` is 0,
or ``cur`` ('null'). It adds to the turner input like the olfactor's output. A toucher also makes the larva
detect food at its head tip, whose count of steps is ``cum_food_detected``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from larvastudy.engine.arena import grid_cells
from larvastudy.engine.arrays import Bools, Complexes, Floats, Ints
from larvastudy.errors import SpecError

if TYPE_CHECKING:   # setup imports this module
    from larvastudy.engine.setup import SimSetup

#: larvaworld's ``drosophila_larva`` body plan as ``BodyContour.base_vertices``: (x, y) in body lengths, x from
#: the tail (0) to the head tip (1), y across the body.
CONTOUR = ((1.0, 0.0), (0.9, 0.1), (0.05, 0.1), (0.0, 0.0), (0.05, -0.1), (0.9, -0.1))
PERCEPTIONS = ("log", "linear", "null")
#: Sources beyond which larvaworld looks for food from the body position (``accessible_sources``): not modelled.
MAX_SOURCES = 10


@dataclass(frozen=True)
class TouchSetup:
    """The touchers of one simulation, a row per larva (larvae without one have no sensors and gain 0) and a
    column per sensor slot (``valid`` marks the slots in use)."""

    has: Bools          # (n,) the larva has a toucher and no feeder (it detects food here)
    gain: Floats        # (n,) initial_gain
    decay: Floats       # (n,) decay_coef
    null: Bools         # (n,) 'null' perception
    along: Floats       # (n, S) sensor x − 0.5 (body lengths, from the joint)
    across: Floats      # (n, S) sensor y (body lengths)
    on_head: Bools      # (n, S) the sensor rides the head segment
    valid: Bools        # (n, S)


def _toucher(cfg: Mapping[str, Any], where: str) -> tuple[float, float, bool, list[int]]:
    """One group's toucher parameters, checked: gain, decay, 'null' perception, sensor indices."""
    if cfg.get("mode", "default") != "default":
        raise SpecError(f"{where}toucher.mode = {cfg['mode']!r} is not supported; supported: default")
    if cfg["perception"] not in PERCEPTIONS:
        raise SpecError(f"{where}toucher.perception = {cfg['perception']!r} is not supported; "
                        f"supported: {', '.join(PERCEPTIONS)}")
    if cfg.get("brute_force", False):
        raise SpecError(f"{where}toucher.brute_force = true (direct control of the intermitter) is not modelled; "
                        f"supported: false")
    gain, decay = float(cfg["initial_gain"]), float(cfg["decay_coef"])
    for key, value in (("initial_gain", gain), ("decay_coef", decay)):
        if not value >= 0:
            raise SpecError(f"{where}toucher.{key} = {value!r} must be >= 0")
    sensors = [int(i) for i in cfg["touch_sensors"]]
    for i in sensors:
        if not 0 <= i < len(CONTOUR):
            raise SpecError(f"{where}toucher.touch_sensors holds {i}; a contour vertex is 0 to {len(CONTOUR) - 1}")
    return gain, decay, cfg["perception"] == "null", list(dict.fromkeys(sensors))


def compile_touch(groups: list[tuple[str, Mapping[str, Any], int]], sources: int) -> TouchSetup | None:
    """The touchers of a simulation's groups, each ``(where, model tree, larvae)``; None if none has one."""
    parts = []
    for where, model, n in groups:
        cfg = model["brain"].get("toucher")
        parts.append((n, model["brain"].get("feeder") is None, _toucher(cfg, where) if cfg else None))
    if all(part is None for _, _, part in parts):
        return None
    if sources > MAX_SOURCES:
        raise SpecError(f"a toucher among {sources} sources is not modelled (larvaworld then looks for food from "
                        f"the body position); at most {MAX_SOURCES}")
    width = max(len(part[3]) for _, _, part in parts if part is not None)
    rows: list[tuple[bool, float, float, bool, list[int]]] = []
    for n, detects, part in parts:   # a feeder's larvae detect food already (the loop's _detect_food)
        rows += [(detects, *part) if part is not None else (False, 0.0, 0.0, False, [])] * n
    along, across, valid = (np.zeros((len(rows), width)) for _ in range(3))
    for r, (_, _, _, _, sensors) in enumerate(rows):
        for s, i in enumerate(sensors):
            along[r, s], across[r, s], valid[r, s] = CONTOUR[i][0] - 0.5, CONTOUR[i][1], 1.0
    return TouchSetup(has=np.array([r[0] for r in rows]), gain=np.array([r[1] for r in rows]),
                      decay=np.array([r[2] for r in rows]), null=np.array([r[3] for r in rows]),
                      along=along, across=across, on_head=along >= 0, valid=valid > 0)


class Touchers:
    """Every larva's toucher in a batch (larvae without one sense nothing): sensor contacts, the sensor output and
    food detection at the head tip. Food is found as the loop's ``_detect_food`` finds it: within the larva's
    radius of a source with food left or, in an arena with a food grid, in a cell with food. Where larvae eat, the
    loop passes the current amounts or grid each step; else the initial ones hold (``food_left``, ``grid``)."""

    def __init__(self, setups: list[TouchSetup], dt: float, length: Floats, radius: Floats, food_pos: Complexes,
                 grid: GridCells | None, clip: bool):
        width = max(s.along.shape[1] for s in setups)

        def stacked(name: str) -> Any:
            return np.concatenate([np.pad(getattr(s, name), ((0, 0), (0, width - getattr(s, name).shape[1])))
                                   for s in setups])

        self.has = np.concatenate([s.has for s in setups])
        self.gain = np.concatenate([s.gain for s in setups])[:, None]
        self.dt = dt
        self.decay = np.exp(-dt * np.concatenate([s.decay for s in setups]))
        self.null = np.concatenate([s.null for s in setups])[:, None]
        self.valid, self.on_head = stacked("valid"), stacked("on_head")
        self.along = stacked("along") * length[:, None]
        self.across = stacked("across") * length[:, None]
        self.half = 0.5 * length
        self.reach2 = np.square(radius)[:, None, None]
        self.food_x, self.food_y = food_pos.real[:, None, :], food_pos.imag[:, None, :]   # (n, 1, sources)
        self.food_left = np.ones(food_pos.shape, dtype=bool)   # no larva eats: every source keeps its food
        self.grid = grid
        self.previous = np.zeros(self.valid.shape)   # larvaworld registers each sensor with a reading of 0
        self.output = np.zeros(self.has.size)
        self.clip = clip

    def _contact(self, x: Floats, y: Floats, food_left: Bools, grid: Floats | None) -> Bools:
        """Whether food is found at points (x, y), each (n, k)."""
        if self.grid is not None and grid is not None:
            cells: Floats = grid[self.grid.cells(x, y)]
            on_grid: Bools = cells > 0
            return on_grid
        dx, dy = x[:, :, None] - self.food_x, y[:, :, None] - self.food_y
        within = (dx * dx + dy * dy <= self.reach2) & food_left[:, None, :]
        near: Bools = np.logical_or.reduce(within, axis=2)
        return near

    def step(self, pos: Complexes, unit: Complexes, tail: Floats, food_left: Bools | None,
             grid: Floats | None) -> tuple[Floats, Bools]:
        """Sense at the pose of the previous step (``unit``: the head's direction): the toucher output (turner
        input) and, per larva with a toucher, whether food is at its head tip. ``food_left`` (larvae, sources) and
        ``grid`` are the current food where larvae eat, else None."""
        food = self.food_left if food_left is None else food_left
        grid = self.grid.values if grid is None and self.grid is not None else grid
        if self.valid.shape[1]:   # without sensors (the toucher preset) the output stays 0
            self._sense(pos, unit, tail, food, grid)
        tip = (pos + self.half * unit)[:, None]
        at_tip: Bools = self._contact(tip.real, tip.imag, food, grid)[:, 0] & self.has
        return self.output, at_tip

    def sensor_points(self, pos: Complexes, unit: Complexes, tail: Floats) -> tuple[Floats, Floats]:
        """Where the sensors are, x and y (larvae, sensor slots), for joints ``pos``, the head's direction ``unit``
        and the tail's orientation ``tail``: larvaworld's ``get_sensor_position``, in real arithmetic."""
        c = np.where(self.on_head, unit.real[:, None], np.cos(tail)[:, None])
        s = np.where(self.on_head, unit.imag[:, None], np.sin(tail)[:, None])
        x: Floats = pos.real[:, None] + self.along * c - self.across * s
        y: Floats = pos.imag[:, None] + self.along * s + self.across * c
        return x, y

    def _sense(self, pos: Complexes, unit: Complexes, tail: Floats, food: Bools, grid: Floats | None) -> None:
        """The sensors' contacts and the output they drive."""
        x, y = self.sensor_points(pos, unit, tail)
        current = (self._contact(x, y, food, grid) & self.valid).astype(float)
        changed = np.where(self.previous != 0, current - self.previous, 0.0)   # log and linear alike for 0/1
        self.previous = current
        d_x = np.where(self.null, current, changed)
        self.output = self.output * self.decay + self.dt * (self.gain * d_x).sum(axis=1)
        if self.clip:   # deviation 2: the declared output range [-1, 1], which larvaworld skips
            self.output = np.clip(self.output, -1.0, 1.0)


@dataclass
class GridCells:
    """A batch's food grids, flat and one after the other as the loop keeps them (``values``, the initial ones
    where no larva eats), and the cell under a point as the loop's ``_detect_food`` finds it."""

    values: Floats
    full: Floats            # the grids as they start
    shape: tuple[int, ...]
    sim: Ints               # (n,) simulation of each larva
    width: Floats           # (n,) arena dims
    height: Floats

    def cells(self, x: Floats, y: Floats) -> Ints:
        """Flat index of the cell under each point (n, k)."""
        return grid_cells(x, y, self.shape, self.sim[:, None], self.width[:, None], self.height[:, None])

    def event(self, kind: str | None) -> None:
        """A trial empties (``"empty"``) or refills (``"reset"``) the grids."""
        if kind == "empty":
            self.values[:] = 0.0
        elif kind == "reset":
            self.values[:] = self.full


def batch_touchers(setups: Sequence[SimSetup], touch: list[TouchSetup], sizes: list[int], dt: float, length: Floats,
                   radius: Floats, width: Floats, height: Floats, clip: bool) -> Touchers:
    """The touchers ``touch`` of simulations ``setups`` of one signature, stepped together (``width``, ``height``:
    arena dims per larva)."""
    food_pos = np.repeat(np.array([s.food_pos for s in setups], dtype=complex), sizes, axis=0)
    grid = None
    first = setups[0].grid
    if first is not None:
        full = np.concatenate([np.asarray(s.grid).ravel() for s in setups])
        grid = GridCells(values=full.copy(), full=full, shape=first.shape,
                         sim=np.repeat(np.arange(len(setups)), sizes), width=width, height=height)
    return Touchers(touch, dt, length, radius, food_pos, grid, clip)
