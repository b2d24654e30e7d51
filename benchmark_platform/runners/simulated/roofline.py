"""Roofline cost of one forward pass (a serving step) of LLM serving: pure arithmetic from spec-sheet figures, no I/O.

A step runs some tokens through the model: decode tokens (one per running sequence) and prefill chunks. Its GPU time
is the larger of the compute time (about 2 × parameters FLOPs per token at the effective peak of the precision the
weights' matrix multiplies run in, plus attention's FLOPs per query-key pair from the heads' widths, at the peak of the
precision attention runs in) and the memory time (every weight
plus the KV cache the step attends to, read once at the effective memory bandwidth), plus two all-reduces per layer
under tensor parallelism. The host adds a fixed cost per step that the GPU does not overlap.

Every function takes the replica's ``tensor_parallel`` degree explicitly: a node of ``gpu_count`` GPUs may run
several replicas. ``serving_sim`` builds its continuous-batching simulation on ``StepCosts``.
``estimate`` is the older static-batch cycle (one tensor-parallel group spanning the whole node), kept for the
``simulated`` runner until it moves to ``serving_sim``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark_platform.domain import ServingOptions
from benchmark_platform.memory import (
    ACTIVATION_BYTES,
    dense_weight_bytes,
    expert_shards,
    expert_weight_bytes,
    replica_kv_bytes_per_token,
    usable_gb_per_gpu,
)
from benchmark_platform.memory import memory_per_gpu_gb as _memory_per_gpu_gb
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts
from benchmark_platform.runners.simulated import calibration
from benchmark_platform.runners.simulated.step_costs import Predictor, PredictorChoice

# Revision of this roofline model: bumped when its formulas or constants change (results name it as their predictor).
# 6: expert parallelism without DP attention all-reduces as tensor parallelism does (no all-to-all);
# 5: attention FLOPs from the heads' widths, at attention's own precision, sliding-window layers by their window;
# 4: serving options (KV-cache dtype, expert parallelism, DP attention); 3: MoE, FP4 peaks
ROOFLINE_VERSION = "6"

# Tokens one prefill forward pass takes in the static-batch ``estimate`` (vLLM's max_num_batched_tokens on large
# GPUs); the continuous-batching simulator takes its token budget from ``serving_sim``.
PREFILL_CHUNK_TOKENS = 8192
# Host-side work per forward pass and the latency of one all-reduce over NVLink: fitted constants
# (``calibration``, with the rows they were fitted on).
STEP_OVERHEAD_SECONDS = calibration.STEP_OVERHEAD.value
ALLREDUCE_LATENCY_SECONDS = calibration.ALLREDUCE_LATENCY_NVLINK.value
# Per-GPU bandwidth assumed when a multi-GPU config names no interconnect (PCIe 4.0 x16, one direction).
DEFAULT_INTERCONNECT_GBPS = 32.0


class DoesNotFitError(ValueError):
    """The weights and the KV cache of the smallest load exceed the GPUs' usable memory."""


def compute_peak_flops(hardware: HardwareFacts, quantization: str) -> float:
    """Dense peak FLOP/s per GPU for the precision the matrix multiplies run in (FP4 weights on a GPU without FP4
    tensor cores are dequantized and multiplied at 16 bits, as the engines' MXFP4 kernels do on Hopper and Ampere)."""
    fp16 = hardware.fp16_tflops * 1e12
    if quantization == "fp8" and hardware.fp8_tflops:
        return hardware.fp8_tflops * 1e12
    if quantization == "fp4" and hardware.fp4_tflops:
        return hardware.fp4_tflops * 1e12
    if quantization == "int8" and hardware.int8_tops:
        return hardware.int8_tops * 1e12
    if quantization == "fp32":
        return fp16 / 2  # TF32 tensor cores run at half the FP16 rate
    return fp16


def attention_flops_per_pair(model: ModelFacts) -> float:
    """FLOPs of one query-key pair in one layer: the score (query · key) and the weighted value, 2 FLOPs per
    multiply-add over every query head's width. The heads' widths, not the hidden size: Qwen3-32B runs 64 heads of 128
    (8,192) on a 5,120 hidden size, gpt-oss 64 of 64 on 2,880. Multi-head latent attention as the engines run a
    prompt (decompressed to per-head keys of ``head_dim``, the no-RoPE part plus the RoPE part, and values of the
    no-RoPE width: DeepSeek-V3's 192 and 128); decode in the absorbed form (keys and values in the 512-wide latent,
    about 3.4 times the FLOPs a pair) is not modelled apart."""
    heads = model.num_attention_heads
    if heads is None:  # a shape without its head count: the hidden size stands for the heads' widths
        return 4.0 * model.hidden_size
    if model.latent_attention is not None:
        value_width = model.head_dim - model.latent_attention.qk_rope_head_dim
        return 2.0 * heads * (model.head_dim + value_width)
    return 4.0 * heads * model.head_dim


def attention_peak_flops(hardware: HardwareFacts, model: ModelFacts, kv_cache_dtype: str) -> float:
    """Peak FLOP/s of the attention kernels: they multiply queries with cached keys and values, so they run in the
    cache's precision, not the experts': FP8 only where the cache is FP8 and so are the weights attention projects
    its queries with (an FP8 checkpoint's, or an FP4 one's whose non-expert weights are FP8: FP8 FlashAttention,
    TensorRT-LLM's FP8 context attention), else 16 bits. FP8 or FP4 weights over a 16-bit cache (the engines' "auto")
    attend at the 16-bit peak, and so does gpt-oss, whose attention weights stay 16-bit. Latent attention computes a
    prompt on keys and values decompressed from the latent to 16 bits, whatever the cache holds."""
    attention_weight_bits = model.dense_weight_bits or model.quantization_bits
    fp8_attention = (
        kv_cache_dtype == "fp8"
        and model.quantization in ("fp8", "fp4")
        and attention_weight_bits <= 8
        and model.latent_attention is None
    )
    if fp8_attention:
        return compute_peak_flops(hardware, "fp8")
    return compute_peak_flops(hardware, "fp32" if model.quantization == "fp32" else "fp16")


@dataclass(frozen=True)
class StepCosts:
    """Seconds per unit of work of one forward pass on one replica. A step runs two kinds of kernels one after the
    other, each bound by its own roofline: the matrix multiplies with the weights (read every weight once, or do
    2 × parameters FLOPs per token, whichever is slower) and attention (read the cached keys and values the step
    attends to, or do its query-key FLOPs), then the all-reduces. So for ``tokens`` through the model, ``pairs``
    query-key pairs and ``kv_tokens`` cached tokens read or written:

    ``gpu = max(weights_s, token_s × tokens) + max(kv_token_s × kv_tokens, pair_s × pairs + window_token_s × tokens)
    + allreduce(tokens)``

    with ``allreduce(tokens) = allreduce_s + allreduce_token_s × tokens`` under tensor parallelism. ``pair_s`` costs a
    pair on the full-attention layers, ``window_token_s`` the sliding-window layers' pairs of one token, each attending
    to its whole window (exact once a context is longer than the window). Those layers' KV reads are not counted:
    at most a window per sequence, which the step's totals (tokens, not sequences) cannot tell from a prompt chunk's.
    A mixture of experts reads its dense weights and only the experts the step's tokens route to:
    ``expert_weights_s`` (all routed experts) times the expected share touched by ``tokens`` tokens choosing top-k of E
    uniformly, 1 − (1 − k/E)^tokens; ``token_s`` counts the active parameters. Every method takes plain numbers or
    numpy arrays.

    The communication term ``allreduce_s + allreduce_token_s × tokens`` holds every collective of a step: the
    all-reduces of tensor parallelism and, under data-parallel attention, the dispatch and combine all-to-alls of each
    MoE layer (``step_costs`` counts them per serving option).
    """

    tensor_parallel: int
    weights_s: float
    kv_token_s: float
    token_s: float
    pair_s: float
    allreduce_s: float
    allreduce_token_s: float
    predictor: Predictor
    expert_weights_s: float = 0.0
    expert_route_share: float = 0.0  # k / E: the share of the experts one token goes through
    window_token_s: float = 0.0  # sliding-window layers' attention FLOPs per token (its window of pairs)
    step_overhead_s: float = STEP_OVERHEAD_SECONDS

    def weight_read_seconds(self, tokens):
        """Reading the dense weights and the distinct experts ``tokens`` tokens route to (expected count)."""
        exponent = np.asarray(tokens, dtype=float) if isinstance(tokens, np.ndarray) else float(tokens)
        return self.weights_s + self.expert_weights_s * (1 - (1 - self.expert_route_share) ** exponent)

    def gpu_seconds(self, tokens, pairs, kv_tokens):
        # One step, the simulator's commonest call, takes plain floats and Python's max: the same arithmetic, where
        # numpy's per-call cost would dominate; runs of steps take arrays.
        larger = np.maximum if any(isinstance(value, np.ndarray) for value in (tokens, pairs, kv_tokens)) else max
        linear = larger(self.weight_read_seconds(tokens), self.token_s * tokens)
        attention = larger(self.kv_token_s * kv_tokens, self.pair_s * pairs + self.window_token_s * tokens)
        return linear + attention + self.allreduce_seconds(tokens)

    def compute_bound(self, tokens, pairs, kv_tokens):
        """Whether the step's FLOPs take longer than its memory reads (over both kinds of kernels)."""
        reads = self.weight_read_seconds(tokens) + self.kv_token_s * kv_tokens
        return self.token_s * tokens + self.pair_s * pairs + self.window_token_s * tokens >= reads

    def allreduce_seconds(self, tokens):
        if self.tensor_parallel > 1:
            return self.allreduce_s + self.allreduce_token_s * tokens
        return 0.0 * tokens if isinstance(tokens, np.ndarray) else 0.0


def collectives_per_step(model: ModelFacts, options: ServingOptions) -> tuple[int, int]:
    """(all-reduces, all-to-all transfers) one forward pass runs, before the tensor-parallel degree is known to be > 1.

    Tensor parallelism, with or without expert parallelism: two all-reduces per layer (after attention and after the
    FFN). Expert parallelism alone moves no token: attention is tensor-parallel, so every rank already holds every
    token's hidden state, runs its own experts on the tokens routed there and the MoE layer's output is all-reduced as
    a TP-sliced FFN's is (vLLM takes its all-to-all kernels only with DP > 1, ``use_all2all_kernels``; SGLang's and
    TensorRT-LLM's all-to-all only with DP attention). Data-parallel attention: each rank runs attention (and the
    dense FFN layers) on its own sequences with whole weights, so no all-reduce is left; each MoE layer dispatches
    the tokens' hidden states to the ranks holding their experts and combines their outputs (two all-to-alls)."""
    if options.expert_parallel == 1 or model.moe is None or not options.data_parallel_attention:
        return 2 * model.num_layers, 0
    return 0, 2 * model.moe_layers()


def remote_ranks_per_token(model: ModelFacts, expert_parallel: int) -> float:
    """Other ranks one token's hidden state is sent to by an MoE layer's dispatch (expert parallelism under
    data-parallel attention): its top-k experts land on ep · (1 − (1 − 1/ep)^k) distinct ranks on average (uniform
    routing), (ep − 1) / ep of them remote. DeepEP and the engines' all-to-all kernels send a token once per
    destination rank, not once per expert."""
    if model.moe is None or expert_parallel == 1:
        return 0.0
    ep, k = expert_parallel, model.moe.experts_per_token
    return ep * (1 - (1 - 1 / ep) ** k) * (ep - 1) / ep


def step_costs(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    *,
    tensor_parallel: int,
    requested: PredictorChoice = "roofline",
    fallback: str | None = None,
    options: ServingOptions | None = None,
) -> StepCosts:
    """The cost coefficients of a forward pass of ``model`` on ``tensor_parallel`` GPUs of ``hardware`` under the
    serving ``options`` (None: a plain tensor-parallel deployment, every weight split over the group).

    - KV-cache dtype: the attention reads move ``memory.kv_dtype_bytes`` per element.
    - Expert parallelism: the routed experts are whole on ``expert_parallel`` ranks (``memory.expert_shards``); a step
      reads on each rank its dense slice plus the distinct experts its tokens route to there (the same expected share
      1 − (1 − k/E)^tokens of that rank's experts); its collectives stay tensor parallelism's all-reduces
      (``collectives_per_step``).
    - Data-parallel attention: every rank reads the whole dense weights, and the replica's sequences (their KV reads)
      split evenly over the ranks (``memory.replica_kv_bytes_per_token``), which is what saves MLA models from reading
      the latent cache of every sequence on every rank; each MoE layer pays a dispatch and a combine (bytes:
      ``remote_ranks_per_token`` hidden states per token, split over the ranks, at the link's all-reduce bandwidth;
      latency: the link's fitted all-reduce latency per transfer).

    ``requested`` and ``fallback`` are recorded in the predictor: which backend the caller asked for, and why the
    roofline answers instead when that was another (``step_costs.step_cost_model``)."""
    options = options or ServingOptions()
    tp = tensor_parallel
    ep = options.expert_parallel
    efficiency, decode_efficiency = calibration.efficiencies(hardware, framework)
    bandwidth = hardware.memory_bandwidth_gbps * 1e9 * decode_efficiency
    flops = compute_peak_flops(hardware, model.quantization) * efficiency
    attention_flops = attention_peak_flops(hardware, model, options.kv_cache_dtype) * efficiency
    link = (hardware.interconnect_bandwidth_gbps or DEFAULT_INTERCONNECT_GBPS) * 1e9
    link *= calibration.allreduce_bandwidth_share(hardware)
    hidden_bytes = model.hidden_size * ACTIVATION_BYTES[model.quantization]
    # ring all-reduce of each token's hidden state: 2 (tp - 1) / tp of the message crosses each GPU's link
    allreduce_bytes_per_token = 2 * (tp - 1) / tp * hidden_bytes
    # all-to-all: each rank sends its share of the tokens (1 / ep) to the remote ranks holding their experts
    alltoall_bytes_per_token = remote_ranks_per_token(model, ep) * hidden_bytes / ep
    allreduces, alltoalls = collectives_per_step(model, options)
    dense_slices = 1 if options.data_parallel_attention else tp
    window = model.sliding_window
    window_layers, window_tokens = (window.layers, window.window) if window is not None else (0, 0)
    pair_layer_s = attention_flops_per_pair(model) / tp / attention_flops  # one query-key pair in one layer
    return StepCosts(
        tensor_parallel=tp,
        weights_s=dense_weight_bytes(model) / dense_slices / bandwidth,
        expert_weights_s=expert_weight_bytes(model) / expert_shards(tp, ep) / bandwidth,
        expert_route_share=model.moe.experts_per_token / model.moe.experts if model.moe else 0.0,
        kv_token_s=replica_kv_bytes_per_token(model, tp, None, options) / bandwidth,
        token_s=2 * model.active_parameters() / tp / flops,
        pair_s=(model.num_layers - window_layers) * pair_layer_s,
        window_token_s=window_layers * window_tokens * pair_layer_s,
        allreduce_s=(allreduces + alltoalls) * calibration.allreduce_latency_seconds(hardware),
        allreduce_token_s=(allreduces * allreduce_bytes_per_token + alltoalls * alltoall_bytes_per_token) / link,
        predictor=Predictor(
            backend="roofline",
            version=ROOFLINE_VERSION,
            data_version="spec sheets (catalogs/hardware.yaml) x framework efficiencies (catalogs/frameworks.yaml)",
            in_measured_range=None,
            requested=requested,
            fallback=fallback,
        ),
    )


def memory_per_gpu_gb(model: ModelFacts, tensor_parallel: int, sequences: int, context_tokens: int) -> float:
    return _memory_per_gpu_gb(model, tensor_parallel, sequences, context_tokens)


def allreduce_seconds(model: ModelFacts, hardware: HardwareFacts, tokens: int, *, tensor_parallel: int) -> float:
    """Two ring all-reduces per layer of the hidden states of ``tokens`` tokens; zero on one GPU."""
    costs = step_costs(model, hardware, _NEUTRAL_FRAMEWORK, tensor_parallel=tensor_parallel)
    return float(costs.allreduce_seconds(tokens))


def prefill_pass_seconds(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    tokens: int,
    prompt_tokens: int,
    *,
    tensor_parallel: int,
) -> tuple[float, str]:
    """One forward pass over ``tokens`` prompt tokens of prompts ``prompt_tokens`` long: GPU seconds and its bound."""
    costs = step_costs(model, hardware, framework, tensor_parallel=tensor_parallel)
    # a token at position i of its prompt attends to i earlier tokens: prompt_tokens / 2 pairs on average
    pairs = tokens * prompt_tokens / 2
    gpu = costs.gpu_seconds(tokens, pairs, tokens)
    return float(gpu), "compute" if costs.compute_bound(tokens, pairs, tokens) else "memory"


def decode_steps_seconds(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    batch_size: int,
    contexts: np.ndarray,
    *,
    tensor_parallel: int,
) -> tuple[np.ndarray, np.ndarray]:
    """GPU seconds of each decode step (one token for each of ``batch_size`` requests) at the given context lengths,
    and whether each step is memory-bound."""
    costs = step_costs(model, hardware, framework, tensor_parallel=tensor_parallel)
    kv_tokens = batch_size * contexts
    gpu = costs.gpu_seconds(batch_size, kv_tokens, kv_tokens)
    return gpu, ~costs.compute_bound(batch_size, kv_tokens, kv_tokens)


_NEUTRAL_FRAMEWORK = FrameworkFacts(
    name="all-reduce only", version="-", launch_command="-", prefill_efficiency=1.0, decode_efficiency=1.0
)


@dataclass(frozen=True)
class RooflineEstimate:
    """Noise-free timings of one closed-loop static-batch cycle: ``batch_size`` requests from send to last token."""

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


def estimate(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    batch_size: int,
    prompt_tokens: int,
    output_tokens: int,
) -> RooflineEstimate:
    """The static-batch cycle on one tensor-parallel group of all ``hardware.gpu_count`` GPUs (superseded by
    ``serving_sim.simulate_serving``). Raises ``DoesNotFitError`` when the config cannot be served at all."""
    tp = hardware.gpu_count
    needed_gb = memory_per_gpu_gb(model, tp, batch_size, prompt_tokens + output_tokens)
    usable_gb = usable_gb_per_gpu(hardware.vram_per_gpu_gb)
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
        gpu, prefill_bound = prefill_pass_seconds(model, hardware, framework, tokens, prompt_tokens, tensor_parallel=tp)
        prefill_gpu += gpu
        elapsed += gpu + STEP_OVERHEAD_SECONDS
        pass_ends.append(elapsed)
    ttft = tuple(pass_ends[((i + 1) * prompt_tokens - 1) // PREFILL_CHUNK_TOKENS] for i in range(batch_size))

    contexts = prompt_tokens + 1 + np.arange(max(output_tokens - 1, 0), dtype=float)
    decode_gpu, memory_bound = decode_steps_seconds(
        model, hardware, framework, batch_size, contexts, tensor_parallel=tp
    )
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
