"""A study's export tables in its SQLite database: one table per study and kind, all replaced in one transaction.

Table ``<kind>_<study name>`` carries the study name verbatim (quoted in SQL, e.g. ``"par_df_a-b"``), so
distinct studies get distinct tables. SQLite ignores ASCII case in table names: a study whose name differs
only in case from an older study's gets ``<kind>_<study name>@<study id>``. A table an older larvastudy named
(non-word characters made ``_``, e.g. ``par_df_a_b`` for ``a b``) is dropped when the study is re-exported,
unless it is now another study's table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from larvastudy.errors import ExportError
from larvastudy.study.storage import BUSY_TIMEOUT

#: The kinds of table an export writes: a grid sweep's par_df and summary, a fit's par_df, trials and pareto.
KINDS = ("par_df", "summary", "trials", "pareto")


def table_name(study_name: str, kind: str, studies: Mapping[str, int]) -> str:
    """The table of kind ``kind`` of study ``study_name``; ``studies``: the database's study ids by name (of
    studies whose names differ only in case, the oldest keeps the plain name)."""
    own = studies.get(study_name)
    younger = own is not None and any(i < own and name != study_name and _fold(name) == _fold(study_name)
                                      for name, i in studies.items())
    return f"{kind}_{study_name}@{own}" if younger else f"{kind}_{study_name}"


def tables_of(study_name: str, studies: Mapping[str, int], existing: Iterable[str]) -> list[str]:
    """The tables among ``existing`` that hold exports of study ``study_name`` (``studies``: the database's study
    ids by name, this one's included): its table of each kind, and one an older larvastudy named for it unless
    that is another study's table now."""
    present = {_fold(name): name for name in existing}
    others = {_fold(table_name(name, kind, studies)) for name in studies if name != study_name for kind in KINDS}
    found: list[str] = []
    for kind in KINDS:
        for name in (table_name(study_name, kind, studies), f"{kind}_" + re.sub(r"\W+", "_", study_name)):
            table = present.get(_fold(name))
            if table is not None and _fold(name) not in others and table not in found:
                found.append(table)
    return found


def quote(identifier: str) -> str:
    """``identifier`` quoted for SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def write_tables(database: Path, study_name: str, tables: Mapping[str, pd.DataFrame]
                 ) -> tuple[dict[str, str], list[str]]:
    """Replace the study's table of each kind by the DataFrame, in one ``BEGIN IMMEDIATE`` transaction on a
    connection of its own (it takes the write lock first, waiting up to :data:`BUSY_TIMEOUT` for other
    writers, so it never fails half-way because another process wrote). Returns each kind's table name and
    the tables of an older naming that it dropped. An ExportError if the database cannot be written."""
    conn = sqlite3.connect(database, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        studies = _studies(conn)
        names = {kind: table_name(study_name, kind, studies) for kind in tables}
        for kind, df in tables.items():
            _replace(conn, names[kind], df)
        dropped = _drop_old_names(conn, study_name, list(tables), studies)
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise ExportError(f"the tables of study {study_name!r} to {database}", error) from None
    finally:
        conn.close()
    return names, dropped


def _replace(conn: sqlite3.Connection, name: str, df: pd.DataFrame) -> None:
    table = quote(name)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({', '.join(f'{quote(c)} {_sql_type(df[c])}' for c in df.columns)})")
    rows = df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)
    conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(df.columns))})", rows)


def _drop_old_names(conn: sqlite3.Connection, study_name: str, kinds: list[str], studies: Mapping[str, int]
                    ) -> list[str]:
    """Drop the tables an older larvastudy named for this study, unless they are another study's now."""
    current = {_fold(table_name(name, kind, studies)) for name in {*studies, study_name} for kind in kinds}
    dropped = []
    for kind in kinds:
        old = f"{kind}_" + re.sub(r"\W+", "_", study_name)
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (old,)).fetchone()
        if exists and _fold(old) not in current:
            conn.execute(f"DROP TABLE {quote(old)}")
            dropped.append(old)
    return dropped


def _studies(conn: sqlite3.Connection) -> dict[str, int]:
    """The database's study ids by name (none if it is not an Optuna storage)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").fetchone() is None:
        return {}
    return dict(conn.execute("SELECT study_name, study_id FROM studies"))


def _fold(name: str) -> bytes:
    """``name`` as SQLite compares table names: ASCII letters case-insensitively, other characters exactly."""
    return name.encode("utf-8", "surrogatepass").lower()


def _sql_type(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return "INTEGER"
    return "FLOAT" if pd.api.types.is_float_dtype(values) else "TEXT"
