"""Roofline estimate of LLM serving speed: pure arithmetic from spec-sheet figures, no I/O.

Prefill is compute-bound (about 2 × parameters FLOPs per prompt token plus attention's quadratic term) at the
effective peak of the precision the kernels run in; a decode step is memory-bound (every weight plus the KV cache of
the whole batch read once) at the effective memory bandwidth. Tensor parallelism splits weights and KV heads across
GPUs and pays two all-reduces per layer over the interconnect. The model assumes the closed-loop load the measured
runner applies: ``batch_size`` identical requests start together, prefill in chunks, then decode in lock-step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark_platform.memory import ACTIVATION_BYTES, USABLE_VRAM_FRACTION, kv_bytes_per_token, weight_bytes
from benchmark_platform.memory import memory_per_gpu_gb as _memory_per_gpu_gb
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts

# Tokens one prefill forward pass takes (vLLM's default max_num_batched_tokens with chunked prefill is of this order);
# prompts beyond it are prefilled over several passes, so later requests of a batch see their first token later.
PREFILL_CHUNK_TOKENS = 8192
# Host-side work per forward pass (scheduling, sampling, kernel launches, detokenization) that the GPU does not
# overlap. Calibrated once on vLLM's published latency test of Llama 3.1 8B on one H100 (the step time left over
# after the weight read at the catalog's decode efficiency); docs/simulator-accuracy.md checks it on other configs.
STEP_OVERHEAD_SECONDS = 1.8e-3
# Latency of one all-reduce (launch, synchronisation), paid twice per layer per forward pass under tensor parallelism.
# Calibrated once on vLLM's published latency test of Llama 3 70B on four H100s (docs/simulator-accuracy.md).
ALLREDUCE_LATENCY_SECONDS = 25e-6
# Per-GPU bandwidth assumed when a multi-GPU config names no interconnect (PCIe 4.0 x16, one direction).
DEFAULT_INTERCONNECT_GBPS = 32.0


class DoesNotFitError(ValueError):
    """The weights and the batch's KV cache exceed the GPUs' usable memory."""


@dataclass(frozen=True)
class RooflineEstimate:
    """Noise-free timings of one closed-loop cycle: ``batch_size`` requests from send to last token."""

    ttft_seconds: tuple[float, ...]  # per request of the batch, in prefill order
    decode_step_seconds: tuple[float, ...]  # per decode step (context grows by one token each)
    tpot_seconds: float  # mean decode step = time per output token for every request of the batch
    cycle_seconds: float  # wall time from the batch's start to its last token
    output_tokens_per_second: float
    requests_per_second: float
    memory_per_gpu_gb: float  # weights + KV cache at full context + runtime reserve
    gpu_busy_fraction: float  # share of the cycle the GPU computes (the rest is host overhead)
    decode_bound: str  # "memory" or "compute": what limits the mean decode step
    prefill_bound: str

    def as_dict(self) -> dict[str, object]:
        return {
            "ttft_first_ms": self.ttft_seconds[0] * 1e3,
            "ttft_last_ms": self.ttft_seconds[-1] * 1e3,
            "tpot_ms": self.tpot_seconds * 1e3,
            "cycle_ms": self.cycle_seconds * 1e3,
            "output_tokens_per_second": self.output_tokens_per_second,
            "requests_per_second": self.requests_per_second,
            "memory_per_gpu_gb": self.memory_per_gpu_gb,
            "gpu_busy_fraction": self.gpu_busy_fraction,
            "decode_bound": self.decode_bound,
            "prefill_bound": self.prefill_bound,
        }


def compute_peak_flops(hardware: HardwareFacts, quantization: str) -> float:
    """Dense peak FLOP/s per GPU for the precision the matrix multiplies run in."""
    fp16 = hardware.fp16_tflops * 1e12
    if quantization == "fp8" and hardware.fp8_tflops:
        return hardware.fp8_tflops * 1e12
    if quantization == "int8" and hardware.int8_tops:
        return hardware.int8_tops * 1e12
    if quantization == "fp32":
        return fp16 / 2  # TF32 tensor cores run at half the FP16 rate
    return fp16


def memory_per_gpu_gb(model: ModelFacts, hardware: HardwareFacts, batch_size: int, context_tokens: int) -> float:
    return _memory_per_gpu_gb(model, hardware.gpu_count, batch_size, context_tokens)


def allreduce_seconds(model: ModelFacts, hardware: HardwareFacts, tokens: int) -> float:
    """Two ring all-reduces per layer of the hidden states of ``tokens`` tokens; zero on one GPU."""
    tp = hardware.gpu_count
    if tp == 1:
        return 0.0
    link = (hardware.interconnect_bandwidth_gbps or DEFAULT_INTERCONNECT_GBPS) * 1e9
    message = tokens * model.hidden_size * ACTIVATION_BYTES[model.quantization]
    per_allreduce = ALLREDUCE_LATENCY_SECONDS + 2 * (tp - 1) / tp * message / link
    return 2 * model.num_layers * per_allreduce


def prefill_pass_seconds(
    model: ModelFacts, hardware: HardwareFacts, framework: FrameworkFacts, tokens: int, prompt_tokens: int
) -> tuple[float, str]:
    """One forward pass over ``tokens`` prompt tokens of prompts ``prompt_tokens`` long: GPU seconds and its bound."""
    tp = hardware.gpu_count
    # causal attention: S²/2 query-key pairs per layer, 2 FLOPs each for QK and for AV, over hidden_size dims
    attention_flops_per_token = 2 * model.num_layers * model.hidden_size * prompt_tokens
    flops = tokens * (2 * model.parameters + attention_flops_per_token) / tp
    compute = flops / (compute_peak_flops(hardware, model.quantization) * framework.prefill_efficiency)
    weights_read = weight_bytes(model) / tp / (hardware.memory_bandwidth_gbps * 1e9 * framework.decode_efficiency)
    gpu = max(compute, weights_read) + allreduce_seconds(model, hardware, tokens)
    return gpu, "compute" if compute >= weights_read else "memory"


def decode_steps_seconds(
    model: ModelFacts, hardware: HardwareFacts, framework: FrameworkFacts, batch_size: int, contexts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """GPU seconds of each decode step (one token for each of ``batch_size`` requests) at the given context lengths,
    and whether each step is memory-bound."""
    tp = hardware.gpu_count
    bandwidth = hardware.memory_bandwidth_gbps * 1e9 * framework.decode_efficiency
    bytes_read = weight_bytes(model) / tp + kv_bytes_per_token(model, tp) * batch_size * contexts
    memory = bytes_read / bandwidth
    flops = batch_size * (2 * model.parameters + 4 * model.num_layers * model.hidden_size * contexts) / tp
    compute = flops / (compute_peak_flops(hardware, model.quantization) * framework.prefill_efficiency)
    gpu = np.maximum(memory, compute) + allreduce_seconds(model, hardware, batch_size)
    return gpu, memory >= compute


def estimate(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    batch_size: int,
    prompt_tokens: int,
    output_tokens: int,
) -> RooflineEstimate:
    """Timings of one closed-loop cycle. Raises ``DoesNotFitError`` when the config cannot be served at all."""
    needed_gb = memory_per_gpu_gb(model, hardware, batch_size, prompt_tokens + output_tokens)
    usable_gb = hardware.vram_per_gpu_gb * USABLE_VRAM_FRACTION
    if needed_gb > usable_gb:
        raise DoesNotFitError(
            f"{model.version_key} at batch {batch_size} × {prompt_tokens + output_tokens} tokens needs "
            f"{needed_gb:.1f} GB per GPU; {hardware.name} offers {usable_gb:.1f} GB usable per GPU"
        )

    # Prefill in chunks of PREFILL_CHUNK_TOKENS; request i sees its first token when the pass holding its last
    # prompt token ends (that pass also samples the first output token).
    total_prompt = batch_size * prompt_tokens
    pass_ends: list[float] = []
    prefill_gpu = 0.0
    prefill_bound = "compute"
    elapsed = 0.0
    for start in range(0, total_prompt, PREFILL_CHUNK_TOKENS):
        tokens = min(PREFILL_CHUNK_TOKENS, total_prompt - start)
        gpu, prefill_bound = prefill_pass_seconds(model, hardware, framework, tokens, prompt_tokens)
        prefill_gpu += gpu
        elapsed += gpu + STEP_OVERHEAD_SECONDS
        pass_ends.append(elapsed)
    ttft = tuple(pass_ends[((i + 1) * prompt_tokens - 1) // PREFILL_CHUNK_TOKENS] for i in range(batch_size))

    contexts = prompt_tokens + 1 + np.arange(max(output_tokens - 1, 0), dtype=float)
    decode_gpu, memory_bound = decode_steps_seconds(model, hardware, framework, batch_size, contexts)
    steps = decode_gpu + STEP_OVERHEAD_SECONDS
    tpot = float(steps.mean()) if steps.size else 0.0
    cycle = elapsed + float(steps.sum())
    busy = (prefill_gpu + float(decode_gpu.sum())) / cycle
    return RooflineEstimate(
        ttft_seconds=ttft,
        decode_step_seconds=tuple(float(s) for s in steps),
        tpot_seconds=tpot,
        cycle_seconds=cycle,
        output_tokens_per_second=batch_size * output_tokens / cycle,
        requests_per_second=batch_size / cycle,
        memory_per_gpu_gb=needed_gb,
        gpu_busy_fraction=busy,
        decode_bound="memory" if memory_bound.size == 0 or memory_bound.mean() >= 0.5 else "compute",
        prefill_bound=prefill_bound,
    )
