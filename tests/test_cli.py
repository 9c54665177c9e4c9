"""The ``larvastudy`` command as a user runs it: a real process, a real SQLite file in a fresh folder."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

SHORT = ["--set", "duration=0.2"]


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "larvastudy.cli", *args], cwd=folder, capture_output=True,
                          text=True, timeout=300)


def trial_rows(db: Path) -> list[dict]:
    return list(sqlite_utils.Database(db).query("select number, state from trials order by number"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    result = cli(folder, "run", "PItest_off", *SHORT, "-j", "2")
    assert result.returncode == 0, result.stderr
    assert "16/16 simulations complete" in result.stdout
    return folder


def test_run_writes_study_par_df_figures_and_table(swept):
    out = swept / "storage" / "PItest_off"
    par_df = pd.read_csv(out / "par_df.csv")
    assert len(par_df) == 16 and set(par_df["state"]) == {"COMPLETE"}
    assert {"CS", "UCS", "replicate", "seed", "PI", "PI2", "v_mu"} <= set(par_df.columns)
    assert (out / "figures" / "PI_heatmap.png").stat().st_size > 10_000
    table = next(sqlite_utils.Database(swept / "storage" / "larvastudy.db").query(
        "select count(*) as n, min(PI) as lo, max(PI) as hi from par_df_PItest_off"))
    assert table["n"] == 16 and -1 <= table["lo"] <= table["hi"] <= 1


def test_rerun_of_a_finished_study_only_reexports(swept):
    db = swept / "storage" / "larvastudy.db"
    before = trial_rows(db)
    result = cli(swept, "run", "PItest_off", *SHORT)
    assert result.returncode == 0
    assert "already complete" in result.stdout and "par_df:" in result.stdout
    assert trial_rows(db) == before


def test_status_show_list_export(swept):
    status = cli(swept, "status", "PItest_off")
    assert status.returncode == 0 and "16/16 simulations complete, 0 left" in status.stdout
    show = cli(swept, "show", "PItest_off")
    assert "gain_dict.CS" in show.stdout and "16 simulations" in show.stdout
    listing = cli(swept, "list")
    assert all(name in listing.stdout for name in ("PItest_off", "chemotaxis", "dish", "food_grid"))
    (swept / "storage" / "PItest_off" / "par_df.csv").unlink()
    assert cli(swept, "export", "PItest_off").returncode == 0
    assert (swept / "storage" / "PItest_off" / "par_df.csv").exists()


#: Libraries that take a second or more to import: commands that do not need them must not import them.
HEAVY = ["matplotlib", "optuna", "pandas", "scipy"]


def imported(folder: Path, *args: str) -> list[str]:
    """Which of :data:`HEAVY` ``larvastudy ARGS`` imports (in a fresh interpreter)."""
    code = (f"import sys\nfrom larvastudy.cli import main\ntry:\n    main({list(args)!r})\nexcept SystemExit:\n"
            f"    pass\nprint(*sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1].split()


@pytest.mark.parametrize("args", [["--help"], ["list"], ["show", "PItest_off"]])
def test_commands_without_a_study_import_no_heavy_library(tmp_path, args):
    assert imported(tmp_path, *args) == []


def test_status_imports_optuna_but_no_table_or_plot_library(swept):
    assert imported(swept, "status", "PItest_off") == ["optuna"]


@pytest.mark.parametrize("args, message", [
    (["run", "nope"], "unknown Batch 'nope'"),
    (["run", "PItest_off", "--set", "olfactor.gain_dikt.CS=3"], "unknown parameter 'olfactor.gain_dikt.CS'"),
    (["run", "PItest_off", "--set", "duration=abc"], "duration takes a number, got 'abc'"),
    (["run", "PItest_off", "--set", "duration"], "--set takes path=value"),
    (["run", "PItest_off", "--nsims", "0"], "Nsims must be a whole number >= 1, got 0"),
    (["run", "PItest_off", "-Nsims", "x"], "invalid int value: 'x'"),
    (["run", "PItest_off", "-j", "0"], "n_jobs must be a whole number >= 1"),
    (["run", "PItest_off", "--storage", "nodb://"], "invalid storage URL"),
    (["run"], "required: name"),
    (["status", "missing"], "no larvastudy study 'missing'"),
    (["run", "PItest_off", "--set", "duration=0.3"], "holds another definition: duration: "),
])
def test_bad_input_is_one_line_exit_2_and_nothing_changes(swept, args, message):
    db = swept / "storage" / "larvastudy.db"
    before = trial_rows(db)
    result = cli(swept, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert trial_rows(db) == before


def test_errors_before_any_storage_exists(tmp_path):
    result = cli(tmp_path, "run", "PItest_off", "--set", "Npoints=2.5")
    assert result.returncode == 2 and "takes a whole number, got 2.5" in result.stderr
    assert not (tmp_path / "storage").exists()


def test_toml_file_and_larvaworld_flag(tmp_path):
    (tmp_path / "mine.toml").write_text(
        'experiment = "dish"\nNsims = 1\n[sample]\nNpoints = [2, 3]\n[fixed]\nduration = 0.1\n')
    result = cli(tmp_path, "run", str(tmp_path / "mine.toml"), "-Nsims", "2", "--study-name", "mine")
    assert result.returncode == 0, result.stderr
    assert "4/4 simulations complete" in result.stdout
    par_df = pd.read_csv(tmp_path / "storage" / "mine" / "par_df.csv")
    assert sorted(zip(par_df["Npoints"], par_df["replicate"], strict=True)) == [(2, 0), (2, 1), (3, 0), (3, 1)]


def test_status_shows_simulations_claimed_by_a_running_sweep(tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "larvastudy.cli", "run", "PItest_off", "--nsims", "30"],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = cli(tmp_path, "status", "PItest_off")
            if re.search(r"simulations: [1-9]\d* running", status.stdout):
                break
        assert re.search(r"simulations: [1-9]\d* running", status.stdout), status.stdout + status.stderr
    finally:
        run.kill()
        run.wait()


def test_show_prints_range_values_as_people_write_them(tmp_path):
    shown = cli(tmp_path, "show", "PItest_off").stdout
    assert "33.3333333333," in shown and "33.33333333333334" not in shown


def test_dash_n_is_larvae_per_group_as_in_larvaworld_and_options_are_never_abbreviated(tmp_path):
    shown = cli(tmp_path, "show", "PItest_off", "-N", "10")
    assert shown.returncode == 0
    assert "fixed: {'fidelity': 'larvaworld-2.5.1', 'Npoints': 10}" in shown.stdout and "1 replicates" in shown.stdout
    abbreviated = cli(tmp_path, "show", "PItest_off", "--nsim", "3")
    assert abbreviated.returncode == 2 and "unrecognized arguments: --nsim 3" in abbreviated.stderr
