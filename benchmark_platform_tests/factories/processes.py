"""System programs a test needs, and platform commands run in processes of their own (the worker, the
emulator), so that their timing and signals are real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# --- system programs ------------------------------------------------------------------------------------------------

REQUIRE_SYSTEM_PROGRAMS_ENV = "BENCHMARK_PLATFORM_REQUIRE_SYSTEM_PROGRAMS"


def system_program(name: str, debian_package: str, why: str) -> str:
    """The path of a program a test needs. Missing, the test skips naming the package to install, so the README's
    test command passes on a bare machine; CI sets BENCHMARK_PLATFORM_REQUIRE_SYSTEM_PROGRAMS=1, which turns the
    skip into a failure so the test always runs there."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed, so {why}: run `apt-get install -y {debian_package}` (Debian's package)"
    if os.environ.get(REQUIRE_SYSTEM_PROGRAMS_ENV, "").strip() not in ("", "0"):
        pytest.fail(f"{message}; {REQUIRE_SYSTEM_PROGRAMS_ENV} is set, so it may not be skipped")
    pytest.skip(message)


def worker_command(*arguments: str) -> list[str]:
    """`benchmark-platform worker …` as this interpreter runs it (the console script's own code path)."""
    return [sys.executable, "-m", "benchmark_platform.cli", "worker", *arguments]


@contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """`emulate-server` in its own process (own GIL), so its timing does not depend on the client's load; yields
    its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from benchmark_platform.cli import main; main()", "emulate-server", "--port", "0"]
        + list(flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("emulator listening on"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
