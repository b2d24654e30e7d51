"""The ``benchmark-platform`` command group; each topic module adds its commands to it."""

from __future__ import annotations

import sys

import click

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="benchmark-platform")
def main() -> None:
    """LLM inference benchmarking: which model version, GPU, framework and batch size is best, at what cost.

    Data lives in the PostgreSQL named by BENCHMARK_PLATFORM_DATABASE_URL, or in an embedded one under
    BENCHMARK_PLATFORM_HOME (default ./.benchmark_platform).
    """


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print a one-line error to stderr and exit with ``code`` (2 = bad input, nothing written)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
