"""Where studies live: the storage URL, an RDBStorage tuned for SQLite, and the output folder."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import make_url

from larvastudy.errors import SpecError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Environment variable naming the storage URL (any Optuna RDB URL, or a path to a SQLite file).
ENV_VAR = "LARVASTUDY_STORAGE"
#: Seconds a SQLite connection waits for a lock (e.g. held by a dashboard reader) before failing.
BUSY_TIMEOUT = 60.0
#: Seconds PostgreSQL lets a session sit idle inside a transaction before ending it (see open_storage).
IDLE_TRANSACTION_LIMIT = 5.0
#: PostgreSQL advisory lock key of :func:`setup_lock` (any constant; "larv" in ASCII).
_PG_LOCK_KEY = 0x6C617276
#: Serialises setup_lock between this process's threads; ``_held[url]`` counts its nested holds.
_THREAD_LOCK = threading.RLock()
_held: dict[str, int] = {}


def storage_url(url: str | os.PathLike | None = None) -> str:
    """The storage URL: ``url``, else ``$LARVASTUDY_STORAGE``, else ``storage/larvastudy.db`` here.

    A plain file path means a SQLite file; relative paths are taken from the working directory.
    """
    url = str(url or os.environ.get(ENV_VAR) or Path("storage") / "larvastudy.db")
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    try:
        make_url(url).get_dialect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError):
        raise SpecError(f"invalid storage URL {url!r}; use e.g. sqlite:///path/to/file.db or "
                        "postgresql://user@host/db") from None
    return url


def display_url(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``; a SQLite file is created with its folder, in WAL mode, with a busy timeout.

    On PostgreSQL the server ends a session left idle inside a transaction for
    :data:`IDLE_TRANSACTION_LIMIT` seconds, so a frozen or lost machine cannot hold row locks (and stall
    every other worker) longer than that; larvastudy's transactions last milliseconds.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front
    (waiting up to the busy timeout), so a transaction that reads then writes never fails with
    "database is locked" because another process wrote in between. Several processes can then share
    one SQLite file, each committing short transactions.
    """
    with setup_lock(url):  # RDBStorage creates missing tables: two processes must not race to do it
        return _open_storage(url)


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    path = sqlite_path(url)
    if make_url(url).get_driver_name() in ("psycopg", "psycopg2"):  # libpq: PostgreSQL
        limit = f"-c idle_in_transaction_session_timeout={IDLE_TRANSACTION_LIMIT * 1000:.0f}"
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"options": limit}})
    if path is None:
        return optuna.storages.RDBStorage(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (exporter, dashboard) work while the sweep writes; the mode is stored in the
    # file, so setting it once here covers every later connection.
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as con:
        con.execute("PRAGMA journal_mode=WAL")
    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": BUSY_TIMEOUT}})
    event.listen(rdb.engine, "connect", _no_implicit_transactions)
    event.listen(rdb.engine, "begin", _begin_immediate)
    rdb.engine.dispose()  # connections opened by RDBStorage itself predate the listeners
    return rdb


def _no_implicit_transactions(dbapi_connection: sqlite3.Connection, record: object) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN instead


def _begin_immediate(connection: sqlalchemy.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def default_outdir(study_name: str) -> Path:
    """The default output folder of a study: ``storage/<study>/`` under the working directory."""
    return Path.cwd() / "storage" / study_name


@contextmanager
def setup_lock(url: str) -> Iterator[None]:
    """Serialise opening a study (creating tables, the study, its claims) across processes.

    Two sweeps started at once on a new database would otherwise race to create the same tables and
    study. SQLite: a POSIX lock on ``<db>.lock``, which the kernel drops when the process dies, even
    by kill -9. PostgreSQL: a session advisory lock, dropped with the connection. Other databases are
    not guarded. Reentrant within a thread (:func:`open_storage` takes it too): a POSIX lock is the
    whole process's and an advisory lock its connection's, so a nested hold must not take them again.
    """
    with _THREAD_LOCK:
        if _held.get(url):
            _held[url] += 1
            try:
                yield
            finally:
                _held[url] -= 1
            return
        _held[url] = 1
        try:
            with _os_lock(url):
                yield
        finally:
            del _held[url]


@contextmanager
def _os_lock(url: str) -> Iterator[None]:
    path = sqlite_path(url)
    if path is not None and fcntl is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a+b") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)
            yield
    elif make_url(url).get_backend_name() == "postgresql":
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as con:
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                con.commit()
                yield
        finally:
            engine.dispose()
    else:
        yield
