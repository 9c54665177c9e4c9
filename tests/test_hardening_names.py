"""Study names, table names and exports under stress, as a user meets them: real ``larvastudy`` processes.

Bad names are refused before anything is made; odd names already stored are exported to an encoded folder;
each study has its own tables; concurrent exports all succeed; a killed export, a full disk or a read-only
folder leaves the previous export whole, with one line on stderr.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pandas as pd
import pytest
from matplotlib.image import imread

from larvastudy.api import BatchRun
from larvastudy.definition.batch import Batch
from larvastudy.errors import SpecError
from larvastudy.export.tables import write_tables
from larvastudy.names import MAX_LENGTH, folder_name, is_valid, study_folder

from conftest import missing

RULE = "letters, digits and _ - . + ="
SHORT = ["--set", "duration=0.05"]
EXPORT_FILES = ["par_df.csv", "summary.csv"]
TINY = 'experiment = "dish"\nNsims = 2\nmetrics = ["v_mu"]\n[sample]\nNpoints = [3, 4]\n[fixed]\nduration = 0.05\n'


def start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "larvastudy.cli", *args], cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def cli_all(folder: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Every command at once, each a ``larvastudy`` process in ``folder``."""
    return [finish(proc) for proc in [start(folder, *command) for command in commands]]


def listing(root: Path) -> dict[str, int]:
    """Every path under ``root`` and its size (folders: -1)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def tables(db: Path) -> dict[str, int]:
    """Rows of each export table of ``db`` (par_df and summary tables)."""
    with sqlite3.connect(db) as conn:
        names = [n for (n,) in conn.execute("select name from sqlite_master where type = 'table' "
                                            "and (name like 'par_df%' or name like 'summary%')")]
        return {n: conn.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A folder with a finished 4-simulation study ``tiny`` and its export (a copy in ``reference/``)."""
    folder = tmp_path_factory.mktemp("names")
    (folder / "tiny.toml").write_text(TINY)
    result = finish(start(folder, "run", "tiny.toml"))
    assert result.returncode == 0, result.stderr
    shutil.copytree(folder / "storage" / "tiny", folder / "reference")
    return folder


# --- names ----------------------------------------------------------------------------------------

BAD_NAMES = ["../../escaped", ".hidden", "a/b", "x" * 300, "", "ünï"]


def test_bad_names_are_refused_before_anything_is_made(swept: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "par_df.csv").write_text("precious\n")
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    (work / "bad.toml").write_text('name = "../../evil"\nexperiment = "dish"\n[sample]\nNpoints = [3]\n')
    db = str(swept / "storage" / "larvastudy.db")
    commands = {name: ["run", "dish", *SHORT, "--study-name", name] for name in [*BAD_NAMES, str(victim)]}
    commands["../../evil"] = ["run", "bad.toml"]
    commands["../fit-tpe"] = ["run", "dish", "--sampler", "tpe", "--study-name", "../fit-tpe"]
    reads = [[command, "../../escaped", "--storage", db] for command in ("export", "status", "report", "worker")]
    before, stored = listing(tmp_path), listing(swept)
    results = cli_all(work, *commands.values(), *reads)
    expected = [*commands.items(), *(("../../escaped", c) for c in reads)]
    for (name, command), result in zip(expected, results, strict=True):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (command, result.stderr)
        assert RULE in lines[0] and repr(name)[:40] in lines[0], (command, lines)
    assert listing(tmp_path) == before and listing(swept).keys() == stored.keys()


def test_names_from_python_are_checked() -> None:
    with pytest.raises(SpecError, match=re.escape("invalid Batch name '../x'")):
        Batch(name="../x", experiment="dish", sample={"Npoints": [3]})
    with pytest.raises(SpecError, match="invalid study name 'a/b'"):
        BatchRun(experiment="dish", sample={"Npoints": [3]}, study_name="a/b")
    for name in ("PItest_off", "chemotaxis_fit-tpe", "gain=100+decay=0.5", "v1.2", "x" * MAX_LENGTH):
        assert is_valid(name)


def test_odd_folder_names_are_distinct_safe_and_inside_storage(tmp_path: Path) -> None:
    odd = ["a b", "a%20b", "../..", ".", "/etc", "ünï", "x" * 300, "x" * 299 + "y", "a" * 127 + "/"]
    folders = [folder_name(name) for name in [*odd, "a_b", "a-b"]]
    assert len(set(folders)) == len(folders)
    assert all("/" not in f and not f.startswith(".") and len(f) <= MAX_LENGTH for f in folders)
    assert all(study_folder(tmp_path, name).parent == tmp_path.resolve() for name in odd)
    (tmp_path / "s.db").write_bytes(b"")
    (tmp_path / "out").symlink_to(tmp_path.parent)
    for name, why in [("s.db", "is a file"), ("s.db-wal", "SQLite file"), ("out", "not inside")]:
        with pytest.raises(SpecError, match=why):
            study_folder(tmp_path, name)


def test_a_study_with_an_odd_name_made_by_optuna_is_exported_to_an_encoded_folder(swept: Path) -> None:
    url = f"sqlite:///{swept / 'storage' / 'larvastudy.db'}"
    optuna.copy_study(from_study_name="tiny", from_storage=url, to_storage=url, to_study_name="../odd name")
    status, export = cli_all(swept, ["status", "../odd name"], ["export", "../odd name"])
    assert status.returncode == 0 and "4/4 simulations complete" in status.stdout
    assert export.returncode == 0, export.stderr
    folder = swept / "storage" / "%2E.%2Fodd%20name"
    assert f"par_df: {folder / 'par_df.csv'} (4 rows; also table par_df_../odd name in the database)" in export.stdout
    assert (folder / "par_df.csv").read_bytes() == (swept / "reference" / "par_df.csv").read_bytes()


# --- table names ----------------------------------------------------------------------------------

def test_each_study_has_its_own_tables_and_old_names_are_dropped(swept: Path) -> None:
    db = swept / "storage" / "larvastudy.db"
    url = f"sqlite:///{db}"
    names = ["a b", "a-b", "a_b", "Case", "case", "x y"]
    for name in names:
        optuna.copy_study(from_study_name="tiny", from_storage=url, to_storage=url, to_study_name=name)
    with sqlite3.connect(db) as conn:  # what an older larvastudy named study "x y"'s table
        conn.execute("create table par_df_x_y (a)")
    case_id = optuna.load_study(study_name="case", storage=url)._study_id
    expected = {name: f"par_df_{name}" for name in names} | {"case": f"par_df_case@{case_id}"}
    for rows, name in enumerate(names, start=1):
        written, dropped = write_tables(db, name, {"par_df": pd.DataFrame({"row": range(rows)})})
        assert written == {"par_df": expected[name]} and dropped == (["par_df_x_y"] if name == "x y" else [])
    assert {table: rows for table, rows in tables(db).items() if table in expected.values()} == {
        table: rows for rows, table in enumerate(expected.values(), start=1)}
    assert "par_df_x_y" not in tables(db)
    result = finish(start(swept, "export", "case"))  # what the CLI prints is what it stored
    assert result.returncode == 0 and f"also table par_df_case@{case_id} in the database" in result.stdout
    assert tables(db)[f"par_df_case@{case_id}"] == 4


# --- concurrent, killed and failed exports ------------------------------------------------------

def test_concurrent_exports_and_a_finishing_run_all_succeed(swept: Path) -> None:
    results = cli_all(swept, *[["export", "tiny"]] * 3, ["run", "tiny.toml"])
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert tables(swept / "storage" / "larvastudy.db")["par_df_tiny"] == 4
    assert listing(swept / "storage" / "tiny").keys() == listing(swept / "reference").keys()


def test_an_export_killed_while_writing_leaves_whole_files(swept: Path) -> None:
    """Kill -9 the export the moment it changes anything in the study folder: every file is the old one."""
    out, reference = swept / "storage" / "tiny", swept / "reference"
    for _ in range(2):
        before = listing(out)
        proc = start(swept, "export", "tiny")
        while proc.poll() is None and listing(out) == before:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        for name in EXPORT_FILES:
            assert (out / name).read_bytes() == (reference / name).read_bytes()
        for png in reference.glob("figures/*.png"):
            assert imread(out / "figures" / png.name).shape == imread(png).shape


@contextmanager
def mounted(path: Path, *mount_args: str) -> Iterator[Path]:
    path.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *mount_args, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        missing(f"cannot mount here ({done.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_leaves_the_previous_export_and_one_line(swept: Path, tmp_path: Path) -> None:
    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=24k", "tmpfs") as full:
        old = full / "storage" / "tiny"
        old.mkdir(parents=True)
        (old / "par_df.csv").write_text("the previous export\n")
        result = finish(start(full, "export", "tiny", "--storage", str(swept / "storage" / "larvastudy.db")))
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr
        assert f"cannot write {old}" in result.stderr
        assert (old / "par_df.csv").read_text() == "the previous export\n"
        assert sorted(p.name for p in old.rglob("*")) == ["figures", "par_df.csv"]


def test_a_read_only_folder_is_one_line(swept: Path, tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    with mounted(tmp_path / "ro", "--bind", "-o", "ro", str(tmp_path / "source")) as ro:
        result = finish(start(ro, "export", "tiny", "--storage", str(swept / "storage" / "larvastudy.db")))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"cannot write {ro / 'storage' / 'tiny'}: Read-only file system" in result.stderr
