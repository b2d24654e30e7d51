"""How close is the continuous-batching simulator to published serving measurements? And how fast is it?

Loads ``benchmarks/data/published_serving.yaml`` (measured vLLM / SGLang serving results with their sources), runs
``runners.serving_sim.simulate_serving`` for every row it can simulate, and prints each row's error in output
throughput, TTFT p50 and TPOT p50, then the median absolute errors. Facts come from the bundled catalogs
(hardware.yaml, frameworks.yaml) and the example model manifests; a row whose model has no manifest names its
shape in the YAML (``model_shape``). Then it times the simulator on a few loads (best of five, CPU time).

    python benchmarks/simulator_accuracy.py [--data PATH ...] [--predictor auto|roofline|kernels] [--no-speed]

``--predictor`` picks the step-cost backend (``runners.step_costs``); the table names the one that answered each row
(a row the measured kernels cannot represent falls back to the roofline, marked "roofline*").
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from benchmark_platform import catalogs, manifests
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts
from benchmark_platform.runners.serving_sim import ServingSimulation, simulate_serving
from benchmark_platform.runners.step_costs import PREDICTOR_CHOICES, PredictorChoice

DATA_DIR = Path(__file__).parent / "data"
# Published measurements: serving benchmarks, and vLLM's CI latency tests (throughput derived from batch latency).
DATA_FILES = (DATA_DIR / "published_serving.yaml", DATA_DIR / "published_latency_ci.yaml")
# Mean lengths for the rows whose sources used variable lengths (the simulator serves fixed ones).
INPUTS_FILE = DATA_DIR / "simulation_inputs.yaml"
GOALS = {"output_throughput": 0.20, "ttft_p50": 0.30, "tpot_p50": 0.30}
# Rows that send every prompt at once are simulated as a closed loop at vLLM's running-sequence limit on large GPUs.
SATURATION_CONCURRENCY = 1024
# Hugging Face ids of the published rows -> the example manifest that holds the same architecture.
MANIFEST_OF_MODEL = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Meta-Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1-70b",  # Llama 3 and 3.3 70B have the 3.1 70B architecture
    "meta-llama/Meta-Llama-3-70B-Instruct": "llama-3.1-70b",
    "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b",
}
SPEED_LOADS = (
    ("8B H100, concurrency 1, 1,024 in / 1,024 out", dict(concurrency=1, input_tokens=1024, output_tokens=1024)),
    ("8B H100, concurrency 1, 1,024 in / 4,096 out", dict(concurrency=1, input_tokens=1024, output_tokens=4096)),
    ("8B H100, concurrency 64, 1,024 in / 1,024 out", dict(concurrency=64, input_tokens=1024, output_tokens=1024)),
    ("8B H100, concurrency 256, 1,024 in / 1,024 out", dict(concurrency=256, input_tokens=1024, output_tokens=1024)),
    ("8B H100, concurrency 256, 128 in / 128 out", dict(concurrency=256, input_tokens=128, output_tokens=128)),
    ("8B H100, Poisson 10 req/s, 1,024 in / 1,024 out", dict(request_rate=10.0, input_tokens=1024, output_tokens=1024)),
)


def hardware_facts(gpu_type: str, gpu_count: int) -> HardwareFacts:
    """A node of ``gpu_count`` GPUs of ``gpu_type`` with the catalog's spec-sheet figures for that GPU."""
    for spec in catalogs.load_hardware():
        if spec.gpu_type == gpu_type:
            return HardwareFacts(
                name=f"{gpu_type.lower()}-x{gpu_count}",
                gpu_type=gpu_type,
                gpu_count=gpu_count,
                vendor=spec.specs.vendor,
                vram_per_gpu_gb=spec.vram_per_gpu_gb,
                memory_bandwidth_gbps=spec.specs.memory_bandwidth_gbps,
                fp16_tflops=spec.specs.fp16_tflops,
                fp8_tflops=spec.specs.fp8_tflops,
                int8_tops=spec.specs.int8_tops,
                interconnect_bandwidth_gbps=spec.specs.interconnect_bandwidth_gbps,
            )
    raise ValueError(f"gpu_type {gpu_type!r} is not in the hardware catalog")


def framework_facts(name: str) -> FrameworkFacts:
    """The catalog's entry for framework ``name`` (its efficiencies drive the roofline)."""
    for spec in catalogs.load_frameworks():
        if spec.name == name:
            return FrameworkFacts(
                name=spec.name,
                version=spec.version,
                launch_command=spec.launch_command,
                quantization_flags=dict(spec.quantization_flags),
                prefill_efficiency=spec.efficiency.prefill,
                decode_efficiency=spec.efficiency.decode,
            )
    raise ValueError(f"framework {name!r} is not in the frameworks catalog")


def model_facts(manifest_name: str, version: str) -> ModelFacts:
    """Version ``version`` of the example manifest ``manifest_name`` (e.g. "llama-3.1-8b", "fp16")."""
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{manifest_name}.yaml")
    for spec in manifest.versions:
        if spec.version == version:
            return manifests.model_facts(manifest, spec)
    raise ValueError(f"{manifest_name} has no version {version!r}")


@dataclass(frozen=True)
class Comparison:
    """One published row next to what the simulator predicts for it (errors: simulated / published - 1)."""

    row: dict
    input_tokens: int
    output_tokens: int
    load: str
    published: dict[str, float | None]
    simulated: dict[str, float]
    predictor: dict  # what predicted the simulated figures (``Predictor.as_dict``)

    def error(self, metric: str) -> float | None:
        published = self.published[metric]
        return None if published is None else self.simulated[metric] / published - 1


def simulation_lengths(row: dict) -> tuple[int, int] | None:
    """Fixed per-request lengths for the row: its own, or the means its source's totals give (``mean_input_tokens``
    and ``mean_output_tokens``); None when neither is known."""
    input_tokens = row.get("input_tokens") or row.get("mean_input_tokens")
    output_tokens = row.get("output_tokens") or row.get("mean_output_tokens")
    if not input_tokens or not output_tokens:
        return None
    return round(input_tokens), round(output_tokens)


def model_of(row: dict) -> ModelFacts:
    if shape := row.get("model_shape"):
        return ModelFacts(**shape)
    manifest_name = MANIFEST_OF_MODEL[row["model"]]
    precision = row["precision"]
    version = {"bf16": "fp16"}.get(precision, precision) if manifest_name.startswith("llama") else precision
    facts = model_facts(manifest_name, version)
    return facts.model_copy(update={"quantization": precision})  # bf16 and fp16 weigh the same


def compare(row: dict, seed: int = 0, predictor: PredictorChoice = "auto") -> Comparison | None:
    """Simulate one published row; None when its lengths are unknown."""
    lengths = simulation_lengths(row)
    if lengths is None:
        return None
    input_tokens, output_tokens = lengths
    hardware = hardware_facts(row["gpu_type"], row["gpu_count"])
    load: dict[str, float | int]
    rate = row.get("request_rate")
    sent_at_once = rate is not None and math.isinf(rate)
    if row.get("concurrency"):
        # clients ramp up one by one, unless the source started them together (vLLM's latency test: one batch)
        load = {"concurrency": int(row["concurrency"]), "staggered_start": not row.get("started_together", False)}
        described = f"concurrency {row['concurrency']}"
    elif sent_at_once:
        # every prompt sent at once: the server runs as many as it admits; a closed loop at its sequence limit
        load = {
            "concurrency": SATURATION_CONCURRENCY,
            "num_requests": 2 * SATURATION_CONCURRENCY,
            "staggered_start": False,
        }
        described = "all at once"
    else:
        load = {"request_rate": float(rate)}
        described = f"{rate:g} req/s"
    framework = framework_facts(row["framework"])
    if row.get("framework_version", "")[:1].isdigit():  # the measured version (scheduling differs across versions)
        framework = framework.model_copy(update={"version": row["framework_version"]})
    run = simulate_serving(
        model_of(row),
        hardware,
        framework,
        tensor_parallel=row["tensor_parallel"],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        scheduler_steps=row.get("num_scheduler_steps", 1),  # the server's documented --num-scheduler-steps
        seed=seed,
        predictor=predictor,
        **load,
    )
    return Comparison(
        row=row,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        load=described,
        # with every prompt sent at once, TTFT and TPOT measure the client's queue of num_prompts, not the server
        published={
            "output_throughput": row.get("output_throughput_tok_s"),
            "ttft_p50": None if sent_at_once else row.get("ttft_median_ms"),
            "tpot_p50": None if sent_at_once else row.get("tpot_median_ms"),
        },
        simulated=summary(run),
        predictor=run.assumptions["predictor"],
    )


def summary(run: ServingSimulation) -> dict[str, float]:
    return {
        "output_throughput": run.output_tokens_per_s,
        "ttft_p50": float(np.percentile(run.ttft_s, 50)) * 1e3,
        "tpot_p50": float(np.percentile(run.tpot_s, 50)) * 1e3,
    }


def load_rows(paths: tuple[Path, ...] = DATA_FILES, inputs_path: Path = INPUTS_FILE) -> list[dict]:
    """The published rows, each completed with its entry of the simulation inputs file (mean lengths, markers)."""
    inputs = yaml.safe_load(inputs_path.read_text(encoding="utf-8"))["rows"]
    rows = [row for path in paths for row in yaml.safe_load(path.read_text(encoding="utf-8"))["rows"]]
    return [row | inputs.get(row["id"], {}) for row in rows]


def median_absolute_errors(comparisons: list[Comparison]) -> dict[str, float]:
    """Per metric, the median of |error| over the rows that publish it."""
    medians = {}
    for metric in GOALS:
        errors = [abs(error) for c in comparisons if (error := c.error(metric)) is not None]
        medians[metric] = statistics.median(errors) if errors else math.nan
    return medians


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _error_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def print_accuracy(comparisons: list[Comparison], skipped: list[dict]) -> dict[str, float]:
    """Print the table and the medians; return the medians."""
    print(
        "| Row | Framework | GPU x TP | Model | Prec. | In / out | Load | Output tok/s pub / sim (err) "
        "| TTFT p50 ms pub / sim (err) | TPOT p50 ms pub / sim (err) | Predictor |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in comparisons:
        row = c.row
        cells = [
            f"{_cell(c.published[m], 0 if m == 'output_throughput' else 1)} / "
            f"{_cell(c.simulated[m], 0 if m == 'output_throughput' else 1)} ({_error_cell(c.error(m))})"
            for m in GOALS
        ]
        print(
            f"| {row['id']} | {row['framework']} {row['framework_version']} "
            f"| {row['gpu_type']} x{row['tensor_parallel']} "
            f"| {row['model'].split('/')[-1]} | {row['precision']} | {c.input_tokens} / {c.output_tokens} "
            f"| {c.load} | "
            + " | ".join(cells)
            + f" | {c.predictor['backend']}{'*' if c.predictor['fallback'] else ''} |"
        )
    for row in skipped:
        print(f"| {row['id']} | not simulated: input/output lengths unknown |")
    medians = median_absolute_errors(comparisons)
    print("\nMedian |error| over all rows with the figure published:")
    for metric, goal in GOALS.items():
        count = sum(c.error(metric) is not None for c in comparisons)
        verdict = "meets" if medians[metric] <= goal else "MISSES"
        print(f"  {metric}: {medians[metric]:.1%} over {count} rows ({verdict} the goal of {goal:.0%})")
    return medians


def run_accuracy(
    paths: tuple[Path, ...] = DATA_FILES, predictor: PredictorChoice = "auto"
) -> tuple[list[Comparison], list[dict]]:
    """Simulate every row; the rows whose lengths are unknown come back separately."""
    comparisons, skipped = [], []
    for row in load_rows(paths):
        comparison = compare(row, predictor=predictor)
        if comparison is None:
            skipped.append(row)
        else:
            comparisons.append(comparison)
    return comparisons, skipped


def print_speed(repeat: int = 5, predictor: PredictorChoice = "auto") -> None:
    """Best-of-``repeat`` CPU time of one simulation per load (process CPU time, so that other work on a shared
    machine does not inflate it; the simulator is single-threaded, so this is its time on one core)."""
    model, hardware = model_facts("llama-3.1-8b", "fp16"), hardware_facts("H100-SXM", 1)
    framework = framework_facts("vllm")
    print(f"\nSimulator speed, predictor {predictor} (best of {repeat}, CPU time on one core):")
    for label, load in SPEED_LOADS:
        best = math.inf
        for _ in range(repeat):
            started = time.process_time()
            simulate_serving(model, hardware, framework, tensor_parallel=1, predictor=predictor, **load)
            best = min(best, time.process_time() - started)
        print(f"  {label}: {best * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=list(DATA_FILES))
    parser.add_argument("--predictor", choices=PREDICTOR_CHOICES, default="auto", help="the step-cost backend")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    arguments = parser.parse_args()
    comparisons, skipped = run_accuracy(tuple(arguments.data), arguments.predictor)
    print_accuracy(comparisons, skipped)
    if not arguments.no_speed:
        print_speed(predictor=arguments.predictor)


if __name__ == "__main__":
    main()
