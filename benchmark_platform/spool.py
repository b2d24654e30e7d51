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

Entries are untrusted input: anything can land in that folder. Each is signed with HMAC-SHA256 under a key created
once per platform home (``spool.key``, mode 0600, beside the spool), and read only if it is a regular file (never
through a symbolic link, opened without blocking so a FIFO cannot hang the worker) of at most ``MAX_ENTRY_BYTES``,
whose signature matches and whose content validates as a ``SpoolEntry`` (the measurement as the same pydantic
``Measurement`` a fresh run produces, as JSON jsonb holds: finite numbers, no NUL, bounded depth). Anything else
(empty, truncated, planted, unsigned, a directory, a device, a link) is moved to ``spool/rejected/`` with a
``<name>.reason`` file holding one line that names it and says why, and the worker goes on with the other entries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine

from benchmark_platform import files, queue, settings
from benchmark_platform.runners.base import Measurement
from benchmark_platform.safe_yaml import Text

log = logging.getLogger(__name__)

SPOOL_FOLDER = "spool"
REJECTED_FOLDER = "rejected"
KEY_FILE = "spool.key"
MAX_ENTRY_BYTES = 4 << 20  # a measurement with its detail is a few kB; a run's per-request samples stay well below
UNLINKED_REASON = "claim lost while the database was unreachable; measurement recorded from the worker's spool"


def default_directory() -> Path:
    return settings.platform_home() / SPOOL_FOLDER


@dataclass(frozen=True)
class SpoolReport:
    recorded: int = 0  # completed their config, as if recorded at once
    unlinked: int = 0  # kept as unlinked results (the claim was lost)
    unrecordable: int = 0  # the config no longer exists: the file is kept, renamed *.unrecordable
    rejected: int = 0  # not a valid signed entry: moved to rejected/ with its reason


class SpoolEntry(BaseModel):
    """What a spool file holds, validated as strictly as a fresh measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spool_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    config_id: uuid.UUID
    worker_id: Annotated[Text, Field(min_length=1, max_length=200)]
    claimed_at: AwareDatetime
    measurement: Measurement


class RejectedEntry(ValueError):
    """A spool file that is not a valid signed entry; the message says why."""


def _key_path() -> Path:
    return settings.platform_home() / KEY_FILE


def signing_key() -> bytes:
    """This platform home's spool key, created on first use (0600, written whole then linked into place, so two
    workers starting together end up with the same key)."""
    path = _key_path()
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{KEY_FILE}.{uuid.uuid4().hex}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32))
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
        finally:
            temporary.unlink()
    key = files.read_input(path, max_bytes=256, follow_symlinks=False).strip()
    if len(key) < 32:
        raise files.FileInputError(str(path), "spool key shorter than 32 bytes; delete it to make a new one")
    return key


def _signature(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


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
    entry = SpoolEntry(
        spool_id=spool_id,
        config_id=held.id,
        worker_id=worker_id,
        claimed_at=held.started_at,
        measurement=measurement,
    )
    payload = json.dumps(entry.model_dump(mode="json"), allow_nan=False)
    signed = {"payload": payload, "hmac_sha256": _signature(signing_key(), payload)}
    final = files.write_output(directory / f"{spool_id}.json", json.dumps(signed).encode("utf-8"))
    _fsync_directory(directory)
    return final


def entries(directory: Path) -> list[Path]:
    """Spool files waiting to be recorded (``*.json``, whatever kind of file they are), oldest name first; empty when
    the folder does not exist."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.name.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / name for name in names if not name.startswith(".")]


def load(path: Path, key: bytes) -> SpoolEntry:
    """One spool file, checked as the module docstring says; RejectedEntry with the reason otherwise."""
    try:
        signed = files.parse_json(
            files.read_input(path, max_bytes=MAX_ENTRY_BYTES, follow_symlinks=False).decode("utf-8"), str(path)
        )
    except UnicodeDecodeError as error:
        raise RejectedEntry(f"{path}: not UTF-8") from error
    except files.FileInputError as error:
        raise RejectedEntry(str(error)) from error
    if (
        not isinstance(signed, dict)
        or set(signed) != {"payload", "hmac_sha256"}
        or not isinstance(signed["payload"], str)
    ):
        raise RejectedEntry(f"{path}: not a signed spool entry (expected an object with payload and hmac_sha256)")
    if not isinstance(signed["hmac_sha256"], str) or not hmac.compare_digest(
        signed["hmac_sha256"], _signature(key, signed["payload"])
    ):
        raise RejectedEntry(f"{path}: signature does not match this platform home's spool key (planted or altered)")
    try:
        return SpoolEntry.model_validate(files.parse_json(signed["payload"], str(path)))
    except files.FileInputError as error:
        raise RejectedEntry(str(error)) from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        raise RejectedEntry(f"{path}: {where}: {first['msg']}") from error


def _reject(path: Path, reason: str) -> None:
    """Move ``path`` (whatever it is: the link or FIFO itself, never what it points to) to ``rejected/`` beside a
    one-line ``.reason`` file, so that it is neither retried nor lost."""
    rejected = path.parent / REJECTED_FOLDER
    line = " ".join(reason.split())
    try:
        rejected.mkdir(exist_ok=True)
        target = rejected / path.name
        if os.path.lexists(target):
            target = rejected / f"{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}"
        os.replace(path, target)
        target.with_name(target.name + ".reason").write_text(line + "\n", encoding="utf-8")
    except FileNotFoundError:
        return  # taken meanwhile by another worker sharing this home
    except OSError as error:
        log.error("spool entry rejected but not moved (%s): %s", error.strerror or error, line)
        return
    log.warning("spool entry rejected, moved to %s: %s", target, line)


def record(engine: Engine, directory: Path) -> SpoolReport:
    """Record every valid spooled measurement (see the module docstring) and move every invalid one aside; database
    errors propagate, leaving the files."""
    recorded = unlinked = unrecordable = rejected = 0
    paths = entries(directory)
    key = signing_key() if paths else b""
    for path in paths:
        try:
            entry = load(path, key)
        except RejectedEntry as error:
            if not os.path.lexists(path):  # recorded meanwhile by another worker sharing this home
                continue
            rejected += 1
            _reject(path, str(error))
            continue
        token = queue.ClaimToken(id=entry.config_id, started_at=entry.claimed_at)
        measurement = entry.measurement
        if queue.complete(engine, token, entry.worker_id, measurement):
            recorded += 1
        elif queue.record_unlinked(engine, token.id, measurement, spool_id=entry.spool_id, reason=UNLINKED_REASON):
            unlinked += 1
            log.warning("spooled result of config %s kept as an unlinked result (its claim was lost)", token.id)
        else:
            unrecordable += 1
            kept = path.replace(path.with_suffix(".unrecordable"))
            log.error("spooled result %s names config %s, which no longer exists: kept as %s", path, token.id, kept)
            continue
        path.unlink(missing_ok=True)
    if recorded or unlinked or unrecordable or rejected:
        _fsync_directory(directory)
    return SpoolReport(recorded=recorded, unlinked=unlinked, unrecordable=unrecordable, rejected=rejected)
