"""How close is the continuous-batching simulator to published serving measurements? And how fast is it?

Loads the published-measurement files under ``benchmarks/data/`` (measured vLLM / SGLang / TensorRT-LLM serving
results with their sources). Every row is either a ``calibration`` row (it may feed a fitted constant or efficiency)
or a ``validation`` row (it never does); accuracy is quoted on validation rows only. The script runs
``serving_sim.simulate_serving`` for every row it can represent and prints, per role and per predictor, each row's
error in output throughput, TTFT p50 and TPOT p50, then the median absolute errors overall, per GPU family, per engine,
per concurrency band and per metric, against the goals of docs/simulator-accuracy.md. Facts come from the bundled
catalogs (hardware.yaml, frameworks.yaml) and the example model manifests; a row whose model has no manifest takes its
shape from the file's ``model_shapes``. Then it times the simulator on a few loads (best of five, CPU time).

    python benchmarks/simulator_accuracy.py [--data PATH ...] [--predictor auto|roofline|kernels] [--no-speed]
    python benchmarks/simulator_accuracy.py --against PATH ...   # imported InferenceX rows, every predictor
    python benchmarks/simulator_accuracy.py --write-held-out   # the validation errors stated beside every result

``--against`` scores every predictor on public measurements instead: InferenceX's dump (zip or folder) or API JSON,
read and mapped as ``import-results --format inferencex`` reads them (no database). Each row is a validation row,
simulated with the serving options it states (expert parallelism, DP attention, speculative method); those the
simulator cannot represent (disaggregated serving, a model without architecture facts, options ``ServingOptions``
refuses) are listed with the reason. InferenceX draws lengths from [0.8 L, L]: the simulator draws them the same way,
around their mean, 0.9 L.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import math
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import yaml

from benchmark_platform import catalogs, manifests
from benchmark_platform.domain import MixtureOfExperts, ServingOptions, hardware_facts_from_chip
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts
from benchmark_platform.runners.simulated import calibration, held_out
from benchmark_platform.runners.simulated.serving_sim import ServingSimulation, simulate_serving
from benchmark_platform.runners.simulated.step_costs import PREDICTOR_CHOICES

DATA_DIR = Path(__file__).parent / "data"
# Published measurements: serving benchmarks, vLLM's CI latency tests (throughput derived from batch latency), and the
# held-out rows collected for validation only.
DATA_FILES = tuple(
    DATA_DIR / name
    for name in (
        "published_serving.yaml",
        "published_latency_ci.yaml",
        "validation_serving.yaml",
        "validation_serving_moe.yaml",
    )
    if (DATA_DIR / name).exists()
)
# config.json facts of MoE models without a bundled manifest (Qwen3-235B-A22B), for the MoE rows.
MOE_FACTS_FILE = DATA_DIR / "moe_model_facts.yaml"
# Mean lengths for the rows whose sources used variable lengths (the simulator serves fixed ones).
INPUTS_FILE = DATA_DIR / "simulation_inputs.yaml"
ROLES = ("calibration", "validation")
# The goals on validation rows (issue 19): median |error| per metric, at most BAND_GOAL in every concurrency band and
# no row with concurrency up to 256 off by more than ROW_LIMIT on any metric.
# TTFT and TPOT are compared at the statistic the source publishes: the median, else the mean (AIPerf, NIM tables).
GOALS = {"output_throughput": 0.15, "ttft": 0.25, "tpot": 0.10}
BAND_GOAL = 0.25
# What the validation medians may not exceed today (a ratchet: lowered as the model improves, never raised without
# saying why in docs/simulator-accuracy.md); the goals above are the target.
# Issue 19's third pass (per-engine request cost, prompt admission with preemption, per-engine scheduler defaults)
# took the dense medians to 9.3 / 29.1 / 9.4 %. Nineteen rows added after it (GPUStack's Qwen3-32B on H100 and
# Qwen3-14B on A100, all prompts at once; chosen before they were simulated) took the throughput median to 12.8 %:
# the throughput ceiling rose from 10 to 13 % with them, nothing else changed (the doc's "Rows added in stop 20").
# SGLang's per-sequence host cost (fitted on a calibration row) then took them to 12.2 / 28.4 / 8.2 %, Infinity
# Fabric's all-reduce latency in place of the CDNA 4 decode share (refitted on that share's calibration row) to
# 10.9 / 28.4 / 6.2 %: the throughput and TPOT ceilings are now below the goals. One row of a new source (the sixth
# pass, taken by its rule before it was simulated: Qwen3-32B on one H100 NVL, +56 %) took the throughput median to
# 11.2 %, and the throughput ceiling rose from 11 to 12 % with it, nothing else changed. Six rows of the twelfth pass
# (kvcached's SGLang runs of Llama 3.2 3B on one A100 at 8-32 req/s, taken by its rule before they were simulated:
# TTFT +13 to +60 % at 8 and 16 req/s) took the medians to 10.6 / 30.04 / 6.2 %: the TTFT ceiling rose from 29 to 31 %
# with them and for no other reason, the throughput ceiling fell from 12 to 11 %. trtllm-serve's own request cost,
# apart from NIM's frontend (calibration.REQUEST_OVERHEAD), took the TTFT median to 28.4 %: the TTFT ceiling fell from
# 31 to 29 %. The fifteenth pass's two rows (Qwen2.5-3B on one MI300X with vLLM 0.27 at concurrency 4, bf16 and FP8;
# taken by its rule before they were simulated: TTFT +127 / -33 %) took the TTFT median to 30.0 %: the TTFT ceiling rose
# from 29 to 31 % with them and for no other reason. The measured kernels answering the three dense GPU x engine pairs
# where they beat the roofline by the rule (A100 x SGLang, A100 x TensorRT-LLM, H100 x SGLang; step_costs.AUTO_BACKEND)
# took them to 9.6 / 26.4 / 5.6 %: the ceilings fell with it. These ceilings hold the dense rows of every source not in
# SOURCE_CEILINGS.
VALIDATION_CEILINGS = {"output_throughput": 0.10, "ttft": 0.27, "tpot": 0.06}
# Sources whose rows the ratchet holds apart, by ``source_of``: one source's many rows far off would otherwise carry
# the dense medians (each would be a high percentile of the other rows), and a regression elsewhere could pass unseen.
# dstack's twenty runs of Llama 3.1 405B on 8 x MI300X with a 2024 ROCm build of vLLM 0.6.3 (every run of its three
# result files, chosen before any was simulated; the doc's "Twenty rows of an early ROCm build"): the simulator was
# 1.4 to 17 times too fast on them (311 / 79 / 56 %) until vLLM V0's prefill and decode shares on CDNA 3
# (calibration.PREFILL_EFFICIENCY_SHARE and DECODE_EFFICIENCY_SHARE, fitted on two of them, which left the
# validation rows) took the eighteen left from 344 / 79 / 60 % to 31 / 20 / 10 %.
SOURCE_CEILINGS = {"dstackai/benchmarks": {"output_throughput": 0.32, "ttft": 0.21, "tpot": 0.11}}
# The same ratchet on the MoE validation rows (validation_serving_moe.yaml), far from the goals: see the doc's MoE
# section for which rows miss and why.
# The rows with expert parallelism, DP attention and MTP are simulated since the serving options (issue 21): their TTFT
# misses (SGLang's and TensorRT-LLM's request path is not modelled) raised the TTFT median of the larger set; the
# length distributions (issue 19's TTFT revision) lowered the throughput median. SGLang's and TensorRT-LLM's fitted
# request cost (issue 19's third pass) took the TTFT median from 76 % to 41 %. The measured MoE op answering for the
# GPU x engine pairs where it beat the roofline (step_costs.AUTO_BACKEND) took them to 37.9 / 25.4 / 19.4 %.
# SGLang's per-sequence host cost then took them to 29.5 / 25.1 / 20.8 % (TPOT up: DeepSeek-R1 on MI355X at 64 users
# +99 -> +109 %, its CDNA 4 decode share fitted on a dense vLLM row). InferenceX's SGLang launch flag
# --scheduler-recv-interval (10 or 30, modelled since) then took the TTFT median to 15.0 %. Infinity Fabric's
# all-reduce latency in place of the CDNA 4 decode share (with the FP8 KV caches InferenceX's scripts set) took
# DeepSeek-R1 on MI355X from -14 / -51 % to +8 / -0 % on throughput and +21 / +110 % to -4 / +4 % on TPOT, and its TTFT
# from -21 / +2 % to -31 / -27 % (the slow decode steps had made up for first tokens the simulator gives too soon
# there): 29.3 / 26.8 / 5.2 %, the TTFT ceiling raised from 16 to 27 % for that reason and no other, the TPOT ceiling
# lowered from 21 to 6 %. The seventh pass's 55 rows (GPUStack's A100 pages, the SGLang cookbook's B200 and MI300X
# runs; chosen by a rule before any was simulated) took the 84 rows to 39.4 / 55.7 / 30.0 % under the old table, and the
# rule's own choice for B200 x SGLang on its 23 rows (the measured MoE op, 26 % against the roofline's 39 %) to
# 31.3 / 45.4 / 21.1 %: the ceilings rose with the rows, not with a change of the simulator (the 31 earlier rows:
# 29.3 / 26.8 / 15.4 %, TPOT up from 5.2 % where the measured op now answers InferenceX's three B200 SGLang rows).
# The MoE layer's own eager launch cost in prompt steps (calibration.EAGER_PREFILL_PER_MOE_LAYER, fitted on one
# cookbook row chosen by the third pass's rule, which left the validation rows: 85 rows, 83 / 43 / 43 with a figure)
# took them to 29.7 / 39.4 / 20.7 %: the ceilings fell with it. SGLang's extra prompt-step work per latent-attention
# layer (calibration.LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER, fitted on the cookbook's DeepSeek-R1 row chosen by the
# same rule, which left the validation rows: 84 rows, 82 / 42 / 42 with a figure) took them to 25.0 / 22.0 / 18.5 %
# (29.8 / 38.8 / 20.9 % on the same rows before): the ceilings fell with it. trtllm-serve's own request cost, fitted on
# InferenceX's TensorRT-LLM row at 16 users by the rule that chose every request cost, moved that row to calibration
# (a row within 6 / 22 / 4 %); the MoE medians of the 81 rows left are the same before and after the constant
# (25.8 / 22.1 / 18.8 %), so the throughput and TTFT ceilings rose from 25 to 26 % and 22 to 23 % with the row's move
# and for no other reason. SGLang's latent-attention step cost on CDNA 3 (calibration.LATENT_ATTENTION_STEP_PER_LAYER,
# fitted on the cookbook's DeepSeek-V3.1 row at one user on MI300X, by the rule, which left the validation rows: 80 /
# 40 / 40 with a figure) took them from 25.0 / 21.7 / 18.5 % to 19.9 / 19.8 / 13.8 %: the ceilings fell with it.
# Expert parallelism without DP attention all-reducing as tensor parallelism does (no all-to-all: the engines' code)
# took them to 19.3 / 19.8 / 12.5 %, and SGLang's latent-attention step cost on B200 (fitted on the cookbook's
# DeepSeek-R1 row at one user, already a calibration row, by the same rule) to 17.2 / 19.8 / 7.2 %: the ceilings fell
# with them.
MOE_VALIDATION_CEILINGS = {"output_throughput": 0.18, "ttft": 0.20, "tpot": 0.08}
ROW_LIMIT = 0.60
# Why each validation row past ROW_LIMIT misses, by row-id pattern (fnmatch): the short form of what
# docs/simulator-accuracy.md tells in full ("Where the validation rows miss, and why" for dense rows, the MoE section's
# "Where they miss, and why"), under --predictor auto (what the platform answers with; other predictors' verdicts may
# name rows without one). The verdict prints it beside the row; test_serving_sim fails when a row passes the limit
# without one, or when a pattern matches a row within it (a miss that healed leaves no stale excuse, and a pattern
# cannot cover a row that has not missed yet).
SLOW_32B = "GPUStack's Qwen3-32B on one H100 ran slower than its own measured kernels"
CDNA4_SHARE = "CDNA 4's prefill share, fitted on one prompt, folds in the request latency"
A100_FP8_MOE = "FP8 Qwen3-235B on A100s, which have no FP8 tensor cores: vLLM's weight-only FP8 MoE path ran slower"
A100_PROMPT_HEAVY = "prompt-heavy runs of all prompts at once on A100s: even the measured MoE op is 74-88 % fast (bf16)"
OVERLOADED = "overloaded open loop: the measured TTFT is a queue grown over the whole run"
MISS_REASONS = {
    "dstack-vllm-405b-mi300x-sonnet80-n64": "the 2024 ROCm build served less at 64 prompts than at 32 (196 against "
    "219 tok/s; its TPOT 83 -> 238 ms, simulated 71 -> 123 ms)",
    **dict.fromkeys(
        [f"dstack-vllm-405b-mi300x-single-{length}" for length in ("64k", "128k")],
        "the 2024 ROCm build's chunked prompt grew slower with its context (128,000 tokens: 734 s, 60 times the "
        "10,000-token prompt's 12.3 s), which a prefill share fitted at 10,000 tokens does not follow",
    ),
    "gpustack-sglang-qwen3-32b-h100-sharegpt-all": SLOW_32B,
    "gpustack-trtllm-qwen3-32b-fp8-h100-sharegpt-all": SLOW_32B,
    "gpustack-vllm-qwen3-32b-h100-rand4000-200-all": SLOW_32B,
    "gpustack-trtllm-qwen3-32b-fp8-h100-rand4000-200-all": SLOW_32B,
    "gpustack-trtllm-qwen3-32b-fp8-h100-rand2000-100-all": SLOW_32B,
    "gpustack-sglang-qwen3-14b-fp8-h100-rand4000-200-all": "SGLang's FP8 run was only 24 % faster than its bf16 run",
    "wmx-vllm-qwen2.5-0.5b-l4-256-128-c16": "closed-loop clients of fixed lengths in lockstep on a 4-vCPU VM",
    "llmd-vllm-70b-fp8-mi355xx8-1k-256-c16": CDNA4_SHARE,
    "llmd-vllm-70b-fp8-mi355xx8-4k-4k-c32": CDNA4_SHARE,
    "nim-trtllm-70b-fp8-h100x2-5000-500-c50": "a closed loop of fixed lengths keeps the alignment it starts with",
    "crusoe-vllm-70b-fp8-l40sx4-rps5": OVERLOADED,
    "kvc-sglang-llama32-3b-a100x1-rr32-baseline": OVERLOADED,  # it served 27 of the 32 req/s sent
    "gpustack-sglang-gptoss*": "engine maturity: SGLang's gpt-oss runs reached a third to a seventh of vLLM's",
    "gpustack-trtllm-gptoss*": "engine maturity: TensorRT-LLM's gpt-oss runs reached a third to half of vLLM's",
    "gpustack-trtllm-dsr1-*": "engine maturity: TensorRT-LLM 1.0's DeepSeek-R1 ran below vLLM's on the same GPUs",
    "gpustack-vllm-dsr1-*-random4000-200": "grouped-GEMM experts split thin by TP 8 run far below the roofline's peak",
    "gpustack-sglang-dsr1-*-dpattn-mtp-*": "the measured run collapsed under MTP with DP attention, its source says",
    "tt-qwen3-30b-a3b-a100-128-1024-c1": "unstated GPU and precision: 27 ms is below reading bf16 weights on an A100",
    "p15-ibl-mi300x-qwen25-3b-bf16-c4": "vLLM V1's request cost, 21 ms fitted on a 4-vCPU VM's L4 sweep, is most of "
    "this run's whole first token (24.6 ms on a 20-vCPU host)",
    "kvc-sglang-llama32-3b-a100x1-rr32-kvcached": "kvcached's patched KV allocator: at 32 req/s it served 9 req/s "
    "where the same page's unpatched SGLang served 27",
    # the seventh pass's rows (docs/simulator-accuracy.md, "Fifty-five MoE rows of the seventh pass")
    "gpustack7-sglang-gptoss20b-a100-sharegpt": "engine maturity: SGLang 0.5.4's gpt-oss-20b on an A100 ran at 1/17 of "
    "vLLM's",
    **dict.fromkeys(
        [f"gpustack7-vllm-qwen3-235b-fp8-a100x{shape}-sharegpt" for shape in ("8-tp8-ep", "4-tp4", "4-tp4-ep4")]
        + [f"gpustack7-vllm-qwen3-235b-fp8-a100x4-tp4-mnbt{budget}-sharegpt" for budget in (4096, 8192)],
        A100_FP8_MOE,
    ),
    **dict.fromkeys(
        [
            f"gpustack7-vllm-qwen3-235b-{shape}-random{lengths}"
            for shape in ("a100x8-tp8", "fp8-a100x4-tp4")
            for lengths in ("4000-200", "2000-100")
        ],
        A100_PROMPT_HEAVY,
    ),
    "sglcb-sglang-gptoss120b-b200x8-tp8-sharegpt-c*": "2.3 ms a decode step at TP 8 on B200, where 72 all-reduces "
    "at the 25 us fitted on H100s and the step overhead alone take 2.5 ms",
    "sglcb-sglang-llama4*-mi300xx8-tp8-rand1k1k-c1": "one of ten requests waited about 40 s for its first token (p99 "
    "TTFT 38-48 s, median under 70 ms): a warm-up inside the measured run",
    "sglcb-sglang-dsv3-fp8-mi300xx8-tp8-ep8-dpattn-sharegpt-c100": "DeepSeek-V3 with DP attention and EP 8 on MI300X "
    "served 38 % of the output throughput of the cookbook's TP-8 DeepSeek-V3.1 at 100 users (ShareGPT, not random 1K)",
    **dict.fromkeys(
        [f"sglcb-sglang-dsv31-fp8-mi300xx8-tp8-rand8k1k-c{users}" for users in (1, 16)],
        "SGLang 0.5.7's first token for 8K-token DeepSeek prompts on MI300X came 3 to 6 times later than simulated "
        "(481 ms at one user)",
    ),
}
# Why a concurrency band's median over all validation rows misses BAND_GOAL, by (band, metric): the short form of the
# doc's "Where the validation rows miss, and why". The all-models verdict prints it beside the band; test_serving_sim
# fails when a band misses without one or a reason names a band within the goal (as MISS_REASONS does for rows). The
# per-kind verdicts (dense, MoE) are diagnostics and print their band misses without reasons.
BAND_MISS_REASONS = {
    ("128+", "ttft"): "ten of its sixteen rows wait in a queue the simulator shortens or lengthens (the KV cache at "
    "its limit, decode steps slower or faster than simulated, open loops beyond capacity, a 2024 ROCm build's chunked "
    "prompts); two more within 25 % would meet it",
}
# Concurrency bands; a rate-based row falls in the band of the mean number of sequences its simulation runs.
BANDS = (("1-8", 1, 8), ("16-64", 9, 64), ("128+", 65, math.inf))
# GPU families for the grouped tables.
GPU_FAMILY = {
    "H100-SXM": "Hopper",
    "H100-NVL": "Hopper",
    "H100-PCIe": "Hopper",
    "H200": "Hopper",
    "A100-80GB": "Ampere",
    "A100-40GB": "Ampere",
    "A100-80GB-PCIe": "Ampere",
    "A10G": "Ampere",
    "L4": "Ada",
    "L40S": "Ada",
    "B200": "Blackwell",
    "MI300X": "CDNA3",
}
# GPU names the sources use -> the hardware catalog's.
GPU_ALIASES = {"A100-PCIe-80GB": "A100-80GB-PCIe", "A100-SXM4-80GB": "A100-80GB", "H100": "H100-SXM"}
# Rows that send every prompt at once are simulated as a closed loop at vLLM's running-sequence limit on large GPUs.
SATURATION_CONCURRENCY = 1024
# vLLM's benchmark client keeps a ShareGPT conversation only if its prompt has at most 1,024 tokens and prompt + output
# at most 2,048 (``benchmarks/datasets.py``, ``is_valid_sequence(max_prompt_len=1024, max_total_len=2048)``): the
# longest of a thousand sampled outputs reaches about 2,048 tokens less a prompt.
SHAREGPT_MAX_TOTAL_TOKENS = 2048
# Hugging Face ids of the published rows -> the example manifest that holds the same architecture.
MANIFEST_OF_MODEL = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Meta-Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1-70b",  # Llama 3 and 3.3 70B have the 3.1 70B architecture
    "meta-llama/Meta-Llama-3-70B-Instruct": "llama-3.1-70b",
    "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b",
    # FP8 checkpoints of the same architectures (their precision comes from the row)
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8-dynamic": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8-dynamic": "llama-3.1-70b",
    "nvidia/Llama-3.3-70B-Instruct-FP8": "llama-3.1-70b",
    "amd/Llama-3.3-70B-Instruct-FP8-KV": "llama-3.1-70b",
    # mixture-of-experts models (issue 21)
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "openai/gpt-oss-20b": "gpt-oss-20b",
    "Qwen/Qwen3-30B-A3B": "qwen3-30b-a3b",
    "deepseek-ai/DeepSeek-R1": "deepseek-r1",
    "deepseek-ai/DeepSeek-R1-0528": "deepseek-r1",  # the same architecture (moe_model_facts.yaml)
    "deepseek-ai/DeepSeek-V3": "deepseek-r1",
    "deepseek-ai/DeepSeek-V3.1": "deepseek-r1",
    "llama-3.3-70b": "llama-3.1-70b",  # InferenceX's llama70b, as catalogs/external_names.yaml names it
    "deepseek-r1": "deepseek-r1",  # InferenceX's dsr1, likewise
}
# Hugging Face ids of MoE rows without a manifest -> their entry in MOE_FACTS_FILE.
MOE_FACTS_OF_MODEL = {
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "Qwen/Qwen3-235B-A22B",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "Qwen/Qwen3-235B-A22B",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
}
# The data files' precision names -> our quantization and FP4 scheme: gpt-oss ships MXFP4; InferenceX's "fp4" is
# NVFP4 on NVIDIA and MXFP4 on AMD.
QUANTIZATION_OF_PRECISION = {"mxfp4": ("fp4", "mxfp4"), "fp4": ("fp4", None)}
# InferenceX's random lengths are drawn uniformly from [0.8 L, L]: their mean.
INFERENCEX_MEAN_LENGTH = 0.9
# Per-request lengths of a row whose ``length_distribution`` is ``sharegpt`` (ShareGPT conversations as vLLM's and
# SGLang's benchmark clients sample them): log-normal draws of this sigma, kept inside the clients' filter (prompts of
# 4 .. 1,024 tokens, outputs of at least 4, prompt + output at most 2,048), then scaled to the row's means (the
# sources publish totals only). An assumed shape (ShareGPT's lengths spread over two orders of magnitude with a long
# tail), not a fit.
SHAREGPT_LENGTH_SIGMA = 1.0
SHAREGPT_PROMPT_RANGE = (4, 1024)
SHAREGPT_MAX_SEQUENCE = 2048
# Requests drawn for a row that does not say how many its run sent (vllm bench serve's default --num-prompts).
DEFAULT_NUM_PROMPTS = 1000
LLAMA_8B_FP16, GPT_OSS_20B = ("llama-3.1-8b", "fp16"), ("gpt-oss-20b", "mxfp4")
# (model, load) per line of the speed measurement; the last is an MoE model, which auto gives the measured MoE op on
# H100 where the kernels extra is installed.
SPEED_LOADS = (
    (LLAMA_8B_FP16, dict(concurrency=1, input_tokens=1024, output_tokens=1024)),
    (LLAMA_8B_FP16, dict(concurrency=1, input_tokens=1024, output_tokens=4096)),
    (LLAMA_8B_FP16, dict(concurrency=64, input_tokens=1024, output_tokens=1024)),
    (LLAMA_8B_FP16, dict(concurrency=256, input_tokens=1024, output_tokens=1024)),
    (LLAMA_8B_FP16, dict(concurrency=256, input_tokens=128, output_tokens=128)),
    (LLAMA_8B_FP16, dict(request_rate=10.0, input_tokens=1024, output_tokens=1024)),
    (GPT_OSS_20B, dict(concurrency=64, input_tokens=1024, output_tokens=1024)),
)


def hardware_facts(gpu_type: str, gpu_count: int) -> HardwareFacts:
    """A node of ``gpu_count`` GPUs of ``gpu_type`` with the catalog's spec-sheet figures for that GPU (any GPU of its
    ``gpus`` section, whether or not an instance offers it)."""
    gpu_type = GPU_ALIASES.get(gpu_type, gpu_type)
    chip = catalogs.load_gpus().get(gpu_type)
    if chip is None:
        raise ValueError(f"gpu_type {gpu_type!r} is not in the hardware catalog")
    return hardware_facts_from_chip(
        chip,
        name=f"{gpu_type.lower()}-x{gpu_count}",
        gpu_type=gpu_type,
        gpu_count=gpu_count,
        vram_per_gpu_gb=chip.vram_gb,
    )


def framework_facts(name: str) -> FrameworkFacts:
    """The catalog's entry for framework ``name`` (its efficiencies drive the roofline)."""
    for spec in catalogs.load_frameworks():
        if spec.name == name:
            return FrameworkFacts(
                name=spec.name,
                version=spec.version,
                launch_command=spec.launch_command,
                quantization_flags=dict(spec.quantization_flags),
                prefill_efficiency=spec.efficiency.prefill,
                decode_efficiency=spec.efficiency.decode,
            )
    raise ValueError(f"framework {name!r} is not in the frameworks catalog")


def model_facts(manifest_name: str, version: str) -> ModelFacts:
    """Version ``version`` of the example manifest ``manifest_name`` (e.g. "llama-3.1-8b", "fp16")."""
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{manifest_name}.yaml")
    for spec in manifest.versions:
        if spec.version == version:
            return manifests.model_facts(manifest, spec)
    raise ValueError(f"{manifest_name} has no version {version!r}")


@dataclass(frozen=True)
class Comparison:
    """One published row next to what the simulator predicts for it (errors: simulated / published - 1)."""

    row: dict
    input_tokens: int
    output_tokens: int
    load: str
    band: str
    predictor: dict
    published: dict[str, float | None]
    simulated: dict[str, float]
    held_out_key: dict[str, str]  # what answered the row, grouped as a result's held-out error is (held_out.row_key)

    def error(self, metric: str) -> float | None:
        published = self.published[metric]
        return None if published is None else self.simulated[metric] / published - 1

    @property
    def role(self) -> str:
        return self.row["role"]


def simulation_lengths(row: dict) -> tuple[int, int] | None:
    """Fixed per-request lengths for the row: its own, or the means its source's totals give (``mean_input_tokens``
    and ``mean_output_tokens``); None when neither is known."""
    input_tokens = row.get("input_tokens") or row.get("mean_input_tokens")
    output_tokens = row.get("output_tokens") or row.get("mean_output_tokens")
    if not input_tokens or not output_tokens:
        return None
    return round(input_tokens), round(output_tokens)


def request_lengths(row: dict, input_tokens: int, output_tokens: int, seed: int = 0) -> tuple | None:
    """Per-request (input, output) lengths drawn as the row's source drew them (``length_distribution``: ``sharegpt``,
    or ``uniform`` with ``length_range_ratio``), with the row's means; None for fixed lengths (the default). One draw
    per request of the run (``num_prompts``)."""
    kind = row.get("length_distribution", "fixed")
    if kind == "fixed":
        return None
    rng = np.random.default_rng(seed)
    count = int(row.get("num_prompts") or DEFAULT_NUM_PROMPTS)
    if kind == "uniform":
        # uniform in [r M, M] (sglang.bench_serving's random dataset: [max(1, r M), M]; InferenceX: r = 0.8), with M
        # such that the mean is the row's
        ratio = float(row["length_range_ratio"])
        drawn = []
        for mean in (input_tokens, output_tokens):
            top = 2 * mean / (1 + ratio)
            drawn.append(rng.integers(max(1, round(ratio * top)), max(2, round(top)) + 1, count, dtype=np.int64))
        return drawn[0], drawn[1]
    if kind != "sharegpt":
        raise ValueError(f"row {row['id']}: unknown length_distribution {kind!r}")
    low, high = SHAREGPT_PROMPT_RANGE
    prompts = np.zeros(0)
    outs = np.zeros(0)
    while prompts.size < count:  # draws outside the clients' filter are dropped, as the clients drop them
        p = input_tokens * rng.lognormal(-(SHAREGPT_LENGTH_SIGMA**2) / 2, SHAREGPT_LENGTH_SIGMA, count)
        o = output_tokens * rng.lognormal(-(SHAREGPT_LENGTH_SIGMA**2) / 2, SHAREGPT_LENGTH_SIGMA, count)
        keep = (p >= low) & (p <= high) & (o >= 4) & (p + o <= SHAREGPT_MAX_SEQUENCE)
        prompts, outs = np.concatenate([prompts, p[keep]]), np.concatenate([outs, o[keep]])
    prompts, outs = prompts[:count], outs[:count]
    # the row's means exactly (the filter shifts them)
    prompts = np.maximum(1, np.round(prompts * input_tokens / prompts.mean())).astype(np.int64)
    outs = np.maximum(1, np.round(outs * output_tokens / outs.mean())).astype(np.int64)
    return prompts, outs


def moe_facts(name: str) -> ModelFacts:
    """A bf16 MoE model from ``MOE_FACTS_FILE``'s config.json facts (total parameters as its source rounds them)."""
    facts = yaml.safe_load(MOE_FACTS_FILE.read_text(encoding="utf-8"))["models"][name]
    short = name.split("/")[-1].lower()
    return ModelFacts(
        name=short,
        version_key=f"{short}@bf16",
        artifact_uri=f"hf://{name}",
        parameters=int(float(facts["total_params"].rstrip("B")) * 1e9),
        quantization="bf16",
        quantization_bits=16,
        format="safetensors",
        num_layers=facts["num_hidden_layers"],
        hidden_size=facts["hidden_size"],
        num_attention_heads=facts["num_attention_heads"],
        num_kv_heads=facts["num_key_value_heads"],
        head_dim=facts["head_dim"],
        max_position_embeddings=facts["max_position_embeddings"],
        vocab_size=facts["vocab_size"],
        moe=MixtureOfExperts(
            experts=facts["experts"],
            experts_per_token=facts["experts_per_token"],
            expert_intermediate_size=facts["moe_intermediate_size"],
            shared_experts=facts["shared_experts"],
            dense_layers=facts["dense_layers"],
        ),
    )


def moe_model_of(row: dict) -> ModelFacts | None:
    """An MoE row's model at the row's precision: the manifest's version of that precision, else another version (or
    the facts file's bf16 shape) re-labelled. An FP4 checkpoint of a model released at higher precision quantizes the
    routed experts only (NVIDIA's and AMD's DeepSeek-R1 FP4): the rest keeps the released bits."""
    quantization, scheme = QUANTIZATION_OF_PRECISION.get(row["precision"], (row["precision"], None))
    if quantization == "fp4" and scheme is None:
        scheme = (
            "mxfp4"
            if catalogs.load_gpus()[GPU_ALIASES.get(row["gpu_type"], row["gpu_type"])].vendor == "amd"
            else "nvfp4"
        )
    if (facts_name := MOE_FACTS_OF_MODEL.get(row["model"])) is not None:
        versions = [moe_facts(facts_name)]
    elif (manifest_name := MANIFEST_OF_MODEL.get(row["model"])) is not None:
        manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{manifest_name}.yaml")
        versions = [manifests.model_facts(manifest, spec) for spec in manifest.versions]
    else:
        return None
    for facts in versions:
        if facts.quantization == quantization and facts.fp4_scheme == scheme:
            return facts
    released = versions[0]
    update = {"quantization": quantization, "quantization_bits": manifests.QUANTIZATION_BITS[quantization]}
    if quantization == "fp4":
        update |= {"fp4_scheme": scheme, "dense_weight_bits": released.dense_weight_bits or released.quantization_bits}
    return released.model_copy(update=update)


def is_moe(row: dict) -> bool:
    """A row of the MoE file, or an imported row (``--against``) whose model is a mixture of experts."""
    if row["file"] == "validation_serving_moe.yaml" or row["model"] in MOE_FACTS_OF_MODEL:
        return True
    manifest_name = MANIFEST_OF_MODEL.get(row["model"])
    return manifest_name is not None and _manifest_is_moe(manifest_name)


@functools.cache
def _manifest_is_moe(manifest_name: str) -> bool:
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{manifest_name}.yaml")
    return manifests.model_facts(manifest, manifest.versions[0]).moe is not None


def model_of(row: dict) -> ModelFacts | None:
    """The row's model: its own ``model_shape``, the file's ``model_shapes`` entry, or the example manifest of the same
    architecture; None when none is known."""
    precision = row["precision"]
    if shape := row.get("model_shape"):
        return ModelFacts(**shape)
    if is_moe(row):
        return moe_model_of(row)
    manifest_name = MANIFEST_OF_MODEL.get(row["model"])
    if manifest_name is None:
        return None
    version = {"bf16": "fp16"}.get(precision, precision) if manifest_name.startswith("llama") else precision
    try:
        facts = model_facts(manifest_name, version)
    except ValueError:  # the manifest has no such precision: the bf16 version, re-labelled (same architecture)
        facts = model_facts(manifest_name, "fp16" if manifest_name.startswith("llama") else "bf16")
        bits = {"fp8": 8, "int8": 8, "int4": 4}.get(precision, 16)
        facts = facts.model_copy(update={"quantization_bits": bits})
    return facts.model_copy(update={"quantization": precision})  # bf16 and fp16 weigh the same


def concurrency_band(concurrency: float) -> str:
    for name, low, high in BANDS:
        if low <= round(concurrency) <= high:
            return name
    return BANDS[0][0]


def serving_options(row: dict) -> ServingOptions:
    """The engine options the row's source states: expert parallelism (``expert_parallel``: false or the EP size),
    data-parallel attention (``dp_attention``), speculative decoding (``speculative``) and the KV-cache dtype
    (``kv_cache_dtype``: "auto" unless the source names an FP8 cache). A row whose DP attention runs without expert
    parallelism (SGLang's ``--enable-dp-attention`` alone: the MoE layers gather every rank's tokens, run TP-sliced
    experts and scatter the results back) states ``simulated_expert_parallel``: it is simulated with its experts
    expert-parallel over the same GPUs, whose dispatch and combine move the tokens' hidden states as the gather and
    scatter do (the table's load column says so)."""
    expert_parallel = int(row.get("simulated_expert_parallel") or row.get("expert_parallel") or 1)
    return ServingOptions(
        expert_parallel=expert_parallel,
        data_parallel_attention=bool(row.get("dp_attention")),
        speculative_method=row.get("speculative") or "none",
        kv_cache_dtype=row.get("kv_cache_dtype", "auto"),
    )


def describe_options(options: ServingOptions) -> str:
    parts = [f"EP {options.expert_parallel}"] if options.expert_parallel > 1 else []
    parts += ["DP attention"] if options.data_parallel_attention else []
    parts += [options.speculative_method] if options.speculative_method != "none" else []
    parts += [f"{options.kv_cache_dtype} KV"] if options.kv_cache_dtype != "auto" else []
    return ", ".join(parts)


def why_not_simulated(row: dict) -> str | None:
    """Why the simulator cannot represent the row, or None when it can."""
    if row.get("unrepresentable"):
        return row["unrepresentable"]
    try:
        options = serving_options(row)
        max_num_seqs_flag(row)
        max_num_batched_tokens_flag(row)
    except ValueError as error:
        return str(error)
    if options.expert_parallel > 1 and options.expert_parallel != row["tensor_parallel"]:
        return (
            f"expert parallelism {options.expert_parallel} over other than the replica's {row['tensor_parallel']} GPUs"
        )
    if row.get("disagg"):
        return "disaggregated prefill/decode is not modelled"
    if (stages := row.get("pipeline_parallel", 1)) > 1:
        return f"pipeline parallelism ({stages} stages) is not modelled"
    if simulation_lengths(row) is None:
        return "input/output lengths unknown"
    if model_of(row) is None:
        return f"no architecture facts for {row['model']}"
    try:
        hardware_facts(row["gpu_type"], row["gpu_count"])
        framework_facts(row["framework"])
    except ValueError as error:
        return str(error)
    if options.expert_parallel > 1 and model_of(row).moe is None:
        return "expert parallelism on a dense model"
    return None


def compare(row: dict, seed: int = 0, predictor: str = "auto") -> Comparison | None:
    """Simulate one published row; None when the simulator cannot represent it (``why_not_simulated``)."""
    if why_not_simulated(row) is not None:
        return None
    input_tokens, output_tokens = simulation_lengths(row)
    hardware = hardware_facts(row["gpu_type"], row["gpu_count"])
    load: dict[str, float | int]
    rate = row.get("request_rate")
    sent_at_once = rate is not None and math.isinf(rate)
    if row.get("concurrency") and row.get("num_prompts"):
        # the source's whole run: its clients start together (vllm bench serve and SGLang's bench_serving send at
        # request rate inf, gated by --max-concurrency) and every one of its num_prompts requests is measured
        load = {
            "concurrency": int(row["concurrency"]),
            "num_requests": int(row["num_prompts"]),
            "whole_run": True,
            "staggered_start": False,
        }
        described = f"concurrency {row['concurrency']}, {row['num_prompts']} requests"
    elif sent_at_once and row.get("num_prompts") and row.get("length_distribution", "fixed") != "fixed":
        # every prompt sent at once, lengths varying: the whole run (the server admits what it can, the rest wait;
        # the longest requests make its tail), as the client measures it (its output tokens over its duration)
        load = {
            "concurrency": int(row["num_prompts"]),
            "num_requests": int(row["num_prompts"]),
            "whole_run": True,
            "staggered_start": False,
        }
        described = f"all at once, {row['num_prompts']} requests"
    elif row.get("concurrency"):
        # a steady state (the run's length unknown): clients ramp up one by one, unless the source started them
        # together (vLLM's latency test: one batch)
        load = {"concurrency": int(row["concurrency"]), "staggered_start": not row.get("started_together", False)}
        described = f"concurrency {row['concurrency']}"
    elif sent_at_once:
        # every prompt sent at once: the server runs as many as it admits; a closed loop at its sequence limit
        load = {
            "concurrency": SATURATION_CONCURRENCY,
            "num_requests": 2 * SATURATION_CONCURRENCY,
            "staggered_start": False,
        }
        described = "all at once"
    else:
        # rate rows are simulated in their steady state: their runs are long (hundreds of requests at a few per
        # second), so the start barely weighs on their medians
        load = {"request_rate": float(rate)}
        described = f"{rate:g} req/s"
    framework = framework_facts(row["framework"])
    # the measured version (scheduling differs by version), or the one the inputs file infers where the row has none
    version = str(row.get("simulated_version") or row.get("framework_version", ""))
    if version[:1].isdigit() or version.startswith(calibration.NIM_VERSION_PREFIX):
        framework = framework.model_copy(update={"version": version})
    options = serving_options(row)
    if described_options := describe_options(options):
        described += f"; {described_options}"
    model = model_of(row)
    run = simulate_serving(
        model,
        hardware,
        framework,
        tensor_parallel=row["tensor_parallel"],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        scheduler_steps=row.get("num_scheduler_steps", 1),  # the server's documented --num-scheduler-steps
        scheduler_recv_interval=row.get("scheduler_recv_interval", 1),  # SGLang's --scheduler-recv-interval
        chunked_prefill=chunked_prefill_flag(row, model, framework),
        max_num_seqs=max_num_seqs_flag(row),
        max_num_batched_tokens=max_num_batched_tokens_flag(row),
        lengths=request_lengths(row, input_tokens, output_tokens, seed),
        seed=seed,
        predictor=predictor,
        options=options,
        **load,
    )
    simulated = summary(run, row)
    fixed_lengths = row.get("length_distribution", "fixed") == "fixed"
    if sent_at_once and fixed_lengths and str(row.get("lengths", "")).startswith("ShareGPT") and row.get("num_prompts"):
        # the run's output over its whole duration: the steady state the simulation measured plus the tail (rows
        # with drawn lengths run as the whole run, whose longest requests make the tail themselves)
        tail = sharegpt_tail_seconds(
            row, model, hardware, framework, tensor_parallel=row["tensor_parallel"], seed=seed,
            predictor=predictor, options=options,
        )  # fmt: skip
        tokens = row["num_prompts"] * output_tokens
        simulated["output_throughput"] = tokens / (tokens / simulated["output_throughput"] + tail)
        described += " (+ ShareGPT tail)"
    return Comparison(
        row=row,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        load=described,
        band=concurrency_band(row["concurrency"] if row.get("concurrency") else run.mean_running_sequences),
        predictor=run.predictor,
        # with every prompt sent at once, TTFT and TPOT measure the client's queue of num_prompts, not the server
        published={
            "output_throughput": published_output_throughput(row),
            "ttft": None if sent_at_once else published_latency(row, "ttft"),
            "tpot": None if sent_at_once else published_latency(row, "tpot"),
        },
        simulated=simulated,
        held_out_key=held_out.row_key(run.predictor["backend"], model, hardware, framework),
    )


def sharegpt_tail_seconds(row: dict, model: ModelFacts, hardware: HardwareFacts, framework: FrameworkFacts, **run):
    """The tail of an all-at-once run of ShareGPT requests, which a fixed-length simulation does not have: the
    requests finish one by one as their outputs end, and the longest keep decoding at a shrinking batch.

    With every request started together and a step costing ``a + c · running``, the run's decode steps sum to
    ``a · L_max + c · N · E[L]`` for N requests of mean output E[L] and longest L_max, against ``a · E[L] + c · N ·
    E[L]`` when every output is E[L] long: the difference is ``(L_max − E[L]) · a``, with ``a`` the cost of a step that
    decodes one sequence (the unloaded TPOT, simulated) and L_max the client's bound (``SHAREGPT_MAX_TOTAL_TOKENS``
    less the mean prompt). The published throughput divides the run's output tokens by its whole duration, tail
    included."""
    input_tokens, output_tokens = simulation_lengths(row)
    longest = SHAREGPT_MAX_TOTAL_TOKENS - input_tokens
    unloaded = simulate_serving(
        model, hardware, framework, input_tokens=input_tokens, output_tokens=output_tokens, concurrency=1,
        num_requests=4, **run,
    )  # fmt: skip
    return max(0, longest - output_tokens) * float(np.mean(unloaded.tpot_s))


# vLLM's V0 engine turns chunked prefill on by itself, at its 512-token budget, for a model whose context exceeds 32K
# tokens ("Chunked prefill is enabled by default for models with max_model_len > 32K": vllm-project/vllm#6666, merged
# 2024-07-23, first in 0.5.4; V1 always chunks) unless the server sets it, limits --max-model-len, or runs what V0 does
# not combine with it: multi-step scheduling (0.6.0 refuses the pair; later releases allow it, which the simulator
# does not model), speculative decoding, LoRA, sliding-window or multimodal models (none of the rows).
V0_AUTO_CHUNKED_PREFILL_SINCE = (0, 5, 4)
V0_AUTO_CHUNKED_PREFILL_CONTEXT = 32_768


def chunked_prefill_flag(row: dict, model: ModelFacts, framework: FrameworkFacts) -> bool | None:
    """The server's --enable-chunked-prefill as the row's ``engine_flags`` state it (``--enable-chunked-prefill``,
    ``=True`` / ``=False``, ``--no-enable-chunked-prefill``), or as vLLM V0 set it for a long-context model
    (``V0_AUTO_CHUNKED_PREFILL_SINCE``); None: the engine's default."""
    flags = str(row.get("engine_flags") or "")
    stated = re.search(r"--(no-)?enable[-_]chunked[-_]prefill(?:[= ](true|false)\b)?", flags, re.IGNORECASE)
    if stated:
        return not stated.group(1) and (stated.group(2) or "true").lower() == "true"
    limit = re.search(r"--max[-_]model[-_]len[= ](\d+)", flags)
    context = int(limit.group(1)) if limit else model.max_position_embeddings or 0
    version = tuple(int(part) for part in re.findall(r"\d+", framework.version)[:3])
    auto = (
        calibration.engine_generation(framework) == "vllm-v0"
        and version >= V0_AUTO_CHUNKED_PREFILL_SINCE
        and row.get("num_scheduler_steps", 1) == 1
        and context > V0_AUTO_CHUNKED_PREFILL_CONTEXT
    )
    return True if auto else None


def _stated_count(row: dict, flags: str, what: str) -> int | None:
    """The positive integer the row's ``engine_flags`` give one of ``flags`` (a regex of flag names); None when none
    is given. The last one given wins, as with the engines' argument parsers; anything but a count is refused."""
    stated = re.findall(rf"--(?:{flags})(?:\s+|=)(\S+)", str(row.get("engine_flags") or ""))
    if not stated:
        return None
    value = stated[-1]
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        raise ValueError(f"row {row.get('id')}: engine_flags {what} at {value!r}, not a positive integer")
    return int(value)


def max_num_seqs_flag(row: dict) -> int | None:
    """The server's cap on running sequences as the row's ``engine_flags`` state it (vLLM's --max-num-seqs, SGLang's
    --max-running-requests); None: the engine's default."""
    return _stated_count(row, r"max[-_](?:num[-_]seqs|running[-_]requests)", "cap running sequences")


def max_num_batched_tokens_flag(row: dict) -> int | None:
    """The server's token budget per step as the row's ``engine_flags`` state it (vLLM's --max-num-batched-tokens,
    SGLang's --chunked-prefill-size, TensorRT-LLM's --max_num_tokens); None: the engine's default."""
    return _stated_count(
        row, r"max[-_]num[-_]batched[-_]tokens|chunked[-_]prefill[-_]size|max[-_]num[-_]tokens", "set the step's budget"
    )


def published_output_throughput(row: dict) -> float | None:
    """Output tokens/s of the whole deployment: the row's own, or its per-GPU figure times its GPUs (InferenceX)."""
    if row.get("output_throughput_tok_s") is not None:
        return row["output_throughput_tok_s"]
    per_gpu = row.get("output_tput_per_gpu_tok_s")
    return None if per_gpu is None else per_gpu * row["gpu_count"]


def latency_statistic(row: dict, metric: str) -> str:
    """The statistic a row publishes for ``metric`` (ttft or tpot): "median" if it gives one, else "mean"."""
    return "median" if row.get(f"{metric}_median_ms") is not None else "mean"


def published_latency(row: dict, metric: str) -> float | None:
    return row.get(f"{metric}_{latency_statistic(row, metric)}_ms")


def summary(run: ServingSimulation, row: dict) -> dict[str, float]:
    """The simulated figures at the statistics the row publishes."""

    def statistic(values: np.ndarray, metric: str) -> float:
        middle = np.percentile(values, 50) if latency_statistic(row, metric) == "median" else np.mean(values)
        return float(middle) * 1e3

    return {
        "output_throughput": run.output_tokens_per_s,
        "ttft": statistic(run.ttft_s, "ttft"),
        "tpot": statistic(run.tpot_s, "tpot"),
    }


def load_rows(paths: tuple[Path, ...] = DATA_FILES, inputs_path: Path = INPUTS_FILE) -> list[dict]:
    """The published rows, each completed with its entry of the simulation inputs file (mean lengths, markers) and
    its file's ``model_shapes`` entry (architecture facts of models without a bundled manifest)."""
    inputs = yaml.safe_load(inputs_path.read_text(encoding="utf-8"))["rows"]
    rows = []
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        shapes = model_shapes(document)
        for row in document["rows"]:
            row = row | inputs.get(row["id"], {})
            if row["model"] in shapes and "model_shape" not in row:
                row["model_shape"] = _model_shape(row, shapes[row["model"]])
            rows.append(row | {"file": path.name})
    return rows


def model_shapes(document: dict) -> dict[str, dict]:
    """A data file's ``model_shapes`` by model id, each entry also under its ``aliases`` (checkpoints of the same
    architecture)."""
    shapes = document.get("model_shapes") or {}
    return shapes | {alias: shape for shape in list(shapes.values()) for alias in shape.get("aliases", [])}


def inferencex_rows(paths: tuple[Path, ...]) -> list[dict]:
    """Imported InferenceX rows (API JSON, dump folder or zip) as validation rows of this script, read and mapped
    as ``import-results`` reads them; a row that does not parse or names an unknown model is left out and counted."""
    from benchmark_platform import public_results as public
    from benchmark_platform.cli.public_import import inferencex_rows as read_rows

    names = catalogs.load_external_names().inferencex
    tally = public.ImportTally()
    rows = []
    for path in paths:
        for index, raw in enumerate(read_rows(str(path))):
            try:
                parsed = None if isinstance(raw, Exception) else public.parse_inferencex_row(raw, names, tally)
            except public.PublicRowError as error:
                tally.bad[str(error)] += 1
                continue
            if parsed is None:
                continue
            provenance = parsed.provenance
            reasons = ["disaggregated prefill / decode" if provenance["disagg"] else None]
            model, precision = parsed.version_key.split("@")
            rows.append(
                {
                    "id": f"inferencex-{path.stem}-{index}",
                    "role": "validation",
                    "file": path.name,
                    "model": model,
                    "precision": precision,
                    "gpu_type": parsed.gpu_type,
                    "gpu_count": parsed.gpus,
                    "tensor_parallel": parsed.gpus,
                    "framework": parsed.framework,
                    "framework_version": (provenance.get("image") or "").rpartition(":")[2] or "-",
                    "concurrency": parsed.batch_size,
                    "input_tokens": round(parsed.input_tokens * INFERENCEX_MEAN_LENGTH),
                    "output_tokens": round(parsed.output_tokens * INFERENCEX_MEAN_LENGTH),
                    "length_distribution": "uniform",  # drawn from [0.8 L, L], around the means above
                    "length_range_ratio": 0.8,
                    "output_throughput_tok_s": parsed.output_tokens_sec_per_gpu * parsed.gpus,
                    "ttft_median_ms": parsed.latency_ms["ttft_p50_ms"],
                    "tpot_median_ms": parsed.latency_ms["tpot_p50_ms"],
                    "unrepresentable": "; ".join(reason for reason in reasons if reason),
                    # the serving options the row states (``serving_options`` reads them as a published row's)
                    "expert_parallel": provenance["decode_ep"],
                    "dp_attention": bool(provenance["decode_dp_attention"]),
                    "speculative": provenance["spec_method"],
                }
            )
    for line in tally.lines():
        print(f"left out of {', '.join(str(path) for path in paths)}: {line}")
    return rows


def _model_shape(row: dict, shape: dict) -> dict:
    """ModelFacts fields for a row's model from its config.json facts (``model_shapes`` in a data file)."""
    bits = {"fp8": 8, "int8": 8, "int4": 4, "fp32": 32}.get(row["precision"], 16)
    name = row["model"].split("/")[-1].lower()
    return {
        "name": name,
        "version_key": f"{name}@{row['precision']}",
        "artifact_uri": f"hf://{row['model']}",
        "parameters": int(shape["parameters"]),
        "quantization": row["precision"],
        "quantization_bits": bits,
        "format": "safetensors",
        "num_layers": int(shape["num_layers"]),
        "hidden_size": int(shape["hidden_size"]),
        "num_attention_heads": int(shape["num_attention_heads"]),
        "num_kv_heads": int(shape["num_kv_heads"]),
        "head_dim": int(shape["head_dim"]),
        "max_position_embeddings": shape.get("max_position_embeddings"),
    }


def _median(errors: list[float]) -> float:
    return statistics.median(errors) if errors else math.nan


def median_absolute_errors(comparisons: list[Comparison]) -> dict[str, float]:
    """Per metric, the median of |error| over the rows that publish it."""
    return {metric: _median([abs(e) for c in comparisons if (e := c.error(metric)) is not None]) for metric in GOALS}


def grouped_errors(comparisons: list[Comparison], key) -> dict[str, dict[str, tuple[float, int]]]:
    """Per group (``key(comparison)``) and metric: median |error| and the number of rows behind it."""
    groups: dict[str, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        groups[key(c)].append(c)
    table = {}
    order = [band for band, _, _ in BANDS]
    for group, members in sorted(
        groups.items(), key=lambda item: (order.index(item[0]) if item[0] in order else 0, item[0])
    ):
        table[group] = {}
        for metric in GOALS:
            errors = [abs(e) for c in members if (e := c.error(metric)) is not None]
            table[group][metric] = (_median(errors), len(errors))
    return table


GROUPINGS = {
    "overall": lambda c: "all rows",
    "model kind": lambda c: "MoE" if is_moe(c.row) else "dense",
    "GPU family": lambda c: GPU_FAMILY.get(GPU_ALIASES.get(c.row["gpu_type"], c.row["gpu_type"]), c.row["gpu_type"]),
    "engine": lambda c: c.row["framework"],
    "GPU x engine": lambda c: f"{GPU_ALIASES.get(c.row['gpu_type'], c.row['gpu_type'])} x {c.row['framework']}",
    "concurrency band": lambda c: c.band,
    # one source's many rows can carry a median
    "source": lambda c: source_of(c.row),
}


def source_of(row: dict) -> str:
    """Who published a row: the GitHub repository (owner/name) or the site of its ``source_url``; rows without one
    (imported InferenceX rows) go by their id's prefix."""
    url = urlparse(str(row.get("source_url") or ""))
    parts = [part for part in url.path.split("/") if part]
    if url.netloc == "github.com" and len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}"
    return url.netloc or row["id"].split("-", 1)[0]


def goal_misses(comparisons: list[Comparison], band_reasons: dict[tuple[str, str], str] | None = None) -> list[str]:
    """What misses the validation goals: medians per metric and per concurrency band, rows past the limit. With
    ``band_reasons`` (the all-models verdict's ``BAND_MISS_REASONS``) each band miss carries its reason."""
    misses = []
    for metric, value in median_absolute_errors(comparisons).items():
        if value > GOALS[metric]:
            misses.append(f"{metric} median {value:.1%} > {GOALS[metric]:.0%}")
    for band, metric, value in bands_past_the_goal(comparisons):
        reason = "" if band_reasons is None else f"; {band_reasons.get((band, metric), 'NO REASON GIVEN')}"
        misses.append(f"band {band}: {metric} median {value:.1%} > {BAND_GOAL:.0%}{reason}")
    for c in rows_past_the_limit(comparisons):
        errors = ", ".join(
            f"{metric} {error:+.0%}"
            for metric in GOALS
            if (error := c.error(metric)) is not None and abs(error) > ROW_LIMIT
        )
        misses.append(f"row {c.row['id']}: {errors}; {miss_reason(c.row['id']) or 'NO REASON GIVEN'}")
    return misses


def bands_past_the_goal(comparisons: list[Comparison]) -> list[tuple[str, str, float]]:
    """(band, metric, median |error|) wherever that median exceeds BAND_GOAL."""
    return [
        (band, metric, value)
        for band, metrics in grouped_errors(comparisons, GROUPINGS["concurrency band"]).items()
        for metric, (value, count) in metrics.items()
        if count and value > BAND_GOAL
    ]


def rows_past_the_limit(comparisons: list[Comparison]) -> list[Comparison]:
    """The rows off by more than ROW_LIMIT on some metric, but for those of a stated concurrency above 256 (rate rows
    and all-at-once rows state none and count)."""
    return [
        c
        for c in comparisons
        if (c.row.get("concurrency") or 0) <= 256
        and any((e := c.error(metric)) is not None and abs(e) > ROW_LIMIT for metric in GOALS)
    ]


def miss_reason(row_id: str) -> str | None:
    """Why a row misses, from the first ``MISS_REASONS`` pattern its id matches."""
    return next((reason for pattern, reason in MISS_REASONS.items() if fnmatch.fnmatchcase(row_id, pattern)), None)


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _error_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def print_rows(comparisons: list[Comparison], skipped: list[tuple[dict, str]]) -> None:
    print(
        "| Row | Role | Framework | GPU x TP | Model | Prec. | In / out | Load | Predictor "
        "| Output tok/s pub / sim (err) | TTFT ms pub / sim (err) | TPOT ms pub / sim (err) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in comparisons:
        row = c.row
        cells = [
            f"{_cell(c.published[m], 0 if m == 'output_throughput' else 1)} / "
            f"{_cell(c.simulated[m], 0 if m == 'output_throughput' else 1)} ({_error_cell(c.error(m))})"
            + (
                " m"
                if m != "output_throughput" and c.published[m] is not None and latency_statistic(row, m) == "mean"
                else ""
            )
            for m in GOALS
        ]
        predictor = c.predictor["backend"] + (" (fallback)" if c.predictor.get("fallback") else "")
        assumed = f" (assumed: {row['assumed']})" if row.get("assumed") else ""
        print(
            f"| {row['id']}{assumed} | {c.role} | {row['framework']} {row['framework_version']} "
            f"| {row['gpu_type']} x{row['tensor_parallel']} "
            f"| {row['model'].split('/')[-1]} | {row['precision']} | {c.input_tokens} / {c.output_tokens} "
            f"| {c.load} | {predictor} | " + " | ".join(cells) + " |"
        )
    for row, reason in skipped:
        print(f"| {row['id']} | {row['role']} | not simulated: {reason} |")


def print_grouped(comparisons: list[Comparison], title: str) -> None:
    print(f"\n{title}: median |error| (rows)")
    print("| Grouping | Group | " + " | ".join(GOALS) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in GOALS) + " |")
    for grouping, key in GROUPINGS.items():
        for group, metrics in grouped_errors(comparisons, key).items():
            cells = [f"{value:.1%} ({count})" if count else "-" for value, count in metrics.values()]
            print(f"| {grouping} | {group} | " + " | ".join(cells) + " |")


def print_accuracy(comparisons: list[Comparison], skipped: list[tuple[dict, str]]) -> None:
    """Print the rows, the grouped tables per role and the verdict on the validation goals: over all models (the
    issue's goal; its band misses with their reasons), then dense and MoE models apart (the MoE rows judge a newer,
    less checked part of the model)."""
    print("TTFT and TPOT: the median where the source publishes it, else the mean (marked m).")
    print_rows(comparisons, skipped)
    for role in ROLES:
        print_grouped([c for c in comparisons if c.role == role], f"{role.capitalize()} rows")
    for kind, moe in (("all", None), ("dense", False), ("MoE", True)):
        validation = [c for c in comparisons if c.role == "validation" and (moe is None or is_moe(c.row) == moe)]
        print(
            f"\nValidation goals, {kind} models (medians: "
            + ", ".join(f"{m} {g:.0%}" for m, g in GOALS.items())
            + f"; every band {BAND_GOAL:.0%}; no row past {ROW_LIMIT:.0%}):"
        )
        if not validation:
            print("  no validation rows: nothing to judge")
            continue
        misses = goal_misses(validation, BAND_MISS_REASONS if moe is None else None)
        print("  met" if not misses else "\n".join(f"  MISSES {miss}" for miss in misses))


def run_accuracy(
    paths: tuple[Path, ...] = DATA_FILES, predictor: str = "auto", rows: list[dict] | None = None
) -> tuple[list[Comparison], list[tuple[dict, str]]]:
    """Simulate every row (of ``paths``, or ``rows`` when given); the rows the simulator cannot represent come back
    separately, each with the reason."""
    comparisons, skipped = [], []
    for row in load_rows(paths) if rows is None else rows:
        reason = why_not_simulated(row)
        if reason is not None:
            skipped.append((row, reason))
        else:
            comparisons.append(compare(row, predictor=predictor))
    return comparisons, skipped


HELD_OUT_HEADER = """\
# Generated by `python benchmarks/simulator_accuracy.py --write-held-out`: do not edit by hand (a test fails when this
# file no longer matches the simulator). Every validation row of benchmarks/data/ (it fitted no constant), simulated
# with --predictor auto: what answered it (backend, model kind, engine generation, GPU vendor and family) and its error,
# simulated / published - 1, per metric it publishes. runners/simulated/held_out.py states these beside every
# simulated result.
"""


def held_out_document(comparisons: list[Comparison]) -> str:
    """The validation rows' errors as ``held_out.HELD_OUT_FILE`` holds them (to 0.1 %)."""
    rows = []
    for c in comparisons:
        errors = {m: round(e, 3) for m in held_out.METRICS if (e := c.error(m)) is not None}
        if c.role == "validation" and errors:
            rows.append({"id": c.row["id"], **c.held_out_key, "errors": errors})
    return HELD_OUT_HEADER + yaml.safe_dump({"rows": rows}, sort_keys=False, width=120, default_flow_style=None)


def print_speed(repeat: int = 5, predictor: str = "auto") -> None:
    """Best-of-``repeat`` CPU time of one simulation per load (process CPU time, so that other work on a shared
    machine does not inflate it; the simulator is single-threaded, so this is its time on one core)."""
    hardware, framework = hardware_facts("H100-SXM", 1), framework_facts("vllm")
    print(f"\nSimulator speed, predictor {predictor} (best of {repeat}, CPU time on one core):")
    for (name, version), load in SPEED_LOADS:
        model = model_facts(name, version)
        shape = (
            f"concurrency {load['concurrency']}" if "concurrency" in load else f"Poisson {load['request_rate']:g} req/s"
        )
        label = f"{name} H100, {shape}, {load['input_tokens']:,} in / {load['output_tokens']:,} out"
        best = math.inf
        for _ in range(repeat):
            started = time.process_time()
            simulate_serving(model, hardware, framework, tensor_parallel=1, predictor=predictor, **load)
            best = min(best, time.process_time() - started)
        print(f"  {label}: {best * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=list(DATA_FILES))
    parser.add_argument("--predictor", choices=PREDICTOR_CHOICES, default="auto", help="step-cost backend")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument(
        "--against", type=Path, nargs="+", help="InferenceX API JSON, dump folder or zip: score every predictor on it"
    )
    parser.add_argument(
        "--write-held-out",
        action="store_true",
        help=f"write the validation rows' errors under --predictor auto to {held_out.HELD_OUT_FILE.name}",
    )
    arguments = parser.parse_args()
    if arguments.write_held_out:
        if arguments.predictor != "auto" or arguments.against or list(arguments.data) != list(DATA_FILES):
            parser.error("--write-held-out takes the bundled data files under --predictor auto, nothing else")
        comparisons, _ = run_accuracy()
        held_out.HELD_OUT_FILE.write_text(held_out_document(comparisons))
        print(f"wrote {held_out.HELD_OUT_FILE}")
        return
    if arguments.against:
        rows = inferencex_rows(tuple(arguments.against))
        for predictor in PREDICTOR_CHOICES:
            print(f"\n## Predictor {predictor} against {len(rows)} imported rows\n")
            print_accuracy(*run_accuracy(predictor=predictor, rows=rows))
        return
    comparisons, skipped = run_accuracy(tuple(arguments.data), predictor=arguments.predictor)
    print_accuracy(comparisons, skipped)
    if not arguments.no_speed:
        print_speed(predictor=arguments.predictor)


if __name__ == "__main__":
    main()
