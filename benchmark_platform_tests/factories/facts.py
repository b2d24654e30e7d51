"""Runner facts and a run spec: an H100, vLLM, the chatbot workload, Llama 3.1 8B."""

from __future__ import annotations

from benchmark_platform.runners import FrameworkFacts, HardwareFacts, ModelFacts, RunSpec, WorkloadFacts

# --- runner facts and specs ---------------------------------------------------------------------------------------

H100 = HardwareFacts(
    name="aws-h100-sxm-x1",
    gpu_type="H100-SXM",
    gpu_count=1,
    vendor="nvidia",
    vram_per_gpu_gb=80,
    memory_bandwidth_gbps=3350,
    fp16_tflops=989,
    fp8_tflops=1979,
    int8_tops=1979,
    interconnect_bandwidth_gbps=450,
)
VLLM = FrameworkFacts(
    name="vllm",
    version="0.6.3",
    launch_command="vllm serve {model} --port {port} --tensor-parallel-size {tp}",
    prefill_efficiency=0.6,
    decode_efficiency=0.8,
)
CHATBOT = WorkloadFacts(
    name="chatbot",
    typical_input_tokens=512,
    typical_output_tokens=256,
    chat=True,
    measure_accuracy=True,
    sla_ttft_p90_ms=500,
    sla_tpot_p90_ms=50,
)


def llama_8b(quantization: str = "bf16", bits: int = 16, fmt: str = "safetensors", **overrides) -> ModelFacts:
    facts = dict(
        name="llama-3.1-8b",
        version_key=f"llama-3.1-8b@{quantization}",
        artifact_uri="hf://meta-llama/Llama-3.1-8B-Instruct",
        parameters=8_030_000_000,
        quantization=quantization,
        quantization_bits=bits,
        format=fmt,
        num_layers=32,
        hidden_size=4096,
        num_kv_heads=8,
        head_dim=128,
        baseline_accuracy=0.80,
    )
    return ModelFacts(**(facts | overrides))


def make_spec(**overrides) -> RunSpec:
    fields = dict(
        model=llama_8b(), hardware=H100, framework=VLLM, workload=CHATBOT, batch_size=8, sequence_length=512, seed=1
    )
    return RunSpec(**(fields | overrides))
