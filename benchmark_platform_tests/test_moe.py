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


@pytest.mark.parametrize(("data", "field", "message"), _bad_moe_manifests())
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
    latent = 61 * (512 + 64) * 1  # FP8 KV cache
    assert memory.kv_bytes_per_token(deepseek, 1) == memory.kv_bytes_per_token(deepseek, 8) == latent
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


def test_the_kernels_backend_leaves_moe_to_the_roofline_and_says_why() -> None:
    from benchmark_platform.runners.simulated.step_costs import step_cost_model

    costs = step_cost_model(
        _facts("qwen3-30b-a3b@bf16"), _hardware("gcp-h100-sxm-x1"), _framework(), tensor_parallel=1, predictor="kernels"
    )
    assert costs.predictor.backend == "roofline"
    assert "mixture-of-experts" in costs.predictor.fallback


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
