"""``conftest.missing``: a test whose outside tool (PostgreSQL, chromium, unshare, mount) is missing skips on a
developer's machine but fails under ``CI=true``, so CI never passes by skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    for helper in ("conftest.py", "pgserver.py"):  # conftest imports pgserver
        shutil.copy(Path(__file__).with_name(helper), tmp_path)
    (tmp_path / "test_tool.py").write_text("from conftest import missing\n\n\n"
                                           "def test_tool():\n    missing('no such tool')\n")
    for ci, outcome in (("true", "1 failed"), ("", "1 skipped")):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                              cwd=tmp_path, env={**os.environ, "CI": ci}, capture_output=True, text=True, timeout=120)
        assert outcome in done.stdout, done.stdout
