"""A storage that is not there or cannot be opened: one line on stderr, exit 2, and nothing created.

Only ``run`` creates storage; every other command given a mistyped ``--storage`` must leave the disk
(and the database server) as it was.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from larvastudy.cli import main

#: Every command that opens a storage without creating it (each on a study that does not exist).
READ_ONLY = [["status", "x"], ["export", "x"], ["dashboard"], ["dashboard", "x"], ["power", "x"], ["report", "x"],
             ["worker", "x"]]
RUN = ["run", "PItest_off", "--set", "duration=0.2"]
REFUSED = "postgresql+psycopg://u:secret@127.0.0.1:1/db"  # port 1: connection refused, no server needed


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LARVASTUDY_STORAGE", raising=False)


def error_line(capsys, *args: str) -> str:
    """The one stderr line of ``larvastudy ARGS``, which must exit 2."""
    code = main(list(args))
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("larvastudy: error: ")
    return lines[0].removeprefix("larvastudy: error: ")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its content) and folder under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("command", READ_ONLY)
def test_mistyped_storage_creates_nothing(tmp_path, capsys, command):
    db = tmp_path / "typo" / "x.db"
    assert error_line(capsys, *command, "--storage", str(db)) == \
        f"no storage at {db} (run a sweep first, or pass --storage)"
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("command", READ_ONLY)
def test_default_storage_is_not_created_either(tmp_path, capsys, command):
    assert error_line(capsys, *command).startswith(f"no storage at {tmp_path / 'storage' / 'larvastudy.db'}")
    assert tree(tmp_path) == {}


def test_a_real_process_prints_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "larvastudy.cli", "status", "x", "--storage", "typo.db"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"larvastudy: error: no storage at {tmp_path / 'typo.db'} "
                             "(run a sweep first, or pass --storage)\n")
    assert tree(tmp_path) == {}


def no_optuna_tables(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("create table notes (text)")


@pytest.mark.parametrize("make, cause", [
    (Path.mkdir, "is a directory, not a SQLite database file"),
    (lambda p: p.write_text("name,value\na,1\n"), "is not a SQLite database file"),
    (lambda p: p.write_bytes(b""), "is not a SQLite database file (empty)"),
    (no_optuna_tables, "has no Optuna tables"),
])
@pytest.mark.parametrize("command", [["status", "x"], ["export", "x"], ["worker", "x"]])
def test_not_a_storage(tmp_path, capsys, make, cause, command):
    make(tmp_path / "x.db")
    before = tree(tmp_path)
    assert error_line(capsys, *command, "--storage", str(tmp_path / "x.db")).startswith(
        f"storage {tmp_path / 'x.db'} {cause}")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("make, cause", [
    (Path.mkdir, "is a directory, not a SQLite database file"),
    (lambda p: p.write_text("name,value\na,1\n"), "is not a SQLite database file"),
])
def test_run_refuses_a_file_or_folder_that_is_not_sqlite(tmp_path, capsys, make, cause):
    make(tmp_path / "x.db")
    before = tree(tmp_path)
    assert error_line(capsys, *RUN, "--storage", str(tmp_path / "x.db")) == f"storage {tmp_path / 'x.db'} {cause}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", [["status", "x"], RUN])
def test_dev_null(tmp_path, capsys, command):
    assert error_line(capsys, *command, "--storage", "/dev/null") == \
        "storage /dev/null is not a SQLite database file (not a regular file)"
    assert not Path("/dev/null.lock").exists() and tree(tmp_path) == {}


@pytest.mark.parametrize("command", [["status", "x"], RUN])
def test_bad_url(tmp_path, capsys, command):
    assert error_line(capsys, *command, "--storage", "postgresql://u:secret@host:port/db") == (
        "invalid storage URL 'postgresql://u:***@host:port/db'; use e.g. sqlite:///path/to/file.db or "
        "postgresql://user@host/db")


@pytest.mark.parametrize("url, module, package", [
    ("mysql://u:secret@host/db", "MySQLdb", "mysqlclient"),
    ("postgresql+psycopg2://u:secret@host/db", "psycopg2", "psycopg2-binary"),
])
@pytest.mark.parametrize("command", [["status", "x"], RUN])
def test_missing_driver(capsys, url, module, package, command):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    shown = url.replace("secret", "***")
    assert error_line(capsys, *command, "--storage", url) == (
        f"storage {shown} needs the database driver {module}, which is not installed: pip install '{package}'")


@pytest.mark.parametrize("command", [["status", "x"], ["worker", "x"], RUN])
def test_unreachable_server(capsys, command):
    line = error_line(capsys, *command, "--storage", REFUSED)
    assert line.startswith("cannot open storage postgresql+psycopg://u:***@127.0.0.1:1/db: ")
    assert "Connection refused" in line and "secret" not in line


@pytest.mark.parametrize("command", [["status", "x"], RUN])
def test_missing_database_and_unknown_role(postgres, capsys, command):
    base = sqlalchemy.make_url(postgres)
    no_db = base.set(database="nosuchdb").render_as_string(hide_password=False)
    assert error_line(capsys, *command, "--storage", no_db) == (
        f"cannot open storage {no_db}: connection to server at \"127.0.0.1\", port {base.port} failed: "
        "database \"nosuchdb\" does not exist")
    no_role = base.set(username="nobody", password="secret").render_as_string(hide_password=False)
    line = error_line(capsys, *command, "--storage", no_role)
    assert line.startswith(f"cannot open storage postgresql://nobody:***@127.0.0.1:{base.port}/postgres: ")
    assert line.endswith('role "nobody" does not exist') and "secret" not in line


def test_a_database_without_optuna_tables_gets_none(postgres, capsys):
    assert error_line(capsys, "status", "x", "--storage", postgres) == (
        f"storage {postgres} has no Optuna tables (not made by a larvastudy run; run a sweep first, "
        "or pass --storage)")
    engine = sqlalchemy.create_engine(postgres, poolclass=sqlalchemy.pool.NullPool)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
