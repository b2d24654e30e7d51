"""`benchmark-platform dev`, `dagster` and `demo`: the local Dagster instance over the platform database."""

from __future__ import annotations

import sys

import click

from benchmark_platform import database
from benchmark_platform.cli.app import main
from benchmark_platform.instance import prepare_dagster_home
from benchmark_platform.supervisor import run_until_stopped


@main.command("dev", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def dev(ctx: click.Context) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on the platform database.

    The embedded PostgreSQL starts when BENCHMARK_PLATFORM_DATABASE_URL is unset; run history lives in
    $BENCHMARK_PLATFORM_HOME/dagster, so it persists between starts. Extra arguments go to `dagster dev`.

    Example: benchmark-platform dev --port 3000
    """
    home = prepare_dagster_home()
    database.get_engine()  # migrate before the code location loads
    click.echo(f"DAGSTER_HOME={home}  platform database: {database.redacted(database.database_url())}")
    command = [sys.executable, "-m", "dagster", "dev", "-m", "benchmark_platform.definitions", *ctx.args]
    # SIGTERM, SIGINT or SIGHUP (even one ignored at start, as in a background job) stops the webserver, daemon and
    # code servers within seconds; returning then lets the embedded PostgreSQL this process started stop too.
    sys.exit(run_until_stopped(command))


@main.command(
    "dagster",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": False},
)
@click.pass_context
def dagster_cli(ctx: click.Context) -> None:
    """Run any Dagster CLI command against the platform's instance (the one `dev` and `demo` use).

    It sets DAGSTER_HOME and BENCHMARK_PLATFORM_DAGSTER_PG_URL as `dev` does and starts the embedded PostgreSQL when
    BENCHMARK_PLATFORM_DATABASE_URL is unset; the arguments go to `dagster` unchanged (`dagster instance --help`
    shows Dagster's help for that group).

    Example: benchmark-platform dagster instance concurrency set gpu-aws-h100-sxm-x8 16
    """
    prepare_dagster_home()
    database.get_engine()  # an empty database is migrated first, as for `dev`
    sys.exit(run_until_stopped([sys.executable, "-m", "dagster", *ctx.args]))


@main.command("demo")
def demo() -> None:
    """Run the main job end to end on the local instance (embedded PostgreSQL unless a URL is set).

    It writes to the same Dagster instance as `benchmark-platform dev`, so the UI shows every materialization.

    Example: benchmark-platform demo
    """
    from benchmark_platform.demo import run_demo

    run_demo(click.echo)
