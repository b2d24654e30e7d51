"""A small OpenAI-compatible streaming server with known timing, to test and calibrate the load generator offline.

Serves /v1/completions, /v1/chat/completions (streamed or not), /v1/models and /health. Each request waits
``ttft_ms`` (+ ``prefill_ms_per_token`` × prompt tokens) before its first token, then ``tpot_ms`` per token, each
delay drawn from the jitter distribution; tokens are scheduled against the request's start so delays never pile up.
``max_tokens`` and ``ignore_eos`` are honoured (without ``ignore_eos`` generation ends after ``eos_after_tokens``),
usage comes in a final chunk when ``stream_options.include_usage`` asks for it, and questions of the bundled accuracy
task set are answered (wrong at ``accuracy_error_rate``).

With ``max_num_seqs`` at most that many requests generate at once; the others wait (their TTFT grows), as in a
server whose batch is full. ``/metrics`` exposes vLLM's Prometheus names for running and waiting requests, KV-cache
usage (running / max_num_seqs), prefix-cache queries and hits (blocks of ``prefix_block_tokens`` words already seen
at the start of an earlier prompt), preemptions (counted when more than ``preempt_above_running`` run) and prompt and
generation tokens.

Faults for tests: a request for one of the ``FAULT_MODELS`` misbehaves as named, and ``error_rate`` answers that
share of requests with HTTP 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from benchmark_platform.runners.openai.accuracy import solve

FAULT_MODELS = {
    "fault-http-500": "answers HTTP 500",
    "fault-malformed": "sends a chunk that is not JSON after a few tokens",
    "fault-truncated": "closes the stream after a few tokens, without [DONE]",
    "fault-error-event": "sends an error object in the stream after a few tokens",
    "fault-hang": "sends a few tokens, then nothing for an hour",
}
DEFAULT_MAX_TOKENS = 16
CHAT_TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers a chat template adds, so prompt token counts differ from words
FAULT_AFTER_TOKENS = 3


class EmulatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: str = Field(default="emulator", min_length=1, description="the name /v1/models lists")
    ttft_ms: float = Field(default=0.0, ge=0)
    tpot_ms: float = Field(default=0.0, ge=0)
    prefill_ms_per_token: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0, description="spread of every delay (std dev, half-width or mean)")
    jitter_distribution: Literal["normal", "uniform", "exponential"] = "normal"
    tokens_per_chunk: int = Field(default=1, gt=0)
    eos_after_tokens: int | None = Field(default=None, gt=0, description="natural answer length without ignore_eos")
    error_rate: float = Field(default=0.0, ge=0, le=1)
    accuracy_error_rate: float = Field(default=0.0, ge=0, le=1)
    max_num_seqs: int | None = Field(default=None, gt=0, le=100_000, description="requests generating at once")
    prefix_block_tokens: int = Field(default=16, gt=0)
    preempt_above_running: int | None = Field(default=None, gt=0, description="count a preemption above this")
    seed: int = 0


class _ServerState:
    """What /metrics reports: gauges of the moment and counters since start."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.max_num_seqs) if settings.max_num_seqs else None
        self.running = self.waiting = 0
        self.counters = dict.fromkeys(
            ("prompt_tokens", "generation_tokens", "prefix_cache_queries", "prefix_cache_hits", "num_preemptions"), 0
        )
        self._seen_blocks: set[int] = set()

    def look_up_prefix(self, prompt: str) -> None:
        words, size = prompt.split(), self.settings.prefix_block_tokens
        chained, hitting = 0, True
        for start in range(0, len(words) - size + 1, size):
            chained = hash((chained, *words[start : start + size]))
            self.counters["prefix_cache_queries"] += size
            hitting = hitting and chained in self._seen_blocks
            self.counters["prefix_cache_hits"] += size if hitting else 0
            self._seen_blocks.add(chained)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold a generation slot; yields the seconds waited for it."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        self.waiting += 1
        try:
            if self.slots is not None:
                await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        limit = self.settings.preempt_above_running
        if limit is not None and self.running > limit:
            self.counters["num_preemptions"] += 1
        try:
            yield loop.time() - asked
        finally:
            self.running -= 1
            if self.slots is not None:
                self.slots.release()

    def prometheus(self, model: str) -> str:
        label = f'{{model_name="{model}"}}'
        usage = self.running / self.settings.max_num_seqs if self.settings.max_num_seqs else 0.0
        lines = [
            f"vllm:num_requests_running{label} {self.running}",
            f"vllm:num_requests_waiting{label} {self.waiting}",
            f"vllm:kv_cache_usage_perc{label} {usage}",
        ]
        lines += [f"vllm:{name}_total{label} {value}" for name, value in self.counters.items()]
        return "\n".join(lines) + "\n"


class _BadRequest(ValueError):
    pass


class Emulator:
    """The request handlers; one instance per server, with a seeded generator for jitter and injected errors."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self.state = _ServerState(settings)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/metrics", self.metrics),
                Route("/v1/models", self.models),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.state.prometheus(self.settings.model))

    async def models(self, request: Request) -> Response:
        names = [self.settings.model, *FAULT_MODELS]
        return JSONResponse(
            {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "emulator"} for name in names]}
        )

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    def _jittered(self, milliseconds: float) -> float:
        spread = self.settings.jitter_ms
        if spread == 0:
            return milliseconds / 1e3
        if self.settings.jitter_distribution == "normal":
            noise = self._rng.gauss(0.0, spread)
        elif self.settings.jitter_distribution == "uniform":
            noise = self._rng.uniform(-spread, spread)
        else:
            noise = self._rng.expovariate(1.0 / spread)
        return max(0.0, milliseconds + noise) / 1e3

    def _answer_tokens(self, prompt: str) -> list[str] | None:
        answer = solve(prompt)
        if answer is None:
            return None
        if self._rng.random() < self.settings.accuracy_error_rate:
            answer = f"not {answer}"
        return [word if index == 0 else f" {word}" for index, word in enumerate(answer.split())]

    async def _generate(self, request: Request, chat: bool) -> Response:
        started = asyncio.get_running_loop().time()
        try:
            body = await request.json()
            prompt, prompt_tokens = _prompt_of(body, chat)
            max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
            if max_tokens <= 0:
                raise _BadRequest("max_tokens must be positive")
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            return _error(400, f"bad request: {error}")
        model = body.get("model", self.settings.model)
        if model != self.settings.model and model not in FAULT_MODELS:
            return _error(404, f"the model `{model}` does not exist")
        if model == "fault-http-500" or self._rng.random() < self.settings.error_rate:
            return _error(500, "injected server error")

        tokens = self._answer_tokens(prompt)
        if tokens is not None:  # an answer ends with end-of-sequence unless max_tokens cuts it
            finish_reason = "length" if len(tokens) > max_tokens else "stop"
            tokens = tokens[:max_tokens]
        else:
            natural = self.settings.eos_after_tokens
            count = max_tokens if body.get("ignore_eos") or natural is None else min(max_tokens, natural)
            tokens = [" tok"] * count
            finish_reason = "length" if count == max_tokens else "stop"
        ttft = self._jittered(self.settings.ttft_ms + self.settings.prefill_ms_per_token * prompt_tokens)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.state.look_up_prefix(prompt)
        self.state.counters["prompt_tokens"] += prompt_tokens
        self.state.counters["generation_tokens"] += len(tokens)
        if not body.get("stream"):
            async with self.state.slot():
                await asyncio.sleep(ttft + sum(self._jittered(self.settings.tpot_ms) for _ in tokens[1:]))
            return JSONResponse(_full_response(chat, model, "".join(tokens), finish_reason, usage))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = self._stream(chat, model, tokens, finish_reason, usage if include_usage else None, started, ttft)
        return StreamingResponse(events, media_type="text/event-stream")

    async def _stream(
        self,
        chat: bool,
        model: str,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int] | None,
        started: float,
        ttft: float,
    ) -> AsyncIterator[str]:
        async with self.state.slot() as queued:
            # A request that waited for a slot starts its prefill only then: the wait adds to its TTFT.
            events = self._events(chat, model, tokens, finish_reason, usage, started + queued, ttft)
            async for event in events:
                yield event

    async def _events(
        self,
        chat: bool,
        model: str,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int] | None,
        started: float,
        ttft: float,
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        chunk_id = f"emu-{uuid.uuid4().hex[:16]}"
        if chat:  # servers open a chat stream with the role and no content; it is not a token
            yield _event(_chunk(chat, chunk_id, model, "", None, role=True))
        due = started + ttft
        per_chunk = self.settings.tokens_per_chunk
        for index in range(0, len(tokens), per_chunk):
            if model in FAULT_MODELS and index >= FAULT_AFTER_TOKENS:
                async for event in _misbehave(model):
                    yield event
                return
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            piece = tokens[index : index + per_chunk]
            last = index + per_chunk >= len(tokens)
            yield _event(_chunk(chat, chunk_id, model, "".join(piece), finish_reason if last else None))
            due += sum(self._jittered(self.settings.tpot_ms) for _ in piece)
        if usage is not None:
            yield _event({"id": chunk_id, "object": _object(chat), "model": model, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"


async def _misbehave(model: str) -> AsyncIterator[str]:
    if model == "fault-malformed":
        yield 'data: {"choices": [{"text": " tok"\n\n'
        yield "data: [DONE]\n\n"
    elif model == "fault-error-event":
        yield _event({"error": {"message": "injected mid-stream error", "type": "internal_error", "code": 500}})
        yield "data: [DONE]\n\n"
    elif model == "fault-hang":
        await asyncio.sleep(3600)
    # fault-truncated: end the stream here, without [DONE]


def _prompt_of(body: dict[str, Any], chat: bool) -> tuple[str, int]:
    """The prompt text and its token count (one token per word, plus template tokens per chat message)."""
    if chat:
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages must be a non-empty list")
        text = "\n".join(str(message["content"]) for message in messages)
        return text, len(text.split()) + CHAT_TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise _BadRequest("prompt must be a string")
    return prompt, len(prompt.split())


def _object(chat: bool) -> str:
    return "chat.completion.chunk" if chat else "text_completion"


def _chunk(chat: bool, chunk_id: str, model: str, text: str, finish: str | None, role: bool = False) -> dict:
    if chat:
        delta: dict[str, str] = {"role": "assistant", "content": text} if role else {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {"id": chunk_id, "object": _object(chat), "created": int(time.time()), "model": model, "choices": [choice]}


def _full_response(chat: bool, model: str, text: str, finish: str, usage: dict[str, int]) -> dict:
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
    choice["finish_reason"] = finish
    return {
        "id": f"emu-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message, "type": "emulator_error", "code": status}}, status_code=status)


def build_server(settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Server:
    config = uvicorn.Config(
        Emulator(settings).app(), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (the one the OS chose when asked for port 0)."""
    return server.servers[0].sockets[0].getsockname()[1]


@contextmanager
def running_emulator(
    settings: EmulatorSettings, host: str = "127.0.0.1", startup_timeout: float = 10.0
) -> Iterator[str]:
    """Run an emulator on a free port in a background thread; yields its base URL (no /v1)."""
    server = build_server(settings, host, 0)
    thread = threading.Thread(target=server.run, name="emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port(server)}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
