"""The project's promises about itself: README commands are what CI runs, instance config stays in one piece."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import dagster as dg
from click.testing import CliRunner

from benchmark_platform.definitions import defs
from benchmark_platform.instance import INSTANCE_TEMPLATE

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_commands():
    commands = _readme_commands()
    assert len(commands) == 2
    assert "benchmark-platform demo" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci


def test_root_dagster_yaml_is_the_packaged_instance_config():
    assert (ROOT / "dagster.yaml").read_text() == INSTANCE_TEMPLATE.read_text()


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def _command_names(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _command_names(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_has_help_with_an_example():
    from benchmark_platform.cli import main

    for name in _command_names(main):
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert re.search(r"Examples?:\s+benchmark-platform ", result.output), f"`{name} --help` shows no example"


def test_dagster_definitions_validate_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "benchmark_platform.definitions"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_nothing_under_defs_imports_the_assembled_definitions():
    for path in (ROOT / "benchmark_platform" / "defs").glob("*.py"):
        assert "benchmark_platform.definitions" not in _imported_modules(path), f"{path.name} closes an import cycle"


_RAW_SQL = re.compile(r"\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b", re.S)


def _data_access_leaks(path: Path) -> list[str]:
    """Where a file reaches the database itself: an import of SQLAlchemy or of the ORM (so no ``select(...)``,
    ``text(...)`` or table class), a call to ``sqlalchemy.text``, or a string literal holding a SQL statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [
                f"line {node.lineno}: imports {module}"
                for module in modules
                if module.split(".")[0] == "sqlalchemy" or module == "benchmark_platform.orm"
            ]
            if isinstance(node, ast.ImportFrom) and node.module == "benchmark_platform":
                found += [f"line {node.lineno}: imports the ORM" for alias in node.names if alias.name == "orm"]
        elif isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "text") or (
                isinstance(func, ast.Attribute)
                and func.attr == "text"
                and isinstance(func.value, ast.Name)
                and func.value.id in ("sqlalchemy", "sa")
            ):
                found.append(f"line {node.lineno}: calls {ast.unparse(func)}(...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _RAW_SQL.search(node.value):
            found.append(f"line {node.lineno}: SQL in a string literal")
    return found


def test_dagster_and_cli_code_reach_the_database_only_through_named_functions():
    """``defs/`` and ``cli/`` call the queue package, the ranking store and the catalog stores (``catalogs``,
    ``manifests``); they import neither SQLAlchemy nor the ORM and hold no SQL of their own."""
    package = ROOT / "benchmark_platform"
    leaks = {
        str(path.relative_to(package)): found
        for folder in ("defs", "cli")
        for path in sorted((package / folder).glob("*.py"))
        if (found := _data_access_leaks(path))
    }
    assert not leaks, f"data access outside the stores: {leaks}"


def test_the_data_access_scan_finds_each_way_in(tmp_path):
    """The scan above would see the database coming back: an import, a call, a statement in a string."""
    cases = {
        "from sqlalchemy import text\n": "imports sqlalchemy",
        "from sqlalchemy import select\nselect(1)\n": "imports sqlalchemy",
        "import sqlalchemy.orm\n": "imports sqlalchemy.orm",
        "from benchmark_platform.orm import Model\n": "imports benchmark_platform.orm",
        "from benchmark_platform import orm\n": "imports the ORM",
        "text('x')\n": "calls text(...)",
        "q = 'SELECT id FROM benchmark_configs'\n": "SQL in a string literal",
        "x = dg.MetadataValue.text('a selection from the queue')\n": None,
        "from benchmark_platform import database, queue\n": None,
    }
    for source, expected in cases.items():
        path = tmp_path / "module.py"
        path.write_text(source)
        found = _data_access_leaks(path)
        assert (expected in found[0]) if expected else not found, (source, found)


def test_no_test_module_imports_another():
    for path in (ROOT / "benchmark_platform_tests").glob("*.py"):
        imported = {module for module in _imported_modules(path) if module.startswith("benchmark_platform_tests.test")}
        assert not imported, f"{path.name} imports {imported}: shared builders belong in factories/"


def test_marks_follow_what_a_test_uses(request):
    """conftest.py marks tests by what they need; this one uses no database and starts nothing, so it has no mark,
    while the marks themselves are declared (``--strict-markers`` refuses any other)."""
    assert not [mark.name for mark in request.node.iter_markers()]
    declared = re.findall(r'^\s+"(\w+):', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared == ["database", "dagster", "subprocess", "chromium", "slow"]
