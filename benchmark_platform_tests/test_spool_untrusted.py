"""Spool entries are untrusted input: every file an attacker, a crash or a full disk can leave in the spool folder is
moved to spool/rejected/ with a one-line reason naming it, and the valid entries beside it are still recorded."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from benchmark_platform import queue, spool
from benchmark_platform.runners import Measurement
from benchmark_platform.worker import WorkerOptions, run_worker
from benchmark_platform_tests.factories import seed_with_model

MEASUREMENT = Measurement(
    **{f"{metric}_p{p}_ms": base * factor for metric, base in (("ttft", 80.0), ("tpot", 12.0))
       for p, factor in ((50, 1.0), (90, 1.2), (99, 1.5))},
    throughput_tokens_sec=900.0, rps_sustained=3.5, runner="simulated",
    detailed_metrics={"seed": 13371015894544523902},  # a uint64 seed, as the simulated runner records: jsonb takes it
)  # fmt: skip


def _signed(payload: str, key: bytes) -> bytes:
    return json.dumps({"payload": payload, "hmac_sha256": spool._signature(key, payload)}).encode()


def _plant(directory: Path, valid: Path) -> dict[str, str]:
    """One file of each hostile kind; returns name -> a fragment its reason must contain."""
    key = spool.signing_key()
    entry = json.loads(json.loads(valid.read_text())["payload"])
    planted = {**entry, "spool_id": "f" * 32, "measurement": {**entry["measurement"], "throughput_tokens_sec": 1e6}}
    files = {
        "empty.json": (b"", "not JSON"),
        "not-json.json": (b"{oops", "not JSON"),
        "latin1.json": (b'{"payload": "\xe9"}', "not UTF-8"),
        "keyless.json": (b"{}", "not a signed spool entry"),
        "nan.json": (b'{"payload": NaN, "hmac_sha256": "00"}', "NaN is not a finite number"),
        "deep.json": (b"[" * 200_000 + b"]" * 200_000, "nested deeper"),
        "nul.json": (b'{"payload": "a\\u0000b", "hmac_sha256": "00"}', "NUL"),
        "planted-unsigned.json": (json.dumps(planted).encode(), "not a signed spool entry"),
        "planted-other-key.json": (
            json.dumps({"payload": json.dumps(planted), "hmac_sha256": "0" * 64}).encode(),
            "signature does not match",
        ),
        "truncated.json": (valid.read_bytes()[:-40], "not JSON"),
        "wrong-type.json": (_signed(json.dumps({**entry, "config_id": 7}), key), "config_id"),
        "huge-number.json": (
            _signed(json.dumps(entry).replace('"rps_sustained": 3.5', '"rps_sustained": 1e999'), key),
            "not a finite number",
        ),
    }
    reasons = {}
    for name, (content, reason) in files.items():
        (directory / name).write_bytes(content)
        reasons[name] = reason
    (directory / "folder.json").mkdir()
    reasons["folder.json"] = "a directory"
    os.mkfifo(directory / "fifo.json")
    reasons["fifo.json"] = "a FIFO"
    (directory / "zero.json").symlink_to("/dev/zero")
    reasons["zero.json"] = "a symbolic link"
    (directory / "to-valid.json").symlink_to(valid)
    reasons["to-valid.json"] = "a symbolic link"
    with open(directory / "huge.json", "wb") as stream:
        stream.truncate(spool.MAX_ENTRY_BYTES + 1)
    reasons["huge.json"] = "larger than"
    return reasons


def test_every_hostile_spool_file_is_set_aside_and_the_valid_entry_is_still_recorded(engine, platform_home) -> None:
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    [held] = queue.claim(engine, "w1", limit=1)
    directory = platform_home / "spool"
    valid = spool.write(directory, "w1", held, MEASUREMENT)
    reasons = _plant(directory, valid)
    started = time.monotonic()
    report = spool.record(engine, directory)
    assert time.monotonic() - started < 10, "no file may hang or stall the worker"
    assert report == spool.SpoolReport(recorded=1, rejected=len(reasons))
    assert spool.entries(directory) == []
    rejected = directory / spool.REJECTED_FOLDER
    for name, fragment in reasons.items():
        assert os.path.lexists(rejected / name), name
        reason = (rejected / f"{name}.reason").read_text()
        assert reason.count("\n") == 1 and name in reason and fragment in reason, (name, reason)
    with engine.connect() as connection:
        results = connection.execute(text("SELECT config_id, throughput_tokens_sec FROM benchmark_results")).all()
    assert [(row.config_id, row.throughput_tokens_sec) for row in results] == [(held.id, 900.0)]  # nothing planted
    assert (rejected / "zero.json").is_symlink() and Path("/dev/zero").exists()  # the link moved, not its target


def test_the_key_is_private_to_the_platform_home_and_stable(platform_home) -> None:
    key = spool.signing_key()
    path = platform_home / spool.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert spool.signing_key() == key and len(key) == 64


def test_a_worker_facing_a_poisoned_spool_carries_on_and_drains(engine, platform_home, caplog) -> None:
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    directory = platform_home / "spool"
    directory.mkdir(parents=True)
    (directory / "poison.json").write_bytes(b"\xff\xfe not json")
    os.mkfifo(directory / "fifo.json")
    summary = run_worker(engine, WorkerOptions(model_version_id=version_id, claim_batch=50, replan_seconds=0))
    assert (summary.exit_code, summary.rejected_from_spool) == (0, 2), summary.line()
    assert "queue drained" in summary.line() and "2 rejected" in summary.line()
    assert "poison.json" in caplog.text and "fifo.json" in caplog.text
    with engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE status <> 'completed'"))
        assert left.scalar_one() == 0


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_key_file_that_is_not_a_regular_file_is_an_error_naming_it(platform_home, target) -> None:
    platform_home.mkdir(parents=True)
    path = platform_home / spool.KEY_FILE
    if target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)
    with pytest.raises(ValueError, match=spool.KEY_FILE):
        spool.signing_key()
