"""The runner registry is the one place that names runners, their user options and their default claim batch: the
worker command, the Dagster resource and the worker all read it."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import threading
import uuid

import pytest
from click.testing import CliRunner

from benchmark_platform.cli import main
from benchmark_platform.defs.benchmarks import BenchmarkRunnerResource
from benchmark_platform.runners import RUNNER_NAMES, RUNNERS, get_runner
from benchmark_platform.worker import WorkerOptions


@pytest.mark.parametrize("name", RUNNER_NAMES)
def test_each_runner_declares_options_its_class_takes(name: str) -> None:
    entry = RUNNERS[name]
    module, _, class_name = entry.factory.partition(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), class_name)).parameters
    assert set(entry.user_options) <= set(parameters), f"{name} declares options its class does not take"
    assert entry.claim_batch >= 1 and entry.description
    runner = get_runner(name)
    runner.close()


@pytest.mark.parametrize("name", RUNNER_NAMES)
def test_worker_and_resource_claim_the_runners_default_batch(name: str) -> None:
    assert WorkerOptions(runner=name).claim_batch == RUNNERS[name].claim_batch
    options = BenchmarkRunnerResource(runner=name).worker_options(uuid.uuid4(), "aws-l4-x1", "w", threading.Event())
    assert options.claim_batch == RUNNERS[name].claim_batch
    assert set(options.runner_options) <= set(RUNNERS[name].user_options)  # no other runner's options leak in
    resource = BenchmarkRunnerResource(runner=name, claim_batch=7)
    assert resource.worker_options(None, "aws-l4-x1", "w", threading.Event()).claim_batch == 7


def test_the_worker_command_offers_the_registered_runners() -> None:
    worker = main.commands["worker"]
    runner_option = next(param for param in worker.params if param.name == "runner")
    assert tuple(runner_option.type.choices) == RUNNER_NAMES
    batch_help = next(param for param in worker.params if param.name == "claim_batch").help
    for entry in RUNNERS.values():
        assert f"{entry.claim_batch} for {entry.name}" in batch_help


def test_simulate_seconds_reaches_only_the_simulated_runner() -> None:
    assert RUNNERS["simulated"].options_from({"simulate_seconds": 0.5, "base_url": None}) == {"simulate_seconds": 0.5}
    assert RUNNERS["openai"].options_from({"simulate_seconds": 0.5, "base_url": "http://x"}) == {"base_url": "http://x"}
    with pytest.raises(ValueError, match="unknown runner 'gpu'; choose one of simulated, openai"):
        WorkerOptions(runner="gpu")


def test_the_openai_runner_takes_a_load_profile_by_name() -> None:
    options = RUNNERS["openai"].options_from({"profile": {"kind": "poisson", "rate": 4.0}, "seed": 1})
    assert options == {"profile": {"kind": "poisson", "rate": 4.0}}
    assert get_runner("openai", **options).profile == {"kind": "poisson", "rate": 4.0}
    with pytest.raises(ValueError, match="the sweep profile gives several results"):
        get_runner("openai", profile={"kind": "sweep"})


def test_the_catalogs_import_nothing_of_the_http_client() -> None:
    """Validating a catalog needs the dataset names and prompt words (``workloads``), never the load generator: a fresh
    interpreter that imports the catalogs has loaded neither the OpenAI family nor httpx (the old import circle)."""
    probe = (
        "import sys, benchmark_platform.catalogs\n"
        "print(sorted(m for m in sys.modules if m == 'httpx' or m.startswith('benchmark_platform.runners.openai')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_worker_command_and_the_resource_take_their_settings_from_worker_options() -> None:
    """One declaration: each worker flag and each resource field of a ``WorkerOptions`` setting has its default (and
    the flag its description)."""
    fields = WorkerOptions.model_fields
    params = {param.name: param for param in main.commands["worker"].params}
    shared = set(params) & set(fields)
    assert shared >= {"claim_batch", "lease_seconds", "max_attempts", "db_retry_seconds", "replan_seconds", "runner"}
    for name in shared:
        assert params[name].default == fields[name].default, name
        assert params[name].help.startswith(fields[name].description), name
    assert params["max_run_minutes"].default * 60 == fields["max_run_seconds"].default
    resource_fields = BenchmarkRunnerResource.model_fields
    assert set(resource_fields) & set(fields) >= {"claim_batch", "lease_seconds", "max_attempts", "replan_seconds"}
    for name in set(resource_fields) & set(fields):
        assert resource_fields[name].get_default(call_default_factory=True) == fields[name].get_default(
            call_default_factory=True
        ), name


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "3"], "--batch-size is now --claim-batch"),
        (["--runner", "openai", "--simulate-seconds", "1"], "--simulate-seconds applies to the simulated runner"),
        (["--base-url", "http://127.0.0.1:9"], "--base-url applies to the openai runner, not to simulated"),
        (["--no-replan", "--replan-seconds", "9"], "not both"),
    ],
)
def test_the_worker_command_refuses_what_it_would_ignore(flags: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["worker", "--model-version", "no-such-model@v", *flags])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"request_rate": 2.0, "profile": {"kind": "concurrent"}}, "not to concurrent"),
        ({"request_rate": 2.0, "profile": {"kind": "poisson", "rate": 3.0}}, "not both"),
    ],
)
def test_the_openai_runner_refuses_a_rate_its_profile_would_ignore(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_runner("openai", **options)
