"""The Dagster webserver loads the code location: checked through its GraphQL endpoint, as the UI sees it."""

from __future__ import annotations

import os
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
