"""The Dagster webserver loads the code location: checked through its GraphQL endpoint, as the UI sees it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from benchmark_platform.definitions import defs
from benchmark_platform.instance import prepare_dagster_home

QUERY = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              assetNodes { assetKey { path } }
              sensors { name }
              schedules { name }
              jobs { name }
            }
          }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(database_url, platform_home):
    prepare_dagster_home()
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-m",
            "benchmark_platform.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            try:
                if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer within 120 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_code_location_loads_with_every_definition(webserver):
    response = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60)
    entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
    assert [e["name"] for e in entries] == ["benchmark_platform.definitions"]
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    repository = location["repositories"][0]
    asset_keys = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    expected_assets = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"hardware_configs", "inference_frameworks", "use_case_taxonomy", "model_catalog"} <= asset_keys
    assert asset_keys == expected_assets
    assert {s["name"] for s in repository["sensors"]} == {s.name for s in defs.sensors or []}
    assert {s["name"] for s in repository["schedules"]} == {s.name for s in defs.schedules or []}
    job_names = {j["name"] for j in repository["jobs"]}
    assert {job.name for job in defs.jobs or []} <= job_names


@pytest.mark.slow
def test_dev_runs_dagster_on_the_embedded_database_under_the_platform_home(tmp_path, monkeypatch):
    """`dev` with no URL: embedded PostgreSQL, DAGSTER_HOME under the platform home, UI and daemon up."""
    monkeypatch.delenv("BENCHMARK_PLATFORM_DATABASE_URL", raising=False)
    monkeypatch.delenv("BENCHMARK_PLATFORM_DAGSTER_PG_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "home"
    port = _free_port()
    env = {**os.environ, "BENCHMARK_PLATFORM_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark_platform.cli", "dev", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
    try:
        deadline = time.monotonic() + 180
        statuses = {}
        while time.monotonic() < deadline and not statuses.get("SENSOR"):
            assert process.poll() is None, process.stdout.read().decode()[-3000:]
            try:
                data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=5).json()
                statuses = {
                    d["daemonType"]: d["healthy"] for d in data["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
                }
            except (httpx.TransportError, KeyError, TypeError):
                pass
            time.sleep(1)
        assert statuses.get("SENSOR") and statuses.get("SCHEDULER"), statuses
        assert (home / "dagster" / "dagster.yaml").is_file()
        assert (home / "pgdata" / "PG_VERSION").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the embedded PostgreSQL stops with `dev`"
