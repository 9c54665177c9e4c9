"""The Python API of the Batch page: ``BatchRun(...).simulate(n_jobs=...) -> (par_df, figs)``.

``from larvastudy.api import BatchRun`` replaces ``from larvaworld.lib.sim import BatchRun``; the rest
of the page's examples runs unchanged, including ``BatchRun(experiment="PItest_off", **batch_conf)``
with a larvaworld registry entry (``exp``, ``exp_kws``, ``space_search``, ``optimization``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from matplotlib.figure import Figure

from larvastudy.execution import ProgressCallback, SweepSummary, run_batch
from larvastudy.export import export_study
from larvastudy.spec.batch import Batch, batch_from_kwargs
from larvastudy.study import default_outdir, load_study, open_storage, storage_url


class BatchRun:
    """A Batch sweep stored as an Optuna study, with larvaworld's ``BatchRun`` interface.

    ``storage``: Optuna RDB URL or SQLite path (default ``storage/larvastudy.db``, or
    ``$LARVASTUDY_STORAGE``); ``study_name``: default the Batch name (``id``, else the experiment);
    ``outdir``: where ``store()`` writes (``.dir``, default ``storage/<study>/``); ``allow_large``:
    permit sweeps above 100,000 simulations. Everything is validated here, before anything runs.
    """

    def __init__(self, experiment: str, sample: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
                 Nsims: int = 1, metrics: list[str] | None = None, optimization: dict[str, Any] | None = None,
                 *, storage: str | None = None, study_name: str | None = None, outdir: str | Path | None = None,
                 allow_large: bool = False, **larvaworld_extras: Any):
        self.batch: Batch = batch_from_kwargs(experiment, sample, fixed, Nsims, metrics, optimization,
                                              **larvaworld_extras)
        self.batch.check_size(allow_large)
        self.allow_large = allow_large
        self.storage = storage_url(storage)
        self.study_name = study_name or self.batch.name
        self.dir = Path(outdir) if outdir is not None else default_outdir(self.study_name)
        self.summary: SweepSummary | None = None
        self.par_df: pd.DataFrame | None = None
        self.figs: dict[str, Figure] = {}

    def simulate(self, n_jobs: int = 1,
                 progress: ProgressCallback | None = None) -> tuple[pd.DataFrame, dict[str, Figure]]:
        """Run (or resume) the sweep with ``n_jobs`` worker processes, then export: ``(par_df, figs)``."""
        self.summary = run_batch(self.batch, storage=self.storage, study_name=self.study_name, n_jobs=n_jobs,
                                 progress=progress, allow_large=self.allow_large)
        return self.store()

    def store(self) -> tuple[pd.DataFrame, dict[str, Figure]]:
        """(Re)write par_df.csv, the figures and the SQLite par_df table under ``.dir``."""
        self.par_df, self.figs = export_study(self.study, self.batch, self.dir, storage_url=self.storage)
        return self.par_df, self.figs

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (it must exist: run ``simulate()`` first)."""
        study, _ = load_study(open_storage(self.storage), self.study_name, self.batch)
        return study
