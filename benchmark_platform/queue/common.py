"""What every part of the queue shares: the defaults of its guarantees and the transaction every statement runs in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from benchmark_platform.orm import version_key_sql

DEFAULT_LEASE_SECONDS = 600.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_PREEMPTIONS = 5
DEFAULT_RETRY_BASE_SECONDS = 30.0
DEFAULT_RETRY_MAX_SECONDS = 900.0
DEFAULT_MAX_RUN_SECONDS = 7200.0
DEFAULT_THROUGHPUT_WINDOW_MINUTES = 15.0
ERROR_MESSAGE_LIMIT = 1000
VERSION_KEY = version_key_sql()  # over tables aliased m (models) and v (model_versions)


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """One transaction: on an Engine, a pooled connection's (committed at the end); on a caller's Connection, its own
    (committed at the end; in autocommit mode, as a worker holds it, each statement commits by itself: one round trip
    per statement, no pool checkout or pre-ping)."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
        return
    try:
        yield bind
    except BaseException:
        bind.rollback()
        raise
    bind.commit()
