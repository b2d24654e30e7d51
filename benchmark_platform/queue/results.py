"""Results that no claim produced: a peer tool's measurement imported by ``import-results`` (``config_id`` NULL, the
configuration's dimensions given). Results of claimed configs are written by ``claims.complete_batch`` only."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, insert

from benchmark_platform.orm import BenchmarkResult


def record_imported(connection: Connection, row: dict[str, Any]) -> uuid.UUID:
    """Insert one imported result (columns of ``benchmark_results``, validated by the caller) in the caller's
    transaction, so it commits with the lookups that resolved its ids; returns its id. It names no config, so no
    config's status or fencing is touched."""
    return connection.execute(insert(BenchmarkResult).values(**row).returning(BenchmarkResult.id)).scalar_one()
