"""Write a Batch study's exports: CSV tables, figure PNGs and a par_df table in the SQLite storage."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import sqlite_utils
from matplotlib.figure import Figure

from larvastudy.export.figures import FIGURE_DPI, make_figures
from larvastudy.export.fit import fit_figures, fit_par_df, fit_trials_df, pareto_df
from larvastudy.export.par_df import build_par_df, pi_table, summary_df
from larvastudy.study.records import rdb_storage
from larvastudy.study.storage import sqlite_path
from larvastudy.study.study import is_fit

#: Seconds to wait for a writer (e.g. a running sweep) to release the SQLite file.
BUSY_TIMEOUT_S = 30.0


def export_study(study: optuna.Study, batch: Any, outdir: Path, storage_url: str | None = None
                 ) -> tuple[pd.DataFrame, dict[str, Figure], dict[str, str]]:
    """Write the study's tables as CSV files and ``figures/<key>.png`` under ``outdir``; with SQLite
    storage (``storage_url``, else the study's own), also each table as ``<table>_<study name>`` in
    the database, replaced on re-export. Returns the par_df, the figures and the figures skipped, each
    with the reason (see :func:`make_figures`).

    A grid sweep's tables: ``par_df``, ``summary`` and, for PItest batches, ``PIs`` (CSV only). An
    adaptive fit's: ``par_df``, ``trials`` (one row per point) and, with several objectives, ``pareto``.
    """
    figdir = Path(outdir) / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    if is_fit(study):
        trials = fit_trials_df(study, batch)
        tables = {"par_df": fit_par_df(study, batch), "trials": trials, "pareto": pareto_df(study, trials)}
        figs, skipped = fit_figures(trials, study, batch), {}
    else:
        par_df = build_par_df(study, batch)
        tables = {"par_df": par_df, "summary": summary_df(par_df, batch)}
        pis = pi_table(par_df, batch)
        if pis is not None:
            pis.to_csv(figdir.parent / "PIs.csv")
        figs, skipped = make_figures(par_df, batch)
    url = storage_url or study_storage_url(study)
    database = None if url is None else sqlite_path(url)
    for kind, table in tables.items():
        if table is None:
            continue
        table.to_csv(figdir.parent / f"{kind}.csv", index=False)
        if database is not None:
            write_table(database, table_name(study.study_name, kind), table)
    for key, fig in figs.items():
        fig.savefig(figdir / f"{key}.png", dpi=FIGURE_DPI)
    return tables["par_df"], figs, skipped


def study_storage_url(study: optuna.Study) -> str | None:
    """The RDB URL behind the study's storage (unwrapping caches), or None for other storages."""
    storage = rdb_storage(study)
    return None if storage is None else storage.engine.url.render_as_string(hide_password=False)


def table_name(study_name: str, kind: str = "par_df") -> str:
    """``<kind>_<study name>`` with every run of non-word characters made ``_``."""
    return f"{kind}_" + re.sub(r"\W+", "_", study_name)


def write_table(database: Path, name: str, df: pd.DataFrame) -> None:
    """Replace table ``name`` of ``database`` by ``df``, in one transaction on a connection of its own."""
    conn = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S)
    try:
        db = sqlite_utils.Database(conn)
        with db.atomic():
            table = db.table(name)
            table.create({col: _sql_type(df[col]) for col in df.columns}, replace=True)
            table.insert_all(df.astype(object).where(df.notna(), None).to_dict("records"))
    finally:
        conn.close()


def _sql_type(values: pd.Series) -> type:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return int
    return float if pd.api.types.is_float_dtype(values) else str
