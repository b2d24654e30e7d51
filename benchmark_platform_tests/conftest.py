"""A real PostgreSQL for every test: ``BENCHMARK_PLATFORM_DATABASE_URL`` if set, else an embedded server started
once per test session. Each test gets its own database, cloned from a template migrated to head.

Tests are marked by what they need (``pytest -m database`` runs only those that touch PostgreSQL): the marks are
derived here from the fixtures a test uses and from what its code (or its fixtures' code) starts, so no test file
declares them and none can forget to."""

from __future__ import annotations

import functools
import inspect
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from benchmark_platform import database, migrations, settings


def _admin_engine(server_url: str) -> Engine:
    return create_engine(database.with_driver(server_url, "psycopg"), isolation_level="AUTOCOMMIT")


def _with_database(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of the PostgreSQL server the tests use (external, or embedded for this session).

    The embedded server's folder is our own temporary directory, not pytest's numbered ones: pytest prunes those
    when other sessions start, which would pull the data directory from under a running server."""
    external = settings.configured_database_url()
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="bp-test-pg-") as folder:
        server = database.import_pgserver().get_server(Path(folder) / "pgdata", cleanup_mode="delete")
        yield server.get_uri()
        server.cleanup()


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    """A database migrated to head once per session (its own name, so sessions sharing a server never collide)."""
    name = f"bp_test_template_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(server_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = create_engine(database.with_driver(_with_database(server_url, name), "psycopg"))
    migrations.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def database_url(server_url: str, template_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database at the schema head; the platform (and any subprocess) is pointed at it."""
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template_database}"))
    url = _with_database(server_url, name)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    yield url
    database.dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Engine:
    return database.get_engine(database_url)


@pytest.fixture
def platform_home(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(settings.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    config.pluginmanager.register(_SlowFirstPlugin(), "slow-first")


# What each mark means, as fixtures a test uses or words its code (or its fixtures' code) contains.
_DATABASE_FIXTURES = {"server_url", "template_database", "database_url", "engine", "dagster_instance"}
_MARK_CODE = {
    "dagster": re.compile(r"\bdagster_instance\b|\bmaterialize\(|execute_in_process|execute_job|DagsterInstance"),
    "subprocess": re.compile(r"\bsubprocess\.|Popen|emulator_process|worker_command|sys\.executable"),
    "chromium": re.compile(r"system_program\(\s*\"chromium\""),
}


@functools.cache
def _source(function) -> str:
    """A function's source if it is the tests' own (fixtures of pytest and plugins are left out), read once."""
    if not (getattr(function, "__module__", "") or "").startswith("benchmark_platform_tests"):
        return ""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def _code(item: pytest.Item) -> str:
    """The source of the test function and of every fixture it uses that is defined in the tests' own package."""
    functions = [getattr(item, "obj", None)]
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        functions += [definition.func for definition in definitions]
    return "\n".join(_source(function) for function in functions if function is not None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test ``database``, ``dagster``, ``subprocess`` and ``chromium`` by what it needs (before ``-m``
    selects by those marks)."""
    for item in items:
        code = _code(item)
        if _DATABASE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.database)
        for mark, pattern in _MARK_CODE.items():
            if pattern.search(code):
                item.add_marker(getattr(pytest.mark, mark))


class _SlowFirstPlugin:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Schedule the selected ``slow`` tests first (after ``-m`` deselected what it leaves out)."""
        items[:] = _slow_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def _slow_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The order that starts every slow test at once: xdist's ``worksteal`` gives each worker a contiguous block
    (the pending tests split evenly, in order) and steals from the blocks' ends, so each block opens with its share
    of the slow tests. The other tests keep their order."""
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    ordered: list[pytest.Item] = []
    for block in range(workers):
        size = (len(items) - len(ordered)) // (workers - block)  # what worksteal sends this worker first
        opening = slow[block::workers]
        ordered += opening + rest[: max(size - len(opening), 0)]
        del rest[: max(size - len(opening), 0)]
    return ordered + rest


@pytest.fixture
def dagster_instance(database_url: str, platform_home, monkeypatch: pytest.MonkeyPatch):
    """A real Dagster instance, its storage in PostgreSQL beside the test's platform database, as `dev` sets it up."""
    import dagster as dg

    from benchmark_platform.instance import prepare_dagster_home

    for name in ("DAGSTER_HOME", settings.DAGSTER_PG_URL_ENV):  # restored after the test
        monkeypatch.setenv(name, "")
    prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        yield instance
    storage_db = make_url(os.environ[settings.DAGSTER_PG_URL_ENV]).database
    admin = _admin_engine(database_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{storage_db}" WITH (FORCE)'))
    admin.dispose()
