"""The HTML report: pure rendering rules on small frames, then a report written from a real database and opened in
headless Chromium, which must draw every chart (a screenshot lands in test-artifacts/report.png)."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, func, insert, select, update

from benchmark_platform import catalogs, manifests
from benchmark_platform.cli import main
from benchmark_platform.demo import print_stored_rankings
from benchmark_platform.domain import PLAIN_DEPLOYMENT
from benchmark_platform.orm import BenchmarkResult, DeploymentRanking, HardwareConfig, InferenceFramework
from benchmark_platform.ranking import RESULT_FRAME_COLUMNS, UseCaseCriteria, UseCaseRanking, rank_use_cases
from benchmark_platform.ranking.frames import METRIC_COLUMNS
from benchmark_platform.ranking.store import refresh_rankings
from benchmark_platform.report import render_report, trade_off_front, write_report
from benchmark_platform.report.html import pruning_note
from benchmark_platform_tests.factories import system_program

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HARDWARE_SPEED = {"aws-l4-x1": 1.0, "gcp-a100-80gb-x1": 3.5, "gcp-h100-sxm-x1": 6.0, "aws-h100-sxm-x8": 30.0}
VERSION_SPEED = {"llama-3.1-8b@int4-awq": 1.6, "llama-3.1-8b@fp16": 1.0, "qwen2.5-7b@bf16": 1.05}
# sglang's numbers play the simulated ones: the report must tell them apart from vllm's measured ones.
FRAMEWORK_SPEED = {"vllm": (1.0, "measured"), "sglang": (1.08, "simulated")}
PROMPT_TOKENS = {"chatbot": 512, "summarization": 2048}
# Results are recorded at each representative sequence-length bucket of the use case (what the ranking reads).
BUCKETS = {spec.subcategory: spec.characteristics.sequence_lengths for spec in catalogs.load_use_cases()}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
)


def measurement(
    version_key: str,
    hardware: str,
    framework: str,
    workload: str,
    batch_size: int,
    sequence_length: int | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """One benchmark result by names. Numbers follow a simple serving shape (throughput grows sub-linearly with
    batch size, time to first token with batch and prompt) unless given."""
    fw_speed, runner = FRAMEWORK_SPEED[framework]
    speed = HARDWARE_SPEED[hardware] * VERSION_SPEED[version_key] * fw_speed
    throughput = 60 * speed * batch_size**0.85
    ttft_p90 = 30 + 25 * batch_size * PROMPT_TOKENS[workload] / 512 / speed
    tpot_p90 = 1000 * batch_size / throughput
    values = {
        "ttft_p50_ms": 0.8 * ttft_p90,
        "ttft_p90_ms": ttft_p90,
        "ttft_p99_ms": 1.3 * ttft_p90,
        "tpot_p50_ms": 0.8 * tpot_p90,
        "tpot_p90_ms": tpot_p90,
        "tpot_p99_ms": 1.3 * tpot_p90,
        "throughput_tokens_sec": throughput,
        "total_tokens_sec": throughput * (PROMPT_TOKENS[workload] + 256) / 256,  # what prompt-heavy use cases cost
        "rps_sustained": throughput / 256,
        **metrics,
    }
    return {
        "version_key": version_key,
        "hardware_name": hardware,
        "framework_name": framework,
        "workload_type": workload,
        "batch_size": batch_size,
        "sequence_length": sequence_length or BUCKETS[workload][0],
        "tensor_parallel": 1,
        **dataclasses.asdict(PLAIN_DEPLOYMENT),
        "runner": runner,
        **{column: values.get(column, np.nan) for column in METRIC_COLUMNS},
    }


def measurement_grid(workloads: tuple[str, ...] = ("chatbot", "summarization")) -> list[dict[str, Any]]:
    return [
        measurement(version, hardware, framework, workload, batch, bucket)
        for workload in workloads
        for bucket in BUCKETS[workload]
        for version in VERSION_SPEED
        for hardware in HARDWARE_SPEED
        for framework in FRAMEWORK_SPEED
        for batch in (1, 8, 32)
    ]


def _id(kind: str, name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"report-test/{kind}/{name}")


def results_frame(measurements: list[dict[str, Any]]) -> pd.DataFrame:
    """The frame load_results_frame would build for these measurements, with prices from the hardware catalog."""
    hardware = {spec.name: spec for spec in catalogs.load_hardware()}
    rows = []
    for row in measurements:
        spec = hardware[row["hardware_name"]]
        model_name = row["version_key"].partition("@")[0]
        rows.append(
            {
                **row,
                "result_id": uuid.uuid4(),
                "source": row["runner"],
                "benchmark_date": pd.Timestamp("2026-11-20").date(),
                "created_at": pd.Timestamp("2026-11-20T12:00Z"),
                "model_id": _id("model", model_name),
                "model_name": model_name,
                "model_version_id": _id("version", row["version_key"]),
                "hardware_config_id": _id("hardware", spec.name),
                "gpu_type": spec.gpu_type,
                "gpu_count": spec.gpu_count,
                "cost_per_hour_usd": spec.cost_per_hour_usd,
                "spot_cost_per_hour_usd": spec.spot_cost_per_hour_usd,
                "spot_available": spec.spot_available,
                "framework_id": _id("framework", row["framework_name"]),
            }
        )
    return pd.DataFrame(rows, columns=list(RESULT_FRAME_COLUMNS)).astype({column: float for column in METRIC_COLUMNS})


def catalog_use_cases(*names: str) -> list[UseCaseCriteria]:
    specs = {spec.subcategory: spec for spec in catalogs.load_use_cases()}
    return [
        UseCaseCriteria.from_taxonomy(
            subcategory=name,
            category=specs[name].category,
            characteristics=specs[name].characteristics.model_dump(),
            default_weights=specs[name].default_weights.model_dump(),
        )
        for name in names
    ]


def rankings_of(measurements: list[dict[str, Any]], *use_cases: str) -> list[UseCaseRanking]:
    """The use cases' rankings of these measurements, as the rankings step would store them."""
    return list(rank_use_cases(results_frame(measurements), catalog_use_cases(*use_cases)).values())


def meets_sla(row: dict[str, Any]) -> bool:
    """Whether the row's configuration is ranked: counted once, at its use case's first representative bucket."""
    if row["sequence_length"] != BUCKETS[row["workload_type"]][0]:
        return False
    sla = {spec.subcategory: spec.characteristics.sla for spec in catalogs.load_use_cases()}[row["workload_type"]]
    return row["ttft_p90_ms"] <= sla.ttft_p90_ms and row["tpot_p90_ms"] <= sla.tpot_p90_ms


def priced(row: dict[str, Any]) -> bool:
    """Whether the row's hardware has a price on its use case's basis (on spot: only an instance sold on spot)."""
    basis = {spec.subcategory: spec.characteristics.price_basis for spec in catalogs.load_use_cases()}[
        row["workload_type"]
    ]
    spec = {spec.name: spec for spec in catalogs.load_hardware()}[row["hardware_name"]]
    return basis != "spot" or (spec.spot_available and spec.spot_cost_per_hour_usd is not None)


def insert_results(engine: Engine, measurements: list[dict[str, Any]]) -> None:
    """Seed the catalogs, register the example manifests the measurements name, and insert them as results."""
    catalogs.seed(engine)
    for model_name in sorted({row["version_key"].partition("@")[0] for row in measurements}):
        manifests.register_model(
            engine, manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{model_name}.yaml")
        )
    with engine.begin() as connection:
        versions = manifests.list_version_keys(connection)
        hardware = dict(connection.execute(select(HardwareConfig.name, HardwareConfig.id)).all())
        frameworks = dict(connection.execute(select(InferenceFramework.name, InferenceFramework.id)).all())
        connection.execute(
            insert(BenchmarkResult),
            [
                {
                    "model_version_id": versions[row["version_key"]],
                    "hardware_config_id": hardware[row["hardware_name"]],
                    "framework_id": frameworks[row["framework_name"]],
                    "workload_type": row["workload_type"],
                    "batch_size": row["batch_size"],
                    "sequence_length": row["sequence_length"],
                    "tensor_parallel": row["tensor_parallel"],
                    "runner": row["runner"],
                    "detailed_metrics": row.get("detailed_metrics", {}),
                    **{column: None if np.isnan(row[column]) else row[column] for column in METRIC_COLUMNS},
                }
                for row in measurements
            ],
        )


# --- pure rendering -----------------------------------------------------------------------------------------------


def test_trade_off_front_keeps_the_non_dominated_points_in_latency_order() -> None:
    latency = np.array([30.0, 10.0, 20.0, 25.0, 10.0])
    throughput = np.array([900.0, 100.0, 500.0, 400.0, 50.0])
    xs, ys = trade_off_front(latency, throughput, higher_y_better=True)
    assert xs.tolist() == [10.0, 20.0, 30.0]
    assert ys.tolist() == [100.0, 500.0, 900.0]
    cost = np.array([5.0, 9.0, 6.0, 8.0, 10.0])
    xs, ys = trade_off_front(latency, cost, higher_y_better=False)
    assert xs.tolist() == [10.0, 20.0, 30.0] and ys.tolist() == [9.0, 6.0, 5.0]


def test_simulated_numbers_get_banners_and_tags_and_measured_ones_do_not() -> None:
    measured_only = [row for row in measurement_grid(("chatbot",)) if row["runner"] == "measured"]
    page = render_report(rankings_of(measured_only, "chatbot"))
    assert 'class="banner-simulated"' not in page and 'class="tag-simulated"' not in page

    mixed = measurement_grid(("chatbot",))
    page = render_report(rankings_of(mixed, "chatbot"), top=100)
    simulated = sum(1 for row in mixed if row["runner"] == "simulated" and meets_sla(row))
    ranked = sum(1 for row in mixed if meets_sla(row))
    assert f"{simulated} of {ranked} configurations in this report are roofline estimates" in page
    assert f"{simulated} of {ranked} configurations ranked for this use case" in page
    assert page.count('<tr class="simulated">') == simulated
    assert page.count('<span class="tag-simulated">SIMULATED</span>') == simulated


def test_model_version_scope_compares_its_hardware_and_names_those_failing_the_sla() -> None:
    version = "llama-3.1-8b@fp16"
    # On the L4 every batch size breaks the chatbot's 500 ms TTFT p90.
    rows = [
        measurement(version, hardware, "vllm", "chatbot", batch, **({"ttft_p90_ms": 900.0} if slow else {}))
        for hardware, slow in (("aws-l4-x1", True), ("gcp-h100-sxm-x1", False), ("gcp-a100-80gb-x1", False))
        for batch in (1, 8)
    ] + [measurement("qwen2.5-7b@bf16", "aws-h100-sxm-x8", "vllm", "chatbot", 8)]
    for row in rows:
        row["ttft_p99_ms"] = max(row["ttft_p99_ms"], row["ttft_p90_ms"])
    page = render_report(rankings_of(rows, "chatbot", "summarization"), model_version=version)
    assert (
        f"Scope: model version {version}; 6 deployments considered over the use cases (6 measured, 0 simulated)" in page
    )
    assert "qwen2.5-7b" not in page
    assert f"{version} across hardware and frameworks" in page
    assert "Benchmarked hardware with no configuration meeting the SLA or complete: aws-l4-x1." in page
    assert "4 of 6 configurations ranked; excluded: 2 breaking the SLA, 0 incomplete, 0 without a" in page
    assert "Nothing to rank: no benchmark results." in page  # summarization was asked for but has none


def test_the_pruning_note_sums_what_the_rankings_stored_over_the_scope() -> None:
    """The note is drawn from ``UseCaseRanking.pruning`` alone: summed over the use cases shown, for every version or
    only the one in scope, and absent when nothing in scope was skipped."""
    chatbot, summarization = rankings_of(measurement_grid(), "chatbot", "summarization")

    def skipped(dominated: int, saved: float, to_run: float) -> dict[str, Any]:
        return {"skipped_by_reason": {"dominated": dominated}, "gpu_hours_saved": saved, "gpu_hours_to_run": to_run}

    chatbot = replace(chatbot, pruning={"top_k": 5, "versions": {"a@1": skipped(3, 10.0, 5.0)}})
    summarization = replace(
        summarization, pruning={"top_k": 5, "versions": {"a@1": skipped(2, 4.0, 1.0), "b@1": skipped(7, 6.0, 2.0)}}
    )
    both = pruning_note([chatbot, summarization], None)
    assert "skipped 12 configs" in both and "top 5" in both and "(dominated 12)" in both
    assert "saving about 20 of 28 GPU-hours" in both
    assert "skipped 5 configs" in pruning_note([chatbot, summarization], "a@1")
    assert pruning_note([chatbot], "b@1") == "" and pruning_note(rankings_of(measurement_grid(), "chatbot"), None) == ""
    assert html.escape(both) in render_report([chatbot, summarization])


def test_render_refuses_a_top_below_one() -> None:
    with pytest.raises(ValueError, match="top must be at least 1"):
        render_report(rankings_of(measurement_grid(("chatbot",)), "chatbot"), top=0)


# --- the written report in a browser --------------------------------------------------------------------------------


def chromium(executable: str, *arguments: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def figure_fragments(dom: str) -> dict[str, str]:
    """Each plotly figure's id -> its part of the rendered DOM (figures follow each other, never nest)."""
    starts = [
        (match.start(), match.group(1)) for match in re.finditer(r'<div id="([^"]+)" class="plotly-graph-div', dom)
    ]
    ends = [start for start, _ in starts[1:]] + [len(dom)]
    return {div_id: dom[start:end] for (start, div_id), end in zip(starts, ends, strict=True)}


@pytest.mark.slow
def test_written_report_draws_every_chart_in_headless_chromium(engine: Engine, tmp_path: Path) -> None:
    browser = system_program("chromium", "chromium", "the report's charts cannot be checked in a browser")
    grid = measurement_grid()
    ranked_rows = [row for row in grid if meets_sla(row) and priced(row)]
    expected = {
        workload: sum(1 for row in ranked_rows if row["workload_type"] == workload) for workload in PROMPT_TOKENS
    }
    expected_simulated = sum(1 for row in ranked_rows if row["runner"] == "simulated")
    insert_results(engine, grid)
    refresh_rankings(engine)

    (tmp_path / "out").mkdir()  # an output's folder must exist (files.write_output creates none)
    summary = write_report(engine, tmp_path / "out" / "report.html")

    assert summary.use_cases == ["chatbot", "summarization"]
    assert summary.configurations == sum(expected.values()) and 0 < summary.simulated == expected_simulated
    page = summary.path.read_text()
    assert summary.bytes == len(page.encode())
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="?(https?:)?//', page), "the report must not fetch"

    dom = chromium(browser, "--dump-dom", summary.path.as_uri(), profile=tmp_path / "profile").stdout
    figures = figure_fragments(dom)
    for index, workload in enumerate(PROMPT_TOKENS):
        ranked = [row for row in ranked_rows if row["workload_type"] == workload]
        series = len({(row["hardware_name"], row["framework_name"]) for row in ranked})
        for name in ("throughput-per-GPU", "cost"):
            figure = figures[f"uc{index}-{workload}-{name}-vs-interactivity"]
            # per hardware × framework its deployments and its own front line, then the use case's front
            assert figure.count('<g class="trace scatter') == 2 * series + 1
            assert len(re.findall(r'<path class="point[ "]', figure)) >= expected[workload]
        for name in ("throughput", "cost"):
            figure = figures[f"uc{index}-{workload}-{name}-vs-latency"]
            # measured points, simulated points, and the Pareto front line
            assert figure.count('<g class="trace scatter') == 3
            assert len(re.findall(r'<path class="point[ "]', figure)) == expected[workload]
        for comparison in ("hardware", "framework"):
            bars = figures[f"uc{index}-{workload}-per-{comparison}"]
            assert bars.count('<g class="trace bars') == 3 and '<g class="point"' in bars

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    page_uri = summary.path.as_uri()
    chromium(browser, f"--screenshot={screenshot}", "--window-size=1400,2200", page_uri, profile=tmp_path / "p2")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 50_000


# --- the command ----------------------------------------------------------------------------------------------------


def test_report_command_prints_a_json_summary_and_rejects_unknown_names(engine: Engine, tmp_path: Path) -> None:
    insert_results(engine, measurement_grid(("chatbot",)))
    out = tmp_path / "report.html"
    runner = CliRunner()
    chatbot_args = ["report", "--use-case", "chatbot", "--model-version", "llama-3.1-8b@int4-awq", "--out", str(out)]

    not_ranked = runner.invoke(main, chatbot_args)  # results, but the rankings step has not run: it does not rank
    assert not_ranked.exit_code == 2 and not out.exists()
    assert not_ranked.stderr.strip() == (
        "error: no stored ranking for use case 'chatbot': run the refresh_rankings job (benchmark-platform dev, or "
        "the daily schedule) or pass --refresh-rankings"
    )

    result = runner.invoke(main, [*chatbot_args, "--refresh-rankings", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["path"] == str(out.resolve()) and summary["use_cases"] == ["chatbot"]
    assert summary["model_version"] == "llama-3.1-8b@int4-awq" and summary["bytes"] == out.stat().st_size
    assert summary["configurations"] > 0 and 0 < summary["simulated"] < summary["configurations"]

    result = runner.invoke(main, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out.resolve()}" in result.stdout and "SIMULATED estimates" in result.stdout
    assert "report use cases: 1/1 (100%)" in result.stderr

    result = runner.invoke(main, ["report", "--model-version", "llama-3.1-8b@int3", "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert "unknown model version 'llama-3.1-8b@int3'; known: llama-3.1-8b@fp16, llama-3.1-8b@fp8" in result.stderr
    result = runner.invoke(main, ["report", "--use-case", "chatbot", "--use-case", "poetry", "--out", "x.html"])
    assert result.exit_code == 2
    assert "unknown use case 'poetry'; known: agentic-tool-use, batch-offline-generation" in result.stderr
    assert not (tmp_path / "x.html").exists()

    help_text = runner.invoke(main, ["report", "--help"]).output
    assert "Example:" in help_text and "benchmark-platform report --use-case chatbot" in help_text


def test_the_report_names_the_predictor_of_each_simulated_row_and_series(engine: Engine, tmp_path: Path) -> None:
    held_out = {"output_throughput": {"median_abs_error": 0.12, "median_error": 0.1, "rows": 9, "scope": "H100-SXM x "
                "vllm-v1, dense, roofline"}, "ttft": None, "tpot": None}  # fmt: skip
    roofline = {"backend": "roofline", "version": "3", "data_version": "spec sheets", "in_measured_range": None,
                "requested": "kernels", "fallback": "no kernel tables for this GPU"}  # fmt: skip
    roofline["held_out_error"] = held_out
    rows = measurement_grid(("chatbot",))
    for row in rows:
        if row["runner"] == "simulated":
            row["detailed_metrics"] = {"predictor": roofline}
    insert_results(engine, rows)
    refresh_rankings(engine)

    page = write_report(engine, tmp_path / "report.html", use_cases=["chatbot"]).path.read_text()
    label = "roofline v3, fallback from kernels"
    assert f'<span class="tag-simulated">SIMULATED</span> · {label}</td>' in page  # every simulated table row
    assert f"simulated ({label})" in page  # the simulated series of the latency charts
    # under the table, once: what the validation rows say of that predictor
    stated = f"<li>{label}: median |error| throughput 12 % (mostly high) on 9 validation rows of H100-SXM x vllm-v1"
    assert page.count(stated) == 1 and "fewer than 3 validation rows for TTFT, TPOT</li>" in page
    measured_rows = re.findall(r'<tr class="measured">.*?</tr>', page)
    assert measured_rows and not any("roofline" in row for row in measured_rows)


def test_the_report_and_the_demo_summary_show_the_stored_rankings_and_never_rank(engine: Engine, tmp_path: Path):
    """Once ranked, the results can go and a stored row can be edited: the report and the demo's summary show exactly
    what is stored, because neither ranks."""
    insert_results(engine, measurement_grid(("chatbot",)))
    refresh_rankings(engine)
    with engine.begin() as connection:
        connection.execute(delete(BenchmarkResult))
        connection.execute(
            update(DeploymentRanking)
            .where(DeploymentRanking.use_case == "chatbot", DeploymentRanking.rank == 1)
            .values(ttft_p90_ms=4321.25, cost_per_million_tokens=9.875)
        )
        stored = connection.execute(
            select(func.count()).select_from(DeploymentRanking).where(DeploymentRanking.status == "ranked")
        ).scalar_one()

    summary = write_report(engine, tmp_path / "report.html", use_cases=["chatbot"])
    page = summary.path.read_text()
    assert summary.configurations == stored > 0
    assert '<td class="num">4321.2</td>' in page and '<td class="num">9.875</td>' in page

    printed: list[str] = []
    print_stored_rankings(printed.append)
    [best] = [line for line in printed if line.startswith("    1. ")]
    assert "TTFT p90 4321 ms" in best and "$9.875 per million output tokens (on-demand)" in best
    assert "  chatbot (costs: $ per million output tokens, on-demand prices)" in printed
