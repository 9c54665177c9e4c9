"""One self-contained HTML report of a study: definition, progress, statistics, sensitivity, figures.

Figures are embedded as base64 PNG, so the file opens from disk without a server or the network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from larvastudy.errors import SpecError
from larvastudy.export import build_par_df, make_figures, summary_df
from larvastudy.export.figures import FIGURE_DPI
from larvastudy.export.files import write_file
from larvastudy.export.par_df import completed
from larvastudy.inspect.sensitivity import (
    categorical_axes,
    comparison_figure,
    comparisons,
    importance_figure,
    importances,
    main_effect_figure,
    main_effects,
)
from larvastudy.inspect.stats import power_table

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:right}th{background:#f3f3f3}.scroll{max-height:28em;overflow:auto}
figure{display:inline-block;vertical-align:top;width:48%;margin:.5em 1% .5em 0}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}.flag{color:#b00020}
pre{background:#f6f6f6;padding:.6em;overflow:auto}"""


def figure_png(fig: Figure) -> bytes:
    """``fig`` rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def report_figures(par_df: pd.DataFrame, batch: Any, imp: pd.DataFrame
                   ) -> tuple[dict[str, Figure], dict[str, str]]:
    """Every figure of the report, keyed by name: the exporter's, importances, main effects, comparisons;
    and the exporter's skipped ones with why (the others skip the same all-NaN metrics)."""
    figs, skipped = make_figures(par_df, batch)
    done = completed(par_df)
    if done.empty:
        return figs, skipped
    metrics = [metric for metric in batch.metrics if done[metric].notna().any()]
    if not imp.empty:
        figs["importances"] = importance_figure(imp, batch)
    effects = main_effects(par_df, batch)
    if not effects.empty:
        figs |= {f"{metric}_main_effects": main_effect_figure(effects, batch, metric) for metric in metrics}
    for axis in categorical_axes(batch):
        figs |= {f"{metric}_by_{axis}": comparison_figure(par_df, batch, axis, metric) for metric in metrics}
    return figs, skipped


def build_report(study: optuna.Study, batch: Any, evaluator: str = "ped-anova") -> str:
    """The HTML text of the report of ``study`` (made from ``batch``)."""
    par_df = build_par_df(study, batch)
    imp = importances(study, batch, evaluator)
    summary = summary_df(par_df, batch)
    sections = [_definition(batch), _progress(study, batch, par_df), _summary(summary), _power(par_df, batch),
                _importances(imp, evaluator),
                *(_table_section(f"Comparisons of {axis}", "Each pair of levels within each condition: Cohen's d "
                                 "(pooled SD) and the Welch t-test p-value (not corrected for multiple tests).",
                                 comparisons(par_df, batch, axis)) for axis in categorical_axes(batch)),
                _figures(*report_figures(par_df, batch, imp))]
    title = html.escape(f"larvastudy report: {study.study_name}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body><h1>{title}</h1>"
            f"<p>{html.escape(batch.description)}</p><p><small>Generated {datetime.now():%Y-%m-%d %H:%M}.</small></p>"
            + "".join(sections) + "</body></html>\n")


def write_report(study: optuna.Study, batch: Any, path: Path, evaluator: str = "ped-anova") -> Path:
    """Write :func:`build_report` to ``path`` whole or not at all (folders created first); returns the path.
    An ExportError if it cannot be written."""
    path = Path(path)
    write_file(path, build_report(study, batch, evaluator))
    return path


def _importances(imp: pd.DataFrame, evaluator: str) -> str:
    wide = imp if imp.empty else (imp.pivot(index="metric", columns="parameter", values="importance")
                                  .reindex(pd.unique(imp["metric"])).rename_axis(columns=None).reset_index())
    return _table_section("Parameter importances", f"Share of each metric's sensitivity per swept parameter "
                          f"({evaluator}; COMPLETE trials; replicate excluded). Rows sum to 1.", wide)


def _definition(batch: Any) -> str:
    axes = pd.DataFrame([{"axis": axis, "column": col, "values": batch.space.describe(axis)}
                         for axis, col in batch.axis_columns().items()])
    text = (f"Experiment {batch.experiment}; {len(batch.points())} grid points x {batch.Nsims} replicates = "
            f"{batch.grid_size} simulations; metrics {', '.join(batch.metrics)}; objective {batch.direction} "
            f"{batch.objective_name()}.")
    return (_table_section("Sweep definition", text, axes)
            + f"<details><summary>Full definition</summary><pre>"
              f"{html.escape(json.dumps(batch.to_dict(), indent=2))}</pre></details>")


def _progress(study: optuna.Study, batch: Any, par_df: pd.DataFrame) -> str:
    states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    done = len(completed(par_df))
    failed = par_df[par_df["state"] == TrialState.FAIL.name][["replicate", "error"]]
    text = (f"{done}/{batch.grid_size} simulations complete. Trials by state: "
            + (", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none") + ".")
    return _table_section("Progress", text, failed.head(20)) if len(failed) else _section("Progress", text)


def _summary(summary: pd.DataFrame) -> str:
    flagged = summary[summary["unstable"]]
    text = (f"Per grid point and metric over replicates. <span class=\"flag\">{len(flagged)} of {len(summary)} "
            "rows are flagged unstable</span> (coefficient of variation above 0.2, or a 95 % interval wider "
            "than the metric's limit).")
    return _table_section("Replicate statistics and robustness", text, summary, escape_text=False)


def _power(par_df: pd.DataFrame, batch: Any) -> str:
    try:
        table = power_table(par_df, batch)
    except SpecError as error:
        return _section("Statistical power", html.escape(str(error)))
    return _table_section("Statistical power", "Replicate spread pooled over grid points and the 95 % CI "
                          "half-width of a grid-point mean with the current Nsims; `larvastudy power` gives the "
                          "Nsims for a wanted half-width or difference.", table)


def _figures(figs: dict[str, Figure], skipped: dict[str, str]) -> str:
    items = "".join(
        f"<figure id=\"fig-{html.escape(key)}\"><img alt=\"{html.escape(key)}\" src=\"data:image/png;base64,"
        f"{base64.b64encode(figure_png(fig)).decode()}\"><figcaption>{html.escape(key)}</figcaption></figure>"
        for key, fig in figs.items())
    left_out = "".join(f" Skipped {key}: {why}." for key, why in skipped.items())
    return _section("Figures", html.escape(f"{len(figs)} figures.{left_out}")) + items


def _section(title: str, text: str) -> str:
    return f"<h2>{html.escape(title)}</h2><p>{text}</p>"


def _table_section(title: str, text: str, table: pd.DataFrame, escape_text: bool = True) -> str:
    body = table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0) \
        if not table.empty else "<p>none</p>"
    return _section(title, html.escape(text) if escape_text else text) + f"<div class=\"scroll\">{body}</div>"
