"""``larvastudy``: run, inspect and export Batch sweeps from the shell (mirrors the Python API).

Usage errors print one line on stderr and exit 2; nothing stored is touched before a command's
input has been validated, and only ``run`` creates storage. Optuna, pandas, scipy and matplotlib are
imported by the commands that use them, so ``--help``, ``list`` and ``show`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import shlex
import signal
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.table import Table

from larvastudy.definition import paths
from larvastudy.definition.batch import Batch, list_batches, load_batch
from larvastudy.errors import (
    DefinitionChanged,
    ExportError,
    InertParameterWarning,
    LarvastudyError,
    SpecError,
    StorageError,
)
from larvastudy.names import check_name
from larvastudy.progress import LOG_EVERY, ProgressDisplay, clock
from larvastudy.signals import check_stop, forget_stop, stop_on_signals, stop_signal

if TYPE_CHECKING:
    import optuna

#: When this module was imported: where /proc cannot tell the process's start, the wait is counted from here.
_STARTED = time.monotonic()
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and no abbreviated options; ``setup(parser)``, if given, adds the
    arguments on first use,
    so that a command whose options need a heavy module imports it only when that command is run."""

    def __init__(self, *, setup: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any):
        super().__init__(allow_abbrev=False, **kwargs)  # larvaworld's -N must not read as -Nsims
        self._setup = setup

    def parse_known_args(self, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:  # as argparse's overloads
        if self._setup is not None:
            setup, self._setup = self._setup, None
            setup(self)
        return super().parse_known_args(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"larvastudy: error: {message} (see larvastudy {self.prog.split()[-1]} --help)\n"
                  if " " in self.prog else f"larvastudy: error: {message} (see larvastudy --help)\n")


def _parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (number, true/false, list, quoted string), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _pairs(option: str, items: Sequence[str]) -> dict[str, Any]:
    """``name=value`` items (``--set``, ``--target``) as a dict of parsed values."""
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"{option} takes {'metric' if option == '--target' else 'path'}=value, got {item!r}")
        result[name.strip()] = _parse_value(value.strip())
    return result


def _batch(args: argparse.Namespace) -> Batch:
    """The Batch named on the command line with its options applied, checked once (as changed)."""
    batch = load_batch(args.name, check=False)
    changes: dict[str, Any] = {}
    if args.nsims is not None:
        changes["Nsims"] = args.nsims
    fixed = {**_pairs("--set", args.set), **({"Npoints": args.larvae} if args.larvae is not None else {})}
    if fixed:
        changes["fixed"] = {**batch.fixed, **fixed}
    if getattr(args, "target", None):
        changes["targets"] = _pairs("--target", args.target)
    try:
        return dataclasses.replace(batch, **changes)
    except SpecError as error:
        if changes:  # the options' values are named in the message
            raise
        raise SpecError(f"{args.name}: {error}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from larvastudy.api import run_batch
    from larvastudy.execution import RunInterrupted
    from larvastudy.study.storage import storage_url

    batch = _batch(args)
    url = storage_url(args.storage)
    fit = args.sampler != "grid"
    default = f"{batch.name}-{args.sampler}" if fit else batch.name
    name = check_name(default if args.study_name is None else args.study_name)
    warm_start = batch.name if args.warm_start == "" else args.warm_start
    if args.replace:
        _confirm_replace(url, name, args.yes)
    progress = ProgressDisplay(name, err, "trials" if fit else "simulations", args.log_every)
    try:
        summary = run_batch(batch, storage=url, study_name=name, n_jobs=args.n_jobs, progress=progress,
                            allow_large=args.yes, retries=args.retries, grace=args.grace, sampler=args.sampler,
                            n_trials=args.n_trials, warm_start=warm_start, threshold=args.threshold,
                            replace=args.replace)
    except RunInterrupted as stop:
        progress.close()
        err.print(f"{stop.stored}; resume with: larvastudy {shlex.join(args.argv)}", markup=False, highlight=False)
        return 128 + stop.signum
    finally:
        progress.close()
    out.print(str(summary), highlight=False)
    try:
        code = _export(url, name, batch)
    except ExportError as error:
        error.args = (f"{error}; the simulations are stored: `larvastudy export {name}` writes the export again",)
        raise
    if code:
        return code
    failed = _failed(summary, name)
    out.print(f"{_wall_time():.1f} s in all, start-up and export included", highlight=False)
    return 1 if failed else 0


def _confirm_replace(url: str, name: str, yes: bool) -> None:
    """For ``run --replace``: if the storage holds study ``name``, say what it holds and have its deletion
    confirmed (``--yes``, else on a terminal)."""
    from larvastudy.study.delete import find_study
    from larvastudy.study.storage import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        return
    try:
        study = find_study(url, name)
    except (SpecError, StorageError):  # nothing stored under that name (or no storage): nothing to replace
        return
    _confirm(f"{study.holds()}; delete it and start again?", yes)


def _confirm(question: str, yes: bool) -> None:
    """Go on if ``yes`` or the user answers y on the terminal; otherwise a SpecError (nothing was changed)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise SpecError(f"{question.removesuffix('?')}: no terminal to ask on, so confirm with --yes")
    err.print(f"{question} [y/N] ", end="", markup=False, highlight=False)
    if input().strip().lower() not in ("y", "yes"):
        raise SpecError("nothing deleted")


def _failed(summary: Any, name: str) -> bool:
    """Say how to see the errors if simulations (or fit trials) failed; whether any did."""
    if summary.failed:
        err.print(f"larvastudy: {summary.failed} {summary.unit} failed: `larvastudy status {name}` counts them "
                  "and the error column of par_df.csv says why",
                  markup=False, highlight=False)
    return bool(summary.failed)


def _wall_time() -> float:
    """Seconds since this process started (Python's own start-up included where /proc tells it)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _STARTED


def _storage(args: argparse.Namespace) -> tuple[str, optuna.storages.RDBStorage]:
    """The URL of ``--storage`` and the storage there, which must exist: only ``run`` creates storage."""
    from larvastudy.study.storage import open_storage, storage_url

    url = storage_url(args.storage)
    return url, open_storage(url, create=False)


def _export(url: str, name: str, batch: Batch | None = None) -> int:
    """Export study ``name``: 0, or the exit code of a stop signal, which a one-line message explains."""
    from larvastudy.export import export_study
    from larvastudy.study.storage import default_outdir, display_url, open_storage, storage_url
    from larvastudy.study.study import load_study

    outdir = default_outdir(name)
    try:
        study, batch = load_study(open_storage(url, create=False), name, batch)
        exported = export_study(study, batch, outdir, storage_url=url)
    except KeyboardInterrupt as stop:
        forget_stop()
        where = "" if url == storage_url(None) else f" --storage {shlex.quote(display_url(url))}"
        err.print(f"interrupted: the export of study {name!r} to {outdir} stopped before it finished (every stored "
                  f"simulation is kept); redo it with: larvastudy export {shlex.quote(name)}{where}",
                  markup=False, highlight=False)
        return 128 + stop_signal(stop)
    table = f"; also table {exported.tables['par_df']} in the database" if exported.tables else ""
    if exported.note:
        out.print(exported.note, markup=False, highlight=False)
    out.print(f"par_df: {outdir / 'par_df.csv'} ({len(exported.par_df)} rows{table})", markup=False, highlight=False)
    out.print(f"figures: {outdir / 'figures'} ({', '.join(sorted(exported.figures)) or 'none yet'})", markup=False,
              highlight=False)
    if exported.skipped:
        out.print("figures skipped: " + "; ".join(f"{key} ({why})" for key, why in exported.skipped.items()),
                  markup=False)
    if exported.dropped:
        out.print(f"dropped table {', '.join(exported.dropped)}: an older larvastudy's name for this study's table "
                  "(tables now carry the study name as it is)", markup=False, highlight=False)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from larvastudy.api import join_sweep
    from larvastudy.execution import RunInterrupted
    from larvastudy.study.storage import storage_url

    url = storage_url(args.storage)
    progress = ProgressDisplay(args.name, err, log_every=args.log_every)
    try:
        summary = join_sweep(args.name, storage=url, n_jobs=args.n_jobs, progress=progress,
                             retries=args.retries, grace=args.grace, chunk_size=args.chunk_size)
    except RunInterrupted as stop:
        progress.close()
        err.print(str(stop), markup=False, highlight=False)
        return 128 + stop.signum
    finally:
        progress.close()
    out.print(f"{summary}; this worker ran {summary.ran}", highlight=False)
    _failed(summary, args.name)
    return 0 if summary.finished else 1


def cmd_export(args: argparse.Namespace) -> int:
    from larvastudy.study.storage import storage_url

    return _export(storage_url(args.storage), args.name)


def cmd_list(args: argparse.Namespace) -> int:
    table = Table("Batch", "experiment", "axes", "simulations", "description", box=None)
    for name in list_batches():
        batch = load_batch(name)
        size = str(batch.grid_size) if batch.space.is_grid else "continuous"
        table.add_row(name, batch.experiment, ", ".join(batch.parameters()), size, batch.description)
    out.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    batch = _batch(args)
    out.print(f"[bold]{batch.name}[/bold]: experiment {batch.experiment}, {batch.description}")
    table = Table("axis", "column", "resolves to", "values", box=None)
    contexts = batch.space.covering_points()
    for axis, column in batch.axis_columns().items():
        tree = batch.config(next(point for point in contexts if axis in point))
        table.add_row(axis, column, "\n".join(paths.resolve(tree, axis)), batch.space.describe(axis))
    out.print(table)
    if batch.space.is_grid:
        out.print(f"grid: {len(batch.points())} points x {batch.Nsims} replicates = {batch.grid_size} simulations")
    else:
        out.print(f"continuous space ({', '.join(batch.space.continuous_axes())}): fit it with an adaptive sampler, "
                  f"e.g. larvastudy run {args.name} --sampler tpe --n-trials 50 ({batch.Nsims} simulations per trial)")
    out.print(f"fixed: {batch.fixed or '-'}")
    out.print(f"metrics: {', '.join(batch.metrics)}; objective: {batch.direction} {batch.objective_name()}")
    out.print(_stop_rules(batch), highlight=False)
    return 0


def _stop_rules(batch: Batch) -> str:
    """What the Batch's ``[optimization]`` numbers do in a grid sweep and in a fit (see README, Fitting a model)."""
    opt = batch.optimization
    trials = (f"max_Nsims = {opt.max_Nsims} trials unless --n-trials N" if opt and opt.max_Nsims
              else "--n-trials N trials")
    registry = (f"; the Batch's threshold {opt.threshold:g} is not a stop rule (--threshold VALUE makes one)"
                if opt and opt.threshold is not None else "")
    grid = "a grid sweep runs its whole grid, its par_df's fit column holding each simulation's objective"
    return f"stop rules: {grid}; a fit runs {trials}{registry}"


def cmd_status(args: argparse.Namespace) -> int:
    from larvastudy.study import claims
    from larvastudy.study.storage import display_url, open_engine, storage_url
    from larvastudy.study.stored import fits_of, list_studies, named_fits, read_study
    from larvastudy.study.study import FIT_RUN_ATTR, SAMPLER_ATTR, stored_batch

    url = storage_url(args.storage)
    engine = open_engine(url)
    stored = read_study(engine, args.name, best=True)
    batch = stored_batch(stored.user_attrs, args.name, url)
    done = stored.counts.get("COMPLETE", 0)
    by_state = "trials by state: " + (", ".join(f"{k} {v}" for k, v in sorted(stored.counts.items())) or "none")
    if SAMPLER_ATTR in stored.user_attrs:
        out.print(f"fit {args.name!r} in {display_url(url)} ({stored.user_attrs[SAMPLER_ATTR]}): {done} trials "
                  f"complete, {batch.Nsims} simulations each (a point suggested again runs new replicates)")
        out.print(by_state)
        if FIT_RUN_ATTR in stored.user_attrs:
            run = stored.user_attrs[FIT_RUN_ATTR]
            out.print(f"stop rule of the latest run ({run['sampler']}): {run['rule']}", highlight=False)
        if stored.best is not None:
            name = (stored.metric_names or ["objective"])[0]
            out.print(f"best {name} {stored.best.value:.4g} (trial {stored.best.number}): "
                      f"{stored.best.user_attrs.get('point')}", highlight=False)
        return 0
    left = batch.grid_size - done
    out.print(f"study {args.name!r} in {display_url(url)}: {done}/{batch.grid_size} simulations complete, "
              f"{left} left ({batch.grid_size // batch.Nsims} points x {batch.Nsims} replicates)")
    fits = fits_of(list_studies(engine), args.name)
    if fits:
        out.print(f"fits of this Batch: {named_fits(fits)}", highlight=False)
    out.print(by_state)
    counts, events = claims.claim_counts(engine, stored.study_id), claims.event_counts(engine, stored.study_id)
    stale = (f", {counts[claims.STALE]} stale (claimed by processes that died or went silent; the next run or "
             "worker reruns them)") if counts[claims.STALE] else ""
    out.print(f"simulations: {counts[claims.RUNNING]} running (claimed by a run or worker){stale}, "
              f"{counts[claims.PENDING]} pending, {counts[claims.FAILED]} given up after their retries",
              highlight=False)
    interrupted, lost = events[claims.INTERRUPTED], events[claims.LOST]
    if interrupted or lost:
        out.print(f"claims put back to pending so far: {interrupted} by stopped runs, {lost} taken "
                  f"from lost processes (who and when: table {claims.EVENTS.name})", highlight=False)
    if done and left and stored.first_start and stored.last_complete:
        span = (stored.last_complete - stored.first_start).total_seconds()
        out.print(f"time left at the pace of the runs so far: about {clock(left * span / done)}")
    return 0


def cmd_studies(args: argparse.Namespace) -> int:
    from larvastudy.study.storage import display_url, open_engine, storage_url
    from larvastudy.study.stored import list_studies

    url = storage_url(args.storage)
    listed = list_studies(open_engine(url))
    rows = [("study", "Batch", "experiment", "kind", "done", "last change (UTC)")]
    for study in listed:
        batch = study.batch or {}
        when = "-" if study.last_change is None else f"{study.last_change:%Y-%m-%d %H:%M}"
        rows.append((study.name, batch.get("name", "-"), batch.get("experiment", "-"), study.kind, study.progress(),
                     when))
    out.print(f"{len(listed)} studies in {display_url(url)}", highlight=False)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows if listed else []:  # a plain table: never wrapped, whatever the terminal's width
        line = "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        out.print(line.rstrip(), markup=False, highlight=False)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from larvastudy.study.delete import delete_study, find_study

    url = _storage(args)[0]
    _confirm(f"{find_study(url, args.name).holds()}; delete it?", args.yes)
    out.print(str(delete_study(url, args.name)), markup=False, highlight=False)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from larvastudy.inspect.dashboard import dashboard_server, dashboard_url, is_loopback, serve
    from larvastudy.study.storage import display_url
    from larvastudy.study.study import load_study

    url, storage = _storage(args)
    study_id = None
    if args.name:
        load_study(storage, args.name)
        study_id = storage.get_study_id_from_name(args.name)
    server = dashboard_server(storage, args.host, args.port, expose=args.expose)
    if not is_loopback(args.host):
        err.print(f"larvastudy: warning: the dashboard on {args.host or 'every interface'} has no authentication: "
                  "anyone who reaches the port can read every study in the storage (it is read-only)",
                  markup=False, highlight=False)
    what = f"study {args.name!r}" if args.name else f"the studies in {display_url(url)}"
    out.print(f"optuna-dashboard for {what}: {dashboard_url(server, study_id)} (Ctrl-C stops it)", highlight=False)
    out.file.flush()
    serve(server)
    out.print("dashboard stopped")
    return 0


def _grid_study(args: argparse.Namespace) -> tuple[optuna.Study, Batch]:
    """The grid study ``args.name``; a SpecError for an adaptive fit, whose points have no replicate grid."""
    from larvastudy.study.storage import default_outdir
    from larvastudy.study.study import is_fit, load_study

    study, batch = load_study(_storage(args)[1], args.name)
    if is_fit(study):
        raise SpecError(f"{args.name!r} is an adaptive fit; {args.command} works on grid sweeps (a fit's tables "
                        f"and figures are under {default_outdir(args.name)}, written by larvastudy export)")
    return study, batch


def cmd_power(args: argparse.Namespace) -> int:
    from larvastudy.export import build_par_df
    from larvastudy.inspect.stats import power_table

    study, batch = _grid_study(args)
    table = power_table(build_par_df(study, batch), batch, args.metric, args.delta, args.half_width, args.power)
    out.print(f"study {args.name!r}: {batch.Nsims} replicates per grid point; replicate SD pooled over grid points")
    headers = {"metric": "metric", "pooled_std": "SD", "dof": "df", "ci95_half_width": "CI95 now ±",
               "Nsims_for_half_width": f"Nsims for ±{args.half_width:g}" if args.half_width else "",
               "power_now": f"power now Δ{args.delta:g}" if args.delta else "",
               "Nsims_for_delta": f"Nsims for Δ{args.delta:g} @{args.power:.0%}" if args.delta else ""}
    out.print(table.drop(columns="Nsims").rename(columns=headers).to_string(index=False, float_format="{:.4g}".format),
              highlight=False)
    if args.delta is None and args.half_width is None:
        out.print("add --delta D (a difference to detect) or --half-width H (a CI to reach) for the Nsims they need")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from larvastudy.inspect.report import write_report
    from larvastudy.study.storage import default_outdir

    study, batch = _grid_study(args)
    path = write_report(study, batch, Path(args.output or default_outdir(args.name) / "report.html"), args.evaluator)
    out.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained HTML)", highlight=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="larvastudy", description="Parameter sweeps of larva simulations as Optuna studies.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", help="Optuna storage URL or SQLite path "
                                         "(default: $LARVASTUDY_STORAGE, else storage/larvastudy.db)")

    def log_every(p: argparse.ArgumentParser) -> None:
        p.add_argument("--log-every", type=_seconds, default=LOG_EVERY, metavar="SECONDS",
                       help=f"seconds between progress lines when not on a terminal (default {LOG_EVERY:.0f})")

    def definition(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", help="a Batch in studies/ (see `larvastudy list`) or a TOML file")
        p.add_argument("--nsims", "-Nsims", type=int, help="replicates per grid point")
        p.add_argument("-N", "--larvae", type=int, help="larvae per group (larvaworld's -N; same as --set Npoints=N)")
        p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                       help="fixed override, e.g. --set duration=1.0 (repeatable)")

    def run_arguments(run: argparse.ArgumentParser) -> None:
        from larvastudy.execution import ADAPTIVE_SAMPLERS, GRACE

        definition(run)
        run.add_argument("-j", "--n-jobs", type=int, default=1, help="worker processes (-1: one per CPU)")
        storage(run)
        run.add_argument("--study-name", help="study name (default: the Batch name; NAME-SAMPLER for a fit)")
        run.add_argument("--replace", action="store_true",
                         help="delete the stored study of that name (after showing what it holds) and start again")
        run.add_argument("--yes", action="store_true",
                         help="confirm: sweeps of more than 100,000 simulations, --replace without asking")
        run.add_argument("--retries", type=int, default=0, help="reruns of a failing simulation (grid; default 0)")
        run.add_argument("--grace", type=_grace, default=GRACE,
                         help=f"seconds before a silent process's simulations or fit trials are rerun "
                              f"(default {GRACE:.0f})")
        log_every(run)
        fit = run.add_argument_group("fitting (adaptive samplers)")
        fit.add_argument("--sampler", choices=("grid", *ADAPTIVE_SAMPLERS), default="grid",
                         help="grid: the whole grid (default); others propose points adaptively")
        fit.add_argument("--n-trials", type=int, help="the study's budget of points to simulate, shared by every "
                         "process on it (each Nsims times; default: max_Nsims)")
        fit.add_argument("--threshold", type=float, metavar="VALUE",
                         help="also stop at the first point whose objective reaches VALUE (>= when maximising, "
                              "<= otherwise; the Batch's own threshold is never a stop rule)")
        fit.add_argument("--target", action="append", default=[], metavar="METRIC=VALUE",
                         help="fit metrics to values, e.g. --target v_mu=1.35 (repeatable; nsga2: one objective each)")
        fit.add_argument("--warm-start", nargs="?", const="", metavar="STUDY",
                         help="first copy the completed points of a grid study (default: the Batch's own)")

    sub.add_parser("run", setup=run_arguments, help="run or resume a sweep, then export par_df and figures",
                   ).set_defaults(func=cmd_run)

    def worker_arguments(worker: argparse.ArgumentParser) -> None:
        from larvastudy.execution import GRACE

        worker.add_argument("name", help="study name (made by `larvastudy run`)")
        worker.add_argument("-j", "--n-jobs", type=int, default=1, help="worker processes (-1: one per CPU)")
        storage(worker)
        worker.add_argument("--retries", type=int, default=0, help="reruns of a failing simulation (default 0)")
        worker.add_argument("--grace", type=_grace, default=GRACE,
                            help=f"seconds before a silent worker's simulations are rerun (default {GRACE:.0f})")
        worker.add_argument("--chunk-size", type=int,
                            help="simulations per claim and engine call (default: automatic)")
        log_every(worker)

    worker = sub.add_parser("worker", setup=worker_arguments, help="join a study's sweep or fit (on any machine "
                            "sharing its storage) until its grid or trial budget is done; exit 1 if simulations "
                            "failed for good")
    worker.set_defaults(func=cmd_worker)

    show = sub.add_parser("show", help="the resolved sample space and grid size")
    definition(show)
    show.set_defaults(func=cmd_show)

    sub.add_parser("list", help="the preconfigured Batches").set_defaults(func=cmd_list)

    for name, func, text in (("status", cmd_status, "trial counts by state and time left"),
                             ("export", cmd_export, "rewrite par_df, figures and the par_df table")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", help="study name")
        storage(p)
        p.set_defaults(func=func)

    studies = sub.add_parser("studies", help="every study in a storage: Batch, kind, progress, last change")
    storage(studies)
    studies.set_defaults(func=cmd_studies)

    delete = sub.add_parser("delete", help="delete a study: its trials, claims, tables and storage/<study>/ folder")
    delete.add_argument("name", help="study name")
    storage(delete)
    delete.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    delete.set_defaults(func=cmd_delete)

    dashboard = sub.add_parser("dashboard", help="serve optuna-dashboard on the storage until Ctrl-C")
    dashboard.add_argument("name", nargs="?", help="study to open (default: the list of studies)")
    storage(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    dashboard.add_argument("--expose", action="store_true",
                           help="allow a --host other than this machine; the dashboard is then read-only, as it "
                                "has no authentication")
    dashboard.set_defaults(func=cmd_dashboard)

    power = sub.add_parser("power", help="replicates needed for a CI half-width or to detect a difference")
    power.add_argument("name", help="study name (with Nsims >= 2)")
    storage(power)
    power.add_argument("--metric", action="append", help="metric (repeatable; default: all)")
    power.add_argument("--delta", type=float, help="difference between two grid points to detect")
    power.add_argument("--half-width", type=float, help="wanted 95 %% CI half-width of a grid-point mean")
    power.add_argument("--power", type=float, default=0.8, help="wanted power for --delta (default 0.8)")
    power.set_defaults(func=cmd_power)

    def report_arguments(report: argparse.ArgumentParser) -> None:
        from larvastudy.inspect.sensitivity import EVALUATORS

        report.add_argument("name", help="study name")
        storage(report)
        report.add_argument("-o", "--output", help="HTML file (default: storage/<study>/report.html)")
        report.add_argument("--evaluator", choices=EVALUATORS, default=EVALUATORS[0],
                            help="parameter-importance evaluator (fanova needs scikit-learn)")

    sub.add_parser("report", setup=report_arguments, help="write a self-contained HTML report with every figure",
                   ).set_defaults(func=cmd_report)
    return parser


def _seconds(text: str) -> float:
    """A ``--log-every`` value: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """larvastudy's own warnings as one line on stderr; others as Python shows them."""
    if issubclass(category, InertParameterWarning):
        err.print(f"larvastudy: warning: {message}", markup=False, highlight=False)
    else:
        _python_show_warning(message, category, *args, **kwargs)


_python_show_warning = warnings.showwarning


def _grace(text: str) -> float:
    """A ``--grace`` value: seconds in the range :func:`larvastudy.execution.check_grace` allows."""
    from larvastudy.execution import check_grace

    try:
        value: object = float(text)
    except ValueError:  # not a number: check_grace says so
        value = text
    try:
        return check_grace(value)
    except SpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.func not in (cmd_list, cmd_show):  # the others use Optuna: show its warnings only
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        with stop_on_signals():  # a scheduler's SIGTERM ends any command as Ctrl-C does
            code: int = args.func(args)
            check_stop()
            return code
    except LarvastudyError as error:
        text = error.for_cli() if isinstance(error, DefinitionChanged) else str(error)
        err.print(f"larvastudy: error: {text}", markup=False, highlight=False, soft_wrap=True)
        return error.exit_code
    except Exception as error:
        if "storage" not in vars(args):
            raise
        from larvastudy.study.storage import database_error, storage_url

        problem = database_error(error, storage_url(args.storage))
        if problem is None:
            raise
        err.print(f"larvastudy: error: {problem}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt as stop:
        err.print(f"larvastudy: interrupted ({signal.Signals(stop_signal(stop)).name})", markup=False)
        return 128 + stop_signal(stop)


def entry() -> NoReturn:
    """The ``larvastudy`` program: :func:`main`, then exit without a last garbage collection of every
    object the run made (half a second of the user's wait; finalisers and atexit handlers still run)."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
