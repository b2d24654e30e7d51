"""`benchmark-platform db …`: schema migrations."""

from __future__ import annotations

import click
from alembic.util import CommandError

from benchmark_platform import database, migrations
from benchmark_platform.cli.app import fail, main


@main.group("db")
def db_group() -> None:
    """Manage the platform database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head).

    Example: benchmark-platform db upgrade
    """
    engine = database.get_engine(migrate=False)
    try:
        migrations.upgrade(engine, revision)
    except CommandError as error:  # an unknown or ambiguous revision
        fail(f"REVISION {revision!r}: {error}")
    click.echo(f"database {database.redacted(str(engine.url))} at revision {migrations.current_revision(engine)}")


@db_group.command("downgrade")
@click.argument("revision", default="base")
@click.option("--yes", is_flag=True, help="Confirm: downgrading to base drops every table and its data.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION (default: base, an empty database).

    Example: benchmark-platform db downgrade base --yes
    """
    if not yes:
        raise click.UsageError("downgrade drops data: pass --yes to confirm")
    engine = database.get_engine(migrate=False)
    try:
        migrations.downgrade(engine, revision)
    except CommandError as error:
        fail(f"REVISION {revision!r}: {error}")
    click.echo(f"database at revision {migrations.current_revision(engine) or 'base (empty)'}")


@db_group.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one this version ships.

    Example: benchmark-platform db current
    """
    engine = database.get_engine(migrate=False)
    click.echo(f"current: {migrations.current_revision(engine) or 'base (empty)'}  head: {migrations.head_revision()}")
