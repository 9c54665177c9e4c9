"""A Batch's sample space: grid axes, continuous ranges, nested sub-axes and zipped axes.

Each entry of ``sample`` is one axis, written as

- a list of values, ``{values = [...]}``, ``{range = [lo, hi], Ngrid = n}`` or larvaworld's
  ``[[lo, hi], n]``: a grid axis (ranges expand with ``numpy.linspace``);
- ``{range = [lo, hi]}`` (optionally ``log = true``): a continuous axis, for adaptive samplers only;
- a grid axis with ``zip = "<other axis>"``: it varies together with that axis, value by value,
  instead of forming a product with it;
- a grid axis with ``when = {<value> = {<sub-axis> = ...}}``: points with that value also sweep the
  sub-axes (the seed page's multi-level nesting), e.g. only ``navigator`` models sweep ``decay_coef``.

Grid points are the product over axis groups (an axis and those zipped with it), the last group
varying fastest; a value with sub-axes contributes one point per point of its sub-space.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, TypeGuard

import numpy as np

from larvastudy.errors import SpecError

Scalar = int | float | str | bool
Point = dict[str, Any]
_KEYS = ("values", "range", "Ngrid", "log", "zip", "when")
#: The most values an ``Ngrid`` may ask for: far beyond what any machine could sweep, but refused before
#: the values are allocated.
MAX_NGRID = 10_000_000
#: Significant digits of the values of a range axis.
DIGITS = 12


@dataclass(frozen=True)
class GridAxis:
    """A grid axis: its ``values``; maybe zipped with another axis, or with sub-spaces under some values."""

    name: str
    values: tuple[Scalar, ...]
    zip: str | None = None
    when: tuple[tuple[Scalar, Space], ...] = ()

    continuous: ClassVar[bool] = False

    def sub(self, value: Scalar) -> Space | None:
        """The sub-space swept when this axis takes ``value``, if any."""
        return next((space for v, space in self.when if v == value), None)

    def to_spec(self) -> list[Scalar] | dict[str, Any]:
        """The normalised, JSON-able form (a plain list for a plain grid axis)."""
        if self.zip is None and not self.when:
            return list(self.values)
        spec: dict[str, Any] = {"values": list(self.values)}
        if self.zip is not None:
            spec["zip"] = self.zip
        if self.when:
            spec["when"] = {str(v): space.to_sample() for v, space in self.when}
        return spec

    def _same_as(self) -> tuple[Any, ...]:
        """What another appearance of this sub-axis must share with it."""
        return ("grid", self.values)


@dataclass(frozen=True)
class RangeAxis:
    """A continuous axis from ``low`` to ``high`` (ints for an integer range), for adaptive samplers only.
    It is never zipped and has no sub-spaces."""

    name: str
    low: float
    high: float
    log: bool = False

    continuous: ClassVar[bool] = True
    zip: ClassVar[None] = None
    when: ClassVar[tuple[tuple[Scalar, Space], ...]] = ()

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def sub(self, value: Scalar) -> Space | None:
        return None

    def to_spec(self) -> dict[str, Any]:
        """The normalised, JSON-able form."""
        return {"range": [self.low, self.high], "log": self.log}

    def _same_as(self) -> tuple[Any, ...]:
        return ("range", self.low, self.high, self.log)


#: One axis of a sample space.
Axis: TypeAlias = GridAxis | RangeAxis


@dataclass(frozen=True)
class Space:
    """A sample space: axes in order. Build it with :meth:`from_sample`."""

    axes: tuple[Axis, ...]

    @classmethod
    def from_sample(cls, sample: Mapping[str, Any], where: str = "sample") -> Space:
        """A validated space from a ``sample`` table (see the module for the accepted forms)."""
        if not isinstance(sample, Mapping):
            raise SpecError(f"{where} must be a table of parameter: axis, got {sample!r}")
        axes = tuple(_axis(str(name), spec, where) for name, spec in sample.items())
        space = cls(axes)
        space._check_zips(where)
        return space

    def to_sample(self) -> dict[str, Any]:
        """The normalised ``sample`` table that :meth:`from_sample` reads back."""
        return {axis.name: axis.to_spec() for axis in self.axes}

    # -- shape --------------------------------------------------------------------------------------

    @property
    def is_grid(self) -> bool:
        """Whether every axis, sub-axes included, has grid values (no continuous range)."""
        return not self.continuous_axes()

    @property
    def is_product(self) -> bool:
        """Whether the space is a plain Cartesian grid (no zipped or nested axes), as GridSampler knows it."""
        return self.is_grid and all(axis.zip is None and not axis.when for axis in self.axes)

    def continuous_axes(self) -> list[str]:
        """Names of the continuous axes, sub-axes included."""
        return [axis.name for axis in self._all_axes() if axis.continuous]

    def parameters(self) -> list[str]:
        """Every parameter a point may set, in order: axes, each followed by its sub-axes."""
        return list(dict.fromkeys(axis.name for axis in self._all_axes()))

    def size(self) -> int:
        """How many grid points :meth:`points` gives, counted without listing them."""
        return math.prod(sum(math.prod(space.size() for space in _subs(group, i)) for i in range(_length(group)))
                         for group in self._groups())

    def points(self) -> list[Point]:
        """Every grid point in a stable order (the last axis group varies fastest)."""
        self.require_grid()
        per_group = [[option for i in range(_length(group)) for option in _options(group, i)]
                      for group in self._groups()]
        return [_merge(combo) for combo in itertools.product(*per_group)]

    def require_grid(self) -> None:
        """A :class:`SpecError` naming the first continuous axis, if any."""
        continuous = self.continuous_axes()
        if continuous:
            raise SpecError(f"sample {continuous[0]!r} is a continuous range: a grid sweep needs Ngrid "
                            "(range = [lo, hi], Ngrid = n), or use an adaptive sampler (--sampler tpe)")

    def values(self, name: str) -> list[Scalar]:
        """The grid values parameter ``name`` takes anywhere in the space (empty for a continuous one)."""
        seen = [v for axis in self._all_axes() if axis.name == name and isinstance(axis, GridAxis) for v in axis.values]
        return list(dict.fromkeys(seen))

    def describe(self, name: str) -> str:
        """How parameter ``name`` is swept, in words: its values or range, its zip partner, its condition."""
        parts = []
        for axis, condition in self._conditions():
            if axis.name != name:
                continue
            text = (f"range [{axis.low}, {axis.high}]{' (log)' if axis.log else ''}" if isinstance(axis, RangeAxis)
                    else ", ".join(map(str, axis.values)))
            if axis.zip is not None:
                text += f" (zipped with {axis.zip})"
            parts.append(f"{text} when {condition}" if condition else text)
        return "; ".join(parts)

    def varying(self) -> list[str]:
        """Parameters that take more than one value (or a range) somewhere in the space."""
        return [name for name in self.parameters()
                if name in self.continuous_axes() or len(self.values(name)) > 1]

    def _conditions(self, condition: str = "") -> Iterator[tuple[Axis, str]]:
        for axis in self.axes:
            yield axis, condition
            for value, space in axis.when:
                inner = f"{axis.name} = {value}"
                yield from space._conditions(f"{condition} and {inner}" if condition else inner)

    # -- define-by-run ------------------------------------------------------------------------------

    def choose(self, pick: Callable[[Axis], Scalar]) -> Point:
        """One point, define-by-run: ``pick`` gives each group leader's value (one of a grid axis's values, or
        a value of a range), in order; sub-axes are picked only under values that carry them, zipped partners
        take their leader's value's position. An adaptive sampler picks through
        :func:`larvastudy.study.distributions.suggest`."""
        point: Point = {}
        for group in self._groups():
            leader = group[0]
            value = pick(leader)
            index = leader.values.index(value) if isinstance(leader, GridAxis) else 0
            for axis in group:
                chosen = value if axis is leader else _grid(axis).values[index]
                point[axis.name] = chosen
                sub = axis.sub(chosen)
                if sub is not None:
                    point.update(sub.choose(pick))
        return point

    def chosen_axes(self) -> list[Axis]:
        """Every axis :meth:`choose` may pick, sub-axes included (zipped partners are derived, not picked), in
        order; a sub-axis under several values appears once per appearance, the same each time."""
        return [axis for axis in self._all_axes() if axis.zip is None]

    def covering_points(self) -> list[Point]:
        """Points in which every value (and both ends of every range) of every axis and sub-axis occurs,
        the other axes at their first value: enough to check that each compiles."""
        first = self._first()
        points = []
        for group in self._groups():
            under = self._names_under(group)
            fixed = {k: v for k, v in first.items() if k not in under}
            for i in range(_length(group) if isinstance(group[0], GridAxis) else 2):
                at = {axis.name: _at(axis, i) for axis in group}
                for axis in group:
                    sub = axis.sub(at[axis.name])
                    if sub is not None:
                        points += [{**fixed, **at, **p} for p in sub.covering_points()]
                points.append({**fixed, **at, **_subs_first(group, at)})
        return points or [{}]

    # -- internals ----------------------------------------------------------------------------------

    def _all_axes(self) -> Iterator[Axis]:
        return (axis for axis, _ in self._conditions())

    def _groups(self) -> list[list[Axis]]:
        """Axes grouped with their zip partners, leader first, in the leaders' order."""
        groups = {axis.name: [axis] for axis in self.axes if axis.zip is None}
        for axis in self.axes:
            if axis.zip is not None:
                groups[axis.zip].append(axis)
        return list(groups.values())

    def _first(self) -> Point:
        point: Point = {}
        for group in self._groups():
            at = {axis.name: _at(axis, 0) for axis in group}
            point.update(at)
            point.update(_subs_first(group, at))
        return point

    def _names_under(self, group: list[Axis]) -> set[str]:
        return {a.name for axis in group for a in Space((axis,))._all_axes()}

    def _check_zips(self, where: str) -> None:
        names = {axis.name: axis for axis in self.axes}
        for axis in self.axes:
            if axis.zip is None:
                continue
            leader = names.get(axis.zip)
            if leader is None:
                raise SpecError(f"{where} {axis.name!r}: zip = {axis.zip!r} is not another axis of the same table; "
                                f"axes: {', '.join(n for n in names if n != axis.name)}")
            if leader.zip is not None:
                raise SpecError(f"{where} {axis.name!r}: zip with {leader.name!r}, which is itself zipped with "
                                f"{leader.zip!r}; zip every partner with the same leader")
            if isinstance(leader, RangeAxis):
                raise SpecError(f"{where} {axis.name!r}: cannot zip with the continuous axis {leader.name!r}")
            if len(_grid(axis).values) != len(leader.values):
                raise SpecError(f"{where} {axis.name!r}: zipped with {leader.name!r} it needs "
                                f"{len(leader.values)} values, got {len(_grid(axis).values)}")
        seen: dict[str, tuple[Any, ...]] = {}
        for axis in self._all_axes():
            spec = axis._same_as()
            if seen.setdefault(axis.name, spec) != spec:
                raise SpecError(f"{where}: sub-axis {axis.name!r} appears with different values; "
                                "give it the same values wherever it appears")


def _grid(axis: Axis) -> GridAxis:
    """``axis``, which the caller knows to be a grid axis (a zip partner, or one of a grid's groups)."""
    if not isinstance(axis, GridAxis):
        raise TypeError(f"{axis.name!r} is a continuous axis where a grid axis is needed")
    return axis


def _length(group: list[Axis]) -> int:
    return len(_grid(group[0]).values)


def _at(axis: Axis, i: int) -> Scalar:
    if isinstance(axis, RangeAxis):
        return axis.low if i == 0 else axis.high
    return axis.values[i]


def _subs(group: list[Axis], i: int) -> list[Space]:
    return [sub for axis in group if (sub := axis.sub(_grid(axis).values[i])) is not None]


def _subs_first(group: list[Axis], at: Point) -> Point:
    point: Point = {}
    for axis in group:
        sub = axis.sub(at[axis.name])
        if sub is not None:
            point.update(sub._first())
    return point


def _options(group: list[Axis], i: int) -> list[Point]:
    """The points of one axis group at value index ``i``: its values, times its sub-spaces' points."""
    at = {axis.name: _grid(axis).values[i] for axis in group}
    return [_merge((at, *combo)) for combo in itertools.product(*(sub.points() for sub in _subs(group, i)))]


def _merge(parts: tuple[Point, ...]) -> Point:
    merged: Point = {}
    for part in parts:
        merged.update(part)
    return merged


# -- one axis --------------------------------------------------------------------------------------


def _axis(name: str, spec: Any, where: str) -> Axis:
    spec = plain(spec)
    label = f"{where} {name!r}"
    if not isinstance(spec, Mapping):
        return GridAxis(name, tuple(grid_values(label, spec)))
    spec = {k: v for k, v in spec.items() if v is not None}
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise SpecError(f"{label}: unknown key {unknown[0]!r}; an axis takes {', '.join(_KEYS)}")
    if "range" in spec and "Ngrid" not in spec:
        extra = sorted(set(spec) - {"range", "log"})
        if extra:
            raise SpecError(f"{label}: a continuous range takes only log, got {extra[0]!r} "
                            "(add Ngrid to make it a grid axis)")
        low, high = _bounds(label, spec["range"])
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SpecError(f"{label}: log must be true or false, got {log!r}")
        if log and low <= 0:
            raise SpecError(f"{label}: a log range needs lo > 0, got {low!r}")
        return RangeAxis(name, low=low, high=high, log=log)
    if "log" in spec:
        raise SpecError(f"{label}: log applies to continuous ranges (range without Ngrid)")
    grid = {k: spec[k] for k in ("values", "range", "Ngrid") if k in spec}
    values = tuple(grid_values(label, grid))
    zip_with = spec.get("zip")
    if zip_with is not None and not isinstance(zip_with, str):
        raise SpecError(f"{label}: zip takes the name of another axis, got {zip_with!r}")
    when = spec.get("when", {})
    if not isinstance(when, Mapping):
        raise SpecError(f"{label}: when takes a table of value = {{sub-axes}}, got {when!r}")
    subs = []
    for key, sub in when.items():
        value = next((v for v in values if str(v) == str(key) or _same_number(v, key)), None)
        if value is None:
            raise SpecError(f"{label}: when.{key} is not one of its values {list(values)!r}")
        subs.append((value, Space.from_sample(sub, f"{label} when {key}")))
    return GridAxis(name, values, zip=zip_with, when=tuple(subs))


def _same_number(value: Scalar, key: Any) -> bool:
    if not is_number(value):
        return False
    try:
        return float(key) == value
    except (TypeError, ValueError):
        return False


def _bounds(label: str, bounds: Any) -> tuple[Any, Any]:
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(is_number(b) for b in bounds)):
        raise SpecError(f"{label}: range must be two numbers [lo, hi], got {bounds!r}")
    if not all(math.isfinite(b) for b in bounds) or not bounds[0] < bounds[1]:
        raise SpecError(f"{label}: range needs finite lo < hi, got {bounds!r}")
    if all(is_int(b) for b in bounds):
        return bounds[0], bounds[1]
    return float(bounds[0]), float(bounds[1])


def grid_values(label: str, spec: Any) -> list[Scalar]:
    """The values of one grid axis: a list, ``{values = [...]}``, ``{range, Ngrid}`` or ``[[lo, hi], n]``."""
    spec = plain(spec)
    if isinstance(spec, Mapping):
        spec = {k: v for k, v in spec.items() if v is not None}
        if set(spec) == {"values"}:
            values = spec["values"]
        elif set(spec) == {"range", "Ngrid"}:
            values = _linspace(label, spec["range"], spec["Ngrid"])
        else:
            raise SpecError(f"{label}: expected {{values = [...]}}, {{range = [lo, hi], Ngrid = n}} or "
                            f"{{range = [lo, hi]}}, got keys {', '.join(map(str, spec)) or 'none'}")
    elif isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], list):
        values = _linspace(label, spec[0], spec[1])  # larvaworld registry form [[lo, hi], Ngrid]
    elif isinstance(spec, list):
        values = spec
    else:
        raise SpecError(f"{label}: expected a list of values or {{range = [lo, hi], Ngrid = n}}, "
                        f"got {spec!r} (constants belong in fixed)")
    return _checked_values(label, values)


def _linspace(label: str, bounds: Any, ngrid: Any) -> list[int] | list[float]:
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(is_number(b) for b in bounds)):
        raise SpecError(f"{label}: range must be two numbers [lo, hi], got {bounds!r}")
    if not (is_int(ngrid) and ngrid >= 1):
        raise SpecError(f"{label}: Ngrid must be a whole number >= 1, got {ngrid!r}")
    if ngrid > MAX_NGRID:
        raise SpecError(f"{label}: Ngrid = {ngrid:,} is more values than any sweep could run (at most {MAX_NGRID:,})")
    values = [round_value(v) for v in np.linspace(bounds[0], bounds[1], ngrid).tolist()]
    if all(is_int(b) for b in bounds) and all(v.is_integer() for v in values):
        return [int(v) for v in values]
    return values


def round_value(value: float) -> float:
    """``value`` to :data:`DIGITS` significant digits, as people write it (``linspace`` gives
    ``33.33333333333334`` and ``0.30000000000000004``; the trial parameters are what ``show`` prints)."""
    return float(f"{value:.{DIGITS}g}")


def _checked_values(label: str, values: Any) -> list[Scalar]:
    if not isinstance(values, list) or not values:
        raise SpecError(f"{label}: needs at least one value, got {values!r}")
    kinds = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("booleans")
        elif is_number(value):
            if not math.isfinite(value):
                raise SpecError(f"{label}: values must be finite, got {value!r}")
            kinds.add("numbers")
        elif isinstance(value, str):
            kinds.add("strings")
        else:
            raise SpecError(f"{label}: values must be numbers, strings or booleans, got {value!r}")
    if len(kinds) > 1:
        raise SpecError(f"{label}: values mix {' and '.join(sorted(kinds))}: {values!r}")
    seen: set[Scalar] = set()
    for value in values:
        if value in seen:
            raise SpecError(f"{label}: value {value!r} is listed twice")
        seen.add(value)
    return list(values)


def plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples as plain Python values and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
