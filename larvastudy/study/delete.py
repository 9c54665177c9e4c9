"""Deleting a study and everything of it: its Optuna rows, its claims and claim events, its export tables
(SQLite) in one transaction, then its export folder ``storage/<study>/`` in the working directory.

A study that live processes are running (running claims whose owners are alive and whose leases hold) is
refused. The export folder is removed only where :func:`larvastudy.names.study_folder` finds it, directly
inside ``storage/``; it is moved aside first, so a half-removed folder never looks like an export.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from larvastudy.errors import ConflictError, SpecError
from larvastudy.study import optuna_internals as internals
from larvastudy.study.claims import CLAIMS, EVENTS, RUNNING, claim_counts
from larvastudy.study.storage import (
    default_outdir,
    display_url,
    open_engine,
    open_storage,
    setup_lock,
    sqlite_path,
    storage_url,
)
from larvastudy.study.stored import Listed, list_studies, missing_study


@dataclass(frozen=True)
class Deleted:
    """What :func:`delete_study` removed: the study as it was listed, its export tables and its folder."""

    study: Listed
    tables: list[str]
    folder: Path | None

    def __str__(self) -> str:
        tables = f", tables {', '.join(self.tables)}" if self.tables else ""
        folder = f", folder {self.folder}" if self.folder else ""
        return f"deleted study {self.study.name!r} ({self.study.progress()}{tables}{folder})"


def find_study(url: str, name: str) -> Listed:
    """Study ``name`` of the existing storage ``url`` as :func:`list_studies` lists it; a SpecError if none."""
    engine = open_engine(url)
    try:
        found = [s for s in list_studies(engine) if s.name == name]
        if not found:
            raise missing_study(engine, name)
        return found[0]
    finally:
        engine.dispose()


def replace_study(url: str, name: str) -> Deleted | None:
    """Delete study ``name`` of ``url`` as :func:`delete_study` does if the storage has one (a run's ``replace``)."""
    engine = open_engine(url)
    try:
        exists = any(s.name == name for s in list_studies(engine))
    finally:
        engine.dispose()
    return delete_study(url, name) if exists else None


def delete_study(storage: str | os.PathLike[str] | None, name: str) -> Deleted:
    """Delete study ``name`` of ``storage`` (default: see :func:`storage_url`) and everything of it (see the
    module). Nothing is changed, and a SpecError says so, if there is no such study; a ConflictError if live
    processes are running it."""
    url = storage_url(storage)
    rdb = open_storage(url, create=False)
    try:
        with setup_lock(url):  # no run sets a study up meanwhile
            study = find_study(url, name)
            _check_idle(url, study)
            tables = _delete_rows(rdb.engine, study, url)
    finally:
        rdb.engine.dispose()
    return Deleted(study, tables, _remove_folder(name))


def _check_idle(url: str, study: Listed) -> None:
    """A ConflictError if live processes hold running claims of ``study``."""
    engine = open_engine(url)
    try:
        running = claim_counts(engine, study.study_id)[RUNNING]
    finally:
        engine.dispose()
    if running:
        raise ConflictError(f"study {study.name!r} in {display_url(url)} is being run: {running} simulations "
                            "are claimed by live processes; stop its runs and workers (or let them finish) first")


def _delete_rows(engine: sqlalchemy.Engine, study: Listed, url: str) -> list[str]:
    """Delete the study's rows and export tables in one transaction (SQLite: under its write lock); the tables."""
    models = internals.rdb_models()

    trials = models.TrialModel.__table__
    trial_ids = select(trials.c.trial_id).where(trials.c.study_id == study.study_id)
    with Session(engine) as session, session.begin():
        for table in reversed(models.BaseModel.metadata.sorted_tables):  # a table before those it refers to
            if "study_id" in table.c:
                session.execute(delete(table).where(table.c.study_id == study.study_id))
            elif "trial_id" in table.c:
                session.execute(delete(table).where(table.c.trial_id.in_(trial_ids)))
        inspector = sqlalchemy.inspect(session.connection())
        for table in (CLAIMS, EVENTS):
            if inspector.has_table(table.name):
                session.execute(delete(table).where(table.c.study_id == study.study_id))
        return _drop_tables(session, study) if sqlite_path(url) is not None else []


def _drop_tables(session: Session, study: Listed) -> list[str]:
    from larvastudy.export.tables import quote, tables_of

    con = session.connection()
    existing = con.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
    studies = {**dict(con.exec_driver_sql("SELECT study_name, study_id FROM studies").all()),
               study.name: study.study_id}
    tables = tables_of(study.name, studies, existing)
    for table in tables:
        con.exec_driver_sql(f"DROP TABLE {quote(table)}")
    return tables


def _remove_folder(name: str) -> Path | None:
    """Remove ``storage/<study>/`` if it is a study folder there; the folder removed, or None."""
    try:
        folder = default_outdir(name)
    except SpecError:  # not a folder directly inside storage/: not the study's to remove
        return None
    if not folder.is_dir():
        return None
    aside = folder.with_name(f".deleted-{folder.name}-{os.getpid()}")
    folder.rename(aside)
    shutil.rmtree(aside)
    return folder
