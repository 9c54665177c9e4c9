"""Bad input, as a user types it: each case runs the real ``larvastudy`` program in a fresh folder and
must end with exit code 2, exactly one line on stderr naming the problem, and no file created or changed
(in the folder, its storage, or a database it was pointed at)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = ["--nsims", "1", "--set", "duration=0.1"]
#: Files SQLite and the storage's set-up lock keep beside a database.
SIDE_FILES = (".db-wal", ".db-shm", ".db.lock")
#: TOML Batch files the cases use, by file name.
TOMLS = {
    "nosample.toml": 'experiment = "dish"\nNsims = 2\n[fixed]\nduration = 0.1\n',
    "strmetric.toml": 'experiment = "dish"\nmetrics = "v_mu"\n[sample]\nNpoints = [1, 2]\n',
    "bigseed.toml": 'experiment = "dish"\nseed = 4294967296\n[sample]\nNpoints = [1, 2]\n',
    "slash.toml": 'experiment = "chemotaxis"\n[sample]\n"gain_dict.a/b" = {range = [0.0, 100.0]}\n',
    "onepoint.toml": 'experiment = "dish"\n[sample]\nduration = [0.1]\n',
    "hugegrid.toml": 'experiment = "food_grid"\n[sample]\nduration = [0.1]\n[fixed]\n'
                     '"env_params.food_params.food_grid.grid_dims" = [1000000, 1000000]\n',
}


def _cases() -> list:
    """(label, argv, part of the message); ``{dir}`` is the case's folder."""
    return [
        ("no [sample]", ["run", "nosample.toml"], "missing key 'sample'"),
        ("metrics as a string", ["run", "strmetric.toml"], "metrics must be a list of metric names"),
        ("seed >= 2**32", ["run", "bigseed.toml"], "seed must be a whole number from 0 to 2**32 - 1"),
        ("slash in an axis name", ["run", "slash.toml", "--sampler", "random", "--n-trials", "2"],
         "contains a slash"),
        ("duration=inf", ["run", "dish", "--set", "duration=inf"], "fixed 'duration' = inf"),
        ("duration=1e400", ["run", "dish", "--set", "duration=1e400"], "fixed 'duration' = inf"),
        ("duration=nan", ["run", "dish", "--set", "duration=nan"], "fixed 'duration' = nan"),
        ("inf in a list", ["run", "dish", "--set", "env_params.arena.dims=[0.1, inf]"], "must be finite"),
        ("Npoints=1e9", ["run", "onepoint.toml", "--set", "Npoints=1e9"], "1,000,000,000 larvae"),
        ("dt=1e-9", ["run", "dish", "--set", "dt=1e-9"], "use a larger dt"),
        ("duration below one step", ["run", "dish", "--set", "duration=0.0001"],
         "shorter than one step"),
        ("huge food grid", ["run", "hugegrid.toml"], "a food grid of 1,000,000 x 1,000,000 cells"),
        ("mysql without driver", ["run", "dish", *TINY, "--storage", "mysql://u:p@127.0.0.1/x"],
         "needs the database driver"),
        ("PostgreSQL unreachable", ["run", "dish", *TINY, "--storage", "postgresql://u:secret@127.0.0.1:1/x"],
         "Connection refused"),
        ("storage is a directory", ["run", "dish", *TINY, "--storage", "{dir}"], "is a directory"),
        ("storage is /dev/null", ["status", "dish", "--storage", "/dev/null"], "not a regular file"),
        ("storage is a text file", ["run", "dish", *TINY, "--storage", "{dir}/notes.txt"],
         "is not a SQLite database file"),
        ("truncated database", ["status", "dish", "--storage", "{dir}/truncated.db"], "malformed"),
        ("garbled schema", ["run", "dish", *TINY, "--storage", "{dir}/garbled-schema.db"], "the file is damaged"),
        ("garbled trial pages", ["export", "dish", "--storage", "{dir}/garbled-pages.db"], "the file is damaged"),
        ("in-memory SQLite", ["run", "dish", *TINY, "--storage", "sqlite://"], "is in memory"),
        ("in-memory SQLite file URL", ["run", "dish", *TINY, "--storage", "sqlite:///:memory:"], "is in memory"),
        ("foreign 'batch' attribute", ["status", "dish", "--storage", "{dir}/foreign.db"],
         "not made by larvastudy (its user attribute 'batch'"),
        ("foreign empty study, wrong direction", ["run", "dish", *TINY, "--storage", "{dir}/backwards.db"],
         "made outside larvastudy to maximize, not to minimize"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> Path:
    """Database files the storage cases point at: damaged copies of a real study, and foreign studies."""
    folder = tmp_path_factory.mktemp("databases")
    made = subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", "dish", "--nsims", "3", "--set",
                           "duration=0.1", "--storage", str(folder / "good.db")], cwd=folder, capture_output=True)
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(folder / "good.db") as con:  # one self-contained file to damage
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
    data = (folder / "good.db").read_bytes()
    pages = len(data) // 4096
    (folder / "truncated.db").write_bytes(data[: len(data) // 2])
    (folder / "garbled-schema.db").write_bytes(_garble(data, 200, 4096, step=7))
    (folder / "garbled-pages.db").write_bytes(_garble(data, 4096 * (pages // 3), len(data), step=37))
    (folder / "notes.txt").write_text("not a database\n")
    foreign = optuna.create_study(study_name="dish", storage=f"sqlite:///{folder / 'foreign.db'}")
    foreign.set_user_attr("batch", "my own batch")
    optuna.create_study(study_name="dish", storage=f"sqlite:///{folder / 'backwards.db'}", direction="maximize")
    return folder


def _garble(data: bytes, start: int, stop: int, step: int) -> bytes:
    damaged = bytearray(data)
    for i in range(start, stop, step):
        damaged[i] = (damaged[i] * 7 + 13) % 256
    return bytes(damaged)


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its content; a readable database by its rows (a refused
    run may have switched it to WAL mode, with its side files, which changes bytes but no data)."""
    snapshot = {}
    for path in sorted(folder.rglob("*")):
        if path.name.endswith(SIDE_FILES):
            continue
        content = path.read_bytes() if path.is_file() else b"dir"
        if path.suffix == ".db":
            try:
                with closing(sqlite3.connect(path)) as con:
                    content = "\n".join(con.iterdump()).encode()
            except sqlite3.DatabaseError:  # damaged: compare its bytes
                pass
        snapshot[str(path.relative_to(folder))] = hashlib.sha256(content).hexdigest()
    return snapshot


@pytest.mark.parametrize("label, argv, message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, databases, label, argv, message) -> None:
    for name in (*TOMLS, "truncated.db", "garbled-schema.db", "garbled-pages.db", "notes.txt", "foreign.db",
                 "backwards.db"):
        source = databases / name
        if source.exists():
            shutil.copy(source, tmp_path / name)
        else:
            (tmp_path / name).write_text(TOMLS[name])
    before = _snapshot(tmp_path)
    argv = [arg.format(dir=tmp_path) for arg in argv]
    result = subprocess.run([sys.executable, "-m", "larvastudy.cli", *argv], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr[-2000:]
    assert result.stderr.startswith("larvastudy: error: ") and message in result.stderr, result.stderr
    assert "secret" not in result.stderr
    assert _snapshot(tmp_path) == before


def test_postgresql_missing_database_and_wrong_role(tmp_path, postgres) -> None:
    base = postgres.rsplit("/", 1)[0]
    for url, message in ((f"{base}/nosuchdb", 'database "nosuchdb" does not exist'),
                         (postgres.replace("postgres@", "nobody@"), 'role "nobody" does not exist')):
        for command in (["run", "dish", *TINY], ["status", "dish"]):
            result = subprocess.run([sys.executable, "-m", "larvastudy.cli", *command, "--storage", url],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert (result.returncode, result.stderr.count("\n")) == (2, 1) and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_diverging_simulation_is_a_failed_trial_with_its_reason(tmp_path) -> None:
    """dt = 0.3 s makes the turner's Euler step unstable: the run stores FAIL with why, not COMPLETE, and
    stderr has the one failure line, not numpy's overflow warnings."""
    result = subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", "dish", "--nsims", "2", "--set",
                             "duration=1.0", "--set", "dt=0.3"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    par_df = (tmp_path / "storage" / "dish" / "par_df.csv").read_text()
    assert "COMPLETE" not in par_df and par_df.count("FAIL") == 12
    assert par_df.count("the simulation diverged") == 12 and "dt = 0.3 s may be too large" in par_df
