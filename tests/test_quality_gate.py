"""The lint and type gate cannot be dropped or weakened without a failing test: ``.ci/run`` runs ruff and mypy
(under ``set -e``, unconditionally) before the README's test command, which stays its last line, and
pyproject.toml keeps mypy strict on the whole package and every ruff rule family the project chose."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest -q'
GATE = ("ruff check larvastudy tests bench", "mypy larvastudy")


def _commands() -> list[str]:
    """.ci/run's lines that run something (no comments, no blank lines)."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_ci_runs_ruff_and_mypy_before_the_readme_test_command() -> None:
    commands = _commands()
    assert "set -euo pipefail" in commands, "without errexit a failing check would not stop CI"
    assert commands[-1] == README_TEST_COMMAND
    assert README_TEST_COMMAND in (ROOT / "README.md").read_text()
    for check in GATE:
        assert check in commands, f".ci/run must run `{check}` as a line of its own (no `|| true`, no condition)"
        assert commands.index(check) < len(commands) - 1
    install = commands.index('pip install --quiet -e ".[test]"')
    assert all(install < commands.index(check) for check in GATE), "the tools come from the test extra"


def test_the_tools_are_in_the_test_extra() -> None:
    test_extra = " ".join(_pyproject()["project"]["optional-dependencies"]["test"])
    for tool in ("mypy", "ruff", "pandas-stubs", "scipy-stubs"):
        assert re.search(rf"\b{tool}\b", test_extra), tool


def test_mypy_is_strict_on_the_whole_package() -> None:
    mypy = _pyproject()["tool"]["mypy"]
    assert mypy["strict"] is True
    assert "ignore-without-code" in mypy["enable_error_code"]
    assert "exclude" not in mypy and "files" not in mypy, "`mypy larvastudy` checks every module"
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(m.startswith("larvastudy") for m in modules), f"an override weakens larvastudy: {override}"
        assert not override.get("ignore_errors"), override


def test_ruff_keeps_the_chosen_rules() -> None:
    ruff = _pyproject()["tool"]["ruff"]
    lint = ruff["lint"]
    assert set(lint["select"]) >= {"E", "F", "W", "I", "B", "UP", "SIM", "RUF", "C4", "PGH"}
    assert not lint.get("ignore") and not lint.get("per-file-ignores"), "an ignore needs its reason here"
    assert "exclude" not in ruff and "extend-exclude" not in ruff


#: Folders whose ignores may still lack a reason: none (engine/'s one ignore, on ``simulate_many``'s results, was
#: fixed instead). mypy (ignore-without-code) and ruff (PGH003) require the code everywhere regardless.
REASON_PENDING: tuple[str, ...] = ()


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    for path in sorted((ROOT / "larvastudy").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "type: ignore" not in line:
                continue
            assert re.search(r"# type: ignore\[[a-z-]+(, *[a-z-]+)*\]", line), f"{where}:{number}: no [error-code]"
            if not where.startswith(REASON_PENDING):
                assert re.search(r"# type: ignore\[[^]]+\] *(#|:|-|--)? *\w", line), (
                    f"{where}:{number}: say why after the ignore (`# type: ignore[code]  # why`)")


def test_the_package_ships_no_test_infrastructure() -> None:
    """Test servers and test libraries live under tests/ (the throwaway PostgreSQL: tests/pgserver.py)."""
    for path in sorted((ROOT / "larvastudy").rglob("*.py")):
        text = path.read_text()
        for mark in ("import pytest", "import hypothesis", "from hypothesis", "initdb", "pg_ctl"):
            assert mark not in text, f"{path.relative_to(ROOT)}: {mark!r} belongs to tests/"


def _imported_packages(package: str) -> dict[str, set[str]]:
    """The other larvastudy packages and top-level modules each module of ``package`` imports, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "larvastudy" / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = ([f"{node.module}.{alias.name}" for alias in node.names] if node.module == "larvastudy"
                           else [node.module])
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            names |= {m.split(".")[1] for m in modules if m.startswith("larvastudy.")}
        found[path.relative_to(ROOT).as_posix()] = names - {package}
    return found


def test_packages_import_only_what_docs_architecture_allows() -> None:
    """The table of docs/architecture.md ("imports from larvastudy") is the rule, so it and the code agree."""
    rows = re.findall(r"^\| `(\w+)/` \|.*\| (.*) \|$", (ROOT / "docs" / "architecture.md").read_text(), re.M)
    assert len(rows) >= 6, "the package table of docs/architecture.md"
    for package, allowed_text in rows:
        allowed = {name.split(".")[0] for name in re.findall(r"`([\w.]+)`", allowed_text)}
        for module, imported in _imported_packages(package).items():
            assert imported <= allowed, (f"{module} imports {sorted(imported - allowed)}; docs/architecture.md "
                                         f"allows {package}/ {sorted(allowed)}")
