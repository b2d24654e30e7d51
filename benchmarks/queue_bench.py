"""Queue benchmark: matrix population, claim+complete throughput and claim latency, and the claim query's plan.

    python benchmarks/queue_bench.py                      # a throwaway embedded PostgreSQL (deleted afterwards)
    python benchmarks/queue_bench.py --database-url URL   # an existing, EMPTY database (it is migrated and filled)
    python benchmarks/queue_bench.py --quick              # smaller table and shorter runs, for a smoke test

What it does: seeds the catalogs, registers the example models, adds synthetic copies of the 8-GPU H100 instance
(``bench-h100-NNN``) so one model version's matrix reaches 10,000 and 100,000 configs, times ``populate_matrix``
for the bundled catalog, for those (and an idempotent re-run), fills ``benchmark_configs`` to about 1,000,000 rows
with further versions, ANALYZEs, then runs 1, 8 and 32 worker processes at claim batch sizes 1, 10 and 100: each
claims from its hardware pool, records a fixed measurement per config with ``queue.complete`` and times every
claim. Figures depend on the machine: note its cores and load next to them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from benchmark_platform import catalogs, database, manifests, migrations, queue
from benchmark_platform.runners import Measurement

TEMPLATE_HARDWARE = "aws-h100-sxm-x8"
MEASUREMENT = Measurement(
    ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0, tpot_p99_ms=18.0,
    throughput_tokens_sec=900.0, rps_sustained=3.5, detailed_metrics={"source": "queue_bench"}, runner="simulated",
)  # fmt: skip


def _connect(url: str) -> Engine:
    return create_engine(database.with_driver(url, "psycopg"), pool_size=2, pool_pre_ping=True)


def _clone_hardware(engine: Engine, count: int) -> list[str]:
    """``count`` copies of the H100 x8 instance under new names: the matrix grows by one pool per copy."""
    names = [f"bench-h100-{i:03d}" for i in range(count)]
    with engine.begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO hardware_configs (name, gpu_type, gpu_count, vram_per_gpu_gb, total_vram_gb,
                    cost_per_hour_usd, spot_cost_per_hour_usd, cloud_provider, instance_type, spot_available, specs)
                SELECT n.name, gpu_type, gpu_count, vram_per_gpu_gb, total_vram_gb, cost_per_hour_usd + n.i * 0.01,
                       spot_cost_per_hour_usd, cloud_provider, instance_type, spot_available, specs
                FROM hardware_configs, unnest(CAST(:names AS text[])) WITH ORDINALITY AS n(name, i)
                WHERE hardware_configs.name = :template
                ON CONFLICT (name) DO NOTHING
                """
            ),
            {"names": names, "template": TEMPLATE_HARDWARE},
        )
    return names


def _version_id(engine: Engine, key: str):
    with engine.connect() as connection:
        return manifests.resolve_model_version(connection, key)


def _populate(engine: Engine, key: str, hardware: list[str], label: str) -> queue.PopulateReport:
    report = queue.populate_matrix(engine, _version_id(engine, key), hardware=hardware)
    print(
        f"  {key + ' ' + label:<36} {len(hardware):>4} pools {report.matrix_size:>8,} configs  "
        f"created {report.created:>8,}  {report.seconds:6.2f} s  ({report.matrix_size / report.seconds:,.0f} configs/s)"
    )
    return report


# An 8B version fits every config on 8 x H100: each pool adds 4 frameworks x 4 tensor-parallel degrees x 110 cells
# (each use case's concurrency sweep x its representative sequence lengths) = 1,760 configs.
CONFIGS_PER_POOL = 1760


def bench_population(engine: Engine, pools: list[str], target_rows: int, quick: bool) -> None:
    print("matrix population (COPY into a temporary table + INSERT ... ON CONFLICT DO NOTHING, one transaction):")
    catalog = [spec.name for spec in catalogs.load_hardware()]
    for key in ("llama-3.1-8b@int4-awq", "llama-3.1-70b@fp16"):
        _populate(engine, key, catalog, "(bundled catalog)")
    _populate(engine, "llama-3.1-8b@int4-awq", pools[: round(10_000 / CONFIGS_PER_POOL)], "(new)")
    if not quick:
        hundred_thousand = pools[: round(100_000 / CONFIGS_PER_POOL)]
        _populate(engine, "llama-3.1-8b@fp16", hundred_thousand, "(new)")
        _populate(engine, "llama-3.1-8b@fp16", hundred_thousand, "(again)")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM benchmark_configs")).scalar()
        versions = list(manifests.list_version_keys(connection))
    for key in versions:
        if rows >= target_rows:
            break
        rows += queue.populate_matrix(engine, _version_id(engine, key), hardware=pools).created
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE benchmark_configs")
    print(f"  table filled to {rows:,} configs")


def _worker(url: str, worker_id: str, pool_id, batch: int, barrier, seconds: float, out) -> None:
    """Claim and complete for ``seconds`` after every worker is connected; report configs done, claim latencies and
    the time actually spent (the last batch may finish after the deadline)."""
    engine = _connect(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    latencies: list[float] = []
    completed = 0
    barrier.wait()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        claim_started = time.perf_counter()
        held = queue.claim(engine, worker_id, limit=batch, lease_seconds=600, hardware_config_id=pool_id)
        latencies.append(time.perf_counter() - claim_started)
        if not held:
            break
        for claim in held:
            completed += queue.complete(engine, claim, worker_id, MEASUREMENT)
    out.put((completed, latencies, time.perf_counter() - began))
    engine.dispose()


def bench_throughput(url: str, engine: Engine, workers_list: list[int], batches: list[int], seconds: float) -> None:
    pools = _pools(engine)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT count(*) FROM benchmark_configs")).scalar()
    print(
        f"\nclaim + complete against benchmark_configs of {total:,} rows; each worker claims from a hardware pool of "
        f"its own (pools rotate between cells); {seconds:.0f} s per cell; a claim's latency includes the pool's "
        "pre-ping and the commit:"
    )
    next_pool = 0
    print(f"  {'workers':>7} {'batch':>5} {'configs/s':>10} {'claim p50 ms':>13} {'claim p99 ms':>13} {'claims':>7}")
    context = multiprocessing.get_context("spawn")
    for workers in workers_list:
        for batch in batches:
            barrier, out = context.Barrier(workers + 1), context.Queue()
            processes = [
                context.Process(
                    target=_worker,
                    args=(
                        url,
                        f"bench-{workers}-{batch}-{i}",
                        pools[(next_pool + i) % len(pools)],
                        batch,
                        barrier,
                        seconds,
                        out,
                    ),
                )  # fmt: skip
                for i in range(workers)
            ]
            next_pool += workers
            for process in processes:
                process.start()
            barrier.wait()
            results = [out.get() for _ in processes]
            for process in processes:
                process.join()
            completed = sum(done for done, _, _ in results)
            elapsed = max(spent for _, _, spent in results)
            latencies = sorted(latency for _, lats, _ in results for latency in lats)
            p50 = statistics.median(latencies) * 1e3
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3
            print(
                f"  {workers:>7} {batch:>5} {completed / elapsed:>10,.0f} {p50:>13.2f} {p99:>13.2f} {len(latencies):>7}"
            )


def _pools(engine: Engine) -> list:
    """Hardware pools, largest pending backlog first."""
    with engine.connect() as connection:
        return (
            connection.execute(
                text(
                    "SELECT hardware_config_id FROM benchmark_configs WHERE status = 'pending' "
                    "GROUP BY 1 ORDER BY count(*) DESC, 1"
                )
            )
            .scalars()
            .all()
        )


def print_claim_plan(engine: Engine) -> None:
    pool_id = _pools(engine)[0]
    with engine.connect() as connection:
        framework_id = connection.execute(
            text("SELECT framework_id FROM benchmark_configs WHERE hardware_config_id = :p LIMIT 1"), {"p": pool_id}
        ).scalar_one()
        for preferred in (None, framework_id):
            sql = queue.claim_sql(
                hardware_config_id=pool_id, model_version_id=None, preferred_framework=bool(preferred)
            )
            params = {"limit": 10, "worker_id": "explain", "lease_seconds": 60.0, "hardware_config_id": pool_id}
            params["preferred_framework_id"] = preferred
            plan = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), params).scalars().all()
            connection.rollback()  # EXPLAIN ANALYZE really claims: undo it
            title = "with a preferred framework" if preferred else "without a preferred framework"
            print(f"\nEXPLAIN ANALYZE of the claim (one hardware pool, LIMIT 10, {title}):")
            print("\n".join(f"  {line}" for line in plan))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use instead of a throwaway one")
    parser.add_argument("--quick", action="store_true", help="about 100,000 rows and 1 s per cell")
    args = parser.parse_args()
    target_rows = 100_000 if args.quick else 1_000_000
    seconds = 1.0 if args.quick else 4.0

    scratch = None
    if args.database_url:
        url = args.database_url
    else:
        import pgserver

        scratch = Path(tempfile.mkdtemp(prefix="bp-queue-bench-"))
        server = pgserver.get_server(scratch / "pgdata", cleanup_mode="delete")
        url = server.get_uri()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    try:
        engine = _connect(url)
        migrations.upgrade(engine)
        catalogs.seed(engine)
        for path in sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml")):
            manifests.register_model(engine, manifests.load_manifest(path))
        pools = _clone_hardware(engine, 105)
        bench_population(engine, pools, target_rows, args.quick)
        print_claim_plan(engine)
        bench_throughput(url, engine, [1, 8, 32], [1, 10, 100], seconds)
        engine.dispose()
    finally:
        if scratch is not None:
            server.cleanup()
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
