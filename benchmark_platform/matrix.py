"""The config matrix of one model version: every hardware × framework × workload × batch size × sequence length that
can run, each with a queue priority, plus a count of what was left out and why. Pure: no database, no Dagster.

What "can run" means here is a cheap pre-filter, so that the queue does not hold configs every worker would fail:
- the framework serves the version's quantization and weight format, on the hardware's GPU vendor;
- the prompt fits the model's context window;
- the weights plus the KV cache of the whole batch plus a runtime reserve fit in the GPUs' memory. The memory model
  is the simulated runner's (``runners.roofline``: weights and KV heads split over the GPUs, a share of VRAM usable),
  so the matrix never queues a config the roofline would reject (same KV bytes per element: one for fp8 versions,
  which keep the cache in FP8, four for fp32, two otherwise).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from benchmark_platform import memory

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
SEQUENCE_LENGTHS = (1024, 2048, 4096, 8192)

# Lower runs first. The interactive baseline (chatbot at batch size 1) is what most users ask about first.
BASELINE_WORKLOAD = "chatbot"
BASELINE_PRIORITY = 100
MIN_PRIORITY = 200
MAX_PRIORITY = 1000
# How much each dimension pushes a config back in the queue (sum 1): cheap hardware first matters most, because a
# cheap GPU's configs finish early and cost little, then small batches, short prompts and common workloads.
PRIORITY_WEIGHTS = {"hardware_cost": 0.4, "batch_size": 0.2, "sequence_length": 0.2, "workload": 0.2}

# Reasons a combination is left out, in the order they are checked (a config is counted once, under the first).
NOT_BENCHMARKED_BY_DEFAULT = "framework_not_benchmarked_by_default"
VENDOR_UNSUPPORTED = "framework_does_not_support_vendor"
QUANTIZATION_UNSUPPORTED = "framework_does_not_support_quantization"
FORMAT_UNSUPPORTED = "framework_does_not_support_format"
EXCEEDS_CONTEXT = "sequence_length_exceeds_model_context"
DOES_NOT_FIT = "does_not_fit_in_vram"
EXCLUSION_REASONS = (
    NOT_BENCHMARKED_BY_DEFAULT,
    VENDOR_UNSUPPORTED,
    QUANTIZATION_UNSUPPORTED,
    FORMAT_UNSUPPORTED,
    EXCEEDS_CONTEXT,
    DOES_NOT_FIT,
)


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """What the matrix needs of a model version: its size, precision and attention shape."""

    parameters: int
    quantization: str
    quantization_bits: int
    format: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int | None = None


@dataclass(frozen=True, slots=True)
class HardwareOption:
    name: str
    vendor: str
    gpu_count: int
    vram_per_gpu_gb: float
    cost_per_hour_usd: float


@dataclass(frozen=True, slots=True)
class FrameworkOption:
    name: str
    supports_quantizations: frozenset[str]
    supports_formats: frozenset[str]
    vendors: frozenset[str]
    benchmark_by_default: bool = True


@dataclass(frozen=True, slots=True)
class WorkloadOption:
    """A use case as a load; ``typical_output_tokens`` is what the KV cache holds beyond the prompt."""

    name: str
    typical_input_tokens: int
    typical_output_tokens: int


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    hardware: str
    framework: str
    workload_type: str
    batch_size: int
    sequence_length: int
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


def fits_in_memory(version: VersionSpec, hardware: HardwareOption, batch_size: int, context_tokens: int) -> bool:
    return memory.fits(version, hardware.vram_per_gpu_gb, hardware.gpu_count, context_tokens, sequences=batch_size)


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


def build_matrix(
    version: VersionSpec,
    hardware: Sequence[HardwareOption],
    frameworks: Sequence[FrameworkOption],
    workloads: Sequence[WorkloadOption],
    *,
    include_frameworks: Collection[str] = (),
    batch_sizes: Sequence[int] = BATCH_SIZES,
    sequence_lengths: Sequence[int] = SEQUENCE_LENGTHS,
) -> ConfigMatrix:
    """The configs of ``version`` that can run, in a deterministic order, with a priority each.

    Frameworks whose ``benchmark_by_default`` is false (the local emulator) are left out unless named in
    ``include_frameworks``. Priorities: chatbot at batch size 1 gets 100; every other config 200-1000 from a weighted
    rank of its hardware's hourly cost, batch size, sequence length and workload commonness (cheap and small first).
    """
    for dimension, values in (("batch_sizes", batch_sizes), ("sequence_lengths", sequence_lengths)):
        if not values or min(values) < 1:
            raise ValueError(f"{dimension} must be positive integers, got {list(values)}")
    batch_sizes = sorted(set(batch_sizes))
    sequence_lengths = sorted(set(sequence_lengths))
    hardware = sorted(hardware, key=lambda h: (h.cost_per_hour_usd, h.name))
    cost_rank = _rank_fraction([h.name for h in hardware])
    workload_names = workload_order(workloads)
    workload_rank = _rank_fraction(workload_names)
    workloads_by_name = {w.name: w for w in workloads}
    batch_rank = _rank_fraction(batch_sizes)
    sequence_rank = _rank_fraction(sequence_lengths)
    weights = PRIORITY_WEIGHTS
    span = MAX_PRIORITY - MIN_PRIORITY

    def priority(hw: HardwareOption, workload: str, batch_size: int, sequence_length: int) -> int:
        if workload == BASELINE_WORKLOAD and batch_size == 1:
            return BASELINE_PRIORITY
        score = (
            weights["hardware_cost"] * cost_rank[hw.name]
            + weights["batch_size"] * batch_rank[batch_size]
            + weights["sequence_length"] * sequence_rank[sequence_length]
            + weights["workload"] * workload_rank[workload]
        )
        return MIN_PRIORITY + round(span * score)

    configs: list[ConfigEntry] = []
    excluded: Counter[str] = Counter()
    excluded_by_pair: dict[tuple[str, str], Counter[str]] = {}
    per_pair = len(workload_names) * len(batch_sizes) * len(sequence_lengths)
    frameworks = sorted(frameworks, key=lambda f: f.name)
    for hw in hardware:
        # What fits depends on the hardware, not the framework: decide each (workload, length, batch) cell once.
        runnable: list[tuple[str, int, int, int]] = []
        cell_exclusions: Counter[str] = Counter()
        for workload_name in workload_names:
            output_tokens = workloads_by_name[workload_name].typical_output_tokens
            for sequence_length in sequence_lengths:
                for batch_size in batch_sizes:
                    if version.max_position_embeddings and sequence_length > version.max_position_embeddings:
                        cell_exclusions[EXCEEDS_CONTEXT] += 1
                    elif not fits_in_memory(version, hw, batch_size, sequence_length + output_tokens):
                        cell_exclusions[DOES_NOT_FIT] += 1
                    else:
                        cell = (workload_name, batch_size, sequence_length)
                        runnable.append((*cell, priority(hw, *cell)))
        for fw in frameworks:
            pair = (hw.name, fw.name)
            if not fw.benchmark_by_default and fw.name not in include_frameworks:
                reason: str | None = NOT_BENCHMARKED_BY_DEFAULT
            else:
                reason = _framework_exclusion(version, hw, fw)
            if reason is not None:
                pair_exclusions: Counter[str] = Counter({reason: per_pair})
            else:
                pair_exclusions = cell_exclusions
                configs.extend(ConfigEntry(hw.name, fw.name, *cell) for cell in runnable)
            if pair_exclusions:
                excluded.update(pair_exclusions)
                excluded_by_pair[pair] = Counter(pair_exclusions)
    return ConfigMatrix(
        configs=tuple(configs),
        excluded=dict(excluded),
        excluded_by_pair={pair: dict(counts) for pair, counts in excluded_by_pair.items()},
    )
