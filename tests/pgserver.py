"""A throwaway PostgreSQL server in a temporary folder: test infrastructure, not part of the package.

Used by the ``postgres`` fixture (tests/conftest.py) and by bench/bench_bookkeeping.py, which loads this
file by its path."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Where Debian's postgresql-15 package puts the server binaries (override with ``$LARVASTUDY_PG_BIN``).
PG_BIN = Path(os.environ.get("LARVASTUDY_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    """Whether the server binaries and a PostgreSQL driver are installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return (PG_BIN / "initdb").exists()


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a PostgreSQL server on 127.0.0.1 (a free port) in a temporary folder; yield its URL; stop it
    and delete the folder. The server refuses to run as root: as root it runs as user ``postgres``."""
    folder = Path(tempfile.mkdtemp(prefix="larvastudy-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(PG_BIN / tool), *args], check=True, capture_output=True, text=True)

    try:
        pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust")
        pg("pg_ctl", "-D", str(data), "-w", "-l", str(folder / "server.log"),
           "-o", f"-k {sock} -p {port} -h 127.0.0.1", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
