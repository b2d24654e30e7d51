"""The memory model of serving one model version on one tensor-parallel group: pure arithmetic, no I/O.

Mixture-of-experts models keep every routed expert resident (a batch may route to any of them): the experts are
split over the tensor-parallel group, or over the expert-parallel ranks when ``expert_parallel`` > 1 (each rank then
holds whole experts, as vLLM's ``--enable-expert-parallel`` does). The KV cache depends on the layer type: MLA layers
cache one latent per token, the same on every rank; sliding-window layers hold at most the window per sequence.

The engine's serving options (``domain.ServingOptions``) change both: the KV-cache dtype sets the bytes per cached
element (``kv_dtype_bytes``: the engines' "auto" is the 16-bit activation dtype, FP8 weights included), and
data-parallel attention gives every GPU the whole dense weights and the cache of its own share of the sequences
(``options_weight_bytes_per_gpu``, ``replica_kv_bytes_per_token``). The functions that size a replica take the
options (None: a plain tensor-parallel deployment).

One home for it: the matrix uses it to decide what fits, the simulator to size the KV cache that bounds how many
sequences run at once. A replica of tensor-parallel degree ``tp`` splits the weights and the KV heads over ``tp``
GPUs (KV heads are replicated when there are fewer of them than GPUs). The serving framework takes a share of each
GPU's memory (vLLM's ``gpu_memory_utilization``, 0.9 by default); what the weights and the runtime (activations,
CUDA graphs, the framework itself) leave of it is the KV cache.

Units: the hardware catalog's ``vram_gb`` is the vendor's nominal capacity, which counts binary gigabytes (GiB), and
is read as such (``vram_bytes``); everything this module returns in "GB" is 10^9 bytes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

from benchmark_platform.domain import PLAIN_DEPLOYMENT

if TYPE_CHECKING:
    from benchmark_platform.domain import LatentAttention, ServingOptions, SlidingWindow

# The catalog's VRAM figures are nominal GiB: an "80 GB" H100 reports 81,559 MiB (79.6 GiB) to nvidia-smi, an
# A100 80GB 81,920 MiB, an "141 GB" H200 143,771 MiB, an "192 GB" MI300X 192 GiB; vLLM's gpu_memory_utilization
# multiplies that total. Reading "80" as 10^9 bytes understated every GPU by 7 % (Llama-3.1-70B fp16 then did not fit
# two H100s, which vLLM serves with a small KV cache). GDDR6 cards with ECC on (L4, A10G, L40S) report 1/16 less
# than nominal (L4: 23,034 MiB of 24 GiB); the catalog carries no memory type, so they are read as nominal too.
BYTES_PER_CATALOG_GB = 2**30
# Share of VRAM the serving framework may use (vLLM's gpu_memory_utilization default) and what activations, CUDA
# graphs and the framework itself hold outside weights and KV cache, per GPU.
USABLE_VRAM_FRACTION = 0.9
RUNTIME_RESERVE_GB = 1.5
# Activations stay in 16-bit unless the weights are full precision; weight-only int4/int8 kernels dequantize to FP16.
ACTIVATION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 2, "int8": 2, "int4": 2, "fp4": 2}
# Bytes per cached key/value element by the engine's KV-cache dtype (``ServingOptions.kv_cache_dtype``): "auto" is
# the model's activation dtype, which is what vLLM's ``--kv-cache-dtype auto`` (its default) and SGLang's default do
# for FP8 and FP4 weights too: an FP8 checkpoint gets a 16-bit cache unless the server is started with
# ``--kv-cache-dtype fp8`` (or the checkpoint's quantization config names an FP8 KV scheme and the engine honours it).
# "fp8" stores one byte per element (E4M3/E5M2), halving the KV bytes per token.
KV_CACHE_DTYPE_BYTES: dict[str, int] = {"fp8": 1}
# Block scales FP4 checkpoints store beside the 4-bit values, in bits per weight: MXFP4 one 8-bit scale per 32 weights
# (OCP Microscaling spec), NVFP4 one FP8 scale per 16. (vLLM's gpt-oss-120b weighs 64.4 GiB on an H100: these scales
# plus kernel padding of the expert width; the padding is the engine's and is not counted.)
FP4_SCALE_BITS = {"mxfp4": 8 / 32, "nvfp4": 8 / 16}


class ModelShape(Protocol):
    """What the memory model needs of a model version (``domain.ModelShape``: the matrix's version and a runner's
    model)."""

    parameters: int
    quantization: str
    quantization_bits: int
    dense_weight_bits: int | None
    fp4_scheme: str | None
    num_layers: int
    num_kv_heads: int
    head_dim: int
    latent_attention: LatentAttention | None
    sliding_window: SlidingWindow | None

    def routed_expert_parameters(self) -> int: ...


def quantized_bits(model: ModelShape) -> float:
    """Stored bits per weight of the version's quantization, FP4 block scales included."""
    return model.quantization_bits + (FP4_SCALE_BITS[model.fp4_scheme] if model.fp4_scheme else 0)


def expert_weight_bytes(model: ModelShape) -> float:
    """Bytes of all routed experts (0 for a dense model)."""
    return model.routed_expert_parameters() * quantized_bits(model) / 8


def dense_weight_bytes(model: ModelShape) -> float:
    """Bytes of every weight outside the routed experts: attention, shared experts, dense layers, embeddings; at
    ``dense_weight_bits`` where the checkpoint quantizes only the experts (gpt-oss's MXFP4)."""
    bits = model.dense_weight_bits or quantized_bits(model)
    return (model.parameters - model.routed_expert_parameters()) * bits / 8


def weight_bytes(model: ModelShape) -> float:
    return dense_weight_bytes(model) + expert_weight_bytes(model)


def kv_dtype_bytes(model: ModelShape, kv_cache_dtype: str = "auto") -> int:
    """Bytes per cached element: the activation dtype's under "auto", else the named KV-cache dtype's."""
    if kv_cache_dtype == "auto":
        return ACTIVATION_BYTES[model.quantization]
    return KV_CACHE_DTYPE_BYTES[kv_cache_dtype]


def expert_shards(tensor_parallel: int, expert_parallel: int = 1) -> int:
    """Over how many GPUs the routed experts are split: the expert-parallel ranks, else the tensor-parallel group."""
    return expert_parallel if expert_parallel > 1 else tensor_parallel


def weight_bytes_per_gpu(
    model: ModelShape, tensor_parallel: int, expert_parallel: int = 1, *, data_parallel_attention: bool = False
) -> float:
    """Weights one GPU of the replica holds: the routed experts split over ``expert_shards``, the dense weights
    (attention, shared experts, dense layers, embeddings) sliced by tensor parallelism, or whole on every GPU under
    data-parallel attention (each rank runs attention for its own sequences with the full weights)."""
    experts = expert_weight_bytes(model) / expert_shards(tensor_parallel, expert_parallel)
    dense_slices = 1 if data_parallel_attention else tensor_parallel
    return dense_weight_bytes(model) / dense_slices + experts


def options_weight_bytes_per_gpu(model: ModelShape, tensor_parallel: int, options: ServingOptions | None) -> float:
    """``weight_bytes_per_gpu`` under the serving options' expert parallelism and data-parallel attention."""
    options = options or PLAIN_DEPLOYMENT
    return weight_bytes_per_gpu(
        model, tensor_parallel, options.expert_parallel, data_parallel_attention=options.data_parallel_attention
    )


def kv_bytes_per_token(
    model: ModelShape,
    tensor_parallel: int = 1,
    context_tokens: int | None = None,
    *,
    kv_cache_dtype: str = "auto",
) -> float:
    """KV cache bytes one token occupies on one GPU, averaged over a sequence of ``context_tokens``: per layer 2 (K and
    V) × KV heads on this GPU × head dim × bytes, or one MLA latent (not split by tensor parallelism). Sliding-window
    layers hold at most their window of the sequence (``context_tokens`` None: a long sequence, where they add
    nothing per token). Bytes per element from ``kv_cache_dtype`` (``kv_dtype_bytes``). Under data-parallel
    attention a sequence's cache lives whole on one rank: ask with ``tensor_parallel`` 1."""
    element_bytes = kv_dtype_bytes(model, kv_cache_dtype)
    if (latent := model.latent_attention) is not None:
        per_layer = (latent.kv_lora_rank + latent.qk_rope_head_dim) * element_bytes
    else:
        per_layer = 2 * math.ceil(model.num_kv_heads / tensor_parallel) * model.head_dim * element_bytes
    layers: float = model.num_layers
    if (window := model.sliding_window) is not None:
        held = 0.0 if context_tokens is None else min(1.0, window.window / context_tokens)
        layers -= window.layers * (1 - held)
    return layers * per_layer


def vram_bytes(vram_per_gpu_gb: float) -> float:
    """Bytes of memory of a GPU whose catalog figure is ``vram_per_gpu_gb`` (nominal GiB)."""
    return vram_per_gpu_gb * BYTES_PER_CATALOG_GB


def usable_bytes_per_gpu(vram_per_gpu_gb: float) -> float:
    return vram_bytes(vram_per_gpu_gb) * USABLE_VRAM_FRACTION


def usable_gb_per_gpu(vram_per_gpu_gb: float) -> float:
    """What the serving framework may use of one GPU, in 10^9 bytes (the unit of ``memory_per_gpu_gb``)."""
    return usable_bytes_per_gpu(vram_per_gpu_gb) / 1e9


def kv_cache_bytes_per_gpu(
    model: ModelShape, vram_per_gpu_gb: float, tensor_parallel: int, options: ServingOptions | None = None
) -> float:
    """What is left for the KV cache on each GPU of the group (negative: the weights alone do not fit)."""
    reserve = RUNTIME_RESERVE_GB * 1e9
    weights = options_weight_bytes_per_gpu(model, tensor_parallel, options)
    return usable_bytes_per_gpu(vram_per_gpu_gb) - weights - reserve


def replica_kv_bytes_per_token(
    model: ModelShape, tensor_parallel: int, context_tokens: int | None = None, options: ServingOptions | None = None
) -> float:
    """KV bytes one token of the replica's running sequences takes out of the replica's per-GPU cache budget: the
    per-GPU bytes under tensor parallelism (every rank holds a slice, or a copy of an MLA latent, of every sequence);
    under data-parallel attention a sequence is cached whole on one of the ``tensor_parallel`` ranks, so a token
    costs its whole KV divided by the ranks that share the load."""
    options = options or PLAIN_DEPLOYMENT
    if options.data_parallel_attention:
        return kv_bytes_per_token(model, 1, context_tokens, kv_cache_dtype=options.kv_cache_dtype) / tensor_parallel
    return kv_bytes_per_token(model, tensor_parallel, context_tokens, kv_cache_dtype=options.kv_cache_dtype)


def kv_capacity_tokens(
    model: ModelShape,
    vram_per_gpu_gb: float,
    tensor_parallel: int,
    context_tokens: int | None = None,
    options: ServingOptions | None = None,
) -> int:
    """Tokens of context the replica's KV cache holds across all its running sequences of ``context_tokens`` each
    (0 when nothing fits)."""
    free = kv_cache_bytes_per_gpu(model, vram_per_gpu_gb, tensor_parallel, options)
    return max(0, int(free // replica_kv_bytes_per_token(model, tensor_parallel, context_tokens, options)))


def memory_per_gpu_gb(
    model: ModelShape,
    tensor_parallel: int,
    sequences: int,
    context_tokens: int,
    options: ServingOptions | None = None,
) -> float:
    """Weights + the KV cache of ``sequences`` sequences of ``context_tokens`` + the runtime reserve, per GPU."""
    kv = replica_kv_bytes_per_token(model, tensor_parallel, context_tokens, options) * sequences * context_tokens
    return (options_weight_bytes_per_gpu(model, tensor_parallel, options) + kv) / 1e9 + RUNTIME_RESERVE_GB


def fits(
    model: ModelShape,
    vram_per_gpu_gb: float,
    tensor_parallel: int,
    context_tokens: int,
    sequences: int = 1,
    options: ServingOptions | None = None,
) -> bool:
    """Whether ``sequences`` sequences of ``context_tokens`` fit next to the weights on every GPU of the group."""
    needed = memory_per_gpu_gb(model, tensor_parallel, sequences, context_tokens, options)
    return needed <= usable_gb_per_gpu(vram_per_gpu_gb)
