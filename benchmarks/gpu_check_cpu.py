"""The GPU check's parts that a CPU can run: the random-weight model builder and the minimal streaming server.

1. Llama-3.1-8B's shape, built on PyTorch's ``meta`` device (no memory), has Llama-3.1-8B's parameter count.
2. The ``tiny`` shape on the CPU, served by ``gpu_check_server.py`` with a tokenizer from ``local_tokenizer.py``:
   a streamed completion yields exactly ``max_tokens`` content chunks, usage with the prompt's token count and
   ``[DONE]``; requests arriving together are batched and all finish; a bad request is answered 400.
3. With ``--platform-python`` (an interpreter with the platform installed), the GPU check's own measuring step runs
   against that CPU server: ``bench-endpoint`` at concurrency 1 and 4, then ``gpu_check_predict.py`` on the results.

Prints one line per check and exits 1 at the first failure. Needs torch, transformers, tokenizers, starlette, uvicorn
and httpx (not dependencies of the platform: run it with an interpreter that has them). Nothing is downloaded.

    /tmp/guidellm-venv/bin/python benchmarks/gpu_check_cpu.py [--platform-python /work/main/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# meta-llama/Llama-3.1-8B ("8.03B"): untied 128,256 x 4,096 embeddings and LM head (1,050,673,152), 32 layers of
# 218,112,000 (attention 41,943,040 with 8 KV heads, MLP 176,160,768, two norms 8,192) and a final norm of 4,096.
LLAMA_3_1_8B_PARAMETERS = 8_030_261_248


def check(condition: bool, message: str) -> None:
    print(f"{'ok  ' if condition else 'FAIL'} {message}", flush=True)
    if not condition:
        raise SystemExit(1)


def check_builder() -> None:
    sys.path.insert(0, str(HERE))
    from gpu_check_server import build_model, parameter_count

    model = build_model("llama-3.1-8b", "meta")
    count = parameter_count(model)
    check(count == LLAMA_3_1_8B_PARAMETERS, f"llama-3.1-8b shape: {count:,} parameters (Llama-3.1-8B: 8,030,261,248)")
    check(str(next(model.parameters()).dtype) == "torch.bfloat16", "built in bfloat16")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def stream(client, prompt: str, max_tokens: int) -> tuple[list[str], dict | None, bool]:
    body = {"model": "tiny-random", "prompt": prompt, "max_tokens": max_tokens, "stream": True}
    body["stream_options"] = {"include_usage": True}
    texts, usage, done = [], None, False
    async with client.stream("POST", "/v1/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if chunk.get("usage"):
                usage = chunk["usage"]
            texts += [choice["text"] for choice in chunk.get("choices") or []]
    return texts, usage, done


async def check_server_requests(base_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        models = (await client.get("/v1/models")).json()
        check(models["data"][0]["id"] == "tiny-random", "/v1/models lists the model")
        texts, usage, done = await stream(client, "the state of the world", 5)
        check(len(texts) == 5 and done, f"one request: {len(texts)} content chunks for max_tokens 5, [DONE]: {done}")
        check(usage == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}, f"usage {usage}")
        started = time.monotonic()
        together = await asyncio.gather(*(stream(client, f"{n} people said", 8) for n in range(4)))
        seconds = time.monotonic() - started
        check(all(len(t) == 8 and d for t, _, d in together), f"4 requests at once: all 8 tokens in {seconds:.1f} s")
        bad = await client.post("/v1/completions", json={"model": "tiny-random", "prompt": "x", "max_tokens": 0})
        check(bad.status_code == 400, f"max_tokens 0 answered {bad.status_code}")
        metrics = (await client.get("/metrics")).text
        check("vllm:num_requests_running" in metrics, "/metrics exposes vLLM's running-requests gauge")


def check_platform_runner(platform_python: str, base_url: str, scratch: Path) -> None:
    """gpu_check.sh's measuring step (bench-endpoint, then the prediction table) against the CPU server."""
    environment = os.environ | {"PYTHONPATH": str(HERE.parent)}
    outputs = []
    for concurrency in (1, 4):
        command = [platform_python, "-m", "benchmark_platform.cli", "bench-endpoint", "--base-url", base_url]
        command += ["--model", "tiny-random", "--concurrency", str(concurrency), "--num-requests", "8"]
        command += ["--input-tokens", "64", "--output-tokens", "16", "--timeout", "90", "--json"]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
        check(finished.returncode == 0, f"bench-endpoint at concurrency {concurrency}: exit {finished.returncode}")
        result = json.loads(finished.stdout)
        completed, tokens = result["completed_requests"], result["output_tokens_total"]
        check(result["profile"]["concurrency"] == concurrency, f"  measured at concurrency {concurrency}")
        check(completed == 8 and tokens == 8 * 16, f"  {completed} requests streamed {tokens} tokens (8 x 16 asked)")
        check(result["mean_prompt_tokens"] == 64, f"  prompts of {result['mean_prompt_tokens']} tokens (64 asked)")
        print(
            f"     TTFT p50 {result['ttft_p50_ms']:.1f} ms, TPOT p50 {result['tpot_p50_ms']:.1f} ms,"
            f" {result['throughput_tokens_sec']:.1f} tokens/s (tiny model on a loaded CPU)",
            flush=True,
        )
        path = scratch / f"c{concurrency}.json"
        path.write_text(finished.stdout)
        outputs.append(str(path))
    command = [platform_python, str(HERE / "gpu_check_predict.py"), "--gpu", "NVIDIA H200", *outputs]
    command += ["--input-tokens", "64", "--output-tokens", "16"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    check(
        finished.returncode == 0 and "measured/sim" in finished.stdout,
        f"gpu_check_predict.py tabulates the results: exit {finished.returncode}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform-python", help="interpreter with the platform installed, for bench-endpoint")
    arguments = parser.parse_args()
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    check_builder()
    with tempfile.TemporaryDirectory(prefix="gpu-check-cpu-") as scratch:
        tokenizer = Path(scratch) / "tokenizer"
        build = [sys.executable, str(HERE / "local_tokenizer.py"), str(tokenizer), "--vocab-size", "128256"]
        subprocess.run(build, check=True, capture_output=True)
        port = free_port()
        command = [sys.executable, str(HERE / "gpu_check_server.py"), "--shape", "tiny", "--tokenizer", str(tokenizer)]
        command += ["--port", str(port), "--device", "cpu", "--dtype", "float32"]
        log = Path(scratch) / "server.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}"
            import httpx

            for _ in range(240):
                try:
                    if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    check(False, f"the server exited {server.returncode}: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            check("built tiny" in log.read_text(), f"server up: {log.read_text().strip().splitlines()[0]}")
            asyncio.run(check_server_requests(base_url))
            if arguments.platform_python:
                check_platform_runner(arguments.platform_python, base_url, Path(scratch))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("all CPU checks passed")


if __name__ == "__main__":
    main()
