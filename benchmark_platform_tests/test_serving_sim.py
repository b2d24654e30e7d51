"""The continuous-batching serving simulator: physical sense, determinism, load modes and argument checks.

Facts come from the bundled catalogs and example manifests (through the accuracy script's helpers), so the tests
check the simulator as the platform runs it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import fnmatch
import pickle
import statistics

import numpy as np
import pytest
import yaml

from benchmark_platform import memory, workloads
from benchmark_platform.domain import ServingOptions
from benchmark_platform.runners.simulated import calibration, roofline
from benchmark_platform.runners.simulated.held_out import HeldOutFile, held_out_rows
from benchmark_platform.runners.simulated.serving_sim import eager_prefill_seconds, simulate_serving
from benchmark_platform_tests.factories import benchmark_script

accuracy = benchmark_script("simulator_accuracy")

H100 = accuracy.hardware_facts("H100-SXM", 1)
H100_X8 = accuracy.hardware_facts("H100-SXM", 8)
VLLM = accuracy.framework_facts("vllm")
LLAMA_8B = accuracy.model_facts("llama-3.1-8b", "fp16")
LLAMA_70B = accuracy.model_facts("llama-3.1-70b", "fp16")
QWEN_7B = accuracy.model_facts("qwen2.5-7b", "bf16")


def serve(model=LLAMA_8B, hardware=H100, tensor_parallel=1, **load):
    load.setdefault("input_tokens", 1024)
    load.setdefault("output_tokens", 256)
    return simulate_serving(model, hardware, VLLM, tensor_parallel=tensor_parallel, **load)


def p50_ms(values: np.ndarray) -> float:
    return float(np.percentile(values, 50)) * 1e3


def test_latency_does_not_fall_as_concurrency_rises():
    """TPOT grows with every doubling of concurrency. TTFT grows with every quadrupling; between neighbouring
    concurrencies its median may dip by up to one prefill step's share: requests that finish in the same step come
    back together, and how their prompts split over the 8,192-token step budget depends on the concurrency (at 8 x
    1,024 tokens all eight share one full step, at 16 the budget left by running decodes splits the group)."""
    concurrencies = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    runs = {c: serve(concurrency=c) for c in concurrencies}
    tpot = [p50_ms(runs[c].tpot_s) for c in concurrencies]
    ttft = [p50_ms(runs[c].ttft_s) for c in concurrencies]
    assert all(later >= earlier for earlier, later in zip(tpot, tpot[1:], strict=False)), tpot
    quadrupling = [p50_ms(runs[c].ttft_s) for c in (1, 4, 16, 64, 256)]
    assert all(later >= earlier for earlier, later in zip(quadrupling, quadrupling[1:], strict=False)), ttft
    assert all(later >= 0.85 * earlier for earlier, later in zip(ttft, ttft[1:], strict=False)), ttft
    assert ttft[-1] > 5 * ttft[0]
    assert tpot[-1] > 4 * tpot[0]


def test_throughput_rises_then_flattens_when_the_kv_cache_is_full():
    """1,024 + 1,024 tokens per sequence: the H100's KV cache holds about 200 whole sequences of Llama 3.1 8B, so
    beyond that concurrency requests wait (TTFT jumps) and output throughput stops growing. vLLM admits on the prompt,
    so it runs more sequences than that at first (up to the cache's prompts) and preempts when their decodes fill it."""
    runs = {c: serve(concurrency=c, output_tokens=1024) for c in (1, 16, 64, 128, 256, 512, 1024)}
    throughput = [runs[c].output_tokens_per_s for c in sorted(runs)]
    assert all(later > earlier for earlier, later in zip(throughput[:4], throughput[1:4], strict=False))
    kv_bound = runs[256].kv_capacity_tokens // 2048
    assert 150 < kv_bound < 256
    assert kv_bound < runs[512].max_running_sequences <= runs[512].kv_capacity_tokens // 1024
    assert runs[128].preemptions == 0 < runs[512].preemptions
    assert runs[128].max_running_sequences == 128
    assert runs[1024].output_tokens_per_s == pytest.approx(runs[512].output_tokens_per_s, rel=0.02)
    # flat past the cache (the recompute of preempted requests costs a few percent)
    assert runs[512].output_tokens_per_s == pytest.approx(runs[256].output_tokens_per_s, rel=0.10)
    assert runs[256].output_tokens_per_s < 1.25 * runs[128].output_tokens_per_s
    assert p50_ms(runs[512].ttft_s) > 20 * p50_ms(runs[128].ttft_s)  # queued for the KV cache


def test_throughput_flattens_when_compute_saturates():
    """Short sequences leave the KV cache nearly empty; past a few hundred sequences a decode step is bound by
    FLOPs, not by reading the weights (and vLLM V1's host work per sequence grows with the batch), so more concurrency
    buys little throughput."""
    runs = {c: serve(concurrency=c, input_tokens=128, output_tokens=128) for c in (64, 512, 1024)}
    assert runs[1024].max_running_sequences > 512  # not KV-bound
    assert runs[64].decode_bound == "memory"
    assert runs[1024].decode_bound == "compute"
    assert runs[1024].output_tokens_per_s < 1.3 * runs[512].output_tokens_per_s
    assert runs[512].output_tokens_per_s > 1.3 * runs[64].output_tokens_per_s


@pytest.mark.parametrize("concurrency", [1, 16, 64, 256])
def test_a_model_that_fits_one_gpu_gains_no_per_gpu_throughput_from_tensor_parallel(concurrency):
    per_gpu = {}
    for tp in (1, 2, 4, 8):
        run = serve(hardware=H100_X8, tensor_parallel=tp, concurrency=concurrency)
        replicas = H100_X8.gpu_count // tp
        per_gpu[tp] = run.output_tokens_per_s * replicas / H100_X8.gpu_count
    assert per_gpu[1] >= per_gpu[2] >= per_gpu[4] >= per_gpu[8], per_gpu


def test_llama_70b_fp16_needs_more_than_one_80gb_gpu():
    """141 GB of weights: never on one 80 GB GPU. Two hold it with a small KV cache, as vLLM serves it (70.6 GB of
    weights per GPU of the 77.3 GB usable: 90 % of 80 GiB; about 32,000 tokens of KV cache); four and eight with
    plenty."""
    with pytest.raises(roofline.DoesNotFitError, match="llama-3.1-70b@fp16"):
        serve(model=LLAMA_70B, hardware=H100_X8, tensor_parallel=1, concurrency=1, output_tokens=16)
    tpot, capacity = {}, {}
    for tp in (2, 4, 8):
        run = serve(model=LLAMA_70B, hardware=H100_X8, tensor_parallel=tp, concurrency=1, output_tokens=16)
        assert run.memory_per_gpu_gb < H100_X8.vram_per_gpu_gb
        tpot[tp], capacity[tp] = p50_ms(run.tpot_s), run.kv_capacity_tokens
    assert 20_000 < capacity[2] < 50_000 < 10 * capacity[2] < capacity[4]
    assert tpot[2] > tpot[4] > tpot[8]  # weights split further, one stream decodes faster


def test_continuous_batching_admits_a_new_request_within_a_few_steps():
    """The static-batch cycle gave qwen2.5-7b bf16 on one H100 a TTFT p90 of 890 ms at concurrency 32 with
    1,024-token prompts (every prompt of the batch prefilled before any first token)."""
    run = serve(model=QWEN_7B, concurrency=32)
    assert float(np.percentile(run.ttft_s, 90)) * 1e3 < 890 / 2
    single = serve(model=QWEN_7B, concurrency=1)
    # one prefill step of 1,024 tokens, after the API server's work per request
    assert p50_ms(single.ttft_s) - single.assumptions["request_overhead_ms"] < 50


def test_closed_loop_clients_ramp_up_instead_of_moving_in_lockstep():
    """Four clients of 1,024-token prompts and 32 output tokens: started together, every wave completes in one step and
    its four successors arrive within the API server's spread and are prefilled back to back (TTFT = most of four
    prefills); ramped up, each prompt is prefilled on its own, as for a single client."""
    load = {"concurrency": 4, "input_tokens": 1024, "output_tokens": 32}
    ramped, together = serve(**load), serve(staggered_start=False, **load)
    single = p50_ms(serve(concurrency=1, input_tokens=1024, output_tokens=32).ttft_s)
    assert p50_ms(ramped.ttft_s) == pytest.approx(single, rel=0.1)
    api = ramped.assumptions["request_overhead_ms"]  # the same for every request: compare the engine's part
    assert p50_ms(together.ttft_s) - api > 3 * (single - api)
    assert ramped.assumptions["load"]["staggered_start"] and not together.assumptions["load"]["staggered_start"]
    assert ramped.output_tokens_per_s > together.output_tokens_per_s


def test_results_are_deterministic_for_a_seed():
    first, again = serve(concurrency=16, seed=7), serve(concurrency=16, seed=7)
    for name in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.output_tokens_per_s == again.output_tokens_per_s
    other = serve(concurrency=16, seed=8)
    assert not np.array_equal(first.tpot_s, other.tpot_s)
    assert other.output_tokens_per_s == pytest.approx(first.output_tokens_per_s, rel=0.05)  # jitter stays small


def test_open_loop_rate_is_served_until_it_exceeds_capacity():
    light = serve(request_rate=2.0)
    assert light.requests_per_s == pytest.approx(2.0, rel=0.2)
    assert light.assumptions["load"] == {"mode": "open-loop-poisson", "request_rate": 2.0}
    assert p50_ms(light.ttft_s) < 100
    idle = serve(request_rate=0.05)  # one request every 20 s keeps the GPU busy about 2 s of them
    assert 0.02 < idle.gpu_busy_fraction < 0.2 < light.gpu_busy_fraction
    capacity = serve(concurrency=256).requests_per_s
    overloaded = serve(request_rate=3 * capacity)
    assert overloaded.requests_per_s == pytest.approx(capacity, rel=0.2)
    assert p50_ms(overloaded.ttft_s) > 10 * p50_ms(light.ttft_s)  # the queue grows


def test_shapes_and_window_are_consistent():
    run = serve(concurrency=8, num_requests=400, output_tokens=64)
    assert run.ttft_s.shape == run.tpot_s.shape == run.e2e_s.shape == (400,)
    assert run.itl_s.size == 400 * 63
    np.testing.assert_allclose(run.e2e_s, run.ttft_s + 63 * run.tpot_s)
    assert run.output_tokens_per_s == pytest.approx(run.requests_per_s * 64, rel=0.05)
    assert run.total_tokens_per_s == pytest.approx(run.output_tokens_per_s * (1024 + 64) / 64)
    assert 0 < run.gpu_busy_fraction < 1
    assert run.max_running_sequences == 8 and run.mean_running_sequences <= 8
    one_token = serve(concurrency=4, output_tokens=1)
    assert not one_token.tpot_s.any() and one_token.itl_s.size == 0


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"tensor_parallel": 3, "concurrency": 1}, "tensor_parallel"),
        ({"tensor_parallel": 0, "concurrency": 1}, "tensor_parallel"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"request_rate": -1.0}, "request_rate"),
        ({"request_rate": float("inf")}, "request_rate"),
        ({}, "concurrency"),
        ({"concurrency": 1, "request_rate": 1.0}, "concurrency"),
        ({"concurrency": 1, "input_tokens": 0}, "input_tokens"),
        ({"concurrency": 1, "output_tokens": -5}, "output_tokens"),
        ({"concurrency": 1, "num_requests": 0}, "num_requests"),
        ({"concurrency": 1, "scheduler_steps": 0}, "scheduler_steps"),
        ({"concurrency": 1, "scheduler_recv_interval": 0}, "scheduler_recv_interval"),
    ],
)
def test_bad_arguments_name_the_argument(arguments, named):
    load = {"tensor_parallel": 1, "input_tokens": 128, "output_tokens": 16} | arguments
    with pytest.raises(ValueError, match=named):
        simulate_serving(LLAMA_8B, H100_X8, VLLM, **load)


@pytest.fixture(scope="module")
def accuracy_comparisons(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """Every published row simulated once per test session for the tests that judge them (about fifteen seconds of
    CPU): under xdist the first worker to ask simulates and keeps them beside the session's temporary directories, the
    others wait on the lock and read them, instead of each spending the same CPU on a two-core runner."""
    if worker_id == "master":
        return accuracy.run_accuracy()[0]
    shared = tmp_path_factory.getbasetemp().parent / "accuracy_comparisons.pickle"
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared.exists():
            return pickle.loads(shared.read_bytes())  # written by this session's own worker, below
        comparisons = accuracy.run_accuracy()[0]
        shared.write_bytes(pickle.dumps(comparisons))
        return comparisons


def test_accuracy_on_validation_rows_holds_its_ceiling(accuracy_comparisons):
    """benchmarks/simulator_accuracy.py on the held-out rows (role validation, which fitted nothing): the medians of the
    dense rows, of the MoE rows and of each source held apart (``SOURCE_CEILINGS``: one source far off would carry
    the dense medians) stay within the ceilings docs/simulator-accuracy.md quotes (each group alone is not within the
    issue's goals on every metric; all rows together are, next test but one), and the calibration rows keep the
    accuracy they were fitted to."""
    comparisons = accuracy_comparisons
    validation = [c for c in comparisons if c.role == "validation"]
    apart = set(accuracy.SOURCE_CEILINGS)
    dense = [c for c in validation if not accuracy.is_moe(c.row) and accuracy.source_of(c.row) not in apart]
    held = [
        ("dense", accuracy.VALIDATION_CEILINGS, dense, 20),
        ("MoE", accuracy.MOE_VALIDATION_CEILINGS, [c for c in validation if accuracy.is_moe(c.row)], 10),
        *(
            (source, ceilings, [c for c in validation if accuracy.source_of(c.row) == source], 10)
            for source, ceilings in accuracy.SOURCE_CEILINGS.items()
        ),
    ]
    for name, ceilings, rows, at_least in held:
        assert len(rows) >= at_least, name
        medians = accuracy.median_absolute_errors(rows)
        for metric, ceiling in ceilings.items():
            assert medians[metric] <= ceiling, (name, metric, medians[metric])
    calibration = accuracy.median_absolute_errors([c for c in comparisons if c.role == "calibration"])
    assert calibration["output_throughput"] <= 0.15 and calibration["tpot"] <= 0.10, calibration
    assert calibration["ttft"] <= 0.25, calibration


def test_every_validation_row_past_the_limit_says_why(accuracy_comparisons):
    """Issue 19: no row with concurrency up to 256 off by more than 60 % on any metric, and where a row stays outside,
    the doc says why. Every such row matches a ``MISS_REASONS`` pattern (the short form of the doc's reason), and every
    pattern still matches such a row: a new miss cannot pass unexplained, a healed one leaves no stale excuse."""
    validation = [c for c in accuracy_comparisons if c.role == "validation"]
    past = accuracy.rows_past_the_limit(validation)
    assert len(past) >= 1 and len(past) < len(validation)
    assert [c.row["id"] for c in past if accuracy.miss_reason(c.row["id"]) is None] == []
    ids = {c.row["id"] for c in past}
    assert [p for p in accuracy.MISS_REASONS if not any(fnmatch.fnmatchcase(i, p) for i in ids)] == []
    # a pattern covers no row within the limit: a row that has not missed cannot inherit an excuse
    within = [c.row["id"] for c in validation if c.row["id"] not in ids]
    assert [i for i in within if accuracy.miss_reason(i) is not None] == []
    # the verdict prints each miss with its reason
    lines = accuracy.goal_misses(past)
    assert all(any(c.row["id"] in line and accuracy.miss_reason(c.row["id"]) in line for line in lines) for c in past)


def test_the_medians_over_all_validation_rows_meet_the_goals_and_every_band_that_misses_says_why(accuracy_comparisons):
    """Issue 19's goal, over all its validation rows (dense and MoE, every source): median |error| at most 15 / 25 /
    10 % on throughput / TTFT / TPOT. A concurrency band past 25 % on a metric passes only with its stated reason
    (``BAND_MISS_REASONS``, the short form of the doc's), and a reason cannot outlive its miss."""
    validation = [c for c in accuracy_comparisons if c.role == "validation"]
    medians = accuracy.median_absolute_errors(validation)
    assert {m: v for m, v in medians.items() if v > accuracy.GOALS[m]} == {}, medians
    missed = accuracy.bands_past_the_goal(validation)
    assert {(band, metric) for band, metric, _ in missed} == set(accuracy.BAND_MISS_REASONS)
    assert all(value > accuracy.BAND_GOAL for _, _, value in missed)
    # the all-models verdict prints each band miss with its reason, and one without a reason is flagged
    explained = [
        line for line in accuracy.goal_misses(validation, accuracy.BAND_MISS_REASONS) if line.startswith("band")
    ]
    assert len(explained) == len(missed) and all(
        reason in " ".join(explained) for reason in accuracy.BAND_MISS_REASONS.values()
    )
    unexplained = [line for line in accuracy.goal_misses(validation, {}) if line.startswith("band")]
    assert len(unexplained) == len(missed) and all(line.endswith("NO REASON GIVEN") for line in unexplained)


def test_the_held_out_errors_stated_beside_results_match_the_simulator(accuracy_comparisons):
    """``held_out_errors.yaml`` (what every simulated result states of its predictor) holds each validation row's
    error as the simulator gives it today: a change to the simulator that moves a row fails here until the file is
    regenerated, so the figures beside an answer are never stale."""
    fresh = HeldOutFile.model_validate(yaml.safe_load(accuracy.held_out_document(accuracy_comparisons))).rows
    stored = held_out_rows()
    regenerate = "regenerate: python benchmarks/simulator_accuracy.py --write-held-out"
    assert [r.id for r in stored] == [r.id for r in fresh], regenerate
    assert len(fresh) == len({c.row["id"] for c in accuracy_comparisons if c.role == "validation"})
    for now, kept in zip(fresh, stored, strict=True):
        assert now.model_dump(exclude={"errors"}) == kept.model_dump(exclude={"errors"}), (now.id, regenerate)
        assert set(now.errors) == set(kept.errors), (now.id, regenerate)
        for metric, error in now.errors.items():
            assert error == pytest.approx(kept.errors[metric], abs=0.005), (now.id, metric, regenerate)


def test_vllm_v0_runs_at_most_256_sequences():
    """vLLM before 0.8 defaulted to max_num_seqs 256 on every GPU; V1 raised it to 1,024 on large GPUs."""
    load = {"concurrency": 512, "input_tokens": 128, "output_tokens": 128}
    v0 = simulate_serving(LLAMA_8B, H100, VLLM.model_copy(update={"version": "0.6.0"}), tensor_parallel=1, **load)
    v1 = simulate_serving(LLAMA_8B, H100, VLLM, tensor_parallel=1, **load)
    assert v0.max_running_sequences == v0.assumptions["max_num_seqs"] == 256
    assert v1.max_running_sequences == 512


def test_multi_step_scheduling_delays_admission_to_the_block_end_and_streams_in_bursts():
    """vLLM 0.6's --num-scheduler-steps 10: an arrival waits for the running block of ten decode steps to end before
    its prompt is prefilled (TTFT grows by about half a block), and each block's tokens reach the client together
    (one gap per block); decode steps themselves cost the same."""
    v0 = VLLM.model_copy(update={"version": "0.6.0"})
    load = {"input_tokens": 256, "output_tokens": 200, "request_rate": 4.0}
    single = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, **load)
    multi = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, scheduler_steps=10, **load)
    assert multi.assumptions["scheduler_steps"] == 10 and single.assumptions["scheduler_steps"] == 1
    step_ms = p50_ms(single.itl_s)
    assert p50_ms(multi.ttft_s) - p50_ms(single.ttft_s) == pytest.approx(5 * step_ms, rel=0.5)
    assert p50_ms(multi.itl_s) == pytest.approx(10 * step_ms, rel=0.2)
    assert p50_ms(multi.tpot_s) == pytest.approx(p50_ms(single.tpot_s), rel=0.15)
    assert multi.output_tokens_per_s == pytest.approx(single.output_tokens_per_s, rel=0.05)
    with pytest.raises(ValueError, match="scheduler_steps"):
        simulate_serving(LLAMA_8B, H100, VLLM, tensor_parallel=1, scheduler_steps=10, **load)  # V1: no multi-step


def test_sglang_polling_every_nth_decode_step_delays_admission_while_a_batch_decodes():
    """SGLang's --scheduler-recv-interval N: while a batch decodes, its scheduler takes new requests only every N-th
    decode step, so an arrival waits up to N steps more for its prefill (TTFT grows with N); after a prompt step, or
    on an idle server, it is seen at once (one request at a time pays nothing); decode steps cost the same."""
    sglang = accuracy.framework_facts("sglang")
    load = {"input_tokens": 1024, "output_tokens": 256, "concurrency": 8}
    polled = {
        n: simulate_serving(LLAMA_8B, H100, sglang, tensor_parallel=1, scheduler_recv_interval=n, **load)
        for n in (1, 10, 30)
    }
    assert polled[10].assumptions["scheduler_recv_interval"] == 10
    step_ms = p50_ms(polled[1].tpot_s)
    waited = {n: (p50_ms(polled[n].ttft_s) - p50_ms(polled[1].ttft_s)) / step_ms for n in (10, 30)}  # in steps
    assert 1 < waited[10] < 10 and 5 < waited[30] < 30 and waited[30] > 2 * waited[10], waited
    assert p50_ms(polled[10].tpot_s) == pytest.approx(step_ms, rel=0.15)
    alone = {
        n: simulate_serving(
            LLAMA_8B, H100, sglang, tensor_parallel=1, scheduler_recv_interval=n, **load | {"concurrency": 1}
        )
        for n in (1, 10)
    }
    assert p50_ms(alone[10].ttft_s) == p50_ms(alone[1].ttft_s)
    with pytest.raises(ValueError, match="scheduler_recv_interval"):
        simulate_serving(LLAMA_8B, H100, VLLM, tensor_parallel=1, scheduler_recv_interval=10, **load)
    with pytest.raises(ValueError, match="above 1,000"):
        simulate_serving(LLAMA_8B, H100, sglang, tensor_parallel=1, scheduler_recv_interval=1001, **load)


def test_the_accuracy_script_runs_vllm_v0_with_chunked_prefill_where_it_turned_it_on_by_itself():
    """vLLM 0.5.4 to 0.7 (V0) enable chunked prefill for a model whose context exceeds 32K tokens unless the server
    says otherwise, limits --max-model-len or runs multi-step scheduling; V1 and older V0 releases keep their own
    default (None)."""
    v0 = VLLM.model_copy(update={"version": "0.6.3.dev116+g151ef4ef"})
    long_context = LLAMA_8B.model_copy(update={"max_position_embeddings": 131072})
    row = {"engine_flags": "vllm serve meta-llama/Llama-3.1-8B-Instruct"}
    assert accuracy.chunked_prefill_flag(row, long_context, v0) is True
    assert accuracy.chunked_prefill_flag(row, long_context, VLLM.model_copy(update={"version": "0.5.3"})) is None
    assert accuracy.chunked_prefill_flag(row, long_context, VLLM) is None  # V1
    assert accuracy.chunked_prefill_flag(row | {"num_scheduler_steps": 10}, long_context, v0) is None
    limited = {"engine_flags": row["engine_flags"] + " --max-model-len 8192"}
    assert accuracy.chunked_prefill_flag(limited, long_context, v0) is None
    assert (
        accuracy.chunked_prefill_flag(row, long_context.model_copy(update={"max_position_embeddings": 8192}), v0)
        is None
    )
    stated = {"engine_flags": row["engine_flags"] + " --no-enable-chunked-prefill"}
    assert accuracy.chunked_prefill_flag(stated, long_context, v0) is False


def test_engines_that_run_prefill_alone_stall_the_running_decodes(monkeypatch):
    """vLLM V1 lets prompt chunks ride along with decodes; its V0 engine (like SGLang by default) runs them as steps
    of their own, so every arrival stalls the running streams for a whole prefill (without CUDA graphs). The engines'
    fitted host costs per request and per sequence are set aside: this compares their schedulers."""
    monkeypatch.setattr(calibration, "REQUEST_OVERHEAD", {})
    monkeypatch.setattr(calibration, "SEQUENCE_STEP_OVERHEAD", {})
    load = {"input_tokens": 1024, "output_tokens": 256, "request_rate": 8.0}
    mixed = simulate_serving(LLAMA_8B, H100, VLLM, tensor_parallel=1, **load)
    alone = simulate_serving(LLAMA_8B, H100, VLLM.model_copy(update={"version": "0.6.0"}), tensor_parallel=1, **load)
    assert mixed.assumptions["prefill_steps"].startswith("ride along")
    assert alone.assumptions["prefill_steps"].startswith("run alone")
    assert np.percentile(alone.itl_s, 99) > 2 * np.percentile(mixed.itl_s, 99)
    assert p50_ms(alone.tpot_s) > p50_ms(mixed.tpot_s)
    assert p50_ms(alone.itl_s) == pytest.approx(p50_ms(mixed.itl_s), rel=0.1)  # a plain decode step costs the same


# --- serving options ---------------------------------------------------------------------------------------------


def test_an_fp8_kv_cache_halves_kv_bytes_raises_capacity_and_cheapens_long_context_decodes():
    """The KV-cache dtype is the engine's option, not the weights': FP8 weights keep a 16-bit cache unless
    ``kv_cache_dtype`` is "fp8", which halves the bytes per token, about doubles the tokens the cache holds and halves
    the attention reads of a decode step."""
    fp8_weights = LLAMA_8B.model_copy(update={"quantization": "fp8", "quantization_bits": 8})
    fp8_kv = ServingOptions(kv_cache_dtype="fp8")
    assert memory.kv_bytes_per_token(fp8_weights, 1) == memory.kv_bytes_per_token(LLAMA_8B, 1)
    assert memory.kv_bytes_per_token(fp8_weights, 1, kv_cache_dtype="fp8") == memory.kv_bytes_per_token(LLAMA_8B) / 2
    auto_tokens = memory.kv_capacity_tokens(fp8_weights, H100.vram_per_gpu_gb, 1, 2048)
    fp8_tokens = memory.kv_capacity_tokens(fp8_weights, H100.vram_per_gpu_gb, 1, 2048, fp8_kv)
    assert fp8_tokens == pytest.approx(2 * auto_tokens, rel=1e-4)
    auto_costs = roofline.step_costs(fp8_weights, H100, VLLM, tensor_parallel=1)
    fp8_costs = roofline.step_costs(fp8_weights, H100, VLLM, tensor_parallel=1, options=fp8_kv)
    assert fp8_costs.kv_token_s == pytest.approx(auto_costs.kv_token_s / 2)
    load = {"input_tokens": 8192, "output_tokens": 256, "concurrency": 256}
    auto_run = serve(fp8_weights, **load)
    fp8_run = serve(fp8_weights, options=fp8_kv, **load)
    assert fp8_run.kv_capacity_tokens == pytest.approx(2 * auto_run.kv_capacity_tokens, rel=1e-4)
    assert fp8_run.max_running_sequences > auto_run.max_running_sequences  # the cache bounded the batch
    assert fp8_run.output_tokens_per_s > 1.2 * auto_run.output_tokens_per_s
    assert fp8_run.assumptions["kv_cache_bytes_per_element"] == 1
    assert auto_run.assumptions["kv_cache_bytes_per_element"] == 2


def test_prefix_caching_lowers_ttft_on_shared_prefixes_and_changes_nothing_without_them():
    """A workload whose prompts share 75 % of their tokens (the shared-context dataset): with prefix caching each
    request computes only its own quarter (attending to the cached rest), so TTFT falls at equal load; without a
    shared prefix, or with the cache off, nothing changes."""
    shared = workloads.SHARED_PREFIX_FRACTION["shared-context"]
    load = {"input_tokens": 4096, "output_tokens": 64, "concurrency": 16, "shared_prefix_fraction": shared}
    cold = serve(**load)
    cached = serve(options=ServingOptions(prefix_caching=True), **load)
    assert p50_ms(cached.ttft_s) < 0.6 * p50_ms(cold.ttft_s)
    assert cached.output_tokens_per_s > cold.output_tokens_per_s
    assert "on: 3072 of 4096" in cached.assumptions["prefix_caching"]
    assert cold.assumptions["prefix_caching"].startswith("off")
    unique = serve(options=ServingOptions(prefix_caching=True), **(load | {"shared_prefix_fraction": 0.0}))
    baseline = serve(**(load | {"shared_prefix_fraction": 0.0}))
    assert np.array_equal(unique.ttft_s, baseline.ttft_s)
    with pytest.raises(ValueError, match="shared_prefix_fraction"):
        serve(options=ServingOptions(prefix_caching=True), **(load | {"shared_prefix_fraction": 1.0}))


def test_speculative_decoding_cuts_tpot_at_low_load_and_gains_less_as_concurrency_rises():
    """EAGLE-3 (3 drafts, acceptance 0.8: about 2.95 tokens per step): at concurrency 1 the decode step is
    memory-bound, the verified drafts ride free and TPOT falls by about the tokens per step less the draft's cost; at
    concurrency 64 the steps carry 4x the tokens through the weights and the gain shrinks."""
    ratios = {}
    for concurrency in (1, 64):
        load = {"input_tokens": 1024, "output_tokens": 256, "concurrency": concurrency}
        plain = serve(**load)
        eagle = serve(options=ServingOptions(speculative_method="eagle3"), dataset="multiturn-chat", **load)
        ratios[concurrency] = p50_ms(eagle.tpot_s) / p50_ms(plain.tpot_s)
        assert eagle.output_tokens == plain.output_tokens == 256
    assert ratios[1] < 0.6
    assert ratios[64] > ratios[1] + 0.15
    spec = eagle.assumptions["speculative_decoding"]
    alpha = workloads.SPECULATIVE_ACCEPTANCE["multiturn-chat"]["eagle3"]
    assert spec["tokens_per_step"] == pytest.approx((1 - alpha**4) / (1 - alpha))
    # a worse draft (n-gram lookup on free generation) gains less than EAGLE-3 at concurrency 1
    load = {"input_tokens": 1024, "output_tokens": 256, "concurrency": 1}
    ngram = serve(options=ServingOptions(speculative_method="ngram"), dataset="synthetic-fixed", **load)
    eagle = serve(options=ServingOptions(speculative_method="eagle3"), dataset="synthetic-fixed", **load)
    assert p50_ms(eagle.tpot_s) < p50_ms(ngram.tpot_s) < p50_ms(serve(**load).tpot_s)


def test_every_result_names_its_serving_options():
    run = serve(input_tokens=128, output_tokens=16, concurrency=1)
    assert run.assumptions["serving_options"] == dataclasses.asdict(ServingOptions())
    assert run.assumptions["speculative_decoding"]["method"] == "none"
    assert run.predictor["backend"] == "roofline"


def test_prompt_steps_launched_from_python_pay_for_each_moe_layers_extra_kernels():
    """SGLang launches a prompt step's kernels one by one: every layer costs host time, and an MoE layer (router,
    top-k, alignment to experts, grouped GEMMs) costs more than a dense one, counted on the MoE layers only (a model's
    dense-FFN layers pay the dense cost). vLLM V1 captures CUDA graphs for those steps and pays none of it. The first
    token waits for it."""
    sglang = accuracy.framework_facts("sglang")
    moe = accuracy.model_facts("gpt-oss-20b", "mxfp4")
    half_dense = moe.model_copy(update={"moe": moe.moe.model_copy(update={"dense_layers": moe.num_layers // 2})})
    per_layer_ms = calibration.EAGER_PREFILL_PER_LAYER.value * 1e3
    per_moe_layer_ms = calibration.EAGER_PREFILL_PER_MOE_LAYER.value * 1e3
    alone = {"input_tokens": 512, "output_tokens": 16, "concurrency": 1}

    def run(model, framework):
        return simulate_serving(model, H100, framework, tensor_parallel=1, **alone)

    assert run(LLAMA_8B, sglang).assumptions["eager_prefill_overhead_ms"] == pytest.approx(32 * per_layer_ms)
    sglang_moe = run(moe, sglang)
    assert moe.num_layers < 32 and sglang_moe.assumptions["eager_prefill_overhead_ms"] == pytest.approx(
        moe.num_layers * (per_layer_ms + per_moe_layer_ms)
    )
    assert run(half_dense, sglang).assumptions["eager_prefill_overhead_ms"] == pytest.approx(
        moe.num_layers * per_layer_ms + (moe.num_layers - moe.num_layers // 2) * per_moe_layer_ms
    )
    assert run(moe, VLLM).assumptions["eager_prefill_overhead_ms"] == 0.0
    overheads_ms = sglang_moe.assumptions["request_overhead_ms"] + sglang_moe.assumptions["eager_prefill_overhead_ms"]
    assert p50_ms(sglang_moe.ttft_s) > overheads_ms


def test_sglang_prompt_steps_pay_more_for_each_latent_attention_layer_and_tensorrt_llm_does_not():
    """SGLang's extend path runs a latent-attention layer (DeepSeek's MLA) with more work than a standard one: its
    fitted figure is paid on every layer of such a model, on top of the dense and MoE launch costs. TensorRT-LLM (one
    fused op) and vLLM V1 (CUDA graphs) pay no such figure, and neither does a model with standard attention."""
    deepseek = accuracy.model_facts("deepseek-r1", "fp8")
    gpt_oss = accuracy.model_facts("gpt-oss-20b", "mxfp4")
    sglang, trtllm = accuracy.framework_facts("sglang"), accuracy.framework_facts("tensorrt-llm")
    per_layer = calibration.EAGER_PREFILL_PER_LAYER.value
    per_moe_layer = calibration.EAGER_PREFILL_PER_MOE_LAYER.value
    per_latent_layer = calibration.LATENT_ATTENTION_EAGER_PREFILL_PER_LAYER["sglang"].value
    launches = deepseek.num_layers * per_layer + deepseek.moe_layers() * per_moe_layer
    assert deepseek.latent_attention is not None and gpt_oss.latent_attention is None
    assert eager_prefill_seconds(deepseek, sglang) == pytest.approx(launches + deepseek.num_layers * per_latent_layer)
    assert eager_prefill_seconds(deepseek, trtllm) == pytest.approx(launches)
    assert eager_prefill_seconds(deepseek, VLLM) == 0.0
    assert eager_prefill_seconds(gpt_oss, sglang) == pytest.approx(
        gpt_oss.num_layers * per_layer + gpt_oss.moe_layers() * per_moe_layer
    )
    b200_x8 = accuracy.hardware_facts("B200", 8)
    alone = {"input_tokens": 512, "output_tokens": 16, "concurrency": 1}
    on_sglang = simulate_serving(deepseek, b200_x8, sglang, tensor_parallel=8, **alone)
    on_trtllm = simulate_serving(deepseek, b200_x8, trtllm, tensor_parallel=8, **alone)
    latent_ms = deepseek.num_layers * per_latent_layer * 1e3
    assert on_sglang.assumptions["eager_prefill_overhead_ms"] == pytest.approx(launches * 1e3 + latent_ms)
    assert on_trtllm.assumptions["eager_prefill_overhead_ms"] == pytest.approx(launches * 1e3)
    assert p50_ms(on_sglang.ttft_s) > latent_ms + on_sglang.assumptions["request_overhead_ms"]


def test_sglang_pays_its_latent_attention_step_cost_on_the_gpus_it_was_fitted_on_and_nothing_else_does(monkeypatch):
    """SGLang's latent-attention layers on CDNA 3 (MI300X) and on B200 cost every step a figure fitted per GPU family:
    a decode at one user takes that much longer per token. Standard attention on the same GPUs and engine, the same
    model on CDNA 4 or on H200, or under vLLM pay none."""
    deepseek = accuracy.model_facts("deepseek-r1", "fp8")
    llama = accuracy.model_facts("llama-3.1-70b", "fp8")
    sglang, vllm = accuracy.framework_facts("sglang"), VLLM
    gpus = {name: accuracy.hardware_facts(name, 8) for name in ("MI300X", "MI355X", "B200", "H200")}
    alone = {"tensor_parallel": 8, "input_tokens": 512, "output_tokens": 64, "concurrency": 1, "predictor": "roofline"}

    def run(model, gpu, framework):
        return simulate_serving(model, gpus[gpu], framework, **alone)

    fitted = {"MI300X": ("sglang", "cdna3"), "B200": ("sglang", "B200")}
    paying = {gpu: run(deepseek, gpu, sglang) for gpu in fitted}
    for gpu, key in fitted.items():
        per_layer_ms = calibration.LATENT_ATTENTION_STEP_PER_LAYER[key].value * 1e3
        assert paying[gpu].assumptions["latent_attention_step_ms"] == pytest.approx(deepseek.num_layers * per_layer_ms)
    others = [
        run(deepseek, "MI355X", sglang),
        run(deepseek, "H200", sglang),
        run(deepseek, "MI300X", vllm),
        run(deepseek, "B200", vllm),
        run(llama, "MI300X", sglang),
        run(llama, "B200", sglang),
    ]
    assert [other.assumptions["latent_attention_step_ms"] for other in others] == [0.0] * len(others)
    monkeypatch.setattr(calibration, "LATENT_ATTENTION_STEP_PER_LAYER", {})
    for gpu in fitted:
        without = run(deepseek, gpu, sglang)
        added_ms = paying[gpu].assumptions["latent_attention_step_ms"]
        assert p50_ms(paying[gpu].tpot_s) - p50_ms(without.tpot_s) > 0.8 * added_ms


def test_efficiency_shares_apply_to_their_engine_generation_on_their_gpu_family_only(monkeypatch):
    """The prefill and decode shares are fitted per engine generation and GPU family: vLLM V0 on CDNA 3 (a 2024 ROCm
    build) prefills and decodes slower than the framework's efficiencies give, vLLM V1 on the same GPUs does not, and
    CDNA 4's prefill share (fitted on vLLM V1) leaves SGLang on CDNA 4 alone. What a run states is what it ran at:
    without the tables the V0 run is faster by the shares and the others do not move. A vLLM version that names no
    release is today's engine, not V0."""
    llama = accuracy.model_facts("llama-3.1-70b", "fp16")
    v0 = VLLM.model_copy(update={"version": "0.6.3"})
    sglang = accuracy.framework_facts("sglang")
    mi300x, mi355x = accuracy.hardware_facts("MI300X", 8), accuracy.hardware_facts("MI355X", 8)
    load = {"tensor_parallel": 8, "input_tokens": 8192, "output_tokens": 64, "concurrency": 1}
    pairs = {"v0 on cdna3": (mi300x, v0), "v1 on cdna3": (mi300x, VLLM), "sglang on cdna4": (mi355x, sglang)}

    def runs():
        return {
            name: simulate_serving(llama, hardware, framework, **load) for name, (hardware, framework) in pairs.items()
        }

    prefill_share = calibration.PREFILL_EFFICIENCY_SHARE["vllm-v0", "cdna3"].value
    decode_share = calibration.DECODE_EFFICIENCY_SHARE["vllm-v0", "cdna3"].value
    fitted = runs()
    assert fitted["v0 on cdna3"].assumptions["prefill_efficiency"] == pytest.approx(
        v0.prefill_efficiency * prefill_share
    )
    assert fitted["v0 on cdna3"].assumptions["decode_efficiency"] == pytest.approx(v0.decode_efficiency * decode_share)
    assert fitted["v1 on cdna3"].assumptions["prefill_efficiency"] == VLLM.prefill_efficiency
    assert fitted["sglang on cdna4"].assumptions["prefill_efficiency"] == sglang.prefill_efficiency
    cdna4_share = calibration.PREFILL_EFFICIENCY_SHARE["vllm-v1", "cdna4"].value
    on_mi355x = simulate_serving(llama, mi355x, VLLM, **load)
    assert on_mi355x.assumptions["prefill_efficiency"] == pytest.approx(VLLM.prefill_efficiency * cdna4_share)
    # without the shares the V0 run prefills an 8K prompt (compute-bound) about 1 / share as fast, and each decode step
    # reads the weights sooner by what the decode share adds; the pairs without a share run exactly as before
    read_s = roofline.step_costs(llama, mi300x, v0, tensor_parallel=8).weights_s
    monkeypatch.setattr(calibration, "PREFILL_EFFICIENCY_SHARE", {})
    monkeypatch.setattr(calibration, "DECODE_EFFICIENCY_SHARE", {})
    unfitted = runs()
    v0_fitted, v0_unfitted = fitted["v0 on cdna3"], unfitted["v0 on cdna3"]
    assert p50_ms(v0_fitted.ttft_s) > 0.5 / prefill_share * p50_ms(v0_unfitted.ttft_s)
    assert p50_ms(v0_fitted.tpot_s) - p50_ms(v0_unfitted.tpot_s) > 0.8 * read_s * (1 - decode_share) * 1e3
    for name in ("v1 on cdna3", "sglang on cdna4"):
        np.testing.assert_array_equal(fitted[name].ttft_s, unfitted[name].ttft_s)
        np.testing.assert_array_equal(fitted[name].tpot_s, unfitted[name].tpot_s)
    for unreleased in ("latest", "nightly", "main"):
        assert calibration.engine_generation(VLLM.model_copy(update={"version": unreleased})) == "vllm-v1"
    assert calibration.engine_generation(VLLM.model_copy(update={"version": "v0.6.3"})) == "vllm-v0"


def test_vllm_v0_with_chunked_prefill_mixes_prompt_chunks_into_512_token_steps():
    """vLLM V0 with --enable-chunked-prefill (and no --max-num-batched-tokens) budgets 512 tokens a step, decodes first:
    a 1,024-token prompt takes at least two steps (TTFT grows at concurrency 1), and under load the running decodes no
    longer stall behind a whole prompt's step of its own (the longest inter-token gaps shrink)."""
    v0 = VLLM.model_copy(update={"version": "0.5.5"})
    alone = {"input_tokens": 1024, "output_tokens": 128, "concurrency": 1}
    plain = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, **alone)
    chunked = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, chunked_prefill=True, **alone)
    assert chunked.assumptions["max_num_batched_tokens"] == 512 and plain.assumptions["max_num_batched_tokens"] > 1024
    assert "ride along" in chunked.assumptions["prefill_steps"] and "alone" in plain.assumptions["prefill_steps"]
    assert p50_ms(chunked.ttft_s) > p50_ms(plain.ttft_s) + 0.5 * chunked.assumptions["eager_prefill_overhead_ms"]
    loaded = {"input_tokens": 1024, "output_tokens": 128, "request_rate": 6.0}
    plain = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, **loaded)
    chunked = simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, chunked_prefill=True, **loaded)
    assert np.percentile(chunked.itl_s, 99) < np.percentile(plain.itl_s, 99)
    with pytest.raises(ValueError, match="chunked_prefill"):
        simulate_serving(LLAMA_8B, H100, v0, tensor_parallel=1, chunked_prefill="yes", **alone)


def test_whole_run_measures_the_first_wave_and_sends_nothing_after_the_last_request():
    """A benchmark run of 32 requests at concurrency 16, its clients started together (vllm bench serve at request rate
    inf): the first wave's 16 prompts queue for the prefill, and that wave is half of what the run measures; the
    steady state (ramped clients, warm-up left out) does not see it. Nothing is sent after the 32nd request."""
    load = {"concurrency": 16, "num_requests": 32, "input_tokens": 1024, "output_tokens": 256}
    whole = serve(whole_run=True, staggered_start=False, **load)
    steady = serve(**load)
    assert whole.assumptions["warmup_requests"] == 0 and whole.assumptions["measured_requests"] == 32
    assert whole.ttft_s.shape == (32,)
    assert p50_ms(whole.ttft_s) > 3 * p50_ms(steady.ttft_s)
    assert whole.completed_requests == 32 and whole.max_running_sequences == 16
    with pytest.raises(ValueError, match="whole_run"):
        serve(concurrency=4, whole_run=True)


def test_per_request_lengths_drive_each_request_and_equal_ones_change_nothing():
    """Given per-request lengths, each request prefills its own prompt (at concurrency 1 TTFT follows the prompt's
    length), decodes its own output (E2E = TTFT + (out - 1) TPOT per request, finishing in any order) and reserves its
    own KV; lengths all equal to the fixed ones give the fixed-length run exactly."""
    rng = np.random.default_rng(3)
    prompts = rng.integers(64, 4096, 60)
    outs = rng.integers(2, 300, 60)
    single = serve(concurrency=1, num_requests=60, lengths=(prompts, outs), input_tokens=2000, output_tokens=150)
    # request i of the run is request i + 1 overall (one warm-up request): its lengths are entry (i + 1) mod 60
    measured_prompts = np.resize(prompts, 61 + 1)[1:61]
    measured_outs = np.resize(outs, 61 + 1)[1:61]
    assert np.corrcoef(single.ttft_s, measured_prompts)[0, 1] > 0.95
    np.testing.assert_allclose(single.e2e_s, single.ttft_s + (measured_outs - 1) * single.tpot_s)
    loaded = serve(concurrency=8, num_requests=120, lengths=(prompts, outs), input_tokens=2000, output_tokens=150)
    assert loaded.completed_requests >= 100 and loaded.max_running_sequences == 8
    fixed = serve(concurrency=8, num_requests=100, input_tokens=512, output_tokens=64)
    equal = serve(
        concurrency=8,
        num_requests=100,
        input_tokens=512,
        output_tokens=64,
        lengths=(np.full(5, 512), np.full(5, 64)),
    )
    np.testing.assert_array_equal(fixed.ttft_s, equal.ttft_s)
    assert fixed.output_tokens_per_s == equal.output_tokens_per_s
    for bad in ((np.array([10, 0]), np.array([5, 5])), (np.array([10]), np.array([5, 5])), (np.array([1.5]),) * 2):
        with pytest.raises(ValueError, match="lengths"):
            serve(concurrency=1, lengths=bad)


def test_sharegpt_lengths_give_an_all_at_once_run_its_tail():
    """Every prompt sent at once: with ShareGPT-like lengths (the accuracy script's draw) the longest requests finish
    long after the rest, at low concurrency, so the run's output rate falls below the fixed-length run's at the same
    means; the draw keeps the row's means and spreads over an order of magnitude."""
    row = {"id": "t", "length_distribution": "sharegpt", "num_prompts": 500}
    prompts, outs = accuracy.request_lengths(row, 220, 200)
    assert prompts.mean() == pytest.approx(220, rel=0.01) and outs.mean() == pytest.approx(200, rel=0.01)
    assert np.percentile(outs, 90) > 5 * np.percentile(outs, 10)
    load = {"concurrency": 500, "num_requests": 500, "whole_run": True, "staggered_start": False}
    fixed = serve(input_tokens=220, output_tokens=200, **load)
    varied = serve(input_tokens=220, output_tokens=200, lengths=(prompts, outs), **load)
    assert varied.output_tokens_per_s < 0.8 * fixed.output_tokens_per_s
    uniform = {"id": "u", "length_distribution": "uniform", "length_range_ratio": 0.8, "num_prompts": 400}
    prompts, outs = accuracy.request_lengths(uniform, 900, 900)
    assert prompts.min() >= 800 and prompts.max() <= 1000 and prompts.mean() == pytest.approx(900, rel=0.02)
    assert accuracy.request_lengths({"id": "f"}, 900, 900) is None


# --- serving options with per-request lengths, whole runs and chunked prefill ------------------------------------


def test_prefix_caching_caches_each_requests_own_share_of_its_prompt():
    """With per-request lengths, prefix caching skips floor(f x its own prompt) of every request after the first: at
    concurrency 1 each TTFT still follows its prompt's length, but lower than without the cache."""
    rng = np.random.default_rng(5)
    prompts, outs = rng.integers(512, 4096, 40), rng.integers(2, 64, 40)
    load = {"concurrency": 1, "num_requests": 40, "input_tokens": 2300, "output_tokens": 33, "lengths": (prompts, outs)}
    load["shared_prefix_fraction"] = 0.75
    cold = serve(**load)
    cached = serve(options=ServingOptions(prefix_caching=True), **load)
    measured_prompts = np.resize(prompts, 42)[1:41]
    assert np.corrcoef(cached.ttft_s, measured_prompts)[0, 1] > 0.9
    assert np.all(cached.ttft_s < cold.ttft_s)
    mean_cached = np.floor(0.75 * measured_prompts).mean()
    assert f"on: {round(mean_cached)} of {round(measured_prompts.mean())}" in cached.assumptions["prefix_caching"]
    # a whole run measures the first request too, which meets a cold cache
    whole = serve(options=ServingOptions(prefix_caching=True), whole_run=True, staggered_start=False, **load)
    assert whole.ttft_s[0] == pytest.approx(cold.ttft_s.max(), rel=0.5) and whole.ttft_s[0] > 2 * whole.ttft_s[1:].min()


def test_speculative_decoding_takes_each_request_its_own_decode_steps():
    """EAGLE-3 with per-request output lengths: each request of o tokens decodes in about (o - 1) / E steps, so
    E2E = TTFT + (o - 1) TPOT per request still holds, TPOT falls at concurrency 1 as with fixed lengths, and the
    mean output length is the given one."""
    rng = np.random.default_rng(7)
    prompts, outs = rng.integers(128, 2048, 30), rng.integers(2, 400, 30)
    load = {
        "concurrency": 1,
        "num_requests": 30,
        "input_tokens": 1000,
        "output_tokens": 200,
        "lengths": (prompts, outs),
    }
    plain = serve(**load)
    eagle = serve(options=ServingOptions(speculative_method="eagle3"), dataset="multiturn-chat", **load)
    measured_outs = np.resize(outs, 32)[1:31]
    np.testing.assert_allclose(eagle.e2e_s, eagle.ttft_s + (measured_outs - 1) * eagle.tpot_s)
    assert eagle.output_tokens == plain.output_tokens == round(measured_outs.mean())
    assert p50_ms(eagle.tpot_s) < 0.7 * p50_ms(plain.tpot_s)
    growth = eagle.assumptions["speculative_decoding"]["tokens_per_step"]
    steps = np.ceil((measured_outs - 1) / growth)
    # the decode time per request follows its own step count (each step costs about the same at concurrency 1)
    decode_time = eagle.e2e_s - eagle.ttft_s
    several = measured_outs > 1
    assert np.corrcoef(decode_time[several], steps[several])[0, 1] > 0.99
    # a whole run at load with chunked prefill (V0) and speculative decoding still completes every request
    v0 = VLLM.model_copy(update={"version": "0.6.3"})
    run = simulate_serving(
        LLAMA_8B,
        H100,
        v0,
        tensor_parallel=1,
        chunked_prefill=True,
        whole_run=True,
        staggered_start=False,
        options=ServingOptions(speculative_method="eagle3"),
        **(load | {"concurrency": 8}),
    )
    assert run.completed_requests == 30 and run.assumptions["max_num_batched_tokens"] == 512


def test_an_fp8_kv_cache_admits_a_longest_request_a_16_bit_cache_cannot_hold():
    """The fit check takes the longest request of the given lengths against the cache of the options' KV dtype."""
    fp8_kv = ServingOptions(kv_cache_dtype="fp8")
    auto_tokens = memory.kv_capacity_tokens(LLAMA_70B, H100_X8.vram_per_gpu_gb, 2, 2048)
    fp8_tokens = memory.kv_capacity_tokens(LLAMA_70B, H100_X8.vram_per_gpu_gb, 2, 2048, fp8_kv)
    assert fp8_tokens > 1.5 * auto_tokens
    longest = (auto_tokens + fp8_tokens) // 2
    lengths = (np.array([1024, longest - 64]), np.array([64, 64]))
    load = {"tensor_parallel": 2, "concurrency": 1, "input_tokens": 1024, "output_tokens": 64, "lengths": lengths}
    with pytest.raises(roofline.DoesNotFitError, match=f"one sequence of {longest} tokens"):
        serve(LLAMA_70B, H100_X8, **load)
    run = serve(LLAMA_70B, H100_X8, options=fp8_kv, **load)
    assert run.kv_capacity_tokens == fp8_tokens


# --- the scheduler as the engines run it (issue 19, third pass) -----------------------------------------------------


def test_each_engine_starts_with_its_own_documented_scheduler_limits():
    """Token budget per step and most running sequences come from each engine's defaults, not vLLM's for all: vLLM V1
    keeps the A100 on its small defaults, SGLang sizes its chunk by the GPU's memory whatever the GPU, and
    trtllm-serve takes BuildConfig's 8,192 tokens and 2,048 requests everywhere."""
    from benchmark_platform.runners.simulated.serving_sim import scheduler_limits

    a100, l4, b200 = (accuracy.hardware_facts(gpu, 1) for gpu in ("A100-80GB", "L4", "B200"))
    sglang, trtllm = accuracy.framework_facts("sglang"), accuracy.framework_facts("tensorrt-llm")
    assert scheduler_limits(H100, VLLM) == (8192, 1024)
    assert scheduler_limits(a100, VLLM) == (2048, 256)
    assert scheduler_limits(a100, sglang) == (8192, 2048)
    assert scheduler_limits(l4, sglang)[0] == 2048
    assert scheduler_limits(b200, sglang)[0] == 16384
    assert scheduler_limits(a100, trtllm) == scheduler_limits(l4, trtllm) == (8192, 2048)


def test_a_stated_cap_on_running_sequences_replaces_the_engines_default():
    """A deployment's --max-num-seqs (SGLang's --max-running-requests) caps the running batch: 16 clients behind a cap
    of 4 run at most 4 sequences, queue for the rest (TTFT) and deliver less; the result records the cap. The accuracy
    script reads it from a row's stated flags."""
    load = {"tensor_parallel": 1, "input_tokens": 512, "output_tokens": 128, "concurrency": 16}
    default = simulate_serving(LLAMA_8B, H100, VLLM, **load)
    capped = simulate_serving(LLAMA_8B, H100, VLLM, max_num_seqs=4, **load)
    assert default.max_running_sequences == 16 and default.assumptions["max_num_seqs"] == 1024
    assert capped.max_running_sequences == 4 and capped.assumptions["max_num_seqs"] == 4
    assert statistics.median(capped.ttft_s) > 3 * statistics.median(default.ttft_s)
    assert capped.output_tokens_per_s < 0.5 * default.output_tokens_per_s
    with pytest.raises(ValueError, match="max_num_seqs"):
        simulate_serving(LLAMA_8B, H100, VLLM, max_num_seqs=0, **load)
    assert accuracy.max_num_seqs_flag({"engine_flags": "vllm serve m --max-num-seqs 32 --seed 42"}) == 32
    assert accuracy.max_num_seqs_flag({"engine_flags": "python -m sglang.launch_server --max-running-requests=8"}) == 8
    assert accuracy.max_num_seqs_flag({"engine_flags": "vllm serve m --max-num-batched-tokens 4096"}) is None
    # the last one given wins, as with argparse; any whitespace separates; a cap that is not a count is refused
    assert accuracy.max_num_seqs_flag({"engine_flags": "--max-num-seqs 32 --max_num_seqs\t64"}) == 64
    for bad in ("0", "-1", "32abc", "many"):
        with pytest.raises(ValueError, match=f"row r: engine_flags cap running sequences at '{bad}'"):
            accuracy.max_num_seqs_flag({"id": "r", "engine_flags": f"vllm serve m --max-num-seqs={bad}"})


def test_a_stated_token_budget_replaces_the_engines_default():
    """A deployment's --max-num-batched-tokens (SGLang's --chunked-prefill-size, TensorRT-LLM's --max_num_tokens)
    bounds the tokens of a step: a 4,000-token prompt in 512-token chunks takes eight steps, each reading the weights
    and paying the host's step cost, where vLLM's 8,192 on an H100 takes it in one; the result records the budget. The
    accuracy script reads it from a row's stated flags."""
    load = {"tensor_parallel": 1, "input_tokens": 4000, "output_tokens": 64, "concurrency": 1}
    default = simulate_serving(LLAMA_8B, H100, VLLM, **load)
    small = simulate_serving(LLAMA_8B, H100, VLLM, max_num_batched_tokens=512, max_num_seqs=256, **load)
    assert default.assumptions["max_num_batched_tokens"] == 8192
    assert small.assumptions["max_num_batched_tokens"] == 512
    assert statistics.median(small.ttft_s) > 1.03 * statistics.median(default.ttft_s)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        simulate_serving(LLAMA_8B, H100, VLLM, max_num_batched_tokens=0, **load)
    # vLLM refuses a budget below its running-sequence cap (1,024 on an H100 by default)
    with pytest.raises(ValueError, match=r"max_num_batched_tokens \(512\) is smaller than max_num_seqs \(1024\)"):
        simulate_serving(LLAMA_8B, H100, VLLM, max_num_batched_tokens=512, **load)
    flag = accuracy.max_num_batched_tokens_flag
    assert flag({"engine_flags": "vllm serve m --async-scheduling --max-num-batched-tokens 4096"}) == 4096
    assert flag({"engine_flags": "python -m sglang.launch_server --chunked-prefill-size=16384"}) == 16384
    assert flag({"engine_flags": "trtllm-serve m --max_num_tokens 32768 --max_batch_size 64"}) == 32768
    assert flag({"engine_flags": "vllm serve m --max-num-seqs 32"}) is None
    with pytest.raises(ValueError, match="row r: engine_flags set the step's budget at '8k'"):
        flag({"id": "r", "engine_flags": "vllm serve m --max-num-batched-tokens 8k"})
    # a row whose flags cannot be read is listed as not simulated, with the reason, instead of stopping the run
    unreadable = {"id": "r", "engine_flags": "python -m sglang.launch_server --chunked-prefill-size -1"}
    assert "engine_flags set the step's budget at '-1'" in accuracy.why_not_simulated(unreadable)


def test_rows_served_with_pipeline_parallelism_are_listed_as_not_simulated():
    """The simulator runs one tensor-parallel group; a row that splits the model's layers over pipeline stages (the
    ninth pass's TP 4 x PP 2 runs over two nodes) is recorded, as the rule takes every run of a qualifying document,
    and listed as not simulated with the reason, not scored as if it were TP 4 alone."""
    staged = [row for row in accuracy.load_rows() if row.get("pipeline_parallel", 1) > 1]
    assert len(staged) >= 12
    assert {accuracy.why_not_simulated(row) for row in staged} == {"pipeline parallelism (2 stages) is not modelled"}
    assert accuracy.why_not_simulated(dict(staged[0], pipeline_parallel=1)) is None


@pytest.mark.parametrize(
    ("engine_name", "version", "fitted_ms"),
    [("sglang", None, 6.5), ("tensorrt-llm", None, 29.0), ("tensorrt-llm", "nim-1.8.0", 53.0)],
    ids=["sglang", "trtllm-serve", "nim"],
)
def test_each_serving_frontend_pays_its_fitted_cost_per_request(monkeypatch, engine_name, version, fitted_ms):
    """SGLang's API server, trtllm-serve (the catalog's TensorRT-LLM) and NVIDIA NIM's frontend in front of
    TensorRT-LLM each cost a request their own fitted constant (calibration.REQUEST_OVERHEAD), seen in TTFT at
    concurrency 1 where nothing queues; without it they paid nothing. A NIM row is told apart by its version."""
    framework = accuracy.framework_facts(engine_name)
    if version is not None:
        framework = framework.model_copy(update={"version": version})
    load = {"tensor_parallel": 1, "concurrency": 1, "input_tokens": 512, "output_tokens": 64}
    with_cost = simulate_serving(LLAMA_8B, H100, framework, **load)
    monkeypatch.setattr(calibration, "REQUEST_OVERHEAD", {})
    without = simulate_serving(LLAMA_8B, H100, framework, **load)
    assert with_cost.assumptions["request_overhead_ms"] == pytest.approx(fitted_ms)
    assert p50_ms(with_cost.ttft_s) - p50_ms(without.ttft_s) == pytest.approx(fitted_ms, rel=0.25)


def test_prompt_admission_runs_more_sequences_than_full_reservation_and_preempts(monkeypatch):
    """Where the KV cache cannot hold every sequence at its full length (256 clients of 2,048 + 4,096 tokens on one
    H100 hold about 74 whole sequences), vLLM admits on the prompt and runs more sequences at once, preempting the
    newest when decoding fills the cache (each preempted request recomputes and still completes), while TensorRT-LLM's
    GUARANTEED_NO_EVICT reserves every sequence whole and never preempts."""
    from benchmark_platform.runners.simulated import serving_sim

    load = {"tensor_parallel": 1, "concurrency": 256, "input_tokens": 2048, "output_tokens": 4096}
    whole = load | {"num_requests": 300, "whole_run": True, "staggered_start": False}
    prompt = simulate_serving(LLAMA_8B, H100, VLLM, **load)
    prompt_run = simulate_serving(LLAMA_8B, H100, VLLM, **whole)
    trtllm = simulate_serving(LLAMA_8B, H100, accuracy.framework_facts("tensorrt-llm"), **load)
    monkeypatch.setattr(serving_sim, "admits_on_prompt", lambda framework: False)
    reserved = simulate_serving(LLAMA_8B, H100, VLLM, **load)

    whole_sequences = prompt.kv_capacity_tokens // (2048 + 4096)
    assert whole_sequences < 256
    assert reserved.max_running_sequences <= whole_sequences and reserved.preemptions == 0
    assert trtllm.max_running_sequences <= whole_sequences and trtllm.preemptions == 0
    assert prompt.mean_running_sequences > 1.2 * reserved.mean_running_sequences
    assert prompt.preemptions > 0 and prompt.assumptions["kv_admission"].startswith("on the prompt")
    assert reserved.assumptions["kv_admission"].startswith("whole sequence")
    assert prompt_run.preemptions > 0 and prompt_run.completed_requests == 300  # recomputed, none lost
    assert (prompt_run.e2e_s >= prompt_run.ttft_s).all()


def test_tensorrt_llm_takes_a_prompt_only_whole(monkeypatch):
    """TensorRT-LLM leaves chunked context off: two 5,000-token prompts arriving together take one step each (8,192
    tokens hold one whole), so the first finishes after a 5,000-token step; with --enable_chunked_prefill it splits
    them, filling the first step with 8,192 tokens (the second prompt's first chunk) and delaying the first token."""
    monkeypatch.setattr(calibration, "REQUEST_OVERHEAD", {})  # both arrive at once (no API-server spread)
    trtllm = accuracy.framework_facts("tensorrt-llm")
    load = {"tensor_parallel": 1, "concurrency": 2, "input_tokens": 5000, "output_tokens": 2}
    run = load | {"num_requests": 2, "whole_run": True, "staggered_start": False}
    whole = simulate_serving(LLAMA_8B, H100, trtllm, **run)
    split = simulate_serving(LLAMA_8B, H100, trtllm, chunked_prefill=True, **run)
    assert whole.ttft_s.min() < 0.8 * split.ttft_s.min()
    assert whole.ttft_s.max() > 1.6 * whole.ttft_s.min()  # the second prompt waits for the first one's step


kv_check = benchmark_script("kv_cache_check")


def test_the_memory_model_holds_on_the_engines_logged_kv_caches():
    """The part of the simulator that decides how many sequences run at once, checked on what vLLM and SGLang print
    at start-up (``benchmarks/data/kv_cache_logs.yaml``, public logs; nothing was fitted on them): weights per GPU
    and KV pools of dense models within a few per cent (docs/simulator-accuracy.md, "The memory model")."""
    shapes = kv_check.load_shapes()
    compared = []
    for row in kv_check.load_rows():
        model = kv_check.model_of(row, shapes)
        if model is not None and model.moe is None:
            compared.append(kv_check.compare(row, model))
    kv_errors = [c["kv_err"] for c in compared if c["kv_err"] is not None]
    weight_errors = [c["w_err"] for c in compared if c["w_err"] is not None]
    assert len(kv_errors) >= 8 and len(weight_errors) >= 8
    assert statistics.median(abs(e) for e in kv_errors) <= 0.06, kv_errors
    assert statistics.median(abs(e) for e in weight_errors) <= 0.01, weight_errors
