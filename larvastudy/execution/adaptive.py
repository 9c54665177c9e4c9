"""Adaptive fits: an Optuna sampler proposes points, each is simulated ``Nsims`` times, and the trial's
objective is the replicates' mean, so a noisy metric is not chased.

One Optuna trial is one proposed point (unlike a grid sweep, where a trial is one simulation); its
user attributes hold the metrics' means over replicates and, under ``replicates``, every simulation's
seed and metrics, from which the exporter builds par_df. The run asks the sampler for a new point
whenever a worker process has room, so ``n_jobs`` workers keep busy (TPE's constant liar keeps
parallel proposals apart). It stops after ``n_trials`` simulated trials (default
``optimization.max_Nsims``), or, only when asked with ``threshold``, once a trial's objective reaches it
(see :func:`stop_rule`); running it again continues the same study up to the same budget. The Batch's
``optimization.threshold`` is larvaworld's registry value and is never a stop rule by itself: the
registry's 0.001 would end a fit on its first point. Trials a crash or kill left RUNNING are marked FAIL
when the next run starts: one process runs a fit at a time.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from larvastudy.definition.batch import Batch
from larvastudy.definition.objective import distance, target_errors
from larvastudy.definition.space import is_int, is_number
from larvastudy.errors import SpecError
from larvastudy.execution.heartbeat import Heartbeat
from larvastudy.execution.interrupted import RunInterrupted
from larvastudy.execution.plan import ProgressCallback, trial_seed
from larvastudy.execution.pool import WorkerPool
from larvastudy.execution.tasks import FitTask, Outcome, Task
from larvastudy.execution.worker import Simulate
from larvastudy.signals import stop_on_signals, stop_signal, uninterrupted
from larvastudy.study import add_trials, display_url, load_study, open_storage, setup_lock
from larvastudy.study import optuna_internals as internals
from larvastudy.study.delete import replace_study
from larvastudy.study.distributions import fit_distributions, suggest
from larvastudy.study.fitleases import FitLeases
from larvastudy.study.study import COPIED_FROM, FIT_RUN_ATTR, open_fit_study

#: Optuna sampler factories ``(seed, n_trials) -> sampler`` by the name ``--sampler`` takes.
_SAMPLERS: dict[str, Callable[[int, int], BaseSampler]] = {
    "random": lambda seed, n: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda seed, n: optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                                      n_startup_trials=min(10, max(1, n // 4))),
    "cmaes": lambda seed, n: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "qmc": lambda seed, n: optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_asynchronous_seeding=False,
                                                      warn_independent_sampling=False),
    "nsga2": lambda seed, n: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, n // 5))),
}
#: Seconds between checks, once the rest of the budget is leased by other processes, for trials they finish or lose.
WAIT = 1.0
#: The samplers ``--sampler`` takes besides ``grid``.
ADAPTIVE_SAMPLERS = tuple(_SAMPLERS)


@dataclass(frozen=True)
class FitSummary:
    """How a fit left its study."""

    unit: ClassVar[str] = "trials"  # what ``complete``, ``failed`` and ``total`` count

    study_name: str
    storage_url: str
    sampler: str
    complete: int  # simulated COMPLETE trials, earlier runs included (copied ones not counted)
    failed: int  # FAIL trials of this run
    total: int  # the trial budget
    elapsed: float
    best_values: list[float] | None
    best_params: dict[str, Any] | None
    stopped: str  # why the run ended
    copied: int = 0  # trials a warm start copied in this run
    ran: int = 0  # COMPLETE trials this process simulated
    released: int = 0  # trials in flight a stopped run gave back

    @property
    def finished(self) -> bool:
        """Whether the study's budget is spent (or the threshold reached)."""
        return self.complete >= self.total or self.stopped == "stopped at the threshold"

    def __str__(self) -> str:
        where = f"study {self.study_name!r} in {self.storage_url}"
        best = ""
        if self.best_values is not None:
            shown = ", ".join(f"{v:.4g}" for v in self.best_values)
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in (self.best_params or {}).items())
            best = f"; best {shown} at {params}"
        copied = f", {self.copied} copied by the warm start" if self.copied else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"{where} ({self.sampler}): {self.complete}/{self.total} trials ({self.ran} by this process)"
                f"{copied}{failed}, {self.stopped} ({self.elapsed:.1f} s){best}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def make_sampler(name: str, seed: int, n_trials: int) -> BaseSampler:
    """The Optuna sampler ``name`` (one of :data:`ADAPTIVE_SAMPLERS`), seeded for reproducible fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _SAMPLERS[name](seed, n_trials)


def trial_budget(batch: Batch, sampler: str, n_trials: int | None) -> int:
    """The trials a fit runs: ``n_trials``, else the Batch's ``optimization.max_Nsims``; a SpecError if neither."""
    budget = n_trials if n_trials is not None else (batch.optimization.max_Nsims if batch.optimization else None)
    if budget is None:
        raise SpecError(f"sampler {sampler!r} needs a number of trials: --n-trials N (n_trials=N), "
                        "or max_Nsims in [optimization]")
    if not is_int(budget) or budget < 1:
        raise SpecError(f"n_trials must be a whole number >= 1, got {budget!r}")
    return budget


def check_threshold(threshold: object) -> float | None:
    """``threshold`` if it is None or a finite number, else a SpecError."""
    if threshold is None:
        return None
    if not is_number(threshold) or not math.isfinite(threshold):
        raise SpecError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def stop_rule(batch: Batch, budget: int, threshold: float | None, multi: bool = False) -> str:
    """When a fit of ``batch`` stops, in words (``show``, ``status`` and the README say the same)."""
    rule = f"after {budget} simulated trials"
    if threshold is None:
        return rule
    if batch.direction == "maximize" and not multi:
        return f"{rule}, or at the first point whose {batch.objective_name()} is >= {threshold:g}"
    what = "every target error" if multi else batch.objective_name()
    return f"{rule}, or at the first point whose {what} is <= {threshold:g}"


def fit_batch(batch: Batch, *, sampler: str, n_trials: int | None = None, storage: str, study_name: str,
              n_workers: int, progress: ProgressCallback | None = None, warm_start: str | None = None,
              threshold: float | None = None, grace: float, replace: bool = False, simulate: Simulate
              ) -> FitSummary:
    """Fit ``batch`` with ``sampler``, or join others fitting it; see the module. ``warm_start``: a grid study
    of the same Batch in the same storage whose completed points are copied in (not re-simulated) before the
    first run. ``threshold``: also stop at the first point whose objective reaches it (see :func:`stop_rule`).
    ``grace``: seconds a silent process's trials stay leased. ``replace``: first delete a stored study
    ``study_name`` (see :func:`larvastudy.study.delete_study`)."""
    if sampler not in _SAMPLERS:
        raise SpecError(f"unknown sampler {sampler!r}; choose one of grid, {', '.join(ADAPTIVE_SAMPLERS)}")
    budget = trial_budget(batch, sampler, n_trials)
    threshold = check_threshold(threshold)
    multi = sampler == "nsga2" and len(batch.targets) > 1
    rdb = open_storage(storage)
    with setup_lock(storage):
        source = load_study(rdb, warm_start)[1] if warm_start else None
        if replace:
            replace_study(storage, study_name)
        study = open_fit_study(batch, rdb, study_name, make_sampler(sampler, batch.seed, budget), multi)
        leases = FitLeases(rdb, internals.study_id(study), grace)
        leases.prepare()
        copied = 0 if warm_start is None or source is None else _warm_start(study, batch, rdb, warm_start, source,
                                                                             multi)
        runs = study.user_attrs.get(FIT_RUN_ATTR, {}).get("runs", 0)
        study.set_user_attr(FIT_RUN_ATTR, {"sampler": sampler, "n_trials": budget, "threshold": threshold,
                                           "rule": stop_rule(batch, budget, threshold, multi), "runs": runs + 1})
    study.sampler = make_sampler(sampler, batch.seed + runs, budget)  # processes sharing a fit propose apart
    run = _Fit(study, leases, batch, sampler, budget, threshold, multi, progress, copied, display_url(storage))
    if run.stopped():
        return run.summary()
    with WorkerPool[FitTask](batch, n_workers, simulate) as pool, stop_on_signals(), Heartbeat(leases.renew, grace / 4):
        try:
            while pool.alive:
                for outcomes in pool.run(run.ask):
                    run.tell(outcomes)
                if run.stopped():
                    break
                # the rest of the budget is leased by other processes: wait for them to finish or vanish
                time.sleep(WAIT)
        except KeyboardInterrupt as stop:
            pool.terminate()
            run.interrupt()
            raise FitInterrupted(run.summary(), stop_signal(stop)) from None
    return run.summary()


class FitInterrupted(RunInterrupted):
    """Ctrl-C, SIGTERM or SIGHUP stopped the fit; finished trials are stored, those in flight are given back
    (WAITING, run first next time), and running it again continues it."""

    released_as = "are given back"
    again = "run the same fit again to continue"


class _Fit:
    """One process's part of a fit: asks points, tells their objective, decides when to stop."""

    def __init__(self, study: optuna.Study, leases: FitLeases, batch: Batch, sampler: str, budget: int,
                 threshold: float | None, multi: bool, progress: ProgressCallback | None, copied: int, url: str):
        self.study, self.leases, self.batch, self.sampler = study, leases, batch, sampler
        self.budget, self.threshold, self.multi = budget, threshold, multi
        self._progress, self._copied, self._url = progress, copied, url
        self._running: dict[int, optuna.trial.Trial] = {}
        self._failed = self._ran = self._released = 0
        self._interrupted = False
        self._start = time.monotonic()
        self._complete = leases.counts()[0]
        self._report()

    def stopped(self) -> bool:
        """Whether this process is done: the study's budget spent, the threshold reached, or as many of its
        own trials failed as the budget."""
        return self._complete >= self.budget or self._failed >= self.budget or self._reached()

    def ask(self) -> list[FitTask]:
        """The next point's replicate simulations, or none while the budget is spent or leased."""
        if self._failed >= self.budget or self._reached():
            return []
        with uninterrupted():
            trial_id = self.leases.take(self.budget)
            if trial_id is None:
                self._complete = self.leases.counts()[0]
                return []
            internals.forget_cached_trials(self.study)  # samplers see the latest trials, as after study.ask()
            self.study.get_trials(deepcopy=False)  # and Optuna's storage cache learns of this one
            trial = optuna.trial.Trial(self.study, trial_id)
            self._running[trial.number] = trial
            point = suggest(self.batch.space, trial)
            first = self.batch.Nsims * self._earlier(trial.number, trial.params)
        return [FitTask(trial_number=trial.number, replicate=r, seed=trial_seed(self.batch, point, r), params=point)
                for r in range(first, first + self.batch.Nsims)]

    def _earlier(self, number: int, params: dict[str, Any]) -> int:
        """How many trials numbered before ``number`` (copied ones included) are of the same point: a point
        suggested again gets the next replicates, with new seeds, instead of repeating the simulations it has
        (two processes suggesting one new point at the same moment can still share them)."""
        return sum(t.number < number and t.params == params for t in self.study.get_trials(deepcopy=False))

    def tell(self, outcomes: Sequence[Outcome[FitTask]]) -> None:
        """Store one point's replicates and its objective (FAIL with the first error if any failed), if this
        process still holds the trial (else another process is running that point again)."""
        with uninterrupted():
            self._tell(outcomes)
        self._report()

    def _tell(self, outcomes: Sequence[Outcome[FitTask]]) -> None:
        trial = self._running.pop(outcomes[0].task.trial_number)
        errors = [o.error for o in outcomes if o.error is not None]
        attrs = {**replicate_attrs(self.batch, outcomes), "point": dict(outcomes[0].task.params)}
        values = None if errors else point_values(self.batch, outcomes, self.multi)
        if errors:
            attrs["error"] = errors[0]
        state = TrialState.FAIL if errors else TrialState.COMPLETE
        if self.leases.finish(internals.trial_id(trial), state, values, attrs):
            self._failed += bool(errors)
            self._ran += not errors
        self._complete = self.leases.counts()[0]

    def interrupt(self) -> None:
        """Give back the trials in flight (WAITING: the next run or worker runs their points first)."""
        self._released = self.leases.release()
        self._running.clear()
        self._interrupted = True

    def summary(self) -> FitSummary:
        best_values = best_params = None
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete and not self.multi:
            best = self.study.best_trial
            best_values, best_params = best.values, best.user_attrs.get("point", best.params)
        if self._interrupted:
            stopped = "interrupted"
        elif self._reached():
            stopped = "stopped at the threshold"
        elif self._failed >= self.budget:
            stopped = f"stopped after {self._failed} failed trials"
        else:
            stopped = "trial budget spent"
        return FitSummary(self.study.study_name, self._url, self.sampler, self._complete, self._failed, self.budget,
                          time.monotonic() - self._start, best_values, best_params, stopped, self._copied,
                          self._ran, self._released)

    def _reached(self) -> bool:
        """Whether a COMPLETE trial of the study (any process's) reached the threshold."""
        if self.threshold is None:
            return False
        return any(self._meets(t.values, self.threshold)
                   for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _meets(self, values: Sequence[float], threshold: float) -> bool:
        if self.batch.direction == "maximize" and not self.multi:
            return values[0] >= threshold
        return all(v <= threshold for v in values)

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self._complete, self._failed, self.budget, time.monotonic() - self._start)


def point_values(batch: Batch, outcomes: Sequence[Outcome[Any]], multi: bool) -> list[float]:
    """A point's objective value(s) from its replicates: the mean of their objectives, or the distance of
    their mean metrics to the targets (one error per target when ``multi``)."""
    if not batch.targets:
        return [float(np.mean([o.value for o in outcomes]))]
    means = {m: float(np.mean([o.metrics[m] for o in outcomes])) for m in batch.targets}
    return target_errors(batch.targets, means) if multi else [distance(batch.targets, means)]


def replicate_attrs(batch: Batch, outcomes: Sequence[Outcome[Any]]) -> dict[str, Any]:
    """A point trial's user attributes: each metric's mean over replicates (and of ``<metric>_std``), and
    every replicate's seed, objective and metrics under ``replicates``."""
    ok = [o for o in outcomes if o.error is None]
    attrs: dict[str, Any] = {}
    for name in (ok[0].metrics if ok else {}):
        attrs[name] = float(np.mean([o.metrics[name] for o in ok]))
    attrs["replicates"] = [{"replicate": o.task.replicate, "seed": o.task.seed, "value": o.value,
                            "error": o.error, **o.metrics} for o in outcomes]
    return attrs


def _warm_start(study: optuna.Study, batch: Batch, rdb: optuna.storages.RDBStorage, name: str,
                source: Batch, multi: bool) -> int:
    """Copy the completed points of grid study ``name`` into ``study`` (once; later runs skip it)."""
    if study.user_attrs.get("warm_start") is not None:
        return 0
    if source.experiment != batch.experiment or source.fixed != batch.fixed:
        raise SpecError(f"warm start: study {name!r} ran experiment {source.experiment!r} with other fixed "
                        "parameters; only a sweep of the same Batch can warm-start a fit")
    if not batch.targets and (source.objective_name(), source.optimization) != (batch.objective_name(),
                                                                                batch.optimization):
        raise SpecError(f"warm start: study {name!r} scored {source.objective_name()!r} differently; "
                        "use the same [optimization] or fit to targets")
    dists = fit_distributions(batch.space)
    columns = [c for m in batch.metrics for c in (m, f"{m}_std")]
    by_point: dict[int, list[FrozenTrial]] = {}
    grid = optuna.load_study(study_name=name, storage=rdb)
    for trial in grid.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        by_point.setdefault(trial.user_attrs["grid_point"], []).append(trial)
    copies = []
    for _, replicates in sorted(by_point.items()):
        point = {k: v for k, v in replicates[0].params.items() if k != "replicate"}
        params = {k: v for k, v in point.items() if k in dists}  # zipped partners are not suggested
        if not set(point) <= set(batch.parameters()) or not all(_inside(dists[k], v) for k, v in params.items()):
            continue  # outside the fit's space
        outcomes = [_recorded(t, columns) for t in replicates]
        attrs = {**replicate_attrs(batch, outcomes), "point": point,
                 COPIED_FROM: f"{name}#" + ",".join(str(t.number) for t in replicates)}
        copies.append(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, values=point_values(batch, outcomes, multi),
            user_attrs=json.loads(json.dumps(attrs)), state=TrialState.COMPLETE))
    with Session(rdb.engine) as session, session.begin():
        add_trials(session, rdb.get_study_id_from_name(study.study_name), copies)
    study.set_user_attr("warm_start", name)
    return len(copies)


def _recorded(trial: FrozenTrial, columns: list[str]) -> Outcome[Task]:
    """The outcome a grid study's COMPLETE trial (one simulation) recorded: its metrics among ``columns``."""
    started, finished = trial.datetime_start, trial.datetime_complete
    if started is None or finished is None:  # Optuna sets both on every finished trial
        raise ValueError(f"trial {trial.number} is finished without a start and an end time")
    return Outcome(Task(replicate=trial.params["replicate"], seed=trial.user_attrs["seed"]),
                   {c: trial.user_attrs[c] for c in columns if c in trial.user_attrs}, trial.value, None,
                   started, finished)


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether ``value`` lies in ``dist`` (a grid value in the fit's range or among its choices)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution)):
        return bool(dist.low <= value <= dist.high)
    return False
