"""The OpenAI-compatible emulator, spoken to over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from benchmark_platform.runners.emulator import EmulatorSettings, running_emulator
from benchmark_platform.runners.openai.accuracy import generate_tasks

TIMEOUT = httpx.Timeout(10.0)
CLI = [sys.executable, "-c", "from benchmark_platform.cli import main; main()"]


@pytest.fixture(scope="module")
def emulator_url():
    with running_emulator(EmulatorSettings(model="tiny", eos_after_tokens=3)) as url:
        yield url


def stream_events(url: str, path: str, body: dict) -> tuple[int, list[str]]:
    with httpx.stream("POST", f"{url}{path}", json=body, timeout=TIMEOUT) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.text]
        return 200, [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]


def test_health_and_models(emulator_url):
    assert httpx.get(f"{emulator_url}/health", timeout=TIMEOUT).text == "ok"
    models = httpx.get(f"{emulator_url}/v1/models", timeout=TIMEOUT).json()
    assert models["data"][0]["id"] == "tiny"


def test_stream_honours_max_tokens_ignore_eos_and_usage(emulator_url):
    body = {"model": "tiny", "prompt": "one two three four", "max_tokens": 7, "ignore_eos": True, "stream": True}
    status, events = stream_events(emulator_url, "/v1/completions", body | {"stream_options": {"include_usage": True}})
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    texts = [chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"]]
    assert len(texts) == 7 and chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}

    _, without_usage = stream_events(emulator_url, "/v1/completions", body)
    assert all("usage" not in json.loads(event) for event in without_usage[:-1])

    _, natural_end = stream_events(emulator_url, "/v1/completions", body | {"ignore_eos": False})
    final = json.loads(natural_end[-2])["choices"][0]
    assert len(natural_end) == 3 + 1 and final["finish_reason"] == "stop"  # eos_after_tokens=3


def test_chat_stream_opens_with_an_empty_role_chunk(emulator_url):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}
    status, events = stream_events(emulator_url, "/v1/chat/completions", body | {"stream": True, "ignore_eos": True})
    assert status == 200
    deltas = [json.loads(event)["choices"][0]["delta"] for event in events[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [delta["content"] for delta in deltas[1:]] == [" tok"] * 4


def test_non_streaming_and_accuracy_answers(emulator_url):
    task = generate_tasks(2)[1]
    response = httpx.post(
        f"{emulator_url}/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": task.prompt}], "max_tokens": 16},
        timeout=TIMEOUT,
    ).json()
    assert response["choices"][0]["message"]["content"] == task.answer
    assert response["usage"]["completion_tokens"] == len(task.answer.split())


def test_accuracy_error_rate_makes_some_answers_wrong():
    with running_emulator(EmulatorSettings(accuracy_error_rate=1.0)) as url:
        task = generate_tasks(1)[0]
        text = httpx.post(
            f"{url}/v1/completions", json={"model": "emulator", "prompt": task.prompt}, timeout=TIMEOUT
        ).json()["choices"][0]["text"]
    assert text != task.answer


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("fault-http-500", "HTTP 500"),
        ("fault-malformed", "not json"),
        ("fault-truncated", "no [DONE]"),
        ("fault-error-event", "error"),
    ],
)
def test_injected_faults(emulator_url, model, expected):
    body = {"model": model, "prompt": "x", "max_tokens": 8, "ignore_eos": True, "stream": True}
    status, events = stream_events(emulator_url, "/v1/completions", body)
    if expected == "HTTP 500":
        assert status == 500
    elif expected == "not json":
        with pytest.raises(json.JSONDecodeError):
            [json.loads(event) for event in events if event != "[DONE]"]
    elif expected == "no [DONE]":
        assert status == 200 and events[-1] != "[DONE]"
    else:
        assert "error" in json.loads(events[-2])


def test_bad_requests_are_rejected(emulator_url):
    assert httpx.post(f"{emulator_url}/v1/completions", json={"model": "tiny"}, timeout=TIMEOUT).status_code == 400
    unknown = httpx.post(f"{emulator_url}/v1/completions", json={"model": "gpt-9", "prompt": "x"}, timeout=TIMEOUT)
    assert unknown.status_code == 404


def test_cli_serves_on_a_free_port_and_stops_on_sigterm():
    process = subprocess.Popen(
        [*CLI, "emulate-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert httpx.get(f"{url}/health", timeout=TIMEOUT).status_code == 200
        process.terminate()
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutting down
    finally:
        process.kill()
        process.wait(timeout=10)


def test_cli_rejects_bad_settings():
    result = subprocess.run(
        [*CLI, "emulate-server", "--error-rate", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "error_rate" in result.stderr
