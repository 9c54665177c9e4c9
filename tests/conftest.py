"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from larvastudy.study.pgserver import available, temporary_postgres


@pytest.fixture(scope="module")
def postgres():
    """The URL of a throwaway PostgreSQL 15 server on 127.0.0.1, one per test module."""
    if not available():
        pytest.skip("needs PostgreSQL server binaries and psycopg (pip install -e '.[postgres]')")
    with temporary_postgres() as url:
        yield url
