"""Print the GPU check's measured figures beside what the roofline simulator predicts for the same GPU, model shape,
batch and lengths (vLLM's efficiencies from the catalog; the check's server batches statically, so expect it slower).

    python benchmarks/gpu_check_predict.py --gpu "NVIDIA H200" c1.json c8.json c32.json

Each JSON file is one ``bench-endpoint --json`` output (its concurrency is read from it).
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmark_platform import catalogs
from benchmark_platform.runners import FrameworkFacts, HardwareFacts, ModelFacts, RunSpec, WorkloadFacts
from benchmark_platform.runners.simulated.runner import simulate

LLAMA_8B = ModelFacts(
    name="llama-3.1-8b",
    version_key="llama-3.1-8b@bf16",
    artifact_uri="random weights, Llama-3.1-8B's shape",
    parameters=8_030_000_000,
    quantization="bf16",
    quantization_bits=16,
    format="safetensors",
    num_layers=32,
    hidden_size=4096,
    num_kv_heads=8,
    head_dim=128,
)
FIGURES = ("ttft_p50_ms", "ttft_p90_ms", "tpot_p50_ms", "tpot_p90_ms", "throughput_tokens_sec")


def hardware_for(gpu_name: str) -> HardwareFacts:
    """The catalog's chip figures for the GPU whose name nvidia-smi printed, as a one-GPU config."""
    for spec in sorted(catalogs.load_hardware(), key=lambda s: -len(s.gpu_type)):
        if spec.gpu_type.split("-")[0].lower() in gpu_name.lower():
            chip = spec.specs
            return HardwareFacts(
                name=f"local-{spec.gpu_type.lower()}-x1",
                gpu_type=spec.gpu_type,
                gpu_count=1,
                vendor=chip.vendor,
                vram_per_gpu_gb=spec.vram_per_gpu_gb,
                memory_bandwidth_gbps=chip.memory_bandwidth_gbps,
                fp16_tflops=chip.fp16_tflops,
                fp8_tflops=chip.fp8_tflops,
                int8_tops=chip.int8_tops,
                interconnect_bandwidth_gbps=chip.interconnect_bandwidth_gbps,
            )
    raise SystemExit(f"error: no catalog GPU matches {gpu_name!r}")


def vllm() -> FrameworkFacts:
    spec = next(f for f in catalogs.load_frameworks() if f.name == "vllm")
    return FrameworkFacts(
        name=spec.name,
        version=spec.version,
        launch_command=spec.launch_command,
        prefill_efficiency=spec.efficiency.prefill,
        decode_efficiency=spec.efficiency.decode,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", required=True)
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("results", nargs="+")
    arguments = parser.parse_args()
    hardware, framework = hardware_for(arguments.gpu), vllm()
    workload = WorkloadFacts(
        name="gpu-check", typical_input_tokens=arguments.input_tokens, typical_output_tokens=arguments.output_tokens
    )
    print(f"GPU {arguments.gpu} (catalog {hardware.gpu_type}); model: random weights, Llama-3.1-8B shape, bf16")
    print(f"{'concurrency':>11}  {'figure':<22} {'measured':>10} {'simulated':>10} {'measured/sim':>12}")
    for path in arguments.results:
        try:
            measured = json.loads(open(path).read())
        except (OSError, json.JSONDecodeError) as error:
            print(f"{path}: no result ({error})", file=sys.stderr)
            continue
        concurrency = measured["profile"]["concurrency"]
        spec = RunSpec(
            model=LLAMA_8B,
            hardware=hardware,
            framework=framework,
            workload=workload,
            batch_size=concurrency,
            sequence_length=arguments.input_tokens,
        )
        predicted = simulate(spec, seed=0)
        for figure in FIGURES:
            value, estimate = measured[figure], getattr(predicted, figure)
            ratio = value / estimate if estimate else float("nan")
            print(f"{concurrency:>11}  {figure:<22} {value:>10.2f} {estimate:>10.2f} {ratio:>12.2f}")
        print(f"{concurrency:>11}  {'gpu_utilization_pct':<22} {measured.get('gpu_utilization_pct')}")
        flags = ", ".join(measured.get("quality_flags") or {}) or "none"
        print(f"{concurrency:>11}  quality flags: {flags}")
    print(
        "simulated = roofline estimate with vLLM's catalog efficiencies; measured = this check's static-batching server"
    )


if __name__ == "__main__":
    main()
