"""Adaptive benchmarking, measured: GPU-hours spent and answers kept when the planner prunes a version's matrix.

    python benchmarks/adaptive_bench.py                          # llama-3.1-8b@int4-awq, full catalog, seeds 0 1 2
    python benchmarks/adaptive_bench.py --seeds 0 1 2 3 4 --model-version qwen2.5-7b@bf16
    python benchmarks/adaptive_bench.py --quick --seeds 0          # single-GPU pools only: a smoke test

Ground truth: a "real" result of a config is the simulator's prediction (the simulated runner, seed 0, stored by the
planner) times a hidden speed factor per hardware x framework (log-uniform in [0.65, 1.45] for the seed: the real
stack is up to 35 % slower or 45 % faster than the simulator thinks) times per-config, per-metric noise (log-normal,
sigma 4 %): throughput x factor, TTFT and TPOT / factor. The planner never sees the factors.

Adaptive run, on a throwaway embedded PostgreSQL with the real queue: the version's matrix is populated, the planner
runs, then one worker per hardware pool claims (``queue.claim``, one config at a time, its loaded framework first)
and records the ground truth (``queue.complete``) when that benchmark would have ended on a simulated clock (all
pools run in parallel; a config stays ``running`` meanwhile); the planner re-plans every ``--replan-every``
results, until nothing is claimable. GPU-hours of a config = (its requests at the real throughput + warm-up, plus
a server start when the pool's worker switches framework) x the node's GPU count. The full matrix is every config
run once, each pool starting each framework once.

Answers: both result sets are ranked by ``ranking.rankings.rank_use_cases`` (TOPSIS per use case, normalised over
the Pareto front of the configurations ranked), exactly as the product ranks them; per use case the bench prints
whether the adaptive run's top-1 configuration and top-5 set equal the full matrix's, the regret: 1 - full-matrix
score of the adaptive top-1 / full-matrix score of the true top-1, and how many of the full matrix's Pareto-front
configurations were measured (all of them: the two rankings score the front identically).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, text

from benchmark_platform import adaptive, catalogs, database, manifests, migrations, planner, queue
from benchmark_platform.ranking.rankings import CONFIGURATION_KEY, rank_use_cases
from benchmark_platform.ranking.store import load_use_cases
from benchmark_platform.runners import Measurement

SPEED_FACTOR_RANGE = (0.65, 1.45)
NOISE_SIGMA = 0.04
SERVER_START_SECONDS = 180.0  # load weights, compile CUDA graphs: a vLLM start for a 7-8B model
WARMUP_SECONDS = 30.0
TOP = 5
BENCH_MODEL_ID = uuid.UUID(int=1)  # the ranking wants ids; one model, one version


def _connect(url: str) -> Engine:
    return create_engine(database.with_driver(url, "psycopg"), pool_size=2, pool_pre_ping=True)


def _unit(*parts: object) -> float:
    """A deterministic uniform(0, 1) from the parts (hash), independent of iteration order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def _normal(*parts: object) -> float:
    u1, u2 = _unit(*parts, "a"), _unit(*parts, "b")
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


@dataclass(frozen=True)
class Truth:
    ttft_p90_ms: float
    tpot_p90_ms: float
    throughput_tokens_sec: float
    run_seconds: float


def ground_truth(rows: list, seed: int) -> dict:
    """The hidden "real" result of every config that has a prediction."""
    low, high = map(math.log, SPEED_FACTOR_RANGE)
    truth = {}
    for row in rows:
        p = row.prediction
        if not p or "throughput_tokens_sec" not in p:
            continue
        factor = math.exp(low + (high - low) * _unit(seed, "pair", row.hardware, row.framework))
        identity = (row.hardware, row.framework, row.workload_type, row.batch_size, row.sequence_length)
        noise = {m: math.exp(NOISE_SIGMA * _normal(seed, *identity, m)) for m in planner.METRICS}
        throughput = p["throughput_tokens_sec"] * factor * noise["throughput_tokens_sec"]
        run_seconds = p["run_seconds"] * p["throughput_tokens_sec"] / throughput  # requests at the real speed
        truth[row.id] = Truth(
            ttft_p90_ms=p["ttft_p90_ms"] / factor * noise["ttft_p90_ms"],
            tpot_p90_ms=p["tpot_p90_ms"] / factor * noise["tpot_p90_ms"],
            throughput_tokens_sec=throughput,
            run_seconds=run_seconds,
        )
    return truth


def measurement(t: Truth) -> Measurement:
    return Measurement(
        ttft_p50_ms=t.ttft_p90_ms * 0.9, ttft_p90_ms=t.ttft_p90_ms, ttft_p99_ms=t.ttft_p90_ms * 1.1,
        tpot_p50_ms=t.tpot_p90_ms * 0.95, tpot_p90_ms=t.tpot_p90_ms, tpot_p99_ms=t.tpot_p90_ms * 1.05,
        throughput_tokens_sec=t.throughput_tokens_sec, rps_sustained=1.0,
        detailed_metrics={"source": "adaptive_bench ground truth"}, runner="measured",
    )  # fmt: skip


def ranking_frame(rows: list, truth: dict, ids, hardware: pd.DataFrame, version_key: str) -> pd.DataFrame:
    """The ranking's input columns for the given configs, with their ground-truth metrics."""
    records = []
    for row in rows:
        if row.id not in ids or row.id not in truth:
            continue
        t, hw = truth[row.id], hardware.loc[row.hardware]
        records.append(
            {
                "version_key": version_key, "hardware_name": row.hardware, "framework_name": row.framework,
                "batch_size": row.batch_size, "tensor_parallel": row.tensor_parallel,
                "workload_type": row.workload_type,
                "sequence_length": row.sequence_length, "benchmark_date": date.today(), "runner": "measured",
                "model_id": BENCH_MODEL_ID, "model_name": version_key.split("@")[0], "model_version_id": BENCH_MODEL_ID,
                "hardware_config_id": hw["id"], "gpu_type": hw["gpu_type"], "gpu_count": hw["gpu_count"],
                "framework_id": row.framework, "cost_per_hour_usd": hw["cost_per_hour_usd"],
                "spot_cost_per_hour_usd": hw["spot_cost_per_hour_usd"], "spot_available": hw["spot_available"],
                "ttft_p90_ms": t.ttft_p90_ms, "tpot_p90_ms": t.tpot_p90_ms, "tpot_p50_ms": t.tpot_p90_ms * 0.95,
                "throughput_tokens_sec": t.throughput_tokens_sec, "accuracy_score": None,
            }
        )  # fmt: skip
    return pd.DataFrame.from_records(records)


def full_matrix_gpu_hours(rows: list, truth: dict) -> float:
    seconds = 0.0
    started: set[tuple[str, str]] = set()
    for row in rows:
        if row.id in truth:
            seconds += (truth[row.id].run_seconds + WARMUP_SECONDS) * row.gpu_count
            if (row.hardware, row.framework) not in started:
                started.add((row.hardware, row.framework))
                seconds += SERVER_START_SECONDS * row.gpu_count
    return seconds / 3600


def reset(engine: Engine, version_id) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM benchmark_results WHERE model_version_id = :v"), {"v": version_id})
        connection.execute(
            text(
                "UPDATE benchmark_configs SET status = 'pending', skip_reason = NULL, claimed_by = NULL,"
                " started_at = NULL, completed_at = NULL, lease_expires_at = NULL, retry_count = 0,"
                " pruning_exempt = false WHERE model_version_id = :v"
            ),
            {"v": version_id},
        )


def adaptive_run(
    engine: Engine, version_id, rows: list, truth: dict, replan_every: int, use_cases, settings: planner.Settings
) -> dict:
    """Drain the version with one worker per pool on a simulated clock: each pool claims its next config when its
    current one ends (so a result is visible only once its benchmark would have finished), the planner re-planning
    every ``replan_every`` results."""
    gpus = {row.hardware: row.gpu_count for row in rows}
    with engine.connect() as connection:
        pools = dict(connection.execute(text("SELECT name, id FROM hardware_configs")).all())
    loaded: dict[str, object] = {}
    gpu_seconds = 0.0
    completed = replans = 0
    plan_seconds = 0.0
    running: list[tuple[float, str, object]] = []  # (finish time, pool, claim): a heap

    def replan() -> None:
        nonlocal plan_seconds, replans
        started = time.perf_counter()
        adaptive.replan(engine, version_id, use_cases=use_cases, settings=settings)
        plan_seconds += time.perf_counter() - started
        replans += 1

    def start_next(pool: str, now: float) -> None:
        nonlocal gpu_seconds
        while True:
            held = queue.claim(
                engine,
                f"bench-{pool}",
                limit=1,
                lease_seconds=7 * 86400,
                hardware_config_id=pools[pool],
                preferred_framework_id=loaded.get(pool),
            )
            if not held:
                return
            claim = held[0]
            duration = 0.0
            if loaded.get(pool) != claim.framework_id:
                duration += SERVER_START_SECONDS
                loaded[pool] = claim.framework_id
            t = truth.get(claim.id)
            if t is None:  # the simulator could not place it: a real run would fail at start
                queue.fail(engine, claim, f"bench-{pool}", "does not fit", max_attempts=1)
                gpu_seconds += duration * gpus[pool]
                continue
            duration += t.run_seconds + WARMUP_SECONDS
            gpu_seconds += duration * gpus[pool]
            heapq.heappush(running, (now + duration, pool, claim))
            return

    replan()
    for pool in sorted({row.hardware for row in rows}):
        start_next(pool, 0.0)
    since_plan = 0
    clock = 0.0
    while running:
        clock, pool, claim = heapq.heappop(running)
        assert queue.complete(engine, claim, f"bench-{pool}", measurement(truth[claim.id]))
        completed += 1
        since_plan += 1
        if since_plan >= replan_every:
            replan()
            since_plan = 0
        start_next(pool, clock)
    return {
        "gpu_hours": gpu_seconds / 3600,
        "completed": completed,
        "replans": replans,
        "plan_seconds": plan_seconds,
        "wall_hours": clock / 3600,
    }


def compare(full: dict, chosen: dict) -> list[dict]:
    """Per use case: top-1 and top-5 set equal to the full matrix's, and the regret of the chosen top-1."""
    lines = []
    for name, truth_ranking in full.items():
        reference = truth_ranking.configurations
        picked = chosen[name].configurations
        key = list(CONFIGURATION_KEY)
        if reference.empty:
            lines.append({"use_case": name, "top1": picked.empty, "top5": picked.empty, "regret": 0.0})
            continue
        best = tuple(reference.iloc[0][key])
        scores = {tuple(r[key]): r["score"] for _, r in reference.iterrows()}
        chosen_best = tuple(picked.iloc[0][key]) if not picked.empty else None
        regret = 1 - scores.get(chosen_best, 0.0) / scores[best] if scores[best] > 0 else 0.0
        top_ref = {tuple(r[key]) for _, r in reference.head(TOP).iterrows()}
        top_got = {tuple(r[key]) for _, r in picked.head(TOP).iterrows()}
        ranks = {tuple(r[key]): int(r["rank"]) for _, r in picked.iterrows()}
        front = {tuple(r[key]) for _, r in reference[reference["pareto"]].iterrows()}
        lines.append(
            {
                "use_case": name,
                "top1": chosen_best == best,
                "top5": top_ref == top_got,
                "regret": regret,
                "true_top1_rank_here": ranks.get(best),  # None: the true top-1 was not (fully) measured
                "front_measured": len(front & set(ranks)),
                "front": len(front),
            }
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-version", default="llama-3.1-8b@int4-awq")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--replan-every", type=int, default=40, help="results between two planner runs")
    parser.add_argument("--hardware", nargs="*", help="only these pools (default: the whole catalog)")
    parser.add_argument(
        "--top-k", type=int, default=planner.DEFAULT_SETTINGS.top_k, help="dominators needed to skip a config"
    )
    parser.add_argument("--quick", action="store_true", help="single-GPU pools only (about 8,000 configs)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database instead of a throwaway one")
    args = parser.parse_args()
    scratch = server = None
    if args.database_url:
        url = args.database_url
    else:
        import pgserver

        scratch = Path(tempfile.mkdtemp(prefix="bp-adaptive-bench-"))
        server = pgserver.get_server(scratch / "pgdata", cleanup_mode="delete")
        url = server.get_uri()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    try:
        engine = _connect(url)
        migrations.upgrade(engine)
        catalogs.seed(engine)
        model_name = args.model_version.rpartition("@")[0]
        manifests.register_model(
            engine, manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{model_name}.yaml")
        )
        with engine.connect() as connection:
            version_id = manifests.resolve_model_version(connection, args.model_version)
            hardware = pd.read_sql(
                text(
                    "SELECT name, id, gpu_type, gpu_count, cost_per_hour_usd, spot_cost_per_hour_usd, spot_available"
                    " FROM hardware_configs"
                ),
                connection,
            ).set_index("name")
        pools = args.hardware or (list(hardware.index[hardware["gpu_count"] == 1]) if args.quick else None)
        seeds = args.seeds
        report = queue.populate_matrix(engine, version_id, hardware=pools)
        started = time.perf_counter()
        adaptive.predict_missing(engine, version_id)
        print(
            f"{args.model_version}: {report.matrix_size} configs on {len(pools or hardware)} pools; "
            f"simulator predictions in {time.perf_counter() - started:.1f} s"
        )
        use_case_criteria = load_use_cases(engine)
        use_cases = adaptive.planner_use_cases(engine)
        settings = planner.Settings(top_k=args.top_k)
        print(f"planner settings: {settings}")
        summary = []
        for seed in seeds:
            reset(engine, version_id)
            with engine.connect() as connection:
                rows = queue.load_plan_rows(connection, version_id)
            truth = ground_truth(rows, seed)
            everything = {row.id for row in rows}
            full = rank_use_cases(
                ranking_frame(rows, truth, everything, hardware, args.model_version), use_case_criteria
            )
            full_hours = full_matrix_gpu_hours(rows, truth)
            started = time.perf_counter()
            run = adaptive_run(engine, version_id, rows, truth, args.replan_every, use_cases, settings)
            wall = time.perf_counter() - started
            with engine.connect() as connection:
                measured_ids = set(
                    connection.execute(
                        text("SELECT config_id FROM benchmark_results WHERE model_version_id = :v"), {"v": version_id}
                    ).scalars()
                )
            chosen = rank_use_cases(
                ranking_frame(rows, truth, measured_ids, hardware, args.model_version), use_case_criteria
            )
            lines = compare(full, chosen)
            pruning = queue.pruning_summary(engine, version_id)
            ratio = full_hours / run["gpu_hours"]
            top1 = sum(line["top1"] for line in lines)
            top5 = sum(line["top5"] for line in lines)
            worst = max(lines, key=lambda line: line["regret"])
            summary.append((seed, ratio, top1, top5, worst["regret"], len(lines)))
            print(
                f"\nseed {seed}: {run['completed']} of {len(truth)} configs run, "
                f"{run['gpu_hours']:.1f} GPU-hours vs {full_hours:.1f} for the full matrix ({ratio:.1f}x fewer); "
                f"{run['wall_hours']:.1f} h of wall time on {len({r.hardware for r in rows})} pools in parallel; "
                f"{run['replans']} planner runs, {run['plan_seconds']:.1f} s planning, {wall:.1f} s wall"
            )
            print("  skipped: " + ", ".join(f"{k} {v}" for k, v in pruning.skipped_by_reason.items()))
            for line in lines:
                mark = ""
                if not line["top1"]:
                    where = line.get("true_top1_rank_here")
                    mark = (
                        f"   <-- top-1 differs: the true top-1 was measured and ranks {where} here (the ranking "
                        "normalises over the Pareto front: a front configuration was not measured)"
                        if where
                        else "   <-- top-1 differs: the true top-1 was skipped"
                    )
                print(
                    f"  {line['use_case']:<26} top-1 {'same' if line['top1'] else 'DIFF'}  "
                    f"top-5 {'same' if line['top5'] else 'diff'}  regret {100 * line['regret']:.2f} %  "
                    f"Pareto front measured {line['front_measured']}/{line['front']}{mark}"
                )
        print("\nseed  GPU-hours ratio  top-1 same  top-5 same  worst regret")
        for seed, ratio, top1, top5, regret, n in summary:
            print(f"{seed:>4}  {ratio:>14.1f}x  {top1:>6}/{n}  {top5:>7}/{n}  {100 * regret:>10.2f} %")
        ratios = [s[1] for s in summary]
        print(f"median ratio {statistics.median(ratios):.1f}x, min {min(ratios):.1f}x")
        engine.dispose()
    finally:
        if server is not None:
            server.cleanup()
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
