"""Export speed and memory: ``export_study`` of finished 100 x 100 PItest grids of 10,000 and 100,000 simulations.

Run: ``python bench/bench_export.py [--out bench/results/export.txt] [--sizes 10000 100000]``.
Each study is written in one transaction with the bulk trial writer (as a sweep writes them), then
exported in a fresh process: par_df, summary, PIs, figures and the SQLite tables, as ``larvastudy
export`` does. Memory is that process's peak RSS above its RSS once the study is loaded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from sqlalchemy.orm import Session

from larvastudy.definition.batch import Batch, batch_from_kwargs
from larvastudy.execution.tasks import Outcome, SweepTask, TrialFactory
from larvastudy.study import add_trials, load_study, open_storage, open_study

from _report import report

SIZES = (10_000, 100_000)
METRICS = ("PI", "PI2", "v_mu", "sv_mu", "exec_fraction")


def grid(size: int) -> Batch:
    """The issue's 100 x 100 CS x UCS grid with ``size / 10,000`` replicates."""
    axis = {"range": [-100.0, 100.0], "Ngrid": 100}
    return batch_from_kwargs(experiment="PItest_off", sample={"gain_dict.CS": axis, "gain_dict.UCS": axis},
                             fixed={"duration": 0.005, "Npoints": 1}, Nsims=size // 10_000,
                             metrics=list(METRICS), name=f"export{size}")


def write_study(batch: Batch, url: str) -> None:
    """Every simulation of ``batch`` finished, with random metric values, in one transaction."""
    rdb = open_storage(url)
    study = open_study(batch, rdb, batch.name)
    factory, rng = TrialFactory(batch), np.random.default_rng(0)
    start = datetime.datetime(2025, 1, 1)
    trials = []
    for point in range(len(batch.points())):
        for rep in range(batch.Nsims):
            values = {m: float(v) for m, v in zip(METRICS, rng.uniform(-1, 1, len(METRICS)), strict=True)}
            values |= {f"{m}_std": 0.0 for m in METRICS}
            task = SweepTask(grid_point=point, replicate=rep, seed=point * 100 + rep)
            trials.append(factory.trial(Outcome(task, values, values["PI"], None,
                                                start, start + datetime.timedelta(seconds=1))))
    with Session(rdb.engine) as session, session.begin():
        add_trials(session, study._study_id, trials)


def export_once(url: str, name: str, outdir: str) -> None:
    """(In the child process) export the study and print seconds and extra peak RSS as JSON."""
    from larvastudy.export import export_study

    study, batch = load_study(open_storage(url), name)
    before = peak_rss_mb()
    start = time.perf_counter()
    exported = export_study(study, batch, Path(outdir), storage_url=url)
    par_df, figs = exported.par_df, exported.figures
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "extra_mb": peak_rss_mb() - before, "rows": len(par_df),
                      "figures": len(figs)}))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def measure(size: int, folder: Path) -> str:
    batch = grid(size)
    url = f"sqlite:///{folder / f'{batch.name}.db'}"
    write_study(batch, url)
    child = subprocess.run([sys.executable, __file__, "--child", url, batch.name, str(folder / batch.name)],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["rows"] == size
    line = (f"{size:7d} simulations: export {result['seconds']:6.1f} s, peak +{result['extra_mb']:5.0f} MB "
            f"({result['figures']} figures)")
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.child:
        export_once(*args.child)
        return
    lines = ["export benchmark: export_study of a finished 100 x 100 PItest grid (5 metrics), fresh process"]
    with tempfile.TemporaryDirectory(prefix="larvastudy-bench-") as folder:
        lines += [measure(size, Path(folder)) for size in args.sizes]
    report(lines, args.out)


if __name__ == "__main__":
    main()
