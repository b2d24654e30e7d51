"""Shared setup for tests: the real catalogs and an example model registered in the test database, and the worker
command line."""

from __future__ import annotations

import sys
import uuid

from sqlalchemy import Engine, text

from benchmark_platform import catalogs, manifests

DEFAULT_VERSION_KEY = "llama-3.1-8b@int4-awq"


def seed_with_model(engine: Engine, version_key: str = DEFAULT_VERSION_KEY) -> uuid.UUID:
    """Seed the bundled catalogs, register the version's example manifest, and return the version's id."""
    catalogs.seed(engine)
    model_name = version_key.rpartition("@")[0]
    manifests.register_model(engine, manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{model_name}.yaml"))
    with engine.connect() as connection:
        return manifests.resolve_model_version(connection, version_key)


def hardware_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM hardware_configs WHERE name = :n"), {"n": name}).scalar_one()


def framework_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM inference_frameworks WHERE name = :n"), {"n": name}).scalar_one()


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM benchmark_configs GROUP BY status")).all()
    return {status: count for status, count in rows}


def worker_command(*arguments: str) -> list[str]:
    """`benchmark-platform worker …` as this interpreter runs it (the console script's own code path)."""
    return [sys.executable, "-m", "benchmark_platform.cli", "worker", *arguments]
