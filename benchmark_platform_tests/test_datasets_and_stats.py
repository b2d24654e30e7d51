"""Datasets (length distributions, unique prompts, shared prefixes, traces, sessions), statistics (percentiles,
confidence intervals, stored samples), server metrics and quality flags, and bench-endpoint's new options."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from benchmark_platform.cli import main
from benchmark_platform.runners.emulator import EmulatorSettings, running_emulator
from benchmark_platform.runners.openai.datasets import (
    NAMED_DATASETS,
    DatasetError,
    DatasetSpec,
    LengthDistribution,
    build_chains,
    named_dataset,
    read_trace,
)
from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
from benchmark_platform.runners.openai.protocol import LoadSettings
from benchmark_platform.runners.openai.server_metrics import ServerMetricSamples, parse_prometheus
from benchmark_platform.runners.quality import flags_for, ranking_action
from benchmark_platform.runners.stats import (
    decode_samples,
    encode_samples,
    mean_ci95,
    merge_samples,
    summaries_from_samples,
    summarize,
)
from benchmark_platform.workloads import DATASET_NAMES

FIXED, SPREAD = LengthDistribution(kind="fixed", mean=40), LengthDistribution.parse("10-30")


def test_length_distributions():
    rng = random.Random(0)
    assert {FIXED.draw(rng) for _ in range(50)} == {40}
    uniform = [SPREAD.draw(rng) for _ in range(2000)]
    assert min(uniform) == 10 and max(uniform) == 30 and abs(np.mean(uniform) - 20) < 0.6
    normal = LengthDistribution.parse("100~20")
    drawn = [normal.draw(rng) for _ in range(4000)]
    assert abs(np.mean(drawn) - 100) < 1.5 and abs(np.std(drawn) - 20) < 1.5
    assert LengthDistribution.parse("256").typical == 256 and SPREAD.typical == 20
    for bad in ("0", "30-10", "abc", "5~-1", "10-"):
        with pytest.raises(DatasetError, match=bad.split("~")[0] or "length"):
            LengthDistribution.parse(bad)


def test_prompts_are_unique_unless_a_shared_prefix_is_asked():
    spec = DatasetSpec(input_tokens=FIXED, output_tokens=SPREAD)
    chains = build_chains(spec, 200, seed=1, chat=False, nonce="n")
    prompts = [chain.requests[0].prompt for chain in chains]
    assert len(set(prompts)) == 200 and len({p.split()[0] for p in prompts}) == 200  # no two share a first token
    assert all(len(p.split()) == 40 for p in prompts)
    assert all(10 <= chain.requests[0].output_tokens <= 30 for chain in chains)
    shared = build_chains(spec.model_copy(update={"shared_prefix_fraction": 0.5}), 20, seed=1, chat=True)
    heads = {" ".join(chain.requests[0].prompt.split()[:20]) for chain in shared}
    assert len(heads) == 1 and len({chain.requests[0].prompt for chain in shared}) == 20
    assert shared[0].requests[0].messages == [{"role": "user", "content": shared[0].requests[0].prompt}]


def test_multiturn_sessions_grow_their_context():
    spec = DatasetSpec(kind="multiturn", input_tokens=FIXED, output_tokens=LengthDistribution.parse("8"), turns=3)
    chains = build_chains(spec, 7, seed=2, chat=True)
    assert [len(chain.requests) for chain in chains] == [3, 3, 1]
    turns = chains[0].requests
    assert [request.input_tokens for request in turns] == [40, 88, 136]  # +8 answer +40 question per turn
    assert [len(request.messages or []) for request in turns] == [1, 3, 5]
    assert turns[2].messages[:3] == turns[1].messages  # the history is resent as it was
    with pytest.raises(ValueError, match="turns >= 2"):
        DatasetSpec(kind="multiturn", input_tokens=FIXED, output_tokens=FIXED)


def test_named_datasets_of_the_catalog():
    assert set(NAMED_DATASETS) == set(DATASET_NAMES)  # the catalog validates names against the list, this builds them
    spread = named_dataset("synthetic-spread", 512, 256)
    assert spread.input_tokens.minimum == 256 and spread.input_tokens.maximum == 512
    with pytest.raises(DatasetError, match="unknown"):
        named_dataset("nope", 1, 2)


def test_trace_is_read_scaled_and_bad_lines_are_named(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 5, "input_tokens": 10, "output_tokens": 3}\n\n{"timestamp_ms": 7000, '
        '"input_tokens": 20, "output_tokens": 4}\n'
    )
    entries = read_trace(trace, time_scale=0.5)
    assert [(e.arrival_seconds, e.input_tokens, e.output_tokens) for e in entries] == [(0.0, 10, 3), (1.0, 20, 4)]
    cases = {
        '{"timestamp": 1, "input_tokens": 10}': "line 1: field output_tokens",
        '{"timestamp": 1, "input_tokens": 1.5, "output_tokens": 2}': "line 1: field input_tokens",
        '{"input_tokens": 1, "output_tokens": 2}': "line 1: field timestamp",
        '{"timestamp": NaN, "input_tokens": 1, "output_tokens": 2}': "line 1: field timestamp",
        "[1, 2]": "line 1: expected an object",
        '{"timestamp": 2, "input_tokens": 1, "output_tokens": 2}\n{"timestamp": 1, "input_tokens": 1, '
        '"output_tokens": 2}': "line 2: field timestamp",
        "{not json": "line 1: not JSON",
        "": "no requests",
    }
    for text, message in cases.items():
        trace.write_text(text)
        with pytest.raises(DatasetError, match=message):
            read_trace(trace)
    with pytest.raises(ValueError, match="line 1"):
        trace.write_text("{oops")
        DatasetSpec(kind="trace", trace_path=str(trace))


def test_percentiles_and_confidence_interval():
    values = np.arange(1, 1001, dtype=float)
    summary = summarize(values, 1e-3)
    for key, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99.9", 99.9)):
        assert summary[key] == pytest.approx(np.percentile(values, p) * 1e-3)
    data = [10.0, 12.0, 11.5, 9.8, 10.7]
    interval = mean_ci95(data)
    low, high = scipy_stats.t.interval(0.95, len(data) - 1, loc=np.mean(data), scale=scipy_stats.sem(data))
    assert interval["ci95_low"] == pytest.approx(low, abs=1e-3) and interval["ci95_high"] == pytest.approx(
        high, abs=1e-3
    )
    big = [float(v) for v in range(40)]
    wide = mean_ci95(big)
    assert wide["ci95_high"] - wide["mean"] == pytest.approx(1.96 * scipy_stats.sem(big), rel=1e-9)
    assert mean_ci95([3.0])["ci95_low"] == 3.0


def test_stored_samples_merge_exactly():
    rng = np.random.default_rng(0)

    def run(n: int) -> dict:
        tokens = rng.integers(2, 6, n)
        ttft = rng.integers(1000, 90000, n)
        itl = rng.integers(100, 9000, int((tokens - 1).sum()))
        ends = np.cumsum(np.concatenate([[0], tokens - 1]))
        e2e = ttft + np.array([itl[ends[i] : ends[i + 1]].sum() for i in range(n)])
        columns = {
            "sent_us": np.arange(n),
            "ttft_us": ttft,
            "e2e_us": e2e,
            "output_tokens": tokens,
            "prompt_tokens": np.full(n, 7),
            "itl_count": tokens - 1,
        }
        return encode_samples(columns, itl)

    first, second = run(300), run(500)
    merged = summaries_from_samples(merge_samples([first, second]))
    union = np.concatenate([decode_samples(first)["ttft_us"], decode_samples(second)["ttft_us"]]) / 1e3
    assert merged["ttft_ms"]["p99"] == pytest.approx(np.percentile(union, 99), abs=1e-12)
    assert (
        merged["ttft_ms"]["count"] == 800
        and merged["itl_ms"]["count"] == decode_samples(first)["itl_us"].size + decode_samples(second)["itl_us"].size
    )
    assert len(json.dumps(first)) < 300 * 8 * 6  # compressed well below the raw int64 size
    broken = dict(first, itl_us=second["itl_us"])
    with pytest.raises(ValueError, match="inconsistent"):
        decode_samples(broken)


VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 100.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 10.0
vllm:num_preemptions_total{engine="0",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
vllm:prompt_tokens_total{model_name="m"} 1000.0
"""


def test_prometheus_summary():
    first = parse_prometheus(VLLM_METRICS)
    assert first["vllm:num_requests_running"] == 3.0 and "# HELP" not in str(first.keys())
    later = parse_prometheus(
        VLLM_METRICS.replace("} 3.0", "} 5.0").replace("100.0", "300.0").replace("} 10.0", "} 110.0")
    )
    summary = ServerMetricSamples([first, later]).summary()
    assert summary["running"] == {"mean": 4.0, "max": 5.0}
    assert summary["prefix_cache_hit_rate"] == pytest.approx(0.5)  # 100 hits of 200 queries in the window
    assert summary["preemptions"] == 0 and summary["generation_tokens"] is None
    sglang = parse_prometheus('sglang:num_running_reqs{model_name="m"} 7\nsglang:token_usage{model_name="m"} 0.5\n')
    assert ServerMetricSamples([sglang]).summary()["running"]["max"] == 7
    assert ServerMetricSamples([{"other": 1.0}]).summary() is None


def _profiled(url: str, **profile) -> dict:
    settings = LoadSettings(base_url=url, model="emulator", input_tokens=64, output_tokens=4, num_requests=30)
    return measure_profile(settings, ProfileSettings(**({"concurrency": 3} | profile)))[0].detailed_metrics


def test_server_metrics_sampled_from_the_emulator_and_flags_raised():
    # 60 ms a token: each profile runs for about 2.5 s, so the sampler (a reading every 0.5 s) sees requests running;
    # at 20 ms a loaded CI runner once finished the run between two readings (running max 0)
    with running_emulator(EmulatorSettings(tpot_ms=60, preempt_above_running=2)) as url:
        unique = _profiled(url)
        shared_spec = DatasetSpec(
            input_tokens=LengthDistribution.parse("64"),
            output_tokens=LengthDistribution.parse("4"),
            shared_prefix_fraction=0.5,
        )
        shared = _profiled(url, dataset=shared_spec)
    server = unique["server_metrics"]
    assert server["prefix_cache_hit_rate"] == 0  # unique prompts: no block seen before
    assert server["generation_tokens"] == 30 * 4 and server["prompt_tokens"] == 30 * 64  # warm-up excluded
    assert 1 <= server["running"]["max"] <= 3 and server["preemptions"] > 0
    assert "server_preempted" in unique["quality_flags"] and "too_few_requests" in unique["quality_flags"]
    assert shared["server_metrics"]["prefix_cache_hit_rate"] > 0.3
    assert "prefix_cache_warm" not in shared["quality_flags"]  # asked for on purpose


def test_quality_flags_and_ranking_action():
    clean = {"completed_requests": 500, "errors": 0, "client": {"event_loop_lag_ms": {"p99": 0.5}}}
    assert flags_for(clean) == {} and ranking_action({}) == "clean"
    warm = clean | {"server_metrics": {"prefix_cache_hit_rate": 0.6}, "dataset": {"kind": "synthetic"}}
    assert set(flags_for(warm)) == {"prefix_cache_warm"} and ranking_action(flags_for(warm)) == "excluded"
    lagging = clean | {"client": {"event_loop_lag_ms": {"p99": 9.0}}}
    assert set(flags_for(lagging)) == {"client_bound"}
    busy = clean | {"client": {"cpu_fraction_of_one_core": 1.9, "processes": 2}}
    assert set(flags_for(busy)) == {"client_bound"}
    failing = clean | {"errors": 10}
    assert set(flags_for(failing)) == {"error_rate_high"} and ranking_action(flags_for(failing)) == "marked"
    assert set(flags_for(clean | {"completed_requests": 99})) == {"too_few_requests"}
    assert "over_saturated" in flags_for(clean | {"oversaturated": "over-saturated: ..."})


def test_bench_endpoint_profiles_and_bad_input(tmp_path):
    with running_emulator(EmulatorSettings(ttft_ms=2)) as url:
        base = ["bench-endpoint", "--base-url", url, "--model", "emulator", "--json"]
        ok = CliRunner().invoke(
            main,
            [*base, "--input-tokens", "16-32", "--output-tokens", "4", "--num-requests", "6"]
            + ["--repeats", "2", "--profile", "synchronous"],
        )
        assert ok.exit_code == 0, ok.output
        figures = json.loads(ok.stdout)
        assert figures["completed_requests"] == 12 and figures["profile"]["kind"] == "synchronous"
        assert figures["repeats"]["ttft_p50_ms"]["n"] == 2 and figures["ttft_p99.9_ms"] >= figures["ttft_p95_ms"]
        assert "too_few_requests" in figures["quality_flags"]
        assert all(item["samples"] >= 1 for item in figures["server_metrics"])
        trace = tmp_path / "bad.jsonl"
        trace.write_text('{"timestamp": 0, "input_tokens": 5, "output_tokens": 4}\n{"timestamp": 1}\n')
        bad_inputs = {
            ("--concurrency", "0"): "concurrency",
            ("--request-rate", "inf"): "rate",
            ("--repeats", "0"): "repeats",
            ("--repeats", "500"): "repeats",
            ("--client-processes", "99"): "client_processes",
            ("--goal", "ttft_p90=abc"): "goal",
            ("--profile", "sla-search"): "goal",
            ("--dataset", "trace", "--trace", str(trace)): "line 2: field input_tokens",
            ("--shared-prefix", "1.5"): "shared_prefix_fraction",
            ("--profile", "poisson", "--request-rate", "1", "--burstiness", "nan"): "burstiness",
            # options the run would ignore are refused, naming where they apply
            ("--burstiness", "2"): "--burstiness applies to the poisson profile",
            ("--sweep-points", "3"): "--sweep-points applies to the sweep profile; this run is the concurrent profile",
            ("--profile", "synchronous", "--concurrency", "2"): "--concurrency applies to every profile but",
            ("--goal", "ttft_p90_ms=9", "--request-rate", "2"): "this run is the sla-search profile",
            ("--turns", "3"): "--turns applies to --dataset multiturn; this run is --dataset synthetic",
            ("--time-scale", "2"): "--time-scale applies to --dataset trace",
        }
        for extra, message in bad_inputs.items():
            bad = CliRunner().invoke(main, [*base, "--input-tokens", "8", "--output-tokens", "4", *extra])
            assert bad.exit_code == 2 and message in bad.stderr, (extra, bad.output)
            assert bad.stdout == ""
        searched = CliRunner().invoke(  # a goal alone asks for the SLA search
            main,
            [*base, "--input-tokens", "8", "--output-tokens", "4", "--num-requests", "4"]
            + ["--goal", "ttft_p90_ms=5000", "--search-max", "2", "--no-server-metrics"],
        )
        assert searched.exit_code == 0, searched.output
        assert json.loads(searched.stdout)["sla_search"]["best"] == 2
        bad_length = CliRunner().invoke(main, [*base, "--input-tokens", "9-3", "--output-tokens", "4"])
        assert bad_length.exit_code == 2 and "9-3" in bad_length.stderr
