"""`benchmark-platform seed` and `benchmark-platform register-model`: reference data and models into the database."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmark_platform import catalogs, database, manifests
from benchmark_platform.cli.app import fail, main


@main.command("seed")
@click.option("--json", "as_json", is_flag=True, help="Print the row counts as JSON.")
def seed_command(as_json: bool) -> None:
    """Upsert the bundled hardware, framework and use-case catalogs (safe to run again: same rows, same ids).

    \b
    Example:
      benchmark-platform seed --json
    """
    try:
        versions = catalogs.catalog_versions()
        counts = catalogs.seed(database.get_engine())
    except catalogs.CatalogError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"rows": counts, "catalog_versions": versions}))
        return
    for table, count in counts.items():
        click.echo(f"{table}: {count} rows")
    click.echo("catalog versions: " + ", ".join(f"{name} v{version}" for name, version in versions.items()))


@main.command("register-model")
@click.argument("manifest_paths", metavar="MANIFEST.yaml...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the registered version keys as a JSON list.")
def register_model_command(manifest_paths: tuple[Path, ...], as_json: bool) -> None:
    """Register models and their versions from YAML manifests and print the version keys (NAME@VERSION).

    Every manifest is validated before anything is written; one bad file (exit 2) writes nothing.
    Registering a manifest again updates it in place. It seeds nothing else: run `benchmark-platform seed` for that.

    \b
    Example:
      benchmark-platform register-model examples/models/llama-3.1-8b.yaml examples/models/qwen2.5-7b.yaml
    """
    try:
        loaded = manifests.load_manifests(manifest_paths)
    except manifests.ManifestError as exc:
        fail(str(exc))
    keys = manifests.register_models(database.get_engine(), loaded)
    if as_json:
        click.echo(json.dumps(keys))
        return
    for key in keys:
        click.echo(key)
