"""The config matrix of one model version: every hardware × framework × tensor-parallel degree × workload ×
concurrency × sequence length that can run, each with a queue priority, plus a count of what was left out and why.
Pure: no database, no Dagster.

Deployment shape: a node of ``gpu_count`` GPUs serves the model as ``gpu_count / tensor_parallel`` replicas, each a
tensor-parallel group; the degrees tried are those of ``TENSOR_PARALLEL_DEGREES`` dividing the GPU count (an 8-GPU
node: TP 1, 2, 4 and 8, i.e. eight, four, two or one replicas). ``batch_size`` is the concurrency per replica.

Per workload, only its own concurrency sweep and its representative sequence-length buckets are crossed (the use
case declares both in use_cases.yaml): a chatbot sends 512-token prompts, so its 8,192-token bucket measured nothing
the chatbot ranking should read.

What "can run" means here is a cheap pre-filter, so that the queue does not hold configs every worker would fail:
- the framework serves the version's quantization and weight format, on the hardware's GPU vendor;
- the GPU runs the precision: NVFP4 versions need FP4 tensor cores (MXFP4 ones run anywhere, dequantized to 16 bits
  where the GPU has none, as the engines' MXFP4 kernels do on Hopper and Ampere);
- the prompt fits the model's context window;
- the weights plus the KV cache of ONE full-length sequence (prompt + typical output) plus a runtime reserve fit on
  every GPU of the tensor-parallel group (``memory.fits``). Concurrency does not exclude anything: under continuous
  batching the KV cache bounds how many sequences run at once and the rest queue, which the simulator models.

Serving options (``domain.ServingOptions``): each runnable cell is queued once per option combination the version,
the hardware and the framework allow (``serving_option_choices``); what a framework cannot do (its catalog entry's
``serving_options``) is not queued, and not counted as excluded either (the plain config of the cell is queued):
- deployment shape: an MoE version on a replica of TP > 1 GPUs also runs expert-parallel over the replica's GPUs
  (EP = TP) and, where the engine has it, with data-parallel attention (which engines run only with EP): three
  shapes. Dense versions and TP 1 replicas (nothing to spread experts over) run EP 1 only;
- KV cache: ``fp8`` beside ``auto`` for fp8 and fp4 versions on GPUs with FP8 (the catalog's fp8_tflops), where the
  engine has an FP8 KV cache, in the cells where the cache weighs on the answer (``kv_cache_weighs``: the batch's
  cache at full length is at least the weights a GPU reads per step, or more than a 16-bit cache holds); those
  deployments already trade precision for memory. Where the batch's cache is small next to the weights, halving it
  changes a step by a few per cent and cannot move a ranking. 16-bit versions keep ``auto`` (an FP8 cache under a
  16-bit model is an accuracy question first);
- speculative decoding: the methods the version's manifest names (``speculative_methods``: DeepSeek's MTP head, an
  EAGLE-3 draft) that the engine runs, beside ``none``, only at concurrency <= ``SPECULATION_MAX_CONCURRENCY``:
  speculation spends spare compute on draft tokens, and above a batch of about eight a replica's decode step is no
  longer bandwidth-bound, so the verification work costs what the accepted tokens save (the engines' own guidance);
- prefix caching is not crossed: it is set per workload, on where the use case's dataset repeats prompt prefixes
  (``workloads.SHARED_PREFIX_FRACTION`` > 0) and the engine has a flag for it; off elsewhere, except on engines no
  flag turns it off (TGI, TensorRT-LLM), whose configs record it on, since that is how they run.
The memory pre-filter decides a cell on its plain deployment; an option that needs more memory than the cell offers
(DP attention copies the attention weights onto every GPU) is not queued for it, and not counted as excluded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import astuple, dataclass, field

from benchmark_platform import memory
from benchmark_platform.domain import PLAIN_DEPLOYMENT, ModelShape, ServingOptionFlags, ServingOptions

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
SEQUENCE_LENGTHS = (1024, 2048, 4096, 8192)
TENSOR_PARALLEL_DEGREES = (1, 2, 4, 8)
SPECULATION_MAX_CONCURRENCY = 8  # speculative decoding is queued at this concurrency per replica or below
LOW_PRECISION_KV = ("fp8", "fp4")  # versions whose configs also try an FP8 KV cache

# Lower runs first. The interactive baseline (chatbot at batch size 1) is what most users ask about first.
BASELINE_WORKLOAD = "chatbot"
BASELINE_PRIORITY = 100
MIN_PRIORITY = 200
MAX_PRIORITY = 1000
# How much each dimension pushes a config back in the queue (sum 1): cheap hardware first matters most, because a
# cheap GPU's configs finish early and cost little, then small batches, short prompts, common workloads and small
# tensor-parallel groups (the shape most models are served in).
PRIORITY_WEIGHTS = {
    "hardware_cost": 0.35,
    "batch_size": 0.2,
    "sequence_length": 0.2,
    "workload": 0.15,
    "tensor_parallel": 0.1,
}

# Reasons a combination is left out, in the order they are checked (a config is counted once, under the first).
NOT_BENCHMARKED_BY_DEFAULT = "framework_not_benchmarked_by_default"
VENDOR_UNSUPPORTED = "framework_does_not_support_vendor"
QUANTIZATION_UNSUPPORTED = "framework_does_not_support_quantization"
FORMAT_UNSUPPORTED = "framework_does_not_support_format"
FP4_UNSUPPORTED = "gpu_has_no_fp4_tensor_cores"
EXCEEDS_CONTEXT = "sequence_length_exceeds_model_context"
DOES_NOT_FIT = "does_not_fit_in_vram"
EXCLUSION_REASONS = (
    NOT_BENCHMARKED_BY_DEFAULT,
    VENDOR_UNSUPPORTED,
    QUANTIZATION_UNSUPPORTED,
    FORMAT_UNSUPPORTED,
    FP4_UNSUPPORTED,
    EXCEEDS_CONTEXT,
    DOES_NOT_FIT,
)


VersionSpec = ModelShape  # what the matrix needs of a model version: its size, precision and attention shape


@dataclass(frozen=True, slots=True)
class HardwareOption:
    name: str
    vendor: str
    gpu_count: int
    vram_per_gpu_gb: float
    cost_per_hour_usd: float
    fp4: bool = False  # FP4 tensor cores (the catalog's fp4_tflops)
    fp8: bool = False  # FP8 tensor cores (the catalog's fp8_tflops)


@dataclass(frozen=True, slots=True)
class FrameworkOption:
    name: str
    supports_quantizations: frozenset[str]
    supports_formats: frozenset[str]
    vendors: frozenset[str]
    benchmark_by_default: bool = True
    serving_options: ServingOptionFlags = field(default_factory=ServingOptionFlags)


@dataclass(frozen=True, slots=True)
class WorkloadOption:
    """A use case as a load; ``typical_output_tokens`` is what the KV cache holds beyond the prompt.
    ``sequence_lengths`` (its representative buckets) and ``batch_sizes`` (its concurrency sweep) are what the
    matrix crosses for it."""

    name: str
    typical_input_tokens: int
    typical_output_tokens: int
    sequence_lengths: tuple[int, ...] = SEQUENCE_LENGTHS
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    shared_prefix_fraction: float = 0.0  # of its dataset (workloads.SHARED_PREFIX_FRACTION): turns prefix caching on


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One config of the matrix: hardware and framework by name, then the config's dimensions
    (``domain.CONFIG_DIMENSIONS``, in that order), then its priority."""

    hardware: str
    framework: str
    workload_type: str
    batch_size: int
    sequence_length: int
    tensor_parallel: int
    expert_parallel: int
    data_parallel_attention: bool
    speculative_method: str
    kv_cache_dtype: str
    prefix_caching: bool
    priority: int


@dataclass(frozen=True)
class ConfigMatrix:
    """The runnable configs and, for every config left out, its reason (in total and per hardware × framework)."""

    configs: tuple[ConfigEntry, ...]
    excluded: dict[str, int]
    excluded_by_pair: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())


def tensor_parallel_options(gpu_count: int, degrees: Sequence[int] = TENSOR_PARALLEL_DEGREES) -> tuple[int, ...]:
    """The degrees that split a node of ``gpu_count`` GPUs into whole replicas."""
    return tuple(degree for degree in sorted(set(degrees)) if gpu_count % degree == 0)


def fits_in_memory(
    version: VersionSpec,
    hardware: HardwareOption,
    tensor_parallel: int,
    context_tokens: int,
    options: ServingOptions | None = None,
) -> bool:
    """Weights + the KV cache of one sequence of ``context_tokens`` + the runtime reserve, on each GPU of the group."""
    return memory.fits(version, hardware.vram_per_gpu_gb, tensor_parallel, context_tokens, sequences=1, options=options)


def gpu_precision_exclusion(version: VersionSpec, gpu_has_fp4: bool) -> str | None:
    """Why the GPU cannot run the version's precision, or None: NVFP4 multiplies in FP4 and needs FP4 tensor cores."""
    if version.quantization == "fp4" and version.fp4_scheme == "nvfp4" and not gpu_has_fp4:
        return FP4_UNSUPPORTED
    return None


def prefix_caching_for(workload: WorkloadOption, flags: ServingOptionFlags) -> bool:
    """On where the workload repeats prefixes and a flag turns it on; also on where no flag turns it off."""
    support = flags.prefix_caching
    if support is None:
        return False
    if workload.shared_prefix_fraction > 0 and support.enabled is not None:
        return True
    return support.disabled is None


def serving_option_choices(
    version: VersionSpec,
    hardware: HardwareOption,
    framework: FrameworkOption,
    workload: WorkloadOption,
    tensor_parallel: int,
    batch_size: int,
    context_tokens: int,
) -> tuple[ServingOptions, ...]:
    """The serving options a cell is queued with (the module docstring says which and why), the plain one first."""
    flags = framework.serving_options
    shapes = [(1, False)]
    if version.moe is not None and tensor_parallel > 1 and flags.expert_parallel is not None:
        shapes.append((tensor_parallel, False))
        if flags.data_parallel_attention is not None:
            shapes.append((tensor_parallel, True))
    methods = ["none"]
    if batch_size <= SPECULATION_MAX_CONCURRENCY:
        methods += [method for method in version.speculative_methods if method in flags.speculative]
    kv_dtypes = ["auto"]
    if (
        version.quantization in LOW_PRECISION_KV
        and hardware.fp8
        and flags.kv_cache_fp8 is not None
        and kv_cache_weighs(version, hardware, tensor_parallel, batch_size, context_tokens)
    ):
        kv_dtypes.append("fp8")
    prefix = prefix_caching_for(workload, flags)
    return tuple(
        ServingOptions(expert_parallel, attention_dp, method, kv_dtype, prefix)
        for expert_parallel, attention_dp in shapes
        for method in methods
        for kv_dtype in kv_dtypes
    )


def kv_cache_weighs(
    version: VersionSpec, hardware: HardwareOption, tensor_parallel: int, batch_size: int, context_tokens: int
) -> bool:
    """Whether the KV cache's element size can change a cell's answer: the batch's 16-bit cache at full length is at
    least the weights one GPU reads per step (attention then reads half a decode step's bytes or more), or it is more
    than the GPU's cache holds (the cache caps the batch)."""
    cache = batch_size * context_tokens * memory.kv_bytes_per_token(version, tensor_parallel, context_tokens)
    weights = memory.weight_bytes_per_gpu(version, tensor_parallel)
    return cache >= weights or cache > memory.kv_cache_bytes_per_gpu(version, hardware.vram_per_gpu_gb, tensor_parallel)


def _framework_exclusion(version: VersionSpec, hardware: HardwareOption, framework: FrameworkOption) -> str | None:
    if hardware.vendor not in framework.vendors:
        return VENDOR_UNSUPPORTED
    if version.quantization not in framework.supports_quantizations:
        return QUANTIZATION_UNSUPPORTED
    if version.format not in framework.supports_formats:
        return FORMAT_UNSUPPORTED
    return None


def workload_order(workloads: Sequence[WorkloadOption]) -> list[str]:
    """Commonest first: the chatbot baseline, then lighter loads (fewer typical tokens per request), then by name."""
    return [
        w.name
        for w in sorted(
            workloads,
            key=lambda w: (w.name != BASELINE_WORKLOAD, w.typical_input_tokens + w.typical_output_tokens, w.name),
        )
    ]


def _rank_fraction(values: Sequence) -> dict:
    """Each distinct value's position in sorted order, scaled to [0, 1]."""
    ordered = list(dict.fromkeys(values))
    if len(ordered) == 1:
        return {ordered[0]: 0.0}
    return {value: index / (len(ordered) - 1) for index, value in enumerate(ordered)}


def _checked(values: Sequence[int], dimension: str) -> tuple[int, ...]:
    if not values or min(values) < 1:
        raise ValueError(f"{dimension} must be positive integers, got {list(values)}")
    return tuple(sorted(set(values)))


def build_matrix(
    version: VersionSpec,
    hardware: Sequence[HardwareOption],
    frameworks: Sequence[FrameworkOption],
    workloads: Sequence[WorkloadOption],
    *,
    include_frameworks: Collection[str] = (),
    batch_sizes: Sequence[int] | None = None,
    sequence_lengths: Sequence[int] | None = None,
    tensor_parallel_degrees: Sequence[int] = TENSOR_PARALLEL_DEGREES,
) -> ConfigMatrix:
    """The configs of ``version`` that can run, in a deterministic order, with a priority each.

    Each workload crosses its own ``batch_sizes`` and ``sequence_lengths``; the arguments of the same names, when
    given, replace them for every workload. Frameworks whose ``benchmark_by_default`` is false (the local emulator)
    are left out unless named in ``include_frameworks``. Priorities: chatbot at batch size 1 gets 100; every other
    config 200-1000 from a weighted rank of its hardware's hourly cost, batch size, sequence length, workload
    commonness and tensor-parallel degree (cheap and small first).
    """
    override_batches = _checked(batch_sizes, "batch_sizes") if batch_sizes is not None else None
    override_lengths = _checked(sequence_lengths, "sequence_lengths") if sequence_lengths is not None else None
    degrees = _checked(tensor_parallel_degrees, "tensor_parallel_degrees")
    sweeps = {
        w.name: (
            override_batches or _checked(w.batch_sizes, f"batch_sizes of {w.name}"),
            override_lengths or _checked(w.sequence_lengths, f"sequence_lengths of {w.name}"),
        )
        for w in workloads
    }
    hardware = sorted(hardware, key=lambda h: (h.cost_per_hour_usd, h.name))
    cost_rank = _rank_fraction([h.name for h in hardware])
    workload_names = workload_order(workloads)
    workload_rank = _rank_fraction(workload_names)
    workloads_by_name = {w.name: w for w in workloads}
    batch_rank = _rank_fraction(sorted({b for batches, _ in sweeps.values() for b in batches}) or [1])
    sequence_rank = _rank_fraction(sorted({s for _, lengths in sweeps.values() for s in lengths}) or [1])
    tp_rank = _rank_fraction(degrees)
    weights = PRIORITY_WEIGHTS
    span = MAX_PRIORITY - MIN_PRIORITY

    def priority(hw: HardwareOption, workload: str, batch_size: int, sequence_length: int, tp: int) -> int:
        if workload == BASELINE_WORKLOAD and batch_size == 1:
            return BASELINE_PRIORITY
        score = (
            weights["hardware_cost"] * cost_rank[hw.name]
            + weights["batch_size"] * batch_rank[batch_size]
            + weights["sequence_length"] * sequence_rank[sequence_length]
            + weights["workload"] * workload_rank[workload]
            + weights["tensor_parallel"] * tp_rank[tp]
        )
        return MIN_PRIORITY + round(span * score)

    configs: list[ConfigEntry] = []
    excluded: Counter[str] = Counter()
    excluded_by_pair: dict[tuple[str, str], Counter[str]] = {}
    frameworks = sorted(frameworks, key=lambda f: f.name)
    for hw in hardware:
        # What fits depends on the hardware, not the framework: decide each (workload, length, batch, TP) cell once.
        runnable: list[tuple[str, int, int, int, int]] = []
        cell_exclusions: Counter[str] = Counter()
        hw_degrees = tensor_parallel_options(hw.gpu_count, degrees)
        precision_reason = gpu_precision_exclusion(version, hw.fp4)
        per_pair = 0
        for workload_name in workload_names:
            output_tokens = workloads_by_name[workload_name].typical_output_tokens
            batches, lengths = sweeps[workload_name]
            per_pair += len(hw_degrees) * len(lengths) * len(batches)
            for tp in hw_degrees:
                for sequence_length in lengths:
                    if version.max_position_embeddings and sequence_length > version.max_position_embeddings:
                        cell_exclusions[EXCEEDS_CONTEXT] += len(batches)
                        continue
                    if not fits_in_memory(version, hw, tp, sequence_length + output_tokens):
                        cell_exclusions[DOES_NOT_FIT] += len(batches)
                        continue
                    for batch_size in batches:
                        cell = (workload_name, batch_size, sequence_length, tp)
                        runnable.append((*cell, priority(hw, *cell)))
        for fw in frameworks:
            pair = (hw.name, fw.name)
            if not fw.benchmark_by_default and fw.name not in include_frameworks:
                reason: str | None = NOT_BENCHMARKED_BY_DEFAULT
            else:
                reason = _framework_exclusion(version, hw, fw) or precision_reason
            if reason is not None:
                pair_exclusions: Counter[str] = Counter({reason: per_pair}) if per_pair else Counter()
            else:
                pair_exclusions = cell_exclusions
                choices: dict[tuple[str, int, int, int], tuple[ServingOptions, ...]] = {}
                for workload_name, batch_size, sequence_length, tp, cell_priority in runnable:
                    key = (workload_name, tp, batch_size, sequence_length)
                    if key not in choices:
                        workload = workloads_by_name[workload_name]
                        context = sequence_length + workload.typical_output_tokens
                        choices[key] = tuple(
                            options
                            for options in serving_option_choices(version, hw, fw, workload, tp, batch_size, context)
                            if options == PLAIN_DEPLOYMENT or fits_in_memory(version, hw, tp, context, options)
                        )
                    configs.extend(
                        ConfigEntry(
                            hw.name,
                            fw.name,
                            workload_name,
                            batch_size,
                            sequence_length,
                            tp,
                            *astuple(options),
                            cell_priority,
                        )
                        for options in choices[key]
                    )
            if pair_exclusions:
                excluded.update(pair_exclusions)
                excluded_by_pair[pair] = Counter(pair_exclusions)
    return ConfigMatrix(
        configs=tuple(configs),
        excluded=dict(excluded),
        excluded_by_pair={pair: dict(counts) for pair, counts in excluded_by_pair.items()},
    )
