"""The facts of a model version, a hardware config, an inference framework and a workload: one set of pydantic models,
pure (no I/O, no SQL).

The network's architecture is declared once, in ``Architecture`` (what a model's config.json states). A manifest
states all of it (``manifests.ArchitectureFacts`` requires what is optional here) and ``model_versions.model_config``
stores it; ``ModelShape`` adds the version's size and precision (what the matrix and the memory model read:
``matrix.VersionSpec`` is this class); ``ModelFacts`` adds the version's identity (what a runner reads).

Where facts come from: ``queue.facts`` loads them from the database (the matrix's inputs and a claimed config's run
spec); ``manifests.model_facts``, ``hardware_facts_from_catalog`` and ``framework_facts_from_catalog`` build them from
the bundled manifests and catalogs without one (``benchmark-platform simulate``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from string import Formatter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from benchmark_platform.safe_yaml import FiniteFloat, Int32, Int64, NoBooleanNumbers

if TYPE_CHECKING:
    from benchmark_platform.catalogs import FrameworkSpec, GpuChipSpecs, HardwareSpec

# Mirror orm.QUANTIZATIONS / orm.FORMATS (a test keeps them equal); Literal types give readable errors.
Quantization = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"]
# FP4 checkpoints: NVFP4 multiplies in FP4 and needs FP4 tensor cores; MXFP4 (gpt-oss) uses them where the GPU has
# them and elsewhere is dequantized to 16 bits inside the kernels (vLLM's Marlin / Triton MXFP4 paths on Hopper and
# Ampere).
Fp4Scheme = Literal["nvfp4", "mxfp4"]
WeightFormat = Literal["gguf", "gptq", "awq", "safetensors"]
Vendor = Literal["nvidia", "amd"]


# Speculative decoding: a draft proposes tokens that one target forward pass verifies (DeepSeek's multi-token-
# prediction head, an EAGLE-3 draft model, n-gram lookup in the prompt); "none" decodes one token per step.
SpeculativeMethod = Literal["none", "mtp", "eagle3", "ngram"]
Speculation = Literal["mtp", "eagle3", "ngram"]  # the methods that speculate (what a model or an engine offers)
# The KV cache's element type: "auto" is the engine's default (the model's 16-bit activation type, also for FP8 and
# FP4 weights); "fp8" is the explicit option (vLLM/SGLang/TensorRT-LLM ``--kv-cache-dtype fp8``).
KvCacheDtype = Literal["auto", "fp8"]


@dataclass(frozen=True, order=True)
class ServingOptions:
    """How the engine serves a replica beyond its tensor-parallel degree: the options that change a deployment's
    answer. The defaults are a plain deployment (what every result before these options measured).

    A replica spans ``tensor_parallel`` GPUs. ``expert_parallel`` > 1 (MoE only; equal to the replica's GPUs, as
    vLLM's ``--enable-expert-parallel`` and SGLang's ``--ep-size`` place them) puts whole experts on each GPU
    instead of slicing every expert; ``data_parallel_attention`` (with expert parallelism) runs attention data-
    parallel: each GPU holds the dense weights and the KV cache of its own share of the sequences."""

    expert_parallel: int = 1
    data_parallel_attention: bool = False
    speculative_method: SpeculativeMethod = "none"
    kv_cache_dtype: KvCacheDtype = "auto"
    prefix_caching: bool = False

    def __post_init__(self) -> None:
        if self.expert_parallel < 1:
            raise ValueError(f"expert_parallel must be at least 1, got {self.expert_parallel}")
        if self.data_parallel_attention and self.expert_parallel == 1:
            raise ValueError("data_parallel_attention needs expert parallelism (expert_parallel > 1)")


PLAIN_DEPLOYMENT = ServingOptions()  # the defaults: what every config before the options measured


@dataclass(frozen=True)
class ConfigKey:
    """What makes a benchmark config unique (``benchmark_configs``' ``unique_config``; a result copies it): the
    version, hardware and framework, and the dimensions the matrix crosses for them. Declared once: the ORM's
    constraint, the queue's claim and result statements, the planner's rows, ``Claim``, the matrix's entries and the
    results frame take their columns from here (``test_domain`` checks each)."""

    model_version_id: uuid.UUID
    hardware_config_id: uuid.UUID
    framework_id: uuid.UUID
    workload_type: str
    batch_size: int
    sequence_length: int
    tensor_parallel: int
    # ServingOptions' fields, in its order (a config's deployment beyond TP; ``serving_options`` builds it back).
    expert_parallel: int
    data_parallel_attention: bool
    speculative_method: str
    kv_cache_dtype: str
    prefix_caching: bool


CONFIG_KEY_COLUMNS = tuple(field.name for field in fields(ConfigKey))
# Within one version × hardware × framework: workload, batch, length, TP and the serving options.
CONFIG_DIMENSIONS = CONFIG_KEY_COLUMNS[3:]
SERVING_OPTION_COLUMNS = tuple(field.name for field in fields(ServingOptions))


def serving_options(row: object) -> ServingOptions:
    """The serving options of a config, a claim or a result row (anything with the option columns as attributes or
    keys)."""
    if isinstance(row, Mapping):
        return ServingOptions(**{name: row[name] for name in SERVING_OPTION_COLUMNS})
    return ServingOptions(**{name: getattr(row, name) for name in SERVING_OPTION_COLUMNS})


SPECULATIVE_LABELS = {"none": None, "mtp": "MTP", "eagle3": "EAGLE-3", "ngram": "n-gram"}


def deployment_shape(tensor_parallel: int, options: ServingOptions, replicas: int | None = None) -> str:
    """A deployment's shape as a person reads it, naming only the options that are not the default:
    "TP 8, EP 8, DP-attn, EAGLE-3, KV fp8, prefix cache" ("TP 2 x 4 replicas, KV fp8" given the replicas)."""
    parts = [f"TP {tensor_parallel}" + (f" x {replicas} replica{'s' if replicas > 1 else ''}" if replicas else "")]
    if options.expert_parallel > 1:
        parts.append(f"EP {options.expert_parallel}")
    if options.data_parallel_attention:
        parts.append("DP-attn")
    if speculative := SPECULATIVE_LABELS[options.speculative_method]:
        parts.append(speculative)
    if options.kv_cache_dtype != "auto":
        parts.append(f"KV {options.kv_cache_dtype}")
    if options.prefix_caching:
        parts.append("prefix cache")
    return ", ".join(parts)


class _Strict(NoBooleanNumbers):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- a model version -------------------------------------------------------------------------------------------------


class MixtureOfExperts(_Strict):
    """The routed experts of an MoE model's FFN layers (config.json: num_experts / n_routed_experts,
    num_experts_per_tok, moe_intermediate_size, n_shared_experts, first_k_dense_replace)."""

    experts: Int32 = Field(gt=1, description="routed experts per MoE layer")
    experts_per_token: Int32 = Field(gt=0, description="routed experts each token goes through (top-k)")
    expert_intermediate_size: Int32 = Field(gt=0, description="FFN width of one routed expert")
    shared_experts: Int32 = Field(default=0, ge=0, description="experts every token goes through, per MoE layer")
    dense_layers: Int32 = Field(default=0, ge=0, description="leading layers with a dense FFN instead of experts")

    @field_validator("experts_per_token")
    @classmethod
    def _top_k_within_experts(cls, value: int, info: ValidationInfo) -> int:
        experts = info.data.get("experts")
        if experts is not None and value > experts:
            raise ValueError(f"experts_per_token ({value}) exceeds experts ({experts})")
        return value


class LatentAttention(_Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): the KV cache holds one compressed latent per token and layer
    instead of per-head keys and values, the same on every tensor-parallel rank."""

    kv_lora_rank: Int32 = Field(gt=0, description="width of the cached latent")
    qk_rope_head_dim: Int32 = Field(gt=0, description="the rotary key part cached beside the latent")


class SlidingWindow(_Strict):
    """Layers that attend to the last ``window`` tokens only (gpt-oss alternates them with full attention): their KV
    cache holds at most the window per sequence."""

    window: Int32 = Field(gt=0, description="tokens a sliding-window layer attends to")
    layers: Int32 = Field(gt=0, description="how many of the model's layers use the window")


class Architecture(_Strict):
    """The shape of the network, from the model's config.json: every architecture field, declared once.

    Optional here where some reader does without it (the matrix needs no hidden size, a runner no context window);
    a manifest requires the whole shape (``manifests.ArchitectureFacts``)."""

    num_layers: Int32 = Field(gt=0)
    hidden_size: Int32 | None = Field(default=None, gt=0)
    num_attention_heads: Int32 | None = Field(default=None, gt=0)
    num_kv_heads: Int32 = Field(gt=0)
    head_dim: Int32 = Field(gt=0)
    max_position_embeddings: Int32 | None = Field(default=None, gt=0, description="context window, tokens")
    intermediate_size: Int32 | None = Field(default=None, gt=0)
    vocab_size: Int32 | None = Field(default=None, gt=0)
    baseline_accuracy: FiniteFloat | None = Field(default=None, ge=0, le=1, description="published score, 0..1")
    moe: MixtureOfExperts | None = Field(default=None, description="routed experts; None for a dense model")
    latent_attention: LatentAttention | None = None
    sliding_window: SlidingWindow | None = None
    speculative_methods: dict[Speculation, str | None] = Field(
        default_factory=dict,
        description="speculative decoding the model ships for, method -> draft checkpoint (null: the model's own "
        "head, e.g. DeepSeek's MTP)",
    )

    @field_validator("num_kv_heads")
    @classmethod
    def _kv_heads_divide_heads(cls, value: int, info: ValidationInfo) -> int:
        heads = info.data.get("num_attention_heads")
        if heads is not None and heads % value:
            raise ValueError(f"num_attention_heads ({heads}) is not a multiple of num_kv_heads ({value})")
        return value

    @field_validator("moe", "sliding_window")
    @classmethod
    def _within_the_layers(cls, value: MixtureOfExperts | SlidingWindow | None, info: ValidationInfo):
        """Dense layers leave some layers to the experts; sliding-window layers are among the model's layers."""
        layers = info.data.get("num_layers")
        if value is None or layers is None:
            return value
        if isinstance(value, MixtureOfExperts) and value.dense_layers >= layers:
            raise ValueError(f"dense_layers ({value.dense_layers}) leaves none of the {layers} layers to the experts")
        if isinstance(value, SlidingWindow) and value.layers > layers:
            raise ValueError(f"sliding_window.layers ({value.layers}) exceeds num_layers ({layers})")
        return value

    @field_validator("latent_attention")
    @classmethod
    def _keys_wider_than_their_rope_part(cls, value: LatentAttention | None, info: ValidationInfo):
        """A latent-attention head's keys (``head_dim``) are its no-RoPE part plus its RoPE part, and its values as wide
        as the no-RoPE part (DeepSeek-V3: 128 + 64 = 192 and 128): the RoPE part alone leaves nothing."""
        head_dim = info.data.get("head_dim")
        if value is not None and head_dim is not None and head_dim <= value.qk_rope_head_dim:
            raise ValueError(
                f"head_dim ({head_dim}) must exceed latent_attention.qk_rope_head_dim ({value.qk_rope_head_dim}): "
                "a latent-attention key is its no-RoPE part plus its RoPE part"
            )
        return value

    def moe_layers(self) -> int:
        """Layers whose FFN is routed experts (all but the dense-FFN layers); 0 for a dense model."""
        return 0 if self.moe is None else self.num_layers - self.moe.dense_layers

    def latent_attention_layers(self) -> int:
        """Layers with multi-head latent attention (every layer of a model that has it); 0 for standard attention."""
        return 0 if self.latent_attention is None else self.num_layers

    def routed_expert_parameters(self) -> int:
        """Parameters of all routed experts (gate, up and down projections of each); 0 for a dense model."""
        if self.moe is None or self.hidden_size is None:
            return 0
        return self.moe_layers() * self.moe.experts * 3 * self.hidden_size * self.moe.expert_intermediate_size


class VersionPrecision(_Strict):
    """A version's precision facts beyond its quantization, kept in ``model_versions.model_config`` beside the
    architecture: checkpoints that quantize the experts only, and which FP4 scheme a version stores."""

    dense_weight_bits: Int32 | None = Field(
        default=None, gt=0, description="bits per weight outside the routed experts, where they differ (gpt-oss: 16)"
    )
    fp4_scheme: Fp4Scheme | None = Field(default=None, description="nvfp4 or mxfp4, for fp4 versions")


class ModelShape(VersionPrecision, Architecture):
    """A model version as the matrix and the memory model see it: its size, precision and attention shape."""

    parameters: Int64 = Field(gt=0)
    quantization: Quantization
    quantization_bits: Int32 = Field(gt=0)
    format: WeightFormat

    def active_parameters(self) -> float:
        """Parameters one token goes through: all of a dense model; an MoE model's dense part plus its top-k share
        of the routed experts."""
        routed = self.routed_expert_parameters()
        if self.moe is None:
            return self.parameters
        return self.parameters - routed * (1 - self.moe.experts_per_token / self.moe.experts)


class ModelFacts(ModelShape):
    """What a runner needs to know of a model version (from ``models``, ``model_versions`` and its
    ``model_config``). The roofline reads the hidden size, so a runner's model states it."""

    name: str
    version_key: str = Field(description="readable key, e.g. llama-3.1-8b@int4-awq")
    artifact_uri: str
    hidden_size: Int32 = Field(gt=0)


def options_problem(model: ModelFacts, tensor_parallel: int, options: ServingOptions) -> tuple[str, str] | None:
    """The first of ``options`` this model cannot run on a replica of ``tensor_parallel`` GPUs, as (the
    ``ServingOptions`` field to blame, why), or None. One rule for the run spec, the simulator and ``simulate``."""
    if options.expert_parallel > 1 and model.moe is None:
        return "expert_parallel", f"{model.version_key} is dense; expert parallelism needs a mixture-of-experts model"
    if options.expert_parallel not in (1, tensor_parallel):
        return "expert_parallel", (
            f"{options.expert_parallel} must be 1 or the replica's {tensor_parallel} GPUs (its tensor-parallel "
            "degree): the engines spread the experts over the replica's GPUs"
        )
    method = options.speculative_method
    if method in ("mtp", "eagle3") and method not in model.speculative_methods:
        offered = ", ".join(model.speculative_methods) or "none"
        return "speculative_method", f"{model.version_key} ships no {method} draft (its manifest offers: {offered})"
    return None


def require_runnable_options(model: ModelFacts, tensor_parallel: int, options: ServingOptions) -> None:
    """``ValueError`` naming the field and why, where ``options_problem`` finds one."""
    if problem := options_problem(model, tensor_parallel, options):
        field, why = problem
        raise ValueError(f"{field}: {why}")


# --- hardware, framework, workload -----------------------------------------------------------------------------------


class HardwareFacts(_Frozen):
    """One hardware config of the catalog, with the spec-sheet figures the roofline model uses."""

    name: str
    gpu_type: str
    gpu_count: int = Field(gt=0)
    vendor: Vendor
    vram_per_gpu_gb: float = Field(gt=0)
    memory_bandwidth_gbps: float = Field(gt=0, description="per GPU, GB/s")
    fp16_tflops: float = Field(gt=0, description="dense FP16/BF16 per GPU")
    fp8_tflops: float | None = Field(default=None, gt=0, description="dense FP8 per GPU, where the chip has it")
    int8_tops: float | None = Field(default=None, gt=0, description="dense INT8 per GPU, where the chip has it")
    fp4_tflops: float | None = Field(default=None, gt=0, description="dense FP4 per GPU, where the chip has FP4 cores")
    interconnect: str | None = Field(default=None, description="the GPUs' link: nvlink4, pcie4, infinity-fabric ...")
    interconnect_bandwidth_gbps: float | None = Field(default=None, gt=0, description="per GPU, GB/s")
    tdp_watts: float | None = Field(default=None, gt=0, description="board power per GPU, W (energy estimates)")
    cost_per_hour_usd: float | None = Field(default=None, gt=0, description="on-demand price of the whole node")
    spot_cost_per_hour_usd: float | None = Field(
        default=None, gt=0, description="spot price of the whole node, where the node is offered on spot"
    )

    def hourly_price(self) -> tuple[float | None, str | None]:
        """The price costs are quoted at and its basis: spot where offered (as the ranking does), else on demand."""
        if self.spot_cost_per_hour_usd is not None:
            return self.spot_cost_per_hour_usd, "spot"
        if self.cost_per_hour_usd is not None:
            return self.cost_per_hour_usd, "on_demand"
        return None, None


def hardware_facts_from_catalog(spec: HardwareSpec) -> HardwareFacts:
    """A hardware catalog entry as a runner sees it (the spot price only where the node is offered on spot)."""
    return hardware_facts_from_chip(
        spec.specs,
        name=spec.name,
        gpu_type=spec.gpu_type,
        gpu_count=spec.gpu_count,
        vram_per_gpu_gb=spec.vram_per_gpu_gb,
        cost_per_hour_usd=spec.cost_per_hour_usd,
        spot_cost_per_hour_usd=spec.spot_cost_per_hour_usd if spec.spot_available else None,
    )


def hardware_facts_from_chip(chip: GpuChipSpecs, **node: object) -> HardwareFacts:
    """A node of ``chip`` GPUs: the chip's spec-sheet figures plus the node's own (name, type, count, memory, prices);
    also a priceless node of any GPU of the catalog's ``gpus`` section, as the accuracy script builds them."""
    return HardwareFacts(
        vendor=chip.vendor,
        memory_bandwidth_gbps=chip.memory_bandwidth_gbps,
        fp16_tflops=chip.fp16_tflops,
        fp8_tflops=chip.fp8_tflops,
        int8_tops=chip.int8_tops,
        fp4_tflops=chip.fp4_tflops,
        interconnect=chip.interconnect,
        interconnect_bandwidth_gbps=chip.interconnect_bandwidth_gbps,
        tdp_watts=chip.tdp_watts,
        **node,
    )


class DataParallelAttentionFlags(_Frozen):
    """How an engine runs attention data-parallel over a replica's GPUs: vLLM as TP 1 × ``--data-parallel-size``
    ranks (``attention_tensor_parallel: one``), SGLang keeping ``--tp`` and adding ``--dp-size`` (``replica``)."""

    flag: str = Field(default="", description="what turns it on beside the sizes, e.g. --enable-dp-attention")
    attention_tensor_parallel: Literal["one", "replica"]


class PrefixCachingFlags(_Frozen):
    """The flag for each state of prefix caching: "" for the engine's default, None where no flag reaches it."""

    enabled: str | None = None
    disabled: str | None = None


class ServingOptionFlags(_Frozen):
    """Which ``ServingOptions`` an engine can run and the launch flags for each; None (or a missing method) means it
    cannot, and the matrix does not queue it. Templates: ``{ep}`` (expert-parallel size), ``{draft_model}``."""

    expert_parallel: str | None = Field(default=None, description="e.g. --enable-expert-parallel, --ep-size {ep}")
    data_parallel_attention: DataParallelAttentionFlags | None = None
    speculative: dict[Speculation, str] = Field(default_factory=dict, description="method -> flags")
    kv_cache_fp8: str | None = Field(default=None, description="e.g. --kv-cache-dtype fp8")
    prefix_caching: PrefixCachingFlags | None = None

    @model_validator(mode="after")
    def _known_placeholders(self) -> ServingOptionFlags:
        """A misspelt placeholder fails the catalog, not a launch hours later."""
        templates = [self.expert_parallel, *self.speculative.values()]
        used = {name for template in templates if template for _, name, _, _ in Formatter().parse(template) if name}
        if unknown := used - {"ep", "draft_model"}:
            raise ValueError(
                f"unknown placeholders {sorted(unknown)} in the serving option flags; allowed: ep, draft_model"
            )
        return self


class FrameworkFacts(_Frozen):
    name: str
    version: str
    launch_command: str = Field(
        description="template with {model}, {port}, {tp}, {max_model_len}, {quantization_flag} and optionally {dp}"
    )
    quantization_flags: dict[str, str] = Field(
        default_factory=dict,
        description="format or quantization (awq, gptq, fp8...) -> launch flag, e.g. --quantization awq",
    )
    completions_path: str = "/v1/completions"
    chat_completions_path: str = "/v1/chat/completions"
    supports_ignore_eos: bool = True
    serving_options: ServingOptionFlags = Field(default_factory=ServingOptionFlags)
    prefill_efficiency: float = Field(gt=0, le=1, description="fraction of peak FLOPs reached in prefill")
    decode_efficiency: float = Field(gt=0, le=1, description="fraction of peak bandwidth reached in decode")


def framework_facts_from_catalog(spec: FrameworkSpec) -> FrameworkFacts:
    """A framework catalog entry as a runner sees it."""
    return FrameworkFacts(
        name=spec.name,
        version=spec.version,
        launch_command=spec.launch_command,
        quantization_flags=dict(spec.quantization_flags),
        completions_path=spec.completions_path,
        chat_completions_path=spec.chat_completions_path,
        supports_ignore_eos=spec.supports_ignore_eos,
        serving_options=spec.serving_options,
        prefill_efficiency=spec.efficiency.prefill,
        decode_efficiency=spec.efficiency.decode,
    )


class WorkloadFacts(_Frozen):
    """A use case seen as a load: typical lengths, its SLA and whether accuracy is scored."""

    name: str
    typical_input_tokens: int = Field(gt=0)
    typical_output_tokens: int = Field(gt=0)
    chat: bool = False
    measure_accuracy: bool = False
    sla_ttft_p90_ms: float | None = Field(default=None, gt=0)
    sla_tpot_p90_ms: float | None = Field(default=None, gt=0)
    dataset: str = Field(
        default="synthetic-fixed", description="the use case's named dataset (workloads.DATASET_NAMES)"
    )
