"""The local result spool: finished measurements that the database could not take, kept on disk until it can.

A measurement can be minutes of GPU time. When a worker cannot record one (the database stayed away longer than its
retry budget), it writes the measurement with its claim (config, worker, token) to ``$BENCHMARK_PLATFORM_HOME/spool``
as one JSON file: written to a temporary name, fsynced, renamed into place, and the folder fsynced, so a file there is
always complete. The next worker started with that home records the spool before claiming anything, fenced like any
completion: if the claim still holds, the config completes with this result; if the claim was lost meanwhile (its
lease expired and the config was rescued, or it was cancelled), the measurement is kept as an unlinked result
(``queue.record_unlinked``: ``config_id`` NULL, ``detailed_metrics.unlinked`` naming the config), shown by
``benchmark-platform progress``. A file leaves the spool only after its row is committed; replaying one is harmless.
On Kubernetes, put the platform home on a volume that outlives the pod for the spool to outlive it too.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from benchmark_platform import queue, settings
from benchmark_platform.runners.base import Measurement

log = logging.getLogger(__name__)

SPOOL_FOLDER = "spool"
UNLINKED_REASON = "claim lost while the database was unreachable; measurement recorded from the worker's spool"


def default_directory() -> Path:
    return settings.platform_home() / SPOOL_FOLDER


@dataclass(frozen=True)
class SpoolReport:
    recorded: int = 0  # completed their config, as if recorded at once
    unlinked: int = 0  # kept as unlinked results (the claim was lost)
    unrecordable: int = 0  # the config no longer exists: the file is kept, renamed *.unrecordable


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write(directory: Path, worker_id: str, held: queue.Claim | queue.ClaimToken, measurement: Measurement) -> Path:
    """Write one finished measurement durably (temporary file, fsync, rename, fsync of the folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    spool_id = uuid.uuid4().hex
    entry = {
        "spool_id": spool_id,
        "config_id": str(held.id),
        "worker_id": worker_id,
        "claimed_at": held.started_at.isoformat(),
        "measurement": measurement.model_dump(mode="json"),
    }
    temporary = directory / f".{spool_id}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(entry, stream, allow_nan=False)
        stream.flush()
        os.fsync(stream.fileno())
    final = directory / f"{spool_id}.json"
    os.replace(temporary, final)
    _fsync_directory(directory)
    return final


def entries(directory: Path) -> list[Path]:
    """Spooled measurements waiting to be recorded, oldest name first (empty when the folder does not exist)."""
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def record(engine: Engine, directory: Path) -> SpoolReport:
    """Record every spooled measurement (see the module docstring); database errors propagate, leaving the files."""
    recorded = unlinked = unrecordable = 0
    for path in entries(directory):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # recorded meanwhile by another worker sharing this home
            continue
        token = queue.ClaimToken(
            id=uuid.UUID(entry["config_id"]), started_at=datetime.fromisoformat(entry["claimed_at"])
        )
        measurement = Measurement.model_validate(entry["measurement"])
        if queue.complete(engine, token, entry["worker_id"], measurement):
            recorded += 1
        elif queue.record_unlinked(engine, token.id, measurement, spool_id=entry["spool_id"], reason=UNLINKED_REASON):
            unlinked += 1
            log.warning("spooled result of config %s kept as an unlinked result (its claim was lost)", token.id)
        else:
            unrecordable += 1
            kept = path.replace(path.with_suffix(".unrecordable"))
            log.error("spooled result %s names config %s, which no longer exists: kept as %s", path, token.id, kept)
            continue
        path.unlink(missing_ok=True)
    if recorded or unlinked or unrecordable:
        _fsync_directory(directory)
    return SpoolReport(recorded=recorded, unlinked=unlinked, unrecordable=unrecordable)
