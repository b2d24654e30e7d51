"""Recommendations: constraints over a use case's ranking, pure and through the CLI on a real database."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import Engine

from benchmark_platform.cli import main
from benchmark_platform.ranking import Constraints, rank_use_case, recommend
from benchmark_platform.ranking.predictors import DEPLOYMENT_KEY, numbers_label, predictor_label, predictor_labels
from benchmark_platform.runners.simulated.step_costs import MOE_LAYERS_ONLY
from benchmark_platform_tests.factories import chatbot, insert_results, insert_use_case, result_row, results_frame

HELD_OUT = {
    metric: {"median_abs_error": size, "median_error": -size, "rows": 5, "scope": "A100-80GB x vllm-v1, dense, kernels"}
    for metric, size in (("output_throughput", 0.08), ("ttft", 0.31), ("tpot", 0.06))
}
KERNELS = {"backend": "kernels", "version": "0.12.0", "data_version": "h100_sxm/vllm/0.12.0", "in_measured_range": True,
           "requested": "auto", "fallback": None, "held_out_error": HELD_OUT}  # fmt: skip
ROWS = [
    result_row(
        model="llama",
        hardware="aws-h100-sxm-x1",
        gpu_type="H100-SXM",
        cost_per_hour_usd=6.0,
        ttft_p90_ms=60.0,
        tpot_p90_ms=10.0,
        throughput_tokens_sec=3000.0,
    ),
    result_row(
        model="llama",
        hardware="gcp-l4-x1",
        gpu_type="L4",
        cost_per_hour_usd=0.3,
        ttft_p90_ms=350.0,
        tpot_p90_ms=40.0,
        throughput_tokens_sec=400.0,
    ),
    result_row(
        model="qwen",
        hardware="azure-a100-x1",
        gpu_type="A100-80GB",
        cost_per_hour_usd=3.5,
        spot_available=True,
        spot_cost_per_hour_usd=1.2,
        ttft_p90_ms=120.0,
        tpot_p90_ms=18.0,
        throughput_tokens_sec=1500.0,
        runner="simulated",
        detailed_metrics={"predictor": KERNELS},
    ),
    result_row(model="mistral", hardware="gcp-l4-x1", gpu_type="L4", ttft_p90_ms=800.0),  # breaks the SLA
]


@pytest.fixture
def ranking():
    return rank_use_case(results_frame(*ROWS), chatbot())


def test_constraints_filter_but_keep_use_case_wide_ranks(ranking) -> None:
    recommendation = recommend(ranking, Constraints(max_ttft_p90_ms=200, hardware=("h100", "l4")), top=5)

    assert recommendation.configurations["hardware_name"].tolist() == ["aws-h100-sxm-x1"]
    assert recommendation.matching == 1
    assert recommendation.configurations["rank"].tolist() == [1]  # its rank in the whole use case
    assert recommendation.removed_by == {"max_ttft_p90_ms": 1, "hardware": 1}


def test_top_limits_and_orders_by_score(ranking) -> None:
    everything = recommend(ranking, Constraints(), top=5)
    assert everything.configurations["rank"].tolist() == [1, 2, 3]
    assert recommend(ranking, Constraints(), top=2).configurations["rank"].tolist() == [1, 2]
    assert everything.removed_by == {} and everything.most_restrictive is None


def test_hardware_matches_name_or_gpu_type_case_insensitively(ranking) -> None:
    by_gpu_type = recommend(ranking, Constraints(hardware=("h100-sxm",)))
    by_name = recommend(ranking, Constraints(hardware=("AWS",)))
    assert by_gpu_type.configurations["hardware_name"].tolist() == ["aws-h100-sxm-x1"]
    assert by_name.configurations["hardware_name"].tolist() == ["aws-h100-sxm-x1"]


def test_nothing_matching_names_the_most_restrictive_constraint(ranking) -> None:
    constraints = Constraints(max_cost=0.01, max_ttft_p90_ms=100, model_versions=("qwen@fp16",))
    recommendation = recommend(ranking, constraints)

    assert recommendation.configurations.empty and recommendation.matching == 0
    assert recommendation.removed_by == {"max_ttft_p90_ms": 2, "max_cost": 3, "model_version": 2}
    assert recommendation.most_restrictive == "max_cost"


def test_why_explains_strengths_weaknesses_and_labels(ranking) -> None:
    why = recommend(ranking, Constraints()).configurations.set_index("hardware_name")["why"]

    assert why["aws-h100-sxm-x1"].startswith("rank 1 of 3")
    assert why["azure-a100-x1"].startswith("rank 2 of 3")
    assert "best in use case on TTFT p90, TPOT p90, throughput" in why["aws-h100-sxm-x1"]
    assert "gives up most on cost ($ per million output tokens, on-demand)" in why["aws-h100-sxm-x1"]
    assert "Pareto-optimal" in why["gcp-l4-x1"]
    assert "SIMULATED" in why["azure-a100-x1"] and "SIMULATED" not in why["gcp-l4-x1"]


def test_bad_constraints_are_rejected(ranking) -> None:
    with pytest.raises(ValidationError):
        Constraints(max_ttft_p90_ms=-5)
    with pytest.raises(ValueError, match="top must be at least 1"):
        recommend(ranking, Constraints(), top=0)


def test_predictor_labels_are_short_and_join_what_a_deployments_buckets_used() -> None:
    roofline = {"backend": "roofline", "version": "3", "in_measured_range": None, "fallback": None}
    assert predictor_label(roofline) == "roofline v3"
    assert (
        predictor_label(KERNELS | {"in_measured_range": False})
        == "kernels (aiconfigurator 0.12.0), outside measured range"
    )
    moe = KERNELS | {"data_version": f"h200_sxm/vllm/0.24.0 {MOE_LAYERS_ONLY}"}
    assert predictor_label(moe) == "MoE kernels (aiconfigurator 0.12.0) + roofline"
    configurations = results_frame(ROWS[0], ROWS[2])
    key = configurations.loc[1, list(DEPLOYMENT_KEY)].to_dict()
    predictors = pd.DataFrame([key | {"predictor": KERNELS}, key | {"predictor": roofline}])
    labels = predictor_labels(configurations, predictors)
    assert labels.tolist() == [None, "kernels (aiconfigurator 0.12.0) + roofline v3"]
    assert (
        numbers_label("simulated", labels[1]).startswith("simulated · kernels")
        and numbers_label("measured", None) == "measured"
    )


# --- CLI --------------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    insert_use_case(engine, "chatbot", sla={"ttft_p90_ms": 500, "tpot_p90_ms": 50})
    insert_use_case(engine, "summarization", weights={"throughput": 0.6, "cost_per_million_tokens": 0.4})
    insert_results(engine, ROWS)
    return engine


def test_cli_prints_the_best_configurations_and_why(seeded: Engine) -> None:
    result = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--top", "2"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "use case chatbot: 3 of 4 configurations ranked" in lines[0] and "1 excluded" in lines[0]
    assert "note: accuracy dropped" in result.output
    assert "1. llama@fp16 on aws-h100-sxm-x1 / vllm, TP 1 x 1 replica, concurrency 8: rank 1 of 3" in result.output
    assert "2. qwen@fp16 on azure-a100-x1 / vllm, TP 1 x 1 replica, concurrency 8: rank 2 of 3" in result.output
    assert "SIMULATED" in result.output and "WARNING: 1 of these 2 results are simulated" in result.output


def test_cli_names_the_predictor_behind_each_simulated_deployment(seeded: Engine) -> None:
    result = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--top", "2"])
    [qwen] = [line for line in result.output.splitlines() if line.lstrip().startswith("2 ")]
    assert "SIMULATED · kernels (aiconfigurator 0.12.0)" in qwen
    [llama] = [line for line in result.output.splitlines() if line.lstrip().startswith("1 ")]
    assert "measured" in llama and "kernels" not in llama

    # and, once under the warning, how far that predictor was off on the validation rows nearest the deployment
    stated = (
        "kernels (aiconfigurator 0.12.0): median |error| throughput 8 % (mostly low), TTFT 31 % (mostly low), TPOT 6 % "
        "(mostly low) on 5 / 5 / 5 validation rows of A100-80GB x vllm-v1, dense, kernels"
    )
    lines = result.output.splitlines()
    [heading] = [n for n, line in enumerate(lines) if line.startswith("Held-out error of the predictors above (")]
    assert lines[heading - 1].startswith("WARNING: 1 of these 2 results are simulated")
    assert lines[heading + 1] == f"  {stated}" and lines[heading + 2].startswith("note: ")

    payload = json.loads(CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--json"]).output)
    assert [(row["version_key"], row["predictor"], row["held_out_error"]) for row in payload["results"]] == [
        ("llama@fp16", None, []),
        ("qwen@fp16", "kernels (aiconfigurator 0.12.0)", [stated]),
        ("llama@fp16", None, []),
    ]


def test_a_measured_deployment_states_no_held_out_error_of_the_simulated_results_kept_beside_it(engine: Engine) -> None:
    """A measured result takes the place of the simulated one of its deployment, which stays beside it: the answer's
    numbers are measured, so neither a predictor nor its held-out error is stated for them."""
    insert_use_case(engine, "chatbot", sla={"ttft_p90_ms": 500, "tpot_p90_ms": 50})
    measured = ROWS[0]
    beside = measured | {"runner": "simulated", "ttft_p90_ms": 55.0, "detailed_metrics": {"predictor": KERNELS}}
    insert_results(engine, [measured, beside | {"result_id": uuid.uuid4()}])

    result = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot"])
    assert result.exit_code == 0, result.output
    assert "measured" in result.output and "Held-out error" not in result.output
    [only] = json.loads(CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--json"]).output)["results"]
    assert only["simulated"] is False and only["predictor"] is None and only["held_out_error"] == []


def test_cli_json_carries_criteria_and_the_simulated_flag(seeded: Engine) -> None:
    command = ["recommend", "--use-case", "chatbot", "--hardware", "A100", "--json"]
    result = CliRunner().invoke(main, [*command, "--price", "spot"])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["simulated"] is True and payload["matching"] == 1
    assert payload["constraints"] == {"hardware": ["A100"]}
    assert (payload["price_basis"], payload["cost_unit"]) == ("spot", "output-tokens")
    assert payload["costs"] == "$ per million output tokens, spot prices"
    [qwen] = payload["results"]
    assert qwen["version_key"] == "qwen@fp16" and qwen["simulated"] is True and qwen["price_basis"] == "spot"
    assert qwen["criteria"]["cost_per_million_tokens"]["value"] == pytest.approx(1.2 / (1500 * 3600) * 1e6)
    assert qwen["criteria"]["cost_per_million_tokens"]["unit"] == "$ per million output tokens"
    # Without --price, the use case's own basis (on demand here): the same deployment at its on-demand price.
    [on_demand] = json.loads(CliRunner().invoke(main, command).output)["results"]
    assert on_demand["price_basis"] == "on-demand" and on_demand["hourly_price_usd"] == 3.5
    assert on_demand["criteria"]["cost_per_million_tokens"]["value"] == pytest.approx(3.5 / (1500 * 3600) * 1e6)
    assert set(qwen["criteria"]) == {"ttft_p90", "tpot_p90", "throughput", "cost_per_million_tokens"}


def test_a_price_basis_without_prices_leaves_every_deployment_out_and_says_so(seeded: Engine) -> None:
    """No hardware here has a committed-use price: on the reserved basis nothing is costed on another basis instead."""
    result = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--price", "reserved", "--json"])

    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["results"] == [] and payload["excluded"]["no_price"] == 4 and payload["price_basis"] == "reserved"
    assert "4 deployment(s) left out: their hardware has no reserved price" in payload["notes"]
    assert "a reserved price" in payload["message"]

    bad = CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--price", "preemptible"])
    assert bad.exit_code == 2 and "--price" in bad.output


def test_cli_says_when_nothing_meets_the_constraints(seeded: Engine) -> None:
    result = CliRunner().invoke(
        main, ["recommend", "--use-case", "chatbot", "--max-cost-per-mtok", "0.01", "--max-ttft-p90-ms", "100"]
    )

    assert result.exit_code == 1
    assert "no configuration meets all the constraints" in result.output
    assert "the most restrictive is --max-cost" in result.output  # --max-cost-per-mtok is its older name

    empty = CliRunner().invoke(main, ["recommend", "--use-case", "summarization", "--json"])
    assert empty.exit_code == 1
    assert json.loads(empty.output)["message"] == "no benchmark results for use case summarization yet"


def test_cli_rejects_unknown_use_cases_and_bad_options(seeded: Engine) -> None:
    unknown = CliRunner().invoke(main, ["recommend", "--use-case", "poetry"])
    assert unknown.exit_code == 2
    assert "unknown use case 'poetry'; known use cases: chatbot, summarization" in unknown.output

    assert CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--top", "0"]).exit_code == 2
    assert CliRunner().invoke(main, ["recommend", "--use-case", "chatbot", "--max-ttft-p90-ms", "-1"]).exit_code == 2
