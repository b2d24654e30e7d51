"""The one way a command opens an input file and the one way it writes an output file.

Input (``read_input``): a regular file (a symbolic link is followed, but its target must be a regular file too) or
``-`` for stdin, opened without blocking (a FIFO never hangs the open), read in chunks up to a size limit and within
a time limit. Devices (``/dev/zero``), FIFOs, sockets and directories are refused before a byte is read.

Output (``write_output``): written to a temporary file in the target's own directory, fsynced, then renamed over the
target, so a reader sees the old file or the new one, never half of one. A target that exists must be a regular
file: devices (``/dev/full``), FIFOs, sockets and directories are refused, and so are symbolic links (policy: a link
is never followed, so ``--out link`` cannot replace the file it points to; give the real path). The directory must
exist (nothing is created). Every refusal raises ``FileInputError``/``FileOutputError`` naming the path, before
anything is written.
"""

from __future__ import annotations

import errno
import io
import json
import os
import select
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmark_platform import safe_yaml

MAX_INPUT_BYTES = 64 << 20  # a peer tool's results file or a trace of a few hundred thousand requests
READ_TIMEOUT_SECONDS = 10.0
MAX_JSON_DEPTH = 64
_CHUNK = 1 << 16
STDIN = "-"


class FileInputError(ValueError):
    """An input file that cannot be read within the rules above; the message starts with the path."""


class FileOutputError(ValueError):
    """An output path that cannot be written within the rules above; the message starts with the path."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _read_descriptor(descriptor: int, label: str, max_bytes: int, deadline: float, wait: bool) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FileInputError(f"{label}: not read within {READ_TIMEOUT_SECONDS:g} s")
        if wait and not select.select([descriptor], [], [], left)[0]:
            continue
        try:
            chunk = os.read(descriptor, min(_CHUNK, max_bytes + 1 - size))
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise FileInputError(f"{label}: larger than {max_bytes} bytes")
        chunks.append(chunk)


def read_input(
    path: str | Path,
    *,
    max_bytes: int = MAX_INPUT_BYTES,
    timeout_seconds: float = READ_TIMEOUT_SECONDS,
    follow_symlinks: bool = True,
) -> bytes:
    """The bytes of a regular file (or stdin for ``-``), at most ``max_bytes``, read within ``timeout_seconds``.
    ``follow_symlinks=False`` refuses a symbolic link itself (for files nobody named, such as spool entries)."""
    deadline = time.monotonic() + timeout_seconds
    if str(path) == STDIN:
        try:
            return _read_descriptor(sys.stdin.fileno(), "stdin", max_bytes, deadline, wait=True)
        except (AttributeError, io.UnsupportedOperation):  # a stream without a descriptor (a test's stdin)
            raw = sys.stdin.buffer.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise FileInputError(f"stdin: larger than {max_bytes} bytes") from None
            return raw
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_symlinks:
            raise FileInputError(f"{path}: a symbolic link, not a regular file") from error
        raise FileInputError(f"{path}: cannot open: {error.strerror or error}") from error
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise FileInputError(f"{path}: {_kind(status.st_mode)}, not a regular file")
        if status.st_size > max_bytes:
            raise FileInputError(f"{path}: larger than {max_bytes} bytes ({status.st_size})")
        return _read_descriptor(descriptor, str(path), max_bytes, deadline, wait=False)
    except OSError as error:
        raise FileInputError(f"{path}: cannot read: {error.strerror or error}") from error
    finally:
        os.close(descriptor)


def read_text(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """``read_input`` decoded as strict UTF-8 (a byte-order mark is dropped); the error names the line."""
    raw = read_input(path, max_bytes=max_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise FileInputError(f"{path}: not UTF-8 (byte 0x{raw[error.start]:02x} on line {line})") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def parse_json(text: str, label: str) -> Any:
    """JSON as PostgreSQL's jsonb holds it: no NaN or infinity (``1e999`` included), no NUL, integers within 64
    bits, nested at most ``MAX_JSON_DEPTH`` deep; raises FileInputError naming ``label``."""
    try:
        return safe_yaml.jsonb_value(json.loads(text, parse_constant=_refuse_constant))
    except json.JSONDecodeError as error:
        raise FileInputError(f"{label}: not JSON (line {error.lineno}: {error.msg})") from error
    except RecursionError as error:
        raise FileInputError(f"{label}: nested deeper than {MAX_JSON_DEPTH} levels") from error
    except ValueError as error:
        raise FileInputError(f"{label}: {error}") from error


def read_json(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """One JSON document from ``read_text``, checked by ``parse_json``."""
    return parse_json(read_text(path, max_bytes=max_bytes), str(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output(path: str | Path) -> Path:
    """``path`` if ``write_output`` may write it (see the module docstring); FileOutputError otherwise."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise FileOutputError(f"{path}: {error.strerror or error}") from error
    if mode is not None and not stat.S_ISREG(mode):
        raise FileOutputError(f"{path}: {_kind(mode)}; refusing to replace it (give a regular file's path)")
    parent = path.parent
    if not parent.is_dir():
        raise FileOutputError(f"{path}: directory {parent} does not exist")
    return path


def write_output(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (temporary file in its directory, fsync, rename)."""
    path = check_output(path)
    try:
        mode = os.stat(path).st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise FileOutputError(f"{path}: cannot write in {path.parent}: {error.strerror or error}") from error
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(descriptor, mode)  # mkstemp's 0600 would make a new report unreadable to others
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        reason = "the disk is full" if error.errno == errno.ENOSPC else error.strerror or str(error)
        raise FileOutputError(f"{path}: cannot write: {reason}") from error
    return path
