"""Workers as real processes on real PostgreSQL: concurrency, kill -9, SIGTERM, a database restart, retries.

Every claim and every end of a claim is written to a ``claim_log`` table by a trigger (test-only, created in the test's
own database), so the tests can prove that no config was ever held by two workers at once: per config, the log must
read claim, end, claim, end, ... with each end naming the worker of the claim before it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pgserver
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, make_url, text

from benchmark_platform import database, migrations, queue, settings
from benchmark_platform.cli import main
from benchmark_platform.runners import RunnerError, get_runner
from benchmark_platform.worker import WorkerOptions, run_worker
from benchmark_platform_tests.factories import hardware_id, seed_with_model, status_counts

VERSION_KEY = "llama-3.1-8b@int4-awq"
WORKER_COMMAND = [sys.executable, "-c", "from benchmark_platform.cli import main; main()", "worker"]

CLAIM_LOG = """
CREATE TABLE claim_log (
    seq bigserial PRIMARY KEY, config_id uuid NOT NULL, event text NOT NULL, worker text,
    hardware_config_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION log_claims() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'running' AND OLD.status <> 'running' THEN
        INSERT INTO claim_log (config_id, event, worker, hardware_config_id)
        VALUES (NEW.id, 'claim', NEW.claimed_by, NEW.hardware_config_id);
    ELSIF OLD.status = 'running' AND NEW.status <> 'running' THEN
        INSERT INTO claim_log (config_id, event, worker, hardware_config_id)
        VALUES (NEW.id, 'end:' || NEW.status, OLD.claimed_by, NEW.hardware_config_id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER benchmark_configs_claim_log AFTER UPDATE OF status ON benchmark_configs
FOR EACH ROW EXECUTE FUNCTION log_claims();
"""


def _install_claim_log(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(CLAIM_LOG)


def _assert_every_config_completed_once_by_one_holder_at_a_time(engine: Engine) -> dict[uuid.UUID, list]:
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE status <> 'completed'")).scalar() == 0
        )
        duplicates = connection.execute(
            text("SELECT count(*) FROM (SELECT config_id FROM benchmark_results GROUP BY 1 HAVING count(*) > 1) d")
        ).scalar()
        assert duplicates == 0
        unresulted = connection.execute(
            text(
                "SELECT count(*) FROM benchmark_configs c "
                "WHERE NOT EXISTS (SELECT 1 FROM benchmark_results r WHERE r.config_id = c.id)"
            )
        ).scalar()
        assert unresulted == 0
        events = connection.execute(text("SELECT config_id, event, worker FROM claim_log ORDER BY seq")).all()
    by_config: dict[uuid.UUID, list] = {}
    for config_id, event, worker in events:
        by_config.setdefault(config_id, []).append((event, worker))
    for config_id, history in by_config.items():
        holder = None
        for event, worker in history:
            if event == "claim":
                assert holder is None, f"{config_id} claimed by {worker} while {holder} held it: {history}"
                holder = worker
            else:
                assert holder == worker, f"{config_id} ended by {worker}, but {holder} held it: {history}"
                holder = None
        assert history[-1][0] == "end:completed", history
    return by_config


def _start_worker(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*WORKER_COMMAND, "--model-version", VERSION_KEY, "--no-replan", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def _wait_for(condition, timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)


def _count(engine: Engine, where: str, **params) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM benchmark_configs WHERE {where}"), params).scalar()


def _keep_one_config(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM benchmark_configs WHERE id <> (SELECT id FROM benchmark_configs ORDER BY id LIMIT 1)")
        )


def _commit_without_waiting_for_disk(engine: Engine) -> None:
    """Test speed only: sessions of this throwaway database stop waiting for the WAL flush at commit. Locking and
    visibility, which these tests are about, are unchanged; the server is never crashed, so nothing is lost."""
    with engine.connect() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        connection.commit()


# run_worker in a process of its own without the whole CLI's imports (the CLI path is what the other tests start):
# sixteen interpreters share the machine's two cores.
BARE_WORKER = """
import sys
from benchmark_platform import database
from benchmark_platform.worker import WorkerOptions, run_worker
version, worker_id, hardware = sys.argv[1:4]
options = WorkerOptions(model_version_id=version, worker_id=worker_id, hardware=hardware or None, claim_batch=10,
                         replan_seconds=0)
summary = run_worker(database.get_engine(), options)
print(summary.line())
sys.exit(summary.exit_code)
"""


def _start_bare_worker(version_id: uuid.UUID, worker_id: str, hardware: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BARE_WORKER, str(version_id), worker_id, hardware],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def version_id(engine: Engine) -> uuid.UUID:
    _install_claim_log(engine)
    return seed_with_model(engine, VERSION_KEY)


@pytest.mark.slow
def test_sixteen_worker_processes_complete_every_config_exactly_once(engine, version_id):
    pools = ("aws-l4-x1", "gcp-l4-x1", "aws-a10g-x1", "gcp-l4-x4")  # the four-GPU pool at TP 1, 2 and 4
    report = queue.populate_matrix(engine, version_id, hardware=pools)
    assert report.created > 2500
    _commit_without_waiting_for_disk(engine)
    pinned = {f"pinned-{i}": pools[i % 2] for i in range(4)}  # four workers serve one pool each
    workers = [_start_bare_worker(version_id, name, pool) for name, pool in pinned.items()]
    workers += [_start_bare_worker(version_id, f"free-{i}") for i in range(12)]
    outcomes = [_finish(worker, timeout=120) for worker in workers]
    assert [code for code, _ in outcomes] == [0] * 16, outcomes
    assert all("queue drained" in output for _, output in outcomes)

    history = _assert_every_config_completed_once_by_one_holder_at_a_time(engine)
    assert len(history) == report.created
    with engine.connect() as connection:
        claims = connection.execute(
            text("SELECT worker, hardware_config_id FROM claim_log WHERE event = 'claim'")
        ).all()
    assert len({worker for worker, _ in claims}) == 16  # everyone took part
    pool_ids = {name: hardware_id(engine, pool) for name, pool in pinned.items()}
    for worker, pool in claims:
        if worker in pool_ids:
            assert pool == pool_ids[worker], f"{worker} claimed a config outside its pool"


@pytest.mark.slow
def test_a_killed_worker_is_recovered_by_the_next_worker_without_a_reaper(engine, version_id):
    report = queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm", "tgi"])
    _commit_without_waiting_for_disk(engine)
    # 0.02 s per config: the heir needs several seconds of wall time for the rest, and the victim's 4 s leases expire
    # meanwhile or while the heir waits for them (it drains only once nothing runs under a live lease). Four seconds,
    # not less: the heir's own heartbeats must keep its leases through a loaded machine's stalls.
    arguments = ("--lease-seconds", "4", "--simulate-seconds", "0.02", "--claim-batch", "10")
    victim = _start_worker(*arguments, "--worker-id", "victim")

    def mid_run() -> bool:
        assert victim.poll() is None, f"the victim ended before it could be killed: {_finish(victim)}"
        return _count(engine, "status = 'completed'") >= 20 and _count(engine, "status = 'running'") > 0

    # up to two minutes: the victim's interpreter starts while the suite's heaviest tests load both cores (a CI run
    # once saw it complete fewer than 20 configs within 30 s); once it works it completes a config every 0.02 s
    _wait_for(mid_run, timeout=120)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    orphaned = _count(engine, "status = 'running' AND claimed_by = 'victim'")
    assert orphaned > 0
    heir = _start_worker(*arguments, "--worker-id", "heir")  # nobody runs reap-stale
    # up to three minutes: the heir simulates each of the 250-odd configs it takes over, and a loaded two-core runner
    # once left it unfinished after 60 s (its progress line read 5 configs a second; the whole test usually takes
    # 25-55 s)
    code, output = _finish(heir, timeout=180)
    assert code == 0 and "queue drained" in output, output
    assert len(_assert_every_config_completed_once_by_one_holder_at_a_time(engine)) == report.created
    assert _count(engine, "preemption_count = 1 AND retry_count = 0") == orphaned  # counted, not as failures
    with engine.connect() as connection:
        rescued = (
            connection.execute(text("SELECT DISTINCT worker FROM claim_log WHERE event = 'end:pending'"))
            .scalars()
            .all()
        )
    assert rescued == ["victim"]  # the claims the heir took back were the victim's


def test_a_long_benchmark_that_heartbeats_is_never_taken_away(engine, version_id):
    """Time scaled: a 1 s lease stands for the old rule's 120 minutes; the run lasts four leases, while the reaper
    and a rival worker try all the time to take it."""
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    _keep_one_config(engine)
    worker = _start_worker("--lease-seconds", "1", "--simulate-seconds", "4", "--worker-id", "slow")
    _wait_for(lambda: _count(engine, "status = 'running'") == 1)
    oldest_age = 0.0
    while worker.poll() is None:
        assert queue.reap(engine) == queue.ReapReport(0, 0)
        assert queue.claim(engine, "rival", limit=1) == []
        with engine.connect() as connection:
            age = connection.execute(
                text("SELECT extract(epoch FROM now() - started_at) FROM benchmark_configs WHERE status = 'running'")
            ).scalar()
        oldest_age = max(oldest_age, age or 0.0)
        time.sleep(0.1)
    code, output = _finish(worker)
    assert code == 0 and "1 completed" in output, output
    assert oldest_age > 3  # the claim outlived its lease three times over and more
    history = _assert_every_config_completed_once_by_one_holder_at_a_time(engine)
    assert [events for events in history.values()] == [[("claim", "slow"), ("end:completed", "slow")]]


def test_a_run_past_its_maximum_run_time_is_stopped_and_its_attempt_fails(engine, version_id):
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    _keep_one_config(engine)
    options = WorkerOptions(
        model_version_id=version_id, runner_options={"simulate_seconds": 30}, max_run_seconds=0.3, max_attempts=1,
    )  # fmt: skip
    started = time.monotonic()
    summary = run_worker(engine, options)
    assert time.monotonic() - started < 10
    assert (summary.timed_out, summary.failed_for_good, summary.completed) == (1, 1, 0)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT status, error_message FROM benchmark_configs")).one()
    assert row.status == "failed" and "maximum run time of 0.3 s" in row.error_message


class _FlakyRunner:
    """The simulated runner behind a fault that strikes each config's first run only (a dropped connection to the
    inference server, say): what a retry after a backoff is for."""

    name = "flaky"

    def __init__(self, should_stop) -> None:
        self.inner = get_runner("simulated", should_stop=should_stop)
        self.failed_once: set = set()

    def run(self, spec):
        if spec.config_id not in self.failed_once:
            self.failed_once.add(spec.config_id)
            raise RunnerError("connection reset by the inference server")
        return self.inner.run(spec)

    def close(self) -> None:
        self.inner.close()


def test_a_transient_fault_is_retried_after_the_backoff_and_succeeds(engine, version_id):
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    _keep_one_config(engine)
    options = WorkerOptions(model_version_id=version_id, retry_base_seconds=1.0, worker_id="patient", replan_seconds=0)
    summary = run_worker(engine, options, runner_factory=_FlakyRunner)
    assert (summary.completed, summary.failed_attempts, summary.failed_for_good) == (1, 1, 0)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT status, retry_count, error_message FROM benchmark_configs")).one()
        claims = connection.execute(text("SELECT at FROM claim_log WHERE event = 'claim' ORDER BY seq")).scalars()
        first, second = claims.all()
        results = connection.execute(text("SELECT count(*) FROM benchmark_results")).scalar_one()
    assert (row.status, row.retry_count, results) == ("completed", 1, 1)
    assert (second - first).total_seconds() >= 0.5  # the backoff: 1 s × [0.5, 1), not at once


def test_cancel_stops_a_running_config(database_url, engine, version_id):
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    worker = _start_worker("--lease-seconds", "1.5", "--simulate-seconds", "60", "--claim-batch", "1")
    _wait_for(lambda: _count(engine, "status = 'running'") == 1)
    cancelled = CliRunner().invoke(main, ["cancel", VERSION_KEY, "--hardware", "aws-l4-x1", "--framework", "vllm"])
    assert cancelled.exit_code == 0 and "1 running" in cancelled.output, cancelled.output
    asked = time.monotonic()
    code, output = _finish(worker, timeout=30)
    assert time.monotonic() - asked < 10  # seen at the next heartbeat (0.5 s), not after the 60 s run
    assert code == 0 and "1 cancelled" in output and "0 completed" in output, output
    assert status_counts(engine) == {"cancelled": _count(engine, "true")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM benchmark_results")).scalar_one() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_hands_its_claims_back_at_once(engine, version_id, signum):
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    worker = _start_worker("--simulate-seconds", "60", "--claim-batch", "4", "--worker-id", "spot")
    _wait_for(lambda: _count(engine, "status = 'running' AND claimed_by = 'spot'") == 4)
    time.sleep(0.3)  # well inside the first (60 s) config
    signalled = time.monotonic()
    worker.send_signal(signum)
    code, output = _finish(worker, timeout=15)
    assert code == 0, output
    assert time.monotonic() - signalled < 5
    assert "4 released" in output and "stopped" in output
    assert status_counts(engine) == {"pending": _count(engine, "true")}
    assert _count(engine, "retry_count > 0 OR claimed_by IS NOT NULL") == 0


def test_run_worker_in_process_stops_on_its_event(engine, version_id):
    """What a Dagster op does: run_worker in a thread, stopped through the event instead of a signal."""
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    stop = threading.Event()
    options = WorkerOptions(
        model_version_id=version_id, hardware="aws-l4-x1", claim_batch=3, stop_event=stop,
        runner_options={"simulate_seconds": 30}, worker_id="op",
    )  # fmt: skip
    summaries = []
    thread = threading.Thread(target=lambda: summaries.append(run_worker(engine, options)))
    thread.start()
    _wait_for(lambda: _count(engine, "status = 'running'") == 3)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    [summary] = summaries
    assert (summary.released, summary.completed, summary.stopped, summary.exit_code) == (3, 0, True, 0)
    assert _count(engine, "status <> 'pending' OR retry_count > 0") == 0


def test_a_worker_drains_the_framework_it_has_loaded_before_switching(engine, version_id):
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm", "tgi", "sglang"])
    with engine.begin() as connection:  # keep the test short: 8 configs per framework, of interleaved priorities
        connection.execute(
            text(
                "DELETE FROM benchmark_configs WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
                "(PARTITION BY framework_id ORDER BY priority, batch_size, sequence_length, workload_type) AS n "
                "FROM benchmark_configs) ranked WHERE n > 8)"
            )
        )
    summary = run_worker(engine, WorkerOptions(model_version_id=version_id, claim_batch=1))
    assert summary.completed == 24
    assert summary.framework_switches == 2  # one per framework after the first, not one per config


def test_a_config_that_keeps_failing_fails_for_good_after_max_attempts(engine, version_id):
    """A real failure: 70B fp16 needs 141 GB of weights, so one replica on one 24 GB L4 cannot hold even one
    sequence, and the simulated runner refuses it each time."""
    fp16 = seed_with_model(engine, "llama-3.1-70b@fp16")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type, "
                "batch_size, sequence_length, tensor_parallel) SELECT :v, h.id, f.id, 'chatbot', 32, 8192, 1 "
                "FROM hardware_configs h, inference_frameworks f WHERE h.name = 'aws-l4-x1' AND f.name = 'vllm'"
            ),
            {"v": fp16},
        )
    summary = run_worker(engine, WorkerOptions(model_version_id=fp16, max_attempts=3, retry_base_seconds=0.02))
    assert (summary.failed_attempts, summary.failed_for_good, summary.completed) == (3, 1, 0)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT status, retry_count, error_message FROM benchmark_configs")).one()
    assert (row.status, row.retry_count) == ("failed", 3)
    assert "does not fit" in row.error_message


# ------------------------------------------------------------------------------------------------ database restart


@dataclass
class RestartableDatabase:
    url: str
    engine: Engine
    restart: Callable[[float], None]  # drops every connection and refuses new ones for that many seconds


@pytest.fixture
def restartable_database(request, monkeypatch) -> Iterator[RestartableDatabase]:
    """Embedded mode: a private pgserver, really stopped and started with pg_ctl (the session's shared server is left
    alone: other fixtures keep pooled connections to it). External mode (BENCHMARK_PLATFORM_DATABASE_URL set): the
    test database's backends are terminated with pg_terminate_backend and new connections refused meanwhile, which
    is what a restart looks like to the workers."""
    if settings.configured_database_url():
        url = request.getfixturevalue("database_url")
        engine = database.get_engine(url)
        name = make_url(url).database

        admin = create_engine(
            database.with_driver(request.getfixturevalue("server_url"), "psycopg"), isolation_level="AUTOCOMMIT"
        )

        def outage(seconds: float) -> None:
            # From the server's maintenance database: PostgreSQL refuses to close the database one is connected to.
            with admin.connect() as connection:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
                time.sleep(seconds)
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

        yield RestartableDatabase(url, engine, outage)
        admin.dispose()
        return

    # Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 0700 whenever a session starts, and
    # pg_ctl runs as pgserver's own system user when the tests run as root.
    parent = Path(tempfile.mkdtemp(prefix="bp-restart-"))
    pgdata = parent / "pgdata"
    pgdata.mkdir()
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    url = server.get_uri()
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    engine = database.get_engine(url, migrate=False)
    migrations.upgrade(engine)

    def restart(seconds: float) -> None:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
        time.sleep(seconds)
        server.ensure_postgres_running()

    yield RestartableDatabase(url, engine, restart)
    database.dispose_engines()
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_workers_ride_out_a_database_restart(restartable_database):
    engine = restartable_database.engine
    _install_claim_log(engine)
    version_id = seed_with_model(engine, VERSION_KEY)
    # Four frameworks (about 440 configs) at 0.05 s per config: workers are still busy when the server goes away.
    frameworks = ["vllm", "tgi", "sglang", "lmdeploy"]
    report = queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=frameworks)
    arguments = ("--simulate-seconds", "0.05", "--claim-batch", "5", "--db-retry-seconds", "60")
    workers = [_start_worker(*arguments, "--worker-id", f"w{i}") for i in range(4)]
    _wait_for(lambda: _count(engine, "status = 'completed'") >= 50)
    assert _count(engine, "status = 'pending'") > 100
    restartable_database.restart(2.0)
    outcomes = [_finish(worker, timeout=90) for worker in workers]
    assert [code for code, _ in outcomes] == [0] * 4, outcomes
    retried = [output for _, output in outcomes if " 0 database retries" not in output]
    assert retried, "no worker noticed the restart"
    assert len(_assert_every_config_completed_once_by_one_holder_at_a_time(engine)) == report.created


@pytest.mark.slow
def test_a_result_survives_a_database_outage_longer_than_the_retry_budget(restartable_database, tmp_path):
    engine = restartable_database.engine
    _install_claim_log(engine)
    version_id = seed_with_model(engine, VERSION_KEY)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    _keep_one_config(engine)
    home = {**os.environ, settings.HOME_ENV: str(tmp_path / "home")}
    arguments = [*WORKER_COMMAND, "--model-version", VERSION_KEY, "--no-replan", "--lease-seconds", "120"]
    arguments += ["--db-retry-seconds", "1"]
    first = subprocess.Popen(
        [*arguments, "--simulate-seconds", "2", "--worker-id", "cut-off"],
        env=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _wait_for(lambda: _count(engine, "status = 'running'") == 1)
    restartable_database.restart(6.0)  # the run ends at 2 s; the worker gives up at about 3 s
    code, output = _finish(first)
    assert code == 1 and "1 spooled" in output and "database unreachable" in output, output
    assert len(list((tmp_path / "home" / "spool").glob("*.json"))) == 1
    second = subprocess.run([*arguments, "--worker-id", "next"], env=home, capture_output=True, text=True, timeout=60)
    recorded = "1 recorded from the spool (0 unlinked, 0 rejected)"
    assert second.returncode == 0 and recorded in second.stdout, second.stdout
    assert list((tmp_path / "home" / "spool").glob("*.json")) == []
    history = _assert_every_config_completed_once_by_one_holder_at_a_time(engine)
    assert list(history.values()) == [[("claim", "cut-off"), ("end:completed", "cut-off")]]  # measured once
