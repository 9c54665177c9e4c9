"""Discrete bout-length distributions of larvaworld's ``BoutGenerator`` (spec §3.6).

A continuous pdf is evaluated on the grid ``x = k·Δ`` for ``k = int(xmin/Δ) … int(xmax/Δ)`` and
normalised into a pmf over ``k``: stride chains use Δ = 1 stride, pauses Δ = dt (k counts ticks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from larvastudy.engine.arrays import Floats, Ints
from larvastudy.errors import SpecError

#: Most bout lengths a distribution may have (a pause range of 20 s is 200 ticks at dt = 0.1 s).
MAX_SUPPORT = 10_000_000


def _pdf(dist: Mapping[str, Any], x: Floats) -> Floats:
    name = dist.get("name")
    xmin = float(dist["range"][0])
    density: Floats   # numpy's stubs give ufuncs' results an element type of Any
    if name == "lognormal":
        mu, sigma = float(dist["mu"]), float(dist["sigma"])
        density = np.exp(-((np.log(x) - mu) ** 2) / (2 * sigma**2)) / (x * sigma * np.sqrt(2 * np.pi))
        return density
    if name == "exponential":
        beta = float(dist["beta"])
        density = beta * np.exp(-beta * (x - xmin))
        return density
    raise SpecError(f"bout distribution {name!r} is not supported; use lognormal or exponential")


def discrete_pmf(dist: Mapping[str, Any], step: float) -> tuple[Ints, Floats]:
    """``(k, p)``: the support in units of ``step`` and its probabilities."""
    lo, hi = (float(v) for v in dist["range"])
    if not 0 < lo <= hi:
        raise SpecError(f"bout range {dist['range']!r} must satisfy 0 < min <= max")
    if hi / step > MAX_SUPPORT:
        raise SpecError(f"bout range {dist['range']!r} in steps of {step!r} has {hi / step:,.0f} lengths, more than "
                        f"{MAX_SUPPORT:,}: use a larger dt")
    k = np.arange(max(int(lo / step), 1), int(hi / step) + 1)
    p = _pdf(dist, np.asarray(k * step, dtype=np.float64))   # float64 already: no copy
    if k.size == 0 or not np.isfinite(p).all() or p.sum() <= 0:
        raise SpecError(f"bout distribution {dict(dist)!r} has no probability mass on its range")
    return k, p / p.sum()


def mean_of(dist: Mapping[str, Any], step: float) -> float:
    """Mean of the discrete distribution, in the units of the continuous one."""
    k, p = discrete_pmf(dist, step)
    return float((k * p).sum() * step)
