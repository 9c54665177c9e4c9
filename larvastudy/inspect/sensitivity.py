"""Sensitivity of each metric to the swept parameters: Optuna importances, main effects, and pairwise
comparisons of the levels of a categorical axis (such as ``model``) within each condition."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from larvastudy.errors import SpecError
from larvastudy.export.figures import boxplot, fmt_value, metric_label, varying_axes
from larvastudy.export.par_df import completed, describe

EVALUATORS = ("ped-anova", "fanova")
CONDITION = "condition"


def importances(study: optuna.Study, batch: Any, evaluator: str = "ped-anova") -> pd.DataFrame:
    """Per metric, each varying parameter's importance (summing to 1), from the COMPLETE trials.

    ``fanova`` decomposes the metric's variance (needs scikit-learn). PED-ANOVA measures how much a
    parameter's distribution in the best 10 % of trials differs from all trials; as a metric has no
    "best" side here, it is run for the lowest and for the highest values and the two are averaged.
    Columns: metric, parameter (the par_df column), importance; most important first. Sub-axes of
    nested axes are left out (they are missing from some trials).
    """
    if evaluator not in EVALUATORS:
        raise SpecError(f"unknown evaluator {evaluator!r}; choose {' or '.join(EVALUATORS)}")
    columns = batch.axis_columns()
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # A nested sub-axis exists only in some trials, and Optuna's evaluators drop trials that lack a
    # parameter: importances cover the parameters every trial has.
    params = [p for p in batch.space.varying() if all(p in t.params for t in trials)]
    rows = []
    for metric in batch.metrics:
        scored = [t for t in trials if math.isfinite(t.user_attrs.get(metric, math.nan))]
        if not params or len(scored) < 2:
            continue
        raw = _raw_importances(scored, params, metric, evaluator)
        total = sum(raw.values())
        rows += [{"metric": metric, "parameter": columns[p], "importance": v / total if total else 0.0}
                 for p, v in sorted(raw.items(), key=lambda item: -item[1])]
    return pd.DataFrame(rows, columns=["metric", "parameter", "importance"])


def _raw_importances(trials: list[FrozenTrial], params: list[str], metric: str, evaluator: str) -> dict[str, float]:
    """Unnormalised importances of ``params`` for ``metric`` over ``trials`` (in a scratch study)."""
    study = optuna.create_study()
    study.add_trials(trials)

    def evaluate(evaluator: optuna.importance.BaseImportanceEvaluator, sign: float = 1.0) -> dict[str, float]:
        with warnings.catch_warnings():  # normalize=False is "experimental"; PED-ANOVA's low-is-best note
            warnings.simplefilter("ignore")
            return get_param_importances(study, evaluator=evaluator, params=params, normalize=False,
                                         target=lambda t: sign * t.user_attrs[metric])

    if evaluator == "fanova":
        try:
            return evaluate(FanovaImportanceEvaluator(seed=0))
        except ImportError:
            raise SpecError("the fanova evaluator needs scikit-learn (pip install scikit-learn); "
                            "or use ped-anova") from None
    low, high = evaluate(PedAnovaImportanceEvaluator()), evaluate(PedAnovaImportanceEvaluator(), -1.0)
    return {p: (low[p] + high[p]) / 2 for p in params}


def importance_figure(table: pd.DataFrame, batch: Any) -> Figure:
    """Horizontal bars of each metric's parameter importances, one panel per metric."""
    metrics = list(pd.unique(table["metric"]))
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    params = list(pd.unique(table["parameter"]))
    fig = Figure(figsize=(3.6 * ncols, 0.6 + (0.45 * len(params) + 0.9) * nrows), layout="constrained")
    fig.suptitle(f"{batch.name}: parameter importances")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True).ravel()
    for ax, metric in zip(grid, metrics, strict=False):  # the grid's last row may have more axes than metrics
        values = table[table["metric"] == metric].set_index("parameter")["importance"].reindex(params)
        ax.barh(range(len(params)), values.to_numpy(), color="tab:blue")
        ax.set_yticks(range(len(params)), params)
        ax.invert_yaxis()
        ax.set(title=metric, xlim=(0, 1))
    for ax in grid[len(metrics):]:
        ax.set_axis_off()
    return fig


def main_effects(par_df: pd.DataFrame, batch: Any) -> pd.DataFrame:
    """Per varying parameter, level and metric: the statistics of :func:`describe` over every completed
    run at that level (the other parameters and replicates marginalised over).
    Columns: parameter, level, then describe's (metric, n, mean, ..., cv)."""
    parts = [describe(par_df, [col], batch.metrics).rename(columns={col: "level"}).assign(parameter=col)
             for col in varying_axes(batch)]
    if not parts:
        return pd.DataFrame(columns=["parameter", "level", "metric"])
    table = pd.concat(parts, ignore_index=True)
    return table[["parameter", "level", *[c for c in table.columns if c not in ("parameter", "level")]]]


def main_effect_figure(effects: pd.DataFrame, batch: Any, metric: str) -> Figure:
    """``metric`` against each varying parameter (one panel each): marginal mean and 95 % CI."""
    params = list(pd.unique(effects["parameter"]))
    fig = Figure(figsize=(3.6 * len(params) + 0.6, 3.6), layout="constrained")
    fig.suptitle(f"{batch.name}: main effects on {metric} (mean ± 95 % CI)")
    panels = fig.subplots(1, len(params), squeeze=False, sharey=True)[0]
    for i, (ax, param) in enumerate(zip(panels, params, strict=True)):
        rows = effects[(effects["parameter"] == param) & (effects["metric"] == metric)]
        levels = rows["level"].tolist()
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in levels)
        x = np.asarray(levels, dtype=float) if numeric else np.arange(len(levels))
        ax.errorbar(x, rows["mean"], yerr=[rows["mean"] - rows["ci95_low"], rows["ci95_high"] - rows["mean"]],
                    marker="o", capsize=3)
        if not numeric:
            ax.set_xticks(x, [fmt_value(v) for v in levels])
        ax.set(xlabel=param, ylabel=metric_label(metric) if i == 0 else None)
    return fig


def categorical_axes(batch: Any) -> list[str]:
    """par_df columns of the varying axes with non-numeric values (such as ``model``)."""
    columns = batch.axis_columns()
    return [columns[axis] for axis in batch.space.varying()
            if any(isinstance(v, (str, bool)) for v in batch.space.values(axis))]


def with_conditions(par_df: pd.DataFrame, batch: Any, axis: str) -> pd.DataFrame:
    """Completed runs with a ``condition`` column: the values of the varying axes other than ``axis``."""
    others = [col for col in varying_axes(batch) if col != axis]
    done = completed(par_df)
    labels = [", ".join(f"{col}={fmt_value(v)}" for col, v in zip(others, values, strict=True)) or "all"
              for values in done[others].itertuples(index=False)]
    return done.assign(**{CONDITION: labels})


def comparisons(par_df: pd.DataFrame, batch: Any, axis: str, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Every pair of ``axis`` levels, per condition and metric: means, Cohen's d (pooled SD) and the
    Welch t-test p-value (NaN with fewer than two runs on a side).
    Columns: metric, condition, a, b, n_a, n_b, mean_a, mean_b, difference (b - a), cohens_d, p_value."""
    done = with_conditions(par_df, batch, axis)
    rows = []
    for metric in metrics or batch.metrics:
        for condition, group in done.groupby(CONDITION, sort=False):
            samples = {level: g[metric].dropna().to_numpy() for level, g in group.groupby(axis, sort=False)}
            for a, b in combinations(samples, 2):
                rows.append({"metric": metric, CONDITION: condition, "a": a, "b": b,
                             **_compare(samples[a], samples[b])})
    return pd.DataFrame(rows, columns=["metric", CONDITION, "a", "b", "n_a", "n_b", "mean_a", "mean_b",
                                       "difference", "cohens_d", "p_value"])


def _compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    mean_a, mean_b = (x.mean() if len(x) else math.nan for x in (a, b))
    pooled = p = math.nan
    if len(a) >= 2 and len(b) >= 2:
        pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
        if pooled > 0:
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = float(np.divide(mean_b - mean_a, pooled))
    return {"n_a": len(a), "n_b": len(b), "mean_a": mean_a, "mean_b": mean_b, "difference": mean_b - mean_a,
            "cohens_d": d, "p_value": p}


def comparison_figure(par_df: pd.DataFrame, batch: Any, axis: str, metric: str) -> Figure:
    """Grouped box plot: ``metric`` per condition, one box per ``axis`` level."""
    return boxplot(with_conditions(par_df, batch, axis), CONDITION, [CONDITION, axis], batch, metric)
