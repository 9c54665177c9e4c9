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


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (in functions and under ``TYPE_CHECKING`` too), by its full
    name: ``from larvastudy.engine import setup`` imports the module ``larvastudy.engine.setup``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if _is_module(full) else node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def _is_module(name: str) -> bool:
    """Whether ``name`` is a larvastudy module or package (not a name defined in one)."""
    path = ROOT.joinpath(*name.split("."))
    return name.startswith("larvastudy.") and (path.with_suffix(".py").is_file() or path.is_dir())


def _imported_modules(package: str) -> dict[str, set[str]]:
    """The modules of other larvastudy packages and the top-level modules each module of ``package`` imports,
    without the ``larvastudy.`` prefix (``engine``, ``engine.metrics``), by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "larvastudy" / package).rglob("*.py")):
        inside = {m.removeprefix("larvastudy.") for m in _imports(path) if m.startswith("larvastudy.")}
        found[path.relative_to(ROOT).as_posix()] = {m for m in inside if m.split(".")[0] != package}
    return found


def _allows(entries: list[str], module: str) -> bool:
    """Whether an entry of the table's last column allows ``module``: a package or module with everything below
    it (``engine``, ``engine.metrics``), or, written ``larvastudy.engine``, that package's public API alone."""
    for entry in entries:
        if entry.startswith("larvastudy."):
            if module == entry.removeprefix("larvastudy."):
                return True
        elif module == entry or module.startswith(f"{entry}."):
            return True
    return False


def _table() -> dict[str, str]:
    """docs/architecture.md's package table: each package's last column ("imports from larvastudy")."""
    rows = re.findall(r"^\| `(\w+)/` \|.*\| (.*) \|$", (ROOT / "docs" / "architecture.md").read_text(), re.M)
    assert len(rows) >= 6, "the package table of docs/architecture.md"
    return dict(rows)


def test_packages_import_only_what_docs_architecture_allows() -> None:
    """The table of docs/architecture.md ("imports from larvastudy") is the rule, so it and the code agree."""
    for package, allowed_text in _table().items():
        entries = re.findall(r"`([\w.]+)`", allowed_text)
        for module, imported in _imported_modules(package).items():
            refused = sorted(m for m in imported if not _allows(entries, m))
            assert not refused, f"{module} imports {refused}; docs/architecture.md allows {package}/ {entries}"


def test_the_import_rule_reads_the_table_as_documented() -> None:
    assert _allows(["engine"], "engine") and _allows(["engine"], "engine.setup")
    assert _allows(["engine.metrics"], "engine.metrics") and not _allows(["engine.metrics"], "engine.setup")
    assert _allows(["larvastudy.engine"], "engine") and not _allows(["larvastudy.engine"], "engine.setup")
    assert _is_module("larvastudy.engine.setup") and not _is_module("larvastudy.engine.check_config")


def test_definition_is_pure() -> None:
    """definition/ imports no Optuna anywhere (not lazily, not for types) and the engine only through
    ``larvastudy.engine``: study/distributions maps a space onto Optuna, engine/__init__ exports check_config."""
    assert "larvastudy.engine" in _table()["definition"] and "never Optuna" in _table()["definition"]
    for path in sorted((ROOT / "larvastudy" / "definition").rglob("*.py")):
        where, imported = path.relative_to(ROOT).as_posix(), _imports(path)
        assert not any(m.split(".")[0] == "optuna" for m in imported), f"{where} imports Optuna"
        engine = {m for m in imported if m.split(".")[:2] == ["larvastudy", "engine"]}
        assert engine <= {"larvastudy.engine"}, f"{where} imports the engine's internals {sorted(engine)}"
        assert not re.search(r"import_module|__import__", path.read_text()), f"{where} imports by name"
