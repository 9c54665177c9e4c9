"""``larvastudy``: run, inspect and export Batch sweeps from the shell (mirrors the Python API).

Usage errors print one line on stderr and exit 2; nothing stored is touched before a command's
input has been validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from larvastudy.errors import SpecError
from larvastudy.execution import ADAPTIVE_SAMPLERS, GRACE, FitInterrupted, SweepInterrupted, join_sweep, run_batch
from larvastudy.export import build_par_df, export_study
from larvastudy.inspect.dashboard import dashboard_server, dashboard_url, serve
from larvastudy.inspect.report import write_report
from larvastudy.inspect.sensitivity import EVALUATORS
from larvastudy.inspect.stats import power_table
from larvastudy.spec import paths
from larvastudy.spec.batch import Batch, list_batches, load_batch
from larvastudy.study import default_outdir, display_url, load_study, open_storage, storage_url
from larvastudy.study.claims import FAILED, PENDING, RUNNING, claim_counts
from larvastudy.study.study import SAMPLER_ATTR, is_fit

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

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
    batch = load_batch(args.name)
    changes: dict[str, Any] = {}
    if args.nsims is not None:
        changes["Nsims"] = args.nsims
    if args.set:
        changes["fixed"] = {**batch.fixed, **_pairs("--set", args.set)}
    if getattr(args, "target", None):
        changes["targets"] = _pairs("--target", args.target)
    return dataclasses.replace(batch, **changes) if changes else batch


def cmd_run(args: argparse.Namespace) -> int:
    batch = _batch(args)
    url = storage_url(args.storage)
    fit = args.sampler != "grid"
    name = args.study_name or (f"{batch.name}-{args.sampler}" if fit else batch.name)
    warm_start = batch.name if args.warm_start == "" else args.warm_start
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn(), console=err, transient=True)
    task = bar.add_task(name, total=None, failed=0)

    def progress(done: int, failed: int, total: int, elapsed: float) -> None:
        if not bar.live.is_started:  # shown once the run has begun: a usage error stays a single line
            bar.start()
        bar.update(task, completed=done, total=total, failed=failed)

    try:
        summary = run_batch(batch, storage=url, study_name=name, n_jobs=args.n_jobs, progress=progress,
                            allow_large=args.yes, retries=args.retries, grace=args.grace, sampler=args.sampler,
                            n_trials=args.n_trials, warm_start=warm_start)
    except (SweepInterrupted, FitInterrupted) as stop:
        _stop(bar)
        err.print(f"{stop} (larvastudy run {args.name} ...)")
        return 130
    finally:
        _stop(bar)
    out.print(str(summary))
    return _export(url, name, batch)


def _stop(bar: Progress) -> None:
    """Stop ``bar`` if it was shown (stopping prints a blank line where stderr is not a terminal)."""
    if bar.live.is_started:
        bar.stop()


def _export(url: str, name: str, batch: Batch | None = None) -> int:
    study, batch = load_study(open_storage(url), name, batch)
    outdir = default_outdir(name)
    par_df, figs, skipped = export_study(study, batch, outdir, storage_url=url)
    out.print(f"par_df: {outdir / 'par_df.csv'} ({len(par_df)} rows; also table par_df_{name} in the database)")
    out.print(f"figures: {outdir / 'figures'} ({', '.join(sorted(figs)) or 'none yet'})")
    if skipped:
        out.print("figures skipped: " + "; ".join(f"{key} ({why})" for key, why in skipped.items()), markup=False)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        summary = join_sweep(args.name, storage=storage_url(args.storage), n_jobs=args.n_jobs,
                             retries=args.retries, grace=args.grace, chunk_size=args.chunk_size)
    except SweepInterrupted as stop:
        err.print(str(stop), markup=False)
        return 130
    out.print(f"{summary}; this worker ran {summary.ran}")
    return 0 if summary.finished else 1


def cmd_export(args: argparse.Namespace) -> int:
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
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    url = storage_url(args.storage)
    storage = open_storage(url)
    study, batch = load_study(storage, args.name)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if is_fit(study):
        out.print(f"fit {args.name!r} in {display_url(url)} ({study.user_attrs[SAMPLER_ATTR]}): {len(done)} points "
                  f"complete, {batch.Nsims} simulations each")
        out.print("trials by state: " + (", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none"))
        if done and len(study.directions) == 1:
            best = study.best_trial
            out.print(f"best {study.metric_names[0] if study.metric_names else 'objective'} {best.value:.4g} "
                      f"(trial {best.number}): {best.user_attrs.get('point', best.params)}", highlight=False)
        return 0
    left = batch.grid_size - len(done)
    out.print(f"study {args.name!r} in {display_url(url)}: {len(done)}/{batch.grid_size} simulations complete, "
              f"{left} left")
    out.print("trials by state: " + (", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none"))
    claims = claim_counts(storage, storage.get_study_id_from_name(args.name))
    out.print(f"simulations: {claims[RUNNING]} running (claimed by a run or worker), {claims[PENDING]} pending, "
              f"{claims[FAILED]} given up after their retries")
    if done and left:
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        out.print(f"time left at the last runs' pace: about {left * span / len(done):.0f} s")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    url = storage_url(args.storage)
    storage = open_storage(url)
    study_id = None
    if args.name:
        load_study(storage, args.name)
        study_id = storage.get_study_id_from_name(args.name)
    server = dashboard_server(storage, args.host, args.port)
    what = f"study {args.name!r}" if args.name else f"the studies in {display_url(url)}"
    out.print(f"optuna-dashboard for {what}: {dashboard_url(server, study_id)} (Ctrl-C stops it)", highlight=False)
    out.file.flush()
    serve(server)
    out.print("dashboard stopped")
    return 0


def _grid_study(args: argparse.Namespace) -> tuple[optuna.Study, Batch]:
    """The grid study ``args.name``; a SpecError for an adaptive fit, whose points have no replicate grid."""
    study, batch = load_study(open_storage(storage_url(args.storage)), args.name)
    if is_fit(study):
        raise SpecError(f"{args.name!r} is an adaptive fit; {args.command} works on grid sweeps (a fit's tables "
                        f"and figures are under {default_outdir(args.name)}, written by larvastudy export)")
    return study, batch


def cmd_power(args: argparse.Namespace) -> int:
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

    def definition(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", help="a Batch in studies/ (see `larvastudy list`) or a TOML file")
        p.add_argument("--nsims", "-Nsims", type=int, help="replicates per grid point")
        p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                       help="fixed override, e.g. --set duration=1.0 (repeatable)")

    run = sub.add_parser("run", help="run or resume a sweep, then export par_df and figures")
    definition(run)
    run.add_argument("-j", "--n-jobs", type=int, default=1, help="worker processes (-1: one per CPU)")
    storage(run)
    run.add_argument("--study-name", help="study name (default: the Batch name; NAME-SAMPLER for a fit)")
    run.add_argument("--yes", action="store_true", help="allow sweeps of more than 100,000 simulations")
    run.add_argument("--retries", type=int, default=0, help="reruns of a failing simulation (grid; default 0)")
    run.add_argument("--grace", type=float, default=GRACE,
                     help=f"seconds before a silent worker's simulations are rerun (grid; default {GRACE:.0f})")
    fit = run.add_argument_group("fitting (adaptive samplers)")
    fit.add_argument("--sampler", choices=("grid", *ADAPTIVE_SAMPLERS), default="grid",
                     help="grid: the whole grid (default); others propose points adaptively")
    fit.add_argument("--n-trials", type=int, help="points to simulate (each Nsims times; default: max_Nsims)")
    fit.add_argument("--target", action="append", default=[], metavar="METRIC=VALUE",
                     help="fit metrics to values, e.g. --target v_mu=1.35 (repeatable; nsga2: one objective each)")
    fit.add_argument("--warm-start", nargs="?", const="", metavar="STUDY",
                     help="first copy the completed points of a grid study (default: the Batch's own)")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="join a study's sweep (on any machine sharing its storage) until "
                                           "its grid is done; exit 1 if simulations failed for good")
    worker.add_argument("name", help="study name (made by `larvastudy run`)")
    worker.add_argument("-j", "--n-jobs", type=int, default=1, help="worker processes (-1: one per CPU)")
    storage(worker)
    worker.add_argument("--retries", type=int, default=0, help="reruns of a failing simulation (default 0)")
    worker.add_argument("--grace", type=float, default=GRACE,
                        help=f"seconds before a silent worker's simulations are rerun (default {GRACE:.0f})")
    worker.add_argument("--chunk-size", type=int, help="simulations per claim and engine call (default: automatic)")
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

    dashboard = sub.add_parser("dashboard", help="serve optuna-dashboard on the storage until Ctrl-C")
    dashboard.add_argument("name", nargs="?", help="study to open (default: the list of studies)")
    storage(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    dashboard.set_defaults(func=cmd_dashboard)

    power = sub.add_parser("power", help="replicates needed for a CI half-width or to detect a difference")
    power.add_argument("name", help="study name (with Nsims >= 2)")
    storage(power)
    power.add_argument("--metric", action="append", help="metric (repeatable; default: all)")
    power.add_argument("--delta", type=float, help="difference between two grid points to detect")
    power.add_argument("--half-width", type=float, help="wanted 95 %% CI half-width of a grid-point mean")
    power.add_argument("--power", type=float, default=0.8, help="wanted power for --delta (default 0.8)")
    power.set_defaults(func=cmd_power)

    report = sub.add_parser("report", help="write a self-contained HTML report with every figure")
    report.add_argument("name", help="study name")
    storage(report)
    report.add_argument("-o", "--output", help="HTML file (default: storage/<study>/report.html)")
    report.add_argument("--evaluator", choices=EVALUATORS, default=EVALUATORS[0],
                        help="parameter-importance evaluator (fanova needs scikit-learn)")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return args.func(args)
    except SpecError as error:
        err.print(f"larvastudy: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("larvastudy: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
