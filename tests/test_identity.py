"""A study's identity (issue 11, items 2 and 3): a changed definition is refused naming each difference, studies
are listed, replaced and deleted with everything of them, and Batches made in Python never take a preset's study.
CLI checks run real ``larvastudy`` processes (``python -m larvastudy.cli``)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import sqlalchemy

from larvastudy.api import BatchRun, run_batch
from larvastudy.definition.batch import batch_from_kwargs, load_batch
from larvastudy.errors import ConflictError, DefinitionChanged
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.plan import all_tasks
from larvastudy.study import delete_study, open_storage, open_study, storage_url
from larvastudy.study.identity import differences
from larvastudy.study.storage import setup_lock

SHORT = ["--set", "duration=0.05"]
TINY = ('experiment = "dish"\nNsims = 2\nmetrics = ["v_mu"]\n[sample]\n"crawler.freq" = [1.2, 1.6]\n'
        '[fixed]\nduration = 0.05\n')


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "larvastudy.cli", *args], cwd=folder, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def rows(db: Path) -> dict[str, int]:
    """Rows of every table of ``db``."""
    with sqlite3.connect(db) as conn:
        names = [n for (n,) in conn.execute("select name from sqlite_master where type = 'table'")]
        return {n: conn.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A folder whose storage holds a finished ``PItest_off`` (duration 0.05) and a 2-trial fit of ``tiny``."""
    folder = tmp_path_factory.mktemp("identity")
    (folder / "tiny.toml").write_text(TINY)
    assert cli(folder, "run", "PItest_off", *SHORT).returncode == 0
    result = cli(folder, "run", "tiny.toml", "--sampler", "random", "--n-trials", "2")
    assert result.returncode == 0, result.stderr
    return folder


def test_a_changed_definition_names_each_difference_and_the_ways_on(swept):
    db = swept / "storage" / "larvastudy.db"
    before = rows(db)
    line = one_line_error(cli(swept, "run", "PItest_off", "--set", "duration=0.3"))
    assert "duration: 0.05 -> 0.3" in line and "--study-name NAME" in line and "--replace" in line
    line = one_line_error(cli(swept, "run", "PItest_off", "--set", "duration=0.3", "--replace"))  # no terminal
    assert "holds 16 complete simulations" in line and "--yes" in line
    assert rows(db) == before


def test_many_differences_stay_on_one_line():
    stored = {"experiment": "dish", "fixed": {f"p{i}": i for i in range(6)}, "sample": {"gain_dict.CS": [1, 2]}}
    requested = {"experiment": "chemotaxis", "fixed": {f"p{i}": -i for i in range(1, 7)}, "sample": {}}
    found = differences(stored, requested, ["experiment", "sample", "fixed"])
    assert found[:3] == ["experiment: dish -> chemotaxis", "sample gain_dict.CS: [1, 2] -> unset", "p0: 0 -> unset"]
    assert "p6: unset -> -6" in found and len(found) == 9
    message = DefinitionChanged("s", "here", found).for_cli()
    assert "\n" not in message and message.count(" -> ") == 4 and "and 5 more" in message


def test_status_names_the_fits_of_a_batch(swept):
    line = one_line_error(cli(swept, "status", "tiny"))
    assert "no grid study 'tiny'" in line and "its fits: tiny-random (random, 2 trials)" in line
    assert "its fits: tiny-random" in one_line_error(cli(swept, "export", "tiny"))
    assert cli(swept, "run", "tiny.toml").returncode == 0
    result = cli(swept, "status", "tiny")
    assert result.returncode == 0 and "fits of this Batch: tiny-random (random, 2 trials)" in result.stdout


def test_replace_studies_and_delete(swept):
    db = swept / "storage" / "larvastudy.db"
    result = cli(swept, "run", "PItest_off", "--set", "duration=0.1", "--replace", "--yes")
    assert result.returncode == 0 and "16/16 simulations complete" in result.stdout, result.stderr
    listed = cli(swept, "studies").stdout
    assert re.search(r"^PItest_off +PItest_off +PItest_off +grid +16/16 simulations +20\d\d-", listed, re.M)
    assert "tiny-random" in listed and "fit (random)" in listed
    assert "duration: 0.1 -> 0.05" in one_line_error(cli(swept, "run", "PItest_off", *SHORT))
    assert "confirm with --yes" in one_line_error(cli(swept, "delete", "PItest_off"))
    result = cli(swept, "delete", "PItest_off", "--yes")
    assert result.returncode == 0 and "deleted study 'PItest_off'" in result.stdout, result.stderr
    left = rows(db)
    assert not any("PItest_off" in table for table in left) and not (swept / "storage" / "PItest_off").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from studies where study_name = 'PItest_off'").fetchone() == (0,)
        assert conn.execute("select count(*) from larvastudy_claims c left join studies s using (study_id) "
                            "where s.study_id is null").fetchone() == (0,)
        assert conn.execute("select count(*) from trials t left join studies s using (study_id) "
                            "where s.study_id is null").fetchone() == (0,)
    assert "no larvastudy study 'PItest_off'" in one_line_error(cli(swept, "delete", "PItest_off", "--yes"))


def small(**changes):
    kwargs = {"experiment": "dish", "sample": {"Npoints": [2]}, "fixed": {"duration": 0.05}, "Nsims": 2,
              "name": "small", **changes}
    return batch_from_kwargs(**kwargs)


def study_rows(engine: sqlalchemy.Engine, study_id: int) -> int:
    with engine.connect() as con:
        return sum(con.execute(sqlalchemy.text(f"select count(*) from {table} where study_id = :i"), {"i": study_id})
                   .scalar_one() for table in ("studies", "trials", "study_user_attributes", "larvastudy_claims"))


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
def test_delete_refuses_a_running_study_then_removes_all_of_it(tmp_path, request, where):
    url = storage_url(tmp_path / "s.db" if where == "sqlite" else request.getfixturevalue("postgres"))
    run_batch(small(), storage=url, study_name="small")
    run_batch(small(Nsims=1), storage=url, study_name="other")
    rdb = open_storage(url)
    study_id = rdb.get_study_id_from_name("small")
    with setup_lock(url):
        open_study(small(Nsims=3), rdb, "small")  # extends it: a third replicate per point, pending
    book = ClaimBook(rdb, study_id, small(Nsims=3), all_tasks(small(Nsims=3)), grace=60, retries=0)
    book.prepare(set, fresh=False)
    assert book.claim(1)  # this live process now runs a simulation of the study
    with pytest.raises(ConflictError, match=r"'small' .* is being run: 1 simulations are claimed by live processes"):
        delete_study(url, "small")
    assert study_rows(rdb.engine, study_id) > 0
    book.release()
    deleted = delete_study(url, "small")
    assert deleted.study.name == "small" and study_rows(rdb.engine, study_id) == 0
    assert study_rows(rdb.engine, rdb.get_study_id_from_name("other")) > 0


def test_python_batches_keep_their_own_studies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    warnings.simplefilter("ignore")
    comparative = BatchRun(experiment="chemotaxis", sample={"model": ["explorer", "navigator"]},
                           fixed={"Npoints": 2, "duration": 0.05}, Nsims=1)
    other = BatchRun(experiment="chemotaxis", sample={"model": ["explorer", "forager"]},
                     fixed={"Npoints": 2, "duration": 0.05}, Nsims=1)
    assert comparative.study_name.startswith("chemotaxis-") and other.study_name.startswith("chemotaxis-")
    assert comparative.study_name != other.study_name
    assert len(comparative.simulate()[0]) == 2 and len(other.simulate()[0]) == 2
    again = BatchRun(experiment="chemotaxis", sample={"model": ["explorer", "navigator"]},
                     fixed={"Npoints": 2, "duration": 0.05}, Nsims=1)
    assert again.study_name == comparative.study_name and again.simulate() and again.summary.already_finished
    assert cli(tmp_path, "run", "chemotaxis", *SHORT).returncode == 0  # the preset's study is still its own
    preset = load_batch("dish").to_dict()
    same = BatchRun(experiment="dish", sample=preset["sample"], fixed=preset["fixed"], Nsims=1,
                    metrics=preset["metrics"], optimization=preset["optimization"])
    assert same.study_name == "dish"  # equal to the shipped Batch but for Nsims: its study
    assert BatchRun(experiment="dish", study_name="mine", sample={"Npoints": [2]}).study_name == "mine"
    replaced = BatchRun(experiment="chemotaxis", sample={"model": ["explorer", "navigator"]},
                        fixed={"Npoints": 2, "duration": 0.05}, Nsims=1, replace=True)
    replaced.simulate()
    assert replaced.summary.ran == 2  # deleted, then run from scratch


def test_replace_studies_and_delete_on_postgresql(tmp_path, postgres):
    """The same commands against a real PostgreSQL server, where no export table is written."""
    (tmp_path / "tiny.toml").write_text(TINY)
    first = cli(tmp_path, "run", "tiny.toml", "--storage", postgres)
    assert first.returncode == 0 and "par_df: " in first.stdout and "table" not in first.stdout  # none written
    changed = ("run", "tiny.toml", "--set", "duration=0.1", "--storage", postgres)
    assert "duration: 0.05 -> 0.1" in one_line_error(cli(tmp_path, *changed))
    result = cli(tmp_path, *changed, "--replace", "--yes")
    assert result.returncode == 0 and "4/4 simulations complete" in result.stdout, result.stderr
    listed = cli(tmp_path, "studies", "--storage", postgres).stdout
    assert re.search(r"^tiny +tiny +dish +grid +4/4 simulations", listed, re.M), listed
    result = cli(tmp_path, "delete", "tiny", "--yes", "--storage", postgres)
    assert result.returncode == 0 and "deleted study 'tiny'" in result.stdout, result.stderr
    engine = sqlalchemy.create_engine(postgres)
    with engine.connect() as con:  # the server is the module's: other tests' studies may remain
        assert con.execute(sqlalchemy.text("select count(*) from studies where study_name = 'tiny'")).scalar_one() == 0
        for table in ("trials", "larvastudy_claims", "larvastudy_claim_events"):
            orphans = f"select count(*) from {table} t left join studies s using (study_id) where s.study_id is null"
            assert con.execute(sqlalchemy.text(orphans)).scalar_one() == 0, table
    engine.dispose()
    assert not re.search(r"^tiny ", cli(tmp_path, "studies", "--storage", postgres).stdout, re.M)


def test_a_parameter_the_stored_study_leaves_at_its_preset_shows_the_preset_value(tmp_path):
    """The main job does not set Npoints: the refusal still names both values."""
    assert cli(tmp_path, "run", "PItest_off", *SHORT).returncode == 0
    refused = one_line_error(cli(tmp_path, "run", "PItest_off", *SHORT, "--set", "Npoints=7"))
    assert "holds another definition: " in refused and "Npoints: 30 (preset) -> 7" in refused
