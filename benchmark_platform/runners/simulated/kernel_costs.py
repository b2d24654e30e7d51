"""Step costs from measured kernel timings: NVIDIA's ``aiconfigurator-core`` tables, per operation, behind the
``step_costs.StepCostModel`` interface.

``aiconfigurator-core`` (the optional ``kernels`` extra) ships GEMM, attention and all-reduce latencies measured on
A100-SXM, H100-SXM, H200, B200, B300, GB200, L40S and RTX PRO 6000 under vLLM, SGLang and TensorRT-LLM, and an engine
that interpolates them. A step here is what its own dense-model estimator counts (``sdk/models/llama.py``), per layer
times the layers, on one tensor-parallel GPU:

- at ``tokens`` rows: the QKV, output, gate/up and down GEMMs, the norms and the activation (its empirical memory-op
  model), and, under tensor parallelism, two all-reduces of the tokens' hidden states (its custom all-reduce table;
  NCCL's on PCIe-only GPUs beyond two, as vLLM runs them);
- at one row per sequence sampled in the step: the lm_head GEMM (vLLM computes logits only for those);
- attention: generation attention of the step's decodes at their mean context, and context attention of its prompt
  chunks by their query-key pairs.

The engine is asked once per shape, on construction, over a grid (token counts, decode batch x context, prompt length);
a call then interpolates those tables with numpy, so the simulation stays fast. Beyond a grid's ends the tables are
extrapolated linearly (the measured ranges end at 32,768 GEMM rows, a decode batch of 2,048 at 131,072 tokens of
context, and prompts of 16,384 tokens). ``Predictor.in_measured_range`` says whether the engine answered every
table-backed operation of the shape from measured rows rather than from its speed-of-light or empirical formulas.

The interface gives a step's totals (tokens, query-key pairs, cached tokens), not its mix. Decode-only steps are exact
(pairs equal cached tokens). A step with a prompt chunk is split by the pairs in excess of the cached tokens: a chunk of
C tokens from the start of its prompt has C (C - 1) / 2 of them, and a decode attends to at least as many tokens as
that chunk; the rest of the step's tokens and cached tokens are its decodes.

A mixture-of-experts model is costed by both (``MoeLayerStepCosts``): its routed experts by the engine's measured
MoE op (the fused grouped-GEMM kernels, per MoE layer, at the step's token count, over its tables of expert shapes,
tensor- and expert-parallel splits and weight precisions, with tokens spread over the experts by its default power
law), everything else (attention, the dense and shared layers, the collectives) by the roofline. The grouped GEMMs
run far below the roofline's peak where each expert's slice is thin (DeepSeek-R1's 2,048-wide experts split eight
ways: 14 % of the H200's FP8 peak at 8,192 tokens), which the roofline cannot know. A replica with data-parallel
attention falls back to the roofline: the op has an attention-DP mode, but which token count it takes per rank was not
checked against its tables, so it is not asked.

The model's intermediate size comes from its facts; where they lack it, from the parameter count: what the layers'
attention and the embeddings (and an untied lm_head of ``vocab_size`` rows) leave, as a gated MLP of three matrices.
Without a vocabulary size the lm_head is not costed separately and its weights count as MLP weights, as the roofline
counts every parameter per token. Which resource bounds a step (``compute_bound``) is the roofline's judgement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import re
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from benchmark_platform.domain import ServingOptions
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts
from benchmark_platform.runners.simulated import calibration, roofline
from benchmark_platform.runners.simulated.step_costs import (
    MOE_LAYERS_ONLY,
    KernelsUnavailable,
    Predictor,
    PredictorChoice,
)

# Our GPU types (catalogs/hardware.yaml) -> aiconfigurator systems with measured ("SILICON") data.
SYSTEMS = {
    "A100-80GB": "a100_sxm",
    "H100-SXM": "h100_sxm",
    "H200": "h200_sxm",
    "B200": "b200_sxm",
    "B300": "b300_sxm",
    "GB200": "gb200",
    "L40S": "l40s",
    "RTX-PRO-6000": "rtx_pro_6000_server",
}
# Characters of the package's error that a result's fallback note keeps.
REASON_LENGTH = 200
# Systems whose GPUs talk over PCIe only: vLLM runs NCCL's all-reduce there beyond two GPUs (its custom all-reduce
# needs NVLink), so the NCCL table answers.
PCIE_SYSTEMS = {"l40s", "rtx_pro_6000_server"}
# GPUs it has no measurements of, and why (the others it does not know at all).
NOT_MEASURED = {
    "A100-40GB": "its A100 tables were measured on the 80 GB SXM part, which has 31 % more memory bandwidth",
    "A100-80GB-PCIe": "it has only speed-of-light figures for the PCIe A100",
    "H100-PCIe": "it has only speed-of-light figures for the PCIe H100",
    "H100-NVL": "it has only speed-of-light figures for PCIe H100s",
    "L4": "it has only speed-of-light figures for the L4",
    "A10G": "it has no figures for the A10G",
}
# Our frameworks -> its backends. Each backend's data version is the package's "current" slot for the system.
BACKENDS = {"vllm": "vllm", "sglang": "sglang", "tensorrt-llm": "trtllm", "trtllm": "trtllm"}
# Our quantizations -> its GEMM quant modes (fp8: per-tensor FP8 weights and activations; int8: W8A8 SmoothQuant;
# int4: weight-only AWQ/GPTQ) and KV-cache dtypes (``ServingOptions.kv_cache_dtype``: "auto" is 16-bit, as
# memory.py counts it).
GEMM_QUANT = {"fp16": "bfloat16", "bf16": "bfloat16", "fp8": "fp8", "int8": "sq", "int4": "int4_wo"}
KV_QUANT = {"fp8": "fp8", "auto": "bfloat16"}
# Our weight precisions -> its MoE quant modes: the released FP8 MoE checkpoints (DeepSeek's, Qwen3's) carry 128 x 128
# block scales; FP4 by scheme. MXFP4 (gpt-oss's) is asked as 4-bit weights with 16-bit activations on every GPU, as
# vLLM runs it on Hopper and as vLLM's B200 tables hold it; SGLang and TensorRT-LLM on Blackwell can run MXFP4 x MXFP8
# (about twice as fast at 4,096 tokens in SGLang's B200 tables), which this mapping does not ask for.
MOE_QUANT = {"fp16": "bfloat16", "bf16": "bfloat16", "fp8": "fp8_block", "int4": "int4_wo"}
MOE_FP4_QUANT = {"mxfp4": "w4a16_mxfp4", "nvfp4": "nvfp4"}
# How a step's tokens spread over the experts: a power law of alpha 1.01, its DeepSeek estimators' default (its
# generic MoE model uses 1.2: up to 13 % apart per layer at 16 tokens, 6 % or less from 64), not uniform routing.
MOE_DISTRIBUTION = "power_law_1.01"
# Grids the engine is asked on: GEMM rows, decode batch x mean context, prompt lengths (the measured axes' points).
TOKEN_GRID = np.array(sorted({2**i for i in range(16)} | {3 * 2**i for i in range(14)}), dtype=float)
DECODE_BATCH_GRID = 2.0 ** np.arange(12)
CONTEXT_GRID = 2.0 ** np.arange(18)
PROMPT_GRID = np.array(
    [1, 16, 32, 64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 10240, 12288, 16384], dtype=float
)
# Where the engine's answer came from the measured tables (the others: speed-of-light or empirical formulas).
MEASURED_SOURCES = {"silicon", "mixed"}
# Operations it models by formula everywhere (memory-bound element-wise kernels), left out of that judgement.
FORMULA_OPS = {"add_norm", "activation"}


@dataclass(frozen=True, eq=False)
class KernelStepCosts:
    """Seconds of GPU time per forward pass of one replica, interpolated from measured kernel tables (see the module
    docstring for what a step counts). Every method takes plain numbers or numpy arrays."""

    tensor_parallel: int
    predictor: Predictor
    token_s: np.ndarray  # per TOKEN_GRID row count: the layers' GEMMs, norms, activation and all-reduces
    logits_s: np.ndarray  # per TOKEN_GRID row count: the lm_head GEMM
    decode_attention_s: np.ndarray  # DECODE_BATCH_GRID x CONTEXT_GRID: generation attention, all layers
    prompt_pairs: np.ndarray  # query-key pairs of one prompt of each PROMPT_GRID length
    prompt_attention_s: np.ndarray  # context attention of that prompt, all layers
    roofline: roofline.StepCosts  # judges which resource bounds a step
    step_overhead_s: float = calibration.STEP_OVERHEAD_KERNELS.value

    def gpu_seconds(self, tokens, pairs, kv_tokens):
        # not broadcast: a decode run's token count stays one number, looked up once for all its steps
        tokens, pairs, kv_tokens = (np.asarray(x, dtype=float) for x in (tokens, pairs, kv_tokens))
        prompt_tokens, decodes, decode_kv = step_mix(tokens, pairs, kv_tokens)
        batch = np.maximum(decodes, 1.0)
        decode_attention = _interp2(
            DECODE_BATCH_GRID, CONTEXT_GRID, self.decode_attention_s, batch, decode_kv / batch
        ) * (decodes > 0)
        if not prompt_tokens.any():  # decode-only steps (the simulation's long runs): every token is sampled
            return decode_attention + _interp(TOKEN_GRID, self.token_s + self.logits_s, tokens)
        prompt_attention = _interp(self.prompt_pairs, self.prompt_attention_s, pairs - decode_kv) * (prompt_tokens > 0)
        sampled = decodes + (prompt_tokens > 0)
        return (
            decode_attention
            + prompt_attention
            + _interp(TOKEN_GRID, self.token_s, tokens)
            + _interp(TOKEN_GRID, self.logits_s, sampled)
        )

    def compute_bound(self, tokens, pairs, kv_tokens):
        return self.roofline.compute_bound(tokens, pairs, kv_tokens)


@dataclass(frozen=True, eq=False)
class MoeLayerStepCosts:
    """A mixture-of-experts replica's forward pass: the measured MoE op for the routed experts of each MoE layer, the
    roofline for the rest (``rest``: the whole model's roofline with the routed experts' reads and FLOPs taken out)."""

    tensor_parallel: int
    predictor: Predictor
    rest: roofline.StepCosts
    moe_layers: int
    moe_layer_s: np.ndarray  # per TOKEN_GRID token count: one MoE layer's routed experts, measured
    roofline: roofline.StepCosts  # the whole model's: judges which resource bounds a step

    @property
    def step_overhead_s(self) -> float:
        return self.rest.step_overhead_s  # the roofline's: it costs all but the expert GEMMs

    def gpu_seconds(self, tokens, pairs, kv_tokens):
        experts = self.moe_layers * _interp(TOKEN_GRID, self.moe_layer_s, np.asarray(tokens, dtype=float))
        return self.rest.gpu_seconds(tokens, pairs, kv_tokens) + experts

    def compute_bound(self, tokens, pairs, kv_tokens):
        return self.roofline.compute_bound(tokens, pairs, kv_tokens)


def step_mix(tokens, pairs, kv_tokens):
    """(prompt tokens, decodes, cached tokens the decodes attend to) of steps given by their totals (arrays)."""
    excess = np.maximum(pairs - kv_tokens, 0.0)
    if not excess.any():
        return excess, tokens, kv_tokens
    prompt_tokens = np.minimum(np.where(excess > 0, (1 + np.sqrt(1 + 8 * excess)) / 2, 0.0), tokens)
    left_kv = kv_tokens - prompt_tokens
    decodes = np.where(
        prompt_tokens > 0,
        np.minimum(tokens - prompt_tokens, np.floor(left_kv / np.maximum(prompt_tokens, 1.0))),
        tokens,
    )
    decodes = np.maximum(np.floor(decodes), 0.0)
    decode_kv = np.where(decodes > 0, np.maximum(left_kv, decodes), 0.0)
    return prompt_tokens, decodes, decode_kv


def _segment(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grid segment holding each x (the first or last one beyond the ends) and x's position along it."""
    x = np.maximum(x, grid[0])
    i = np.minimum(np.maximum(grid.searchsorted(x) - 1, 0), len(grid) - 2)  # np.clip costs twice as much
    return i, (x - grid[i]) / (grid[i + 1] - grid[i])


def _interp(grid: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Piecewise-linear in x, extrapolated along the last segment (costs grow linearly beyond the measured sizes)."""
    slope = (values[-1] - values[-2]) / (grid[-1] - grid[-2])
    return np.interp(x, grid, values) + np.maximum(x - grid[-1], 0.0) * slope


def _interp2(grid_a: np.ndarray, grid_b: np.ndarray, table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    i, u = _segment(grid_a, a)
    j, v = _segment(grid_b, b)
    low = table[i, j] * (1 - u) + table[i + 1, j] * u
    high = table[i, j + 1] * (1 - u) + table[i + 1, j + 1] * u
    return low * (1 - v) + high * v


@dataclass(frozen=True)
class LayerShape:
    """What the kernel tables are asked for: one tensor-parallel GPU's share of the model's operations."""

    layers: int
    hidden: int
    heads: int  # attention heads on one GPU
    kv_heads: int  # KV heads on one GPU (replicated when fewer than the GPUs)
    head_dim: int
    intermediate: int  # MLP width on one GPU
    vocab: int  # lm_head rows on one GPU; 0 when not costed separately
    tensor_parallel: int
    gemm_quant: str
    kv_quant: str


def layer_shape(model: ModelFacts, tensor_parallel: int, kv_cache_dtype: str = "auto") -> LayerShape:
    """The model's per-GPU shape; ``KernelsUnavailable`` when its precision or head layout cannot be asked for."""
    if model.quantization not in GEMM_QUANT:
        raise KernelsUnavailable(f"aiconfigurator-core has no GEMM kernels for {model.quantization} weights")
    tp = tensor_parallel
    heads = model.num_attention_heads or model.hidden_size // model.head_dim
    if heads % tp:
        raise KernelsUnavailable(f"{heads} attention heads do not split over tensor parallel {tp}")
    vocab = model.vocab_size or 0
    attention = model.hidden_size * model.head_dim * (2 * heads + 2 * model.num_kv_heads)
    intermediate = model.intermediate_size or _derived_intermediate(model, attention, vocab)
    if intermediate < tp:
        raise KernelsUnavailable(
            f"the parameter count of {model.version_key} leaves no MLP for its layers; give intermediate_size"
        )
    return LayerShape(
        layers=model.num_layers,
        hidden=model.hidden_size,
        heads=heads // tp,
        kv_heads=math.ceil(model.num_kv_heads / tp),  # as memory.kv_bytes_per_token counts them
        head_dim=model.head_dim,
        intermediate=intermediate // tp,
        vocab=vocab // tp,
        tensor_parallel=tp,
        gemm_quant=GEMM_QUANT[model.quantization],
        kv_quant=KV_QUANT[kv_cache_dtype],
    )


def _derived_intermediate(model: ModelFacts, attention_per_layer: int, vocab: int) -> int:
    """The width of a gated MLP (three hidden x width matrices) that the parameters leave after attention, the
    embedding table and an untied lm_head."""
    embeddings = 2 * vocab * model.hidden_size
    per_layer = (model.parameters - embeddings) / model.num_layers - attention_per_layer
    return max(0, math.floor(per_layer / (3 * model.hidden_size)))


def kernel_step_costs(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    *,
    tensor_parallel: int,
    requested: PredictorChoice = "kernels",
    options: ServingOptions | None = None,
) -> KernelStepCosts | MoeLayerStepCosts:
    """The measured-kernel step costs of ``model`` on ``tensor_parallel`` GPUs of ``hardware`` under ``framework``
    (an MoE model's: its expert layers measured, the rest the roofline's).

    Raises ``ImportError`` without ``aiconfigurator-core``, ``KernelsUnavailable`` (saying why) where it has no
    measurements for this GPU, engine, precision or shape."""
    options = options or ServingOptions()
    if model.moe is not None:
        return _moe_layer_step_costs(model, hardware, framework, tensor_parallel, requested, options)
    if options.expert_parallel > 1 or options.data_parallel_attention:
        raise KernelsUnavailable("expert parallelism and data-parallel attention are not in the measured kernels")
    package_version = _package_version()  # ImportError without it, before anything else is asked
    system, backend = _system(hardware), _backend(framework)
    shape = layer_shape(model, tensor_parallel, options.kv_cache_dtype)
    tables = _tables(system, backend, shape)
    version, token_s, logits_s, decode_attention_s, prompt_attention_s, measured = tables
    return KernelStepCosts(
        tensor_parallel=tensor_parallel,
        predictor=_predictor(package_version, f"{system}/{backend}/{version}", measured, requested),
        token_s=token_s,
        logits_s=logits_s,
        decode_attention_s=decode_attention_s,
        prompt_pairs=PROMPT_GRID * (PROMPT_GRID + 1) / 2,
        prompt_attention_s=prompt_attention_s,
        roofline=roofline.step_costs(model, hardware, framework, tensor_parallel=tensor_parallel, options=options),
    )


def _moe_layer_step_costs(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    tensor_parallel: int,
    requested: PredictorChoice,
    options: ServingOptions,
) -> MoeLayerStepCosts:
    """The step costs of an MoE ``model``: its routed experts from the measured MoE op, the rest from the roofline.

    ``KernelsUnavailable`` where the tables have no MoE op for this GPU, engine, expert shape, split or precision,
    and under data-parallel attention (not in the tables)."""
    if options.data_parallel_attention:
        raise KernelsUnavailable("data-parallel attention is left to the roofline (its MoE op's DP mode is not asked)")
    package_version = _package_version()  # ImportError without it, before anything else is asked
    system, backend = _system(hardware), _backend(framework)
    moe = model.moe
    ep = options.expert_parallel
    # plain tensor parallelism slices every expert over the group; expert parallelism keeps them whole per rank
    split = (1, ep) if ep > 1 else (tensor_parallel, 1)
    shape = (model.hidden_size, moe.expert_intermediate_size, moe.experts_per_token, moe.experts, *split)
    version, moe_layer_s, measured = _moe_table(system, backend, shape, _moe_quant(model))
    whole = roofline.step_costs(model, hardware, framework, tensor_parallel=tensor_parallel, options=options)
    routed_active = model.routed_expert_parameters() * moe.experts_per_token / moe.experts
    return MoeLayerStepCosts(
        tensor_parallel=tensor_parallel,
        predictor=_predictor(package_version, f"{system}/{backend}/{version} {MOE_LAYERS_ONLY}", measured, requested),
        rest=dataclasses.replace(
            whole, expert_weights_s=0.0, token_s=whole.token_s * (1 - routed_active / model.active_parameters())
        ),
        moe_layers=model.moe_layers(),
        moe_layer_s=moe_layer_s,
        roofline=whole,
    )


def _moe_quant(model: ModelFacts) -> str:
    if model.quantization == "fp4":
        quant = MOE_FP4_QUANT.get(model.fp4_scheme or "")
    else:
        quant = MOE_QUANT.get(model.quantization)
    if quant is None:
        raise KernelsUnavailable(f"aiconfigurator-core has no MoE kernels for {model.quantization} experts")
    return quant


@functools.lru_cache(maxsize=64)
def _moe_table(system: str, backend: str, shape: tuple[int, ...], quant: str):
    """(data version, one MoE layer's seconds per TOKEN_GRID count, measured): the MoE op asked once per shape."""
    import aiconfigurator_core.sdk.operations as ops
    from aiconfigurator_core.sdk import common, engine

    version, _, handle = _engine(system, backend)
    hidden, intermediate, topk, experts, moe_tp, moe_ep = shape
    op = ops.MoE(
        "moe", 1, hidden, intermediate, topk, experts, moe_tp, moe_ep, common.MoEQuantMode[quant], MOE_DISTRIBUTION, 1
    )
    ops_json = engine.build_ops_json([op])
    sources: set[str] = set()
    seconds = []
    with _quiet():
        try:
            for tokens in TOKEN_GRID:
                [(_, latency, _, source)] = handle.evaluate_ops_json(
                    ops_json, is_context=False, batch_size=int(tokens), s=1
                )
                sources.add(source)
                seconds.append(latency / 1e3)  # its latencies are in ms
        except Exception as error:  # PerfDataNotAvailableError and kin: the shape lies outside its tables
            raise KernelsUnavailable(
                f"aiconfigurator-core's {system}/{backend}/{version} tables have no MoE op for this model: "
                f"{_reason(error)}"
            ) from error
    # the measured rows dip by up to 7 % between neighbouring token counts; a step of more tokens never costs less
    return version, np.maximum.accumulate(seconds), sources <= MEASURED_SOURCES


def _predictor(package_version: str, data_version: str, measured: bool, requested: PredictorChoice) -> Predictor:
    return Predictor(
        backend="kernels",
        version=package_version,
        data_version=data_version,
        in_measured_range=measured,
        requested=requested,
    )


def _package_version() -> str:
    """aiconfigurator-core's version; ``ImportError`` (the caller falls back to the roofline) when it is missing."""
    import aiconfigurator_core  # noqa: F401

    return metadata.version("aiconfigurator-core")


def _system(hardware: HardwareFacts) -> str:
    if hardware.vendor != "nvidia":
        raise KernelsUnavailable(
            f"aiconfigurator-core has no measurements of {hardware.vendor} GPUs ({hardware.gpu_type})"
        )
    if hardware.gpu_type in NOT_MEASURED:
        raise KernelsUnavailable(f"no measured kernels for {hardware.gpu_type}: {NOT_MEASURED[hardware.gpu_type]}")
    if hardware.gpu_type not in SYSTEMS:
        raise KernelsUnavailable(f"aiconfigurator-core has no measurements of {hardware.gpu_type}")
    return SYSTEMS[hardware.gpu_type]


def _backend(framework: FrameworkFacts) -> str:
    if framework.name not in BACKENDS:
        raise KernelsUnavailable(
            f"aiconfigurator-core has no measurements of {framework.name} (only vLLM, SGLang, TRT-LLM)"
        )
    return BACKENDS[framework.name]


@contextlib.contextmanager
def _quiet():
    """Its loader logs a warning per fallback table it reads; they say nothing about our answers."""
    logger = logging.getLogger("aiconfigurator_core")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=16)
def _engine(system: str, backend: str):
    """(data version, database, a model-less engine over its tables), loaded once per process."""
    from aiconfigurator_core.sdk import engine, perf_database

    with _quiet():
        try:
            database = perf_database.get_database(system, backend, "current")
        except Exception as error:  # its loader raises several types; each means "no tables here"
            raise KernelsUnavailable(f"aiconfigurator-core has no {backend} tables for {system} ({error})") from error
        if database is None:
            raise KernelsUnavailable(f"aiconfigurator-core has no {backend} tables for {system}")
        return database.version, database, engine.EngineHandle.for_database(database)


@functools.lru_cache(maxsize=64)
def _tables(system: str, backend: str, shape: LayerShape):
    """(data version, token_s, logits_s, decode_attention_s, prompt_attention_s, measured): the engine asked on the
    grids for one shape, once per process."""
    import aiconfigurator_core.sdk.operations as ops
    from aiconfigurator_core.sdk import common, engine

    version, database, handle = _engine(system, backend)
    gemm = common.GEMMQuantMode[shape.gemm_quant]
    kv = common.KVCacheQuantMode[shape.kv_quant]
    layers, h = shape.layers, shape.hidden
    token_ops = [
        ops.GEMM("qkv", layers, (shape.heads + 2 * shape.kv_heads) * shape.head_dim, h, gemm),
        ops.GEMM("output", layers, h, shape.heads * shape.head_dim, gemm, low_precision_input=True),
        ops.GEMM("gate_up", layers, 2 * shape.intermediate, h, gemm),
        ops.GEMM("down", layers, h, shape.intermediate, gemm, low_precision_input=True),
        ops.ElementWise("add_norm", 2 * layers, 2 * h, 2 * h, 0.8),
        ops.ElementWise("activation", layers, 2 * shape.intermediate, shape.intermediate, 0.8),
    ]
    if shape.tensor_parallel > 2 and system in PCIE_SYSTEMS:
        token_ops.append(
            ops.NCCL("all_reduce", 2 * layers, "all_reduce", h, shape.tensor_parallel, common.CommQuantMode.half)
        )
    elif shape.tensor_parallel > 1:
        token_ops.append(ops.CustomAllReduce("all_reduce", 2 * layers, h, shape.tensor_parallel))
    # its GEMM tables end at 65,536 columns: a wider lm_head is costed as equal slices
    slices = max(1, math.ceil(shape.vocab / 65536))
    logits_ops = [ops.GEMM("lm_head", slices, math.ceil(shape.vocab / slices), h, common.GEMMQuantMode.bfloat16)]
    decode_ops = [ops.GenerationAttention("decode", layers, shape.heads, shape.kv_heads, kv, head_size=shape.head_dim)]
    prompt_ops = [
        ops.ContextAttention(
            "prompt", layers, shape.heads, shape.kv_heads, kv, common.FMHAQuantMode.bfloat16, head_size=shape.head_dim
        )
    ]
    sources: set[str] = set()

    def ask(op_list, is_context: bool, batch: float, s: float) -> float:
        results = handle.evaluate_ops_json(
            engine.build_ops_json(op_list), is_context=is_context, batch_size=int(batch), s=int(s)
        )
        sources.update(source for name, _, _, source in results if name not in FORMULA_OPS)
        return sum(latency for _, latency, _, _ in results) / 1e3  # its latencies are in ms

    with _quiet():
        # private in 0.12.0 (pinned): sets the attention ops' kernel order from the loaded tables, as its estimator does
        engine._resolve_attention_lane_orders(decode_ops + prompt_ops, database, None)
        try:
            token_s = np.array([ask(token_ops, False, m, 1) for m in TOKEN_GRID])
            logits_s = np.array([ask(logits_ops, False, m, 1) if shape.vocab else 0.0 for m in TOKEN_GRID])
            decode_s = np.array([[ask(decode_ops, False, b, s) for s in CONTEXT_GRID] for b in DECODE_BATCH_GRID])
            prompt_s = np.array([ask(prompt_ops, True, 1, length) for length in PROMPT_GRID])
        except Exception as error:  # PerfDataNotAvailableError and kin: the shape lies outside its tables
            raise KernelsUnavailable(
                f"aiconfigurator-core's {system}/{backend}/{version} tables do not cover this model: {_reason(error)}"
            ) from error
    measured = sources <= MEASURED_SOURCES
    return version, token_s, logits_s, decode_s, prompt_s, measured


def _reason(error: Exception) -> str:
    """Its error's first line without the file paths, short enough for a result's fallback note (cut at a word, and
    marked so, where it is longer)."""
    line = re.sub(r" at /\S+", "", str(error).splitlines()[0]).removeprefix("perf database error: ")
    if len(line) <= REASON_LENGTH:
        return line
    word_end = line.rfind(" ", 0, REASON_LENGTH)
    return line[: word_end if word_end > 0 else REASON_LENGTH].rstrip(" ,;:(") + " ..."
