"""Mixture-of-experts models and FP4: manifest facts, memory, step costs and the matrix's hardware gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from benchmark_platform import catalogs, domain, manifests, matrix, memory
from benchmark_platform.cli import main
from benchmark_platform.runners.simulated import roofline
from benchmark_platform.runners.simulated.serving_sim import simulate_serving

MODELS = manifests.EXAMPLE_MANIFESTS_DIR


def _facts(key: str) -> domain.ModelFacts:
    name, _, version = key.partition("@")
    manifest = manifests.load_manifest(MODELS / f"{name}.yaml")
    return manifests.model_facts(manifest, next(v for v in manifest.versions if v.version == version))


def _hardware(name: str) -> domain.HardwareFacts:
    return domain.hardware_facts_from_catalog(next(h for h in catalogs.load_hardware() if h.name == name))


def _framework(name: str = "vllm") -> domain.FrameworkFacts:
    return domain.framework_facts_from_catalog(next(f for f in catalogs.load_frameworks() if f.name == name))


# --- manifests ---------------------------------------------------------------------------------------------------


def _qwen_moe() -> dict:
    return yaml.safe_load((MODELS / "qwen3-30b-a3b.yaml").read_text())


def _with_moe(**changes) -> dict:
    data = _qwen_moe()
    facts = data["architecture_facts"]
    return {**data, "architecture_facts": {**facts, "moe": {**facts["moe"], **changes}}}


def _bad_moe_manifests() -> list:
    data = _qwen_moe()
    fp4_version = {**data["versions"][0], "quantization": "fp4", "quantization_bits": 4}
    return [
        pytest.param(_with_moe(experts_per_token=129), "architecture_facts.moe.experts_per_token", "exceeds", id="k>E"),
        pytest.param(_with_moe(experts=1), "architecture_facts.moe.experts", "greater than 1", id="one-expert"),
        pytest.param(_with_moe(dense_layers=48), "architecture_facts.moe", "leaves none of the 48", id="all-dense"),
        pytest.param(_with_moe(shared_experts=-1), "architecture_facts.moe.shared_experts", "greater than or", id="sh"),
        pytest.param(_with_moe(num_experts=128), "architecture_facts.moe.num_experts", "Extra inputs", id="unknown"),
        pytest.param(
            {**data, "parameters": 20_000_000_000}, "architecture_facts", "its experts alone hold", id="too-few-params"
        ),
        pytest.param(
            {
                **data,
                "architecture_facts": {**data["architecture_facts"], "sliding_window": {"window": 128, "layers": 49}},
            },
            "architecture_facts.sliding_window",
            "exceeds num_layers (48)",
            id="window-layers",
        ),
        pytest.param({**data, "versions": [fp4_version]}, "versions[0].quantization", "fp4_scheme", id="fp4-no-scheme"),
        pytest.param(
            {**data, "versions": [{**data["versions"][0], "fp4_scheme": "mxfp4"}]},
            "versions[0].quantization",
            "is for fp4 versions, not bf16",
            id="scheme-on-bf16",
        ),
        pytest.param(
            {**data, "versions": [{**fp4_version, "fp4_scheme": "nvfp3"}]},
            "versions[0].fp4_scheme",
            "Input should be",
            id="unknown-scheme",
        ),
    ]


def _deepseek_with_rope(width: int) -> dict:
    data = yaml.safe_load((MODELS / "deepseek-r1.yaml").read_text())
    facts = data["architecture_facts"]
    latent = {**facts["latent_attention"], "qk_rope_head_dim": width}
    return {**data, "architecture_facts": {**facts, "latent_attention": latent}}


BAD_LATENT_ATTENTION = pytest.param(
    _deepseek_with_rope(192),
    "architecture_facts.latent_attention",
    "head_dim (192) must exceed latent_attention.qk_rope_head_dim (192)",
    id="rope-as-wide-as-the-key",
)


@pytest.mark.parametrize(("data", "field", "message"), [*_bad_moe_manifests(), BAD_LATENT_ATTENTION])
def test_bad_moe_facts_name_the_field_and_its_line(tmp_path: Path, data: dict, field: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_manifest(path)
    assert (caught.value.field, caught.value.path) == (field, path)
    assert message in caught.value.message
    assert caught.value.line is not None and caught.value.line > 1


def test_dense_weight_bits_are_for_moe_models_and_register_model_exits_2(tmp_path: Path) -> None:
    data = yaml.safe_load((MODELS / "llama-3.1-8b.yaml").read_text())
    data["versions"][0]["dense_weight_bits"] = 16
    path = tmp_path / "dense.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = CliRunner().invoke(main, ["register-model", str(path)])
    assert result.exit_code == 2
    assert f"{path}: versions: Value error, version 'fp16': dense_weight_bits is for MoE models" in result.output


def test_bundled_moe_manifests_give_the_published_active_parameters() -> None:
    """Active parameters follow from config.json facts and the total, within 4 % of the model cards' figures (OpenAI's
    leave out the input embeddings, which are stored with the weights and counted here)."""
    for key, card_active, uncounted in (
        ("qwen3-30b-a3b@bf16", 3.3e9, 0),
        ("deepseek-r1@fp8", 37e9, 0),
        ("gpt-oss-120b@mxfp4", 5.13e9, 201088 * 2880),
        ("gpt-oss-20b@mxfp4", 3.61e9, 201088 * 2880),
    ):
        active = _facts(key).active_parameters()
        assert active - uncounted == pytest.approx(card_active, rel=0.04), key


# --- memory -------------------------------------------------------------------------------------------------------


def test_every_expert_is_resident_split_by_tensor_or_expert_parallelism() -> None:
    qwen = _facts("qwen3-30b-a3b@bf16")
    experts = memory.expert_weight_bytes(qwen)
    dense = memory.dense_weight_bytes(qwen)
    assert experts == 48 * 128 * 3 * 2048 * 768 * 2
    assert dense + experts == qwen.parameters * 2
    assert memory.weight_bytes_per_gpu(qwen, 1) == dense + experts  # all experts, though a token reads 8 of 128
    assert memory.weight_bytes_per_gpu(qwen, 2) == (dense + experts) / 2
    assert memory.weight_bytes_per_gpu(qwen, 1, expert_parallel=4) == dense + experts / 4


def test_gpt_oss_keeps_its_dense_weights_at_16_bits_beside_mxfp4_experts() -> None:
    gpt = _facts("gpt-oss-120b@mxfp4")
    assert memory.dense_weight_bytes(gpt) == (gpt.parameters - gpt.routed_expert_parameters()) * 2
    assert memory.expert_weight_bytes(gpt) == gpt.routed_expert_parameters() * 4.25 / 8  # an 8-bit scale per 32
    assert 64e9 < memory.weight_bytes(gpt) < 66e9  # "runs on a single 80GB GPU" (model card); vLLM: 64.4 GiB
    assert memory.fits(gpt, 80, 1, 4096) and not memory.fits(gpt, 48, 1, 4096)


def test_kv_cache_per_layer_type_mla_latent_and_sliding_window() -> None:
    deepseek = _facts("deepseek-r1@fp8")
    latent = 61 * (512 + 64) * 2  # the engines' default ("auto") KV cache is 16-bit, FP8 weights or not
    assert memory.kv_bytes_per_token(deepseek, 1) == memory.kv_bytes_per_token(deepseek, 8) == latent
    assert memory.kv_bytes_per_token(deepseek, 8, kv_cache_dtype="fp8") == latent / 2
    gpt = _facts("gpt-oss-120b@mxfp4")
    per_layer = 2 * 8 * 64 * 2
    assert memory.kv_bytes_per_token(gpt, 1, context_tokens=128) == 36 * per_layer
    assert memory.kv_bytes_per_token(gpt, 1, context_tokens=1280) == pytest.approx((18 + 18 * 0.1) * per_layer)
    assert memory.kv_bytes_per_token(gpt, 1) == 18 * per_layer  # long sequences: the windows add nothing per token
    full = gpt.model_copy(update={"sliding_window": None})
    sequence = memory.memory_per_gpu_gb(gpt, 1, 64, 8192) - memory.memory_per_gpu_gb(gpt, 1, 0, 8192)
    assert sequence * 1e9 == pytest.approx(64 * (18 * 8192 + 18 * 128) * per_layer)
    assert memory.kv_capacity_tokens(gpt, 80, 1, 8192) > 1.9 * memory.kv_capacity_tokens(full, 80, 1, 8192)


def _matrix_hardware(*names: str) -> list[matrix.HardwareOption]:
    return [
        matrix.HardwareOption(
            h.name, h.specs.vendor, h.gpu_count, h.vram_per_gpu_gb, h.cost_per_hour_usd, h.specs.fp4_tflops is not None
        )
        for h in catalogs.load_hardware()
        if h.name in names
    ]


VLLM = matrix.FrameworkOption(
    "vllm", frozenset({"bf16", "fp8", "fp4"}), frozenset({"safetensors"}), frozenset({"nvidia", "amd"})
)
CHAT = matrix.WorkloadOption("chatbot", 512, 256, sequence_lengths=(1024,), batch_sizes=(1, 8))


def test_deepseek_r1_fp8_does_not_fit_eight_h100s_and_fits_eight_h200s() -> None:
    deepseek = _facts("deepseek-r1@fp8")
    built = matrix.build_matrix(deepseek, _matrix_hardware("aws-h100-sxm-x8", "aws-h200-x8"), [VLLM], [CHAT])
    assert {(c.hardware, c.tensor_parallel) for c in built.configs} == {("aws-h200-x8", 8)}
    assert built.excluded_by_pair[("aws-h100-sxm-x8", "vllm")] == {matrix.DOES_NOT_FIT: 4 * 2}  # TP 1, 2, 4, 8
    assert built.excluded_by_pair[("aws-h200-x8", "vllm")] == {matrix.DOES_NOT_FIT: 3 * 2}  # TP 1, 2, 4


def test_fp4_is_refused_on_gpus_without_fp4_tensor_cores_unless_mxfp4_can_run_dequantized() -> None:
    nvfp4 = _facts("deepseek-r1@fp8").model_copy(
        update={"quantization": "fp4", "quantization_bits": 4, "fp4_scheme": "nvfp4"}
    )
    hardware = _matrix_hardware("aws-h200-x8", "aws-b200-x8")
    built = matrix.build_matrix(nvfp4, hardware, [VLLM], [CHAT])
    assert built.excluded_by_pair[("aws-h200-x8", "vllm")] == {matrix.FP4_UNSUPPORTED: 4 * 2}
    assert {c.hardware for c in built.configs} == {"aws-b200-x8"}
    assert built.excluded[matrix.FP4_UNSUPPORTED] == 8

    gpt = _facts("gpt-oss-120b@mxfp4")
    assert matrix.FP4_UNSUPPORTED not in matrix.build_matrix(gpt, hardware, [VLLM], [CHAT]).excluded
    h100, b200 = _hardware("gcp-h100-sxm-x1"), _hardware("aws-b200-x8")
    assert roofline.compute_peak_flops(h100, "fp4") == h100.fp16_tflops * 1e12  # dequantized, multiplied at 16 bits
    assert roofline.compute_peak_flops(b200, "fp4") == b200.fp4_tflops * 1e12 == 2 * b200.fp8_tflops * 1e12


# --- step costs ---------------------------------------------------------------------------------------------------


def test_expected_distinct_experts_matches_sampled_routing() -> None:
    """E·(1 − (1 − k/E)^B) against routing drawn at random: top-k distinct experts per token, uniformly."""
    costs = roofline.step_costs(
        _facts("qwen3-30b-a3b@bf16"), _hardware("gcp-h100-sxm-x1"), _framework(), tensor_parallel=1
    )
    rng = np.random.default_rng(0)
    for batch in (1, 4, 16, 64):
        touched = [
            len({int(e) for _ in range(batch) for e in rng.choice(128, size=8, replace=False)}) for _ in range(400)
        ]
        expected = (costs.weight_read_seconds(batch) - costs.weights_s) / costs.expert_weights_s * 128
        assert expected == pytest.approx(np.mean(touched), rel=0.03), batch


def test_a_moe_decode_step_costs_its_active_parameters_at_batch_1_and_all_experts_as_the_batch_grows() -> None:
    qwen = _facts("qwen3-30b-a3b@bf16")
    h100 = _hardware("gcp-h100-sxm-x1")
    costs = roofline.step_costs(qwen, h100, _framework(), tensor_parallel=1)
    bandwidth = memory.weight_bytes(qwen) / (costs.weights_s + costs.expert_weights_s)
    read_bytes = [float(costs.weight_read_seconds(batch)) * bandwidth for batch in (1, 8, 64, 512)]
    assert read_bytes[0] == pytest.approx(qwen.active_parameters() * 2)
    assert read_bytes[0] < 0.12 * memory.weight_bytes(qwen)
    assert read_bytes == sorted(read_bytes)
    assert read_bytes[-1] == pytest.approx(memory.weight_bytes(qwen), rel=1e-6)
    assert costs.token_s * 1 < costs.weights_s + costs.expert_weights_s  # batch 1 is memory-bound

    dense = qwen.model_copy(update={"moe": None})  # the same 30.5B as a dense model: what it was simulated as before
    run = {"tensor_parallel": 1, "concurrency": 1, "input_tokens": 1024, "output_tokens": 256, "predictor": "roofline"}
    moe_tpot = float(np.median(simulate_serving(qwen, h100, _framework(), **run).tpot_s))
    dense_tpot = float(np.median(simulate_serving(dense, h100, _framework(), **run).tpot_s))
    assert moe_tpot < 0.3 * dense_tpot
    assert 0.003 < moe_tpot < 0.008  # aiconfigurator's measured kernels: 4.7 ms (issue 21)


def test_simulate_refuses_nvfp4_on_a_gpu_without_fp4_tensor_cores_and_serves_it_on_b200(tmp_path: Path) -> None:
    data = yaml.safe_load((MODELS / "deepseek-r1.yaml").read_text())
    data["name"] = "deepseek-r1-nvfp4"
    data["versions"] = [{**data["versions"][0], "version": "nvfp4", "quantization": "fp4", "quantization_bits": 4}]
    data["versions"][0] |= {"fp4_scheme": "nvfp4", "dense_weight_bits": 8}
    path = tmp_path / "nvfp4.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load = ["--framework", "vllm", "--concurrency", "4", "--input-tokens", "1024", "--output-tokens", "64", "--json"]
    common = ["simulate", "--manifest", str(path), "--model-version", "deepseek-r1-nvfp4@nvfp4", *load]
    refused = CliRunner().invoke(main, [*common, "--hardware", "aws-h200-x8"])
    assert refused.exit_code == 2
    assert "--hardware: deepseek-r1-nvfp4@nvfp4 is NVFP4 and H200 has no FP4 tensor cores" in refused.output
    served = CliRunner().invoke(main, [*common, "--hardware", "aws-b200-x8"])
    assert served.exit_code == 0, served.output


# --- serving options: expert parallelism, data-parallel attention --------------------------------------------------


def test_expert_parallelism_holds_whole_experts_per_gpu_and_moves_tokens_only_under_dp_attention() -> None:
    """EP 8 on eight H200s: each GPU holds 1/8 of the experts (whole ones) and a TP slice of the dense weights. With
    tensor-parallel attention every GPU already holds every token, so the MoE layer's output is all-reduced as a
    TP-sliced FFN's is (the engines take their all-to-all kernels only with DP attention): the same collectives as
    plain TP. Under DP attention every MoE layer pays two all-to-alls (latency per transfer plus bytes per token) and
    no all-reduce is left."""
    deepseek = _facts("deepseek-r1@fp8")
    h200 = _hardware("gcp-h200-x8")
    ep = domain.ServingOptions(expert_parallel=8)
    dense, experts = memory.dense_weight_bytes(deepseek), memory.expert_weight_bytes(deepseek)
    assert memory.options_weight_bytes_per_gpu(deepseek, 8, ep) == pytest.approx(dense / 8 + experts / 8)
    assert memory.options_weight_bytes_per_gpu(deepseek, 8, ep) < memory.options_weight_bytes_per_gpu(deepseek, 4, ep)
    # from one GPU's view: EP over 8 ranks divides the experts by 8, whatever the dense slicing
    assert memory.weight_bytes_per_gpu(deepseek, 1, expert_parallel=8) == pytest.approx(dense + experts / 8)

    plain = roofline.step_costs(deepseek, h200, _framework(), tensor_parallel=8)
    with_ep = roofline.step_costs(deepseek, h200, _framework(), tensor_parallel=8, options=ep)
    moe_layers = deepseek.num_layers - deepseek.moe.dense_layers
    assert roofline.collectives_per_step(deepseek, ep) == (2 * deepseek.num_layers, 0)
    assert roofline.collectives_per_step(deepseek, domain.ServingOptions()) == (2 * deepseek.num_layers, 0)
    assert (with_ep.allreduce_s, with_ep.allreduce_token_s) == (plain.allreduce_s, plain.allreduce_token_s)
    dpa = domain.ServingOptions(expert_parallel=8, data_parallel_attention=True)
    assert roofline.collectives_per_step(deepseek, dpa) == (0, 2 * moe_layers)
    # the dispatch bytes: a token's hidden state to each remote rank among those its top-8 experts sit on
    assert 0 < roofline.remote_ranks_per_token(deepseek, 8) < 7
    with_dpa = roofline.step_costs(deepseek, h200, _framework(), tensor_parallel=8, options=dpa)
    assert with_dpa.allreduce_token_s != plain.allreduce_token_s
    assert float(with_dpa.allreduce_seconds(4096)) > float(with_dpa.allreduce_seconds(1)) > 0
    # the experts a step touches are counted per rank: the same share, of the rank's own experts
    assert with_ep.expert_weights_s == pytest.approx(plain.expert_weights_s)
    # EP on a dense model, or EP over other than the replica's GPUs, is refused
    with pytest.raises(ValueError, match="mixture-of-experts"):
        simulate_serving(
            _facts("llama-3.1-8b@fp16"), _hardware("gcp-h100-sxm-x2"), _framework(), tensor_parallel=2,
            input_tokens=128, output_tokens=16, concurrency=1, options=domain.ServingOptions(expert_parallel=2),
        )  # fmt: skip
    with pytest.raises(ValueError, match="must be 1 or the replica.s"):
        simulate_serving(
            deepseek, h200, _framework(), tensor_parallel=8, input_tokens=128, output_tokens=16, concurrency=1,
            options=domain.ServingOptions(expert_parallel=4),
        )  # fmt: skip


def test_data_parallel_attention_splits_the_latent_cache_over_the_ranks_and_replicates_the_dense_weights() -> None:
    """DeepSeek's MLA latent is the same on every TP rank: under TP 8 each GPU caches (and reads) every sequence's
    latent; with DP attention each caches 1/8 of the sequences, so the replica holds about 8x the tokens (less the
    whole dense weights each GPU now keeps) and a decode step reads 1/8 of the cache per GPU."""
    deepseek = _facts("deepseek-r1@fp8")
    h200 = _hardware("gcp-h200-x8")
    ep = domain.ServingOptions(expert_parallel=8)
    dpa = domain.ServingOptions(expert_parallel=8, data_parallel_attention=True)
    dense = memory.dense_weight_bytes(deepseek)
    assert memory.options_weight_bytes_per_gpu(deepseek, 8, dpa) - memory.options_weight_bytes_per_gpu(
        deepseek, 8, ep
    ) == pytest.approx(dense * 7 / 8)
    tp_tokens = memory.kv_capacity_tokens(deepseek, h200.vram_per_gpu_gb, 8, 4096, ep)
    dpa_tokens = memory.kv_capacity_tokens(deepseek, h200.vram_per_gpu_gb, 8, 4096, dpa)
    assert 4 * tp_tokens < dpa_tokens < 8 * tp_tokens
    tp_costs = roofline.step_costs(deepseek, h200, _framework(), tensor_parallel=8, options=ep)
    dpa_costs = roofline.step_costs(deepseek, h200, _framework(), tensor_parallel=8, options=dpa)
    assert dpa_costs.kv_token_s == pytest.approx(tp_costs.kv_token_s / 8)
    assert dpa_costs.weights_s == pytest.approx(tp_costs.weights_s * 8)
    assert roofline.collectives_per_step(deepseek, dpa)[0] == 0  # no attention all-reduce left
    # at long contexts and many sequences the cache reads dominate: DP attention decodes faster there
    run = {"tensor_parallel": 8, "input_tokens": 8192, "output_tokens": 256, "concurrency": 128}
    tp_run = simulate_serving(deepseek, h200, _framework(), options=ep, predictor="roofline", **run)
    dpa_run = simulate_serving(deepseek, h200, _framework(), options=dpa, predictor="roofline", **run)
    assert dpa_run.kv_capacity_tokens > 4 * tp_run.kv_capacity_tokens
    assert dpa_run.output_tokens_per_s > tp_run.output_tokens_per_s
    assert dpa_run.assumptions["serving_options"]["data_parallel_attention"] is True


def test_the_kernels_backend_leaves_expert_parallelism_to_the_roofline() -> None:
    from benchmark_platform.runners.simulated import kernel_costs
    from benchmark_platform.runners.simulated.step_costs import KernelsUnavailable

    llama = _facts("llama-3.1-8b@fp16")
    with pytest.raises(KernelsUnavailable, match="expert parallelism"):
        kernel_costs.kernel_step_costs(
            llama, _hardware("gcp-h100-sxm-x2"), _framework(), tensor_parallel=2,
            options=domain.ServingOptions(expert_parallel=2),
        )  # fmt: skip
    fp8 = llama.model_copy(update={"quantization": "fp8", "quantization_bits": 8})
    assert kernel_costs.layer_shape(fp8, 1).kv_quant == "bfloat16"  # FP8 weights, 16-bit cache by default
    assert kernel_costs.layer_shape(fp8, 1, "fp8").kv_quant == "fp8"
