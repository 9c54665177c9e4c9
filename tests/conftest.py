"""Fixtures shared by the test modules, and :func:`missing` for tests that need a tool from outside Python."""

from __future__ import annotations

import os

import pytest

from pgserver import available, temporary_postgres


def missing(reason: str) -> None:
    """Skip the calling test because a tool it needs is missing, except under ``CI=true`` (``.ci/run``, which
    installs every tool): there a missing tool fails the run, so no test passes by being skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, where .ci/run must provide it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres():
    """The URL of a throwaway PostgreSQL 15 server on 127.0.0.1, one per test module."""
    if not available():
        missing("needs PostgreSQL server binaries and psycopg (pip install -e '.[postgres]')")
    with temporary_postgres() as url:
        yield url
