"""What a sweep or fit scores: the Batch's fit metric reduced over larvae, or the distance to targets.

Targets (``--target v_mu=1.35`` or a TOML ``[targets]`` table) replace the fit metric by the
normalised distance of metrics to target values, ``sqrt(mean(((m - t) / scale)²))``, which is
minimised. ``scale`` defaults to ``|t|`` (a relative error), or 1 for a target of 0; give it
explicitly (``PI = { value = 0.0, scale = 0.2 }``) where a metric's natural spread is known. As a
multi-objective study (NSGA-II), each target is its own objective ``|m - t| / scale``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from larvastudy.definition.space import is_number
from larvastudy.engine import canonical
from larvastudy.errors import SpecError

#: The objective's name when targets are set (single objective).
DISTANCE = "target_distance"


@dataclass(frozen=True)
class Target:
    """A metric's target value and the scale its error is divided by."""

    value: float
    scale: float

    def error(self, metric_value: float) -> float:
        """``(metric_value - value) / scale``."""
        return (metric_value - self.value) / self.scale


def parse_targets(raw: Mapping[str, Any] | None, allowed: Sequence[str]) -> dict[str, Target]:
    """Targets keyed by canonical metric name, from ``{metric: value}`` or ``{metric: {value, scale}}``."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"targets must be a table of metric = value, got {raw!r}")
    targets: dict[str, Target] = {}
    for name, spec in raw.items():
        metric = canonical(str(name))
        if metric not in allowed:
            raise SpecError(f"unknown target metric {name!r}; available: {', '.join(allowed)}")
        if isinstance(spec, Target):
            targets[metric] = spec
            continue
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"value", "scale"})
            if unknown or "value" not in spec:
                raise SpecError(f"target {name!r} takes a number or {{value = t, scale = s}}, got {dict(spec)!r}")
            value, scale = spec["value"], spec.get("scale")
        else:
            value, scale = spec, None
        if not _finite(value):
            raise SpecError(f"target {name!r} must be a finite number, got {value!r}")
        if scale is None:
            scale = abs(value) or 1.0
        if not (_finite(scale) and scale > 0):
            raise SpecError(f"target {name!r}: scale must be a number > 0, got {scale!r}")
        targets[metric] = Target(float(value), float(scale))
    return targets


def targets_to_dict(targets: Mapping[str, Target]) -> dict[str, dict[str, float]]:
    """JSON-able targets that :func:`parse_targets` reads back."""
    return {metric: {"value": t.value, "scale": t.scale} for metric, t in targets.items()}


def distance(targets: Mapping[str, Target], metrics: Mapping[str, float]) -> float:
    """The normalised distance of metric means to their targets (root mean square of the errors)."""
    return math.sqrt(float(np.mean([t.error(metrics[m]) ** 2 for m, t in targets.items()])))


def target_errors(targets: Mapping[str, Target], metrics: Mapping[str, float]) -> list[float]:
    """Each target's ``|m - t| / scale``: the objectives of a multi-objective fit."""
    return [abs(t.error(metrics[m])) for m, t in targets.items()]


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)
