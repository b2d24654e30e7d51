"""Command-line interface. Importing the topic modules registers their commands on ``main``."""

from benchmark_platform.cli import (  # noqa: F401
    catalog_commands,
    database_commands,
    platform_commands,
    queue_commands,
    recommend,
    report_commands,
    results_commands,
    runner_commands,
    simulate_command,
)
from benchmark_platform.cli.app import main

__all__ = ["main"]
