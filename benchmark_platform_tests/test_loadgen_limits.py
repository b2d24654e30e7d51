"""The load generator reads hostile servers within stated limits: endless bodies, endless lines and malformed chunks
end the request with a one-line error while the client's memory stays bounded (measured with tracemalloc, which
sees every Python allocation: httpx's buffers, ours, the parsed chunks)."""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from click.testing import CliRunner

from benchmark_platform.cli import main
from benchmark_platform.runners import RunnerError
from benchmark_platform.runners.launcher import MAX_MODELS_BODY_BYTES, served_model
from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
from benchmark_platform.runners.openai.protocol import (
    DEFAULT_MAX_LINE_BYTES,
    HARD_MAX_CONCURRENCY,
    MAX_ERROR_BODY_BYTES,
    STREAM_BYTES_BASE,
    STREAM_BYTES_PER_TOKEN,
    LoadSettings,
    send_streaming,
)

# The bound this test states and holds the client to: 1 MiB per request in flight, whatever the server sends and for
# however long. What fills it: httpcore's 64 KiB socket reads and h11's buffer, at most one SSE line
# (DEFAULT_MAX_LINE_BYTES), one parsed chunk, the connection's own objects. Measured here (print with -s): 460-740
# KiB for one request, connection set-up included; about 75 KiB more per extra request at concurrency 16.
MEMORY_BOUND_PER_REQUEST = 1024 * 1024
SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
CHUNK = 64 * 1024


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _repeat(piece: bytes) -> bytes:
    return piece * max(1, CHUNK // len(piece))


# Endless responses: a head, then one piece sent again and again until the client hangs up.
ENDLESS = {
    "/error-body": (
        b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n",
        _chunked(b"x" * CHUNK),
    ),
    "/line": (SSE + _chunked(b"data: "), _chunked(b"a" * CHUNK)),
    "/empty-chunks": (SSE, _chunked(_repeat(b'data: {"choices":[{"text":""}]}\n\n'))),
    "/comments": (SSE, _chunked(_repeat(b": keep-alive\n"))),
    "/tokens": (SSE, _chunked(_repeat(b'data: {"choices":[{"text":"a"}]}\n\n'))),
    "/no-newline": (SSE, _chunked(b"x" * CHUNK)),
    "/v1/models": (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        _chunked(b" " * CHUNK),
    ),
}
MALFORMED = {
    "/number": b"data: 123\n\n",
    "/not-json": b"data: {oops\n\n",
    "/list": b"data: [1, 2]\n\n",
    "/choices-not-list": b'data: {"choices": 5}\n\n',
    "/choice-not-object": b'data: {"choices": [7]}\n\n',
    "/text-not-string": b'data: {"choices": [{"text": 5}]}\n\n',
    "/delta-not-object": b'data: {"choices": [{"delta": "x"}]}\n\n',
    "/usage-not-count": b'data: {"choices": [{"text": "a"}], "usage": {"completion_tokens": "many"}}\n\n',
    "/usage-bool": b'data: {"choices": [{"text": "a"}], "usage": {"completion_tokens": true}}\n\n',
    "/deep": b"data: " + b"[" * 30_000 + b"\n\n",
    "/huge-int": b'data: {"usage": {"completion_tokens": ' + b"9" * 5000 + b"}}\n\n",
    "/not-utf8": b"data: \xff\xfe\n\n",
    "/gzip": None,
}
WELL_FORMED: dict[str, bytes] = {}


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        await reader.readexactly(length)
        if path in ENDLESS:
            start, piece = ENDLESS[path]
            writer.write(start)
            while True:
                writer.write(piece)
                await writer.drain()
        elif path == "/gzip":
            writer.write(
                SSE.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n") + _chunked(b"x") + b"0\r\n\r\n"
            )
        else:
            body = MALFORMED.get(path) or WELL_FORMED[path]
            writer.write(SSE + _chunked(body + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@contextmanager
def hostile_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        holder["server"] = await asyncio.start_server(_serve, "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    started.wait(5)
    server = holder["server"]
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    with hostile_server() as url:
        yield url


def _request(url: str, path: str, max_tokens: int = 16) -> tuple[str | None, int]:
    """One streaming request; its error and the most memory the request added to the client's while it ran (the
    client and its event loop, made before, are not counted)."""

    async def send() -> tuple[str | None, int]:
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            record = await send_streaming(client, path, {"model": "m", "max_tokens": max_tokens}, timeout=30)
            return record.error, tracemalloc.get_traced_memory()[1] - before

    tracemalloc.start()
    try:
        return asyncio.run(send())
    finally:
        tracemalloc.stop()


def _run_load_peak(settings: LoadSettings) -> tuple[str, int]:
    """A run's RunnerError and the client's peak traced memory during the run (clients and loop included)."""
    tracemalloc.start()
    try:
        with pytest.raises(RunnerError) as caught:
            measure_profile(settings, ProfileSettings(concurrency=settings.concurrency, sample_server_metrics=False))
        return str(caught.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/error-body", "HTTP 500: xxx"),
        ("/line", f"stream line longer than {DEFAULT_MAX_LINE_BYTES} bytes"),
        ("/no-newline", f"stream line longer than {DEFAULT_MAX_LINE_BYTES} bytes"),
        ("/empty-chunks", "response larger than"),
        ("/comments", "response larger than"),
        ("/tokens", "more content chunks than the 16 tokens requested"),
    ],
)
def test_an_endless_response_ends_the_request_within_the_memory_bound(hostile_url, path, message):
    error, peak = _request(hostile_url, path)
    print(f"{path}: peak {peak / 1024:.0f} KiB (bound {MEMORY_BOUND_PER_REQUEST / 1024:.0f} KiB)")
    assert error is not None and error.startswith(message), error
    assert "\n" not in error
    assert peak < MEMORY_BOUND_PER_REQUEST
    if path == "/error-body":
        assert len(error) < MAX_ERROR_BODY_BYTES


def test_an_endless_model_list_is_a_runner_error_not_a_leak(hostile_url):
    tracemalloc.start()
    try:
        with pytest.raises(RunnerError, match="answer larger than 1048576 bytes"):
            served_model(hostile_url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_MODELS_BODY_BYTES


def test_the_response_budget_grows_with_the_tokens_requested(hostile_url):
    error, _ = _request(hostile_url, "/comments", max_tokens=200)
    assert error == f"response larger than {STREAM_BYTES_BASE + 200 * STREAM_BYTES_PER_TOKEN} bytes"


def test_many_endless_responses_at_once_stay_under_the_bound_times_concurrency(hostile_url):
    concurrency = 16
    fields = dict(base_url=hostile_url, model="m", input_tokens=8, output_tokens=16, concurrency=concurrency)
    _, fixed = _run_load_peak(LoadSettings(**fields, completions_path="/number"))  # clients, loop, tasks
    message, peak = _run_load_peak(LoadSettings(**fields, completions_path="/line"))
    print(f"{concurrency} endless lines at once: peak {peak / 1024:.0f} KiB, of which fixed {fixed / 1024:.0f} KiB")
    assert message.startswith("warm-up request failed") and "stream line longer than" in message
    assert "\n" not in message
    assert peak - fixed < concurrency * MEMORY_BOUND_PER_REQUEST


@pytest.mark.parametrize("path", sorted(MALFORMED))
def test_every_malformed_chunk_is_a_one_line_request_error(hostile_url, path):
    error, _ = _request(hostile_url, path)
    assert error is not None and "\n" not in error and len(error) < 400
    expected = (
        "compressed stream" if path == "/gzip" else ("stream line is not UTF-8" if "utf8" in path else "malformed")
    )
    assert error.startswith(expected), error


def test_bench_endpoint_reports_a_malformed_stream_as_one_line_and_exit_1(hostile_url):
    result = CliRunner().invoke(
        main,
        ["bench-endpoint", "--base-url", hostile_url, "--model", "m", "--input-tokens", "8", "--output-tokens", "4"]
        + ["--num-requests", "2"],
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "HTTP 404" not in result.stderr and result.stderr.startswith("error: warm-up request failed")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--concurrency", "100000000"], "concurrency 100000000 is above the ceiling of 1024"),
        (["--concurrency", "2000", "--max-concurrency", "1000000"], "--max-concurrency"),
        (["--request-rate", "nan"], "rate"),
        (["--timeout", "inf"], "request_timeout_seconds"),
        (["--input-tokens", str(10**30)], "input_tokens"),
        (["--warmup-requests", "100000000"], "warmup_requests 100000000 are sent at once"),
        (["--accuracy-tasks", "100000000"], "accuracy_tasks"),
    ],
)
def test_bench_endpoint_refuses_loads_it_cannot_hold(flags, message):
    base = ["bench-endpoint", "--base-url", "http://127.0.0.1:9", "--model", "m", "--input-tokens", "8"]
    result = CliRunner().invoke(main, [*base, "--output-tokens", "4", *flags])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_the_ceiling_can_be_raised_up_to_the_hard_limit():
    fields = dict(base_url="http://127.0.0.1:9", model="m", input_tokens=8, output_tokens=4)
    assert LoadSettings(**fields, concurrency=2000, max_concurrency=2000).concurrency == 2000
    with pytest.raises(ValueError, match="less than or equal"):
        LoadSettings(**fields, concurrency=10, max_concurrency=HARD_MAX_CONCURRENCY + 1)


def test_the_emulators_chunks_still_parse(hostile_url):
    """The strict shapes accept what real servers send: a chat delta with a role-only first chunk and usage."""
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "hi"}}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ]
    WELL_FORMED["/chat"] = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)
    error, _ = _request(hostile_url, "/chat")
    assert error is None
