"""A minimal OpenAI-compatible streaming server on transformers and torch, serving a random-weight model with a
catalog model's architecture and a locally built tokenizer: nothing is downloaded.

Batching is static: requests that arrive while a batch generates wait for the next one; a batch is every request
waiting when the previous batch ends (up to ``--max-batch``), left-padded, generated greedily to each request's
``max_tokens`` (end-of-sequence ignored, as the load generator asks), and streamed token by token. That is enough to
see how decode time grows with the batch on a real GPU; it is not vLLM's continuous batching.

    python benchmarks/gpu_check_server.py --shape llama-3.1-8b --tokenizer DIR --port 8011 [--device cuda]
    python benchmarks/gpu_check_server.py --shape tiny --tokenizer DIR --port 8011 --device cpu   # a CPU smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

SHAPES = {
    # Llama-3.1-8B's architecture (config.json of meta-llama/Llama-3.1-8B), weights random.
    "llama-3.1-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
    },
    # Small enough for a CPU smoke test of the server.
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128256,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
    },
}


def build_model(shape: str, device: str, dtype_name: str = "bfloat16"):
    """A LlamaForCausalLM of ``shape`` with random weights, built directly on ``device``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dtype = getattr(torch, dtype_name)
    config = LlamaConfig(**SHAPES[shape], torch_dtype=dtype, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    return model


def parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@dataclass
class Pending:
    prompt: str
    max_tokens: int
    tokens: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    prompt_tokens: int = 0
    created: float = field(default_factory=time.time)


class BatchStreamer:
    """transformers' streamer protocol: ``put`` gets the prompt first, then each step's tokens (one per row)."""

    def __init__(self, batch: list[Pending]) -> None:
        self.batch = batch
        self.prompt_seen = False
        self.produced = [0] * len(batch)

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            request = self.batch[row]
            if self.produced[row] < request.max_tokens:
                self.produced[row] += 1
                request.loop.call_soon_threadsafe(request.tokens.put_nowait, int(token))

    def end(self) -> None:
        for request in self.batch:
            request.loop.call_soon_threadsafe(request.tokens.put_nowait, None)


class Engine:
    """One generation thread taking every waiting request as the next batch."""

    def __init__(self, model, tokenizer, device: str, max_batch: int) -> None:
        self.model, self.tokenizer, self.device, self.max_batch = model, tokenizer, device, max_batch
        self.waiting: list[Pending] = []
        self.lock = threading.Condition()
        self.running = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, request: Pending) -> None:
        with self.lock:
            self.waiting.append(request)
            self.lock.notify()

    def _loop(self) -> None:
        import torch

        while True:
            with self.lock:
                while not self.waiting:
                    self.lock.wait()
                batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch :]
            self.running = len(batch)
            try:
                encoded = self.tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True)
                for row, request in enumerate(batch):
                    request.prompt_tokens = int(encoded["attention_mask"][row].sum())
                longest = max(r.max_tokens for r in batch)
                with torch.inference_mode():
                    self.model.generate(
                        input_ids=encoded["input_ids"].to(self.device),
                        attention_mask=encoded["attention_mask"].to(self.device),
                        max_new_tokens=longest,
                        min_new_tokens=longest,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                        streamer=BatchStreamer(batch),
                    )
            except Exception as error:  # every request of the batch learns it, the server goes on
                for request in batch:
                    request.loop.call_soon_threadsafe(request.tokens.put_nowait, error)
            finally:
                self.running = 0


def create_app(engine: Engine, model_name: str):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def health(request: Request):
        return PlainTextResponse("ok")

    async def models(request: Request):
        return JSONResponse(
            {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "gpu-check"}]}
        )

    async def metrics(request: Request):
        label = f'{{model_name="{model_name}"}}'
        running = f"vllm:num_requests_running{label} {engine.running}\n"
        text = running + f"vllm:num_requests_waiting{label} {len(engine.waiting)}\n"
        return PlainTextResponse(text)

    async def completions(request: Request):
        body = await request.json()
        chat = request.url.path.endswith("/chat/completions")
        prompt = "\n".join(m["content"] for m in body["messages"]) if chat else body["prompt"]
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1 or not isinstance(prompt, str):
            return JSONResponse({"error": {"message": "bad request"}}, status_code=400)
        pending = Pending(prompt, max_tokens, asyncio.Queue(), asyncio.get_running_loop())
        engine.submit(pending)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_stream(pending, chat, include_usage), media_type="text/event-stream")

    async def _stream(pending: Pending, chat: bool, include_usage: bool):
        chunk_id, produced = f"gpu-{uuid.uuid4().hex[:12]}", 0
        kind = "chat.completion.chunk" if chat else "text_completion"
        while (token := await pending.tokens.get()) is not None:
            if isinstance(token, Exception):
                yield f"data: {json.dumps({'error': {'message': str(token)[:300]}})}\n\n"
                return
            produced += 1
            text = f" t{token}"
            choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
            choice["finish_reason"] = "length" if produced == pending.max_tokens else None
            yield f"data: {json.dumps({'id': chunk_id, 'object': kind, 'model': model_name, 'choices': [choice]})}\n\n"
        if include_usage:
            usage = {"prompt_tokens": pending.prompt_tokens, "completion_tokens": produced}
            usage["total_tokens"] = usage["prompt_tokens"] + produced
            yield f"data: {json.dumps({'id': chunk_id, 'object': kind, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            Route("/v1/models", models),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.1-8b")
    parser.add_argument("--tokenizer", required=True, help="folder written by benchmarks/local_tokenizer.py")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-batch", type=int, default=64)
    arguments = parser.parse_args()

    import uvicorn
    from transformers import AutoTokenizer

    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(arguments.tokenizer)
    tokenizer.padding_side = "left"
    model = build_model(arguments.shape, arguments.device, arguments.dtype)
    print(
        f"built {arguments.shape} ({parameter_count(model) / 1e9:.2f} B parameters, random weights) on "
        f"{arguments.device} in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    engine = Engine(model, tokenizer, arguments.device, arguments.max_batch)
    name = f"{arguments.shape}-random"
    uvicorn.run(create_app(engine, name), host="127.0.0.1", port=arguments.port, log_level="warning")


if __name__ == "__main__":
    main()
