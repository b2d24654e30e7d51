"""What the whole path (matrix -> queue -> simulated runner -> results -> ranking -> recommend) says about serving
shapes, on a real database: the answers a serving engineer would give."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from benchmark_platform import queue
from benchmark_platform.cli import main
from benchmark_platform.ranking import Constraints, rank_use_case, recommend
from benchmark_platform.ranking.store import load_results_frame, load_use_cases
from benchmark_platform.worker import WorkerOptions, run_worker
from benchmark_platform_tests.factories import seed_with_model

VERSION = "llama-3.1-8b@fp16"
H100_POOLS = ["gcp-h100-sxm-x1", "gcp-h100-sxm-x8"]


@pytest.fixture
def chatbot_results(engine: Engine):
    """Llama-3.1-8B fp16, served by vLLM on a one-H100 and an eight-H100 node, at every tensor-parallel degree and
    every concurrency of the chatbot sweep, simulated (the matrix's other use cases are dropped to keep it short)."""
    version_id = seed_with_model(engine, VERSION)
    report = queue.populate_matrix(engine, version_id, hardware=H100_POOLS, frameworks=["vllm"])
    assert report.by_tensor_parallel.keys() == {1, 2, 4, 8}
    with engine.begin() as connection:
        # The plain deployments only: the EAGLE-3 twins of the low concurrencies are the serving options' concern.
        connection.execute(
            text("DELETE FROM benchmark_configs WHERE workload_type <> 'chatbot' OR speculative_method <> 'none'")
        )
    summary = run_worker(engine, WorkerOptions(model_version_id=version_id, claim_batch=50))
    assert summary.completed == 5 * 7  # TP 1 on one node, TP 1/2/4/8 on the other; seven concurrencies each
    return load_results_frame(engine, workload_types=["chatbot"])


def test_llama_8b_at_the_chatbot_sla_is_recommended_on_single_gpu_replicas_on_demand(engine, chatbot_results):
    use_case = next(u for u in load_use_cases(engine) if u.subcategory == "chatbot")
    ranking = rank_use_case(chatbot_results, use_case)
    best = recommend(ranking, Constraints(model_versions=(VERSION,)), top=1).configurations.iloc[0]

    assert best["tensor_parallel"] == 1
    assert best["ttft_p90_ms"] <= use_case.sla_ttft_p90_ms and best["tpot_p90_ms"] <= use_case.sla_tpot_p90_ms
    # Production chat is costed on demand ($11.06 per H100-hour on GCP, not $2.99 spot): about $1 per Mtok output.
    assert best["price_basis"] == "on-demand" and best["hourly_price_usd"] == pytest.approx(
        11.06 * best["gpu_count"], 0.01
    )
    assert best["cost_per_million_tokens"] < 1.5
    assert best["simulated"]

    cli = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--top", "1", "--json"])
    assert cli.exit_code == 0, cli.output
    top = json.loads(cli.output)["results"][0]
    assert top["tensor_parallel"] == 1 and top["replicas"] == top["gpu_count"]


def test_a_model_that_fits_one_gpu_never_gains_throughput_per_gpu_from_a_wider_group(chatbot_results):
    node = chatbot_results[chatbot_results["hardware_name"] == "gcp-h100-sxm-x8"]
    per_gpu = node.assign(per_gpu=node["output_tokens_sec_per_gpu"])
    assert (per_gpu["per_gpu"] * 8).round(6).equals((per_gpu["throughput_tokens_sec"]).round(6))
    by_shape = per_gpu.pivot_table(index="batch_size", columns="tensor_parallel", values="per_gpu")
    for concurrency, row in by_shape.iterrows():
        assert row[1] >= row[2] >= row[4] >= row[8], (concurrency, row.to_dict())
    best = by_shape.max()
    assert best[1] >= best[2] >= best[4] >= best[8]


def test_populate_matrix_is_idempotent_with_tensor_parallel(engine):
    version_id = seed_with_model(engine, VERSION)
    first = queue.populate_matrix(engine, version_id, hardware=H100_POOLS)
    again = queue.populate_matrix(engine, version_id, hardware=H100_POOLS)
    assert first.created == first.matrix_size > 0 and first.existing == 0
    assert (again.created, again.existing) == (0, first.matrix_size)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT tensor_parallel, count(*) FROM benchmark_configs GROUP BY 1 ORDER BY 1")
        ).all()
    assert dict(rows) == first.by_tensor_parallel
