"""Bad input at every edge: each exits 2 with one line naming the field (file and line for YAML) and writes
nothing; YAML is read within limits (an alias bomb fails in milliseconds); the worker's heartbeat and the progress
watcher outlive errors that are not the input's fault."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, make_url

from benchmark_platform import catalogs, database
from benchmark_platform.cli import main
from benchmark_platform.manifests import EXAMPLE_MANIFESTS_DIR, ManifestError, load_manifest
from benchmark_platform.progress import watch_queue
from benchmark_platform.safe_yaml import MAX_YAML_BYTES, YamlInputError, load_yaml_text
from benchmark_platform.worker import _Heartbeat, _Leases
from benchmark_platform_tests.factories import DEFAULT_VERSION_KEY, seed_with_model, table_counts

LLAMA_8B = (EXAMPLE_MANIFESTS_DIR / "llama-3.1-8b.yaml").read_text()
# 9 levels of 9 aliases: 9**9 (387 million) scalars once expanded, in under 800 bytes.
ALIAS_BOMB = "\n".join(
    [LLAMA_8B.replace("metadata:\n", "metadata:\n  bomb:\n", 1).split("  license:")[0].rstrip()]
    + ['    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"    {b}: &{b} [{','.join(f'*{a}' for _ in range(9))}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    + ["  license: x", LLAMA_8B.split("  license: llama3.1\n", 1)[1]]
)


def assert_one_line_bad_input(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _replace(old: str, new: str) -> str:
    assert old in LLAMA_8B
    return LLAMA_8B.replace(old, new, 1)


def _line(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


BAD_MANIFESTS = [
    pytest.param(
        _replace("parameters: 8030261248", "parameters: 9223372036854775808"),
        ["parameters: ", "less than or equal to 9223372036854775807", f"(line {_line(LLAMA_8B, 'parameters:')})"],
        id="bigint-overflow",
    ),
    pytest.param(_replace("parameters: 8030261248", "parameters: true"), ["parameters: ", "not true/false"], id="bool"),
    pytest.param(
        _replace("num_layers: 32", "num_layers: 2147483648"),
        ["architecture_facts.num_layers: ", "less than or equal to 2147483647"],
        id="int-overflow",
    ),
    pytest.param(
        _replace("  license: llama3.1", "  license: .nan"), ["metadata: ", "nan is not a finite"], id="nan-metadata"
    ),
    pytest.param(
        _replace("baseline_accuracy: 0.694", "baseline_accuracy: .inf"),
        ["architecture_facts.baseline_accuracy: ", "finite number"],
        id="inf",
    ),
    pytest.param(
        _replace("  license: llama3.1", "  released: 2024-07-23"),
        ["metadata: ", "date is not a JSON value"],
        id="date-in-metadata",
    ),
    pytest.param(
        _replace("tags: [llama,", 'tags: ["lla\\0ma",'),
        [f"(yaml): NUL character in a value (line {_line(LLAMA_8B, 'tags:')})"],
        id="nul-escape",
    ),
    pytest.param(
        _replace("architecture: LlamaForCausalLM", "architecture: Llama\x00"), ["(yaml): malformed YAML"], id="nul-raw"
    ),
    pytest.param(
        _replace("  license: llama3.1", "  deep: " + "[" * 100_000 + "]" * 100_000),
        ["(yaml): ", "nest", f"(line {_line(LLAMA_8B, '  license:')})"],
        id="nested-100000",
    ),
    pytest.param(ALIAS_BOMB, ["(yaml): more than 100000 nodes once aliases are expanded"], id="alias-bomb"),
    pytest.param(
        _replace("hf://meta-llama/Llama-3.1-8B-Instruct", "hf://--trust-remote-code"),
        ["versions[0].artifact_uri: ", "not start with '-'", f"(line {_line(LLAMA_8B, 'artifact_uri')})"],
        id="artifact-flag",
    ),
    pytest.param(
        _replace("hf://meta-llama/Llama-3.1-8B-Instruct", "ftp://x/y"),
        ["versions[0].artifact_uri: ", "expected hf://, s3://"],
        id="artifact-scheme",
    ),
    pytest.param(
        _replace("hf://meta-llama/Llama-3.1-8B-Instruct", "'hf://a --trust-remote-code'"),
        ["versions[0].artifact_uri: ", "whitespace"],
        id="artifact-space",
    ),
    pytest.param(
        LLAMA_8B.encode().replace(b"LlamaForCausalLM", b"Llama\xffForCausalLM"),
        [f"(yaml): not UTF-8 (byte 0xff) (line {_line(LLAMA_8B, 'architecture:')})"],
        id="not-utf8",
    ),
    pytest.param(LLAMA_8B + "#" * MAX_YAML_BYTES, ["(file): larger than 1048576 bytes"], id="too-large"),
]


def test_every_bad_manifest_exits_2_with_one_line_and_writes_nothing(engine, tmp_path) -> None:
    seed_with_model(engine, "qwen2.5-7b@int4-awq")
    before = table_counts(engine)
    for case in BAD_MANIFESTS:
        content, fragments = case.values
        path = tmp_path / f"{case.id}.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        started = time.perf_counter()
        result = CliRunner().invoke(main, ["register-model", str(path)])
        elapsed = time.perf_counter() - started
        assert_one_line_bad_input(result, f"{path}: ", *fragments)
        assert table_counts(engine) == before, case.id
        assert elapsed < 2.0, f"{case.id}: refusing took {elapsed:.1f} s"


def test_the_alias_bomb_is_small_and_refused_before_it_expands() -> None:
    assert len(ALIAS_BOMB.split("  bomb:\n")[1].split("  license")[0]) < 800
    started = time.perf_counter()
    with pytest.raises(YamlInputError, match="more than 100000 nodes"):
        load_yaml_text(ALIAS_BOMB)
    assert time.perf_counter() - started < 0.5


def test_aliases_within_the_limits_still_load() -> None:
    document = load_yaml_text("base: &b {x: 1}\ncopies: [*b, *b]\n")
    assert document.data["copies"] == [{"x": 1}, {"x": 1}]


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "."])
def test_a_manifest_path_that_is_not_a_regular_file_is_refused(path: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.field == "(file)"
    assert "not a regular file" in str(caught.value) or "Is a directory" in str(caught.value)


def test_the_example_manifests_still_load() -> None:
    for path in EXAMPLE_MANIFESTS_DIR.glob("*.yaml"):
        assert load_manifest(path).versions


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed_with_model(engine)
    return engine


BAD_ARGUMENTS = [
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--lease-seconds", "inf"], "--lease-seconds"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--lease-seconds", "1e12"], "--lease-seconds"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--lease-seconds", "nan"], "not a finite number"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--simulate-seconds", "nan"], "--simulate-seconds"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--db-retry-seconds", "-inf"], "--db-retry-seconds"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--max-attempts", "99999999999"], "--max-attempts"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--max-configs", "true"], "--max-configs"),
    (["recommend", "--use-case", "chatbot", "--max-ttft-p90-ms", "nan"], "--max-ttft-p90-ms"),
    (["recommend", "--use-case", "chatbot", "--max-cost-per-mtok", "inf"], "--max-cost-per-mtok"),
    (["recommend", "--use-case", "chatbot", "--top", "1e3"], "--top"),
    (["reap-stale", "--max-preemptions", "true"], "--max-preemptions"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--max-run-minutes", "inf"], "--max-run-minutes"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--retry-base-seconds", "nan"], "--retry-base-seconds"),
    (["cancel", DEFAULT_VERSION_KEY, "--hardware", "tpu-v9"], "unknown hardware 'tpu-v9'"),
    (["progress", DEFAULT_VERSION_KEY, "--window-minutes", "nan"], "--window-minutes"),
    (["populate-matrix", "llama\x00"], "argument 2 contains a NUL character"),
    (["progress", "llama-3.1-8b@\udcff"], "argument 2 is not valid UTF-8"),
    (["emulate-server", "--port", "99999"], "--port"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--no-such-flag"], "No such option '--no-such-flag'"),
    (["report"], "Missing option '--out'"),
    (["report", "--out", "/dev/full"], "/dev/full exists and is not a regular file"),
    (["report", "--out", "/dev"], "--out"),
    (["db", "upgrade", "nonsense"], "REVISION 'nonsense'"),
    (["worker", "--model-version", DEFAULT_VERSION_KEY, "--worker-id", "w" * 300], "worker_id"),
    (["emulate-server", "--ttft-ms", "nan"], "ttft_ms"),
]


def test_every_bad_option_exits_2_with_one_line_and_writes_nothing(seeded) -> None:
    before = table_counts(seeded)
    for arguments, fragment in BAD_ARGUMENTS:
        result = CliRunner().invoke(main, arguments)
        assert_one_line_bad_input(result, fragment)
        assert table_counts(seeded) == before, arguments


def test_report_refuses_a_missing_or_unwritable_directory_in_one_line(seeded, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "absent" / "report.html")])
    assert_one_line_bad_input(result, "--out", "does not exist")
    # /proc takes no new files, whoever we are: refused up front, or when the write fails, in one line either way.
    result = CliRunner().invoke(main, ["report", "--out", "/proc/benchmark-report.html"])
    assert_one_line_bad_input(result, "/proc/benchmark-report.html")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_report_still_replaces_a_regular_file(seeded, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old")
    result = CliRunner().invoke(main, ["report", "--out", str(out), "--refresh-rankings"])  # nothing ranked yet
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>") or "<html" in out.read_text()


def test_the_heartbeat_thread_survives_an_error_that_is_not_the_databases(seeded, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="benchmark_platform.worker")
    leases = _Leases()
    leases.add([uuid.uuid4()])  # a beat with nothing held makes no round trip
    beat = _Heartbeat(seeded, "worker-x", leases, lease_seconds="not a number", interval=0.01)  # type: ignore[arg-type]
    beat.start()
    try:
        time.sleep(0.2)
        assert beat.is_alive()
    finally:
        beat.done.set()
        beat.join(5)
    failures = [record for record in caplog.records if "heartbeat failed" in record.getMessage()]
    assert len(failures) >= 2


def test_the_progress_watcher_survives_a_database_error(server_url: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="benchmark_platform.progress")
    absent = make_url(server_url).set(database=f"no_such_database_{uuid.uuid4().hex[:8]}")
    unreachable = create_engine(database.with_driver(absent.render_as_string(hide_password=False), "psycopg"))
    lines: list[str] = []
    with watch_queue(unreachable, uuid.uuid4(), "worker", echo=lines.append, interactive=False, poll_seconds=0.01):
        time.sleep(0.3)
        watchers = [thread for thread in threading.enumerate() if thread.name == "queue-progress"]
        assert watchers and watchers[0].is_alive()
    polls = [record for record in caplog.records if "progress poll failed" in record.getMessage()]
    assert len(polls) >= 2
    unreachable.dispose()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("cost_per_hour_usd: 0.8048", "cost_per_hour_usd: true", "expected a number, not true/false"),
        ("cost_per_hour_usd: 0.8048", "cost_per_hour_usd: .nan", "finite number"),
        ("cost_per_hour_usd: 0.8048", "cost_per_hour_usd: *nowhere", "malformed YAML"),
    ],
)
def test_a_catalog_file_is_read_within_the_same_rules_and_names_the_line(tmp_path, old, new, message) -> None:
    text = catalogs.HARDWARE_FILE.read_text()
    line = _line(text, old)
    path = tmp_path / "hardware.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(catalogs.CatalogError) as caught:
        catalogs.load_hardware(path)
    assert message in str(caught.value) and f"line {line}" in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")
