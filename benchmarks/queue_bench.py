"""Queue benchmark: matrix population, claim+complete throughput and claim latency, and the claim query's plan.

    python benchmarks/queue_bench.py                      # a throwaway embedded PostgreSQL (deleted afterwards)
    python benchmarks/queue_bench.py --database-url URL   # an existing, EMPTY database (it is migrated and filled)
    python benchmarks/queue_bench.py --quick              # smaller table and shorter runs, for a smoke test
    python benchmarks/queue_bench.py --versus-only        # only the side-by-side drain against PgQueuer
    python benchmarks/queue_bench.py --population-only    # only the matrix population (every bundled version)

What it does: seeds the catalogs, registers the example models, adds synthetic copies of the 8-GPU H100 instance
(``bench-h100-NNN``) so one model version's matrix reaches 10,000 and 100,000 configs, times ``populate_matrix``
for every bundled version (the mixture-of-experts ones included) on the bundled catalog, for those (and an
idempotent re-run), fills ``benchmark_configs`` to about 1,000,000 rows with further versions, ANALYZEs, then
runs 1, 8 and 32 worker processes at claim batch sizes 1, 10 and 100: each claims from its hardware pool, records
a fixed measurement per config with ``queue.complete`` and times every claim. Figures depend on the machine: note
its cores and load next to them.

Side by side with a peer (first, in a database of its own on the same server): one model version's whole matrix
(about 40,000 configs) drained by ``--workers`` worker processes (``run_worker``: claims, the simulated runner's
serving simulation per config, results recorded a batch per statement, heartbeats), then the same number of no-op
jobs drained through PgQueuer (``QueueManager.run(mode=drain)``) by as many processes with the same batch size.
Process start is included on both sides. Before it, the simulator's own cost per config is timed in one process, so
that what the queue costs and what the simulated benchmark costs can be told apart.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text

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
        f"  {key + ' ' + label:<42} {len(hardware):>4} pools {report.matrix_size:>8,} configs  "
        f"created {report.created:>8,}  {report.seconds:6.2f} s  ({report.matrix_size / report.seconds:,.0f} configs/s)"
    )
    return report


# An 8B version fits every config on 8 x H100: each pool adds 4 frameworks x 4 tensor-parallel degrees x 110 cells
# (each use case's concurrency sweep x its representative sequence lengths) = 1,760 configs.
CONFIGS_PER_POOL = 1760


def bench_population(engine: Engine, pools: list[str], target_rows: int, quick: bool) -> None:
    print("matrix population (COPY into a temporary table + INSERT ... ON CONFLICT DO NOTHING, one transaction):")
    catalog = [spec.name for spec in catalogs.load_hardware()]
    with engine.connect() as connection:
        bundled = list(manifests.list_version_keys(connection))
    for key in bundled:  # every bundled version, the MoE ones included: the matrix each gets from the catalog
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
            params |= {"preferred_framework_id": preferred, "max_preemptions": 5, "rescue_limit": 100}
            plan = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), params).scalars().all()
            connection.rollback()  # EXPLAIN ANALYZE really claims: undo it
            title = "with a preferred framework" if preferred else "without a preferred framework"
            print(f"\nEXPLAIN ANALYZE of the claim (one hardware pool, LIMIT 10, {title}):")
            print("\n".join(f"  {line}" for line in plan))


OUR_WORKER = """
import sys
from benchmark_platform import database
from benchmark_platform.runners import Measurement
from benchmark_platform.worker import WorkerOptions, run_worker
url, version, batch, runner = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
FIXED = Measurement(ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0,
                    tpot_p99_ms=18.0, throughput_tokens_sec=900.0, rps_sustained=3.5, runner="simulated")

class FixedRunner:
    # No benchmark at all: every config gets the same (simulated-labelled) result row.
    name = "fixed"
    def __init__(self, should_stop): pass
    def run(self, spec): return FIXED
    def close(self): pass

summary = run_worker(database.get_engine(url, migrate=False),
                     WorkerOptions(model_version_id=version, claim_batch=batch, spool_dir="/nonexistent"),
                     runner_factory=FixedRunner if runner == "fixed" else None)
print(summary.completed)
sys.exit(summary.exit_code)
"""

PGQUEUER_WORKER = """
import asyncio, sys
from datetime import timedelta
import psycopg
from pgqueuer.db import PsycopgDriver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

async def main(url, batch):
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    manager = QueueManager(Queries(PsycopgDriver(connection)))
    done = 0

    @manager.entrypoint("noop")
    async def noop(job):
        nonlocal done
        done += 1

    await manager.run(batch_size=batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    await connection.close()
    print(done)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def _database(url: str, name: str) -> str:
    """A fresh database ``name`` on the server of ``url``; its URL."""
    admin = create_engine(database.with_driver(url, "psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drain(command: list[list[str]]) -> tuple[float, int]:
    """Start the processes together, wait for all; wall seconds (process start included) and the sum they print."""
    began = time.perf_counter()
    processes = [subprocess.Popen(arguments, stdout=subprocess.PIPE, text=True) for arguments in command]
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - began
    if any(process.returncode for process in processes):
        raise RuntimeError(f"a drain process failed: {[p.returncode for p in processes]}")
    return wall, sum(int(output.split()[-1]) for output in outputs)


def _simulator_cost(engine: Engine, version_id, samples: int = 2000) -> float:
    """Seconds of one process's CPU per config spent building its run spec and simulating it (no queue at all)."""
    from benchmark_platform.runners import get_runner
    from benchmark_platform.worker import build_run_spec

    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM benchmark_configs WHERE model_version_id = :v ORDER BY id LIMIT :n"),
            {"v": version_id, "n": samples},
        ).all()
        specs = [build_run_spec(connection, row) for row in rows]
    runner = get_runner("simulated")
    began = time.process_time()
    for spec in specs:
        runner.run(spec)
    return (time.process_time() - began) / len(specs)


def bench_versus_pgqueuer(url: str, workers: int, batch: int) -> None:
    import asyncio

    import psycopg
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    ours_url = _database(url, "queue_bench_ours")
    engine = _connect(ours_url)
    migrations.upgrade(engine)
    catalogs.seed(engine)
    for path in sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml")):
        manifests.register_model(engine, manifests.load_manifest(path))
    version_id = _version_id(engine, "llama-3.1-8b@int4-awq")
    jobs = queue.populate_matrix(engine, version_id).created
    per_config = _simulator_cost(engine, version_id)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE benchmark_configs")
    print(
        f"side by side with PgQueuer {importlib.metadata.version('pgqueuer')}: {jobs:,} jobs, {workers} worker "
        f"processes, batch {batch}, process start included"
    )
    print(
        f"  simulator alone (run spec + serving simulation, one process): {per_config * 1e6:,.0f} us per config, "
        f"at most {1 / per_config:,.0f} configs/s per process before any queue work"
    )
    walls = {}
    for runner in ("simulated", "fixed"):
        with engine.begin() as connection:  # the same queue again for the second drain
            connection.execute(text("DELETE FROM benchmark_results"))
            connection.execute(
                text(
                    "UPDATE benchmark_configs SET status = 'pending', claimed_by = NULL, started_at = NULL, "
                    "completed_at = NULL, lease_expires_at = NULL"
                )
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE benchmark_configs")
            connection.exec_driver_sql("VACUUM ANALYZE benchmark_results")
        walls[runner], done = _drain(
            [[sys.executable, "-c", OUR_WORKER, ours_url, str(version_id), str(batch), runner] for _ in range(workers)]
        )
        with engine.connect() as connection:
            results = connection.execute(text("SELECT count(*) FROM benchmark_results")).scalar_one()
        assert done == results == jobs, (runner, done, results, jobs)
    engine.dispose()

    peer_url = _database(url, "queue_bench_pgqueuer")
    plain_peer_url = make_url(peer_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def fill() -> None:
        connection = await psycopg.AsyncConnection.connect(plain_peer_url, autocommit=True)
        queries = Queries(PsycopgDriver(connection))
        await queries.install()
        for start in range(0, jobs, 10_000):
            size = min(10_000, jobs - start)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        await connection.close()

    asyncio.run(fill())
    peer_wall, peer_done = _drain(
        [[sys.executable, "-c", PGQUEUER_WORKER, plain_peer_url, str(batch)] for _ in range(workers)]
    )
    assert peer_done == jobs, (peer_done, jobs)
    peer_rate = jobs / peer_wall
    print(f"  PgQueuer, no-op jobs:                        {peer_rate:>8,.0f} jobs/s    ({peer_wall:.1f} s)")
    for runner, label in (("fixed", "a fixed result row per config (no benchmark)"), ("simulated", "simulated runner")):
        rate = jobs / walls[runner]
        print(
            f"  ours, {label + ':':<39}{rate:>8,.0f} configs/s ({walls[runner]:.1f} s), "
            f"ratio to PgQueuer {rate / peer_rate:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use instead of a throwaway one")
    parser.add_argument("--quick", action="store_true", help="about 100,000 rows and 1 s per cell")
    parser.add_argument("--versus-only", action="store_true", help="only the side-by-side drain against PgQueuer")
    parser.add_argument(
        "--population-only", action="store_true", help="only the matrix population (no drain, no claim timings)"
    )
    parser.add_argument("--workers", type=int, default=4, help="worker processes of the side-by-side drain")
    parser.add_argument("--batch", type=int, default=10, help="claim batch of the side-by-side drain")
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
        if not args.population_only:
            bench_versus_pgqueuer(url, args.workers, args.batch)
        if args.versus_only:
            return 0
        engine = _connect(url)
        migrations.upgrade(engine)
        catalogs.seed(engine)
        for path in sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml")):
            manifests.register_model(engine, manifests.load_manifest(path))
        pools = _clone_hardware(engine, 105)
        bench_population(engine, pools, target_rows, args.quick)
        if not args.population_only:
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
