"""Write a Batch study's exports: CSV tables, figure PNGs and the tables in the SQLite storage.

Files are staged and renamed into place (:mod:`larvastudy.export.files`), the database tables replaced in
one transaction (:mod:`larvastudy.export.tables`): an export that fails or is killed leaves the previous
one whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure

from larvastudy.export.figures import FIGURE_DPI, make_figures
from larvastudy.export.files import staging
from larvastudy.export.fit import fit_figures, fit_par_df, fit_trials_df, pareto_df
from larvastudy.export.par_df import build_par_df, pi_table, summary_df
from larvastudy.export.tables import write_tables
from larvastudy.study.optuna_internals import rdb_storage
from larvastudy.study.storage import sqlite_path
from larvastudy.study.study import BATCH_ATTR, is_fit


@dataclass
class Exported:
    """What :func:`export_study` wrote."""

    par_df: pd.DataFrame
    figures: dict[str, Figure]
    #: Figures left out, each with the reason (see :func:`make_figures`).
    skipped: dict[str, str]
    #: The database table of each kind (``par_df``, ...), empty without SQLite storage.
    tables: dict[str, str] = field(default_factory=dict)
    #: Tables of this study named by an older larvastudy, dropped (see :mod:`larvastudy.export.tables`).
    dropped: list[str] = field(default_factory=list)
    #: One line if the study holds more replicates per point than were exported, else None.
    note: str | None = None


def export_study(study: optuna.Study, batch: Any, outdir: Path, storage_url: str | None = None) -> Exported:
    """Write the study's tables as CSV files and ``figures/<key>.png`` under ``outdir``; with SQLite
    storage (``storage_url``, else the study's own), also each table in the database (see
    :func:`write_tables`), replaced on re-export. An ExportError if a file or table cannot be written.

    A grid sweep's tables: ``par_df``, ``summary`` and, for PItest batches, ``PIs`` (CSV only), of the first
    ``batch.Nsims`` replicates of each point (:attr:`Exported.note` says so if the study holds more). An
    adaptive fit's: ``par_df``, ``trials`` (one row per point) and, with several objectives, ``pareto``.
    """
    csv_only: dict[str, pd.DataFrame | None] = {}
    skipped: dict[str, str] = {}
    if is_fit(study):
        trials = fit_trials_df(study, batch)
        made = {"par_df": fit_par_df(study, batch), "trials": trials, "pareto": pareto_df(study, trials)}
        figs = fit_figures(trials, study, batch)
    else:
        par_df = build_par_df(study, batch)
        made = {"par_df": par_df, "summary": summary_df(par_df, batch)}
        csv_only = {"PIs": pi_table(par_df, batch)}
        figs, skipped = make_figures(par_df, batch)
    tables = {kind: table for kind, table in made.items() if table is not None}
    url = storage_url or study_storage_url(study)
    database = None if url is None else sqlite_path(url)
    exported = Exported(tables["par_df"], figs, skipped, note=_fewer_replicates(study, batch))
    with staging(Path(outdir)) as stage:
        (stage.folder / "figures").mkdir(exist_ok=True)
        for kind, table in tables.items():
            table.to_csv(stage.path(f"{kind}.csv"), index=False)
        for kind, extra in csv_only.items():
            if extra is not None:
                extra.to_csv(stage.path(f"{kind}.csv"))
        for key, fig in figs.items():
            fig.savefig(stage.path(f"figures/{key}.png"), dpi=FIGURE_DPI)
        if database is not None:
            exported.tables, exported.dropped = write_tables(database, study.study_name, tables)
        stage.commit()
    return exported


def _fewer_replicates(study: optuna.Study, batch: Any) -> str | None:
    """:attr:`Exported.note`: whether grid study ``study`` holds more replicates per point than ``batch`` asks for."""
    held = study.user_attrs.get(BATCH_ATTR, {}).get("Nsims", batch.Nsims)  # none: a study made outside larvastudy
    if is_fit(study) or held <= batch.Nsims:
        return None
    return (f"study {study.study_name} holds {held} replicates per point; exporting the first {batch.Nsims} "
            "(nothing is deleted)")


def study_storage_url(study: optuna.Study) -> str | None:
    """The RDB URL behind the study's storage (unwrapping caches), or None for other storages."""
    storage = rdb_storage(study)
    return None if storage is None else storage.engine.url.render_as_string(hide_password=False)
