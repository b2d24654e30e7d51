"""The config matrix is pure: these tests need no database."""

from __future__ import annotations

import pytest

from benchmark_platform import catalogs, manifests, matrix, memory
from benchmark_platform.domain import (
    DataParallelAttentionFlags,
    MixtureOfExperts,
    PrefixCachingFlags,
    ServingOptionFlags,
    serving_options,
)
from benchmark_platform.matrix import FrameworkOption, HardwareOption, VersionSpec, WorkloadOption

LLAMA_8B = dict(parameters=8_030_261_248, num_layers=32, num_kv_heads=8, head_dim=128, max_position_embeddings=131072)
FP16 = VersionSpec(quantization="fp16", quantization_bits=16, format="safetensors", **LLAMA_8B)
FP8 = VersionSpec(quantization="fp8", quantization_bits=8, format="safetensors", **LLAMA_8B)
AWQ = VersionSpec(quantization="int4", quantization_bits=4, format="awq", **LLAMA_8B)

L4 = HardwareOption(name="l4-x1", vendor="nvidia", gpu_count=1, vram_per_gpu_gb=24, cost_per_hour_usd=0.8)
H100 = HardwareOption(name="h100-x8", vendor="nvidia", gpu_count=8, vram_per_gpu_gb=80, cost_per_hour_usd=55.0)
MI300X = HardwareOption(name="mi300x-x8", vendor="amd", gpu_count=8, vram_per_gpu_gb=192, cost_per_hour_usd=50.0)

ALL = frozenset({"fp32", "fp16", "bf16", "fp8", "int8", "int4"})
FORMATS = frozenset({"safetensors", "awq", "gptq", "gguf"})
VLLM = FrameworkOption("vllm", ALL, FORMATS, frozenset({"nvidia", "amd"}))
LMDEPLOY = FrameworkOption("lmdeploy", ALL - {"fp32"}, FORMATS - {"gguf"}, frozenset({"nvidia"}))
FP16_ONLY = FrameworkOption("fp16-only", frozenset({"fp16"}), frozenset({"safetensors"}), frozenset({"nvidia", "amd"}))
EMULATOR = FrameworkOption("emulator", ALL, FORMATS, frozenset({"nvidia", "amd"}), benchmark_by_default=False)

CHATBOT = WorkloadOption("chatbot", typical_input_tokens=512, typical_output_tokens=256)
SUMMARIZATION = WorkloadOption("summarization", typical_input_tokens=4096, typical_output_tokens=256)
CLASSIFICATION = WorkloadOption("classification", typical_input_tokens=256, typical_output_tokens=8)
WORKLOADS = [SUMMARIZATION, CLASSIFICATION, CHATBOT]

# One workload's cells on one node: its batch sizes × sequence lengths × the tensor-parallel degrees dividing the node.
PER_DEGREE = len(WORKLOADS) * len(matrix.BATCH_SIZES) * len(matrix.SEQUENCE_LENGTHS)
PER_PAIR = 4 * PER_DEGREE  # an 8-GPU node: TP 1, 2, 4 and 8
PER_PAIR_ONE_GPU = PER_DEGREE


def _keys(built: matrix.ConfigMatrix) -> set[tuple]:
    return {
        (c.hardware, c.framework, c.workload_type, c.batch_size, c.sequence_length, c.tensor_parallel)
        for c in built.configs
    }


def test_every_dimension_is_crossed_when_everything_fits():
    built = matrix.build_matrix(AWQ, [H100, MI300X], [VLLM], WORKLOADS)
    assert len(built.configs) == 2 * PER_PAIR == 576
    assert len(_keys(built)) == len(built.configs)  # no duplicates
    assert {c.batch_size for c in built.configs} == {1, 2, 4, 8, 16, 32}
    assert {c.sequence_length for c in built.configs} == {1024, 2048, 4096, 8192}
    assert {c.tensor_parallel for c in built.configs} == {1, 2, 4, 8}
    assert built.excluded == {}


def test_tensor_parallel_degrees_divide_the_node():
    assert matrix.tensor_parallel_options(1) == (1,)
    assert matrix.tensor_parallel_options(2) == (1, 2)
    assert matrix.tensor_parallel_options(4) == (1, 2, 4)
    assert matrix.tensor_parallel_options(8) == (1, 2, 4, 8)
    assert matrix.tensor_parallel_options(6) == (1, 2)
    built = matrix.build_matrix(AWQ, [L4, H100], [VLLM], WORKLOADS)
    assert {c.tensor_parallel for c in built.configs if c.hardware == "l4-x1"} == {1}


def test_each_workload_crosses_its_own_sweep_and_representative_buckets():
    chat = WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(1, 2, 4, 8, 16, 32, 64))
    offline = WorkloadOption("batch", 1024, 512, sequence_lengths=(1024, 2048), batch_sizes=(1, 32, 256))
    built = matrix.build_matrix(AWQ, [L4], [VLLM], [chat, offline])
    by_workload = {
        name: {(c.batch_size, c.sequence_length) for c in built.configs if c.workload_type == name}
        for name in ("chatbot", "batch")
    }
    assert by_workload["chatbot"] == {(b, 1024) for b in (1, 2, 4, 8, 16, 32, 64)}
    assert by_workload["batch"] == {(b, s) for b in (1, 32, 256) for s in (1024, 2048)}
    overridden = matrix.build_matrix(AWQ, [L4], [VLLM], [chat, offline], batch_sizes=[4], sequence_lengths=[2048])
    assert {(c.batch_size, c.sequence_length) for c in overridden.configs} == {(4, 2048)}
    assert len(overridden.configs) == 2


def test_every_candidate_is_either_kept_or_counted_under_one_reason():
    built = matrix.build_matrix(FP16, [L4, H100, MI300X], [VLLM, LMDEPLOY, FP16_ONLY, EMULATOR], WORKLOADS)
    assert len(built.configs) + built.excluded_total == 4 * (PER_PAIR_ONE_GPU + 2 * PER_PAIR)
    assert set(built.excluded) <= set(matrix.EXCLUSION_REASONS)
    per_pair_total = sum(sum(counts.values()) for counts in built.excluded_by_pair.values())
    assert per_pair_total == built.excluded_total


def test_emulator_is_left_out_unless_asked():
    default = matrix.build_matrix(AWQ, [H100], [VLLM, EMULATOR], WORKLOADS)
    assert {c.framework for c in default.configs} == {"vllm"}
    assert default.excluded == {matrix.NOT_BENCHMARKED_BY_DEFAULT: PER_PAIR}
    asked = matrix.build_matrix(AWQ, [H100], [VLLM, EMULATOR], WORKLOADS, include_frameworks={"emulator"})
    assert {c.framework for c in asked.configs} == {"vllm", "emulator"}


def test_framework_without_the_vendor_is_left_out_on_that_vendor_only():
    built = matrix.build_matrix(AWQ, [H100, MI300X], [LMDEPLOY], WORKLOADS)
    assert {c.hardware for c in built.configs} == {"h100-x8"}
    assert built.excluded == {matrix.VENDOR_UNSUPPORTED: PER_PAIR}
    assert built.excluded_by_pair == {("mi300x-x8", "lmdeploy"): {matrix.VENDOR_UNSUPPORTED: PER_PAIR}}


def test_unsupported_quantization_and_format_are_counted_separately():
    int4_safetensors = VersionSpec(quantization="int4", quantization_bits=4, format="safetensors", **LLAMA_8B)
    assert matrix.build_matrix(AWQ, [H100], [FP16_ONLY], WORKLOADS).excluded == {
        matrix.QUANTIZATION_UNSUPPORTED: PER_PAIR
    }
    fp16_gguf = VersionSpec(quantization="fp16", quantization_bits=16, format="gguf", **LLAMA_8B)
    assert matrix.build_matrix(fp16_gguf, [H100], [FP16_ONLY], WORKLOADS).excluded == {
        matrix.FORMAT_UNSUPPORTED: PER_PAIR
    }
    assert matrix.build_matrix(int4_safetensors, [H100], [VLLM], WORKLOADS).excluded == {}


LLAMA_70B = dict(parameters=70_553_706_496, num_layers=80, num_kv_heads=8, head_dim=128)
FP16_70B = VersionSpec(quantization="fp16", quantization_bits=16, format="safetensors", **LLAMA_70B)
FP8_70B = VersionSpec(quantization="fp8", quantization_bits=8, format="safetensors", **LLAMA_70B)
H100_X1 = HardwareOption(name="h100-x1", vendor="nvidia", gpu_count=1, vram_per_gpu_gb=80, cost_per_hour_usd=7.0)


def test_memory_fit_needs_one_full_length_sequence_per_gpu_of_the_group_not_the_whole_batch():
    """llama-3.1-8b fp16 on one 24 GB (GiB) L4: 23.2 GB usable - 1.5 reserve - 16.06 GB weights leaves 5.63 GB of KV
    cache at 131,072 B per token (2 × 32 layers × 8 KV heads × 128 × 2 B): about 43,000 tokens. One 8,448-token sequence
    fits, so every concurrency is queued: under continuous batching the KV cache bounds what runs at once and the
    rest of the requests wait, which the simulator models (it is not a reason to leave a config out)."""
    assert memory.kv_bytes_per_token(FP16, 1) == 131_072
    assert memory.kv_capacity_tokens(FP16, 24, 1) == 42_971
    keys = _keys(matrix.build_matrix(FP16, [L4], [VLLM], [CHATBOT]))
    assert ("l4-x1", "vllm", "chatbot", 32, 8192, 1) in keys  # 32 × 8,448 tokens would not all fit at once
    assert len(keys) == PER_DEGREE // len(WORKLOADS)


def test_llama_70b_fp16_is_never_placed_on_a_single_80gb_gpu():
    """141 GB of weights: not on one 80 GB GPU (TP 1). Two hold it as vLLM serves it: an "80 GB" GPU has 80 GiB, of
    which 90 % (77.3 GB) is usable, and 70.6 GB of weights + 1.5 GB reserve leave a small KV cache (about 32,000
    tokens: one 8,448-token sequence fits); from four GPUs on, each holds 35 GB of weights and plenty of KV cache."""
    built = matrix.build_matrix(FP16_70B, [H100_X1, H100], [VLLM], [CHATBOT])
    assert {c.tensor_parallel for c in built.configs if c.hardware == "h100-x8"} == {2, 4, 8}
    assert not [c for c in built.configs if c.hardware == "h100-x1"]
    assert built.excluded_by_pair[("h100-x1", "vllm")] == {matrix.DOES_NOT_FIT: PER_DEGREE // len(WORKLOADS)}
    assert built.excluded_by_pair[("h100-x8", "vllm")] == {matrix.DOES_NOT_FIT: PER_DEGREE // len(WORKLOADS)}
    assert 20_000 < memory.kv_capacity_tokens(FP16_70B, 80, 2) < 50_000


def test_fp8_halves_the_kv_cache_and_weights():
    assert memory.kv_bytes_per_token(FP8, 1) == 131_072  # the engines default to a 16-bit cache for FP8 weights
    assert memory.kv_bytes_per_token(FP8, 1, kv_cache_dtype="fp8") == 65_536
    fp16 = {c.tensor_parallel for c in matrix.build_matrix(FP16_70B, [H100], [VLLM], [CHATBOT]).configs}
    fp8 = {c.tensor_parallel for c in matrix.build_matrix(FP8_70B, [H100], [VLLM], [CHATBOT]).configs}
    assert (fp16, fp8) == ({2, 4, 8}, {1, 2, 4, 8})  # 70.6 GB of FP8 weights fit one GPU where 141 GB did not


def test_a_model_too_big_for_the_hardware_is_dropped_with_its_reason():
    llama_70b = VersionSpec(
        parameters=70_553_706_496, quantization="fp16", quantization_bits=16, format="safetensors",
        num_layers=80, num_kv_heads=8, head_dim=128,
    )  # fmt: skip
    built = matrix.build_matrix(llama_70b, [L4, H100], [VLLM], WORKLOADS)
    assert {c.hardware for c in built.configs} == {"h100-x8"}
    assert built.excluded_by_pair[("l4-x1", "vllm")] == {matrix.DOES_NOT_FIT: PER_PAIR_ONE_GPU}


def test_prompts_longer_than_the_context_window_are_dropped():
    short_context = VersionSpec(
        parameters=7_000_000_000, quantization="fp16", quantization_bits=16, format="safetensors",
        num_layers=32, num_kv_heads=32, head_dim=128, max_position_embeddings=4096,
    )  # fmt: skip
    built = matrix.build_matrix(short_context, [H100], [VLLM], [CHATBOT])
    assert max(c.sequence_length for c in built.configs) == 4096
    assert built.excluded[matrix.EXCEEDS_CONTEXT] == len(matrix.BATCH_SIZES) * 4  # the 8,192 bucket at each TP


def test_priorities_put_the_chatbot_baseline_first_then_cheap_small_configs():
    built = matrix.build_matrix(AWQ, [H100, L4, MI300X], [VLLM], WORKLOADS)
    by_key = {
        (c.hardware, c.workload_type, c.batch_size, c.sequence_length, c.tensor_parallel): c.priority
        for c in built.configs
    }
    baseline = [p for (_, workload, batch, _, _), p in by_key.items() if workload == "chatbot" and batch == 1]
    others = [p for (_, workload, batch, _, _), p in by_key.items() if not (workload == "chatbot" and batch == 1)]
    assert set(baseline) == {100}
    assert all(200 <= p <= 1000 for p in others)
    assert by_key[("l4-x1", "summarization", 2, 1024, 1)] < by_key[("h100-x8", "summarization", 2, 1024, 1)]
    assert by_key[("h100-x8", "chatbot", 2, 1024, 1)] < by_key[("h100-x8", "chatbot", 4, 1024, 1)]
    assert by_key[("h100-x8", "chatbot", 2, 1024, 1)] < by_key[("h100-x8", "chatbot", 2, 2048, 1)]
    assert by_key[("h100-x8", "chatbot", 2, 1024, 1)] < by_key[("h100-x8", "summarization", 2, 1024, 1)]
    assert by_key[("h100-x8", "chatbot", 2, 1024, 1)] < by_key[("h100-x8", "chatbot", 2, 1024, 2)]
    assert by_key[("l4-x1", "chatbot", 2, 1024, 1)] == min(others)  # cheapest, smallest, commonest after the baseline
    assert by_key[("h100-x8", "summarization", 32, 8192, 8)] == 1000  # the dearest, biggest, rarest, widest
    # deterministic: the same inputs in another order give the same matrix
    again = matrix.build_matrix(AWQ, [MI300X, L4, H100], [VLLM], list(reversed(WORKLOADS)))
    assert sorted(again.configs, key=repr) == sorted(built.configs, key=repr)


def test_workloads_rank_chatbot_first_then_lighter_loads():
    assert matrix.workload_order(WORKLOADS) == ["chatbot", "classification", "summarization"]


def test_no_hardware_gives_an_empty_matrix():
    built = matrix.build_matrix(AWQ, [], [VLLM], WORKLOADS)
    assert built.configs == () and built.excluded == {}


@pytest.mark.parametrize("dimension", ["batch_sizes", "sequence_lengths"])
def test_non_positive_dimensions_are_rejected(dimension):
    with pytest.raises(ValueError, match=dimension):
        matrix.build_matrix(AWQ, [H100], [VLLM], WORKLOADS, **{dimension: [0, 8]})


def test_the_bundled_catalogs_give_a_full_matrix_with_reasons():
    """The real catalogs: 8B AWQ fits everywhere at every degree; the emulator and LMDeploy on AMD are the main
    exclusions. Each use case crosses its own concurrency sweep and representative buckets."""
    hardware = [
        HardwareOption(h.name, h.specs.vendor, h.gpu_count, h.vram_per_gpu_gb, h.cost_per_hour_usd)
        for h in catalogs.load_hardware()
    ]
    frameworks = [
        FrameworkOption(
            f.name,
            frozenset(f.supports_quantizations),
            frozenset(f.supports_formats),
            frozenset(f.vendors),
            f.benchmark_by_default,
        )
        for f in catalogs.load_frameworks()
    ]
    workloads = [
        WorkloadOption(
            u.subcategory,
            u.characteristics.typical_input_tokens,
            u.characteristics.typical_output_tokens,
            tuple(u.characteristics.sequence_lengths),
            tuple(u.characteristics.concurrency),
        )
        for u in catalogs.load_use_cases()
    ]
    built = matrix.build_matrix(AWQ, hardware, frameworks, workloads)
    cells_per_degree = sum(len(w.sequence_lengths) * len(w.batch_sizes) for w in workloads)
    per_pair = {h.name: cells_per_degree * len(matrix.tensor_parallel_options(h.gpu_count)) for h in hardware}
    assert len(built.configs) + built.excluded_total == len(frameworks) * sum(per_pair.values())
    not_by_default = sum(not f.benchmark_by_default for f in frameworks)  # the emulator and TensorRT-LLM
    assert built.excluded[matrix.NOT_BENCHMARKED_BY_DEFAULT] == not_by_default * sum(per_pair.values())
    amd = [h.name for h in hardware if h.vendor == "amd"]
    assert amd and all(
        built.excluded_by_pair[(name, "lmdeploy")] == {matrix.VENDOR_UNSUPPORTED: per_pair[name]} for name in amd
    )
    assert matrix.DOES_NOT_FIT not in built.excluded
    assert len(built.configs) > 40_000


# --- serving options ---------------------------------------------------------------------------------------------

MOE_SHAPE = dict(
    parameters=30_532_122_624,
    num_layers=48,
    num_kv_heads=4,
    head_dim=128,
    hidden_size=2048,
    max_position_embeddings=40960,
    moe=MixtureOfExperts(experts=128, experts_per_token=8, expert_intermediate_size=768),
)
MOE_FP8 = VersionSpec(quantization="fp8", quantization_bits=8, format="safetensors", **MOE_SHAPE)
MOE_FP8_MTP = MOE_FP8.model_copy(update={"speculative_methods": {"mtp": None}})
DENSE_EAGLE = FP16.model_copy(update={"speculative_methods": {"eagle3": "hf://drafts/eagle3"}})
H100_FP8 = HardwareOption("h100-x8", "nvidia", 8, 80, 55.0, fp8=True)
A100 = HardwareOption("a100-x8", "nvidia", 8, 80, 30.0)  # no FP8 tensor cores
VLLM_OPTIONS = FrameworkOption(
    "vllm",
    ALL,
    FORMATS,
    frozenset({"nvidia", "amd"}),
    serving_options=ServingOptionFlags(
        expert_parallel="--enable-expert-parallel",
        data_parallel_attention=DataParallelAttentionFlags(attention_tensor_parallel="one"),
        speculative={"mtp": "--mtp", "eagle3": "--eagle3 {draft_model}"},
        kv_cache_fp8="--kv-cache-dtype fp8",
        prefix_caching=PrefixCachingFlags(enabled="", disabled="--no-enable-prefix-caching"),
    ),
)
RAG = WorkloadOption("rag", 2048, 256, sequence_lengths=(2048,), batch_sizes=(1, 16), shared_prefix_fraction=0.75)


def _options(built: matrix.ConfigMatrix, **cell) -> set[tuple]:
    return {
        (c.expert_parallel, c.data_parallel_attention, c.speculative_method, c.kv_cache_dtype, c.prefix_caching)
        for c in built.configs
        if all(getattr(c, name) == value for name, value in cell.items())
    }


def test_moe_replicas_of_several_gpus_get_three_shapes_dense_and_tp1_one():
    workloads = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(16,))]
    moe = matrix.build_matrix(MOE_FP8, [A100], [VLLM_OPTIONS], workloads)
    shapes = {
        (tp, ep, dp)
        for tp, ep, dp in ((c.tensor_parallel, c.expert_parallel, c.data_parallel_attention) for c in moe.configs)
    }
    assert {(ep, dp) for tp, ep, dp in shapes if tp == 4} == {(1, False), (4, False), (4, True)}
    assert {(ep, dp) for tp, ep, dp in shapes if tp == 1} == {(1, False)}
    dense = matrix.build_matrix(FP16, [A100], [VLLM_OPTIONS], workloads)
    assert {c.expert_parallel for c in dense.configs} == {1}
    # An engine without expert parallelism queues the plain shape only; nothing is counted as excluded for it.
    plain = matrix.build_matrix(MOE_FP8, [A100], [VLLM], workloads)
    assert {c.expert_parallel for c in plain.configs} == {1} and plain.excluded == moe.excluded


def test_an_option_is_queued_only_where_its_own_memory_fits():
    """DP attention copies the dense weights onto every GPU: on GPUs just big enough for the plain TP 2 replica the
    DP-attention shape is left out (not counted as excluded), and every queued config fits with its options."""
    chat = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(16,))]
    dropped_somewhere = False
    for vram in range(12, 40, 2):
        node = HardwareOption(f"x2-{vram}", "nvidia", 2, vram, 10.0, fp8=True)
        built = matrix.build_matrix(MOE_FP8, [node], [VLLM_OPTIONS], chat)
        for config in built.configs:
            options = serving_options(config)
            assert memory.fits(MOE_FP8, vram, config.tensor_parallel, 1024 + 256, options=options), config
        shapes = {(c.tensor_parallel, c.data_parallel_attention) for c in built.configs}
        dropped_somewhere |= (2, False) in shapes and (2, True) not in shapes
        assert built.excluded == matrix.build_matrix(MOE_FP8, [node], [VLLM], chat).excluded
    assert dropped_somewhere


def test_an_fp8_kv_cache_is_tried_for_low_precision_versions_on_fp8_gpus_only():
    chat = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(8192,), batch_sizes=(256,))]
    assert {c.kv_cache_dtype for c in matrix.build_matrix(MOE_FP8, [H100_FP8], [VLLM_OPTIONS], chat).configs} == {
        "auto",
        "fp8",
    }
    assert {c.kv_cache_dtype for c in matrix.build_matrix(MOE_FP8, [A100], [VLLM_OPTIONS], chat).configs} == {"auto"}
    assert {c.kv_cache_dtype for c in matrix.build_matrix(FP16, [H100_FP8], [VLLM_OPTIONS], chat).configs} == {"auto"}
    assert {c.kv_cache_dtype for c in matrix.build_matrix(MOE_FP8, [H100_FP8], [VLLM], chat).configs} == {"auto"}


def test_an_fp8_kv_cache_is_tried_only_where_the_batch_cache_weighs_next_to_the_weights():
    """At batch 1 the cache is a sliver of the bytes a step reads: no FP8 twin; a large, long batch gets one on the
    degrees where its cache outweighs a GPU's weights (or overflows the 16-bit cache)."""
    sweep = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024, 8192), batch_sizes=(1, 256))]
    built = matrix.build_matrix(MOE_FP8, [H100_FP8], [VLLM_OPTIONS], sweep)
    twins = {(c.batch_size, c.sequence_length, c.tensor_parallel) for c in built.configs if c.kv_cache_dtype == "fp8"}
    assert twins and all(batch == 256 for batch, _, _ in twins)
    for batch, length, tp in {(c.batch_size, c.sequence_length, c.tensor_parallel) for c in built.configs}:
        weighs = matrix.kv_cache_weighs(MOE_FP8, H100_FP8, tp, batch, length + 256)
        assert ((batch, length, tp) in twins) == weighs


def test_speculation_is_queued_where_the_model_ships_a_draft_the_engine_runs_at_low_concurrency_only():
    chat = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(1, 8, 16))]
    built = matrix.build_matrix(DENSE_EAGLE, [L4], [VLLM_OPTIONS], chat)
    assert {(c.batch_size, c.speculative_method) for c in built.configs} == {
        (1, "none"),
        (1, "eagle3"),
        (8, "none"),
        (8, "eagle3"),
        (16, "none"),
    }
    mtp = matrix.build_matrix(MOE_FP8_MTP, [A100], [VLLM_OPTIONS], chat)
    assert {c.speculative_method for c in mtp.configs if c.batch_size == 1} == {"none", "mtp"}
    # Eight-way shapes × speculation: EP {1, 8} and DP attention cross with it (3 shapes × 2 methods at TP 8).
    assert len(_options(mtp, tensor_parallel=8, batch_size=1)) == 6
    assert {c.speculative_method for c in matrix.build_matrix(FP16, [L4], [VLLM_OPTIONS], chat).configs} == {"none"}


def test_prefix_caching_follows_the_workload_not_crossed():
    chat = WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(1,))
    built = matrix.build_matrix(FP16, [L4], [VLLM_OPTIONS], [chat, RAG])
    assert {(c.workload_type, c.prefix_caching) for c in built.configs} == {("chatbot", False), ("rag", True)}
    assert len(built.configs) == 1 + 2  # one config per cell: prefix caching multiplies nothing
    no_flag = FrameworkOption("no-flag", ALL, FORMATS, frozenset({"nvidia"}))
    assert {c.prefix_caching for c in matrix.build_matrix(FP16, [L4], [no_flag], [RAG]).configs} == {False}
    always_on = FrameworkOption(
        "always-on",
        ALL,
        FORMATS,
        frozenset({"nvidia"}),
        serving_options=ServingOptionFlags(prefix_caching=PrefixCachingFlags(enabled="")),
    )
    assert {c.prefix_caching for c in matrix.build_matrix(FP16, [L4], [always_on], [chat]).configs} == {True}


def test_the_bundled_catalogs_queue_options_only_where_the_engine_has_their_flags():
    """DeepSeek-R1 FP8 on an 8×H200 node: vLLM and SGLang get EP and DP attention, MTP and an FP8 KV cache; TGI and
    LMDeploy the plain shape; every option appears only with an engine whose catalog entry has its flag."""
    [manifest] = manifests.load_manifests([manifests.EXAMPLE_MANIFESTS_DIR / "deepseek-r1.yaml"])
    [version] = [manifests.model_facts(manifest, v) for v in manifest.versions if v.version == "fp8"]
    hardware = [
        HardwareOption(
            h.name,
            h.specs.vendor,
            h.gpu_count,
            h.vram_per_gpu_gb,
            h.cost_per_hour_usd,
            fp4=h.specs.fp4_tflops is not None,
            fp8=h.specs.fp8_tflops is not None,
        )
        for h in catalogs.load_hardware()
        if h.gpu_type.startswith("H200") and h.gpu_count == 8
    ]
    flags = {f.name: f.serving_options for f in catalogs.load_frameworks()}
    frameworks = [
        FrameworkOption(
            f.name,
            frozenset(f.supports_quantizations),
            frozenset(f.supports_formats),
            frozenset(f.vendors),
            f.benchmark_by_default,
            f.serving_options,
        )
        for f in catalogs.load_frameworks()
    ]
    chat = [WorkloadOption("chatbot", 512, 256, sequence_lengths=(8192,), batch_sizes=(1, 256))]
    built = matrix.build_matrix(version, hardware, frameworks, chat)
    assert built.configs
    for config in built.configs:
        support = flags[config.framework]
        assert config.expert_parallel == 1 or support.expert_parallel is not None
        assert not config.data_parallel_attention or support.data_parallel_attention is not None
        assert config.speculative_method == "none" or config.speculative_method in support.speculative
        assert config.kv_cache_dtype == "auto" or support.kv_cache_fp8 is not None
    by_framework = {name: _options(built, framework=name, tensor_parallel=8, batch_size=1) for name in flags}
    large = {name: _options(built, framework=name, tensor_parallel=8, batch_size=256) for name in flags}
    for engine in ("vllm", "sglang"):  # MTP at batch 1; an FP8 cache where 256 long sequences overflow a 16-bit one
        assert (8, True, "mtp", "auto", False) in by_framework[engine]
        assert (8, True, "none", "fp8", False) in large[engine]
    assert {options[:2] for options in by_framework["tgi"]} == {(1, False)}
