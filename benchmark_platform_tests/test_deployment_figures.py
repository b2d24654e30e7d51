"""A result's deployment figures: one simulated replica scaled to the node, per GPU, cost and energy; and the
`simulate` command that prints them for one deployment without a database."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from benchmark_platform.cli import main
from benchmark_platform.domain import CONFIG_DIMENSIONS, ServingOptions
from benchmark_platform.runners import RunSpec, get_runner
from benchmark_platform.runners.base import METRIC_COLUMNS
from benchmark_platform.runners.simulated.runner import measurement_from_replica
from benchmark_platform.runners.simulated.serving_sim import ServingSimulation, simulate_serving
from benchmark_platform_tests.factories import CHATBOT, H100, VLLM, llama_8b

H100_X8 = H100.model_copy(
    update={
        "name": "h100-x8",
        "gpu_count": 8,
        "tdp_watts": 700,
        "cost_per_hour_usd": 88.0,
        "spot_cost_per_hour_usd": 40.0,
    }
)


def _replica(output_per_s: float = 1000.0, busy: float = 0.5) -> ServingSimulation:
    requests = 100
    return ServingSimulation(
        ttft_s=np.linspace(0.05, 0.15, requests),
        tpot_s=np.full(requests, 0.020),
        itl_s=np.full(requests, 0.020),
        e2e_s=np.full(requests, 5.2),
        input_tokens=1024,
        output_tokens=256,
        duration_s=25.6,
        completed_requests=requests,
        output_tokens_per_s=output_per_s,
        total_tokens_per_s=output_per_s * (1024 + 256) / 256,
        requests_per_s=output_per_s / 256,
        gpu_busy_fraction=busy,
        memory_per_gpu_gb=30.0,
        kv_capacity_tokens=400_000,
        max_running_sequences=32,
        mean_running_sequences=30.0,
        prefill_bound="compute",
        decode_bound="memory",
        predictor={"backend": "roofline"},
        assumptions={},
    )


def test_node_figures_are_replicas_times_one_replica_and_per_gpu_divides_by_the_gpus():
    at_tp2 = measurement_from_replica(
        _replica(), llama_8b(), H100_X8, VLLM, tensor_parallel=2, concurrency=32, input_tokens=1024, output_tokens=256
    )
    assert at_tp2.throughput_tokens_sec == pytest.approx(4 * 1000.0)  # four replicas of two GPUs
    assert at_tp2.output_tokens_sec_per_gpu == pytest.approx(4 * 1000.0 / 8)
    assert at_tp2.total_tokens_sec == pytest.approx(4 * 5000.0)
    assert at_tp2.total_tokens_sec_per_gpu == pytest.approx(4 * 5000.0 / 8)
    assert at_tp2.rps_sustained == pytest.approx(4 * 1000.0 / 256)
    assert at_tp2.interactivity_tokens_sec == pytest.approx(1000 / 20.0)
    # spot price of the node over the node's tokens per hour
    assert at_tp2.cost_per_million_output_tokens == pytest.approx(40.0 / (4000.0 * 3600) * 1e6)
    assert at_tp2.cost_per_million_total_tokens == pytest.approx(40.0 / (20000.0 * 3600) * 1e6)
    # board power × busy share × GPUs, per output token of the node
    assert at_tp2.energy_per_output_token_j == pytest.approx(8 * 700 * 0.5 / 4000.0)
    deployment = at_tp2.detailed_metrics["deployment"]
    assert (deployment["tensor_parallel"], deployment["replicas"]) == (2, 4)
    assert at_tp2.detailed_metrics["cost"]["price_basis"] == "spot"
    assert at_tp2.detailed_metrics["load"]["concurrency_node"] == 4 * 32
    assert at_tp2.runner == "simulated"

    on_demand = H100_X8.model_copy(update={"spot_cost_per_hour_usd": None})
    priced = measurement_from_replica(
        _replica(), llama_8b(), on_demand, VLLM, tensor_parallel=8, concurrency=32, input_tokens=1024, output_tokens=256
    )
    assert priced.detailed_metrics["cost"]["price_basis"] == "on_demand"
    assert priced.cost_per_million_output_tokens == pytest.approx(88.0 / (1000.0 * 3600) * 1e6)


def test_every_new_metric_is_a_result_column():
    measurement = get_runner("simulated").run(
        RunSpec(
            model=llama_8b(), hardware=H100_X8, framework=VLLM, workload=CHATBOT, batch_size=8, sequence_length=1024
        )
    )
    columns = measurement.result_columns()
    for column in METRIC_COLUMNS:
        assert column in columns
    for column in ("output_tokens_sec_per_gpu", "interactivity_tokens_sec", "cost_per_million_output_tokens"):
        assert columns[column] > 0, column


def test_run_spec_defaults_to_the_whole_node_and_rejects_a_degree_that_does_not_divide_it():
    spec = RunSpec(
        model=llama_8b(), hardware=H100_X8, framework=VLLM, workload=CHATBOT, batch_size=1, sequence_length=1
    )
    assert (spec.tensor_parallel, spec.replicas) == (8, 1)
    two = spec.model_copy(update={"tensor_parallel": 2})
    assert two.replicas == 4
    with pytest.raises(ValidationError, match="tensor_parallel 3 does not divide"):
        RunSpec(**{**spec.model_dump(), "tensor_parallel": 3})


@pytest.mark.parametrize(
    "options, message",
    [
        (ServingOptions(expert_parallel=8), "expert_parallel: llama-3.1-8b@bf16 is dense"),
        (ServingOptions(speculative_method="mtp"), "speculative_method: llama-3.1-8b@bf16 ships no mtp draft"),
    ],
)
def test_the_run_spec_and_the_simulator_refuse_options_by_one_rule(options, message):
    """``domain.options_problem`` is the rule for both: a config the run spec refuses never reaches a simulation
    that would accept it, and the reason reads the same."""
    shape = dict(model=llama_8b(), hardware=H100_X8, framework=VLLM, workload=CHATBOT, batch_size=1)
    with pytest.raises(ValidationError, match=message):
        RunSpec(**shape, sequence_length=128, tensor_parallel=8, options=options)
    with pytest.raises(ValueError, match=message):
        simulate_serving(
            llama_8b(),
            H100_X8,
            VLLM,
            tensor_parallel=8,
            input_tokens=128,
            output_tokens=16,
            concurrency=1,
            options=options,
        )


def test_a_model_that_fits_one_gpu_gains_no_throughput_per_gpu_from_a_wider_group():
    """8B on an eight-H100 node, chatbot prompts, at every concurrency of the sweep: TP 2, 4 or 8 splits the same
    work over more GPUs and pays all-reduces; per GPU it never beats eight TP-1 replicas."""
    runner = get_runner("simulated")
    for concurrency in (1, 8, 64, 256):
        per_gpu = {}
        for degree in (1, 2, 4, 8):
            spec = RunSpec(
                model=llama_8b(),
                hardware=H100_X8,
                framework=VLLM,
                workload=CHATBOT,
                batch_size=concurrency,
                sequence_length=1024,
                tensor_parallel=degree,
            )
            per_gpu[degree] = runner.run(spec).output_tokens_sec_per_gpu
        assert per_gpu[1] >= per_gpu[2] >= per_gpu[4] >= per_gpu[8], (concurrency, per_gpu)


# --- the simulate command ---------------------------------------------------------------------------------------

BASE = [
    "simulate",
    "--model-version",
    "llama-3.1-8b@fp16",
    "--hardware",
    "gcp-h100-sxm-x1",
    "--framework",
    "vllm",
    "--input-tokens",
    "1024",
    "--output-tokens",
    "256",
]


def _with(*changes: str) -> list[str]:
    arguments = list(BASE)
    for option, value in zip(changes[::2], changes[1::2], strict=True):
        if option in arguments:
            arguments[arguments.index(option) + 1] = value
        else:
            arguments += [option, value]
    return arguments


def test_simulate_prints_every_metric_per_node_and_per_gpu_as_result_columns():
    result = CliRunner().invoke(main, [*_with("--concurrency", "64"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"batch_size", "sequence_length", *CONFIG_DIMENSIONS[2:], *METRIC_COLUMNS} | {
        "detailed_metrics",
        "runner",
    }
    assert (payload["batch_size"], payload["sequence_length"], payload["tensor_parallel"]) == (64, 1024, 1)
    assert payload["runner"] == "simulated"
    assert payload["output_tokens_sec_per_gpu"] == payload["throughput_tokens_sec"]  # one GPU
    assert payload["cost_per_million_output_tokens"] < 1.0  # 8B on one H100 at concurrency 64
    assert payload["interactivity_tokens_sec"] == pytest.approx(1000 / payload["tpot_p50_ms"])

    node = json.loads(
        CliRunner()
        .invoke(
            main, [*_with("--hardware", "gcp-h100-sxm-x8", "--concurrency", "64", "--tensor-parallel", "2"), "--json"]
        )
        .output
    )
    assert node["tensor_parallel"] == 2 and node["detailed_metrics"]["deployment"]["replicas"] == 4
    assert node["output_tokens_sec_per_gpu"] == pytest.approx(node["throughput_tokens_sec"] / 8)

    text = CliRunner().invoke(main, _with("--request-rate", "2"))
    assert text.exit_code == 0, text.output
    assert "SIMULATED" in text.output and "per GPU" in text.output and "requests/s per replica" in text.output


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        (("--model-version", "llama-9@fp3"), "--model-version: unknown model version 'llama-9@fp3'"),
        (("--hardware", "tpu-v9"), "--hardware: unknown hardware 'tpu-v9'"),
        (("--framework", "magic"), "--framework: unknown framework 'magic'"),
        (("--hardware", "gcp-h100-sxm-x8", "--tensor-parallel", "3"), "--tensor-parallel: 3 does not divide"),
        (("--model-version", "llama-3.1-70b@fp16", "--tensor-parallel", "1"), "--tensor-parallel: does not fit"),
        (("--model-version", "llama-3.1-70b@fp16"), "--model-version: llama-3.1-70b@fp16 does not fit gcp-h100"),
        (("--hardware", "azure-mi300x-x8", "--framework", "lmdeploy"), "--framework: lmdeploy does not run on amd"),
        (("--concurrency", "4", "--request-rate", "1"), "exclude each other"),
        (("--input-tokens", "0"), "--input-tokens"),
    ],
)
def test_simulate_rejects_bad_input_with_exit_2_naming_the_problem(changes, complaint):
    result = CliRunner().invoke(main, _with(*changes))
    assert result.exit_code == 2, result.output
    assert complaint in result.output
