"""The Python API of the Batch page: ``BatchRun(...).simulate(n_jobs=...) -> (par_df, figs)``, and
:func:`run_batch` / :func:`join_sweep`, the one place that chooses between a grid sweep and an adaptive fit
(the CLI's ``run`` and ``worker`` call them too).

``from larvastudy.api import BatchRun`` replaces ``from larvaworld.lib.sim import BatchRun``; the rest
of the page's examples runs unchanged, including ``BatchRun(experiment="PItest_off", **batch_conf)``
with a larvaworld registry entry (``exp``, ``exp_kws``, ``space_search``, ``optimization``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from larvastudy.definition.batch import Batch, batch_from_kwargs
from larvastudy.engine import simulate_many
from larvastudy.errors import SpecError
from larvastudy.execution import (
    GRACE,
    FitSummary,
    ProgressCallback,
    SweepSummary,
    check_grace,
    fit_batch,
    sweep_batch,
    worker_count,
)
from larvastudy.execution.worker import Simulate
from larvastudy.names import check_name
from larvastudy.study import default_outdir, load_study, open_storage, storage_url
from larvastudy.study.identity import default_study_name
from larvastudy.study.study import FIT_RUN_ATTR

if TYPE_CHECKING:  # the CLI's run and worker import this module; only an export needs pandas and matplotlib
    import optuna
    import pandas as pd
    from matplotlib.figure import Figure


def run_batch(batch: Batch, *, storage: str | None = None, study_name: str | None = None, n_jobs: int = 1,
              progress: ProgressCallback | None = None, allow_large: bool = False,
              chunk_size: int | None = None, retries: int = 0, grace: float = GRACE, sampler: str = "grid",
              n_trials: int | None = None, warm_start: str | None = None, threshold: float | None = None,
              replace: bool = False, simulate: Simulate = simulate_many) -> SweepSummary | FitSummary:
    """Run (or resume, or join) ``batch``: its grid sweep (``sampler="grid"``, see
    :func:`~larvastudy.execution.sweep_batch`) in study ``study_name`` (default ``batch.name``), or an
    adaptive fit with ``sampler`` (one of :data:`~larvastudy.execution.ADAPTIVE_SAMPLERS`, see
    :func:`~larvastudy.execution.fit_batch`) of ``n_trials`` points, in study ``<batch.name>-<sampler>`` by
    default, optionally warm-started from the grid study ``warm_start`` and stopped early at ``threshold``.

    ``chunk_size`` and ``retries`` apply to sweeps; ``n_trials``, ``warm_start`` and ``threshold`` to fits;
    given to the other kind they are a SpecError, raised before storage is touched. ``storage``, ``n_jobs``,
    ``progress``, ``grace``, ``replace`` and ``simulate`` (the engine; a no-op in benchmarks) apply to both.
    """
    n_workers = worker_count(n_jobs)
    if sampler == "grid":
        if n_trials is not None or warm_start is not None or threshold is not None:
            raise SpecError("n_trials, threshold and warm_start need an adaptive sampler (e.g. --sampler tpe); "
                            "a grid sweep runs its whole grid")
        return sweep_batch(batch, storage=storage, study_name=study_name, n_jobs=n_workers, progress=progress,
                           allow_large=allow_large, chunk_size=chunk_size, retries=retries, grace=grace,
                           replace=replace, simulate=simulate)
    if chunk_size is not None or retries:
        raise SpecError("chunk_size and retries apply to grid sweeps; an adaptive fit runs each point's "
                        "replicates in one engine call and records a failure as a FAIL trial")
    return fit_batch(batch, sampler=sampler, n_trials=n_trials, storage=storage_url(storage),
                     study_name=study_name or f"{batch.name}-{sampler}", n_workers=n_workers, progress=progress,
                     warm_start=warm_start, threshold=threshold, grace=check_grace(grace), replace=replace,
                     simulate=simulate)


def join_sweep(study_name: str, storage: str | None = None, **options: Any) -> SweepSummary | FitSummary:
    """Work on an existing study made by :func:`run_batch`, whose stored definition says what to run: a
    grid sweep, or a fit by its latest run's sampler, budget and threshold.

    ``options``: those of :func:`run_batch` (``n_jobs``, ``progress``, ``retries``, ``grace``, ...). If another
    run gives the study more replicates meanwhile, it stops (:class:`~larvastudy.study.claims.Renumbered`):
    start it again.
    """
    url = storage_url(storage)
    study, batch = load_study(open_storage(url, create=False), study_name)
    fit = study.user_attrs.get(FIT_RUN_ATTR)
    if fit is not None:
        options = {**options, "sampler": fit["sampler"], "n_trials": fit["n_trials"], "threshold": fit["threshold"]}
    return run_batch(batch, storage=url, study_name=study_name, allow_large=True, **options)


class BatchRun:
    """A Batch sweep stored as an Optuna study, with larvaworld's ``BatchRun`` interface.

    ``storage``: Optuna RDB URL or SQLite path (default ``storage/larvastudy.db``, or
    ``$LARVASTUDY_STORAGE``); ``study_name``: default the Batch name (``id``, else the experiment) if the
    definition equals the shipped Batch of that name, else that name and a hash of the definition
    (``chemotaxis-3f9a2c``, printed; see :func:`larvastudy.study.identity.default_study_name`); ``replace``:
    delete a stored study of that name first and start again; ``outdir``: where ``store()`` writes (``.dir``,
    default ``storage/<study>/``); ``allow_large``: permit sweeps above 100,000 simulations; ``targets``: metric
    values to fit (see
    :mod:`larvastudy.definition.objective`). Everything is validated here, before anything runs (names: see
    :mod:`larvastudy.names`).
    """

    def __init__(self, experiment: str, sample: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
                 Nsims: int = 1, metrics: list[str] | None = None, optimization: dict[str, Any] | None = None,
                 *, targets: dict[str, Any] | None = None, storage: str | None = None, study_name: str | None = None,
                 outdir: str | Path | None = None, allow_large: bool = False, replace: bool = False,
                 **larvaworld_extras: Any):
        self.batch: Batch = batch_from_kwargs(experiment, sample, fixed, Nsims, metrics, optimization,
                                              targets=targets, **larvaworld_extras)
        self.batch.check_size(allow_large)
        self.allow_large = allow_large
        self.storage = storage_url(storage)
        self._named = study_name is not None
        #: The study: ``study_name``, else see the class (a fit's: ``<it>-<sampler>`` once simulated).
        self.study_name = check_name(study_name) if self._named else default_study_name(self.batch)
        self._grid_name, self.replace = self.study_name, replace
        if self.study_name not in (study_name, self.batch.name):
            print(f"BatchRun: study {self.study_name!r} (this definition of {self.batch.name!r}; "
                  "study_name= chooses another name)")
        self._outdir = Path(outdir) if outdir is not None else None
        self.summary: SweepSummary | FitSummary | None = None
        self.par_df: pd.DataFrame | None = None
        self.figs: dict[str, Figure] = {}
        #: Figures ``store()`` left out, with why (e.g. a metric no completed simulation has).
        self.skipped: dict[str, str] = {}

    def simulate(self, n_jobs: int = 1, progress: ProgressCallback | None = None, *, sampler: str = "grid",
                 n_trials: int | None = None, warm_start: str | None = None) -> tuple[pd.DataFrame, dict[str, Figure]]:
        """Run (or resume) the sweep with ``n_jobs`` worker processes, then export: ``(par_df, figs)``.

        ``sampler`` other than ``"grid"`` fits the Batch instead (``n_trials`` points; see :func:`run_batch`),
        in study ``<name>-<sampler>`` unless ``study_name`` was given. With ``replace``, a stored study of that
        name is deleted first (once: a second ``simulate()`` resumes).
        """
        fit = sampler != "grid" and not self._named
        self.study_name = f"{self._grid_name}-{sampler}" if fit else self._grid_name
        self.summary = run_batch(self.batch, storage=self.storage, study_name=self.study_name, n_jobs=n_jobs,
                                 progress=progress, allow_large=self.allow_large, sampler=sampler, n_trials=n_trials,
                                 warm_start=warm_start, replace=self.replace)
        self.replace = False
        return self.store()

    def store(self) -> tuple[pd.DataFrame, dict[str, Figure]]:
        """(Re)write par_df.csv, the figures and the SQLite par_df table under ``.dir``; figures left out are
        in ``.skipped``. A warning says so if the study holds more replicates than ``Nsims`` (the first are
        exported)."""
        from larvastudy.export import export_study

        exported = export_study(self.study, self.batch, self.dir, storage_url=self.storage)
        if exported.note:
            warnings.warn(exported.note, stacklevel=2)
        self.par_df, self.figs, self.skipped = exported.par_df, exported.figures, exported.skipped
        return self.par_df, self.figs

    @property
    def dir(self) -> Path:
        """Where ``store()`` writes: ``outdir``, else ``storage/<study>/``."""
        return self._outdir if self._outdir is not None else default_outdir(self.study_name)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (it must exist: run ``simulate()`` first)."""
        study, _ = load_study(open_storage(self.storage), self.study_name, self.batch)
        return study
