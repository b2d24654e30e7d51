"""Every failure the adversarial review of issue 23 found, one by one: unbounded reads from servers and files,
hangs on FIFOs, tracebacks on hostile values, outputs through symbolic links, duplicate YAML keys. Each is refused in
one line naming the input (exit 2), or bounded, and changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from benchmark_platform import files
from benchmark_platform.cli import main
from benchmark_platform.manifests import EXAMPLE_MANIFESTS_DIR
from benchmark_platform.runners.launcher import served_model
from benchmark_platform.runners.openai.server_metrics import (
    MAX_METRICS_BYTES,
    ServerMetricSamples,
    sample_server_metrics,
)
from benchmark_platform_tests.factories import DEFAULT_VERSION_KEY, VLLM_SERVE_RESULT, seed_with_model, table_counts

DATA = Path(__file__).parent / "data"
GUIDELLM = json.loads((DATA / "guidellm_0.8.1_benchmarks.json").read_text())  # real tool outputs (see data/README)
AIPERF = json.loads((DATA / "aiperf_0.13_profile_export_aiperf.json").read_text())
VLLM = VLLM_SERVE_RESULT


class _Endless(BaseHTTPRequestHandler):
    """Answers every GET with 200 and a body that never ends (what a broken or hostile server can do)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        chunk = b"vllm:num_requests_running 1\n" * 4096
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            return

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endless_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endless_metrics_body_ends_the_sampling_with_an_error_not_the_memory(endless_server) -> None:
    async def sample() -> ServerMetricSamples:
        samples = ServerMetricSamples()
        async with httpx.AsyncClient(base_url=endless_server) as client:
            await sample_server_metrics(client, asyncio.Event(), samples)
        return samples

    started = time.monotonic()
    samples = asyncio.run(sample())
    assert time.monotonic() - started < 6
    assert samples.samples == [] and f"larger than {MAX_METRICS_BYTES} bytes" in samples.error


def test_an_endless_models_answer_is_an_error(endless_server) -> None:
    with pytest.raises(Exception, match="larger than"):
        served_model(endless_server, timeout_seconds=5)


def test_a_slow_trickle_is_cut_at_the_read_time_limit() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
        try:
            for _ in range(100):
                connection.sendall(b"#")
                time.sleep(0.5)
        except OSError:
            pass
        connection.close()

    threading.Thread(target=trickle, daemon=True).start()

    async def sample() -> ServerMetricSamples:
        samples = ServerMetricSamples()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}") as client:
            await sample_server_metrics(client, asyncio.Event(), samples)
        return samples

    started = time.monotonic()
    samples = asyncio.run(sample())
    assert time.monotonic() - started < 8 and "TimeoutError" in samples.error
    listener.close()


# ---------------------------------------------------------------------------------------------- the CLI, one by one


def _one_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line, line
    return line


IMPORT = [
    "--model-version",
    DEFAULT_VERSION_KEY,
    "--hardware",
    "aws-l4-x1",
    "--framework",
    "vllm",
    "--batch-size",
    "16",
]
IMPORT_SHAPES = {
    "guidellm empty benchmarks": ("guidellm", {"benchmarks": []}, "benchmarks"),
    "vllm empty": ("vllm", {}, "missing"),
    "aiperf number for an object": ("aiperf", {**AIPERF, "time_to_first_token": 7}, "time_to_first_token"),
    "guidellm number for metrics": ("guidellm", {"benchmarks": [{"metrics": 1}]}, "metrics"),
    "guidellm list for an object": ("guidellm", {"benchmarks": [[1, 2]]}, "benchmarks"),
    "vllm 1e300 tokens": ("vllm", {**VLLM, "total_input_tokens": 1e300, "completed": 1e300}, ""),
    "vllm 1e300 prompt tokens": ("vllm", {**VLLM, "total_input_tokens": 1e300}, "mean prompt of 5e+297 tokens"),
    "vllm huge integer": ("vllm", {**VLLM, "total_output_tokens": 10**400}, "does not fit a double"),
    "vllm NUL in a string": ("vllm", {**VLLM, "backend": "v\x00llm"}, "NUL"),
    "aiperf string for a number": ("aiperf", {**AIPERF, "request_throughput": {"avg": "fast"}}, "request_throughput"),
    "guidellm negative": ("guidellm", {"benchmarks": [{**GUIDELLM["benchmarks"][0], "metrics": {"x": -1}}]}, ""),
    "aiperf array root": ("aiperf", [AIPERF], ""),
    "vllm null": ("vllm", None, ""),
}


@pytest.mark.parametrize("shape", sorted(IMPORT_SHAPES))
def test_import_results_refuses_every_shape_that_used_to_give_a_traceback(engine, tmp_path, shape) -> None:
    seed_with_model(engine)
    source, document, fragment = IMPORT_SHAPES[shape]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    before = table_counts(engine)
    result = CliRunner().invoke(main, ["import-results", str(path), "--format", source, *IMPORT])
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert str(path) in _one_line(result, fragment) or "--" in result.stderr
        assert table_counts(engine) == before


def test_import_results_reads_stdin_through_the_same_limits(engine) -> None:
    seed_with_model(engine)
    result = CliRunner().invoke(main, ["import-results", "-", "--format", "vllm", *IMPORT], input=json.dumps(VLLM))
    assert result.exit_code == 0 and "imported vllm result" in result.output, result.output
    result = CliRunner().invoke(main, ["import-results", "-", "--format", "vllm", *IMPORT], input="[" * 100_000)
    _one_line(result, "stdin")


def test_import_results_refuses_200000_nested_brackets_without_recursing(engine, tmp_path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    result = CliRunner().invoke(main, ["import-results", str(path), "--format", "vllm", *IMPORT])
    _one_line(result, str(path), "nested deeper than 64 levels")


@pytest.mark.parametrize(
    ("out", "fragment"),
    [("/dev/full", "a character device"), ("/proc/self/status", "cannot write"), ("{tmp}/no/such/dir/x.csv", "does "
     "not exist"), ("{tmp}", "a directory")],
)  # fmt: skip
def test_export_results_refuses_an_output_it_cannot_write_in_one_line(engine, tmp_path, out, fragment) -> None:
    out = out.format(tmp=tmp_path)
    result = CliRunner().invoke(main, ["export-results", "--out", out])
    _one_line(result, "--out", out, fragment)


@pytest.mark.parametrize("command", [["export-results"], ["report"]])
def test_an_output_through_a_symbolic_link_is_refused_and_the_target_is_kept(engine, tmp_path, command) -> None:
    seed_with_model(engine)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "out"
    link.symlink_to(target)
    result = CliRunner().invoke(main, [*command, "--out", str(link)])
    _one_line(result, "--out", str(link), "a symbolic link")
    assert target.read_text() == "keep me\n" and link.is_symlink()


def test_export_results_writes_through_the_atomic_helper(engine, tmp_path) -> None:
    seed_with_model(engine)
    out = tmp_path / "results.csv"
    out.write_text("old\n")
    result = CliRunner().invoke(main, ["export-results", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("result_id,") and [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_simulate_refuses_a_request_rate_of_1e_300_in_one_line() -> None:
    result = CliRunner().invoke(
        main,
        ["simulate", "--model-version", "llama-3.1-8b@fp16", "--hardware", "gcp-h100-sxm-x1", "--framework", "vllm",
         "--input-tokens", "10", "--output-tokens", "10", "--request-rate", "1e-300"],
    )  # fmt: skip
    _one_line(result, "--request-rate")


@pytest.mark.parametrize("url", ["http://[::1", "ftp://127.0.0.1/", "http://", "not a url"])
def test_bench_endpoint_refuses_a_broken_base_url_in_one_line(url) -> None:
    result = CliRunner().invoke(
        main, ["bench-endpoint", "--base-url", url, "--model", "m", "--input-tokens", "8", "--output-tokens", "4"]
    )
    _one_line(result, "--base-url")


def test_a_duplicate_key_in_a_manifest_is_an_error_naming_the_key_and_line(engine, tmp_path) -> None:
    text = (EXAMPLE_MANIFESTS_DIR / "qwen2.5-7b.yaml").read_text()
    assert "\nname:" in text
    path = tmp_path / "twice.yaml"
    path.write_text(f"{text}\nname: another-model\n")
    line_number = len(text.splitlines()) + 2
    before = table_counts(engine)
    result = CliRunner().invoke(main, ["register-model", str(path)])
    _one_line(result, str(path), "duplicate key 'name'", f"line {line_number}")
    assert table_counts(engine) == before


def test_read_input_refuses_what_is_not_a_regular_file_before_reading(tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "zero").symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO"), (tmp_path / "zero", "a character device"), (tmp_path, "a directory")):
        with pytest.raises(files.FileInputError, match=kind):
            files.read_input(path)
    with pytest.raises(files.FileInputError, match="a symbolic link"):
        files.read_input(tmp_path / "zero", follow_symlinks=False)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(files.FileInputError, match="larger than 100 bytes"):
        files.read_input(big, max_bytes=100)
    assert files.read_input(big) == b"x" * 101


def test_write_output_replaces_whole_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o640)
    files.write_output(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
