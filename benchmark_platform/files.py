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
import math
import os
import select
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 16 << 20  # a peer tool's results file, or a trace of about 200,000 requests
MAX_JSON_OBJECTS = 200_000  # a GuideLLM file with per-request detail for 20,000 requests; each costs about 400 bytes
READ_TIMEOUT_SECONDS = 10.0
MAX_JSON_DEPTH = 64
_CHUNK = 1 << 16
STDIN = "-"


class FileInputError(ValueError):
    """An input file that cannot be read within the rules above: ``where`` (its path, or a line of it), ``reason``
    and, when known, the 1-based ``line``; the message joins them."""

    def __init__(self, where: str, reason: str, line: int | None = None) -> None:
        self.where, self.reason, self.line = where, reason, line
        super().__init__(f"{where}: {reason}" + (f" (line {line})" if line else ""))


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


def _read_descriptor(descriptor: int, label: str, max_bytes: int, timeout: float, wait: bool) -> bytes:
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FileInputError(label, f"not read within {timeout:g} s")
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
            raise FileInputError(label, f"larger than {max_bytes} bytes")
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
    if str(path) == STDIN:
        try:
            return _read_descriptor(sys.stdin.fileno(), "stdin", max_bytes, timeout_seconds, wait=True)
        except (AttributeError, io.UnsupportedOperation):  # a stream without a descriptor (a test's stdin)
            raw = sys.stdin.buffer.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise FileInputError("stdin", f"larger than {max_bytes} bytes") from None
            return raw
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_symlinks:
            raise FileInputError(str(path), "a symbolic link, not a regular file") from error
        raise FileInputError(str(path), f"cannot read: {error.strerror or error}") from error
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise FileInputError(str(path), f"{_kind(status.st_mode)}, not a regular file")
        if status.st_size > max_bytes:
            raise FileInputError(str(path), f"larger than {max_bytes} bytes ({status.st_size})")
        return _read_descriptor(descriptor, str(path), max_bytes, timeout_seconds, wait=False)
    except OSError as error:
        raise FileInputError(str(path), f"cannot read: {error.strerror or error}") from error
    finally:
        os.close(descriptor)


def read_text(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """``read_input`` decoded as strict UTF-8 (a byte-order mark is dropped); the error names the line."""
    raw = read_input(path, max_bytes=max_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise FileInputError(str(path), f"not UTF-8 (byte 0x{raw[error.start]:02x})", line) from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


_FLOAT_INTEGERS = range(-int(sys.float_info.max), int(sys.float_info.max) + 1)  # what float() and jsonb take
_INFINITIES = (math.inf, -math.inf)


def _check_values(document: Any) -> None:
    """No float that is NaN or infinite (``1e999`` parses to infinity), no integer beyond a double's range (a 64-bit
    seed or hash is fine: jsonb stores numbers exactly), no container deeper than MAX_JSON_DEPTH; one iterative pass,
    with no function call per value."""
    stack = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        items = value.values() if type(value) is dict else value if type(value) is list else (value,)
        for item in items:
            kind = type(item)
            if kind is float:
                if item != item or item in _INFINITIES:
                    raise ValueError(f"{item} is not a finite number")
            elif kind is int:
                if item not in _FLOAT_INTEGERS:
                    raise ValueError(f"integer {str(item)[:30]}... does not fit a double")
            elif (kind is dict or kind is list) and item is not value:
                stack.append((item, depth + 1))


def parse_json(text: str, label: str, *, max_objects: int = MAX_JSON_OBJECTS) -> Any:
    """JSON as PostgreSQL's jsonb holds it and Python's float() reads it: no NaN or infinity (``1e999`` included), no
    NUL, integers within a double's range, nested at most ``MAX_JSON_DEPTH`` deep, at most ``max_objects`` objects
    (counted as the parser builds them: what bounds the memory a file within the size limit can take); raises
    FileInputError naming ``label``."""
    if "\\u0000" in text:  # the only way a NUL reaches a JSON string: raw control characters are refused below
        raise FileInputError(label, "contains a NUL character")
    objects = 0

    def counted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        objects += 1
        if objects > max_objects:
            raise ValueError(f"more than {max_objects} objects")
        return dict(pairs)

    try:
        document = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=counted)
        _check_values(document)
        return document
    except json.JSONDecodeError as error:
        raise FileInputError(label, f"not JSON (line {error.lineno}: {error.msg})") from error
    except RecursionError as error:
        raise FileInputError(label, f"nested deeper than {MAX_JSON_DEPTH} levels") from error
    except ValueError as error:
        raise FileInputError(label, str(error)) from error


def read_json(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """One JSON document from ``read_text``, checked by ``parse_json``."""
    return parse_json(read_text(path, max_bytes=max_bytes), "stdin" if str(path) == STDIN else str(path))


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
        raise FileOutputError(f"{path} exists and is not a regular file ({_kind(mode)}); refusing to replace it")
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
