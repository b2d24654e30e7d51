"""The held-out error stated beside every simulated result (``runners/simulated/held_out.py``): which validation rows
answer for a result, what they say, and the checked-in file they come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark_platform.cli import main
from benchmark_platform.domain import MixtureOfExperts
from benchmark_platform.runners.simulated import held_out
from benchmark_platform.runners.simulated.held_out import HeldOutRow, held_out_error, held_out_rows, held_out_text
from benchmark_platform_tests.factories import H100, VLLM, llama_8b

ROOFLINE = {"backend": "roofline"}
V1 = VLLM.model_copy(update={"version": "0.11.0"})  # vLLM's V1 engine generation
MOE = llama_8b(moe=MixtureOfExperts(experts=128, experts_per_token=8, expert_intermediate_size=768))


def _row(n: int, *, ttft: float, backend="roofline", kind="dense", engine="vllm-v1", family="H100-SXM") -> HeldOutRow:
    return HeldOutRow(
        id=f"row-{backend}-{kind}-{engine}-{family}-{n}",
        backend=backend,
        model_kind=kind,
        engine=engine,
        vendor="amd" if family.startswith("cdna") else "nvidia",
        gpu_family=family,
        errors={"ttft": ttft, "output_throughput": 0.1},
    )


def test_a_result_takes_its_own_gpu_and_engine_where_enough_rows_publish_the_metric():
    rows = (
        *(_row(n, ttft=e) for n, e in enumerate((-0.4, -0.3, 0.1))),
        *(_row(n, ttft=0.9, family="A100-80GB") for n in range(5)),
        *(_row(n, ttft=2.0, kind="moe") for n in range(5)),
    )
    ttft = held_out_error(ROOFLINE, llama_8b(), H100, V1, rows)["ttft"]
    assert ttft == {
        "median_abs_error": 0.3,
        "median_error": -0.3,
        "rows": 3,
        "scope": "H100-SXM x vllm-v1, dense, roofline",
    }
    assert held_out_error(ROOFLINE, llama_8b(), H100, V1, rows)["tpot"] is None  # no row publishes it


def test_the_scope_widens_within_the_vendor_before_it_crosses_it():
    few_here = (_row(0, ttft=-0.5), _row(1, ttft=-0.5))
    elsewhere = tuple(_row(n, ttft=0.2, family="A100-80GB") for n in range(2))
    amd = tuple(_row(n, ttft=2.5, family="cdna3") for n in range(5))
    other_engine = tuple(_row(n, ttft=0.8, engine="sglang") for n in range(3))
    kernels = tuple(_row(n, ttft=-0.7, backend="kernels", engine="sglang") for n in range(4))

    def scope(rows):
        return held_out_error(ROOFLINE, llama_8b(), H100, V1, rows)["ttft"]["scope"]

    amd_other_engine = tuple(_row(n, ttft=2.5, engine="sglang", family="cdna3") for n in range(5))
    # another vendor's rows answer only when the vendor's own are too few
    assert scope(few_here + elsewhere + amd) == "vllm-v1 on any NVIDIA GPU, dense, roofline"
    assert scope(few_here + amd) == "vllm-v1 on any GPU, dense, roofline"
    assert scope(few_here + other_engine + amd_other_engine) == "any NVIDIA GPU and engine, dense, roofline"
    assert scope(few_here + kernels + amd_other_engine) == "any NVIDIA GPU, engine and predictor, dense"
    assert (
        held_out_error(ROOFLINE, llama_8b(), H100, V1, few_here + kernels + amd_other_engine)["ttft"]["median_error"]
        == -0.7
    )  # the NVIDIA rows of the other predictor, not the AMD rows of this one
    assert scope(few_here + amd_other_engine) == "any GPU and engine, dense, roofline"
    # the vendor's rows of another engine answer before another vendor's rows of the same engine
    nvidia_other_engine = tuple(_row(n, ttft=0.8, engine="sglang") for n in range(10))
    assert scope(few_here + amd + nvidia_other_engine) == "any NVIDIA GPU and engine, dense, roofline"
    amd_kernels = tuple(_row(n, ttft=-0.7, backend="kernels", engine="sglang", family="cdna3") for n in range(4))
    assert scope(few_here + amd_kernels) == "any GPU, engine and predictor, dense"
    # rows of the other model kind never answer, however many
    assert held_out_error(ROOFLINE, MOE, H100, V1, few_here + other_engine + kernels)["ttft"] is None


def test_the_phrase_says_size_direction_count_and_scope():
    rows = tuple(_row(n, ttft=e) for n, e in enumerate((-0.5, -0.4, -0.3, 0.2)))
    text = held_out_text(held_out_error(ROOFLINE, llama_8b(), H100, V1, rows))
    assert text == (
        "median |error| throughput 10 % (mostly high), TTFT 35 % (mostly low) on 4 / 4 validation rows of "
        "H100-SXM x vllm-v1, dense, roofline; fewer than 3 validation rows for TPOT"
    )
    mixed = tuple(_row(n, ttft=e) for n, e in enumerate((-0.4, 0.3, 0.35, -0.5)))
    assert "TTFT 38 % on" in held_out_text(held_out_error(ROOFLINE, llama_8b(), H100, V1, mixed))


def test_the_bundled_file_loads_and_a_malformed_one_is_refused_naming_it(tmp_path: Path):
    rows = held_out_rows()
    assert len(rows) >= 100 and {r.backend for r in rows} == {"roofline", "kernels"}
    broken = tmp_path / "held_out_errors.yaml"
    broken.write_text("rows:\n- id: x\n  backend: crystal-ball\n")
    with pytest.raises(
        ValueError,
        match=r"held_out_errors.yaml: not a held-out error file \(rows.0.backend: Input should be .*--write-held-out",
    ):
        held_out_rows(broken)
    with pytest.raises(ValueError, match="not a held-out error file"):
        held_out_rows(tmp_path)  # a directory, not a regular file


def test_simulate_states_the_held_out_error_beside_the_predictor():
    command = ["simulate", "--model-version", "llama-3.1-8b@fp16", "--hardware", "gcp-h100-sxm-x1", "--framework",
               "vllm", "--concurrency", "8", "--input-tokens", "512", "--output-tokens", "128"]  # fmt: skip
    text = CliRunner().invoke(main, command)
    assert text.exit_code == 0, text.output
    [line] = [line for line in text.output.splitlines() if line.lstrip().startswith("held-out error:")]
    assert "validation rows of H100-SXM x vllm-v1, dense, roofline" in line
    stated = json.loads(CliRunner().invoke(main, [*command, "--json"]).output)["detailed_metrics"]["predictor"]
    expected = held_out_error(stated, llama_8b(), H100, V1)
    assert stated["held_out_error"]["ttft"]["rows"] >= held_out.MIN_ROWS
    assert stated["held_out_error"]["ttft"]["scope"] == expected["ttft"]["scope"]
