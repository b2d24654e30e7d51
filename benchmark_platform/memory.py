"""The memory model of serving one model version on one tensor-parallel group: pure arithmetic, no I/O.

One home for it: the matrix uses it to decide what fits, the simulator to size the KV cache that bounds how many
sequences run at once. A replica of tensor-parallel degree ``tp`` splits the weights and the KV heads over ``tp``
GPUs (KV heads are replicated when there are fewer of them than GPUs). The serving framework takes a share of each
GPU's memory (vLLM's ``gpu_memory_utilization``, 0.9 by default); what the weights and the runtime (activations,
CUDA graphs, the framework itself) leave of it is the KV cache.
"""

from __future__ import annotations

import math
from typing import Protocol

# Share of VRAM the serving framework may use (vLLM's gpu_memory_utilization default) and what activations, CUDA
# graphs and the framework itself hold outside weights and KV cache, per GPU.
USABLE_VRAM_FRACTION = 0.9
RUNTIME_RESERVE_GB = 1.5
# Activations stay in 16-bit unless the weights are full precision; weight-only int4/int8 kernels dequantize to FP16.
# FP8 deployments also keep the KV cache in FP8 (vLLM's --kv-cache-dtype fp8), which halves the KV bytes per token.
ACTIVATION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 2, "int8": 2, "int4": 2}
KV_CACHE_BYTES = ACTIVATION_BYTES | {"fp8": 1}


class ModelShape(Protocol):
    """What the memory model needs of a model version (``runners.base.ModelFacts`` and ``matrix.VersionSpec``)."""

    parameters: int
    quantization: str
    quantization_bits: int
    num_layers: int
    num_kv_heads: int
    head_dim: int


def weight_bytes(model: ModelShape) -> float:
    return model.parameters * model.quantization_bits / 8


def weight_bytes_per_gpu(model: ModelShape, tensor_parallel: int) -> float:
    return weight_bytes(model) / tensor_parallel


def kv_bytes_per_token(model: ModelShape, tensor_parallel: int = 1) -> float:
    """KV cache bytes one token occupies on one GPU: 2 (K and V) × layers × KV heads on this GPU × head dim × bytes."""
    heads_per_gpu = math.ceil(model.num_kv_heads / tensor_parallel)
    return 2 * model.num_layers * heads_per_gpu * model.head_dim * KV_CACHE_BYTES[model.quantization]


def usable_bytes_per_gpu(vram_per_gpu_gb: float) -> float:
    return vram_per_gpu_gb * USABLE_VRAM_FRACTION * 1e9


def kv_cache_bytes_per_gpu(model: ModelShape, vram_per_gpu_gb: float, tensor_parallel: int) -> float:
    """What is left for the KV cache on each GPU of the group (negative: the weights alone do not fit)."""
    reserve = RUNTIME_RESERVE_GB * 1e9
    return usable_bytes_per_gpu(vram_per_gpu_gb) - weight_bytes_per_gpu(model, tensor_parallel) - reserve


def kv_capacity_tokens(model: ModelShape, vram_per_gpu_gb: float, tensor_parallel: int) -> int:
    """Tokens of context the replica's KV cache holds across all its running sequences (0 when nothing fits)."""
    free = kv_cache_bytes_per_gpu(model, vram_per_gpu_gb, tensor_parallel)
    return max(0, int(free // kv_bytes_per_token(model, tensor_parallel)))


def memory_per_gpu_gb(model: ModelShape, tensor_parallel: int, sequences: int, context_tokens: int) -> float:
    """Weights + the KV cache of ``sequences`` sequences of ``context_tokens`` + the runtime reserve, per GPU."""
    kv = kv_bytes_per_token(model, tensor_parallel) * sequences * context_tokens
    return (weight_bytes_per_gpu(model, tensor_parallel) + kv) / 1e9 + RUNTIME_RESERVE_GB


def fits(
    model: ModelShape, vram_per_gpu_gb: float, tensor_parallel: int, context_tokens: int, sequences: int = 1
) -> bool:
    """Whether ``sequences`` sequences of ``context_tokens`` fit next to the weights on every GPU of the group."""
    usable_gb = vram_per_gpu_gb * USABLE_VRAM_FRACTION
    return memory_per_gpu_gb(model, tensor_parallel, sequences, context_tokens) <= usable_gb
