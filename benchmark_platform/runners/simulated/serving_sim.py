"""A continuous-batching simulation of one serving replica (a tensor-parallel group): pure, seeded, fast.

Requests arrive (closed loop: ``concurrency`` clients, each sending its next request when the last completes;
open loop: Poisson arrivals at ``request_rate``). The closed loop's clients start one by one, evenly spread over one
unloaded request latency, as load generators ramp up: started together, fixed-length requests would stay in
lockstep forever (each wave completes in one step and its successors' prompts land in one prefill step, so TTFT
is the whole wave's prefill), where real clients drift apart with the lengths of real requests.

Every step the scheduler spends a token budget as vLLM V1's does: each running decode takes one token first, then
prompt chunks of partially prefilled and waiting requests (first come, first served) fill the rest of
``max_num_batched_tokens``. Engines that do not mix the two (SGLang by default, vLLM's V0 engine) run prompt
chunks as steps of their own, first, while the decodes wait (vLLM V0 with ``--enable-chunked-prefill`` mixes them
under its 512-token budget: ``chunked_prefill``). The budget and ``max_num_seqs`` are each engine's documented
defaults (``scheduler_limits``). A waiting request is admitted only while fewer than ``max_num_seqs`` sequences run
and the KV cache (``memory.kv_capacity_tokens``) has room (``admits_on_prompt``): vLLM and SGLang admit on the prompt
(less a watermark) and, when decoding fills the cache, preempt the newest running request, whose KV is freed and
whose prompt + generated tokens are prefilled again when it is readmitted at the head of the queue (recompute; its
earlier tokens keep their times for TTFT and E2E, its decode numbers continue after the recompute, so the inter-token
gaps of a preempted request are approximate); TensorRT-LLM reserves the whole prompt and output at admission and
never preempts. The rest wait. Requests have the load's fixed lengths, or each its own (``lengths``: a benchmark
dataset's draw), and finish in the order of their own last tokens. Each step costs what ``roofline.StepCosts`` says
for that step's mix, plus the host's cost per step.
TTFT, TPOT, ITL and E2E come from each request's own timeline; the first requests (warm-up) are not measured,
unless the load is a benchmark's whole run (``whole_run``: every request measured from the clients' first wave).

Multi-step scheduling (vLLM 0.6's ``--num-scheduler-steps N``, a V0 option gone in V1) is modelled by
``scheduler_steps``: the scheduler runs only after a block of N decode steps, so a request that arrives meanwhile
waits for the block's end before its prompt is prefilled (one step of its own), sequences that finish inside a block
keep their slot (and are computed) until its end, and each block's tokens reach the client together at its end.

SGLang's ``--scheduler-recv-interval N`` (``scheduler_recv_interval``; default 1) makes its scheduler poll for new
requests only once its counter reaches N: each decode step (or idle pass) adds 1, any step with prompt tokens adds
1,000 (SGLang's ``SchedulerRecvSkipper`` weights), so while a batch decodes a request that arrives meanwhile waits for
the next N-th decode step before it can be admitted; after a prompt step, or when idle, it is seen at once.

Serving options (``domain.ServingOptions``) change what a step costs and what the cache holds: the KV-cache dtype,
expert parallelism and data-parallel attention act through ``memory`` and the step-cost backend
(``roofline.step_costs``); speculative decoding and prefix caching act here:

- Speculative decoding (``speculative_method``): every decode step verifies k + 1 tokens per sequence (k drafts from
  ``workloads.SPECULATIVE_DRAFT_TOKENS``): k + 1 tokens through the weights and k + 1 queries over the context, which
  is read once; the draft itself costs ``DRAFT_LAYER_EQUIVALENTS`` layers of a one-token step per draft token. The
  step emits E = (1 − alpha^(k+1)) / (1 − alpha) tokens on average (alpha: ``workloads.speculative_acceptance`` of the
  dataset), so a request of ``output`` tokens (its own, with per-request ``lengths``) needs ceil((output − 1) / E)
  decode steps and its context grows by E per step. At low load the step is memory-bound and the extra tokens ride
  free (TPOT falls by about E); at high load the step is compute-bound and the rejected drafts' FLOPs are lost (the
  gain shrinks or turns into a loss).
- Prefix caching (``prefix_caching`` with ``shared_prefix_fraction`` f > 0): a request's prompt shares its first f of
  tokens (floor(f × its own prompt length)) with earlier requests of its dataset (``workloads.SHARED_PREFIX_FRACTION``);
  its prefill computes only the rest, attending to (and reading) the cached prefix. The first request finds the cache
  cold and pays its whole prompt. The KV cache still holds every request's whole prompt (and, under whole-sequence
  reservation, its output): shared blocks are not deduplicated here, a conservative capacity.

Speed: steps are simulated one by one only when the batch changes (an admission, a prefill chunk, a completion);
between such events every step decodes the same sequences, so a whole run of them is costed at once with numpy.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from benchmark_platform import memory, workloads
from benchmark_platform.domain import ServingOptions, require_runnable_options
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts
from benchmark_platform.runners.simulated import calibration, roofline
from benchmark_platform.runners.simulated.step_costs import PredictorChoice, step_cost_model

# Each engine's documented scheduler defaults: the token budget of a step (vLLM --max-num-batched-tokens, SGLang
# --chunked-prefill-size, TensorRT-LLM --max_num_tokens) and the most sequences it runs at once (vLLM --max-num-seqs,
# SGLang --max-running-requests, TensorRT-LLM --max_batch_size). FrameworkFacts carries none, so they live here.
# vLLM V1 (`vllm serve`; EngineArgs.get_batch_defaults in vllm/engine/arg_utils.py): GPUs with at least 70 GiB, except
# the A100 ("Setting large max_num_batched_tokens for A100 reduces throughput, see PR #17885"), get 8,192 tokens and
# 1,024 sequences; others 2,048 and 256. TGI, LMDeploy and the emulator take vLLM's (an approximation).
LARGE_GPU_GIB = 70
LARGE_GPU_LIMITS = (8192, 1024)
SMALL_GPU_LIMITS = (2048, 256)
# SGLang (ServerArgs.__post_init__ / _handle_chunked_prefill_size, 0.4-0.5): --chunked-prefill-size by the GPU's
# memory: under 35 GiB (A10, L4, 4090) 2,048; under 160 GiB (A100, H100, H200) 8,192; larger (B200, MI300X, MI355X)
# 16,384. A prefill batch holds at most that many prompt tokens (PrefillAdder spends the chunk budget over the batch).
# --max-running-requests defaults to what the request pool holds: min(max(KV tokens / context length x 512, 2,048),
# 4,096) (ModelRunner.init_memory_pool); the floor, 2,048, is taken here: the KV cache binds before it on every row.
SGLANG_CHUNK_BY_GIB = ((35, 2048), (160, 8192))
SGLANG_LARGEST_CHUNK = 16384
SGLANG_MAX_RUNNING_REQUESTS = 2048
# TensorRT-LLM's trtllm-serve: --max_batch_size and --max_num_tokens default to BuildConfig's, 2,048 requests and
# 8,192 tokens (tensorrt_llm/commands/serve.py: default=BuildConfig.max_batch_size / max_num_tokens; the docs'
# trtllm-serve page lists max_num_tokens 8192), on every GPU.
TRTLLM_LIMITS = (8192, 2048)
# KV admission (``admits_on_prompt``): vLLM's block manager keeps this share of the cache's blocks free when it admits
# a prompt (V0 BlockSpaceManager watermark=0.01; V1 admits on the blocks of the tokens it schedules), so that running
# decodes do not preempt at once.
ADMISSION_WATERMARK = 0.01
# vLLM's V0 engine (before 0.8) ran at most 256 sequences on every GPU (EngineArgs.max_num_seqs = 256).
V0_MAX_NUM_SEQS = 256
# vLLM V0 with --enable-chunked-prefill and no --max-num-batched-tokens: a budget of 512 tokens per step ("512 is the
# default max_num_batched_tokens for chunked prefill", vLLM's performance docs through 0.6; SchedulerConfig).
V0_CHUNKED_PREFILL_BUDGET = 512
# Host time per layer of a step that carries prompt tokens, for engines that run such steps without CUDA graphs
# (SGLang's "extend" batches, TensorRT-LLM's context steps, vLLM before its V1 engine (0.8), TGI, LMDeploy): every
# kernel of every layer is launched from Python. A fitted constant (``calibration.EAGER_PREFILL_PER_LAYER``). vLLM V1
# captures piecewise CUDA graphs for mixed prefill/decode steps, so it pays only the step overhead.
EAGER_PREFILL_SECONDS_PER_LAYER = calibration.EAGER_PREFILL_PER_LAYER.value
# What each MoE layer launches beyond a dense layer's kernels in those steps (router, top-k, alignment to experts,
# grouped GEMMs, their sum): a fitted constant too (``calibration.EAGER_PREFILL_PER_MOE_LAYER``).
EAGER_PREFILL_SECONDS_PER_MOE_LAYER = calibration.EAGER_PREFILL_PER_MOE_LAYER.value
# The API server's work per request varies with the prompt and the moment (tokenisation, scheduling): a seeded
# log-normal factor of this sigma on each request's share. Identical delays would keep fixed-length closed-loop clients
# in lockstep, which real clients drift out of.
REQUEST_OVERHEAD_SIGMA = 0.2
# What a step with prompt tokens adds to SGLang's receive counter (``SchedulerRecvSkipper``'s default weight; a decode
# step or an idle pass adds 1): with --scheduler-recv-interval up to this, the scheduler polls after every such step.
PROMPT_STEP_RECV_WEIGHT = 1000
# Seeded log-normal jitter on every step's duration (kernel timing, scheduling noise): 2 % sigma. A small table is
# drawn per simulation and step k takes entry k mod its size: a million steps then cost no million random draws.
STEP_JITTER_SIGMA = 0.02
# At most this many inter-token gaps are returned (a seeded sample when the measured requests hold more).
MAX_ITL_SAMPLES = 50_000
# Open loop: share of the requests sent before the measured ones (warm-up) and after them (keeps the load on
# while the last measured requests finish).
OPEN_LOOP_WARMUP_SHARE = 0.25
# Steps take their jitter factor from a seeded table of this many, by step number modulo its size.
JITTER_TABLE_SIZE = 4096
# What drafting one token costs, in layers of the target model's one-token step: an MTP module is one transformer
# layer of the target's shape plus the shared LM head (DeepSeek-V3 report, section 2.2); an EAGLE-3 head is one
# decoder layer plus its own LM head (EAGLE-3 paper, arXiv 2503.01840); the LM head (vocabulary x hidden) weighs about
# one layer in the models these methods ship for. N-gram lookup runs on the host over token ids: no GPU work.
DRAFT_LAYER_EQUIVALENTS = {"mtp": 2.0, "eagle3": 2.0, "ngram": 0.0}


@dataclass(frozen=True)
class ServingSimulation:
    """What one replica serving a fixed-length load did in the measured window (all figures simulated)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    itl_s: np.ndarray
    e2e_s: np.ndarray
    input_tokens: int
    output_tokens: int
    duration_s: float
    completed_requests: int
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float
    gpu_busy_fraction: float
    memory_per_gpu_gb: float
    kv_capacity_tokens: int
    max_running_sequences: int
    mean_running_sequences: float
    prefill_bound: str
    decode_bound: str
    predictor: dict  # what costed the steps (``step_costs.Predictor.as_dict``)
    assumptions: dict
    preemptions: int = 0  # running requests preempted (KV freed, recomputed later) over the whole simulation


def scheduler_limits(
    hardware: HardwareFacts, framework: FrameworkFacts, chunked_prefill: bool | None = None
) -> tuple[int, int]:
    """(token budget per step, most running sequences) the framework's server starts with on this GPU by default
    (the constants above cite each engine's source); ``chunked_prefill`` is the server's --enable-chunked-prefill
    (None: the engine's default)."""
    vram = memory.vram_bytes(hardware.vram_per_gpu_gb)
    if framework.name == "sglang":
        chunk = next((size for gib, size in SGLANG_CHUNK_BY_GIB if vram < gib * 2**30), SGLANG_LARGEST_CHUNK)
        return chunk, SGLANG_MAX_RUNNING_REQUESTS
    if framework.name == "tensorrt-llm":
        return TRTLLM_LIMITS
    large = vram >= LARGE_GPU_GIB * 2**30 and "a100" not in hardware.gpu_type.lower()
    budget, max_seqs = LARGE_GPU_LIMITS if large else SMALL_GPU_LIMITS
    if _is_vllm_v0(framework):
        max_seqs = V0_MAX_NUM_SEQS
        if chunked_prefill:
            budget = V0_CHUNKED_PREFILL_BUDGET
    return budget, max_seqs


def admits_on_prompt(framework: FrameworkFacts) -> bool:
    """Whether the engine admits a waiting request once its prompt fits in the free KV cache (plus a watermark) and
    preempts the newest running request when decoding runs the cache out (vLLM V0 and V1, SGLang), or reserves the
    whole sequence (prompt + all output) at admission and never preempts (TensorRT-LLM's default capacity scheduler,
    GUARANTEED_NO_EVICT; TGI, LMDeploy and the emulator by approximation).

    Why it matters: at loads whose sequences do not all fit in the cache at their full length, reserving all output
    runs fewer sequences than the cache could hold at any moment (most are far from their last token), so it
    underestimates the batch, and with it throughput; admitting on the prompt runs more, at the price of preemptions
    (vLLM V1 recomputes: a preempted request's KV is freed and its prompt + generated tokens are prefilled again when
    it is readmitted, ahead of the waiting queue)."""
    return framework.name in ("vllm", "sglang")


def splits_prompts(framework: FrameworkFacts, chunked_prefill: bool | None = None) -> bool:
    """Whether the engine splits a prompt over steps when it does not fit the step's remaining token budget (vLLM's
    and SGLang's chunked prefill), or schedules a prompt only whole: TensorRT-LLM's PyTorch backend leaves chunked
    context off by default (LLM API ``enable_chunked_prefill=False``; ``chunked_prefill`` is the server's
    ``--enable_chunked_prefill`` where it says), so a context request waits for a step whose ``max_num_tokens`` budget
    holds its whole prompt. With 5,000-token prompts and 8,192 tokens a step holds one prompt, finished in that step,
    where splitting spreads most prompts over two steps (and doubles their TTFT)."""
    return framework.name != "tensorrt-llm" or bool(chunked_prefill)


def mixes_prefill_with_decodes(framework: FrameworkFacts, chunked_prefill: bool | None = None) -> bool:
    """Whether prompt chunks ride along with the running decodes in one step (vLLM V1's chunked prefill, vLLM V0 with
    --enable-chunked-prefill, TGI and LMDeploy alike), or run as steps of their own while decodes wait (SGLang unless
    --enable-mixed-chunk, vLLM's V0 engine before 0.8 without chunked prefill). ``chunked_prefill`` is the server's
    --enable-chunked-prefill where it says (None: the engine's default)."""
    if chunked_prefill is not None:
        return chunked_prefill
    if framework.name == "sglang":
        return False
    return not _is_vllm_v0(framework)


def _is_vllm_v0(framework: FrameworkFacts) -> bool:
    return calibration.engine_generation(framework) == "vllm-v0"


def prefill_runs_eagerly(framework: FrameworkFacts) -> bool:
    """Whether the framework launches the kernels of steps with prompt tokens one by one (no CUDA graph)."""
    if framework.name == "vllm":
        return _is_vllm_v0(framework)
    return framework.name != "emulator"


def eager_prefill_seconds(model: ModelFacts, framework: FrameworkFacts) -> float:
    """Host seconds a step with prompt tokens adds in an engine that launches it eagerly: every layer's kernels, an MoE
    layer's extra ones, and the engine's own extra work per latent-attention layer where it has a fitted figure."""
    if not prefill_runs_eagerly(framework):
        return 0.0
    return (
        EAGER_PREFILL_SECONDS_PER_LAYER * model.num_layers
        + EAGER_PREFILL_SECONDS_PER_MOE_LAYER * model.moe_layers()
        + calibration.latent_attention_eager_prefill_seconds(framework) * model.latent_attention_layers()
    )


def _validate_options(model: ModelFacts, tensor_parallel: int, options: ServingOptions, shared_prefix: float) -> None:
    require_runnable_options(model, tensor_parallel, options)
    if not 0.0 <= shared_prefix < 1.0:
        raise ValueError(f"shared_prefix_fraction must lie in [0, 1), got {shared_prefix!r}")


def _validate(
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    tensor_parallel: int,
    input_tokens: int,
    output_tokens: int,
    concurrency: int | None,
    request_rate: float | None,
    num_requests: int | None,
    scheduler_steps: int,
    chunked_prefill: bool | None,
    whole_run: bool,
    scheduler_recv_interval: int,
    max_num_seqs: int | None,
    max_num_batched_tokens: int | None,
) -> None:
    def positive_int(name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    positive_int("tensor_parallel", tensor_parallel)
    if hardware.gpu_count % tensor_parallel:
        raise ValueError(
            f"tensor_parallel must divide the GPU count of {hardware.name} ({hardware.gpu_count}), "
            f"got {tensor_parallel}"
        )
    positive_int("input_tokens", input_tokens)
    positive_int("output_tokens", output_tokens)
    if (concurrency is None) == (request_rate is None):
        raise ValueError("give exactly one of concurrency (closed loop) or request_rate (open loop)")
    if concurrency is not None:
        positive_int("concurrency", concurrency)
    if request_rate is not None and not (isinstance(request_rate, int | float) and 0 < request_rate < math.inf):
        raise ValueError(f"request_rate must be a finite number > 0 (requests per second), got {request_rate!r}")
    if num_requests is not None:
        positive_int("num_requests", num_requests)
    positive_int("scheduler_steps", scheduler_steps)
    if whole_run and num_requests is None:
        raise ValueError("whole_run needs the run's num_requests")
    if chunked_prefill is not None and not isinstance(chunked_prefill, bool):
        raise ValueError(f"chunked_prefill must be True, False or None, got {chunked_prefill!r}")
    positive_int("scheduler_recv_interval", scheduler_recv_interval)
    if max_num_seqs is not None:
        positive_int("max_num_seqs", max_num_seqs)
    if max_num_batched_tokens is not None:
        positive_int("max_num_batched_tokens", max_num_batched_tokens)
    if scheduler_recv_interval > 1 and framework.name != "sglang":
        raise ValueError(
            f"scheduler_recv_interval > 1 is SGLang's --scheduler-recv-interval, not an option of {framework.name}"
        )
    if scheduler_recv_interval > 1 and scheduler_steps > 1:
        raise ValueError("scheduler_recv_interval > 1 and scheduler_steps > 1 are not modelled together")
    if scheduler_recv_interval > PROMPT_STEP_RECV_WEIGHT:
        raise ValueError(
            f"scheduler_recv_interval above {PROMPT_STEP_RECV_WEIGHT:,} is not modelled (a step with prompt tokens "
            f"adds {PROMPT_STEP_RECV_WEIGHT:,} to SGLang's counter, so the simulator polls after every such step), "
            f"got {scheduler_recv_interval}"
        )
    if scheduler_steps > 1 and mixes_prefill_with_decodes(framework, chunked_prefill):
        raise ValueError(
            f"scheduler_steps > 1 (multi-step scheduling) is modelled only for engines that run prefill steps alone "
            f"(vLLM before 0.8), not for {framework.name} {framework.version}"
        )


def simulate_serving(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    *,
    tensor_parallel: int,
    input_tokens: int,
    output_tokens: int,
    concurrency: int | None = None,
    request_rate: float | None = None,
    num_requests: int | None = None,
    scheduler_steps: int = 1,
    scheduler_recv_interval: int = 1,
    staggered_start: bool = True,
    seed: int = 0,
    predictor: PredictorChoice = "auto",
    options: ServingOptions | None = None,
    shared_prefix_fraction: float = 0.0,
    dataset: str | None = None,
    chunked_prefill: bool | None = None,
    whole_run: bool = False,
    lengths: tuple[np.ndarray, np.ndarray] | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
) -> ServingSimulation:
    """Simulate one replica serving requests of ``input_tokens`` prompt and ``output_tokens`` output tokens.

    ``scheduler_steps`` is the server's multi-step scheduling setting (vLLM 0.6's ``--num-scheduler-steps``; 1, the
    default everywhere, schedules every step); ``scheduler_recv_interval`` is SGLang's ``--scheduler-recv-interval``
    (1, its default, polls for new requests every step). ``staggered_start`` (closed loop): the clients start one by
    one over one unloaded request latency; False sends their first requests together (an offline batch, vLLM's latency
    test).
    ``predictor`` picks the step-cost backend (``step_costs``); the one that answered is in ``assumptions``.
    ``options`` are the engine's serving options (None: ``ServingOptions()``, a plain tensor-parallel deployment);
    ``shared_prefix_fraction`` is the share of each prompt earlier requests already sent (what prefix caching can
    skip); ``dataset`` names the workload's dataset, whose speculative acceptance rates apply (chat figures when None).
    ``chunked_prefill`` is the server's --enable-chunked-prefill where the deployment says (None: the engine's
    default; vLLM V0 with it mixes prompt chunks into decode steps under a 512-token budget).
    ``whole_run`` (with ``num_requests``): simulate and measure a benchmark run as ``vllm bench serve``, SGLang's
    bench_serving and AIPerf run one: exactly ``num_requests`` requests, every one measured from the first (a closed
    loop's first wave of clients included, an open loop's start on an empty server; no warm-up left out) and none
    sent after them (the last ones finish at falling load). An overloaded open loop's queue then grows over the run as
    it does in the measurement. By default the simulator measures the steady state between a warm-up and a tail.
    ``lengths`` (input, output): per-request lengths, request i taking entry i modulo their size (a benchmark's
    dataset, drawn as the source drew it); by default every request has ``input_tokens`` and ``output_tokens``, which
    should then be the lengths' means (the closed loop's ramp and the open loop's run length use them).
    ``max_num_seqs`` is the server's cap on running sequences where the deployment sets one (vLLM's --max-num-seqs,
    SGLang's --max-running-requests, TensorRT-LLM's max_batch_size); ``max_num_batched_tokens`` the token budget of a
    step where it sets one (vLLM's --max-num-batched-tokens, SGLang's --chunked-prefill-size, TensorRT-LLM's
    max_num_tokens); None: the engine's default (``scheduler_limits``).

    Raises ``roofline.DoesNotFitError`` when the weights plus one sequence of input + output tokens do not fit per
    GPU, ``ValueError`` for bad arguments.
    """
    _validate(
        hardware,
        framework,
        tensor_parallel,
        input_tokens,
        output_tokens,
        concurrency,
        request_rate,
        num_requests,
        scheduler_steps,
        chunked_prefill,
        whole_run,
        scheduler_recv_interval,
        max_num_seqs,
        max_num_batched_tokens,
    )
    options = options or ServingOptions()
    _validate_options(model, tensor_parallel, options, shared_prefix_fraction)
    tp = tensor_parallel
    prompts, outs = _request_lengths(lengths, input_tokens, output_tokens)
    sequence_tokens = input_tokens + output_tokens
    longest = int((prompts + outs).max())
    capacity = memory.kv_capacity_tokens(model, hardware.vram_per_gpu_gb, tp, sequence_tokens, options)
    if capacity < longest:
        needed = memory.memory_per_gpu_gb(model, tp, 1, longest, options)
        raise roofline.DoesNotFitError(
            f"{model.version_key} at tensor parallel {tp} needs {needed:.1f} GB per GPU for its weights and one "
            f"sequence of {longest} tokens; {hardware.name} offers "
            f"{memory.usable_gb_per_gpu(hardware.vram_per_gpu_gb):.1f} GB usable per GPU"
        )
    costs = step_cost_model(model, hardware, framework, tensor_parallel=tp, predictor=predictor, options=options)
    budget, max_seqs = scheduler_limits(hardware, framework, chunked_prefill)
    budget, max_seqs = max_num_batched_tokens or budget, max_num_seqs or max_seqs
    if framework.name == "vllm" and budget < max_seqs:
        # vLLM's SchedulerConfig refuses to start so (every running sequence must fit a step's budget)
        raise ValueError(
            f"max_num_batched_tokens ({budget}) is smaller than max_num_seqs ({max_seqs}): vLLM refuses to start so; "
            "state a smaller max_num_seqs too"
        )
    rng = np.random.default_rng(seed)
    speculation = _speculation(options, dataset, model)
    # a request's steps that emit its tokens (its prefill and its decode steps): with speculative decoding a decode
    # step emits ``growth`` tokens on average, so a request of o output tokens takes 1 + ceil((o - 1) / growth) steps
    growth, verify, draft_share = speculation["tokens_per_step"], speculation["verified_per_step"], 0.0
    if verify > 1:
        draft_layers = DRAFT_LAYER_EQUIVALENTS[options.speculative_method]
        draft_share = speculation["draft_tokens"] * draft_layers / model.num_layers
    steps = _emitting_steps(outs, growth)
    # a cyclic extension of the table, so that a run of up to a request's decode steps (or one multi-step block) is
    # one slice
    longest_run = max(int(steps.max()), scheduler_steps)
    jitter = np.resize(rng.lognormal(0.0, STEP_JITTER_SIGMA, JITTER_TABLE_SIZE), JITTER_TABLE_SIZE + longest_run)
    # every step's host work, and where fitted what a latent-attention layer adds to every step on the GPU family
    latent_attention_step = (
        calibration.latent_attention_step_seconds(hardware, framework) * model.latent_attention_layers()
    )
    overhead = costs.step_overhead_s + latent_attention_step
    # the API server's work per request (tokenise, template, schedule; detokenise and stream): the engine sees a
    # request this long after the client sent it, and the client's latencies include it
    request_overhead = calibration.request_overhead_seconds(framework)
    sequence_overhead = calibration.sequence_step_overhead_seconds(framework)
    eager_prefill = eager_prefill_seconds(model, framework)
    prompt, out = input_tokens, int(_emitting_steps(np.array([output_tokens]), growth)[0])

    def decode_gpu_seconds(sequences, tokens, pairs, kv_tokens, decode_context):
        """A step's GPU seconds when ``sequences`` of its tokens are decodes over ``decode_context`` cached tokens:
        each decode verifies ``verify`` tokens (k drafts + 1) and the drafts cost ``draft_share`` of a decode step."""
        if verify == 1:
            return costs.gpu_seconds(tokens, pairs, kv_tokens)
        extra = (verify - 1) * np.asarray(sequences)
        gpu = costs.gpu_seconds(tokens + extra, pairs + (verify - 1) * decode_context, kv_tokens)
        return gpu + draft_share * costs.gpu_seconds(sequences, decode_context, decode_context) * (sequences > 0)

    closed = concurrency is not None
    if closed:
        measured = num_requests or max(200, 4 * concurrency)
        # a whole benchmark run measures its first wave and sends nothing after its last request
        warmup = 0 if whole_run else concurrency
        capacity_requests = measured if whole_run else warmup + measured + concurrency
        arrival = np.zeros(capacity_requests)
        first_wave = min(concurrency, capacity_requests)  # the clients' first requests
        if staggered_start:
            # the clients start one by one, evenly over one unloaded request latency (the module docstring says why)
            unloaded_latency = (
                request_overhead
                + float(costs.gpu_seconds(prompt, prompt * (prompt + 1) / 2, prompt))
                + eager_prefill
                + out * (float(costs.gpu_seconds(1, prompt, prompt)) + overhead)
            )
            arrival[:first_wave] = np.arange(first_wave) * (unloaded_latency / concurrency)
        api_delay = request_overhead * rng.lognormal(0.0, REQUEST_OVERHEAD_SIGMA, capacity_requests)
        arrival[:first_wave] += api_delay[:first_wave]
        scheduled = issued = first_wave  # first requests with arrival times set; requests sent so far
    else:
        if num_requests is None:
            # about four times the requests in flight (Little's law at the unloaded end-to-end latency), like the
            # closed loop's 4 x concurrency
            unloaded_e2e = out * (float(costs.gpu_seconds(1, prompt, prompt)) + overhead)
            measured = max(200, math.ceil(4 * request_rate * unloaded_e2e))
        else:
            measured = num_requests
        warmup = 0 if whole_run else math.ceil(OPEN_LOOP_WARMUP_SHARE * measured)
        capacity_requests = measured if whole_run else warmup + measured + warmup
        api_delay = request_overhead * rng.lognormal(0.0, REQUEST_OVERHEAD_SIGMA, capacity_requests)
        arrival = np.cumsum(rng.exponential(1.0 / request_rate, capacity_requests)) + api_delay
        scheduled = issued = capacity_requests
    first_step = np.full(capacity_requests, -1, dtype=np.int64)  # the step that gave a request its first token
    # Decode steps are numbered apart from steps (prefill-only steps decode nothing). A request of s emitting steps
    # decodes at decode numbers first_decode + 1 .. first_decode + s - 1 and attends to
    # prompt + growth * (d - first_decode) tokens at decode number d. Where prompt chunks ride along with decodes,
    # every step is a decode step.
    first_decode = np.full(capacity_requests, -1, dtype=np.int64)
    # each request's lengths (the given ones cycled over the requests, or the fixed ones): its prompt, its output
    # tokens, its emitting steps (its output tokens without speculative decoding) and its cached prefix
    request_prompt = np.resize(prompts, capacity_requests)
    request_out = np.resize(outs, capacity_requests)
    request_steps = np.resize(steps, capacity_requests)
    request_tokens = request_prompt + request_out  # what its KV cache reserves: the whole sequence
    # prefix caching: the prompt tokens a request finds cached (all but the first request, which meets a cold cache)
    if options.prefix_caching:
        request_cached = np.floor(shared_prefix_fraction * request_prompt).astype(np.int64)
        request_cached[0] = 0
    else:
        request_cached = np.zeros(capacity_requests, dtype=np.int64)
    # the same as Python lists: the event loop reads them one request at a time
    prompt_of, steps_of, tokens_of = request_prompt.tolist(), request_steps.tolist(), request_tokens.tolist()
    cached_of = request_cached.tolist()
    # prompt admission with preemption (``admits_on_prompt``): what a request's (re)admission prefills (its prompt, or
    # after a preemption its prompt + the tokens it had generated: recompute), the emitting steps it had done when it
    # was preempted, when it was (last) admitted, and the last decode number of its current decoding episode (-1
    # when not decoding: heap entries of preempted episodes are skipped)
    on_prompt = admits_on_prompt(framework)
    split_prompts = splits_prompts(framework, chunked_prefill)
    watermark = ADMISSION_WATERMARK * capacity if on_prompt else 0.0
    prefill_len = list(prompt_of)
    done_steps = [0] * capacity_requests
    admitted_at = [0] * capacity_requests
    episode_last = [-1] * capacity_requests
    admissions = 0
    preemptions = 0
    prefill_reserved = 0  # KV tokens held by admitted requests not yet decoding (their whole prefill)
    measured_end = warmup + measured
    mixed = mixes_prefill_with_decodes(framework, chunked_prefill)

    # per run of steps: durations (a numpy array, or a one-element tuple) and the sequences running
    durations: list = []
    run_lengths: list[int] = []
    run_running: list[int] = []
    decode_runs: list[tuple[int, int]] = []  # (first step, steps) of each run of decode steps, when not mixed
    eager_steps: list[int] = []  # steps that paid eager_prefill on top of the host overhead
    bound_time = {"prefill_compute": 0.0, "prefill_memory": 0.0, "decode_compute": 0.0, "decode_memory": 0.0}

    waiting: deque[int] = deque()
    prefilling: deque[list[int]] = deque()  # [request, prompt tokens done], in admission order
    decoding: list[tuple[int, int]] = []  # a heap of (decode number of the last token, request)
    n_decoding = 0
    # over decoding requests: first_decode_sum is the sum of (first decode - prompt) and prompt_sum that of the prompts;
    # their contexts sum to growth * (n * decode - first_decode_sum) + (1 - growth) * prompt_sum (n * decode - the
    # first without speculative decoding)
    first_decode_sum = 0
    prompt_sum = 0
    reserved = 0
    peak_reserved = 0
    next_arrival = 0  # the next request of those with arrival times set that is not yet in `waiting`
    done_measured = 0
    step = 0
    decode = 0  # the number of the next decode step
    now = 0.0
    # SGLang's receive counter (``scheduler_recv_interval``): decode steps since its scheduler last polled for new
    # requests; arrivals join ``waiting`` only when it may poll (after a prompt step or an idle pass, or at 0 after
    # a run of decode steps)
    since_recv = 0
    may_receive = True

    def complete(request: int) -> None:
        nonlocal reserved, done_measured, issued, scheduled
        reserved -= tokens_of[request]
        if warmup <= request < measured_end:
            done_measured += 1
        if closed and issued < capacity_requests:
            # the client sends its next request now; the engine sees it once the API server has handled it
            arrival[issued] = now + api_delay[issued]
            issued += 1
            scheduled = issued

    def complete_decodes_through(last_decode: int) -> None:
        nonlocal n_decoding, first_decode_sum, prompt_sum
        while decoding and decoding[0][0] <= last_decode:
            last, request = heapq.heappop(decoding)
            if episode_last[request] != last:
                continue  # an episode ended by a preemption
            episode_last[request] = -1
            n_decoding -= 1
            first_decode_sum -= int(first_decode[request]) - prompt_of[request]
            prompt_sum -= prompt_of[request]
            complete(request)

    def decode_context(sequences: int) -> float:
        """The contexts of ``sequences`` (all the decoding ones, or none) at decode number ``decode``."""
        if not sequences:
            return 0
        if growth == 1.0:
            return sequences * decode - first_decode_sum
        return growth * (sequences * decode - first_decode_sum) + (1.0 - growth) * prompt_sum

    def kv_used() -> float:
        """KV tokens the running requests hold at decode number ``decode``: under prompt admission their contexts
        (the decodes' prompt + generated tokens, the prefilling ones' whole prefill); else the whole sequences
        reserved at admission."""
        if not on_prompt:
            return reserved
        return decode_context(n_decoding) + prefill_reserved

    def fits(request: int) -> bool:
        """Whether the cache admits ``request`` now: its prefill (prompt admission, keeping the watermark free and
        room for the running decodes' next token) or its whole sequence (full reservation)."""
        if not on_prompt:
            return reserved + tokens_of[request] <= capacity
        if not (prefilling or n_decoding):
            return True  # an empty cache takes any request (every one fits alone)
        return kv_used() + n_decoding * growth + prefill_len[request] <= capacity - watermark

    def unprefilled(request: int) -> int:
        """The prompt tokens ``request``'s admission would compute (its cached prefix is read, not computed)."""
        return prefill_len[request] - (cached_of[request] if not done_steps[request] else 0)

    def preempt_newest() -> None:
        """Preempt the most recently admitted running request (vLLM's scheduler pops the end of its running list):
        its KV is freed and it goes back to the head of the waiting queue, to prefill its prompt + generated tokens
        again (recompute)."""
        nonlocal n_decoding, first_decode_sum, prompt_sum, prefill_reserved, preemptions, reserved
        candidates = [entry[0] for entry in prefilling] + [r for _, r in decoding if episode_last[r] >= 0]
        request = max(candidates, key=admitted_at.__getitem__)
        if episode_last[request] >= 0:
            done = decode - int(first_decode[request])  # emitting steps done (tokens 0 .. done - 1)
            episode_last[request] = -1
            n_decoding -= 1
            first_decode_sum -= int(first_decode[request]) - prompt_of[request]
            prompt_sum -= prompt_of[request]
            done_steps[request] = done
            prefill_len[request] = prompt_of[request] + round(1 + growth * (done - 1))
        else:
            for index, entry in enumerate(prefilling):
                if entry[0] == request:
                    del prefilling[index]
                    break
            prefill_reserved -= prefill_len[request]
        reserved -= tokens_of[request]
        waiting.appendleft(request)
        preemptions += 1

    while done_measured < measured:
        while may_receive and next_arrival < scheduled and arrival[next_arrival] <= now:
            waiting.append(next_arrival)
            next_arrival += 1
        if on_prompt:
            while (prefilling or n_decoding) and kv_used() > capacity:
                preempt_newest()
            while decoding and episode_last[decoding[0][1]] != decoding[0][0]:
                heapq.heappop(decoding)  # drop ended episodes from the top
        running = len(prefilling) + n_decoding
        head = waiting[0] if waiting else min(next_arrival, capacity_requests - 1)  # the next request to admit
        admissible = running < max_seqs and fits(head)
        if prefilling or (waiting and admissible):
            # a step with prompt chunks: first the running decodes (where they ride along), then chunks of admitted,
            # then of newly admitted requests
            decodes = n_decoding if mixed else 0
            left = budget - decodes
            context = decode_context(decodes)
            tokens, pairs, kv_tokens = decodes, context, context
            finished: list[int] = []
            for entry in prefilling:
                if left <= 0:
                    break
                done = entry[1]
                length = prefill_len[entry[0]]
                chunk = min(length - done, left)
                pairs += chunk * done + chunk * (chunk + 1) / 2
                kv_tokens += done + chunk
                tokens += chunk
                left -= chunk
                entry[1] = done + chunk
                if entry[1] == length:
                    finished.append(entry[0])
            while (
                waiting
                and left > 0
                and running < max_seqs
                and fits(waiting[0])
                # an engine that does not split prompts takes one only whole (or alone, when longer than the budget)
                and (split_prompts or tokens == decodes or unprefilled(waiting[0]) <= left)
            ):
                request = waiting.popleft()
                reserved += tokens_of[request]
                prefill_reserved += prefill_len[request]
                admissions += 1
                admitted_at[request] = admissions
                running += 1
                # the cached prefix is read, not computed (a recompute after a preemption computes it all)
                length, cached = prefill_len[request], cached_of[request] if not done_steps[request] else 0
                chunk = min(length - cached, left)
                pairs += chunk * cached + chunk * (chunk + 1) / 2
                kv_tokens += cached + chunk
                tokens += chunk
                left -= chunk
                if cached + chunk == length:
                    finished.append(request)
                else:
                    prefilling.append([request, cached + chunk])
            peak_reserved = max(peak_reserved, round(kv_used()))
            while prefilling and prefilling[0][1] == prefill_len[prefilling[0][0]]:
                prefilling.popleft()
            factor = float(jitter[step % JITTER_TABLE_SIZE])
            gpu = float(decode_gpu_seconds(decodes, tokens, pairs, kv_tokens, context)) * factor
            host = overhead + eager_prefill + sequence_overhead * running
            if eager_prefill:
                eager_steps.append(step)
            duration = gpu + host * factor
            now += duration
            durations.append((duration,))
            run_lengths.append(1)
            run_running.append(running)
            compute_bound = costs.compute_bound(tokens, pairs, kv_tokens)
            bound_time["prefill_compute" if compute_bound else "prefill_memory"] += duration
            if mixed:
                complete_decodes_through(decode)
            for request in finished:
                prefill_reserved -= prefill_len[request]
                done = done_steps[request]  # emitting steps done before a preemption (0: a first admission)
                if first_step[request] < 0:
                    first_step[request] = step
                # this step emits token ``done``; the decode numbers of a resumed request continue from it
                first_decode[request] = (decode if mixed else decode - 1) - done
                if steps_of[request] - done == 1:
                    complete(request)
                else:
                    episode_last[request] = int(first_decode[request]) + steps_of[request] - 1
                    heapq.heappush(decoding, (episode_last[request], request))
                    n_decoding += 1
                    first_decode_sum += int(first_decode[request]) - prompt_of[request]
                    prompt_sum += prompt_of[request]
            step += 1
            decode += 1 if mixed else 0
            since_recv, may_receive = 0, True
        elif n_decoding:
            # a run of decode-only steps up to the next completion (or, open loop, the next admissible arrival);
            # under multi-step scheduling a whole block, whatever finishes or arrives meanwhile
            multi_step = scheduler_steps > 1
            count = scheduler_steps if multi_step else decoding[0][0] + 1 - decode
            if on_prompt and not multi_step:
                # no further than the cache holds: every step adds ``growth`` tokens per sequence
                room = (capacity - kv_used()) / (growth * n_decoding)
                count = max(1, min(count, int(room) + 1))
            # contexts grow by ``growth`` tokens (one without speculative decoding) per sequence per step; a decode
            # attends to (and reads) its whole context
            context = decode_context(n_decoding)
            contexts = context + growth * n_decoding * np.arange(count, dtype=float)
            gpu = decode_gpu_seconds(n_decoding, n_decoding, contexts, contexts, contexts)
            duration = gpu + (overhead + sequence_overhead * n_decoding)
            start = step % JITTER_TABLE_SIZE
            duration *= jitter[start : start + count]
            run_end = now + float(duration.sum())
            if not multi_step and next_arrival < scheduled and admissible and arrival[next_arrival] < run_end:
                # up to the step the arrival lands in, or (polling every N-th decode step) the next poll after it
                arrived = int(np.searchsorted(now + np.cumsum(duration), arrival[next_arrival])) + 1
                count = min(count, arrived + (-(since_recv + arrived) % scheduler_recv_interval))
                duration = duration[:count]
                run_end = now + float(duration.sum())
            middle = context + growth * n_decoding * (count // 2)
            compute_bound = costs.compute_bound(n_decoding, middle, middle)
            bound_time["decode_compute" if compute_bound else "decode_memory"] += run_end - now
            now = run_end
            durations.append(duration)
            run_lengths.append(count)
            run_running.append(running)
            if not mixed:
                decode_runs.append((step, count))
            step += count
            decode += count
            since_recv = (since_recv + count) % scheduler_recv_interval
            may_receive = since_recv == 0
            complete_decodes_through(decode - 1)
        else:
            # idle until the next arrival (open loop, or a closed loop's clients still starting; one that arrived
            # while the scheduler was not polling is seen at once, idle passes being quick)
            gap = max(0.0, float(arrival[next_arrival]) - now)
            since_recv, may_receive = 0, True
            now += gap
            durations.append((gap,))
            run_lengths.append(1)
            run_running.append(0)
            step += 1
            decode += 1 if mixed else 0

    if mixed:
        decode_steps = np.arange(step, dtype=np.int64)
    else:
        starts, counts = np.asarray(decode_runs, dtype=np.int64).reshape(-1, 2).T
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        decode_steps = np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    run_lengths_array = np.asarray(run_lengths, dtype=np.int64)
    # the step whose end brings each step's tokens to the client: under multi-step scheduling the last of its block
    delivery = np.repeat(np.cumsum(run_lengths_array) - 1, run_lengths_array) if scheduler_steps > 1 else None
    simulation = _summarize(
        model=model,
        framework=framework,
        tensor_parallel=tp,
        prompts=request_prompt,
        outs=request_steps,
        emitted=request_out,
        arrival=arrival,
        first_step=first_step,
        first_decode=first_decode,
        decode_steps=decode_steps,
        warmup=warmup,
        measured_end=measured_end,
        durations=np.concatenate(durations),
        jitter=jitter,
        overhead=overhead,
        sequence_overhead=sequence_overhead,
        request_overhead=request_overhead,
        api_delay=api_delay,
        allreduce_latency_s=calibration.allreduce_latency_seconds(hardware),
        efficiencies=calibration.efficiencies(hardware, framework),
        eager_prefill=eager_prefill,
        latent_attention_step=latent_attention_step,
        eager_steps=np.asarray(eager_steps, dtype=np.int64),
        run_lengths=run_lengths_array,
        delivery=delivery,
        scheduler_steps=scheduler_steps,
        scheduler_recv_interval=scheduler_recv_interval,
        run_running=np.asarray(run_running, dtype=np.int64),
        bound_time=bound_time,
        capacity=capacity,
        peak_reserved=peak_reserved,
        budget=budget,
        max_seqs=max_seqs,
        closed=closed,
        mixed=mixed,
        predictor=costs.predictor.as_dict(),
        load={"mode": "closed-loop", "concurrency": concurrency, "staggered_start": staggered_start}
        if closed
        else {"mode": "open-loop-poisson", "request_rate": request_rate},
        rng=rng,
        seed=seed,
        options=options,
        speculation=speculation,
        shared_prefix_fraction=shared_prefix_fraction,
        cached=request_cached,
        on_prompt=on_prompt,
    )
    return dataclasses.replace(simulation, preemptions=preemptions)


def _speculation(options: ServingOptions, dataset: str | None, model: ModelFacts) -> dict:
    """The speculative-decoding figures of a run: draft tokens k, acceptance alpha, tokens per step E, verified k + 1
    (k = 0, E = 1 without speculation)."""
    method = options.speculative_method
    if method == "none":
        return {"method": "none", "draft_tokens": 0, "acceptance": None, "tokens_per_step": 1.0, "verified_per_step": 1}
    k = workloads.SPECULATIVE_DRAFT_TOKENS[method]
    alpha = workloads.speculative_acceptance(method, dataset)
    return {
        "method": method,
        "draft_tokens": k,
        "acceptance": alpha,
        "tokens_per_step": workloads.expected_tokens_per_step(alpha, k),
        "verified_per_step": k + 1,
        "draft_cost_layers_per_token": DRAFT_LAYER_EQUIVALENTS[method],
    }


def _emitting_steps(outputs: np.ndarray, growth: float) -> np.ndarray:
    """The steps that emit each request's ``outputs`` tokens at ``growth`` tokens per decode step: its prefill (the
    first token) and ceil((output - 1) / growth) decode steps (output steps in all without speculative decoding)."""
    if growth == 1.0:
        return outputs.astype(np.int64)
    return 1 + np.ceil((outputs - 1) / growth).astype(np.int64)


def _request_lengths(
    lengths: tuple[np.ndarray, np.ndarray] | None, input_tokens: int, output_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-request (input, output) lengths as int64 arrays: the given ones, checked, or the fixed ones."""
    if lengths is None:
        return np.array([input_tokens], dtype=np.int64), np.array([output_tokens], dtype=np.int64)
    prompts, outs = (np.asarray(values) for values in lengths)
    for name, values in (("input", prompts), ("output", outs)):
        if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer) or values.min() < 1:
            raise ValueError(f"lengths: the {name} lengths must be a non-empty 1-D array of positive integers")
    if prompts.size != outs.size:
        raise ValueError(f"lengths: {prompts.size} input lengths but {outs.size} output lengths")
    return prompts.astype(np.int64), outs.astype(np.int64)


def _summarize(
    *,
    model: ModelFacts,
    framework: FrameworkFacts,
    tensor_parallel: int,
    prompts: np.ndarray,
    outs: np.ndarray,
    emitted: np.ndarray,
    arrival: np.ndarray,
    first_step: np.ndarray,
    first_decode: np.ndarray,
    decode_steps: np.ndarray,
    warmup: int,
    measured_end: int,
    durations: np.ndarray,
    jitter: np.ndarray,
    overhead: float,
    sequence_overhead: float,
    request_overhead: float,
    api_delay: np.ndarray,
    allreduce_latency_s: float,
    efficiencies: tuple[float, float],
    eager_prefill: float,
    latent_attention_step: float,
    eager_steps: np.ndarray,
    run_lengths: np.ndarray,
    delivery: np.ndarray | None,
    scheduler_steps: int,
    scheduler_recv_interval: int,
    run_running: np.ndarray,
    bound_time: dict[str, float],
    capacity: int,
    peak_reserved: int,
    budget: int,
    max_seqs: int,
    closed: bool,
    mixed: bool,
    predictor: dict,
    load: dict,
    rng: np.random.Generator,
    seed: int,
    options: ServingOptions,
    speculation: dict,
    shared_prefix_fraction: float,
    cached: np.ndarray,
    on_prompt: bool,
) -> ServingSimulation:
    """Per-request latencies of the measured requests and rates over the measured window. ``outs`` counts the steps
    that emit each request's tokens, ``emitted`` its output tokens (more than its steps under speculative decoding)."""
    ends = np.cumsum(durations)
    token_ends = ends if delivery is None else ends[delivery]  # when each step's tokens reach the client
    first = first_step[warmup:measured_end]
    base = first_decode[warmup:measured_end]
    start = arrival[warmup:measured_end] - api_delay[warmup:measured_end]  # when the clients sent them
    out = outs[warmup:measured_end]
    emitted_out = emitted[warmup:measured_end]
    several = out > 1  # requests with inter-token gaps
    # the step of each request's last token (its first when it has one)
    last = np.where(several, decode_steps[np.where(several, base + out - 1, 0)], first)
    ttft = token_ends[first] - start
    e2e = token_ends[last] - start
    tpot = np.where(several, (e2e - ttft) / np.maximum(emitted_out - 1, 1), 0.0)
    # inter-token gaps: token 0 at its prefill step, token k >= 1 at decode number base + k
    fixed_out = int(out[0]) if len(out) and (out == out[0]).all() else None
    if fixed_out is not None and len(first) * (fixed_out - 1) <= MAX_ITL_SAMPLES:
        later = token_ends[decode_steps[base[:, None] + np.arange(1, fixed_out)]]
        itl = np.diff(np.concatenate([token_ends[first][:, None], later], axis=1), axis=1).ravel()
    else:
        # a seeded sample of gaps (with lengths that vary, each request weighed by its gaps)
        if fixed_out is not None:
            picks = rng.integers(0, len(first), MAX_ITL_SAMPLES)
            token = rng.integers(1, fixed_out, MAX_ITL_SAMPLES)
        else:
            gaps = np.maximum(out - 1, 0)
            picks = rng.choice(len(first), MAX_ITL_SAMPLES, p=gaps / gaps.sum()) if gaps.sum() else np.zeros(0, int)
            token = 1 + np.floor(rng.random(picks.size) * gaps[picks]).astype(np.int64)
        previous = np.where(
            token == 1, token_ends[first[picks]], token_ends[decode_steps[base[picks] + np.maximum(token - 1, 1)]]
        )
        itl = token_ends[decode_steps[base[picks] + token]] - previous
    if delivery is not None:
        itl = itl[itl > 0]  # tokens of one multi-step block arrive in one chunk: a client sees one gap per chunk

    # the window: from the first measured arrival to the last measured completion; a closed loop starts it only
    # once the warm-up wave (the clients' first requests) has completed
    window_start, window_end = float(start.min()), float(token_ends[last].max())
    if closed:
        warm_first, warm_base, warm_out = first_step[:warmup], first_decode[:warmup], outs[:warmup]
        warm_done = (warm_first >= 0) & (warm_base + warm_out - 1 < decode_steps.size)
        warm_last = np.where(
            warm_out[warm_done] > 1,
            decode_steps[np.where(warm_out[warm_done] > 1, warm_base[warm_done] + warm_out[warm_done] - 1, 0)],
            warm_first[warm_done],
        )
        if warm_last.size and float(token_ends[warm_last].max()) < window_end:
            window_start = max(window_start, float(token_ends[warm_last].max()))
    duration = window_end - window_start
    lo = int(np.searchsorted(ends, window_start, side="right"))
    hi = int(np.searchsorted(ends, window_end, side="right"))  # steps lo .. hi-1 end inside the window
    decode_lo, decode_hi = np.searchsorted(decode_steps, [lo, hi])  # decode numbers whose steps lie in it
    started = first_step >= 0
    starts, bases, started_out = first_step[started], first_decode[started], outs[started]
    # a decode step emits (emitted - 1) / (steps - 1) tokens per sequence on average (1 without speculation)
    started_emitted = emitted[started]
    per_step = (started_emitted - 1) / np.maximum(started_out - 1, 1)
    first_tokens = int(((starts >= lo) & (starts < hi)).sum())
    later_tokens = np.clip(
        np.minimum(bases + started_out - 1, decode_hi - 1) - np.maximum(bases + 1, decode_lo) + 1, 0, None
    )
    output_in_window = first_tokens + (
        int(later_tokens.sum()) if speculation["method"] == "none" else float((later_tokens * per_step).sum())
    )
    last_decode = bases + started_out - 1
    finished = (started_out == 1) | (last_decode < decode_steps.size)
    last_steps = np.where(
        started_out[finished] > 1,
        decode_steps[np.where(started_out[finished] > 1, last_decode[finished], 0)],
        starts[finished],
    )
    completed = int(((last_steps >= lo) & (last_steps < hi)).sum())
    output_rate = output_in_window / duration
    # per run of steps (constant running sequences): its seconds inside the window, from the cumulative step ends
    cumulative = np.concatenate(([0.0], ends))
    run_ends = np.cumsum(run_lengths)
    first_in, past_in = np.clip(run_ends - run_lengths, lo, hi), np.clip(run_ends, lo, hi)
    run_seconds = cumulative[past_in] - cumulative[first_in]
    mean_running = float((run_running * run_seconds).sum() / run_seconds.sum())
    # GPU time: the window less idle gaps (nothing running) and the host's jittered overhead of every other step
    table_sum, table_prefix = (
        jitter[:JITTER_TABLE_SIZE].sum(),
        np.concatenate(([0.0], np.cumsum(jitter[:JITTER_TABLE_SIZE]))),
    )

    def jitter_sum(until: np.ndarray) -> np.ndarray:  # sum of the factors of steps 0 .. until - 1
        return until // JITTER_TABLE_SIZE * table_sum + table_prefix[until % JITTER_TABLE_SIZE]

    working = run_running > 0
    host_seconds = overhead * float((jitter_sum(past_in[working]) - jitter_sum(first_in[working])).sum())
    host_seconds += sequence_overhead * float((run_running * (past_in - first_in)).sum())
    eager = eager_steps[(eager_steps >= lo) & (eager_steps < hi)]
    host_seconds += eager_prefill * float(jitter[eager % JITTER_TABLE_SIZE].sum())
    busy = (float(run_seconds[working].sum()) - host_seconds) / duration
    decode_bound = "memory" if bound_time["decode_memory"] >= bound_time["decode_compute"] else "compute"
    prefill_bound = "compute" if bound_time["prefill_compute"] >= bound_time["prefill_memory"] else "memory"
    # the measured requests' mean lengths (every request's, where all are equal)
    prompt = float(prompts[warmup:measured_end].mean())
    mean_out = float(emitted_out.mean())
    peak_sequences = round(peak_reserved / (prompt + mean_out))
    mean_cached = float(cached[warmup:measured_end].mean())
    return ServingSimulation(
        ttft_s=ttft,
        tpot_s=tpot,
        itl_s=itl,
        e2e_s=e2e,
        input_tokens=round(prompt),
        output_tokens=round(mean_out),
        duration_s=duration,
        completed_requests=completed,
        output_tokens_per_s=output_rate,
        total_tokens_per_s=output_rate * (prompt + mean_out) / mean_out,
        requests_per_s=output_rate / mean_out,
        gpu_busy_fraction=min(1.0, busy),
        memory_per_gpu_gb=memory.memory_per_gpu_gb(
            model, tensor_parallel, peak_sequences, round(prompt + mean_out), options
        ),
        kv_capacity_tokens=capacity,
        max_running_sequences=int(run_running.max()),
        mean_running_sequences=mean_running,
        prefill_bound=prefill_bound,
        decode_bound=decode_bound,
        predictor=predictor,
        assumptions={
            "simulator": "continuous batching with chunked prefill, one replica",
            "prefill_steps": "ride along with decodes (vLLM V1)"
            if mixed
            else "run alone, decodes wait (SGLang, vLLM V0)",
            "load": load,
            "seed": seed,
            "tensor_parallel": tensor_parallel,
            "warmup_requests": warmup,
            "measured_requests": measured_end - warmup,
            "max_num_batched_tokens": budget,
            "max_num_seqs": max_seqs,
            "scheduler_steps": scheduler_steps,
            "scheduler_recv_interval": scheduler_recv_interval,
            "kv_admission": (
                f"on the prompt: admitted when its prompt fits in the free KV cache less a {ADMISSION_WATERMARK:.0%} "
                "watermark; the newest running request is preempted (KV freed, prompt + generated tokens recomputed) "
                "when decoding runs the cache out"
                if on_prompt
                else "whole sequence: admitted when the KV cache can hold its prompt and all its output; no preemption"
            ),
            "kv_capacity_tokens": capacity,
            "gpu_memory_utilization": memory.USABLE_VRAM_FRACTION,
            "runtime_reserve_gb": memory.RUNTIME_RESERVE_GB,
            "step_overhead_ms": overhead * 1e3,  # the latent-attention layers' part below included
            "latent_attention_step_ms": latent_attention_step * 1e3,
            "sequence_step_overhead_us": sequence_overhead * 1e6,
            "request_overhead_ms": request_overhead * 1e3,
            "eager_prefill_overhead_ms": eager_prefill * 1e3,
            "allreduce_latency_us": allreduce_latency_s * 1e6 if tensor_parallel > 1 else 0.0,
            # the shares this engine generation reaches on the GPU's family included
            "prefill_efficiency": efficiencies[0],
            "decode_efficiency": efficiencies[1],
            "step_jitter_sigma": STEP_JITTER_SIGMA,
            "serving_options": dataclasses.asdict(options),
            "kv_cache_bytes_per_element": memory.kv_dtype_bytes(model, options.kv_cache_dtype),
            "prefix_caching": (
                f"on: {round(mean_cached)} of {round(prompt)} prompt tokens cached (shared prefix "
                f"{shared_prefix_fraction:.0%}; the first request cold)"
                if options.prefix_caching
                else "off (every prompt computed in full)"
            ),
            "speculative_decoding": speculation,
        },
    )
