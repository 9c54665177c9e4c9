"""Where studies live: the storage URL, an RDBStorage tuned for SQLite, and the output folder."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import optuna
import sqlalchemy
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
    """An RDBStorage for ``url``; a SQLite file is created with its folder, in WAL mode, with a busy timeout."""
    path = sqlite_path(url)
    engine_kwargs = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets readers (exporter, dashboard) work while the sweep writes; the mode is stored in
        # the file, so setting it once here covers every later connection.
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as con:
            con.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": BUSY_TIMEOUT}}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def default_outdir(study_name: str) -> Path:
    """The default output folder of a study: ``storage/<study>/`` under the working directory."""
    return Path.cwd() / "storage" / study_name


@contextmanager
def sweep_lock(url: str, study_name: str) -> Iterator[None]:
    """Refuse to sweep a SQLite study that another process is sweeping (two sweeps would both run
    the missing simulations). A POSIX lock on one byte of ``<db>.lock`` per study: the kernel
    releases it when the process dies, even by kill -9, and forked workers do not inherit it.
    Server databases and platforms without ``fcntl`` are not guarded.
    """
    path = sqlite_path(url)
    if path is None or fcntl is None:
        yield
        return
    offset = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:4], "big") >> 1
    with open(f"{path}.lock", "a+b") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:
            raise SpecError(f"study {study_name!r} in {display_url(url)} is being run by another process; "
                            "wait for it to finish (or use another study name)") from None
        yield
