"""A sample space in Optuna's terms: each axis's distribution, and a point suggested by a trial.

:mod:`larvastudy.definition.space` knows the axes and how a point is chosen from them; this module maps them
onto Optuna, so a Batch's definition is read (``list``, ``show``) without importing Optuna.
"""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from larvastudy.definition.space import Axis, GridAxis, Point, Scalar, Space, is_int, is_number


def grid_distributions(space: Space) -> dict[str, BaseDistribution]:
    """Each parameter's distribution in a grid study: Int/Float over the values' range, else categorical,
    so TPE or CMA-ES can continue a grid study over numeric axes."""
    dists: dict[str, BaseDistribution] = {}
    for name in space.parameters():
        values = space.values(name)
        ints = [v for v in values if is_int(v)]
        numbers = [float(v) for v in values if is_number(v)]
        if len(ints) == len(values):
            dists[name] = IntDistribution(min(ints), max(ints))
        elif len(numbers) == len(values):
            dists[name] = FloatDistribution(min(numbers), max(numbers))
        else:
            dists[name] = CategoricalDistribution(values)
    return dists


def fit_distributions(space: Space) -> dict[str, BaseDistribution]:
    """Each suggested parameter's distribution in an adaptive fit, as :func:`suggest` asks for it: categorical
    over grid values, Int/Float over continuous ranges (zipped partners are not suggested)."""
    return {axis.name: _distribution(axis) for axis in space.chosen_axes()}


def suggest(space: Space, trial: optuna.Trial) -> Point:
    """One point of ``space`` sampled by ``trial``'s sampler, define-by-run (:meth:`Space.choose`): sub-axes
    only under values that carry them, zipped partners derived from their leader's value."""
    return space.choose(lambda axis: _suggest(trial, axis))


def _distribution(axis: Axis) -> BaseDistribution:
    if isinstance(axis, GridAxis):
        return CategoricalDistribution(axis.values)
    if axis.integer:
        return IntDistribution(int(axis.low), int(axis.high), log=axis.log)
    return FloatDistribution(axis.low, axis.high, log=axis.log)


def _suggest(trial: optuna.Trial, axis: Axis) -> Scalar:
    if isinstance(axis, GridAxis):
        choice = trial.suggest_categorical(axis.name, list(axis.values))
        assert choice is not None  # one of the axis's values, and None is never one (_checked_values)
        return choice
    if axis.integer:
        return trial.suggest_int(axis.name, int(axis.low), int(axis.high), log=axis.log)
    return trial.suggest_float(axis.name, axis.low, axis.high, log=axis.log)
