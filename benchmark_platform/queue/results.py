"""Results that no claim produced: a peer tool's measurement imported by ``import-results`` (``config_id`` NULL, the
configuration's dimensions given). Results of claimed configs are written by ``claims.complete_batch`` only."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, insert, select, text

from benchmark_platform.orm import BenchmarkResult


def record_imported(connection: Connection, row: dict[str, Any]) -> uuid.UUID:
    """Insert one imported result (columns of ``benchmark_results``, validated by the caller) in the caller's
    transaction, so it commits with the lookups that resolved its ids; returns its id. It names no config, so no
    config's status or fencing is touched."""
    return connection.execute(insert(BenchmarkResult).values(**row).returning(BenchmarkResult.id)).scalar_one()


# Serialises imports of public results, so two imports of one file cannot both find a key missing and insert it.
_PUBLIC_IMPORT_LOCK = 0x62705F696D706F72  # "bp_impor"


def record_public_results(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the rows (``benchmark_results`` columns, ``detailed_metrics.import_key`` set) whose import key no
    stored result has, in the caller's transaction; returns how many were inserted. Idempotent: an advisory lock
    held to the end of the transaction serialises imports, so re-importing a file adds nothing."""
    if not rows:
        return 0
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PUBLIC_IMPORT_LOCK})
    by_key = {row["detailed_metrics"]["import_key"]: row for row in rows}
    import_key = BenchmarkResult.detailed_metrics["import_key"].astext
    stored = set(connection.execute(select(import_key).where(import_key.in_(list(by_key)))).scalars())
    fresh = {key: row for key, row in by_key.items() if key not in stored}
    if fresh:
        connection.execute(insert(BenchmarkResult), list(fresh.values()))
    return len(fresh)
