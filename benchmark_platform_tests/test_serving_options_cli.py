"""``benchmark-platform simulate`` with serving options: bad combinations exit 2 naming the option, nothing run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from benchmark_platform.cli import main

LOAD = ["--concurrency", "4", "--input-tokens", "1024", "--output-tokens", "64"]
DEEPSEEK_H200 = ["simulate", "--model-version", "deepseek-r1@fp8", "--hardware", "aws-h200-x8", *LOAD]
LLAMA_H100 = ["simulate", "--model-version", "llama-3.1-8b@fp16", "--hardware", "gcp-h100-sxm-x8", *LOAD]


@pytest.fixture
def simulator_never_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the simulator ran for a refused combination")

    monkeypatch.setattr("benchmark_platform.cli.simulate_command.simulate_serving", refuse)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            [*LLAMA_H100, "--framework", "vllm", "--tensor-parallel", "8", "--expert-parallel", "8"],
            "--expert-parallel: llama-3.1-8b@fp16 is dense; expert parallelism needs a mixture-of-experts model",
            id="ep-on-dense",
        ),
        pytest.param(
            [*DEEPSEEK_H200, "--framework", "vllm", "--tensor-parallel", "8", "--expert-parallel", "4"],
            "--expert-parallel: 4 must be 1 or the replica's 8 GPUs",
            id="ep-not-tp",
        ),
        pytest.param(
            [*DEEPSEEK_H200, "--framework", "vllm", "--tensor-parallel", "8", "--dp-attention"],
            "--dp-attention: data_parallel_attention needs expert parallelism",
            id="dp-attention-without-ep",
        ),
        pytest.param(
            [*LLAMA_H100, "--framework", "vllm", "--tensor-parallel", "1", "--speculative", "mtp"],
            "--speculative: llama-3.1-8b@fp16 ships no mtp draft (its manifest offers: eagle3)",
            id="draft-the-model-lacks",
        ),
        pytest.param(
            [*DEEPSEEK_H200, "--framework", "tgi", "--tensor-parallel", "8", "--expert-parallel", "8"],
            "--framework: tgi has no launch flag for expert parallelism",
            id="engine-without-ep",
        ),
    ],
)
def test_bad_option_combinations_exit_2_naming_the_option(simulator_never_runs, arguments, message):
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_expert_parallel_dp_attention_mtp_deployment_is_simulated_and_reports_its_options():
    arguments = [*DEEPSEEK_H200, "--framework", "sglang", "--tensor-parallel", "8", "--expert-parallel", "8"]
    result = CliRunner().invoke(main, [*arguments, "--dp-attention", "--speculative", "mtp", "--kv-cache-dtype", "fp8"])
    assert result.exit_code == 0, result.output
    assert "TP 8 x 1 replica, EP 8, DP-attn, MTP, KV fp8 on 8 GPU(s)" in result.output
    payload = json.loads(CliRunner().invoke(main, [*arguments, "--dp-attention", "--json"]).output)
    assert (payload["expert_parallel"], payload["data_parallel_attention"], payload["speculative_method"]) == (
        8,
        True,
        "none",
    )
