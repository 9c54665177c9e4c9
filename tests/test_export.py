"""The exporter on real Optuna studies built trial by trial, following the study layer's contract."""

from __future__ import annotations

import itertools
import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import FrozenTrial, TrialState, create_trial
from scipy import stats

from larvastudy.definition.batch import Batch
from larvastudy.execution.tasks import Outcome, SweepTask, TrialFactory
from larvastudy.export import build_par_df, export_study, make_figures, summary_df
from larvastudy.export.par_df import pi_table

optuna.logging.set_verbosity(optuna.logging.WARNING)

GAINS = [float(g) for g in np.linspace(-100, 100, 4)]
PI_BATCH = Batch(name="PItest_off", experiment="PItest_off", Nsims=2, metrics=("PI", "PI2", "v_mu"),
                 sample={"gain_dict.CS": GAINS, "gain_dict.UCS": GAINS})
DISH = Batch(name="dish_robustness", experiment="dish", Nsims=3, metrics=("v_mu", "cum_dst"),
             sample={"Npoints": [5, 10, 20]})
PI_3D = Batch(name="PI_3d", experiment="PItest_off", Nsims=1, metrics=("PI", "v_mu"),
              sample={"gain_dict.CS": GAINS[:2], "gain_dict.UCS": GAINS[:2], "Npoints": [5, 10]})
MODELS = Batch(name="chemotaxis_models", experiment="chemotaxis", Nsims=2,
               metrics=("final_dst_to_Source", "v_mu"),
               sample={"model": ["explorer", "navigator"],
                       "env_params.odorscape.odor_layers[0].intensity": [0.5, 1.0, 2.0]})
RUN_SPECIFIC = ["trial", "duration_s"]


def _metric(metric: str, point: dict, replicate: int) -> float:
    """Synthetic but structured values: PI follows the gain difference, others every axis."""
    if metric == "PI":
        return float(np.clip((point["gain_dict.CS"] - point["gain_dict.UCS"]) / 200 + 0.1 * replicate, -1, 1))
    numeric = sum(v for v in point.values() if not isinstance(v, str))
    return 1.0 + 0.01 * numeric + 0.2 * replicate + 0.1 * sum(len(v) for v in point.values() if isinstance(v, str))


#: One factory per Batch (they build the grid's ids once).
_FACTORIES: dict[int, tuple[Batch, TrialFactory]] = {}


def sim_trial(batch: Batch, point: int, replicate: int, state: TrialState = TrialState.COMPLETE,
              error: str = "boom") -> FrozenTrial:
    """One simulation's trial as the sweep writes it (its TrialFactory), with synthetic metrics."""
    values = batch.points()[point]
    metrics: dict[str, float] = {}
    if state == TrialState.COMPLETE:
        for metric in batch.metrics:
            metrics[metric] = _metric(metric, values, replicate)
            metrics[f"{metric}_std"] = 0.5
    task = SweepTask(replicate=replicate, seed=1000 * point + replicate, params=values, grid_point=point)
    now = datetime.now(UTC)
    outcome = Outcome(task=task, metrics=metrics, value=metrics.get(batch.objective_metric()),
                      error=None if state == TrialState.COMPLETE else f"{error} at {point}/{replicate}",
                      started=now, finished=now)
    if id(batch) not in _FACTORIES:   # the Batch is kept too, so its id is never reused
        _FACTORIES[id(batch)] = (batch, TrialFactory(batch))
    return _FACTORIES[id(batch)][1].trial(outcome)


def full_grid(batch: Batch) -> list[FrozenTrial]:
    """An uninterrupted sweep: every (grid point, replicate) once, in grid order."""
    return [sim_trial(batch, p, r) for p in range(len(batch.points())) for r in range(batch.Nsims)]


def make_study(trials: list[FrozenTrial], storage: str | None = None, name: str = "study") -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name=name)
    study.add_trials(trials)
    return study


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'larvastudy.db'}"


def resumed_grid(batch: Batch) -> list[FrozenTrial]:
    """A sweep that failed and was resumed: failures first, completions in reverse order."""
    history = [sim_trial(batch, 1, 0, TrialState.FAIL), sim_trial(batch, 3, 1, TrialState.FAIL, "killed")]
    return history + full_grid(batch)[::-1]


# --- par_df -----------------------------------------------------------------------------------------

def test_par_df_columns_rows_and_failures(tmp_path: Path) -> None:
    trials = resumed_grid(PI_BATCH)[:-1]  # (0, 0) never ran
    trials += [sim_trial(PI_BATCH, 0, 0, TrialState.FAIL, "first"),
               sim_trial(PI_BATCH, 0, 0, TrialState.FAIL, "latest"),
               create_trial(state=TrialState.FAIL)]  # failed before it had a grid point: not a row
    par_df = build_par_df(make_study(trials, sqlite_url(tmp_path)), PI_BATCH)

    assert list(par_df.columns) == ["CS", "UCS", "replicate", "seed", "PI", "PI_std", "PI2", "PI2_std",
                                    "v_mu", "v_mu_std", "fit", "trial", "state", "duration_s", "error"]
    assert len(par_df) == 16 * 2
    done = par_df[par_df["state"] == "COMPLETE"]
    assert done["fit"].tolist() == done["PI"].tolist() and par_df.loc[par_df["state"] == "FAIL", "fit"].isna().all()
    seeds = [1000 * p + r for p in range(16) for r in range(2)]
    assert par_df["seed"].tolist() == seeds  # grid point, then replicate
    assert par_df["CS"].tolist() == [g for g in GAINS for _ in range(8)]
    assert par_df["UCS"].tolist() == [g for g in GAINS for _ in range(2)] * 4
    failed = par_df[par_df["state"] == "FAIL"]
    assert failed["seed"].tolist() == [0]
    assert failed["error"].tolist() == ["latest at 0/0"]
    assert failed[["PI", "v_mu"]].isna().all(axis=None)
    retried = par_df[par_df["seed"] == 1000]  # point 1, replicate 0: failed, then completed
    assert retried["state"].item() == "COMPLETE" and pd.isna(retried["error"].item())
    assert (par_df.loc[par_df["state"] == "COMPLETE", "duration_s"] >= 0).all()


def test_resumed_par_df_equals_uninterrupted(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    uninterrupted = build_par_df(make_study(full_grid(PI_BATCH), url, "whole"), PI_BATCH)
    resumed = build_par_df(make_study(resumed_grid(PI_BATCH), url, "resumed"), PI_BATCH)
    assert (resumed["state"] == "COMPLETE").all()
    pd.testing.assert_frame_equal(resumed.drop(columns=RUN_SPECIFIC), uninterrupted.drop(columns=RUN_SPECIFIC))


@st.composite
def shuffled_history(draw: st.DrawFn) -> list[FrozenTrial]:
    """Every (point, replicate) of DISH: some fail up to twice before completing, some never complete."""
    trials = []
    for point, replicate in itertools.product(range(3), range(DISH.Nsims)):
        trials += [sim_trial(DISH, point, replicate, TrialState.FAIL)] * draw(st.integers(0, 2))
        if draw(st.booleans()):
            trials.append(sim_trial(DISH, point, replicate))
    return draw(st.permutations(trials))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trials=shuffled_history())
def test_par_df_independent_of_trial_order(trials: list[FrozenTrial]) -> None:
    ordered = sorted(trials, key=lambda t: (t.user_attrs["grid_point"], t.params["replicate"]))
    expected = build_par_df(make_study(ordered), DISH).drop(columns=RUN_SPECIFIC)
    got = build_par_df(make_study(trials), DISH).drop(columns=RUN_SPECIFIC)
    pd.testing.assert_frame_equal(got, expected)
    keys = {(t.user_attrs["grid_point"], t.params["replicate"]) for t in trials}
    assert len(got) == len(keys)


def test_summary_df_statistics() -> None:
    par_df = build_par_df(make_study(full_grid(DISH)), DISH)
    summary = summary_df(par_df, DISH)
    assert list(summary.columns) == ["metric", "Npoints", "n", "mean", "std", "sem", "ci95_low",
                                     "ci95_high", "ci95_width", "cv", "unstable"]
    assert summary[["metric", "Npoints"]].values.tolist() == [[m, n] for m in DISH.metrics for n in (5, 10, 20)]
    values = par_df.loc[par_df["Npoints"] == 10, "v_mu"].to_numpy()
    row = summary[(summary["metric"] == "v_mu") & (summary["Npoints"] == 10)].iloc[0]
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert row["n"] == 3 and row["mean"] == pytest.approx(values.mean())
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((values.mean() - half, values.mean() + half))


# --- figures ----------------------------------------------------------------------------------------

def figures_of(batch: Batch) -> dict:
    figs, skipped = make_figures(build_par_df(make_study(full_grid(batch)), batch), batch)
    assert skipped == {}
    return figs


def test_one_axis_line_figures() -> None:
    figs = figures_of(DISH)
    assert set(figs) == {"v_mu_line", "cum_dst_line"}
    ax = figs["v_mu_line"].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Npoints", "v_mu (mm/s)")


def test_two_axes_heatmaps_and_pi_heatmap() -> None:
    figs = figures_of(PI_BATCH)
    assert set(figs) == {"PI_heatmap", "PI2_heatmap", "v_mu_heatmap"}
    ax = figs["PI_heatmap"].axes[0]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("CS gain", "UCS gain")
    assert ax.images[0].norm.vmin == -1 and ax.images[0].norm.vmax == 1
    assert len(ax.texts) == 16  # every cell annotated


def test_pi_table_is_the_mean_over_replicates() -> None:
    par_df = build_par_df(make_study(full_grid(PI_BATCH)), PI_BATCH)
    table = pi_table(par_df, PI_BATCH)
    assert (table.index.name, table.columns.name) == ("CS_gain", "UCS_gain")
    assert table.index.tolist() == GAINS and table.columns.tolist() == GAINS
    corner = {"gain_dict.CS": 100, "gain_dict.UCS": -100}
    assert table.loc[100.0, -100.0] == pytest.approx(np.mean([_metric("PI", corner, r) for r in range(2)]))
    assert pi_table(par_df, DISH) is None


def test_three_axes_pairwise_heatmaps() -> None:
    figs = figures_of(PI_3D)
    assert set(figs) == {"PI_heatmap", "PI_pairwise", "v_mu_pairwise"}
    assert len([ax for ax in figs["v_mu_pairwise"].axes if ax.images]) == 3


def test_categorical_axis_box_plots() -> None:
    figs = figures_of(MODELS)
    assert set(figs) == {"final_dst_to_Source_boxplot", "v_mu_boxplot"}
    ax = figs["final_dst_to_Source_boxplot"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["explorer", "navigator"]
    assert ax.get_ylabel() == "final_dst_to_Source (mm)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0.5", "1", "2"]


def test_no_completed_runs_no_figures() -> None:
    trials = [sim_trial(DISH, p, 0, TrialState.FAIL) for p in range(3)]
    assert make_figures(build_par_df(make_study(trials), DISH), DISH) == ({}, {})


# --- export_study -----------------------------------------------------------------------------------

def _read_table(db_path: Path, table: str) -> pd.DataFrame:
    db = sqlite_utils.Database(db_path)
    try:
        return pd.DataFrame(list(db.query(f"select * from [{table}]")))
    finally:
        db.close()


def test_export_writes_files_and_sqlite_table(tmp_path: Path) -> None:
    db_path = tmp_path / "larvastudy.db"
    trials = [*resumed_grid(PI_BATCH)[:-1], sim_trial(PI_BATCH, 0, 0, TrialState.FAIL)]
    study = make_study(trials, sqlite_url(tmp_path), "PItest_off (v1)")
    with sqlite3.connect(db_path) as conn:  # the study layer may run SQLite in WAL mode
        conn.execute("PRAGMA journal_mode=WAL")
    exported = export_study(study, PI_BATCH, tmp_path / "out")
    par_df, figs = exported.par_df, exported.figures

    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"par_df.csv", "summary.csv", "PIs.csv", "figures"}
    assert {p.stem for p in (out / "figures").glob("*.png")} == set(figs)
    csv = pd.read_csv(out / "par_df.csv")
    pd.testing.assert_frame_equal(csv, par_df, check_dtype=False)
    pis = pd.read_csv(out / "PIs.csv", index_col="CS_gain")
    assert pis.shape == (4, 4) and pis.index.tolist() == GAINS

    assert exported.tables == {"par_df": "par_df_PItest_off (v1)", "summary": "summary_PItest_off (v1)"}
    table = _read_table(db_path, "par_df_PItest_off (v1)")
    pd.testing.assert_frame_equal(table.astype(csv.dtypes.to_dict()), csv)
    assert table["state"].tolist().count("FAIL") == 1

    study.add_trial(sim_trial(PI_BATCH, 0, 0))  # the missing run completes; re-export replaces the table
    export_study(study, PI_BATCH, out)
    table = _read_table(db_path, "par_df_PItest_off (v1)")
    assert len(table) == 32 and (table["state"] == "COMPLETE").all()
    assert len(optuna.load_study(study_name="PItest_off (v1)", storage=sqlite_url(tmp_path)).trials) == 35


def test_export_without_sqlite_storage_writes_files_only(tmp_path: Path) -> None:
    exported = export_study(make_study(full_grid(DISH)), DISH, tmp_path / "out")
    assert set(exported.figures) == {"v_mu_line", "cum_dst_line"}
    assert not (tmp_path / "out" / "PIs.csv").exists()
    assert not list(tmp_path.glob("*.db"))


def test_export_to_explicit_storage_url(tmp_path: Path) -> None:
    export_study(make_study(full_grid(DISH), name="dish"), DISH, tmp_path / "out",
                 storage_url=sqlite_url(tmp_path))
    assert _read_table(tmp_path / "larvastudy.db", "par_df_dish")["Npoints"].tolist() == [5] * 3 + [10] * 3 + [20] * 3
