"""Tables of a Batch study: larvaworld's ``par_df`` (one row per simulation), its summary, PI table.

Trials follow the study layer's contract: ``params`` hold each axis and ``replicate``; ``user_attrs``
hold ``grid_point``, ``seed``, every metric's mean over larvae, ``<metric>_std`` and, on FAIL, ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy import stats

from larvastudy.definition.batch import REPLICATE
from larvastudy.study.records import trials_table

#: larvaworld's par_df column of a simulation's objective (``fit_par`` reduced as ``[optimization]`` says).
FIT = "fit"
#: Columns after the sampled parameters and the metrics.
RUN_COLUMNS = ("trial", "state", "duration_s", "error")
#: Robustness: replicates of a grid point vary too much when their coefficient of variation exceeds this.
MAX_CV = 0.2
#: Robustness: the widest acceptable 95 % interval per metric (preference indices span [-1, 1]).
MAX_CI_WIDTH = {"PI": 0.4, "PI2": 0.4}


def build_par_df(study: optuna.Study, batch: Any) -> pd.DataFrame:
    """One row per simulation, sorted by grid point then replicate; :data:`FIT` is its objective (the
    Batch's ``fit_par`` reduced as ``[optimization]`` says, or its distance to the targets), NaN on failure.

    A (grid point, replicate) with a COMPLETE trial contributes exactly that trial, so a resumed
    sweep's table equals an uninterrupted one's (up to ``trial`` and ``duration_s``). One that never
    completed contributes its latest FAIL trial, so failures stay visible. Trials without a grid
    point or replicate (failed before the study layer recorded them) have nothing to report. Only the
    first ``batch.Nsims`` replicates are read: the study may hold more (a run asked for fewer than it has).
    """
    axes = batch.axis_columns()
    metrics = [col for metric in batch.metrics for col in (metric, f"{metric}_std")]
    attrs = {col: f"user_attrs_{col}" for col in ("grid_point", "seed", *metrics, "error")}
    params = {col: f"params_{axis}" for axis, col in axes.items()} | {REPLICATE: f"params_{REPLICATE}"}
    trials = trials_table(study).reindex(columns=["number", "state", "datetime_start", "datetime_complete", "value",
                                                  *params.values(), *attrs.values()])
    key = [attrs["grid_point"], params[REPLICATE]]
    trials = trials.dropna(subset=key)
    trials = trials[trials[params[REPLICATE]] < batch.Nsims].assign(
        complete=lambda t: t["state"] == TrialState.COMPLETE.name)
    chosen = trials.sort_values([*key, "complete", "number"]).drop_duplicates(key, keep="last")
    df = pd.DataFrame({
        **{col: chosen[source] for col, source in params.items()},
        "seed": chosen[attrs["seed"]],
        **{col: chosen[attrs[col]] for col in metrics},
        FIT: chosen["value"],
        "trial": chosen["number"],
        "state": chosen["state"],
        "duration_s": (chosen["datetime_complete"] - chosen["datetime_start"]).dt.total_seconds(),
        "error": chosen[attrs["error"]],
    }).reset_index(drop=True).infer_objects()
    return df.astype({"replicate": int, "seed": "Int64", FIT: float, "trial": int, "duration_s": float,
                      "state": "str", "error": "str", **dict.fromkeys(metrics, float)})


def completed(par_df: pd.DataFrame) -> pd.DataFrame:
    """The rows of simulations that completed."""
    return par_df[par_df["state"] == TrialState.COMPLETE.name]


def summary_df(par_df: pd.DataFrame, batch: Any, max_cv: float = MAX_CV,
               max_ci_width: float | Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per metric and grid point (completed runs): :func:`describe`'s statistics and ``unstable``.

    Rows are ordered by metric, then grid point. ``unstable`` (robustness) flags points whose ``cv``
    exceeds ``max_cv`` or whose ``ci95_width`` exceeds ``max_ci_width`` (metric units: one number, or
    per metric; default :data:`MAX_CI_WIDTH`). Points with n < 2 have no spread to judge and are not flagged.
    """
    out = describe(par_df, list(batch.axis_columns().values()), batch.metrics)
    widths = MAX_CI_WIDTH if max_ci_width is None else max_ci_width
    limit = out["metric"].map(widths) if isinstance(widths, Mapping) else pd.Series(widths, index=out.index)
    out["unstable"] = (out["cv"] > max_cv) | (out["ci95_width"] > limit.astype(float))
    return out


def describe(par_df: pd.DataFrame, by: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric and value of the ``by`` columns (completed runs): n, mean, std, sem, the 95 % t
    interval, its width and the coefficient of variation ``cv = std / mean``.

    ``std``, ``sem`` and the interval are NaN for n < 2. ``cv`` is only defined for a metric that is
    positive in every run (a ratio scale); it is NaN for signed ones such as PI.
    """
    done = completed(par_df)
    long = done.melt(id_vars=by, value_vars=list(metrics), var_name="metric")
    out = (long.groupby(["metric", *by], sort=False, dropna=False)["value"]
           .agg(n="count", mean="mean", std="std").reset_index())
    out["sem"] = out["std"] / np.sqrt(out["n"])
    half = stats.t.ppf(0.975, out["n"] - 1) * out["sem"]
    out["ci95_low"], out["ci95_high"] = out["mean"] - half, out["mean"] + half
    out["ci95_width"] = 2 * half
    positive = (done[list(metrics)] > 0).all()
    out["cv"] = (out["std"] / out["mean"]).where(out["metric"].map(positive).astype(bool))
    return out


def mean_table(par_df: pd.DataFrame, rows: str, columns: str, metric: str) -> pd.DataFrame:
    """Mean of ``metric`` over completed runs per (``rows``, ``columns``) value: replicates and any
    other axis are averaged over (marginal means)."""
    return completed(par_df).pivot_table(index=rows, columns=columns, values=metric,
                                         aggfunc="mean", dropna=False)


def _pi_axes(batch: Any) -> tuple[str, str] | None:
    """The par_df columns of the CS and UCS olfactor-gain axes (``...gain_dict.CS``, ``...UCS``) of a
    PItest batch with a PI metric, else None."""
    if not batch.experiment.startswith("PItest") or "PI" not in batch.metrics:
        return None
    by_leaf = {axis.rsplit(".", 1)[-1]: col for axis, col in batch.axis_columns().items()}
    if "CS" not in by_leaf or "UCS" not in by_leaf:
        return None
    return by_leaf["CS"], by_leaf["UCS"]


def pi_table(par_df: pd.DataFrame, batch: Any) -> pd.DataFrame | None:
    """larvaworld's PI heatmap table (``PIs.csv``): mean PI, rows CS gain, columns UCS gain."""
    axes = _pi_axes(batch)
    if axes is None:
        return None
    table = mean_table(par_df, *axes, "PI")
    table.index.name, table.columns.name = "CS_gain", "UCS_gain"
    return table
