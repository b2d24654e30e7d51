"""How fast ``import-results --format inferencex`` records public rows, first import and re-import.

    python benchmarks/import_bench.py [--rows 10000]

Runs the CLI in a throwaway platform home (its own embedded PostgreSQL). The rows are the committed API sample's
B200 SGLang row (benchmark_platform_tests/data/inferencex) copied with its concurrency and date varied, so each copy
is a distinct measurement: a timing load, not data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "benchmark_platform_tests" / "data" / "inferencex"


def _rows(count: int) -> list[dict]:
    template = json.loads((DATA / "api_benchmarks_sample.json").read_text())[2]
    start = date(2025, 1, 1)
    return [template | {"conc": 1 + n % 512, "date": str(start + timedelta(days=n // 512))} for n in range(count)]


def _cli(home: Path, *args: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchmark_platform.cli", *args],
        check=True,
        env=os.environ | {"BENCHMARK_PLATFORM_HOME": str(home)},
        stdout=sys.stdout,
    )
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bp-import-bench-") as scratch:
        home = Path(scratch)
        rows = home / "rows.json"
        rows.write_text(json.dumps(_rows(options.rows)))
        _cli(home, "seed")
        _cli(home, "register-model", str(DATA / "deepseek-r1-manifest.yaml"))
        first = _cli(home, "import-results", str(rows), "--format", "inferencex")
        again = _cli(home, "import-results", str(rows), "--format", "inferencex")
    print(f"{options.rows} rows: first import {first:.2f} s, re-import {again:.2f} s (CLI start-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
