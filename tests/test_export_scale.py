"""Exports of large grids (a 100 x 100 grid written with the bulk trial writer): tables, fixed-size readable
figures, figures skipped with a reason, and box plots that keep runs without a nested axis's value."""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.image import imread
from sqlalchemy.orm import Session

from larvastudy import cli
from larvastudy.definition.batch import Batch, batch_from_kwargs, load_batch
from larvastudy.execution.tasks import Outcome, SweepTask, TrialFactory
from larvastudy.export import export_study, make_figures
from larvastudy.export.figures import MAX_CELL_LABELS, MAX_PIXELS, MAX_TICKS
from larvastudy.export.par_df import build_par_df
from larvastudy.inspect.report import build_report
from larvastudy.study import add_trials, open_storage, open_study, storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: 10,000 simulations: CS gains evenly spaced, UCS gains log-spaced; PI2 is never measured.
BIG = batch_from_kwargs(experiment="PItest_off", name="big", Nsims=1, metrics=["PI", "PI2", "v_mu"],
                        sample={"gain_dict.CS": {"range": [-100.0, 100.0], "Ngrid": 100},
                                "gain_dict.UCS": np.geomspace(0.01, 100.0, 100).tolist()},
                        fixed={"duration": 0.005})


def _big_metrics(point: dict[str, Any], replicate: int) -> dict[str, float]:
    cs, ucs = point["gain_dict.CS"], point["gain_dict.UCS"]
    return {"PI": (cs - ucs) / 200, "PI_std": 0.0, "PI2": float("nan"), "PI2_std": float("nan"),
            "v_mu": 1.0 + 0.01 * cs, "v_mu_std": 0.1}


def bulk_study(batch: Batch, db: Path, metrics: Callable[[dict[str, Any], int], dict[str, float]]) -> optuna.Study:
    """A finished sweep of ``batch`` in SQLite file ``db``, written in one transaction like a run's."""
    rdb = open_storage(storage_url(db))
    study = open_study(batch, rdb, batch.name)
    factory = TrialFactory(batch)
    start = datetime.datetime(2025, 1, 2, 3, 4, 5)
    end = start + datetime.timedelta(seconds=1)
    trials = [factory.trial(Outcome(SweepTask(grid_point=p, replicate=r, seed=1000 * p + r), values,
                                    values[batch.objective_metric()], None, start, end))
              for p, point in enumerate(batch.points()) for r in range(batch.Nsims)
              for values in [metrics(point, r)]]
    with Session(rdb.engine) as session, session.begin():
        add_trials(session, study._study_id, trials)
    return study


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("big")
    study = bulk_study(BIG, folder / "s.db", _big_metrics)
    exported = export_study(study, BIG, folder / "out")
    return {"folder": folder, "par_df": exported.par_df, "figs": exported.figures, "skipped": exported.skipped}


def test_big_grid_tables(big: dict[str, Any]) -> None:
    par_df, folder = big["par_df"], big["folder"]
    assert len(par_df) == 10_000 and par_df["seed"].tolist() == [1000 * p for p in range(10_000)]
    assert (par_df["state"] == "COMPLETE").all() and par_df["duration_s"].eq(1.0).all()
    with sqlite3.connect(folder / "s.db") as conn:
        table = pd.read_sql("select * from par_df_big", conn)
        summary = pd.read_sql("select * from summary_big", conn)
    pd.testing.assert_frame_equal(table.astype(par_df.dtypes.to_dict()), par_df)
    assert len(summary) == 3 * 10_000


def test_big_heatmaps_are_fixed_size_without_cell_labels_and_with_few_round_ticks(big: dict[str, Any]) -> None:
    assert set(big["figs"]) == {"PI_heatmap", "v_mu_heatmap"}
    for key, fig in big["figs"].items():
        height, width = imread(big["folder"] / "out" / "figures" / f"{key}.png").shape[:2]
        assert max(height, width) <= MAX_PIXELS
        ax = fig.axes[0]
        assert ax.images[0].get_array().shape == (100, 100)
        assert len(ax.texts) == 0
        xlabels = [t.get_text() for t in ax.get_xticklabels()]
        ylabels = [t.get_text() for t in ax.get_yticklabels()]
        assert 3 <= len(xlabels) <= MAX_TICKS and 3 <= len(ylabels) <= MAX_TICKS
        assert all(float(label) == float(f"{float(label):.2g}") for label in xlabels + ylabels)  # rounded
    ax = big["figs"]["v_mu_heatmap"].axes[0]
    assert ax.get_ylabel() == "CS" and "0" in [t.get_text() for t in ax.get_yticklabels()]
    ticks = dict(zip([t.get_text() for t in ax.get_yticklabels()], ax.get_yticks(), strict=True))
    assert ticks["0"] == pytest.approx(49.5) and ticks["-100"] == 0  # evenly spaced: at their place


def test_all_nan_metric_is_skipped_with_its_reason(big: dict[str, Any], tmp_path, monkeypatch, capsys) -> None:
    assert big["skipped"] == {"PI2_heatmap": "all NaN: no completed simulation has PI2"}
    assert not (big["folder"] / "out" / "figures" / "PI2_heatmap.png").exists()
    monkeypatch.chdir(big["folder"])
    assert cli.main(["export", "big", "--storage", str(big["folder"] / "s.db")]) == 0
    assert "figures skipped: PI2_heatmap (all NaN: no completed simulation has PI2)" in capsys.readouterr().out


def test_small_heatmaps_label_every_cell() -> None:
    batch = batch_from_kwargs(experiment="PItest_off", name="small", Nsims=1, metrics=["PI"],
                              sample={"gain_dict.CS": {"range": [-1.0, 1.0], "Ngrid": MAX_CELL_LABELS},
                                      "gain_dict.UCS": [0.0, 1.0]})
    study = optuna.create_study()
    factory = TrialFactory(batch)
    now = datetime.datetime.now()
    study.add_trials([factory.trial(Outcome(SweepTask(grid_point=p, replicate=0, seed=p), {"PI": 0.5, "PI_std": 0.0},
                                            0.5, None, now, now))
                      for p in range(len(batch.points()))])
    figs, _ = make_figures(build_par_df(study, batch), batch)
    ax = figs["PI_heatmap"].axes[0]
    assert len(ax.texts) == 2 * MAX_CELL_LABELS and len(ax.get_yticklabels()) == MAX_CELL_LABELS


def test_box_plot_keeps_runs_without_the_nested_axis_as_their_own_group(tmp_path) -> None:
    batch = load_batch("chemotaxis_models")  # explorers have no decay_coef

    def metrics(point: dict[str, Any], replicate: int) -> dict[str, float]:
        return {m: 1.0 + replicate + point.get("decay_coef", 0.0) for m in batch.metrics} | \
            {f"{m}_std": 0.0 for m in batch.metrics}

    par_df = build_par_df(bulk_study(batch, tmp_path / "s.db", metrics), batch)
    figs, skipped = make_figures(par_df, batch)
    assert skipped == {} and set(figs) == {f"{m}_boxplot" for m in batch.metrics}
    ax = figs["v_mu_boxplot"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["explorer", "navigator"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0.1", "0.5", "1", "none"]
    xs = np.concatenate([line.get_xdata() for line in ax.lines if line.get_marker() == "."])
    assert len(xs) == batch.grid_size  # every run is drawn
    assert np.isclose(xs, 0.3).sum() == batch.Nsims  # explorers: the last ("none") box of the first category


def test_report_lists_the_skipped_figures(tmp_path) -> None:
    batch = batch_from_kwargs(experiment="PItest_off", name="report", Nsims=2, metrics=["PI", "PI2", "v_mu"],
                              sample={"gain_dict.CS": [-100.0, 0.0, 100.0], "gain_dict.UCS": [-100.0, 100.0]})
    html = build_report(bulk_study(batch, tmp_path / "s.db", _big_metrics), batch)
    assert "Skipped PI2_heatmap: all NaN: no completed simulation has PI2." in html
    assert 'id="fig-PI_heatmap"' in html and "fig-PI2_" not in html
