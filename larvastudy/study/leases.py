"""What the lease tables (grid claims, fit leases) share: the database's clock in SQL, and a transaction that
is run once more on a new connection if the database dropped the first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Float
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

T = TypeVar("T")


class Clock(FunctionElement[float]):
    """The database server's clock in seconds since the epoch: leases never depend on workers' clocks."""

    type = Float()
    inherit_cache = True


@compiles(Clock, "sqlite")
def _sqlite_clock(element: Clock, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(Clock, "postgresql")
def _postgresql_clock(element: Clock, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())"


@compiles(Clock, "mysql")
def _mysql_clock(element: Clock, compiler: Any, **kw: Any) -> str:
    return "UNIX_TIMESTAMP(NOW(6))"


def transact(engine: sqlalchemy.Engine, lock: threading.Lock | threading.RLock, work: Callable[[Session], T]) -> T:
    """``work(session)`` in one transaction (under ``lock``: a heartbeat thread shares the owner's engine); run
    once more on a new connection if the database dropped this one (PostgreSQL ends a transaction left idle
    by a frozen process, see :func:`larvastudy.study.storage.open_storage`)."""
    try:
        return _transact_once(engine, lock, work)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return _transact_once(engine, lock, work)


def _transact_once(engine: sqlalchemy.Engine, lock: threading.Lock | threading.RLock,
                   work: Callable[[Session], T]) -> T:
    with lock, Session(engine) as session, session.begin():
        return work(session)
