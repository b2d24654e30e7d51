"""The roofline model and the simulated runner: physical sense, determinism, honest labels."""

from __future__ import annotations

import threading
import time
from typing import get_args

import pytest

from benchmark_platform import manifests, memory
from benchmark_platform.domain import Quantization, ServingOptions
from benchmark_platform.runners import (
    ModelFacts,
    RunInterrupted,
    RunnerError,
    RunSpec,
    get_runner,
)
from benchmark_platform.runners.simulated import calibration, roofline
from benchmark_platform.runners.simulated.runner import QUANTIZATION_ACCURACY_PENALTY
from benchmark_platform_tests.factories import CHATBOT, H100, VLLM, llama_8b, make_spec

LLAMA_70B = ModelFacts(
    name="llama-3.1-70b",
    version_key="llama-3.1-70b@fp8",
    artifact_uri="hf://meta-llama/Llama-3.1-70B-Instruct",
    parameters=70_600_000_000,
    quantization="fp8",
    quantization_bits=8,
    format="safetensors",
    num_layers=80,
    hidden_size=8192,
    num_kv_heads=8,
    head_dim=128,
    baseline_accuracy=0.86,
)


def estimate(spec: RunSpec) -> roofline.RooflineEstimate:
    return roofline.estimate(spec.model, spec.hardware, spec.framework, spec.batch_size, spec.sequence_length, 256)


def test_more_bandwidth_lowers_tpot():
    slow = estimate(make_spec(hardware=H100.model_copy(update={"memory_bandwidth_gbps": 2000})))
    fast = estimate(make_spec())
    assert fast.tpot_seconds < slow.tpot_seconds
    assert fast.decode_bound == "memory"


def test_larger_batch_raises_throughput_and_tpot():
    small, large = estimate(make_spec(batch_size=1)), estimate(make_spec(batch_size=64))
    assert large.output_tokens_per_second > 5 * small.output_tokens_per_second
    assert large.tpot_seconds > small.tpot_seconds
    assert large.ttft_seconds[-1] > small.ttft_seconds[-1]


def test_int4_beats_fp16_on_decode():
    fp16 = estimate(make_spec(model=llama_8b("fp16", 16)))
    int4 = estimate(make_spec(model=llama_8b("int4", 4, "awq")))
    assert int4.tpot_seconds < 0.5 * fp16.tpot_seconds


def test_bigger_model_is_slower_on_the_same_gpu():
    h200 = H100.model_copy(update={"name": "h200", "vram_per_gpu_gb": 141, "memory_bandwidth_gbps": 4800})
    small = estimate(make_spec(model=llama_8b("fp8", 8), hardware=h200))
    big = estimate(make_spec(model=LLAMA_70B, hardware=h200))
    assert big.tpot_seconds > 5 * small.tpot_seconds
    assert big.ttft_seconds[0] > 5 * small.ttft_seconds[0]


def test_tensor_parallel_speeds_up_but_pays_the_interconnect():
    one = estimate(make_spec(model=LLAMA_70B, hardware=H100.model_copy(update={"gpu_count": 2})))
    four = estimate(make_spec(model=LLAMA_70B, hardware=H100.model_copy(update={"gpu_count": 4})))
    pcie = estimate(
        make_spec(model=LLAMA_70B, hardware=H100.model_copy(update={"gpu_count": 4, "interconnect_bandwidth_gbps": 8}))
    )
    assert four.tpot_seconds < one.tpot_seconds
    assert four.tpot_seconds > one.tpot_seconds / 2  # all-reduces keep scaling sub-linear
    assert pcie.tpot_seconds > four.tpot_seconds


def test_batch_8b_h100_is_in_the_published_range():
    """Llama 3.1 8B BF16 on one H100 decodes a single stream at roughly 6-8 ms per token (vLLM, TensorRT-LLM)."""
    single = estimate(make_spec(batch_size=1))
    assert 0.005 < single.tpot_seconds < 0.009


def test_prefill_grows_quadratically_with_long_prompts():
    short = roofline.prefill_pass_seconds(llama_8b(), H100, VLLM, 8192, 1024, tensor_parallel=1)[0]
    long = roofline.prefill_pass_seconds(llama_8b(), H100, VLLM, 8192, 32768, tensor_parallel=1)[0]
    assert long > 1.5 * short


def test_attention_costs_the_heads_widths_at_the_caches_precision():
    """Qwen3-32B's 64 heads of 128 (8,192) outnumber its 5,120 hidden size; DeepSeek's latent attention computes a
    prompt with 192-wide keys and 128-wide values over 128 heads; FP8 weights over a 16-bit cache attend at the 16-bit
    peak while the weights' own matrix multiplies keep the FP8 peak; and gpt-oss's sliding-window layers attend to
    their window, not the whole prefix."""

    def pair_s(model, **options) -> float:
        return roofline.step_costs(model, H100, VLLM, tensor_parallel=1, options=ServingOptions(**options)).pair_s

    def example(name: str):
        manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{name}.yaml")
        return manifests.model_facts(manifest, manifest.versions[0])

    qwen3_32b = llama_8b(num_layers=64, hidden_size=5120, num_attention_heads=64, num_kv_heads=8, head_dim=128)
    assert roofline.attention_flops_per_pair(qwen3_32b) == 4 * 64 * 128
    # in the step costs too: against the same shape without its head count (the hidden size stands in)
    assert pair_s(qwen3_32b) / pair_s(qwen3_32b.model_copy(update={"num_attention_heads": None})) == pytest.approx(
        8192 / 5120
    )
    assert roofline.attention_flops_per_pair(llama_8b(num_attention_heads=32)) == 4 * 4096
    deepseek = example("deepseek-r1")
    assert roofline.attention_flops_per_pair(deepseek) == 2 * 128 * (192 + 128)
    headless = deepseek.model_copy(update={"num_attention_heads": None})
    assert pair_s(deepseek) / pair_s(headless) == pytest.approx(2 * 128 * 320 / (4 * 7168))

    fp8, bf16 = llama_8b("fp8", 8, num_attention_heads=32), llama_8b(num_attention_heads=32)
    auto = roofline.step_costs(fp8, H100, VLLM, tensor_parallel=1)
    assert auto.pair_s == pytest.approx(pair_s(bf16))  # FP8 weights, 16-bit cache: attention at the 16-bit peak
    assert auto.token_s == pytest.approx(roofline.step_costs(bf16, H100, VLLM, tensor_parallel=1).token_s / 2, rel=1e-3)
    assert pair_s(fp8, kv_cache_dtype="fp8") == pytest.approx(pair_s(bf16) / 2, rel=1e-3)  # FP8 both: the FP8 peak
    assert pair_s(bf16, kv_cache_dtype="fp8") == pytest.approx(pair_s(bf16))  # 16-bit queries stay 16-bit
    # latent attention decompresses its prompt's keys and values to 16 bits, whatever the cache holds
    assert pair_s(deepseek, kv_cache_dtype="fp8") == pytest.approx(pair_s(deepseek))
    # a long FP8 prompt over a 16-bit cache takes longer than over an FP8 one (the same work otherwise)
    prompt = (32768, 32768**2 / 2, 32768)
    fp8_cache = roofline.step_costs(fp8, H100, VLLM, tensor_parallel=1, options=ServingOptions(kv_cache_dtype="fp8"))
    assert auto.pair_s * prompt[1] > 1.9 * fp8_cache.pair_s * prompt[1]
    assert auto.gpu_seconds(*prompt) > fp8_cache.gpu_seconds(*prompt)

    gpt_oss = example("gpt-oss-20b")
    assert pair_s(gpt_oss, kv_cache_dtype="fp8") == pytest.approx(pair_s(gpt_oss))  # its attention weights are 16-bit
    window = gpt_oss.sliding_window
    windowed = roofline.step_costs(gpt_oss, H100, VLLM, tensor_parallel=1)
    full = roofline.step_costs(gpt_oss.model_copy(update={"sliding_window": None}), H100, VLLM, tensor_parallel=1)
    assert windowed.pair_s == pytest.approx(full.pair_s * (gpt_oss.num_layers - window.layers) / gpt_oss.num_layers)
    assert windowed.window_token_s == pytest.approx(full.pair_s * window.layers / gpt_oss.num_layers * window.window)
    # a 16K-token prompt: the windowed layers attend to 128 tokens each, not to the whole prefix
    prompt = (16384, 16384**2 / 2, 16384)
    assert windowed.gpu_seconds(*prompt) < full.gpu_seconds(*prompt) - 0.45 * full.pair_s * prompt[1]


def test_each_link_class_pays_its_own_allreduce_latency_and_amd_decodes_at_the_framework_bandwidth():
    """Infinity Fabric's all-reduce latency (fitted on an MI355X row) stands where a CDNA 4 decode share used to scale
    every byte a decode step reads: at TP 8 a step pays 2 x layers all-reduces at the link's latency, NVLink's on
    NVIDIA, PCIe's on a PCIe-only node, and the bytes move at the framework's decode efficiency of the spec bandwidth
    on AMD as on NVIDIA."""
    amd = H100.model_copy(
        update={
            "name": "mi355x-x8",
            "gpu_type": "MI355X",
            "vendor": "amd",
            "gpu_count": 8,
            "vram_per_gpu_gb": 288,
            "memory_bandwidth_gbps": 8000,
            "interconnect": "infinity-fabric",
        }
    )
    nvidia = H100.model_copy(update={"gpu_count": 8, "interconnect": "nvlink4"})
    pcie = H100.model_copy(update={"gpu_count": 8, "interconnect": "pcie4"})
    model = LLAMA_70B
    per_step = {
        name: roofline.step_costs(model, hardware, VLLM, tensor_parallel=8).allreduce_s
        for name, hardware in (("amd", amd), ("nvidia", nvidia), ("pcie", pcie))
    }
    allreduces = 2 * model.num_layers
    assert per_step["amd"] == pytest.approx(allreduces * calibration.ALLREDUCE_LATENCY["infinity-fabric"].value)
    assert per_step["nvidia"] == pytest.approx(allreduces * calibration.ALLREDUCE_LATENCY_NVLINK.value)
    assert per_step["pcie"] == pytest.approx(allreduces * calibration.ALLREDUCE_LATENCY["pcie"].value)
    costs = roofline.step_costs(model, amd, VLLM, tensor_parallel=8)
    weight_bytes = costs.weights_s * 8000e9 * VLLM.decode_efficiency
    assert weight_bytes == pytest.approx(memory.dense_weight_bytes(model) / 8)


def test_config_that_does_not_fit_fails_cleanly():
    small_gpu = H100.model_copy(update={"vram_per_gpu_gb": 24, "name": "l4"})
    with pytest.raises(roofline.DoesNotFitError):
        estimate(make_spec(model=LLAMA_70B, hardware=small_gpu))
    with pytest.raises(RunnerError, match="does not fit"):
        get_runner("simulated").run(make_spec(model=LLAMA_70B, hardware=small_gpu))


def test_simulated_measurement_is_deterministic_ordered_and_labelled():
    runner = get_runner("simulated")
    first, second = runner.run(make_spec()), runner.run(make_spec())
    assert first == second
    assert first.runner == "simulated"
    assert first.ttft_p50_ms <= first.ttft_p90_ms <= first.ttft_p99_ms
    assert first.tpot_p50_ms < first.tpot_p90_ms < first.tpot_p99_ms
    assert first.throughput_tokens_sec == pytest.approx(first.rps_sustained * 256)
    assert set(first.result_columns()) >= {"ttft_p50_ms", "throughput_tokens_sec", "runner", "detailed_metrics"}
    assert first.detailed_metrics["replica"]["decode_bound"] == "memory"
    # beside its predictor, what the validation rows nearest it say (make_spec: vLLM 0.6.3, V0, on one H100)
    held_out = first.detailed_metrics["predictor"]["held_out_error"]
    assert held_out["ttft"]["scope"] == "vllm-v0 on any NVIDIA GPU, dense, roofline" and held_out["ttft"]["rows"] >= 3
    other_seed = runner.run(make_spec(seed=2))
    assert other_seed.ttft_p50_ms != first.ttft_p50_ms
    assert other_seed.ttft_p50_ms == pytest.approx(first.ttft_p50_ms, rel=0.1)  # small noise only
    assert get_runner("simulated", seed=2).run(make_spec()) == other_seed


def test_accuracy_is_baseline_minus_quantization_penalty_or_none():
    int4 = get_runner("simulated").run(make_spec(model=llama_8b("int4", 4, "awq")))
    assert int4.accuracy_score == pytest.approx(0.80 - QUANTIZATION_ACCURACY_PENALTY["int4"])
    unknown = get_runner("simulated").run(make_spec(model=llama_8b(baseline_accuracy=None)))
    assert unknown.accuracy_score is None
    not_scored = get_runner("simulated").run(make_spec(workload=CHATBOT.model_copy(update={"measure_accuracy": False})))
    assert not_scored.accuracy_score is None


def test_every_quantization_has_an_accuracy_penalty_so_fp4_versions_simulate():
    assert set(QUANTIZATION_ACCURACY_PENALTY) == set(get_args(Quantization))
    mxfp4 = get_runner("simulated").run(make_spec(model=llama_8b("fp4", 4, fp4_scheme="mxfp4")))
    assert mxfp4.accuracy_score == pytest.approx(0.80 - QUANTIZATION_ACCURACY_PENALTY["fp4"])


def test_simulate_seconds_spends_wall_time_and_stops_promptly():
    started = time.monotonic()
    get_runner("simulated", simulate_seconds=0.2).run(make_spec())
    assert time.monotonic() - started >= 0.2

    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RunInterrupted):
        get_runner("simulated", simulate_seconds=30, should_stop=stop.is_set).run(make_spec())
    assert time.monotonic() - started < 1


def test_bad_runner_name_or_option_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown runner"):
        get_runner("magic")
    with pytest.raises(ValueError, match="bad options"):
        get_runner("simulated", warp_speed=True)
    with pytest.raises(ValueError, match="simulate_seconds"):
        get_runner("simulated", simulate_seconds=-1)
