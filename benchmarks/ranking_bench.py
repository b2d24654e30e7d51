"""How fast is ranking? Builds a synthetic results frame (default 1,000,000 rows over 10 use cases), times
``rank_use_cases`` on it (worst-case folding over sequence lengths, SLA filter, TOPSIS, Pareto flags, per-model
summaries), then times our TOPSIS next to pymcdm's and scikit-criteria's on the same criteria matrices.

pymcdm runs with ``validation=False``: its validation looks for dominated alternatives, which is not part of
TOPSIS. scikit-criteria is timed as it is used: decision matrix, weight and vector scalers, then TOPSIS.
Each figure is the best of ``--repeat`` runs.

    /work/venv/bin/python benchmarks/ranking_bench.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import skcriteria as skc
from pymcdm.methods import TOPSIS as PymcdmTopsis
from pymcdm.normalizations import vector_normalization
from skcriteria.agg.topsis import TOPSIS as SkcriteriaTopsis
from skcriteria.preprocessing.scalers import SumScaler, VectorScaler

from benchmark_platform.ranking import CRITERIA, UseCaseCriteria, pareto_front, rank_use_cases, topsis
from benchmark_platform.ranking.frames import METRIC_COLUMNS, RESULT_FRAME_COLUMNS

USE_CASES = 10
MODELS, VERSIONS_PER_MODEL, HARDWARE, FRAMEWORKS = 20, 3, 30, 4
BATCH_SIZES = np.array([1, 2, 4, 8, 16, 32, 64])
SEQUENCE_LENGTHS = np.array([512, 1024, 2048, 4096, 8192])


def _ids(count: int) -> np.ndarray:
    return np.array([uuid.uuid4() for _ in range(count)], dtype=object)


def synthetic_use_cases(rng: np.random.Generator) -> list[UseCaseCriteria]:
    use_cases = []
    for index in range(USE_CASES):
        weights = dict(zip(CRITERIA, rng.dirichlet(np.ones(len(CRITERIA))), strict=True))
        use_cases.append(
            UseCaseCriteria(
                id=uuid.uuid4(),
                subcategory=f"use-case-{index}",
                sla_ttft_p90_ms=float(rng.choice([500, 1000, 2000, 5000])),
                sla_tpot_p90_ms=float(rng.choice([40, 60, 100])),
                weights=weights,
            )
        )
    return use_cases


def synthetic_results(rows: int, use_cases: list[UseCaseCriteria], rng: np.random.Generator) -> pd.DataFrame:
    """Plausible shapes, not real figures: latency grows with prompt, batch and model size, throughput with batch."""
    versions = MODELS * VERSIONS_PER_MODEL
    model_of_version = np.arange(versions) // VERSIONS_PER_MODEL
    model_ids, version_ids, hardware_ids, framework_ids = _ids(MODELS), _ids(versions), _ids(HARDWARE), _ids(FRAMEWORKS)
    model_names = np.array([f"model-{index}" for index in range(MODELS)], dtype=object)
    version_keys = np.array(
        [f"model-{model}@v{index % VERSIONS_PER_MODEL}" for index, model in enumerate(model_of_version)], dtype=object
    )
    hardware_names = np.array([f"cloud-gpu-{index}" for index in range(HARDWARE)], dtype=object)
    framework_names = np.array(["vllm", "tgi", "lmdeploy", "sglang"], dtype=object)
    model_size = rng.uniform(1, 70, versions)  # billions of parameters, as a speed factor
    model_accuracy = rng.uniform(0.4, 0.9, versions)
    hardware_speed = rng.uniform(0.3, 3.0, HARDWARE)
    hardware_price = hardware_speed * rng.uniform(1.0, 2.0, HARDWARE)
    spot_available = rng.random(HARDWARE) < 0.6
    framework_efficiency = rng.uniform(0.7, 1.0, FRAMEWORKS)
    days = np.array([date(2026, 1, 1) + timedelta(days=offset) for offset in range(5)], dtype=object)

    version = rng.integers(0, versions, rows)
    hardware = rng.integers(0, HARDWARE, rows)
    framework = rng.integers(0, FRAMEWORKS, rows)
    batch = BATCH_SIZES[rng.integers(0, len(BATCH_SIZES), rows)]
    sequence = SEQUENCE_LENGTHS[rng.integers(0, len(SEQUENCE_LENGTHS), rows)]
    use_case = np.arange(rows) % len(use_cases)
    measures_accuracy = np.array([index % 2 == 0 for index in range(len(use_cases))])[use_case]
    noise = rng.lognormal(0, 0.15, (rows, 3))
    speed = hardware_speed[hardware] * framework_efficiency[framework]
    frame = pd.DataFrame(
        {
            "result_id": np.arange(rows),
            "benchmark_date": days[rng.integers(0, len(days), rows)],
            "created_at": datetime(2026, 1, 6, tzinfo=UTC),
            "workload_type": np.array([uc.subcategory for uc in use_cases], dtype=object)[use_case],
            "batch_size": batch,
            "sequence_length": sequence,
            "tensor_parallel": 1,
            "runner": (runner := np.where(rng.random(rows) < 0.7, "simulated", "measured")),
            "source": runner,
            "model_id": model_ids[model_of_version[version]],
            "model_name": model_names[model_of_version[version]],
            "model_version_id": version_ids[version],
            "version_key": version_keys[version],
            "hardware_config_id": hardware_ids[hardware],
            "hardware_name": hardware_names[hardware],
            "gpu_type": "GPU",
            "gpu_count": 1,
            "cost_per_hour_usd": hardware_price[hardware],
            "spot_cost_per_hour_usd": np.where(spot_available[hardware], hardware_price[hardware] * 0.4, np.nan),
            "spot_available": spot_available[hardware],
            "framework_id": framework_ids[framework],
            "framework_name": framework_names[framework],
            **{column: np.nan for column in METRIC_COLUMNS},
        },
        columns=list(RESULT_FRAME_COLUMNS),
    )
    frame["ttft_p90_ms"] = sequence * model_size[version] / speed * (1 + 0.05 * batch) * 0.02 * noise[:, 0]
    frame["tpot_p90_ms"] = model_size[version] / speed * (1 + 0.02 * batch) * 0.8 * noise[:, 1]
    frame["throughput_tokens_sec"] = speed * batch**0.8 / model_size[version] * 4000 * noise[:, 2]
    frame["accuracy_score"] = np.where(measures_accuracy, model_accuracy[version], np.nan)
    return frame


def best_of(repeat: int, action: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result


def _pymcdm(matrix: np.ndarray, weights: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    method = PymcdmTopsis(normalization_function=vector_normalization)
    return method(matrix, weights / weights.sum(), np.where(benefit, 1, -1), validation=False)


def _skcriteria(matrix: np.ndarray, weights: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decision = skc.mkdm(matrix, objectives=[max if flag else min for flag in benefit], weights=weights)
        decision = VectorScaler(target="matrix").transform(SumScaler(target="weights").transform(decision))
        return SkcriteriaTopsis().evaluate(decision).e_.similarity


def compare_topsis(label: str, problems: list[tuple[np.ndarray, np.ndarray, np.ndarray]], repeat: int) -> None:
    implementations = {"ours": topsis, "pymcdm": _pymcdm, "scikit-criteria": _skcriteria}
    timings, scores = {}, {}
    for name, method in implementations.items():
        timings[name], scores[name] = best_of(repeat, lambda method=method: [method(*p) for p in problems])
    alternatives = sum(len(matrix) for matrix, _, _ in problems)
    print(f"TOPSIS on {label} ({alternatives:,} alternatives):")
    for name, seconds in timings.items():
        difference = max(np.max(np.abs(a - b), initial=0) for a, b in zip(scores[name], scores["ours"], strict=True))
        ratio = seconds / timings["ours"]
        print(f"  {name:<16} {seconds * 1000:9.1f} ms  {ratio:6.1f}x our time   max |score - ours| {difference:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="result rows in the synthetic frame")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is printed")
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    use_cases = synthetic_use_cases(rng)
    frame = synthetic_results(arguments.rows, use_cases, rng)

    seconds, rankings = best_of(arguments.repeat, lambda: rank_use_cases(frame, use_cases))
    ranked = sum(len(ranking.configurations) for ranking in rankings.values())
    considered = sum(ranking.considered for ranking in rankings.values())
    on_front = sum(int(ranking.configurations["pareto"].sum()) for ranking in rankings.values())
    print(
        f"rank_use_cases: {len(frame):,} result rows, {len(use_cases)} use cases -> {considered:,} configurations, "
        f"{ranked:,} within SLA, {on_front:,} on Pareto fronts: {seconds:.2f} s (best of {arguments.repeat})"
    )

    problems = []
    for ranking in rankings.values():
        keys = list(ranking.weights)
        columns = [CRITERIA[key].column for key in keys]
        matrix = ranking.configurations[columns].to_numpy(dtype=float, copy=True)
        matrix = np.where(np.isnan(matrix), np.nanmin(matrix, axis=0, initial=np.inf), matrix)
        benefit = np.array([CRITERIA[key].benefit for key in keys])
        problems.append((matrix, np.array([ranking.weights[key] for key in keys]), benefit))
    pareto_seconds, _ = best_of(
        arguments.repeat, lambda: [pareto_front(matrix, benefit) for matrix, _, benefit in problems]
    )
    print(f"  of which Pareto fronts alone: {pareto_seconds * 1000:.1f} ms")
    compare_topsis("the 10 use cases' ranked configurations", problems, arguments.repeat)

    raw = frame[["ttft_p90_ms", "tpot_p90_ms", "throughput_tokens_sec"]].to_numpy()
    raw = np.column_stack([raw, frame["cost_per_hour_usd"].to_numpy() / raw[:, 2], rng.uniform(0.4, 0.9, len(raw))])
    whole = [(raw, np.array([0.3, 0.25, 0.1, 0.2, 0.15]), np.array([False, False, True, False, True]))]
    compare_topsis(f"every result row as one {raw.shape[0]:,} x {raw.shape[1]} matrix", whole, arguments.repeat)

    trade_off = rng.random((100_000, 4))
    trade_off[:, 3] = trade_off[:, :3].sum(axis=1) + rng.random(100_000) * 0.05  # lower last = higher others
    seconds, front = best_of(1, lambda: pareto_front(trade_off, [True, True, True, False]))
    print(f"Pareto front, worst case: 100,000 points on a 4-criterion trade-off: {seconds:.1f} s ({front.sum()} on it)")
    for criteria in (2, 4):
        points = rng.random((100_000, criteria))
        seconds, front = best_of(arguments.repeat, lambda points=points: pareto_front(points, [True] * points.shape[1]))
        print(
            f"Pareto front, 100,000 uniform points x {criteria} criteria: {seconds * 1000:.1f} ms ({front.sum()} on it)"
        )


if __name__ == "__main__":
    main()
