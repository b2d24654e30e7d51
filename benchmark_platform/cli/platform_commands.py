"""`benchmark-platform dev` and `demo`: the local Dagster instance over the platform database."""

from __future__ import annotations

import signal
import subprocess
import sys

import click

from benchmark_platform import database
from benchmark_platform.cli.app import main
from benchmark_platform.instance import prepare_dagster_home


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
    child = subprocess.Popen(command)
    # SIGTERM (a service manager, a container stop) goes to `dagster dev`, which stops its webserver and daemon;
    # then this process exits normally, so the embedded PostgreSQL is stopped too. Ctrl-C reaches both by itself.
    signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    sys.exit(child.wait())


@main.command("demo")
def demo() -> None:
    """Run the main job end to end on the local instance (embedded PostgreSQL unless a URL is set).

    It writes to the same Dagster instance as `benchmark-platform dev`, so the UI shows every materialization.

    Example: benchmark-platform demo
    """
    from benchmark_platform.demo import run_demo

    run_demo(click.echo)
