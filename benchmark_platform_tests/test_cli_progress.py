"""Long CLI work reports progress (plain lines when not on a terminal) and a JSON summary for scripts."""

from __future__ import annotations

import json
import os
import subprocess

from benchmark_platform import queue
from benchmark_platform.progress import ProgressReporter
from benchmark_platform_tests.factories import seed_with_model, worker_command

VERSION = "qwen2.5-7b@int4-awq"


def test_plain_progress_lines_carry_counts_and_rate():
    lines: list[str] = []
    with ProgressReporter("draining", echo=lines.append, interactive=False) as reporter:
        reporter.update(3, 10)
        reporter.update(10, 10)
    assert lines[0].strip().startswith("draining: 3/10 (30%)")
    assert lines[-1].strip().startswith("draining: 10/10 (100%)") and lines[-1].endswith("/s")


def test_worker_prints_progress_on_stderr_and_a_json_summary(engine):
    version_id = seed_with_model(engine, VERSION)
    queue.populate_matrix(engine, version_id, hardware=["gcp-l4-x1"])
    finished = subprocess.run(
        worker_command(
            "--model-version",
            VERSION,
            "--hardware",
            "gcp-l4-x1",
            "--max-configs",
            "25",
            "--no-replan",  # every config of the pool counts in the total
            "--json",
        ),
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["completed"] == 25 and summary["exit_code"] == 0 and summary["signal"] is None
    progress_lines = [line for line in finished.stderr.splitlines() if "worker on gcp-l4-x1:" in line]
    total = queue.progress(engine, version_id).total
    assert progress_lines and progress_lines[-1].strip().startswith(f"worker on gcp-l4-x1: 25/{total}")
