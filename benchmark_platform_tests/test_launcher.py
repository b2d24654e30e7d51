"""The server launcher and the openai runner's server lifecycle, with the emulator as a real subprocess."""

from __future__ import annotations

import logging
import sys

import pytest

from benchmark_platform.runners import FrameworkFacts, RunnerError, get_runner
from benchmark_platform.runners.launcher import ServerProcess, build_launch_command, free_port
from benchmark_platform_tests.factories import CHATBOT, llama_8b, make_spec

EMULATOR = FrameworkFacts(
    name="emulator",
    version="0.1.0",
    launch_command="benchmark-platform emulate-server --model {model} --port {port} --tensor-parallel-size {tp} "
    "--max-model-len {max_model_len} --tpot-ms 1 {quantization_flag}",
    quantization_flags={"awq": "--quantization awq"},
    prefill_efficiency=1.0,
    decode_efficiency=1.0,
)
SHORT_WORKLOAD = CHATBOT.model_copy(update={"typical_output_tokens": 4, "measure_accuracy": False})


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log() -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger("test_launcher")
    logger.setLevel(logging.INFO)
    handler = Lines()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def python_server(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_launch_command_is_filled_from_the_template():
    argv = build_launch_command(EMULATOR, llama_8b("int4", 4, "awq"), 2, 8123, 4096)
    assert argv[0].endswith("benchmark-platform")
    assert argv[1:] == [
        "emulate-server",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",  # hf:// stripped
        "--port",
        "8123",
        "--tensor-parallel-size",
        "2",
        "--max-model-len",
        "4096",
        "--tpot-ms",
        "1",
        "--quantization",
        "awq",
    ]
    assert "--quantization" not in build_launch_command(EMULATOR, llama_8b(), 1, 8123, 4096)


def test_missing_executable_or_bad_template_is_a_runner_error():
    with pytest.raises(RunnerError, match="not installed"):
        build_launch_command(
            EMULATOR.model_copy(update={"launch_command": "no-such-server {port}"}), llama_8b(), 1, 1, 1
        )
    with pytest.raises(RunnerError, match="unknown placeholder"):
        build_launch_command(EMULATOR.model_copy(update={"launch_command": "vllm {gpus}"}), llama_8b(), 1, 1, 1)


def test_server_starts_healthy_streams_its_log_and_stops_on_sigterm(log):
    logger, handler = log
    port = free_port()
    argv = build_launch_command(EMULATOR, llama_8b(), 1, port, 2048)
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", logger, name="emulator")
    server.start(timeout_seconds=30)
    try:
        assert server.running
    finally:
        code = server.stop(grace_seconds=10)
    assert not server.running and code is not None
    assert any(line.startswith("[emulator] emulator listening on") for line in handler.lines)
    assert server.stop() is None  # idempotent


def test_a_server_that_ignores_sigterm_is_killed(log):
    logger, handler = log
    port = free_port()
    code = (
        "import signal, http.server\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "class Ok(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *args):\n"
        "        pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), Ok).serve_forever()\n"
    )
    server = ServerProcess(python_server(code), f"http://127.0.0.1:{port}", logger, name="stubborn")
    server.start(timeout_seconds=20)
    assert server.stop(grace_seconds=0.5) == -9
    assert any("ignored SIGTERM" in line for line in handler.lines)


def test_a_server_that_dies_during_startup_reports_its_log(log):
    logger, _ = log
    server = ServerProcess(
        python_server("print('CUDA out of memory', flush=True); raise SystemExit(3)"), "http://127.0.0.1:9", logger
    )
    with pytest.raises(RunnerError, match=r"exited with code 3 during startup; last log lines: CUDA out of memory"):
        server.start(timeout_seconds=20)
    assert not server.running


def test_a_server_that_never_gets_healthy_times_out_and_is_stopped(log):
    logger, _ = log
    server = ServerProcess(python_server("import time; time.sleep(60)"), f"http://127.0.0.1:{free_port()}", logger)
    with pytest.raises(RunnerError, match="not healthy after 0.5 s"):
        server.start(timeout_seconds=0.5)
    assert not server.running


def test_openai_runner_keeps_the_server_across_configs_of_the_same_model(log):
    logger, handler = log
    runner = get_runner("openai", num_requests=4, log=logger, startup_timeout_seconds=30, stop_grace_seconds=10)
    spec = make_spec(framework=EMULATOR, workload=SHORT_WORKLOAD, batch_size=2, sequence_length=16)
    try:
        first = runner.run(spec)
        second = runner.run(spec.model_copy(update={"batch_size": 4}))
        other_model = runner.run(spec.model_copy(update={"model": llama_8b("int4", 4, "awq")}))
    finally:
        runner.close()
    assert first.detailed_metrics["server"]["launched"] is True
    assert first.detailed_metrics["server"]["base_url"] == second.detailed_metrics["server"]["base_url"]
    assert other_model.detailed_metrics["server"]["base_url"] != first.detailed_metrics["server"]["base_url"]
    assert "--quantization" in other_model.detailed_metrics["server"]["command"]
    assert first.detailed_metrics["served_model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert second.detailed_metrics["load"]["concurrency"] == 4
    # the emulator's injected 1 ms per token, plus what a loaded machine adds to a stream's gaps (the test's point is
    # the server kept across configs, not the timing, which test_loadgen checks on an emulator of its own process)
    assert 0 < first.tpot_p50_ms < 4.0
    assert sum("starting emulator" in line for line in handler.lines) == 2
    assert sum("emulator stopped" in line for line in handler.lines) == 2
    # The emulator's latencies are injected: its numbers are labelled simulated, never measured.
    assert {first.runner, second.runner, other_model.runner} == {"simulated"}
    assert first.detailed_metrics["server"]["owned_by"] == "emulator"
    assert "emulator" in first.detailed_metrics["simulated_by"]
