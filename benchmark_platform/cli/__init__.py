"""Command-line interface. Importing the topic modules registers their commands on ``main``."""

from benchmark_platform.cli import database_commands  # noqa: F401
from benchmark_platform.cli.app import main

__all__ = ["main"]
