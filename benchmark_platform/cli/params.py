"""Option types that refuse at the command line what the platform cannot hold: NaN and infinity, numbers beyond
what their database column or Python's clocks take, booleans as numbers. Click reports them as one-line bad input
(exit 2) before a command touches anything."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import click

from benchmark_platform import files
from benchmark_platform.safe_yaml import INT32_MAX

# Longest duration any option accepts: a day. threading's waits overflow past about 9.2e9 s; a lease, a timeout or a
# retry budget longer than a day only delays recovery.
MAX_SECONDS = 86_400.0
MAX_MINUTES = MAX_SECONDS / 60 * 365  # reaper timeouts and throughput windows: up to a year


class FiniteFloat(click.FloatRange):
    """A float in a range that is never NaN or infinite."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def finite(min: float | None = None, max: float | None = None, *, min_open: bool = False) -> FiniteFloat:
    return FiniteFloat(min=min, max=max, min_open=min_open)


class HttpUrl(click.ParamType):
    """An http(s) URL with a host that httpx can parse (``http://[::1`` is refused here, not by a traceback)."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import httpx  # only commands that take a URL pay for it

        try:
            url = httpx.URL(str(value))
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            self.fail(f"{value!r} is not a URL: {error}", param, ctx)
        if url.scheme not in ("http", "https") or not url.host:
            self.fail(f"{value!r} is not an http:// or https:// URL with a host", param, ctx)
        return str(value)


def bounded_int(min: int = 1, max: int = INT32_MAX) -> click.IntRange:
    """An integer that fits a PostgreSQL integer column (and so every loop or LIMIT it drives)."""
    return click.IntRange(min, max)


def output_file(path: Path | None) -> Path | None:
    """``path`` if ``files.write_output`` may replace it (a regular file or nothing, never through a symbolic link,
    in a directory that exists and takes a file); raises click.BadParameter otherwise, before any work is done."""
    if path is None:
        return None
    try:
        files.check_output(path)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-check-"):
            pass  # a real probe: permissions, read-only mounts and pseudo file systems all show here, for root too
    except files.FileOutputError as error:
        raise click.BadParameter(str(error)) from error
    except OSError as error:
        raise click.BadParameter(f"{path}: cannot write in {path.parent}: {error.strerror or error}") from error
    return path
