"""A deployment of several replicas whose framework has no data parallelism: one server per replica, each on its own
port and GPUs, loaded together and stopped together; and SGLang's data-parallel template. The servers are real
processes (the emulator behind a small wrapper that records what it was given)."""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmark_platform import catalogs, domain
from benchmark_platform.domain import ServingOptions
from benchmark_platform.runners import FrameworkFacts, RunInterrupted, RunnerError, get_runner
from benchmark_platform.runners.launcher import (
    build_launch_command,
    replica_devices,
    serves_data_parallel,
    visible_devices_env,
)
from benchmark_platform_tests.factories import CHATBOT, H100, emulator_process, make_spec

H100_X2 = H100.model_copy(update={"name": "h100-x2", "gpu_count": 2, "cost_per_hour_usd": 8.0})
SHORT_WORKLOAD = CHATBOT.model_copy(update={"typical_output_tokens": 4, "measure_accuracy": False})

# Records its pid and visible devices, starts a worker process, can fail on one GPU (leaving the worker behind) or
# never get healthy, else serves the emulator.
WRAPPER = """
import argparse, json, os, subprocess, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--model")
parser.add_argument("--tp", type=int)
parser.add_argument("--dp", type=int)
parser.add_argument("--record-dir")
parser.add_argument("--fail-on-device")
parser.add_argument("--never-healthy", action="store_true")
args = parser.parse_args()
worker = subprocess.Popen(["sleep", "600"])  # as a framework's engine processes: in the server's process group
visible = {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")}
record = {"pid": os.getpid(), "port": args.port, **visible}
with open(os.path.join(args.record_dir, f"{args.port}.json"), "w") as file:
    json.dump(record, file)
if args.fail_on_device is not None and args.fail_on_device in visible.values():
    print(f"CUDA error: out of memory on GPU {args.fail_on_device}", flush=True)
    sys.exit(3)
if args.never_healthy:
    time.sleep(600)
from benchmark_platform.runners.emulator import EmulatorSettings, build_server
build_server(EmulatorSettings(model=args.model, tpot_ms=1), "127.0.0.1", args.port).run()
"""


def replica_framework(tmp_path: Path, *flags: str) -> FrameworkFacts:
    """An emulator 'framework' without {dp}: a server is one replica."""
    script = tmp_path / "replica_server.py"
    script.write_text(WRAPPER)
    command = [sys.executable, str(script), "--record-dir", str(tmp_path), *flags]
    return FrameworkFacts(
        name="emulator",
        version="0.1.0",
        launch_command=shlex.join(command) + " --port {port} --model {model} --tp {tp}",
        prefill_efficiency=1.0,
        decode_efficiency=1.0,
    )


def records(tmp_path: Path) -> list[dict]:
    """What each spawned server recorded, in port order."""
    return sorted((json.loads(path.read_text()) for path in tmp_path.glob("*.json")), key=lambda r: r["port"])


def live_group_members(pgid: int) -> list[int]:
    """Processes of the process group that are not zombies (a zombie waits for a reaper: it holds no GPU)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def group_is_gone(pid: int, wait_seconds: float = 5.0) -> bool:
    """No live process is left in the server's process group (each server is started in its own session); the
    wait lets a signalled worker finish dying."""
    deadline = time.monotonic() + wait_seconds
    while live_group_members(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def generation_tokens(base_url: str) -> int:
    text = httpx.get(f"{base_url}/metrics", trust_env=False).text
    return int(next(line for line in text.splitlines() if line.startswith("vllm:generation_tokens_total")).split()[-1])


def runner(**options):
    return get_runner("openai", **({"startup_timeout_seconds": 30, "stop_grace_seconds": 10} | options))


def test_each_replica_gets_its_own_gpus_and_the_vendors_variable():
    assert replica_devices(2, 0) == [0, 1] and replica_devices(2, 3) == [6, 7]
    assert visible_devices_env("nvidia", [2, 3], {}) == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert visible_devices_env("amd", [1], {}) == {"HIP_VISIBLE_DEVICES": "1"}
    # A worker that was itself given a subset of the node's GPUs hands each replica its share of that subset.
    assert visible_devices_env("nvidia", [2, 3], {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}) == {"CUDA_VISIBLE_DEVICES": "6,7"}
    with pytest.raises(RunnerError, match="shows 2 GPU"):
        visible_devices_env("nvidia", [2], {"CUDA_VISIBLE_DEVICES": "0,1"})


def test_sglang_and_vllm_run_every_replica_in_one_server_tgi_and_lmdeploy_one_server_per_replica():
    frameworks = {
        spec.name: FrameworkFacts(
            name=spec.name,
            version=spec.version,
            launch_command=spec.launch_command,
            prefill_efficiency=0.5,
            decode_efficiency=0.5,
        )
        for spec in catalogs.load_frameworks()
    }
    assert {name for name, facts in frameworks.items() if serves_data_parallel(facts)} == {"vllm", "sglang"}
    sglang = frameworks["sglang"].model_copy(update={"launch_command": "true " + frameworks["sglang"].launch_command})
    argv = build_launch_command(sglang, make_spec().model, 2, 8000, 4096, data_parallel=4)
    assert argv[argv.index("--tp") + 1] == "2" and argv[argv.index("--dp-size") + 1] == "4"


def test_two_replicas_are_two_servers_on_their_own_ports_and_gpus_loaded_together_and_summed(tmp_path, caplog):
    caplog.set_level("INFO")
    spec = make_spec(
        hardware=H100_X2,
        framework=replica_framework(tmp_path),
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
        batch_size=2,
        sequence_length=16,
    )
    openai = runner(num_requests=40)
    try:
        result = openai.run(spec)
        started = records(tmp_path)
        served = [generation_tokens(replica["base_url"]) for replica in result.detailed_metrics["server"]["replicas"]]
    finally:
        openai.close()

    detail = result.detailed_metrics
    ports = [int(replica["base_url"].rsplit(":", 1)[1]) for replica in detail["server"]["replicas"]]
    assert len(set(ports)) == 2 and sorted(ports) == [r["port"] for r in started]
    by_port = {r["port"]: r for r in started}
    assert [by_port[port]["CUDA_VISIBLE_DEVICES"] for port in ports] == ["0", "1"]  # replica r on GPU r
    assert [replica["env"] for replica in detail["server"]["replicas"]] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    # batch_size concurrent requests per replica, dealt over both servers, each serving about half.
    assert detail["load"]["concurrency"] == 4 and len(detail["load"]["replica_urls"]) == 1
    assert min(served) >= 0.25 * sum(served)
    # One window over both: the node's throughput is what both served, never one replica scaled up.
    assert detail["completed_requests"] == 40 and detail["ttft_ms"]["count"] == 40
    assert result.throughput_tokens_sec == pytest.approx(detail["output_tokens_total"] / detail["wall_seconds"])
    assert result.output_tokens_sec_per_gpu == pytest.approx(result.throughput_tokens_sec / 2)
    deployment = detail["deployment"]
    assert (deployment["replicas"], deployment["servers"], deployment["scaled_from_one_replica"]) == (2, 2, False)
    assert all(group_is_gone(r["pid"]) for r in started)
    messages = [record.getMessage() for record in caplog.records]
    assert {"emulator[0] stopped", "emulator[1] stopped"} <= {m.split(" (")[0] for m in messages}


def test_client_processes_keep_each_replica_at_its_share_of_the_users(tmp_path):
    """Three users per replica over two client processes of three users each: the second process starts on the
    second replica, so each replica still has three users (not four and two)."""
    spec = make_spec(
        hardware=H100_X2,
        framework=replica_framework(tmp_path),
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
        batch_size=3,
        sequence_length=16,
    )
    openai = runner(num_requests=120, profile={"client_processes": 2})
    try:
        result = openai.run(spec)
        served = [generation_tokens(replica["base_url"]) for replica in result.detailed_metrics["server"]["replicas"]]
    finally:
        openai.close()
    assert result.detailed_metrics["completed_requests"] == 120
    assert min(served) >= 0.4 * sum(served), served


def test_a_data_parallel_template_runs_every_replica_in_one_server_on_the_whole_node(tmp_path):
    framework = replica_framework(tmp_path)
    framework = framework.model_copy(update={"launch_command": framework.launch_command + " --dp {dp}"})
    spec = make_spec(
        hardware=H100_X2,
        framework=framework,
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
        batch_size=2,
        sequence_length=16,
    )
    openai = runner(num_requests=20)
    try:
        result = openai.run(spec)
    finally:
        openai.close()
    (started,) = records(tmp_path)
    assert started["CUDA_VISIBLE_DEVICES"] is None  # the server places its replicas on the node's GPUs itself
    detail = result.detailed_metrics
    command = detail["server"]["command"]
    assert command[command.index("--dp") + 1] == "2" and command[command.index("--tp") + 1] == "1"
    assert detail["load"]["concurrency"] == 4 and len(detail["load"]["replica_urls"]) == 0
    assert result.throughput_tokens_sec == pytest.approx(detail["output_tokens_total"] / detail["wall_seconds"])
    assert detail["deployment"]["servers"] == 1 and "data-parallel" in detail["deployment"]["node_figures"]
    assert group_is_gone(started["pid"])


def test_an_interrupted_load_leaves_both_servers_to_close_which_stops_them(tmp_path):
    stop = threading.Event()
    openai = runner(num_requests=5_000, should_stop=stop.is_set)
    spec = make_spec(
        hardware=H100_X2,
        framework=replica_framework(tmp_path),
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
        batch_size=2,
        sequence_length=16,
    )

    def interrupt_once_both_serve() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            started = records(tmp_path)
            try:
                if len(started) == 2 and all(generation_tokens(f"http://127.0.0.1:{r['port']}") > 20 for r in started):
                    stop.set()
            except (httpx.HTTPError, StopIteration):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_both_serve, daemon=True)
    watcher.start()
    try:
        with pytest.raises(RunInterrupted):
            openai.run(spec)
        started = records(tmp_path)
        assert len(started) == 2 and all(live_group_members(r["pid"]) for r in started)
    finally:
        stop.set()
        openai.close()
        watcher.join()
    assert all(group_is_gone(r["pid"]) for r in started)


def test_a_replica_that_dies_at_start_up_stops_the_others(tmp_path):
    amd = H100_X2.model_copy(update={"name": "mi300x-x2", "vendor": "amd"})
    spec = make_spec(
        hardware=amd,
        framework=replica_framework(tmp_path, "--fail-on-device", "1"),
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
    )
    openai = runner(num_requests=4)
    with pytest.raises(RunnerError, match=r"emulator\[1\] exited with code 3 during startup.*out of memory on GPU 1"):
        openai.run(spec)
    started = records(tmp_path)
    assert sorted(r["HIP_VISIBLE_DEVICES"] for r in started) == ["0", "1"]
    assert all(group_is_gone(r["pid"]) for r in started)
    openai.close()  # nothing left to stop


def test_an_interrupt_during_start_up_stops_every_server(tmp_path):
    # a start-up timeout far beyond the bound below: on a loaded machine the two servers take seconds to start and
    # seconds more to stop, and the point is that the interrupt, not the timeout, ends the start-up
    openai = runner(num_requests=4, should_stop=lambda: len(records(tmp_path)) == 2, startup_timeout_seconds=180)
    spec = make_spec(
        hardware=H100_X2,
        framework=replica_framework(tmp_path, "--never-healthy"),
        workload=SHORT_WORKLOAD,
        tensor_parallel=1,
    )
    started_at = time.monotonic()
    with pytest.raises(RunInterrupted, match="start-up interrupted"):
        openai.run(spec)
    assert time.monotonic() - started_at < 90  # not the 180 s start-up timeout
    started = records(tmp_path)
    assert len(started) == 2 and all(group_is_gone(r["pid"]) for r in started)


def test_an_external_endpoint_is_one_replica_scaled_to_the_node_and_says_so():
    spec = make_spec(hardware=H100_X2, workload=SHORT_WORKLOAD, tensor_parallel=1, batch_size=2, sequence_length=16)
    with emulator_process("--tpot-ms", "1") as base_url:
        result = runner(base_url=base_url, num_requests=20).run(spec)
    detail = result.detailed_metrics
    assert detail["load"]["concurrency"] == 2 and len(detail["load"]["replica_urls"]) == 0
    measured = detail["output_tokens_total"] / detail["wall_seconds"]
    assert result.throughput_tokens_sec == pytest.approx(2 * measured)
    assert detail["deployment"]["scaled_from_one_replica"] is True and detail["deployment"]["servers"] is None
    assert "one replica measured" in detail["deployment"]["node_figures"]


def _catalog_framework(name: str) -> FrameworkFacts:
    """A bundled framework whose command starts with ``true`` (on every PATH), so its argv can be built here."""
    facts = domain.framework_facts_from_catalog({spec.name: spec for spec in catalogs.load_frameworks()}[name])
    return facts.model_copy(update={"launch_command": "true " + facts.launch_command})


EAGLE_MODEL = make_spec().model.model_copy(update={"speculative_methods": {"eagle3": "hf://org/llama-eagle3"}})
MOE_OPTIONS = ServingOptions(
    expert_parallel=8, data_parallel_attention=True, speculative_method="eagle3", kv_cache_dtype="fp8"
)


def test_vllm_renders_expert_parallel_dp_attention_eagle3_and_an_fp8_kv_cache():
    """vLLM runs DP attention as TP 1 × eight data-parallel ranks with expert parallelism over them; prefix caching,
    on by default in V1, is turned off for a config that does not ask for it."""
    argv = build_launch_command(_catalog_framework("vllm"), EAGLE_MODEL, 8, 8000, 4096, options=MOE_OPTIONS)
    line = shlex.join(argv[1:])
    assert argv[argv.index("--tensor-parallel-size") + 1] == "1"
    assert argv[argv.index("--data-parallel-size") + 1] == "8"
    assert "--enable-expert-parallel" in argv and "--no-enable-prefix-caching" in argv
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8"
    config = json.loads(argv[argv.index("--speculative-config") + 1])
    assert config == {"method": "eagle3", "model": "org/llama-eagle3", "num_speculative_tokens": 3}, line
    plain = build_launch_command(_catalog_framework("vllm"), EAGLE_MODEL, 8, 8000, 4096)
    assert plain[plain.index("--tensor-parallel-size") + 1] == "8" and "--enable-expert-parallel" not in plain
    cached = build_launch_command(
        _catalog_framework("vllm"), EAGLE_MODEL, 1, 8000, 4096, options=ServingOptions(prefix_caching=True)
    )
    assert "--no-enable-prefix-caching" not in cached


def test_sglang_renders_ep_size_dp_attention_eagle3_and_an_fp8_kv_cache():
    """SGLang keeps --tp at the replica's GPUs and adds --dp-size with --enable-dp-attention."""
    argv = build_launch_command(_catalog_framework("sglang"), EAGLE_MODEL, 8, 8000, 4096, options=MOE_OPTIONS)
    assert argv[argv.index("--tp") + 1] == "8" and argv[argv.index("--dp-size") + 1] == "8"
    assert argv[argv.index("--ep-size") + 1] == "8" and "--enable-dp-attention" in argv
    assert argv[argv.index("--speculative-algorithm") + 1] == "EAGLE3"
    assert argv[argv.index("--speculative-draft-model-path") + 1] == "org/llama-eagle3"
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8_e4m3"
    assert "--disable-radix-cache" in argv
    mtp = build_launch_command(
        _catalog_framework("sglang"), EAGLE_MODEL, 8, 8000, 4096, options=ServingOptions(speculative_method="mtp")
    )
    assert mtp[mtp.index("--speculative-algorithm") + 1] == "NEXTN"


def test_an_option_the_framework_has_no_flag_for_is_refused_naming_it():
    with pytest.raises(RunnerError, match="lmdeploy has no launch flag for expert parallelism, an FP8 KV cache"):
        build_launch_command(
            _catalog_framework("lmdeploy"),
            EAGLE_MODEL,
            8,
            8000,
            4096,
            options=ServingOptions(expert_parallel=8, kv_cache_dtype="fp8"),
        )
