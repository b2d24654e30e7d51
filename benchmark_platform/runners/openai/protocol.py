"""The wire protocol of an OpenAI-compatible streaming server, measured as vLLM's serving benchmark does.

Per request, from the moment it goes on the wire (the client's own request building is excluded and reported
apart): TTFT = first content chunk − send; ITL = gaps between content chunks; E2E = end of stream − send;
TPOT = (E2E − TTFT) / (output tokens − 1). Output tokens come from the server's ``usage`` when it reports it
(``stream_options.include_usage``), else one per content chunk. Reading is bounded (line, body, error body, chunks).
Warm-up requests calibrate the prompt length against the server's own token count. Trials (``trial``) send the
load; ``measurement`` turns what they recorded into a ``Measurement``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark_platform.runners.base import RunnerError
from benchmark_platform.runners.openai import accuracy
from benchmark_platform.workloads import PROMPT_WORDS

PROMPT_POOL_SIZE = 64
LAG_SAMPLE_INTERVAL_SECONDS = 0.01
ACCURACY_MAX_TOKENS = 16
STOP_POLL_SECONDS = 0.05
# httpcore scans its whole pool on every request event, so one client's cost per request grows with its connection
# count (encode/httpx#3215); small pools keep the client's per-request work flat at high concurrency.
CONNECTIONS_PER_CLIENT = 16
# Requests in flight: each holds a socket and up to one SSE line in memory. The default ceiling can be raised with
# ``max_concurrency``, never past the hard one.
DEFAULT_MAX_CONCURRENCY = 1024
HARD_MAX_CONCURRENCY = 65_536
# What one response may make the client hold: an SSE line (a vLLM chunk is a few hundred bytes, with logprobs a few
# KB), an error body (only its start is kept), and a whole stream (a budget per requested token).
DEFAULT_MAX_LINE_BYTES = 64 * 1024
MAX_ERROR_BODY_BYTES = 4 * 1024
STREAM_BYTES_BASE = 64 * 1024
STREAM_BYTES_PER_TOKEN = 4 * 1024
_JSON_HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


class LoadSettings(BaseModel):
    """The endpoint and the requests' shape; ``num_requests`` or ``duration_seconds`` bounds a trial (the first
    reached wins). ``concurrency`` is the users of a closed loop, the warm-up's width and accuracy scoring's; how
    requests arrive is the profile's (``profiles.ProfileSettings``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    base_url: str = Field(description="server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is dropped)")
    replica_urls: tuple[str, ...] = Field(
        default=(),
        description="the other servers of a deployment without a shared front end (one server per replica): "
        "requests and closed-loop users are dealt round-robin over base_url and these",
    )
    model: str = Field(min_length=1)
    input_tokens: int = Field(gt=0, le=10_000_000)
    output_tokens: int = Field(ge=2, le=10_000_000, description="TPOT needs at least two output tokens")
    concurrency: int = Field(default=1, gt=0)
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, gt=0, le=HARD_MAX_CONCURRENCY)
    max_line_bytes: int = Field(default=DEFAULT_MAX_LINE_BYTES, ge=1024, le=16 * 1024 * 1024)
    num_requests: int | None = Field(default=100, gt=0, le=10_000_000)
    duration_seconds: float | None = Field(default=None, gt=0)
    warmup_requests: int | None = Field(
        default=None,
        ge=0,
        description="unmeasured requests sent together first; None = one per concurrent user, "
        "which also opens every pooled connection so the measured window sees no connection set-up",
    )
    chat: bool = False
    ignore_eos: bool = True
    include_usage: bool = True
    completions_path: str = "/v1/completions"
    chat_completions_path: str = "/v1/chat/completions"
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    max_error_fraction: float = Field(default=0.05, ge=0, le=1)
    sla_ttft_ms: float | None = Field(default=None, gt=0)
    sla_tpot_ms: float | None = Field(default=None, gt=0)
    accuracy_tasks: int = Field(
        default=0, ge=0, le=10_000, description="exact-match tasks to score after the load; 0 = none"
    )
    seed: int = 0

    @field_validator("base_url")
    @classmethod
    def _http_root(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        value = value.rstrip("/")
        return value.removesuffix("/v1")

    @field_validator("replica_urls")
    @classmethod
    def _http_roots(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cls._http_root(value) for value in values)

    @model_validator(mode="after")
    def _bounded(self) -> LoadSettings:
        if self.num_requests is None and self.duration_seconds is None:
            raise ValueError("give num_requests or duration_seconds, or the run never ends")
        if self.concurrency > self.max_concurrency:
            raise ValueError(
                f"concurrency {self.concurrency} is above the ceiling of {self.max_concurrency} requests in flight "
                f"(raise max_concurrency, up to {HARD_MAX_CONCURRENCY}, if this client machine can hold them)"
            )
        if (self.warmup_requests or 0) > self.max_concurrency:
            raise ValueError(
                f"warmup_requests {self.warmup_requests} are sent at once: at most max_concurrency "
                f"({self.max_concurrency})"
            )
        return self

    @property
    def path(self) -> str:
        return self.chat_completions_path if self.chat else self.completions_path

    @property
    def server_urls(self) -> list[str]:
        return [self.base_url, *self.replica_urls]

    def starting_at_server(self, shard: int) -> LoadSettings:
        """The same load with its servers rotated so that shard 0 goes where shard ``shard`` of the whole load goes:
        a client process holding users ``shard, shard + 1, …`` keeps each replica at its share of the users."""
        urls = self.server_urls
        first = shard % len(urls)
        rotated = urls[first:] + urls[:first]
        return self.model_copy(update={"base_url": rotated[0], "replica_urls": tuple(rotated[1:])})


class TooManyErrors(RunnerError):
    """Requests failed above the threshold (or all of them): the load was not served. A single load fails
    with it; the SLA search counts that load as a missed goal."""


# httpcore trace events that mark the request's first byte leaving for the network (a new connection, or headers
# on a kept-alive one): the clock starts there, so the client's own request building is not counted as latency.
_ON_THE_WIRE_EVENTS = frozenset({"connection.connect_tcp.started", "http11.send_request_headers.started"})


@dataclass(slots=True)
class RequestRecord:
    """One request's raw timings (perf_counter seconds): ``queued`` when the client began building it, ``sent`` when
    it went on the wire."""

    queued: float
    sent: float = 0.0
    token_times: list[float] = field(default_factory=list)
    ended: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int | None = None
    usage_reported: bool = False
    error: str | None = None
    text: str = ""
    max_tokens: int | None = None  # the output length asked for, when it differs per request (datasets)

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.sent

    @property
    def e2e(self) -> float:
        return self.ended - self.sent

    @property
    def tpot(self) -> float | None:
        return (self.e2e - self.ttft) / (self.output_tokens - 1) if self.output_tokens > 1 else None


class _Prompts:
    """Distinct prompts of a given length in words: a numbered prefix defeats prefix caching between requests."""

    def __init__(self, words: int, seed: int) -> None:
        rng = random.Random(seed)
        body_words = max(words - 1, 1)
        self._bodies = [" ".join(rng.choices(PROMPT_WORDS, k=body_words)) for _ in range(PROMPT_POOL_SIZE)]

    def __getitem__(self, index: int) -> str:
        return f"{index % 1000} {self._bodies[index % PROMPT_POOL_SIZE]}"


def request_payload(
    settings: LoadSettings, prompt: str, max_tokens: int, ignore_eos: bool, include_usage: bool
) -> dict:
    payload: dict[str, Any] = {"model": settings.model, "max_tokens": max_tokens, "temperature": 0.0, "stream": True}
    if settings.chat:
        payload["messages"] = [{"role": "user", "content": prompt}]
    else:
        payload["prompt"] = prompt
    if ignore_eos:
        payload["ignore_eos"] = True
    if include_usage:
        payload["stream_options"] = {"include_usage": True}
    return payload


class StreamError(Exception):
    """A response the client refuses to read further: malformed, or larger than its limits."""


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


async def _sse_data(response: httpx.Response, max_line_bytes: int, max_bytes: int) -> AsyncIterator[str]:
    """The ``data:`` payloads of an SSE body, reading at most ``max_bytes`` and holding at most one line of
    ``max_line_bytes``: httpx's own line reader would buffer an endless line whole."""
    encoding = response.headers.get("content-encoding", "identity").lower()
    if encoding not in ("", "identity"):
        raise StreamError(f"compressed stream ({encoding}) not accepted")
    pending = bytearray()
    received = 0
    async for piece in response.aiter_raw():
        received += len(piece)
        if received > max_bytes:
            raise StreamError(f"response larger than {max_bytes} bytes")
        pending += piece
        start = 0
        while (end := pending.find(b"\n", start)) != -1:  # one line at a time: no list of every line in a read
            if end - start > max_line_bytes:
                raise StreamError(f"stream line longer than {max_line_bytes} bytes")
            if pending.startswith(b"data:", start):  # blank separators, SSE comments and other fields carry no data
                try:
                    yield pending[start + 5 : end].decode("utf-8").strip()
                except UnicodeDecodeError as error:
                    raise StreamError("stream line is not UTF-8") from error
            start = end + 1
        del pending[:start]
        if len(pending) > max_line_bytes:
            raise StreamError(f"stream line longer than {max_line_bytes} bytes")
    if pending.startswith(b"data:"):
        raise StreamError("stream ended inside a line (truncated)")


async def _error_body(response: httpx.Response) -> str:
    """The start of an error response's body; the rest is never read."""
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    return _one_line(bytes(body[:MAX_ERROR_BODY_BYTES]).decode(errors="replace"))


def _parse_chunk(data: str) -> tuple[str | None, dict | None]:
    """One stream chunk's text (None when it carries none) and usage; StreamError for anything but the shapes the
    OpenAI API defines (a JSON object whose ``choices`` is a list of objects with string ``text`` or ``delta.content``
    and whose ``usage`` holds non-negative integer token counts)."""
    try:
        chunk = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StreamError(f"malformed stream chunk (not JSON): {_one_line(str(error), 120)}") from error
    if not isinstance(chunk, dict):
        raise StreamError(f"malformed stream chunk: expected a JSON object, got {type(chunk).__name__}")
    if "error" in chunk:
        raise StreamError(f"server error in stream: {_one_line(str(chunk['error']))}")
    text = None
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise StreamError("malformed stream chunk: choices is not a list")
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise StreamError("malformed stream chunk: choices[0] is not an object")
        if "text" in choice:
            text = choice["text"]
        else:
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise StreamError("malformed stream chunk: choices[0].delta is not an object")
            text = (delta or {}).get("content")
        if text is not None and not isinstance(text, str):
            raise StreamError("malformed stream chunk: the text is not a string")
    usage = chunk.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise StreamError("malformed stream chunk: usage is not an object")
        for name in ("completion_tokens", "prompt_tokens"):
            count = usage.get(name)
            if count is not None and (type(count) is not int or not 0 <= count <= 2**31):
                raise StreamError(f"malformed stream chunk: usage.{name} is not a token count")
    return text or None, usage or None


async def send_streaming(
    client: httpx.AsyncClient,
    path: str,
    payload: dict,
    timeout: float,
    keep_text: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> RequestRecord:
    """Send one streaming request and time it; failures are recorded in ``error`` (one line), never raised.

    Reading is bounded: one SSE line of ``max_line_bytes``, a body of ``STREAM_BYTES_BASE`` plus
    ``STREAM_BYTES_PER_TOKEN`` per requested token, ``MAX_ERROR_BODY_BYTES`` of an error body, and no more content
    chunks than the requested ``max_tokens`` (each carries at least one token)."""
    clock = time.perf_counter
    record = RequestRecord(queued=clock())
    token_times = record.token_times
    finished = False
    max_tokens = int(payload.get("max_tokens") or 1)
    max_bytes = STREAM_BYTES_BASE + STREAM_BYTES_PER_TOKEN * max_tokens

    async def on_the_wire(event: str, info: dict) -> None:
        if not record.sent and event in _ON_THE_WIRE_EVENTS:
            record.sent = clock()

    content = json.dumps(payload).encode()
    try:
        async with (
            asyncio.timeout(timeout),
            client.stream(
                "POST", path, content=content, headers=_JSON_HEADERS, extensions={"trace": on_the_wire}
            ) as response,
        ):
            if response.status_code != 200:
                record.error = f"HTTP {response.status_code}: {await _error_body(response)}"
                return record
            async for data in _sse_data(response, max_line_bytes, max_bytes):
                if data == "[DONE]":
                    finished = True  # read on to the end of the body so the connection goes back to the pool
                    continue
                now = clock()
                text, usage = _parse_chunk(data)
                if text:
                    if len(token_times) >= max_tokens:
                        raise StreamError(f"more content chunks than the {max_tokens} tokens requested")
                    token_times.append(now)
                    if keep_text:
                        record.text += text
                if usage:
                    record.usage_reported = True
                    record.output_tokens = usage.get("completion_tokens") or 0
                    record.prompt_tokens = usage.get("prompt_tokens")
    except TimeoutError:
        record.error = f"timed out after {timeout:g} s"
    except StreamError as error:
        record.error = str(error)
    except httpx.HTTPError as error:
        record.error = _one_line(f"{type(error).__name__}: {error}")
    finally:
        record.ended = clock()
        record.sent = record.sent or record.queued
    if record.error is None:
        if not finished:
            record.error = "stream ended without [DONE] (truncated)"
        elif not token_times:
            record.error = "stream carried no tokens"
        elif not record.usage_reported:
            record.output_tokens = len(token_times)
    return record


async def sample_loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late the event loop wakes up a sleeper: a busy client delays every timestamp it takes by as much."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(LAG_SAMPLE_INTERVAL_SECONDS)
        samples.append(max(0.0, loop.time() - before - LAG_SAMPLE_INTERVAL_SECONDS))


class LoadClients:
    """A trial's HTTP clients (request or user ``i`` uses client ``i mod len(clients)``), its warm-up and accuracy
    scoring; ``include_usage`` turns off for servers that reject ``stream_options``."""

    def __init__(self, settings: LoadSettings, clients: list[httpx.AsyncClient]) -> None:
        self.settings = settings
        self.clients = clients
        self.include_usage = settings.include_usage
        self.warnings: list[str] = []

    def payload(self, prompt: str) -> dict:
        settings = self.settings
        return request_payload(settings, prompt, settings.output_tokens, settings.ignore_eos, self.include_usage)

    async def send(self, prompt: str, shard: int) -> RequestRecord:
        client = self.clients[shard % len(self.clients)]
        return await send_streaming(
            client, self.settings.path, self.payload(prompt), self._timeout, max_line_bytes=self.settings.max_line_bytes
        )

    @property
    def _timeout(self) -> float:
        return self.settings.request_timeout_seconds

    async def warm_up(self) -> tuple[int, int | None]:
        """Send the warm-up requests; return the prompt length in words that gives ``input_tokens`` on this server
        and the prompt tokens the server reported for the warm-up prompt."""
        settings = self.settings
        words = settings.input_tokens
        count = settings.concurrency if settings.warmup_requests is None else settings.warmup_requests
        if count == 0:
            return words, None
        probe = _Prompts(words, settings.seed - 1)
        records = await asyncio.gather(*(self.send(probe[i], i) for i in range(count)))
        if records[0].error and records[0].error.startswith(("HTTP 400", "HTTP 422")) and self.include_usage:
            self.include_usage = False  # some servers reject stream_options; count tokens from chunks instead
            self.warnings.append("server rejected stream_options.include_usage; output tokens counted from chunks")
            records = await asyncio.gather(*(self.send(probe[i], i) for i in range(count)))
        failed = [record.error for record in records if record.error]
        if failed:
            raise TooManyErrors(f"warm-up request failed against {settings.base_url}{settings.path}: {failed[0]}")
        reported = records[0].prompt_tokens
        if reported:
            words = max(1, words + settings.input_tokens - int(reported))
        return words, reported

    async def score_accuracy(self, count: int) -> tuple[int, int]:
        """Ask the bundled exact-match tasks through the same endpoint, greedy, ending at end-of-sequence."""
        tasks = accuracy.generate_tasks(count, self.settings.seed)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def ask(index: int, task: accuracy.AccuracyTask) -> RequestRecord:
            payload = request_payload(self.settings, task.prompt, ACCURACY_MAX_TOKENS, False, self.include_usage)
            client = self.clients[index % len(self.clients)]
            async with gate:
                return await send_streaming(
                    client,
                    self.settings.path,
                    payload,
                    self._timeout,
                    keep_text=True,
                    max_line_bytes=self.settings.max_line_bytes,
                )

        records = await asyncio.gather(*(ask(index, task) for index, task in enumerate(tasks)))
        failed = [record.error for record in records if record.error]
        if failed:
            raise RunnerError(f"{len(failed)} of {count} accuracy requests failed: {failed[0]}")
        return sum(accuracy.is_correct(r.text, t.answer) for r, t in zip(records, tasks, strict=True)), count


async def open_clients(
    settings: LoadSettings, in_flight: int, stack: contextlib.AsyncExitStack
) -> list[httpx.AsyncClient]:
    """Pools of about ``CONNECTIONS_PER_CLIENT`` connections for ``in_flight`` requests. With replicas, client ``k``
    talks to server ``k mod n`` and their number is a multiple of n, so shard (request or user) ``i`` always goes
    to server ``i mod n``: closed-loop users are spread evenly and stay on their server."""
    urls = settings.server_urls
    limits = httpx.Limits(max_connections=in_flight + 1, max_keepalive_connections=in_flight + 1)
    timeout = httpx.Timeout(settings.request_timeout_seconds, connect=min(10.0, settings.request_timeout_seconds))
    count = math.ceil(math.ceil(in_flight / CONNECTIONS_PER_CLIENT) / len(urls)) * len(urls)
    return [
        await stack.enter_async_context(
            httpx.AsyncClient(base_url=urls[index % len(urls)], limits=limits, timeout=timeout, trust_env=False)
        )
        for index in range(count)
    ]


def event_loop_runner() -> tuple[asyncio.Runner, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner(), "asyncio"
    return asyncio.Runner(loop_factory=uvloop.new_event_loop), f"uvloop {uvloop.__version__}"
