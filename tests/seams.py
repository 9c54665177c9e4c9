"""The engine seam of bookkeeping tests (sweeps whose simulations cost nothing, or fail on purpose) and a study
rewritten in the layout earlier larvastudy versions stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from larvastudy.definition.batch import Batch
from larvastudy.engine import SimResult
from larvastudy.study import search_space
from larvastudy.study.grid import SPACE_ATTR


def noop_simulate(jobs: Sequence[tuple[Mapping[str, Any], int]]) -> list[SimResult]:
    """No simulation: every metric is the seed's last digit, for one larva."""
    return [SimResult(seed, {name: np.full(1, seed % 10) for name in config["metrics"]}) for config, seed in jobs]


def failing_simulate(jobs: Sequence[tuple[Mapping[str, Any], int]]) -> list[SimResult]:
    """:func:`noop_simulate`, but simulations of 3 larvae (of a dish grid over Npoints) raise: a sweep is left
    half done."""
    if any(config["larva_groups"]["explorer"]["distribution"]["N"] == 3 for config, _ in jobs):
        raise RuntimeError("no 3-larva simulations today")
    return noop_simulate(jobs)


def written_by_an_earlier_version(db: Path, batch: Batch) -> None:
    """Rewrite a study's SQLite file as earlier larvastudy versions wrote it (with ``add_trials``, in Optuna's
    tables): the search space on every COMPLETE trial (the storage API refuses to change a finished trial),
    none on the study."""
    with sqlite3.connect(db) as conn:
        conn.execute("insert into trial_system_attributes (trial_id, key, value_json) select trial_id, "
                     "'search_space', ? from trials where state = 'COMPLETE'", (json.dumps(search_space(batch)),))
        conn.execute(f"delete from study_system_attributes where key = '{SPACE_ATTR}'")


def exactly_once(db: Path, total: int) -> None:
    """The SQLite study at ``db`` holds exactly one COMPLETE trial per simulation (grid point x replicate) of
    ``total``, and no other trial."""
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "select count(*), count(distinct a.value_json || ':' || p.param_value) from trials t "
            "join trial_user_attributes a on a.trial_id = t.trial_id and a.key = 'grid_point' "
            "join trial_params p on p.trial_id = t.trial_id and p.param_name = 'replicate' "
            "where t.state = 'COMPLETE'").fetchone()
        every = conn.execute("select count(*) from trials").fetchone()[0]
    assert found == (total, total) and every == total, (found, every, total)
