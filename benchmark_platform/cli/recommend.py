"""`benchmark-platform recommend`: the best configurations for a use case under the user's constraints."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import click
import pandas as pd

from benchmark_platform import database, queue
from benchmark_platform.cli.app import EXIT_FAILURE, fail, main
from benchmark_platform.cli.params import bounded_int, finite
from benchmark_platform.domain import deployment_shape, serving_options
from benchmark_platform.public_results import PUBLIC_SOURCES
from benchmark_platform.ranking import Constraints, Recommendation, criteria, evidence, rank_use_case, recommend
from benchmark_platform.ranking.predictors import held_out_block, numbers_label
from benchmark_platform.ranking.rankings import (
    configuration_breakdown,
    configuration_summary,
    json_value,
    with_shapes,
)
from benchmark_platform.ranking.store import load_results_frame, load_use_cases, with_predictors

_CONSTRAINT_OPTIONS = {
    "max_ttft_p90_ms": "--max-ttft-p90-ms",
    "max_tpot_p90_ms": "--max-tpot-p90-ms",
    "max_cost": "--max-cost",
    "hardware": "--hardware",
    "model_version": "--model-version",
}
_DEPLOYMENT_COLUMNS = {
    "rank": "rank",
    "score": "score",
    "version_key": "version",
    "hardware_name": "hardware",
    "framework_name": "framework",
    "shape": "shape",
    "replicas": "replicas",
    "batch_size": "conc/replica",
}
_SERVING_COLUMNS = {
    "interactivity_tokens_sec": "tok/s/user",
    "throughput_tokens_sec": "tok/s/node",
    "price_basis": "price",
    "pareto": "pareto",
    "source": "numbers",
}


FEW_MEASURED_CONFIGURATIONS = 10  # below this many ranked configurations, say the answer rests on few measurements


def _few_measurements(recommendation: Recommendation, skipped: dict[str, int]) -> list[str]:
    """Warnings when the recommendation rests on few measurements: few configurations ranked, results measured at a
    single prompt length, or configs the adaptive planner skipped (they were predicted unable to change the top)."""
    ranking = recommendation.ranking
    warnings = []
    ranked = len(ranking.configurations)
    if 0 < ranked < FEW_MEASURED_CONFIGURATIONS:
        warnings.append(f"only {ranked} configurations ranked: the answer rests on few measurements")
    single = recommendation.configurations[recommendation.configurations["n_sequence_lengths"] < 2]
    for _, row in single.iterrows():
        warnings.append(
            f"{row['hardware_name']} / {row['framework_name']} bs{row['batch_size']} rests on one result "
            f"(one prompt length, {row['min_sequence_length']} tokens)"
        )
    if skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in skipped.items())
        warnings.append(
            f"{sum(skipped.values())} configs of this use case were skipped by the adaptive planner ({reasons}): "
            "predicted, not measured, to stay out of the top; `benchmark-platform requeue VERSION` measures them"
        )
    return warnings


def _payload(recommendation: Recommendation) -> dict[str, Any]:
    ranking = recommendation.ranking
    results = []
    for _, row in recommendation.configurations.iterrows():
        results.append(
            {
                "rank": int(row["rank"]),
                "score": float(row["score"]),
                "pareto": bool(row["pareto"]),
                "simulated": bool(row["simulated"]),
                "predictor": row["predictor"],
                "held_out_error": list(row["held_out"]),
                "model_name": row["model_name"],
                **configuration_summary(row),
                "criteria": configuration_breakdown(row, ranking.weights, ranking.use_case.registry),
                "accuracy_imputed": bool(row["accuracy_imputed"]),
                "why": row["why"],
            }
        )
    return {
        "use_case": ranking.use_case.subcategory,
        "sla": {"ttft_p90_ms": ranking.use_case.sla_ttft_p90_ms, "tpot_p90_ms": ranking.use_case.sla_tpot_p90_ms},
        "weights": ranking.weights,
        "price_basis": ranking.use_case.price_basis,
        "cost_unit": ranking.use_case.cost_unit,
        "costs": ranking.use_case.cost_statement,
        "considered": ranking.considered,
        "excluded": ranking.excluded,
        "ranked": len(ranking.configurations),
        "constraints": recommendation.constraints.model_dump(mode="json", exclude_defaults=True),
        "matching": recommendation.matching,
        "removed_by_constraint": recommendation.removed_by,
        "most_restrictive_constraint": recommendation.most_restrictive,
        "simulated": bool(recommendation.configurations["simulated"].any()),
        "notes": list(ranking.notes),
        "results": results,
    }


def _table(configurations: pd.DataFrame, registry: Mapping[str, criteria.Criterion]) -> str:
    """The deployment, every criterion as the use case ranks on it (its short label and format, cost in the use
    case's unit), then what serving it means."""
    headers = _DEPLOYMENT_COLUMNS | {criterion.column: criterion.short_label for criterion in registry.values()}
    headers |= {column: label for column, label in _SERVING_COLUMNS.items() if column not in headers}
    predictors = configurations["predictor"] if "predictor" in configurations else [None] * len(configurations)
    numbers = [numbers_label(s, p) for s, p in zip(configurations["source"], predictors, strict=True)]
    table = with_shapes(configurations.assign(source=numbers))[list(headers)].rename(columns=headers)
    formats = {
        "score": "{:.3f}".format,
        **{c.short_label: f"{{:{c.format.replace(',', '')}}}".format for c in registry.values()},
        "tok/s/user": "{:.1f}".format,
        "tok/s/node": "{:.0f}".format,
        "pareto": lambda flag: "yes" if flag else "no",
        "numbers": lambda text: "SIMULATED" + text.removeprefix("simulated") if text.startswith("simulated") else text,
    }
    return table.to_string(index=False, formatters=formats, na_rep="-")


def _print_text(recommendation: Recommendation) -> None:
    ranking = recommendation.ranking
    use_case = ranking.use_case
    excluded = ranking.excluded
    sla = ", ".join(
        f"{label} <= {value:g} ms"
        for label, value in (("TTFT p90", use_case.sla_ttft_p90_ms), ("TPOT p90", use_case.sla_tpot_p90_ms))
        if value is not None
    )
    click.echo(
        f"use case {use_case.subcategory}: {len(ranking.configurations)} of {ranking.considered} configurations "
        f"ranked (SLA {sla or 'none'}: {excluded['sla_total']} excluded; {excluded['incomplete']} incomplete; "
        f"{excluded['no_price']} without a {use_case.price_basis} price)"
    )
    click.echo(f"costs: {use_case.cost_statement}")
    click.echo(
        "weights: "
        + ", ".join(f"{criteria.CRITERIA[key].label} {weight:.2f}" for key, weight in ranking.weights.items())
    )
    for note in ranking.notes:
        click.echo(f"note: {note}")
    constraints = recommendation.constraints.model_dump(exclude_defaults=True)
    if constraints:
        shown = ", ".join(f"{key}={value}" for key, value in constraints.items())
        click.echo(f"constraints: {shown} -> {recommendation.matching} of {len(ranking.configurations)} match")
    if recommendation.configurations.empty:
        return
    click.echo("")
    click.echo(_table(recommendation.configurations, use_case.registry))
    click.echo("")
    for position, (_, row) in enumerate(recommendation.configurations.iterrows(), start=1):
        click.echo(
            f"{position}. {row['version_key']} on {row['hardware_name']} / {row['framework_name']}, "
            f"{deployment_shape(row['tensor_parallel'], serving_options(row), row['replicas'])}, "
            f"concurrency {row['batch_size']}: {row['why']}"
        )
    simulated = int(recommendation.configurations["simulated"].sum())
    if simulated:
        click.echo(
            f"\nWARNING: {simulated} of these {len(recommendation.configurations)} results are simulated "
            "(runner=simulated: simulator estimates, not measurements; 'numbers' names the predictor)."
        )
        for line in held_out_block(recommendation.configurations["held_out"]):
            click.echo(line)


def _nothing_found(recommendation: Recommendation) -> str:
    ranking = recommendation.ranking
    if ranking.considered == 0:
        return f"no benchmark results for use case {ranking.use_case.subcategory} yet"
    if ranking.configurations.empty:
        return (
            f"none of the {ranking.considered} configurations of {ranking.use_case.subcategory} has complete "
            f"metrics, a {ranking.use_case.price_basis} price and meets its SLA "
            f"(excluded: {json.dumps(ranking.excluded)})"
        )
    culprit = recommendation.most_restrictive
    removed = ", ".join(
        f"{_CONSTRAINT_OPTIONS[name]} removes {count}" for name, count in recommendation.removed_by.items()
    )
    return (
        f"no configuration meets all the constraints ({removed} of {len(ranking.configurations)}); "
        f"the most restrictive is {_CONSTRAINT_OPTIONS[culprit] if culprit else 'their combination'}"
    )


@main.command("recommend")
@click.option("--use-case", "use_case", required=True, help="Use case key (use_case_taxonomy.subcategory).")
@click.option("--max-ttft-p90-ms", type=finite(0, min_open=True), help="Highest acceptable TTFT p90.")
@click.option("--max-tpot-p90-ms", type=finite(0, min_open=True), help="Highest acceptable TPOT p90.")
@click.option(
    "--max-cost",
    "--max-cost-per-mtok",
    "max_cost",
    type=finite(0, min_open=True),
    help="Highest acceptable cost, in the use case's cost unit (USD per million output or total tokens, or per "
    "1,000 requests: the output's 'costs:' line names it).",
)
@click.option(
    "--price",
    "price_basis",
    type=click.Choice(criteria.PRICE_BASES),
    help="Price basis of every cost (default: the use case's own, on-demand for interactive use cases and spot for "
    "offline ones). Deployments whose hardware has no price on it are left out, never costed on another basis.",
)
@click.option(
    "--hardware",
    "hardware",
    multiple=True,
    help="Only hardware whose name or GPU type contains this (case-insensitive; repeatable, any may match).",
)
@click.option("--model-version", "model_versions", multiple=True, help="Only this version key (repeatable).")
@click.option(
    "--measured-only", is_flag=True, help="Rank on measured results only (ours and imported), never on estimates."
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["measured", "simulated", *PUBLIC_SOURCES]),
    help="Rank on results of this source only (repeatable): measured = our runs and peer tools' imports.",
)
@click.option("--top", default=5, show_default=True, type=bounded_int(), help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
def recommend_command(
    use_case: str,
    max_ttft_p90_ms: float | None,
    max_tpot_p90_ms: float | None,
    max_cost: float | None,
    price_basis: str | None,
    hardware: tuple[str, ...],
    model_versions: tuple[str, ...],
    measured_only: bool,
    sources: tuple[str, ...],
    top: int,
    as_json: bool,
) -> None:
    """Print the best configurations for a use case that meet the given constraints, and why each ranks where it does.

    Deployments (model version x hardware x framework x tensor-parallel degree x concurrency per replica) are
    ranked by TOPSIS over the use case's weighted criteria (TTFT p90, TPOT p90, throughput per GPU, cost in the use
    case's unit and on its price basis, accuracy) on its representative sequence lengths, after dropping those that
    break its SLA; the constraints then filter that ranking. A measured result (ours or imported) takes the place of a
    simulated one of the same deployment; --measured-only and --source choose the evidence and rank again on it. Exits
    1 when nothing meets the constraints (saying which removed the most), 2 for an unknown use case.

    Example: benchmark-platform recommend --use-case chatbot --max-ttft-p90-ms 300 --hardware H100 --top 5
    """
    engine = database.get_engine()
    use_cases = {criteria.subcategory: criteria for criteria in load_use_cases(engine)}
    if use_case not in use_cases:
        known = ", ".join(sorted(use_cases)) or "none (run `benchmark-platform seed` first)"
        fail(f"unknown use case {use_case!r}; known use cases: {known}")
    constraints = Constraints(
        max_ttft_p90_ms=max_ttft_p90_ms,
        max_tpot_p90_ms=max_tpot_p90_ms,
        max_cost=max_cost,
        hardware=hardware,
        model_versions=model_versions,
    )
    criteria_of_use_case = use_cases[use_case]
    if price_basis is not None:
        criteria_of_use_case = criteria_of_use_case.model_copy(update={"price_basis": price_basis})
    results = evidence(load_results_frame(engine, workload_types=[use_case]), sources, measured_only)
    ranking = with_predictors(engine, rank_use_case(results, criteria_of_use_case))
    recommendation = recommend(ranking, constraints, top)
    found = not recommendation.configurations.empty
    warnings = _few_measurements(recommendation, queue.skipped_for_workload(engine, use_case))
    if as_json:
        payload = _payload(recommendation) | {"few_measurements": warnings}
        if not found:
            payload["message"] = _nothing_found(recommendation)
        click.echo(json.dumps(payload, indent=2, default=json_value))
    else:
        _print_text(recommendation)
        for warning in warnings:
            click.echo(f"note: {warning}")
        if not found:
            click.echo(_nothing_found(recommendation))
    if not found:
        sys.exit(EXIT_FAILURE)
