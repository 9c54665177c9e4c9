"""Where studies live: the storage URL, an RDBStorage tuned for SQLite, and the output folder.

Only a run creates storage; every other command opens an existing one (``open_storage(url, create=False)``)
and creates nothing. Problems opening a storage raise :class:`~larvastudy.errors.StorageError`, one line
naming the storage (password hidden) and the cause.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import make_url

from larvastudy.errors import StorageError
from larvastudy.names import study_folder

if sys.platform == "win32":  # no fcntl: the setup lock is the database's own (see setup_lock)
    fcntl = None
else:
    import fcntl

#: Environment variable naming the storage URL (any Optuna RDB URL, or a path to a SQLite file).
ENV_VAR = "LARVASTUDY_STORAGE"
#: Seconds a SQLite connection waits for a lock (held by a dashboard reader, a running sweep, an export) before
#: failing: the storage's connections and the export's table writes alike.
BUSY_TIMEOUT = 60.0
#: Seconds PostgreSQL lets a session sit idle inside a transaction before ending it (see open_storage).
IDLE_TRANSACTION_LIMIT = 5.0
#: PostgreSQL advisory lock key of :func:`setup_lock` (any constant; "larv" in ASCII).
_PG_LOCK_KEY = 0x6C617276
#: Serialises setup_lock between this process's threads; ``_held[url]`` counts its nested holds.
_THREAD_LOCK = threading.RLock()
_held: dict[str, int] = {}
#: What a message about a damaged SQLite file adds.
_DAMAGED = " (the file is damaged: check it with sqlite3 FILE 'PRAGMA integrity_check', restore it from a copy)"
#: Tables every Optuna RDB storage has.
_OPTUNA_TABLES = {"studies", "trials", "version_info"}
#: pip packages of database drivers whose module name differs from the package's.
_DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
                    "pymysql": "PyMySQL", "mysql": "mysql-connector-python"}


def storage_url(url: str | os.PathLike[str] | None = None) -> str:
    """The storage URL: ``url``, else ``$LARVASTUDY_STORAGE``, else ``storage/larvastudy.db`` here.

    A plain file path means a SQLite file; relative paths are taken from the working directory. A
    StorageError if the URL does not parse or its database driver is not installed.
    """
    url = str(url or os.environ.get(ENV_VAR) or Path("storage") / "larvastudy.db")
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    try:
        dialect = make_url(url).get_dialect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError):
        raise StorageError(f"invalid storage URL {display_url(url)!r}; use e.g. sqlite:///path/to/file.db or "
                           "postgresql://user@host/db") from None
    parsed = make_url(url)
    if (parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")) or "mode=memory" in url:
        raise StorageError(f"storage {url!r} is in memory: every result would be lost when the command ends; "
                           "give a file, e.g. --storage storage/larvastudy.db")
    try:
        dialect.import_dbapi()
    except ImportError as error:
        module = (error.name or "").partition(".")[0]
        raise StorageError(f"storage {display_url(url)} needs the database driver {module}, which is not "
                           f"installed: pip install '{_DRIVER_PACKAGES.get(module, module)}'") from None
    return url


def display_url(url: str) -> str:
    """``url`` with any password hidden, for messages (also when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def open_storage(url: str, *, create: bool = True) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``: SQLite in WAL mode with a busy timeout.

    ``create``: make what is missing (the SQLite file and its folder, Optuna's tables), under
    :func:`setup_lock`; False (every command but run): the storage must exist with Optuna's tables, and
    nothing is created, not even a folder or lock file. A StorageError if it cannot be opened.

    On PostgreSQL the server ends a session left idle inside a transaction for
    :data:`IDLE_TRANSACTION_LIMIT` seconds, so a frozen or lost machine cannot hold row locks (and stall
    every other worker) longer than that; larvastudy's transactions last milliseconds.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front
    (waiting up to the busy timeout), so a transaction that reads then writes never fails with
    "database is locked" because another process wrote in between. Several processes can then share
    one SQLite file, each committing short transactions.
    """
    if not create:
        return _open_storage(url, create=False)
    with setup_lock(url):  # RDBStorage creates missing tables: two processes must not race to do it
        return _open_storage(url, create=True)


def open_engine(url: str) -> sqlalchemy.Engine:
    """A plain SQLAlchemy engine on the existing storage ``url``, checked like ``open_storage(url,
    create=False)``: for reading RDBStorage's tables directly, without Optuna's set-up (schema version
    checks that import alembic), where a command must start fast."""
    engine_kwargs = _engine_kwargs(url, create=False)
    with _storage_errors(url):
        _check_tables(url, engine_kwargs)
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)


def _engine_kwargs(url: str, create: bool) -> dict[str, Any]:
    """SQLAlchemy engine options for ``url`` (see :func:`open_storage`), once a SQLite file is checked."""
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path, create)
    if make_url(url).get_driver_name() in ("psycopg", "psycopg2"):  # libpq: PostgreSQL
        return {"connect_args": {
            "options": f"-c idle_in_transaction_session_timeout={IDLE_TRANSACTION_LIMIT * 1000:.0f}"}}
    return {"connect_args": {"timeout": BUSY_TIMEOUT}} if path is not None else {}


def _open_storage(url: str, create: bool) -> optuna.storages.RDBStorage:
    path = sqlite_path(url)
    engine_kwargs = _engine_kwargs(url, create)
    with _storage_errors(url):
        if path is not None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
            # WAL lets readers (exporter, dashboard) work while the sweep writes; the mode is stored in
            # the file, so setting it once here covers every later connection.
            with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as con:
                con.execute("PRAGMA journal_mode=WAL")
        if not create:
            _check_tables(url, engine_kwargs)
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create)
    if path is not None:
        event.listen(rdb.engine, "connect", _no_implicit_transactions)
        event.listen(rdb.engine, "begin", _begin_immediate)
        rdb.engine.dispose()  # connections opened by RDBStorage itself predate the listeners
    return rdb


def _check_sqlite_file(path: Path, create: bool) -> None:
    """A StorageError unless ``path`` is a SQLite database file (or, to ``create`` it, missing or empty).

    The file is read through SQLite only: a plain ``open()`` and ``close()`` of a database file drops
    every POSIX lock this process's SQLite connections hold on it, and another process can then
    corrupt it (sqlite.org/howtocorrupt.html, 2.2)."""
    try:
        if path.is_dir():
            raise StorageError(f"storage {path} is a directory, not a SQLite database file")
        if not path.exists():
            if create:
                return
            raise StorageError(f"no storage at {path} (run a sweep first, or pass --storage)")
        if not path.is_file():
            raise StorageError(f"storage {path} is not a SQLite database file (not a regular file)")
        empty = path.stat().st_size == 0
    except OSError as error:
        raise StorageError(f"cannot open storage {path}: {error.strerror}") from None
    if empty:
        if create:
            return
        raise StorageError(f"storage {path} is not a SQLite database file (empty)")
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as con:
            con.execute("SELECT name, sql FROM sqlite_master").fetchall()  # reads and decodes the schema
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error):
            raise StorageError(f"storage {path} is not a SQLite database file") from None
        raise StorageError(f"cannot open storage {path}: {error}{_DAMAGED}") from None
    except UnicodeDecodeError:
        raise StorageError(f"cannot open storage {path}: its schema is not text{_DAMAGED}") from None


def _check_tables(url: str, engine_kwargs: dict[str, Any]) -> None:
    """A StorageError unless the database at ``url`` has Optuna's tables (an RDBStorage would create them)."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not tables >= _OPTUNA_TABLES:
        raise StorageError(f"storage {_name(url)} has no Optuna tables (not made by a larvastudy run; "
                           "run a sweep first, or pass --storage)")


@contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """Database and file-system errors met while opening ``url``, as one-line StorageErrors."""
    try:
        yield
    except sqlalchemy.exc.DBAPIError as error:
        raise StorageError(f"cannot open storage {_name(url)}: {_one_line(str(error.orig))}") from None
    except sqlite3.Error as error:
        raise StorageError(f"cannot open storage {_name(url)}: {error}") from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise StorageError(f"cannot open storage {_name(url)}: {error.strerror}{where}") from None


def database_error(error: BaseException, url: str) -> StorageError | None:
    """``error`` as a one-line StorageError if a database call on ``url`` raised it (or caused it: a
    damaged SQLite file shows only when the damaged page is read), else None."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (sqlite3.Error, sqlalchemy.exc.DBAPIError)):
            text = _one_line(str(getattr(cause, "orig", None) or cause))
            text = text if len(text) <= 200 else f"{text[:200]}..."
            damaged = _DAMAGED if sqlite_path(url) is not None and _looks_damaged(text) else ""
            return StorageError(f"storage {_name(url)} failed: {text}{damaged}")
        cause = cause.__cause__ or cause.__context__
    return None


def _looks_damaged(text: str) -> bool:
    return any(sign in text for sign in ("malformed", "decode", "not a database", "corrupt"))


def _name(url: str) -> str:
    """The storage in messages: a SQLite file's path, else the URL without its password."""
    path = sqlite_path(url)
    return str(path) if path is not None else display_url(url)


def _one_line(text: str) -> str:
    """A driver's message, which may span lines (libpq's does), on one line."""
    text = text.removeprefix("connection failed: ").replace("FATAL:", "")
    return "; ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _no_implicit_transactions(dbapi_connection: sqlite3.Connection, record: object) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN instead


def _begin_immediate(connection: sqlalchemy.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def default_outdir(study_name: str) -> Path:
    """The default output folder of a study: ``storage/<study>/`` under the working directory (see
    :func:`larvastudy.names.study_folder`: a SpecError unless that is a study folder inside ``storage/``)."""
    return study_folder(Path.cwd() / "storage", study_name)


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
        _check_sqlite_file(path, create=True)  # no lock file beside a directory or a file of another kind
        with ExitStack() as stack:
            with _storage_errors(url):  # only opening the lock file is a storage error, not what the caller does
                path.parent.mkdir(parents=True, exist_ok=True)
                lock = stack.enter_context(open(f"{path}.lock", "a+b"))
            fcntl.lockf(lock, fcntl.LOCK_EX)
            yield
    elif make_url(url).get_backend_name() == "postgresql":
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with _storage_errors(url):
                con = engine.connect()
            with con:
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                con.commit()
                yield
        finally:
            engine.dispose()
    else:
        yield
