"""The project's promises about itself: README commands are what CI runs, instance config stays in one piece."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

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
