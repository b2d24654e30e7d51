"""The measured-kernel step costs (runners/simulated/kernel_costs.py): against the roofline and aiconfigurator's own
estimator, their growth with batch and context, how a step's mix is recovered, and every way they fall back to the
roofline.

Facts come from the bundled catalogs and example manifests, as the platform runs them.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("aiconfigurator_core", reason="the measured kernels need the 'kernels' extra")

from benchmark_platform import catalogs, manifests  # noqa: E402
from benchmark_platform.domain import framework_facts_from_catalog, hardware_facts_from_catalog  # noqa: E402
from benchmark_platform.runners.simulated import calibration, kernel_costs, roofline, step_costs  # noqa: E402
from benchmark_platform.runners.simulated.serving_sim import simulate_serving  # noqa: E402


def hardware(gpu_type: str, gpu_count: int = 1):
    for spec in catalogs.load_hardware():
        if spec.gpu_type == gpu_type and spec.gpu_count == gpu_count:
            return hardware_facts_from_catalog(spec)
    raise LookupError(f"no {gpu_type} x{gpu_count} node in the catalog")


def framework(name: str):
    return next(framework_facts_from_catalog(spec) for spec in catalogs.load_frameworks() if spec.name == name)


def model(name: str, version: str):
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{name}.yaml")
    return manifests.model_facts(manifest, next(spec for spec in manifest.versions if spec.version == version))


LLAMA_8B = model("llama-3.1-8b", "fp16")
H100, VLLM = hardware("H100-SXM"), framework("vllm")


@pytest.fixture(scope="module")
def kernels_8b_h100():
    return kernel_costs.kernel_step_costs(LLAMA_8B, H100, VLLM, tensor_parallel=1)


def test_decode_step_at_batch_one_agrees_with_the_roofline_and_aiconfigurators_own_estimator(kernels_8b_h100):
    from aiconfigurator_core.sdk.engine import EngineHandle

    context = 1024
    kernels = float(kernels_8b_h100.gpu_seconds(1, context, context))
    rooflined = float(roofline.step_costs(LLAMA_8B, H100, VLLM, tensor_parallel=1).gpu_seconds(1, context, context))
    assert abs(kernels / rooflined - 1) < 0.30, (kernels, rooflined)
    # its whole-model estimator (its own Llama 3.1 8B config, its own op list) on the same tables
    estimator = EngineHandle.compile("meta-llama/Meta-Llama-3.1-8B", "h100_sxm", "vllm", backend_version="current")
    theirs = [estimator.decode_step_latency(1, isl, 2) / 1e3 for isl in (context // 2, context, 2 * context)]
    assert min(theirs) * 0.95 <= kernels <= max(theirs) * 1.05, (kernels, theirs)


def test_step_cost_rises_with_batch_and_context(kernels_8b_h100):
    batches = np.array([1.0, 8, 64, 256, 1024])
    by_batch = kernels_8b_h100.gpu_seconds(batches, batches * 1024, batches * 1024)
    assert np.all(np.diff(by_batch) > 0), by_batch
    contexts = 64 * np.array([256.0, 1024, 4096, 16384])
    by_context = kernels_8b_h100.gpu_seconds(64, contexts, contexts)
    assert np.all(np.diff(by_context) > 0), by_context
    # a run of decode steps costs each step as the same step asked alone
    assert by_context[1] == pytest.approx(float(kernels_8b_h100.gpu_seconds(64, contexts[1], contexts[1])))


def test_a_steps_mix_is_recovered_from_its_totals():
    decode_only = kernel_costs.step_mix(np.array([64.0]), np.array([64_000.0]), np.array([64_000.0]))
    assert [float(x[0]) for x in decode_only] == [0, 64, 64_000]
    prompt = 1024  # one whole prompt
    alone = kernel_costs.step_mix(np.array([prompt]), np.array([prompt * (prompt + 1) / 2]), np.array([prompt]))
    assert [float(x[0]) for x in alone] == [prompt, 0, 0]
    # 64 decodes at 1,500 tokens of context ride along with that prompt
    mixed = kernel_costs.step_mix(
        np.array([64.0 + prompt]), np.array([96_000 + prompt * (prompt + 1) / 2]), np.array([96_000.0 + prompt])
    )
    assert [float(x[0]) for x in mixed] == [prompt, 64, 96_000]


def test_prefill_costs_grow_faster_than_the_prompt(kernels_8b_h100):
    lengths = np.array([1024.0, 4096, 16384])
    seconds = kernels_8b_h100.gpu_seconds(lengths, lengths * (lengths + 1) / 2, lengths)
    per_token = seconds / lengths
    assert np.all(np.diff(per_token) > 0), per_token  # attention's quadratic share


def test_step_cost_model_answers_with_the_kernels_on_h100_vllm():
    costs = step_costs.step_cost_model(LLAMA_8B, H100, VLLM, tensor_parallel=1, predictor="kernels")
    assert isinstance(costs, kernel_costs.KernelStepCosts)
    predictor = costs.predictor
    assert (predictor.backend, predictor.requested, predictor.fallback) == ("kernels", "kernels", None)
    assert predictor.data_version.startswith("h100_sxm/vllm/")
    assert predictor.in_measured_range is True
    assert predictor.version == kernel_costs.metadata.version("aiconfigurator-core")


@pytest.mark.parametrize(
    ("gpu_type", "engine_name", "backend"),
    [
        ("H100-SXM", "sglang", "kernels"),
        ("A100-80GB", "sglang", "kernels"),
        ("A100-80GB", "tensorrt-llm", "kernels"),
        ("H100-SXM", "vllm", "roofline"),
        ("H100-SXM", "tensorrt-llm", "roofline"),
        ("A100-80GB", "vllm", "roofline"),
        ("H200", "sglang", "roofline"),
    ],
)
def test_auto_answers_a_dense_model_with_the_backend_its_validation_rows_chose(gpu_type, engine_name, backend):
    """The dense GPU x engine pairs whose validation rows the measured kernels predicted better (the doc's "Which
    predictor answers") get them under auto, without a fallback; the others keep the roofline."""
    costs = step_costs.step_cost_model(LLAMA_8B, hardware(gpu_type, 8), framework(engine_name), tensor_parallel=1)
    assert (costs.predictor.backend, costs.predictor.requested, costs.predictor.fallback) == (backend, "auto", None)


def test_where_auto_would_take_the_kernels_but_they_cannot_answer_the_roofline_says_why():
    """FP8 weights on an A100 (no FP8 tensor cores in its measured system): auto wanted the kernels for SGLang there,
    gets the roofline, and the package's reason is cut at a word, never mid-word."""
    costs = step_costs.step_cost_model(
        model("llama-3.1-8b", "fp8"), hardware("A100-80GB", 8), framework("sglang"), tensor_parallel=1
    )
    assert costs.predictor.backend == "roofline" and costs.predictor.requested == "auto"
    fallback = costs.predictor.fallback
    assert "a100_sxm/sglang" in fallback and "fp8" in fallback and fallback.endswith(" ...; roofline used"), fallback
    assert len(fallback) < kernel_costs.REASON_LENGTH + 120


def test_tensor_parallel_splits_the_weights_but_not_the_all_reduces():
    llama_70b, node = model("llama-3.1-70b", "fp16"), hardware("H100-SXM", 8)
    tp4, tp8 = (
        float(kernel_costs.kernel_step_costs(llama_70b, node, VLLM, tensor_parallel=tp).gpu_seconds(1, 1024, 1024))
        for tp in (4, 8)
    )
    assert tp4 / 2 < tp8 < tp4  # each GPU reads half the weights, but pays as many all-reduces and launches


def test_a_shape_outside_its_tables_falls_back_naming_the_shape():
    odd_heads = LLAMA_8B.model_copy(update={"head_dim": 80})  # no attention kernels measured for head size 80
    costs = step_costs.step_cost_model(odd_heads, H100, VLLM, tensor_parallel=1, predictor="kernels")
    assert costs.predictor.backend == "roofline"
    assert "do not cover this model" in costs.predictor.fallback and "head_size: 80" in costs.predictor.fallback


@pytest.mark.parametrize(
    ("gpu_type", "gpu_count", "model_version", "engine_name", "reason"),
    [
        ("MI300X", 8, "fp16", "vllm", "no measurements of amd GPUs (MI300X)"),
        ("L4", 1, "fp16", "vllm", "only speed-of-light figures for the L4"),
        ("A100-80GB-PCIe", 1, "fp16", "vllm", "only speed-of-light figures for the PCIe A100"),
        ("H100-SXM", 1, "int4-awq", "vllm", "GEMM perf data missing for quant 'int4_wo'"),
        ("H100-SXM", 1, "fp16", "tgi", "no measurements of tgi"),
    ],
)
def test_where_it_has_no_measurements_the_roofline_answers_and_says_why(
    gpu_type, gpu_count, model_version, engine_name, reason
):
    costs = step_costs.step_cost_model(
        model("llama-3.1-8b", model_version),
        hardware(gpu_type, gpu_count),
        framework(engine_name),
        tensor_parallel=1,
        predictor="kernels",
    )
    assert isinstance(costs, roofline.StepCosts)
    assert costs.predictor.backend == "roofline" and costs.predictor.requested == "kernels"
    assert reason in costs.predictor.fallback and costs.predictor.fallback.endswith("roofline used")
    assert "/" not in costs.predictor.fallback.split(":")[-1]  # no file paths of the installation


def test_without_the_package_the_roofline_answers_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)  # `import aiconfigurator_core` now fails
    run = simulate_serving(
        LLAMA_8B, H100, VLLM, tensor_parallel=1, concurrency=4, input_tokens=256, output_tokens=64, predictor="kernels"
    )
    predictor = run.predictor
    assert predictor["backend"] == "roofline" and predictor["requested"] == "kernels"
    assert (
        predictor["fallback"].startswith("measured kernels unavailable")
        and "aiconfigurator_core" in predictor["fallback"]
    )


def test_a_simulation_on_the_kernels_names_them_and_differs_from_the_roofline():
    load = dict(tensor_parallel=1, concurrency=16, input_tokens=512, output_tokens=128)
    kernels = simulate_serving(LLAMA_8B, H100, VLLM, predictor="kernels", **load)
    rooflined = simulate_serving(LLAMA_8B, H100, VLLM, predictor="roofline", **load)
    assert kernels.predictor["backend"] == "kernels"
    assert kernels.output_tokens_per_s != rooflined.output_tokens_per_s
    # each backend's own fitted host time per step: the measured kernels' timings already hold their launches
    assert kernels.assumptions["step_overhead_ms"] == pytest.approx(calibration.STEP_OVERHEAD_KERNELS.value * 1e3)
    assert rooflined.assumptions["step_overhead_ms"] == pytest.approx(calibration.STEP_OVERHEAD.value * 1e3)
    # same scheduler, different step costs: the two agree on the order of magnitude
    assert 0.5 < kernels.output_tokens_per_s / rooflined.output_tokens_per_s < 2


def test_an_moe_model_pays_the_measured_moe_op_per_layer_and_the_roofline_for_the_rest():
    """DeepSeek-R1 FP8 at TP 8 on H200 under vLLM: its routed experts cost what aiconfigurator's MoE op measured for
    that expert shape, split and precision, per MoE layer; the roofline costs the rest. The grouped GEMMs of experts
    split eight ways run far below the FP8 peak, so a prompt-sized step costs several times the roofline's."""
    import aiconfigurator_core.sdk.operations as ops
    from aiconfigurator_core.sdk import common, engine

    deepseek, node = model("deepseek-r1", "fp8"), hardware("H200", 8)
    costs = step_costs.step_cost_model(deepseek, node, VLLM, tensor_parallel=8, predictor="auto")
    assert isinstance(costs, kernel_costs.MoeLayerStepCosts)
    assert costs.predictor.backend == "kernels" and costs.predictor.in_measured_range is True
    assert "MoE layers" in costs.predictor.data_version and costs.predictor.data_version.startswith("h200_sxm/vllm/")
    moe = deepseek.moe
    op = ops.MoE(
        "moe", 1, deepseek.hidden_size, moe.expert_intermediate_size, moe.experts_per_token, moe.experts, 8, 1,
        common.MoEQuantMode.fp8_block, kernel_costs.MOE_DISTRIBUTION, 1,
    )  # fmt: skip
    _, _, handle = kernel_costs._engine("h200_sxm", "vllm")
    [(_, theirs_ms, _, _)] = handle.evaluate_ops_json(
        engine.build_ops_json([op]), is_context=False, batch_size=8192, s=1
    )
    experts = float(costs.gpu_seconds(8192, 0, 0)) - float(costs.rest.gpu_seconds(8192, 0, 0))
    assert experts == pytest.approx((deepseek.num_layers - moe.dense_layers) * theirs_ms / 1e3, rel=1e-6)
    rooflined = float(roofline.step_costs(deepseek, node, VLLM, tensor_parallel=8).gpu_seconds(8192, 0, 0))
    assert float(costs.gpu_seconds(8192, 0, 0)) > 2 * rooflined
    # a dense model on the same GPU and engine stays with the roofline under auto (its validation error is lower)
    assert step_costs.step_cost_model(LLAMA_8B, node, VLLM, tensor_parallel=1).predictor.backend == "roofline"


@pytest.mark.parametrize(
    ("options", "engine_name", "reason"),
    [
        ({"expert_parallel": 8, "data_parallel_attention": True}, "vllm", "data-parallel attention"),
        ({}, "tensorrt-llm", "no MoE op for this model"),  # its H100 tables measured gpt-oss-20b's 32 experts only
    ],
)
def test_an_moe_shape_outside_the_moe_tables_falls_back_and_says_why(options, engine_name, reason):
    from benchmark_platform.domain import ServingOptions

    gpt_oss = model("gpt-oss-120b", "mxfp4")
    node = hardware("H100-SXM", 8)
    costs = step_costs.step_cost_model(
        gpt_oss, node, framework(engine_name), tensor_parallel=8 if options else 1, options=ServingOptions(**options)
    )
    assert costs.predictor.backend == "roofline" and costs.predictor.requested == "auto"
    assert reason in costs.predictor.fallback, costs.predictor.fallback


def test_under_expert_parallelism_the_moe_op_holds_whole_experts_per_rank():
    """Qwen3-30B-A3B at TP 8 on H100 under vLLM: with EP 8 the op is asked for whole experts on eight ranks (its
    (tp 1, ep 8) split), without it for every expert sliced eight ways; the collectives stay in the roofline's part,
    the same all-reduces either way (tensor-parallel attention). The two splits cost the expert layers differently, and
    neither is free."""
    import aiconfigurator_core.sdk.operations as ops
    from aiconfigurator_core.sdk import common, engine

    from benchmark_platform.domain import ServingOptions

    qwen, node = model("qwen3-30b-a3b", "bf16"), hardware("H100-SXM", 8)
    sliced = step_costs.step_cost_model(qwen, node, VLLM, tensor_parallel=8)
    whole = step_costs.step_cost_model(qwen, node, VLLM, tensor_parallel=8, options=ServingOptions(expert_parallel=8))
    assert isinstance(whole, kernel_costs.MoeLayerStepCosts) and isinstance(sliced, kernel_costs.MoeLayerStepCosts)
    moe = qwen.moe
    _, _, handle = kernel_costs._engine("h100_sxm", "vllm")
    for costs, split in ((sliced, (8, 1)), (whole, (1, 8))):
        op = ops.MoE(
            "moe", 1, qwen.hidden_size, moe.expert_intermediate_size, moe.experts_per_token, moe.experts, *split,
            common.MoEQuantMode.bfloat16, kernel_costs.MOE_DISTRIBUTION, 1,
        )  # fmt: skip
        [(_, ms, _, _)] = handle.evaluate_ops_json(engine.build_ops_json([op]), is_context=False, batch_size=2048, s=1)
        experts = float(costs.gpu_seconds(2048, 0, 0)) - float(costs.rest.gpu_seconds(2048, 0, 0))
        assert experts >= (qwen.num_layers - moe.dense_layers) * ms / 1e3 * (1 - 1e-9)  # at least the measured row
    # the collectives are the roofline part's, not the op's: without DP attention EP all-reduces as TP does
    assert (whole.rest.allreduce_s, whole.rest.allreduce_token_s) == (
        sliced.rest.allreduce_s,
        sliced.rest.allreduce_token_s,
    )
    assert whole.rest.allreduce_s > 0
