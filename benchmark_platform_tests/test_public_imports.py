"""import-results --format inferencex|mlperf: the committed real rows (data/inferencex, data/mlperf; sources in their
README) mapped, converted, placed and recorded once.

The bundled manifests have no DeepSeek-R1 and the domain knows no FP4 quantization yet (issue 21): the tests register
``data/inferencex/deepseek-r1-manifest.yaml`` (its comment says what stands in for what).
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from benchmark_platform import catalogs, manifests, queue
from benchmark_platform import public_results as public
from benchmark_platform.cli import main
from benchmark_platform.cli.public_import import DUMP_TABLES
from benchmark_platform_tests.factories import benchmark_script, seed_with_model

DATA = Path(__file__).parent / "data"
INFERENCEX = DATA / "inferencex"
API_ROWS = INFERENCEX / "api_benchmarks_sample.json"
MLPERF = DATA / "mlperf" / "summary_v6.1_llm_excerpt.csv"
DEEPSEEK_R1 = INFERENCEX / "deepseek-r1-manifest.yaml"


def _names() -> catalogs.ExternalSourceNames:
    return catalogs.load_external_names().inferencex


def _rows() -> list[dict]:
    return json.loads(API_ROWS.read_text())


def test_inferencex_rows_are_converted_to_our_units():
    tally = public.ImportTally()
    rows = [public.parse_inferencex_row(row, _names(), tally) for row in _rows()]
    source = _rows()[2]  # B200 SGLang TP 4, the row with p90 figures
    row = rows[2]
    assert row is not None and (row.gpu_type, row.gpus, row.framework) == ("B200", 4, "sglang")
    assert row.latency_ms["ttft_p90_ms"] == pytest.approx(source["metrics"]["p90_ttft"] * 1000)
    assert row.latency_ms["tpot_p50_ms"] == pytest.approx(source["metrics"]["median_tpot"] * 1000)
    assert row.output_tokens_sec_per_gpu == source["metrics"]["output_tput_per_gpu"]
    assert row.total_tokens_sec_per_gpu == source["metrics"]["tput_per_gpu"]
    assert row.provenance["run_url"] == source["run_url"] and row.provenance["decode_ep"] == 4
    # The 2025-10-06 row has no p90 and no output figure: p90 stays unknown, output is its share of the total.
    old = rows[1]
    assert old.latency_ms["ttft_p90_ms"] is None
    assert old.output_tokens_sec_per_gpu == pytest.approx(_rows()[1]["metrics"]["tput_per_gpu"] * 8192 / 9216)
    assert "output_tput_per_gpu_derived" in old.provenance
    # Disaggregated: the instance spans prefill and decode GPUs.
    assert rows[4].gpus == _rows()[4]["num_prefill_gpu"] + _rows()[4]["num_decode_gpu"]
    assert not tally.lines()


def test_unknown_names_are_counted_never_guessed():
    tally = public.ImportTally()
    odd = [row | {"hardware": "h100-pcie"} for row in _rows()[:3]] + [_rows()[3] | {"framework": "atom"}]
    assert [public.parse_inferencex_row(row, _names(), tally) for row in odd] == [None] * 4
    assert tally.unknown == {"hardware 'h100-pcie'": 3, "framework 'atom'": 1}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda row: row["metrics"].pop("tput_per_gpu"), "tput_per_gpu: missing"),
        (lambda row: row["metrics"].update(median_ttft="fast"), "median_ttft: expected a number"),
        (lambda row: row.update(conc=2.5), "conc: expected a whole number"),
        (lambda row: row["metrics"].update(p99_tpot=0.001), "tpot percentiles out of order"),
        (lambda row: row.update(date="yesterday"), "date: expected a date"),
    ],
)
def test_bad_rows_name_the_field(change, message):
    row = copy.deepcopy(_rows()[0])
    change(row)
    with pytest.raises(public.PublicRowError, match=message):
        public.parse_inferencex_row(row, _names(), public.ImportTally())


def test_a_dump_and_the_api_name_the_same_measurements():
    tally = public.ImportTally()
    api = [public.parse_inferencex_row(row, _names(), tally).key for row in _rows()]
    configs, results, runs = (json.loads((INFERENCEX / name).read_text()) for name in DUMP_TABLES)
    dump = [
        public.parse_inferencex_row(row, _names(), tally).key
        for row in public.inferencex_dump_rows(configs, results, runs)
    ]
    assert dump == api and len(set(api)) == len(api)


def test_instances_and_use_cases_a_row_is_placed_on():
    instances = [public.Instance(f"x{n}-{p}", "B200", n, p) for n, p in ((8, 100.0), (8, 80.0), (4, 60.0), (16, 1.0))]
    assert public.choose_instance(instances, "B200", 4).name == "x4-60.0"
    assert public.choose_instance(instances, "B200", 8).name == "x8-80.0"  # cheaper per GPU of the two
    assert public.choose_instance(instances, "B200", 3) is None
    shapes = [public.UseCaseShape("a", (1024,), (512, 2048)), public.UseCaseShape("b", (1024, 2048), (64, 512))]
    row = public.parse_inferencex_row(_rows()[0], _names(), public.ImportTally())
    assert public.represented_use_cases(row, shapes) == ["a"]


def _register_deepseek(engine) -> None:
    manifests.register_model(engine, manifests.load_manifest(DEEPSEEK_R1))


def _imported(engine) -> list[dict]:
    with engine.connect() as connection:
        return [
            dict(row)
            for row in connection.execute(
                text(
                    "SELECT h.name AS hardware, f.name AS framework, r.workload_type, r.batch_size, r.tensor_parallel,"
                    " r.sequence_length, r.ttft_p90_ms, r.throughput_tokens_sec, r.output_tokens_sec_per_gpu, r.runner,"
                    " r.detailed_metrics AS detail FROM benchmark_results r"
                    " JOIN hardware_configs h ON h.id = r.hardware_config_id"
                    " JOIN inference_frameworks f ON f.id = r.framework_id ORDER BY r.workload_type, h.name, f.name"
                )
            ).mappings()
        ]


def test_import_inferencex_records_measured_rows_once(engine, tmp_path):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    _register_deepseek(engine)
    outcome = CliRunner().invoke(main, ["import-results", str(API_ROWS), "--format", "inferencex"])
    assert outcome.exit_code == 0, outcome.output
    rows = _imported(engine)
    # Placed: the two B200 TP 4 rows at 1k/1k (no MI355X, B300 instance; no H200 node of 80 GPUs), each in the
    # use cases whose buckets hold 1024 prompt tokens and whose output range holds 1024 output tokens.
    assert {(row["hardware"], row["framework"]) for row in rows} == {
        ("aws-b200-x8", "sglang"),
        ("aws-b200-x8", "tensorrt-llm"),
    }
    assert sorted({row["workload_type"] for row in rows}) == [
        "batch-offline-generation",
        "creative-writing",
        "translation",
    ]
    sglang = next(row for row in rows if row["framework"] == "sglang")
    source = _rows()[2]
    assert sglang["runner"] == "measured" and (sglang["tensor_parallel"], sglang["batch_size"]) == (4, 4)
    assert sglang["ttft_p90_ms"] == pytest.approx(source["metrics"]["p90_ttft"] * 1000)
    assert sglang["throughput_tokens_sec"] == pytest.approx(source["metrics"]["output_tput_per_gpu"] * 8)
    assert sglang["detail"]["provenance"]["image"] == source["image"]
    assert sglang["detail"]["source_tool"] == {"name": "inferencex"}
    assert "no MI355X instance with a multiple of 4 GPUs: 2" in outcome.output
    assert "no H200 instance with a multiple of 80 GPUs: 2" in outcome.output
    assert f"{len(rows)} new (0 already imported)" in outcome.output
    # Again, from the API file, the dump folder and the dump zipped: nothing new.
    archive = tmp_path / "inferencex-dump-sample.zip"
    with zipfile.ZipFile(archive, "w") as dump:
        for name in DUMP_TABLES:
            dump.write(INFERENCEX / name, f"dump/{name}")
    for path in (API_ROWS, INFERENCEX, archive):
        again = CliRunner().invoke(main, ["import-results", str(path), "--format", "inferencex"])
        assert again.exit_code == 0, again.output
        assert f"0 new ({len(rows)} already imported)" in again.output
    assert len(_imported(engine)) == len(rows)


def test_bad_rows_are_counted_and_the_rest_imported(engine, tmp_path):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    _register_deepseek(engine)
    rows = _rows()
    rows[3]["metrics"]["median_tpot"] = -1
    rows.append("not a row")
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    outcome = CliRunner().invoke(main, ["import-results", str(path), "--format", "inferencex"])
    assert outcome.exit_code == 0, outcome.output
    assert "Traceback" not in outcome.output
    assert "bad rows: median_tpot: expected a finite non-negative number, got -1: 1" in outcome.output
    assert "bad rows: expected an object: 1" in outcome.output
    assert {row["framework"] for row in _imported(engine)} == {"sglang"}


def test_an_unreadable_source_exits_2_and_writes_nothing(engine, tmp_path):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "configs.json").write_text("[]")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    for path, message in (
        (tmp_path / "dump", "no benchmark_results.json"),
        (tmp_path / "broken.zip", "not a zip file"),
        (DATA / "mlperf" / "README.md", "--sequence-length: required"),
        (API_ROWS, "--hardware: not used with --format inferencex"),
    ):
        source = "mlperf" if path.suffix == ".md" else "inferencex"
        extra = ["--hardware", "aws-b200-x8"] if path == API_ROWS else []
        outcome = CliRunner().invoke(main, ["import-results", str(path), "--format", source, *extra])
        assert outcome.exit_code == 2 and message in outcome.output, outcome.output
    assert _imported(engine) == []


def test_import_mlperf_throughput_with_its_latency_bounds(engine):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    command = ["import-results", str(MLPERF), "--format", "mlperf", "--sequence-length", "1024"]
    outcome = CliRunner().invoke(main, command)
    assert outcome.exit_code == 0, outcome.output
    rows = _imported(engine)
    # Only the 1x H200 TensorRT-LLM Llama-3.1-8B FP8 submission maps onto a registered version and an instance.
    assert [(row["workload_type"], row["hardware"], row["tensor_parallel"]) for row in rows] == [
        ("batch-offline-generation", "aws-h200-x8", 1),
        ("chatbot", "aws-h200-x8", 1),
    ]
    offline, server = rows
    assert offline["output_tokens_sec_per_gpu"] == pytest.approx(7796.585132594509)
    assert server["throughput_tokens_sec"] == pytest.approx(7376.597666232419 * 8)
    assert server["ttft_p90_ms"] is None  # MLPerf publishes no percentiles: only the bounds the run met
    assert server["detail"]["provenance"]["latency_constraints_p99_ms"] == {"ttft": 2000, "tpot": 100}
    assert offline["detail"]["provenance"]["latency_constraints_p99_ms"] is None
    assert server["batch_size"] == 13368  # the performance sample count: never a swept concurrency
    assert "unknown names: hardware 'AMD Instinct MI350X 288GB HBM3e': 2" in outcome.output
    again = CliRunner().invoke(main, command)
    assert "0 new (2 already imported)" in again.output and len(_imported(engine)) == 2


def _simulated_result(engine, batch_size: int, output_per_gpu: float) -> None:
    """A simulated result of the imported B200 SGLang shape (creative-writing, 1024 prompt tokens, TP 4): a use case
    costed on demand, the price the catalog has for that B200 instance (it is not offered on spot)."""
    with engine.begin() as connection:
        ids = {
            "model_version_id": manifests.resolve_model_version(connection, "deepseek-r1@fp4"),
            "hardware_config_id": queue.resolve_hardware(connection, "aws-b200-x8"),
            "framework_id": queue.resolve_framework(connection, "sglang"),
        }
        latency = {f"{m}_p{p}_ms": value for m, value in (("ttft", 200.0), ("tpot", 20.0)) for p in (50, 90, 99)}
        queue.record_imported(
            connection,
            ids
            | latency
            | {
                "workload_type": "creative-writing",
                "batch_size": batch_size,
                "sequence_length": 1024,
                "tensor_parallel": 4,
                "throughput_tokens_sec": output_per_gpu * 8,
                "runner": "simulated",
            },
        )


def test_recommend_prefers_the_measured_row_and_chooses_the_evidence(engine):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    _register_deepseek(engine)
    assert CliRunner().invoke(main, ["import-results", str(API_ROWS), "--format", "inferencex"]).exit_code == 0
    _simulated_result(engine, batch_size=4, output_per_gpu=500.0)  # the imported row's shape
    _simulated_result(engine, batch_size=8, output_per_gpu=400.0)  # simulated only

    def recommend(*options: str) -> dict[tuple[int, str], dict]:
        outcome = CliRunner().invoke(main, ["recommend", "--use-case", "creative-writing", "--json", *options])
        assert outcome.exit_code == 0, outcome.output
        return {(row["batch_size"], row["source"]): row for row in json.loads(outcome.output)["results"]}

    measured = _rows()[2]["metrics"]["output_tput_per_gpu"]
    everything = recommend()
    assert set(everything) == {(4, "inferencex"), (8, "simulated")}
    per_gpu = everything[4, "inferencex"]["criteria"]["throughput"]["value"]
    assert per_gpu == pytest.approx(measured)
    assert set(recommend("--measured-only")) == {(4, "inferencex")}
    simulated = recommend("--source", "simulated")
    assert set(simulated) == {(4, "simulated"), (8, "simulated")}
    assert simulated[4, "simulated"]["criteria"]["throughput"]["value"] == pytest.approx(500.0)


def test_the_report_marks_the_source_and_shows_simulated_versus_measured(engine, tmp_path):
    seed_with_model(engine, "llama-3.1-8b@fp8")
    _register_deepseek(engine)
    assert CliRunner().invoke(main, ["import-results", str(API_ROWS), "--format", "inferencex"]).exit_code == 0
    _simulated_result(engine, batch_size=4, output_per_gpu=500.0)
    out = tmp_path / "report.html"
    outcome = CliRunner().invoke(
        main, ["report", "--out", str(out), "--use-case", "creative-writing", "--refresh-rankings"]
    )
    assert outcome.exit_code == 0, outcome.output
    page = out.read_text()
    assert '<span class="tag-source">measured: InferenceX</span>' in page
    versus = page[page.index("<h3>Simulated versus measured</h3>") :]
    measured = _rows()[2]["metrics"]["output_tput_per_gpu"]
    assert f'<td class="num">{measured:,.0f}</td><td class="num">500</td>' in versus
    assert f"{500 / measured:.2f}" in versus


def test_simulator_accuracy_scores_the_rows_it_can_represent(tmp_path):
    """``simulator_accuracy.py --against``: the sample's aggregated DeepSeek-R1 rows are simulated as the MoE model
    they are (scored with the MoE rows) and its disaggregated ones listed as not simulated, with the reason; one row
    re-labelled as InferenceX's llama70b on 8 x H200 (a constructed input, its metrics the B200 row's) is simulated
    and scored as a dense row."""
    accuracy = benchmark_script("simulator_accuracy")
    rows = _rows()
    dense = rows[2] | {"model": "llama70b", "precision": "fp8", "hardware": "h200", "decode_tp": 8, "decode_ep": 1}
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([*rows, dense]))
    imported = accuracy.inferencex_rows((path,))
    comparisons, skipped = accuracy.run_accuracy(predictor="roofline", rows=imported)
    disaggregated = [row for row in rows if row["disagg"]]
    assert disaggregated and len(skipped) == len(disaggregated)
    assert all("disaggregated prefill" in reason for _, reason in skipped)
    moe = [c for c in comparisons if accuracy.is_moe(c.row)]
    assert len(moe) == len(rows) - len(disaggregated) and {c.row["model"] for c in moe} == {"deepseek-r1"}
    assert all(c.error("output_throughput") is not None for c in moe)
    (scored,) = [c for c in comparisons if not accuracy.is_moe(c.row)]
    assert scored.row["gpu_type"] == "H200" and scored.row["tensor_parallel"] == 8 and scored.role == "validation"
    assert scored.input_tokens == round(1024 * 0.9)
    assert scored.published["output_throughput"] == pytest.approx(rows[2]["metrics"]["output_tput_per_gpu"] * 8)
    assert scored.error("ttft") == pytest.approx(
        scored.simulated["ttft"] / (rows[2]["metrics"]["median_ttft"] * 1000) - 1
    )
