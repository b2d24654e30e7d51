"""Every constant of the serving model that was fitted on published measurements, with the rows it was fitted on.

Held-out discipline: a constant may cite only rows whose ``role`` is ``calibration`` in ``benchmarks/data/``; the rows
marked ``validation`` never feed a constant, so the accuracy quoted on them is evidence
(``test_calibration.py`` fails when a constant cites a validation row or a row that does not exist). Each constant
says what it stands for; docs/simulator-accuracy.md lists them with the figures before and after the fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchmark_platform.domain import FrameworkFacts, HardwareFacts


@dataclass(frozen=True)
class FittedConstant:
    value: float
    unit: str
    fitted_on: tuple[str, ...]  # ids of calibration rows in benchmarks/data/*.yaml
    stands_for: str


STEP_OVERHEAD = FittedConstant(
    1.8e-3,
    "s per step",
    ("vllm-ci-latency-8b-h100",),
    "host work per forward pass the GPU does not overlap (scheduling, sampling, launches)",
)
# The measured kernels' timings already hold each kernel's launch; what the host adds per step beyond them, fitted on
# the same row as the roofline's (the measured kernels predict its decode steps slower than the roofline does).
STEP_OVERHEAD_KERNELS = FittedConstant(
    0.7e-3,
    "s per step",
    ("vllm-ci-latency-8b-h100",),
    "host work per forward pass beyond the measured kernels' own times (scheduling, sampling)",
)
ALLREDUCE_LATENCY_NVLINK = FittedConstant(
    25e-6,
    "s per all-reduce",
    ("vllm-ci-latency-70b-h100x4",),
    "latency of one all-reduce over NVLink/NVSwitch; two per layer per step under tensor parallelism",
)
EAGER_PREFILL_PER_LAYER = FittedConstant(
    0.25e-3,
    "s per layer of a step with prompt tokens",
    ("sgl060-sglang-70b-h100x4-rps4",),
    "kernel launches from Python in engines that run prompt steps without CUDA graphs (SGLang, TensorRT-LLM, vLLM V0, "
    "TGI, LMDeploy)",
)
# An MoE layer launches more than a dense MLP's few kernels (router GEMM, top-k, the tokens' alignment to experts, two
# grouped expert GEMMs and their weighted sum, a shared expert where the model has one): in the same engines its
# prompt steps pay this on top, per MoE layer. Chosen by the third pass's rule turned to MoE rows: the
# lowest-concurrency TTFT row of SGLang serving an MoE model, from the source with the most such rows (the SGLang
# cookbook), the first in file order; TensorRT-LLM, which also launches prompt steps eagerly, pays it alike.
EAGER_PREFILL_PER_MOE_LAYER = FittedConstant(
    0.2e-3,
    "s per MoE layer of a step with prompt tokens",
    ("sglcb-sglang-gptoss120b-b200x8-tp8-sharegpt-c1",),
    "the extra kernels an MoE layer launches from Python in prompt steps without CUDA graphs (median TTFT of "
    "gpt-oss-120b, 36 MoE layers, at one user on eight B200s with SGLang 0.5.6: 31.8 ms published, 24.2 simulated "
    "before)",
)
# A latent-attention layer (DeepSeek-V2/V3/R1's MLA) in SGLang's prompt steps, per layer on top of the two above.
# SGLang's extend path runs more of it from Python than a standard attention layer (its choice between the MHA and
# the absorbed form, the keys' and values' decompression, RoPE on the split heads, the input quantization of each
# FP8 block-scaled projection); how much of it is host and how much GPU time one row cannot tell. Chosen by the same
# rule turned to latent-attention rows: the lowest-concurrency TTFT row of SGLang serving such a model, from the source
# with the most such rows (the SGLang cookbook), the first in file order. TensorRT-LLM runs the layer as one fused op:
# InferenceX's two TensorRT-LLM DeepSeek-R1 rows were already +22 / +4 % on TTFT without it (+94 / +85 % with it; both
# at NIM's request cost, before trtllm-serve had its own), so it pays none.
LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER: dict[str, FittedConstant] = {
    "sglang": FittedConstant(
        1.3e-3,
        "s per latent-attention layer of a step with prompt tokens",
        ("sglcb-sglang-dsr1-fp8-b200x8-tp8-rand1k1k-c1",),
        "SGLang's extra prompt-step work per latent-attention layer (median TTFT of DeepSeek-R1-0528 FP8, 61 layers, "
        "at one user on eight B200s with SGLang 0.5.6.post1, 610-token prompts: 140.8 ms published, 59.6 simulated "
        "before)",
    ),
}
# A latent-attention layer in every step of SGLang on CDNA 3 (MI300X, MI325X), per engine generation and GPU family:
# the SGLang cookbook's DeepSeek-V3 / V3.1 on eight MI300X (SGLang 0.5.7 on ROCm) decode 2.8 times slower than
# simulated at one user (24 ms a token against 8.7), where Llama 4 on the same GPUs and engine (standard attention)
# decodes as simulated and DeepSeek-R1 under SGLang 0.5.9 on CDNA 4 (InferenceX) within 4 %: the latent-attention
# decode path of that build on that family. Chosen by the rule turned to it: the lowest-concurrency TPOT row of SGLang
# serving a latent-attention model on CDNA 3, from the source with the most such rows (the cookbook), first in file
# order. Whether it is kernel time or launch time one row cannot tell; the simulator adds it to every step.
# B200 by the same rule: the cookbook's DeepSeek-R1-0528 on eight B200 (SGLang 0.5.6.post1) decodes 21 % slower than
# simulated at one user (9.15 ms a token against 7.27), where Qwen3-235B on the same GPUs and engine (standard
# attention) decodes within 16 % and its throughput within 20 %. The rule's row is the one that already fitted
# SGLang's latent-attention prompt cost (its TTFT, 140.8 ms published, is 141.8 with this step cost: 1.3 ms a layer
# stays the nearest figure on that constant's grid). InferenceX's three SGLang 0.5.9 rows of DeepSeek-R1 FP4 on four
# B200 disagree: they decode slower than simulated without it (+2 to +15 %) and pay it too (+23 to +31 %).
LATENT_ATTENTION_STEP_PER_LAYER: dict[tuple[str, str], FittedConstant] = {
    ("sglang", "cdna3"): FittedConstant(
        0.25e-3,
        "s per latent-attention layer of every step",
        ("sglcb-sglang-dsv31-fp8-mi300xx8-tp8-rand1k1k-c1",),
        "SGLang 0.5.7's latent-attention layer on MI300X beyond the roofline, per step (median TPOT of DeepSeek-V3.1 "
        "FP8, 61 layers, at one user on eight MI300X, 610-token prompts: 23.9 ms published, 8.7 simulated before)",
    ),
    ("sglang", "B200"): FittedConstant(
        0.031e-3,
        "s per latent-attention layer of every step",
        ("sglcb-sglang-dsr1-fp8-b200x8-tp8-rand1k1k-c1",),
        "SGLang 0.5.6's latent-attention layer on B200 beyond the measured MoE op and the roofline, per step (median "
        "TPOT of DeepSeek-R1-0528 FP8, 61 layers, at one user on eight B200, 610-token prompts: 9.15 ms published, "
        "7.27 simulated before, 9.16 after)",
    ),
}

# Per engine generation (``engine_generation``): the API server's work per request, seen in TTFT and E2E
# (tokenisation, chat template, scheduling, detokenisation, SSE framing), and host work per running sequence per step
# (sampling, output processing, block bookkeeping). A generation without a fitted figure pays none.
REQUEST_OVERHEAD: dict[str, FittedConstant] = {
    "vllm-v0": FittedConstant(
        1.5e-3,
        "s per request",
        ("crusoe-vllm-8b-l40s-rps1",),
        "vLLM V0's API server per request (TTFT of an 8B at 1 req/s, where nothing queues; refitted at 1.5 ms from "
        "7.5 ms once the row's --enable-chunked-prefill was modelled: its prompts now share 512-token steps with the "
        "running decodes, which the old fit had folded into this constant)",
    ),
    "vllm-v1": FittedConstant(
        21e-3,
        "s per request",
        ("wmx-vllm-qwen2.5-0.5b-l4-256-128-c1",),
        "vLLM V1's API server and engine-core hand-off per request (TTFT of a 0.5B at concurrency 1: the prefill "
        "itself takes 6 ms)",
    ),
    # SGLang and TensorRT-LLM (issue 19, third pass): one row each, chosen by a rule (the engine's lowest-concurrency
    # TTFT row from the source with the most TTFT rows of it), not by what flatters the validation median. Both fold
    # in whatever sits in front of the engine on that source (GPUStack's gateway and chat template; NIM's frontend).
    "sglang": FittedConstant(
        6.5e-3,
        "s per request",
        ("gpustack-sglang-qwen3-8b-h100-sharegpt-c4",),
        "SGLang's tokenizer manager, detokenizer and HTTP server per request (median TTFT of a Qwen3-8B at concurrency "
        "4, ShareGPT lengths, through GPUStack; 6.5 ms gives 26.4 against 27.2 ms published: the median jumps to 32 ms "
        "at 7 ms, where arrivals start to wait on each other's prefill)",
    ),
    # NVIDIA NIM serves TensorRT-LLM behind its own API frontend (generation "nim"); trtllm-serve, which the catalog
    # launches, is TensorRT-LLM's own. One figure for both overshot trtllm-serve by 33 ms on GPUStack's row (+74 %).
    # trtllm-serve's was chosen by the same rule: the lowest-concurrency TTFT row from the source with the most
    # trtllm-serve TTFT rows (InferenceX, 2 against GPUStack's 1). The closed loop jumps between 31 and 32 ms (from
    # there arrivals meet each other's whole-prompt steps); 31 ms was the grid value closest to the published TTFT
    # until the row's expert parallelism stopped paying all-to-alls (roofline.collectives_per_step): 29 ms is now.
    "nim": FittedConstant(
        53e-3,
        "s per request",
        ("nim-trtllm-70b-fp8-h100x2-5000-500-c1",),
        "NIM's API frontend and TensorRT-LLM's per request (mean TTFT of a 70B FP8 on two H100s at concurrency 1 with "
        "5,000-token prompts, NIM 1.8.0: 407 ms published, 352 ms of it the simulated prefill)",
    ),
    "tensorrt-llm": FittedConstant(
        29e-3,
        "s per request",
        ("ix-trt-dsr1-fp4-b200-tp4ep4-mtp-1k1k-c16",),
        "trtllm-serve's OpenAI server per request (median TTFT of DeepSeek-R1 FP4 on four B200 at concurrency 16, "
        "InferenceX, TensorRT-LLM 1.1.0rc2.post2: 109.0 ms published, 132.8 simulated with NIM's 53 ms, 104.0 with "
        "31 ms; refitted when expert parallelism without DP attention stopped paying all-to-alls: 110.2 at 31 ms, "
        "109.2 at 29 ms)",
    ),
}
SEQUENCE_STEP_OVERHEAD: dict[str, FittedConstant] = {
    "vllm-v1": FittedConstant(
        55e-6,
        "s per running sequence per step",
        ("wmx-vllm-qwen2.5-0.5b-l4-256-128-c32",),
        "vLLM V1's host work per sequence per step (output throughput of a 0.5B at concurrency 32, where the GPU "
        "part of a step is small)",
    ),
    # Chosen by the third pass's rule turned to batch size: the first all-at-once row (the largest batches) of the
    # source with the most SGLang calibration rows (datacrunch's H200 runs); before it SGLang paid nothing per
    # sequence and its offline rows ran 15-35 % fast.
    "sglang": FittedConstant(
        37e-6,
        "s per running sequence per step",
        ("dc-sglang-70b-h200x4-offline-rand1k-1k",),
        "SGLang's host work per running sequence per step (output throughput of a TP-4 70B with 1,000 prompts of "
        "1,024 tokens sent at once)",
    ),
}
# Latency of one all-reduce by link class (``link_class``); NVLink's is the constant above. PCIe: eight L40S reach
# each other through the hosts' PCIe switches and root complexes, so NCCL's all-reduce is slower to start and moves a
# small share of the catalog's per-GPU link figure. Infinity Fabric: RCCL's (or vLLM's custom) all-reduce across AMD
# GPUs; it replaced a CDNA 4 decode-efficiency share fitted on the same row, which scaled every byte a decode step
# reads where the row's TPOT is mostly a fixed cost per collective (160 all-reduces a step at TP 8).
ALLREDUCE_LATENCY: dict[str, FittedConstant] = {
    "nvlink": ALLREDUCE_LATENCY_NVLINK,
    "pcie": FittedConstant(
        100e-6,
        "s per all-reduce",
        ("crusoe-vllm-70b-l40sx8-rps1",),
        "latency of one all-reduce over PCIe (TPOT of a TP-8 70B decode at 1 req/s; refitted from 60 us with the "
        "row's chunked prefill modelled, where mixed steps carry the decodes)",
    ),
    "infinity-fabric": FittedConstant(
        47e-6,
        "s per all-reduce",
        ("llmd-vllm-70b-fp8-mi355xx8-4k-4k-c4",),
        "latency of one all-reduce over AMD's Infinity Fabric (TPOT of a TP-8 70B FP8 decode at concurrency 4 on "
        "eight MI355X, vLLM 0.15 on ROCm)",
    ),
}
# Share of the catalog's interconnect bandwidth an all-reduce's bytes move at, by link class (1 where not fitted).
ALLREDUCE_BANDWIDTH_SHARE: dict[str, FittedConstant] = {
    "pcie": FittedConstant(
        0.30,
        "share of interconnect_bandwidth_gbps",
        ("crusoe-vllm-70b-l40sx8-rps1",),
        "bandwidth of a large all-reduce over PCIe (TTFT of a TP-8 70B prefill at 1 req/s; refitted from 0.20 with "
        "the row's chunked prefill modelled)",
    ),
}

# Share of the framework's prefill (or decode) efficiency a GPU family's kernels reach under one engine generation,
# where that pair's calibration rows say they fall short of what the framework's efficiencies give NVIDIA GPUs
# (``engine_generation`` x ``gpu_family``; 1 elsewhere: SGLang on CDNA 4 and vLLM V1 on CDNA 3 pay none).
# CDNA 4 with vLLM 0.15 on ROCm under TP 8: the one calibration row's TTFT implies prompts at 8.5 % of it; it folds in
# whatever delays a prompt there (kernels, the per-request path in front of the engine), which one row cannot tell
# apart (docs/simulator-accuracy.md).
# CDNA 3 with vLLM V0: dstack's 2024 build (vLLM 0.6.3 from source on ROCm 6.1) ran Llama 3.1 405B on eight MI300X
# far below the spec sheet. Chosen by the third pass's rule turned to the pair: its lowest-concurrency rows from the
# source with the most of them (dstack, the only one), first in file order: for decode the 80-token prompt alone
# (TPOT), for prefill the first prompt long enough to be compute-bound, 10,000 tokens alone (TTFT). The shares change
# no answer for the catalog's vLLM (V1); they let the source's eighteen other runs check the scheduler (load, chunked
# prefill) rather than the build's kernels.
PREFILL_EFFICIENCY_SHARE: dict[tuple[str, str], FittedConstant] = {
    ("vllm-v1", "cdna4"): FittedConstant(
        0.085,
        "share of the framework's prefill efficiency",
        ("llmd-vllm-70b-fp8-mi355xx8-4k-4k-c4",),
        "prompt processing on MI355X (TTFT of a TP-8 70B FP8, 4k in, concurrency 4; refitted from 0.08 when the "
        "decode share gave way to Infinity Fabric's all-reduce latency)",
    ),
    ("vllm-v0", "cdna3"): FittedConstant(
        0.13,
        "share of the framework's prefill efficiency",
        ("dstack-vllm-405b-mi300x-sonnet10k-n1",),
        "prompt processing of vLLM 0.6.3 on ROCm 6.1 on MI300X (TTFT of Llama 3.1 405B bf16 at TP 8, one 10,000-token "
        "prompt alone, 512-token chunks: 12.3 s published, 2.5 s simulated before, 12.4 s after)",
    ),
}
DECODE_EFFICIENCY_SHARE: dict[tuple[str, str], FittedConstant] = {
    ("vllm-v0", "cdna3"): FittedConstant(
        0.66,
        "share of the framework's decode efficiency",
        ("dstack-vllm-405b-mi300x-sonnet80-n1",),
        "decode steps of vLLM 0.6.3 on ROCm 6.1 on MI300X (TPOT of Llama 3.1 405B bf16 at TP 8, one 80-token prompt "
        "alone: 50.2 ms published, 37.7 simulated before, 50.0 after)",
    ),
}


def _by_key(name: str, table: dict) -> dict[str, FittedConstant]:
    """A keyed table's constants named as ``FITTED`` lists them: NAME[key], a pair's parts joined by a comma."""
    return {f"{name}[{', '.join(key) if isinstance(key, tuple) else key}]": value for key, value in table.items()}


FITTED: dict[str, FittedConstant] = {
    "STEP_OVERHEAD": STEP_OVERHEAD,
    "STEP_OVERHEAD_KERNELS": STEP_OVERHEAD_KERNELS,
    "EAGER_PREFILL_PER_LAYER": EAGER_PREFILL_PER_LAYER,
    "EAGER_PREFILL_PER_MOE_LAYER": EAGER_PREFILL_PER_MOE_LAYER,
    **_by_key("ALLREDUCE_LATENCY", ALLREDUCE_LATENCY),
    **_by_key("ALLREDUCE_BANDWIDTH_SHARE", ALLREDUCE_BANDWIDTH_SHARE),
    **_by_key("PREFILL_EFFICIENCY_SHARE", PREFILL_EFFICIENCY_SHARE),
    **_by_key("DECODE_EFFICIENCY_SHARE", DECODE_EFFICIENCY_SHARE),
    **_by_key("LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER", LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER),
    **_by_key("LATENT_ATTENTION_STEP_PER_LAYER", LATENT_ATTENTION_STEP_PER_LAYER),
    **_by_key("REQUEST_OVERHEAD", REQUEST_OVERHEAD),
    **_by_key("SEQUENCE_STEP_OVERHEAD", SEQUENCE_STEP_OVERHEAD),
}


# The version a TensorRT-LLM row served through NVIDIA NIM carries (NIM's container version after it): the engine's own
# is not stated there, and NIM's frontend is not trtllm-serve's.
NIM_VERSION_PREFIX = "nim-"


def _fitted(table: dict, key, default: float) -> float:
    """The fitted value for ``key`` in one of the keyed tables above, or ``default`` where nothing was fitted for it."""
    constant = table.get(key)
    return constant.value if constant else default


def engine_generation(framework: FrameworkFacts) -> str:
    """The engine and, where its scheduler or its server changed, its generation: vLLM's V0 engine (before 0.8) and V1
    differ, and TensorRT-LLM behind NVIDIA NIM's frontend ("nim") differs from trtllm-serve."""
    if framework.name == "tensorrt-llm" and framework.version.startswith(NIM_VERSION_PREFIX):
        return "nim"
    if framework.name == "vllm":
        # a version that names no release ("latest", "nightly", a commit) is taken as today's engine, V1: V0's fitted
        # figures (its shares on CDNA 3 above all) describe 2024 builds and must not reach it by a parsing accident
        release = re.match(r"v?(\d+)\.(\d+)", framework.version)
        return "vllm-v0" if release and (int(release[1]), int(release[2])) < (0, 8) else "vllm-v1"
    return framework.name


def link_class(hardware: HardwareFacts) -> str:
    """How the GPUs of a node talk: NVLink/NVSwitch, PCIe, or AMD's Infinity Fabric (unknown: PCIe)."""
    link = (hardware.interconnect or "pcie").lower()
    if link.startswith("nvlink"):
        return "nvlink"
    if "infinity" in link or link.startswith("xgmi"):
        return "infinity-fabric"
    return "pcie"


def gpu_family(hardware: HardwareFacts) -> str:
    """The GPU's architecture family for family-level fits: AMD CDNA 3 (MI300X, MI325X) and CDNA 4 (MI350X, MI355X);
    NVIDIA GPUs are their own type."""
    gpu = hardware.gpu_type.upper()
    if gpu.startswith(("MI350", "MI355")):
        return "cdna4"
    if gpu.startswith(("MI300", "MI325")):
        return "cdna3"
    return hardware.gpu_type


def efficiencies(hardware: HardwareFacts, framework: FrameworkFacts) -> tuple[float, float]:
    """The prefill (of peak FLOPs) and decode (of peak bandwidth) efficiencies a step runs at: the framework's own,
    times the shares this engine generation was fitted to reach on this GPU's family (1 where none was fitted)."""
    pair = (engine_generation(framework), gpu_family(hardware))
    return (
        framework.prefill_efficiency * _fitted(PREFILL_EFFICIENCY_SHARE, pair, default=1.0),
        framework.decode_efficiency * _fitted(DECODE_EFFICIENCY_SHARE, pair, default=1.0),
    )


def request_overhead_seconds(framework: FrameworkFacts) -> float:
    return _fitted(REQUEST_OVERHEAD, engine_generation(framework), default=0.0)


def latent_attention_eager_prefill_seconds(framework: FrameworkFacts) -> float:
    """Prompt-step seconds per latent-attention layer beyond the eager launch costs every engine generation pays."""
    return _fitted(LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER, engine_generation(framework), default=0.0)


def latent_attention_step_seconds(hardware: HardwareFacts, framework: FrameworkFacts) -> float:
    """Seconds every step adds per latent-attention layer on this GPU family and engine generation (none unfitted)."""
    return _fitted(LATENT_ATTENTION_STEP_PER_LAYER, (engine_generation(framework), gpu_family(hardware)), default=0.0)


def sequence_step_overhead_seconds(framework: FrameworkFacts) -> float:
    return _fitted(SEQUENCE_STEP_OVERHEAD, engine_generation(framework), default=0.0)


def allreduce_bandwidth_share(hardware: HardwareFacts) -> float:
    return _fitted(ALLREDUCE_BANDWIDTH_SHARE, link_class(hardware), default=1.0)


def allreduce_latency_seconds(hardware: HardwareFacts) -> float:
    """One all-reduce's latency over the node's link class; a class without its own fit takes NVLink's."""
    return ALLREDUCE_LATENCY.get(link_class(hardware), ALLREDUCE_LATENCY_NVLINK).value
