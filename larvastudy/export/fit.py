"""Tables and figures of an adaptive fit, where one trial is one proposed point with ``Nsims`` replicates.

Trials follow :mod:`larvastudy.execution.adaptive`'s layout: user attributes ``point`` (the point's
parameters, zipped partners included), each metric's mean over replicates, ``replicates`` (one entry
per simulation: replicate, seed, value, error and metrics) and, for warm-start copies, ``copied_from``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from larvastudy.export.par_df import FIT, RUN_COLUMNS
from larvastudy.study.study import COPIED_FROM


def fit_par_df(study: optuna.Study, batch: Any) -> pd.DataFrame:
    """larvaworld's par_df for a fit: one row per simulation of every finished trial, in trial order."""
    axes = batch.axis_columns()
    metrics = [col for metric in batch.metrics for col in (metric, f"{metric}_std")]
    rows = []
    for trial in _finished(study):
        for rep in trial.user_attrs.get("replicates", []):
            rows.append({**_point_columns(trial, axes), "replicate": rep["replicate"], "seed": rep["seed"],
                         **{col: rep.get(col) for col in metrics}, FIT: rep.get("value"), "trial": trial.number,
                         "state": trial.state.name,
                         "duration_s": _seconds(trial), "error": rep.get("error") or trial.user_attrs.get("error")})
    df = pd.DataFrame(rows, columns=[*axes.values(), "replicate", "seed", *metrics, FIT, *RUN_COLUMNS])
    return df.astype({"replicate": int, "seed": "Int64", FIT: float, "trial": int, "duration_s": float, "state": "str",
                      "error": "str", **dict.fromkeys(metrics, float)})


def fit_trials_df(study: optuna.Study, batch: Any) -> pd.DataFrame:
    """One row per finished trial: its point, ``objective`` and its running best ``best_so_far`` (or, with
    several objectives, one column per objective), and each metric's mean over replicates."""
    axes = batch.axis_columns()
    names = objective_columns(study)
    rows = []
    for trial in _finished(study):
        values = trial.values or [None] * len(names)
        rows.append({"trial": trial.number, "state": trial.state.name, **_point_columns(trial, axes),
                     **dict(zip(names, values, strict=True)),
                     **{m: trial.user_attrs.get(m) for m in batch.metrics},
                     "n": len(trial.user_attrs.get("replicates", [])),
                     COPIED_FROM: trial.user_attrs.get(COPIED_FROM)})
    df = pd.DataFrame(rows, columns=["trial", "state", *axes.values(), *names, *batch.metrics, "n", COPIED_FROM])
    if len(names) == 1:
        scores = df[names[0]].where(df["state"] == TrialState.COMPLETE.name).astype(float)
        best = scores.cummin() if study.direction == optuna.study.StudyDirection.MINIMIZE else scores.cummax()
        df.insert(list(df.columns).index(names[0]) + 1, "best_so_far", best)
    return df


def objective_columns(study: optuna.Study) -> list[str]:
    """``["objective"]``, or the names of a multi-objective study's objectives."""
    if len(study.directions) == 1:
        return ["objective"]
    return list(study.metric_names or [f"objective_{i}" for i in range(len(study.directions))])


def pareto_df(study: optuna.Study, trials: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of ``trials`` (:func:`fit_trials_df`'s table) on the Pareto front of a multi-objective fit
    (trials no other trial beats on every objective), or None for a single objective."""
    if len(study.directions) < 2:
        return None
    front = {t.number for t in study.best_trials}
    return trials[trials["trial"].isin(front)].reset_index(drop=True)


def fit_figures(trials: pd.DataFrame, study: optuna.Study, batch: Any) -> dict[str, Figure]:
    """``history`` (objective per trial and the running best) and ``objective_vs_<column>`` per parameter
    for one objective; ``pareto`` (the first two objectives, front highlighted) for several."""
    done = trials[trials["state"] == TrialState.COMPLETE.name]
    if done.empty:
        return {}
    names = objective_columns(study)
    if len(names) > 1:
        return {"pareto": _pareto(done, pareto_df(study, trials), names[:2])}
    label = f"{(study.metric_names or ['objective'])[0]} (mean over replicates)"
    figs = {"history": _history(done, label)}
    for column in batch.axis_columns().values():
        values = done[column].dropna()
        if values.nunique() > 1:
            figs[f"objective_vs_{column}"] = _scatter(done.loc[values.index], column, label)
    return figs


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))


def _point_columns(trial: FrozenTrial, axes: dict[str, str]) -> dict[str, Any]:
    point = trial.user_attrs.get("point", trial.params)
    return {col: point.get(axis) for axis, col in axes.items()}


def _seconds(trial: FrozenTrial) -> float | None:
    return None if trial.duration is None else trial.duration.total_seconds()


def _history(done: pd.DataFrame, label: str) -> Figure:
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    copied = done[COPIED_FROM].notna()
    ax.scatter(done.loc[~copied, "trial"], done.loc[~copied, "objective"], s=18, label="simulated")
    if copied.any():
        ax.scatter(done.loc[copied, "trial"], done.loc[copied, "objective"], s=18, marker="x", label="warm start")
    ax.step(done["trial"], done["best_so_far"], where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=label, title="Fit history")
    ax.legend()
    return fig


def _scatter(done: pd.DataFrame, column: str, label: str) -> Figure:
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    x: pd.Series | np.ndarray = done[column]
    if not pd.api.types.is_numeric_dtype(x):
        codes, labels = pd.factorize(x)
        ax.set_xticks(range(len(labels)), labels)
        x = codes + np.random.default_rng(0).uniform(-0.15, 0.15, len(codes))
    points = ax.scatter(x, done["objective"], c=done["trial"], cmap="viridis", s=20)
    fig.colorbar(points, ax=ax, label="trial")
    ax.set(xlabel=column, ylabel=label, title=f"Objective against {column}")
    return fig


def _pareto(done: pd.DataFrame, front: pd.DataFrame | None, names: list[str]) -> Figure:
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(done[names[0]], done[names[1]], s=16, color="0.6", label="trials")
    if front is not None and not front.empty:
        ordered = front.sort_values(names[0])
        ax.plot(ordered[names[0]], ordered[names[1]], "o-", color="tab:red", label="Pareto front")
    ax.set(xlabel=names[0], ylabel=names[1], title="Pareto front")
    ax.legend()
    return fig
