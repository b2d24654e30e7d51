"""Connections to the platform's PostgreSQL: the configured URL, or an embedded server started on demand.

Every process that uses the same ``BENCHMARK_PLATFORM_HOME`` shares one embedded server; its data directory survives
restarts. pgserver lists the PIDs of the processes holding the server in ``pgdata/.handle_pids.json`` and stops the
server when the last one exits normally. A holder killed with SIGKILL never removes its PID, which used to keep the
server running forever: each platform process drops the PIDs of processes that no longer run just before it releases
the server at exit (see ``forget_dead_holders``), so the last live holder stops it.
"""

from __future__ import annotations

import atexit
import json
import threading
import warnings
from pathlib import Path

import psutil
from sqlalchemy import Engine, create_engine, make_url

from benchmark_platform import settings

_lock = threading.Lock()
_embedded_servers: dict[Path, object] = {}


def import_pgserver():
    # pgserver asks platformdirs for a runtime folder at import; where XDG_RUNTIME_DIR is unset (containers, CI)
    # that warns about the /tmp fallback, which is what we want anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        try:
            import pgserver
        except ImportError as error:
            raise RuntimeError(
                "no database: set BENCHMARK_PLATFORM_DATABASE_URL, or install the embedded PostgreSQL with "
                "pip install 'benchmark-platform[embedded]'"
            ) from error
    return pgserver


HOLDERS_FILE = ".handle_pids.json"  # pgserver's list of the processes holding an embedded server


def forget_dead_holders(pgdata: Path) -> list[int]:
    """Drop from pgserver's holder list the PIDs of processes that no longer run (or are zombies); return them.

    Done under pgserver's own inter-process lock, the one it takes to add and remove holders."""
    holders_file = pgdata / HOLDERS_FILE
    with import_pgserver().postgres_server.PostgresServer._lock:
        if not holders_file.exists():
            return []
        holders = json.loads(holders_file.read_text())
        alive = [pid for pid in holders if _process_runs(pid)]
        if alive != holders:
            holders_file.write_text(json.dumps(alive))
    return [pid for pid in holders if pid not in alive]


def _process_runs(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _embedded_url(pgdata: Path) -> str:
    pgserver = import_pgserver()
    with _lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            # atexit runs handlers last-in first-out: this one runs just before pgserver's own release of the server.
            atexit.register(forget_dead_holders, pgdata)
            _embedded_servers[pgdata] = server
    return server.get_uri()


def database_url() -> str:
    """The raw PostgreSQL URL of the platform's database (starting the embedded server if needed)."""
    url = settings.configured_database_url()
    if url:
        return url
    return _embedded_url(settings.platform_home() / "pgdata")


def with_driver(url: str, driver: str) -> str:
    """Return ``url`` with the given SQLAlchemy driver (``psycopg`` for us, ``psycopg2`` for Dagster's storage)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"benchmark-platform needs PostgreSQL, got a {parsed.get_backend_name()!r} URL")
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


_engines: dict[tuple[str, int], Engine] = {}


def _engine_for(url: str, pool_size: int) -> Engine:
    with _lock:
        engine = _engines.get((url, pool_size))
        if engine is None:
            engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                # Dates the database computes (benchmark_date = CURRENT_DATE) are UTC days, like the daily partitions.
                connect_args={"options": "-c timezone=UTC"},
            )
            _engines[(url, pool_size)] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection this process opened (tests switch databases between cases)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def get_engine(url: str | None = None, *, pool_size: int = 5, migrate: bool = True) -> Engine:
    """A pooled engine on the platform database; on first use an empty database is upgraded to head."""
    engine = _engine_for(with_driver(url or database_url(), "psycopg"), pool_size)
    if migrate:
        from benchmark_platform.migrations import ensure_schema

        ensure_schema(engine)
    return engine
