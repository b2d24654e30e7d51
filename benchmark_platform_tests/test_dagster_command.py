"""`benchmark-platform dagster ARGS…` runs Dagster's own CLI on the platform's instance, set up as `dev` sets it up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmark_platform import settings


def platform_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: no DAGSTER_HOME, no Dagster storage URL, only the platform's own settings."""
    hidden = ("DAGSTER_HOME", settings.DAGSTER_PG_URL_ENV)
    environment = {key: value for key, value in os.environ.items() if key not in hidden}
    command = [sys.executable, "-m", "benchmark_platform.cli", *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_dagster_instance_commands_reach_the_platform_instance(dagster_instance) -> None:
    pool = "gpu-aws-h100-sxm-x8"

    done = platform_cli("dagster", "instance", "concurrency", "set", pool, "16")

    assert done.returncode == 0, done.stderr
    assert f"Set concurrency limit for {pool} to 16." in done.stdout
    # The pool limit landed in the instance the platform's runs use (the fixture opened it as `dev` would) …
    assert dagster_instance.event_log_storage.get_concurrency_info(pool).slot_count == 16
    # … and Dagster reads it back through the same command.
    shown = platform_cli("dagster", "instance", "concurrency", "get", pool)
    assert shown.returncode == 0, shown.stderr
    assert f'"{pool}": 0 / 16 slots occupied' in shown.stdout


def test_dagster_failures_keep_dagsters_exit_status(dagster_instance) -> None:
    done = platform_cli("dagster", "instance", "no-such-command")
    assert done.returncode == 2 and "No such command 'no-such-command'" in done.stderr
