"""import-results and export-results.

The samples below are written from the tools' documented schemas (GuideLLM 0.8's GenerativeBenchmark metrics,
``vllm bench serve --save-result`` keys, AIPerf's profile export). Two files in ``data/`` were really produced
against the local emulator (50 ms TTFT and 10 ms per token injected; how: ``data/README.md``):
``aiperf_0.13_profile_export_aiperf.json`` (AIPerf 0.13.0) and ``guidellm_0.8.1_benchmarks.json`` (GuideLLM 0.8.1,
its per-request records cut to two). vLLM's serving benchmark needs vLLM itself, which is not installed here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from benchmark_platform.cli import main
from benchmark_platform.interop import ImportFormatError, parse_aiperf, parse_guidellm, parse_vllm
from benchmark_platform.runners.base import METRIC_COLUMNS
from benchmark_platform_tests.factories import VLLM_SERVE_RESULT, seed_with_model

VERSION = "qwen2.5-7b@int4-awq"


def _distribution(mean: float, p50: float, p90: float, p99: float) -> dict:
    summary = {"mean": mean, "median": p50, "std_dev": 1.0, "min": p50 / 2, "max": p99 * 1.1, "count": 200}
    summary["percentiles"] = {"p25": p50 * 0.9, "p50": p50, "p75": p50 * 1.1, "p90": p90, "p95": p90 * 1.02, "p99": p99}
    return {"successful": summary, "errored": None, "incomplete": None, "total": summary}


GUIDELLM = {
    "benchmarks": [
        {
            "type_": "generative_benchmark",
            "config": {"strategy": {"type_": "concurrent", "streams": 16}},
            "metrics": {
                "request_totals": {"successful": 200, "errored": 0, "incomplete": 0, "total": 200},
                "requests_per_second": _distribution(12.5, 12.4, 13.0, 13.5),
                "request_latency": _distribution(1.2, 1.1, 1.4, 1.6),
                "prompt_token_count": _distribution(512, 512, 512, 512),
                "output_token_count": _distribution(128, 128, 128, 128),
                "time_to_first_token_ms": _distribution(85.0, 80.0, 120.0, 150.0),
                "time_per_output_token_ms": _distribution(9.0, 8.8, 9.9, 11.0),
                "inter_token_latency_ms": _distribution(8.4, 8.2, 9.1, 10.2),
                "output_tokens_per_second": _distribution(1600.0, 1590.0, 1700.0, 1750.0),
            },
        }
    ]
}
VLLM = VLLM_SERVE_RESULT
AIPERF = {
    "request_throughput": {"unit": "requests/sec", "avg": 12.5},
    "request_latency": {"unit": "ms", "avg": 1150.0, "p50": 1100.0, "p90": 1400.0, "p99": 1600.0},
    "request_count": {"unit": "requests", "avg": 200.0},
    "time_to_first_token": {"unit": "ms", "avg": 85.0, "p50": 80.0, "p90": 120.0, "p99": 150.0},
    "inter_token_latency": {"unit": "ms", "avg": 8.4, "p50": 8.2, "p90": 9.1, "p99": 10.2},
    "output_token_throughput": {"unit": "tokens/sec", "avg": 1600.0},
    "input_sequence_length": {"unit": "tokens", "avg": 512.0},
    "output_sequence_length": {"unit": "tokens", "avg": 128.0},
}
EXPECTED = {"ttft_p90_ms": 120.0, "tpot_p50_ms": 8.2, "tpot_p90_ms": 9.1, "throughput_tokens_sec": 1600.0}


@pytest.mark.parametrize(
    ("parser", "data"),
    [(parse_guidellm, GUIDELLM), (parse_vllm, VLLM), (parse_aiperf, AIPERF), (parse_aiperf, {"records": AIPERF})],
)
def test_the_three_formats_map_to_the_same_figures(parser, data):
    imported = parser(data)
    for column, value in EXPECTED.items():
        assert imported.metrics[column] == pytest.approx(value), column
    assert imported.metrics["rps_sustained"] == pytest.approx(12.5)
    assert imported.mean_prompt_tokens == pytest.approx(512)


def test_a_file_aiperf_really_wrote():
    imported = parse_aiperf(
        json.loads((Path(__file__).parent / "data/aiperf_0.13_profile_export_aiperf.json").read_text())
    )
    assert imported.metrics["tpot_p50_ms"] == pytest.approx(10.0, abs=0.1)  # the emulator's injected 10 ms per token
    assert imported.metrics["ttft_p50_ms"] > 50  # 50 ms injected
    assert imported.detail["completed_requests"] == 10 and imported.mean_prompt_tokens == 32


def test_a_file_guidellm_really_wrote():
    data = json.loads((Path(__file__).parent / "data/guidellm_0.8.1_benchmarks.json").read_text())
    imported = parse_guidellm(data)
    metrics = data["benchmarks"][0]["metrics"]
    decode = metrics["inter_token_latency_ms"]["successful"]["percentiles"]
    with_first_token = metrics["time_per_output_token_ms"]["successful"]["percentiles"]
    assert imported.metrics["tpot_p50_ms"] == decode["p50"] != with_first_token["p50"]
    assert 5 < imported.metrics["tpot_p50_ms"] < 12  # the emulator's 10 ms per token, on a loaded machine
    assert imported.metrics["ttft_p50_ms"] >= 50  # 50 ms injected
    assert imported.metrics["throughput_tokens_sec"] == metrics["output_tokens_per_second"]["successful"]["mean"]
    assert 60 < imported.detail["e2e_ms"]["p50"] < 1000  # GuideLLM's request_latency is in seconds
    assert imported.detail["completed_requests"] == 10 and imported.detail["errors"] == 0
    assert imported.mean_prompt_tokens == 32
    assert (
        imported.detail["source_profile"]["type_"] == "concurrent" and imported.detail["source_profile"]["streams"] == 2
    )


def test_import_results_reads_the_file_guidellm_really_wrote(engine):
    seed_with_model(engine, VERSION)
    path = Path(__file__).parent / "data/guidellm_0.8.1_benchmarks.json"
    common = ["--model-version", VERSION, "--hardware", "gcp-l4-x1", "--framework", "vllm", "--batch-size", "2"]
    outcome = CliRunner().invoke(main, ["import-results", str(path), "--format", "guidellm", *common])
    assert outcome.exit_code == 0, outcome.output
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT runner, sequence_length, tpot_p50_ms, quality_flags,"
                " detailed_metrics -> 'source_tool' ->> 'name', detailed_metrics ->> 'completed_requests'"
                " FROM benchmark_results"
            )
        ).one()
    decode_p50 = json.loads(path.read_text())["benchmarks"][0]["metrics"]["inter_token_latency_ms"]["successful"]
    assert row[:3] == ("measured", 32, pytest.approx(decode_p50["percentiles"]["p50"]))
    assert "too_few_requests" in row[3]  # ten requests cannot carry a p99
    assert row[4:] == ("guidellm", "10")


def test_guidellm_time_per_output_token_is_not_taken_for_tpot():
    imported = parse_guidellm(GUIDELLM)
    assert imported.metrics["tpot_p50_ms"] == 8.2  # inter_token_latency_ms, decode only
    assert imported.detail["guidellm_time_per_output_token_ms"]["p50"] == 8.8  # kept apart, includes the first token


def test_vllm_percentiles_recomputed_from_detailed_lists():
    detailed = {k: v for k, v in VLLM.items() if not k.startswith("p90_")}
    with pytest.raises(ImportFormatError, match="p90_ttft_ms: missing"):
        parse_vllm(detailed)
    detailed |= {"ttfts": [0.01 * i for i in range(1, 101)], "itls": [[0.008, 0.010]] * 100, "output_lens": [3] * 100}
    imported = parse_vllm(detailed)
    assert imported.metrics["ttft_p90_ms"] == pytest.approx(901.0)  # numpy linear over 10..1000 ms
    assert imported.metrics["tpot_p90_ms"] == pytest.approx(9.0)


@pytest.mark.parametrize(
    ("parser", "data", "path", "message"),
    [
        (parse_guidellm, GUIDELLM, ["benchmarks", 0, "metrics", "time_to_first_token_ms"], "time_to_first_token_ms"),
        (parse_vllm, VLLM, ["output_throughput"], "output_throughput"),
        (parse_aiperf, AIPERF, ["inter_token_latency", "p90"], "inter_token_latency.p90"),
    ],
)
def test_malformed_files_name_the_field(parser, data, path, message):
    broken = copy.deepcopy(data)
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = "NaN?"
    with pytest.raises(ImportFormatError, match=message):
        parser(broken)
    del node[path[-1]]
    with pytest.raises(ImportFormatError, match=f"{message}.*missing"):
        parser(broken)


def test_import_then_export(engine, tmp_path):
    seed_with_model(engine, VERSION)
    files = {}
    for name, data in (("guidellm", GUIDELLM), ("vllm", VLLM), ("aiperf", AIPERF)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(data))
    common = ["--model-version", VERSION, "--hardware", "gcp-l4-x1", "--framework", "vllm", "--batch-size", "16"]
    for name, path in files.items():
        outcome = CliRunner().invoke(main, ["import-results", str(path), "--format", name, *common])
        assert outcome.exit_code == 0, outcome.output
        assert f"imported {name} result" in outcome.output
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT runner, detailed_metrics -> 'source_tool' ->> 'name', sequence_length, tpot_p90_ms,"
                " quality_flags FROM benchmark_results ORDER BY 2"
            )
        ).all()
    assert [tuple(row[:4]) for row in rows] == [
        ("measured", "aiperf", 512, 9.1),
        ("measured", "guidellm", 512, 9.1),
        ("measured", "vllm", 512, 9.1),
    ]
    assert all(row[4] == {} for row in rows)  # 200 requests, no errors: nothing to flag

    with engine.begin() as connection:  # a serving column of migration 0002, to see it exported under its name
        connection.execute(text("UPDATE benchmark_results SET energy_per_output_token_j = 0.25"))
    csv_out = CliRunner().invoke(main, ["export-results", "--format", "csv"])
    assert csv_out.exit_code == 0, csv_out.output
    header = csv_out.output.splitlines()[0].split(",")
    assert header[:4] == ["result_id", "benchmark_date", "version_key", "hardware_name"]
    assert [column for column in header if column in METRIC_COLUMNS] == list(METRIC_COLUMNS)  # every metric, in order
    assert sum(VERSION in line for line in csv_out.output.splitlines()) == 3
    parquet = tmp_path / "r.parquet"
    assert CliRunner().invoke(main, ["export-results", "--format", "parquet", "--out", str(parquet)]).exit_code == 0
    frame = pd.read_parquet(parquet)
    assert sorted(frame["source_tool"]) == ["aiperf", "guidellm", "vllm"] and set(frame["hardware_name"]) == {
        "gcp-l4-x1"
    }
    assert list(frame["energy_per_output_token_j"]) == [0.25] * 3 and list(frame["tpot_p90_ms"]) == [9.1] * 3
    as_json = json.loads(
        CliRunner().invoke(main, ["export-results", "--format", "json", "--model-version", VERSION]).output
    )
    assert len(as_json) == 3 and as_json[0]["batch_size"] == 16
    # The export reads the ranking's own results query, so it carries every configuration column the ranking keys on.
    assert [row["tensor_parallel"] for row in as_json] == [1, 1, 1]  # gcp-l4-x1: the whole one-GPU node
    assert "tensor_parallel" in header


def test_bad_imports_exit_2_and_write_nothing(engine, tmp_path):
    seed_with_model(engine, VERSION)
    broken = copy.deepcopy(VLLM)
    broken["p99_ttft_ms"] = 10.0  # below its p90
    cases = {
        "vllm": (broken, "ttft percentiles out of order"),
        "aiperf": ({"time_to_first_token": {"unit": "s", "p50": 1}}, "time_to_first_token.unit"),
        "guidellm": ({"benchmarks": []}, "benchmarks.0: missing"),
    }
    common = ["--model-version", VERSION, "--hardware", "gcp-l4-x1", "--framework", "vllm", "--batch-size", "4"]
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        outcome = CliRunner().invoke(main, ["import-results", str(path), "--format", name, *common])
        assert outcome.exit_code == 2 and message in outcome.output, outcome.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(VLLM))
    for option, value, message in (
        ("--hardware", "no-such-gpu", "unknown hardware"),
        ("--framework", "nope", "--framework"),
        ("--model-version", "x@y", "unknown model version"),
    ):
        args = [*common]
        args[args.index(option) + 1] = value
        outcome = CliRunner().invoke(main, ["import-results", str(good), "--format", "vllm", *args])
        assert outcome.exit_code == 2 and message in outcome.output, outcome.output
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    outcome = CliRunner().invoke(main, ["import-results", str(not_json), "--format", "vllm", *common])
    assert outcome.exit_code == 2 and "not JSON (line 1" in outcome.output
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM benchmark_results")).scalar() == 0
