"""The bundled catalogs validate, bad entries are rejected, and seeding is an idempotent upsert."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import get_args

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import Engine, select, text, update

from benchmark_platform import catalogs
from benchmark_platform.catalogs import (
    CatalogError,
    CriteriaWeights,
    FrameworkSpec,
    HardwareSpec,
    UseCaseSpec,
)
from benchmark_platform.cli import main
from benchmark_platform.orm import FORMATS, QUANTIZATIONS, HardwareConfig, InferenceFramework, UseCase
from benchmark_platform.ranking.criteria import CRITERIA

# --- the shipped files -----------------------------------------------------------------------------------------


def test_hardware_catalog_covers_real_inference_gpus_across_clouds() -> None:
    hardware = catalogs.load_hardware()
    assert len(hardware) >= 20
    assert {"aws", "gcp", "azure"} <= {spec.cloud_provider for spec in hardware}
    assert {1, 2, 4, 8} <= {spec.gpu_count for spec in hardware}
    inference_gpus = {"L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100-SXM", "H100-NVL", "H200", "B200", "MI300X"}
    assert inference_gpus <= {spec.gpu_type for spec in hardware}
    assert {spec.specs.vendor for spec in hardware} == {"nvidia", "amd"}
    assert len({spec.name for spec in hardware}) == len(hardware)

    by_name = {spec.name: spec for spec in hardware}
    p5 = by_name["aws-h100-sxm-x8"]
    assert (p5.instance_type, p5.gpu_count, p5.vram_per_gpu_gb, p5.total_vram_gb) == ("p5.48xlarge", 8, 80, 640)
    assert p5.specs.fp8_tflops and p5.specs.interconnect == "nvlink4"
    a100 = by_name["aws-a100-40gb-x8"]
    assert a100.specs.fp8_tflops is None and a100.specs.int8_tops == 624  # Ampere has no FP8 unit
    assert by_name["gcp-h100-sxm-x1"].instance_type == "a3-highgpu-1g"
    for spec in hardware:
        assert spec.specs.source and spec.specs.price_source
        assert spec.spot_available == (spec.spot_cost_per_hour_usd is not None)


def test_issue_21_gpus_have_priced_nodes_where_a_public_price_was_found() -> None:
    by_name = {spec.name: spec for spec in catalogs.load_hardware()}
    tray = by_name["spheron-gb200-x4"]  # one NVL72 compute tray: 2 superchips, 4 GPUs
    assert (tray.gpu_type, tray.gpu_count, tray.specs.interconnect) == ("GB200", 4, "nvlink5")
    assert tray.specs.price_source.startswith("https://") and tray.specs.price_as_of.isoformat() == "2026-03-17"
    assert by_name["tensorwave-mi325x-x8"].cost_per_hour_usd == pytest.approx(8 * 1.95)
    offered = {spec.gpu_type for spec in by_name.values()}
    assert {"B300", "MI355X"} <= set(catalogs.load_gpus()) and not {"B300", "MI355X"} & offered  # no on-demand price
    assert by_name["aws-l4-x1"].specs.price_source.startswith("AWS EC2")  # the cloud's source where none is own


def test_framework_catalog() -> None:
    frameworks = {spec.name: spec for spec in catalogs.load_frameworks()}
    assert set(frameworks) == {"vllm", "tgi", "lmdeploy", "sglang", "tensorrt-llm", "emulator"}
    assert frameworks["lmdeploy"].vendors == frameworks["tensorrt-llm"].vendors == ["nvidia"]
    for name in ("vllm", "sglang", "tgi"):
        assert "amd" in frameworks[name].vendors
    assert [name for name, spec in frameworks.items() if not spec.benchmark_by_default] == ["tensorrt-llm", "emulator"]
    assert frameworks["emulator"].launch_command == "benchmark-platform emulate-server --port {port}"
    assert not frameworks["tgi"].supports_ignore_eos and frameworks["vllm"].supports_ignore_eos
    assert all(spec.supports_streaming for spec in frameworks.values())


def test_use_case_catalog() -> None:
    use_cases = {spec.subcategory: spec for spec in catalogs.load_use_cases()}
    assert len(use_cases) >= 10
    assert {"chatbot", "summarization", "qa", "code-completion", "rag", "batch-offline-generation"} <= set(use_cases)
    for name in ("qa", "classification", "code-completion"):
        assert use_cases[name].characteristics.measure_accuracy
    assert use_cases["batch-offline-generation"].characteristics.sla.ttft_p90_ms is None
    for spec in use_cases.values():
        weights = spec.default_weights.model_dump()
        assert set(weights) == set(CRITERIA)
        assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-6)
        assert min(weights.values()) >= 0


def test_catalog_literals_match_the_schema() -> None:
    assert set(get_args(catalogs.Quantization)) == set(QUANTIZATIONS)
    assert set(get_args(catalogs.WeightFormat)) == set(FORMATS)


def test_every_catalog_file_declares_its_version_and_source() -> None:
    for path in (catalogs.HARDWARE_FILE, catalogs.FRAMEWORKS_FILE, catalogs.USE_CASES_FILE):
        data = yaml.safe_load(path.read_text())
        assert data["catalog_version"] >= 1 and data["source"] and data["as_of"]
    assert catalogs.catalog_versions() == {"hardware": 5, "frameworks": 7, "use_cases": 4}


# --- rejections ------------------------------------------------------------------------------------------------


def _hardware_entry(**changes):
    entry = catalogs.load_hardware()[0].model_dump()
    entry.update(changes)
    return entry


def _framework_entry(**changes):
    entry = catalogs.load_frameworks()[0].model_dump()
    entry.update(changes)
    return entry


def _use_case_entry(**changes):
    entry = catalogs.load_use_cases()[0].model_dump()
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"colour": "green"}, "Extra inputs are not permitted"),
        ({"gpu_count": 0}, "greater than 0"),
        ({"vram_per_gpu_gb": -24}, "greater than 0"),
        ({"cloud_provider": "oracle"}, "'aws', 'gcp', 'azure', 'spheron' or 'tensorwave'"),
        ({"price_source": "https://example.com/prices"}, "give price_source and price_as_of together"),
        ({"cost_per_hour_usd": 0}, "greater than 0"),
        ({"spot_cost_per_hour_usd": 5.0}, "not below the on-demand price"),
        ({"spot_available": False}, "exactly when spot_available"),
        ({"name": "AWS L4"}, "should match pattern"),
        ({"reserved_cost_per_hour_usd": 1.0}, "reserved price 1.0 is not below the on-demand price"),
    ],
)
def test_hardware_spec_rejects(changes, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        HardwareSpec.model_validate(_hardware_entry(**changes))


def test_hardware_spec_rejects_unknown_vendor_and_missing_fp8_key() -> None:
    entry = _hardware_entry()
    entry["specs"] = {**entry["specs"], "vendor": "intel"}
    with pytest.raises(ValidationError, match="vendor"):
        HardwareSpec.model_validate(entry)
    entry = _hardware_entry()
    entry["specs"] = {key: value for key, value in entry["specs"].items() if key != "fp8_tflops"}
    with pytest.raises(ValidationError, match="fp8_tflops"):
        HardwareSpec.model_validate(entry)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"launch_command": "vllm serve {model} --gpu {gpu}"}, "unknown placeholders"),
        ({"launch_command": "vllm serve {model}"}, "must contain {port}"),
        ({"quantization_flags": {"int3": "--q"}}, "quantization_flags"),
        ({"supports_formats": ["safetensors"]}, "does not support"),
        ({"vendors": ["nvidia", "nvidia"]}, "more than once"),
        ({"efficiency": {"prefill": 1.5, "decode": 0.5}}, "less than or equal to 1"),
        ({"benchmark_by_default": None}, "benchmark_by_default"),
        ({"completions_path": "v1/completions"}, "should match pattern"),
    ],
)
def test_framework_spec_rejects(changes, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        FrameworkSpec.model_validate(_framework_entry(**changes))


def test_use_case_weights_must_sum_to_one_and_be_non_negative() -> None:
    weights = dict.fromkeys(CRITERIA, 0.2)
    assert CriteriaWeights.model_validate(weights)
    with pytest.raises(ValidationError, match="sum to 1.1"):
        CriteriaWeights.model_validate({**weights, "accuracy": 0.3})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        CriteriaWeights.model_validate({**weights, "accuracy": -0.2, "throughput": 0.6})
    with pytest.raises(ValidationError, match="expected a number, not true/false"):
        CriteriaWeights.model_validate({**weights, "accuracy": True})
    with pytest.raises(ValidationError, match=r"not a registered criterion: 'latency' \(registered: ttft_p90, "):
        CriteriaWeights.model_validate({**weights, "latency": 0.0})
    with pytest.raises(ValidationError, match="no weight for the registered criterion 'accuracy'"):
        CriteriaWeights.model_validate({key: 0.25 for key in CRITERIA if key != "accuracy"})


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"subcategory": "Chat Bot"}, "should match pattern"),
        ({"characteristics": {"typical_input_tokens": 0}}, "greater than 0"),
        ({"pipeline_tag": None}, "pipeline_tag"),
    ],
)
def test_use_case_spec_rejects(changes, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        UseCaseSpec.model_validate(_use_case_entry(**changes))


def _characteristics(**changes):
    entry = _use_case_entry()
    entry["characteristics"] = {**entry["characteristics"], **changes}
    return entry


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"input_tokens_range": [600, 900]}, "must hold typical_input_tokens 512"),
        ({"output_tokens_range": [16, 128]}, "must hold typical_output_tokens 256"),
        ({"sequence_lengths": [2048, 1024]}, "ascending without repeats"),
        ({"sequence_lengths": []}, "at least 1 item"),
        ({"typical_input_tokens": 3000, "input_tokens_range": [128, 4096]}, "no bucket holding the typical prompt"),
        ({"concurrency": [1, 2, 4, 8, 64]}, r"keep the base sweep .* missing \[16, 32\]"),
        ({"concurrency": [1, 2, 4, 8, 16, 32]}, "interactive use case must reach 64"),
        ({"serving": "offline"}, "offline use case must reach 256"),
        ({"serving": "realtime"}, "'interactive' or 'offline'"),
        ({"price_basis": "preemptible"}, "'on-demand', 'spot' or 'reserved'"),
        ({"cost_unit": "per-token"}, "'output-tokens', 'total-tokens' or 'requests'"),
        ({"price_basis": None}, "price_basis"),
    ],
)
def test_use_case_lengths_and_sweeps_are_validated(changes, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        UseCaseSpec.model_validate(_characteristics(**changes))


def test_every_use_case_declares_lengths_buckets_and_a_sweep_reaching_the_fields_range() -> None:
    for spec in catalogs.load_use_cases():
        traits = spec.characteristics
        assert {1, 2, 4, 8, 16, 32} <= set(traits.concurrency)
        assert max(traits.concurrency) >= (64 if traits.serving == "interactive" else 256)
        assert traits.sequence_lengths[0] >= traits.typical_input_tokens or len(traits.sequence_lengths) > 1
        assert traits.input_tokens_range[0] <= traits.typical_input_tokens <= traits.input_tokens_range[1]
    by_name = {spec.subcategory: spec.characteristics for spec in catalogs.load_use_cases()}
    assert by_name["chatbot"].sequence_lengths == [1024] and by_name["chatbot"].serving == "interactive"
    assert max(by_name["batch-offline-generation"].concurrency) >= 256


def test_each_use_case_states_its_price_basis_and_cost_unit() -> None:
    """Interactive use cases on on-demand prices, offline ones on spot; prefill-heavy ones costed per token read and
    written (or per request for a label), generation-heavy ones per token written."""
    for spec in catalogs.load_use_cases():
        traits = spec.characteristics
        assert traits.price_basis == ("on-demand" if traits.serving == "interactive" else "spot"), spec.subcategory
        prefill_heavy = traits.typical_input_tokens >= 4 * traits.typical_output_tokens
        expected = (
            "output-tokens"
            if not prefill_heavy
            else ("requests" if traits.typical_output_tokens <= 16 else "total-tokens")
        )
        assert traits.cost_unit == expected, spec.subcategory
    by_name = {spec.subcategory: spec.characteristics for spec in catalogs.load_use_cases()}
    assert (by_name["rag"].cost_unit, by_name["classification"].cost_unit) == ("total-tokens", "requests")


def test_a_reserved_price_names_its_source_and_date(tmp_path: Path) -> None:
    data = yaml.safe_load(catalogs.HARDWARE_FILE.read_text())
    data["instances"][0]["reserved_cost_per_hour_usd"] = 0.5
    with pytest.raises(catalogs.CatalogError, match=r"aws-l4-x1\): a reserved price needs reserved_price_source"):
        catalogs.load_hardware(_write(tmp_path / "unsourced.yaml", data))
    data["clouds"]["aws"]["reserved_price_source"] = "AWS EC2 Savings Plans page, 1-year, no upfront"
    with pytest.raises(catalogs.CatalogError, match="give reserved_price_source and reserved_price_as_of together"):
        catalogs.load_hardware(_write(tmp_path / "undated.yaml", data))
    data["clouds"]["aws"]["reserved_price_as_of"] = "2025-07-01"
    [l4, *_] = catalogs.load_hardware(_write(tmp_path / "reserved.yaml", data))
    assert l4.to_row()["reserved_cost_per_hour_usd"] == 0.5
    assert l4.specs.reserved_price_source.startswith("AWS EC2 Savings Plans")
    assert all(spec.reserved_cost_per_hour_usd is None for spec in catalogs.load_hardware())  # none gathered yet


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_catalog_file_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    data = yaml.safe_load(catalogs.HARDWARE_FILE.read_text())

    duplicated = {**data, "instances": data["instances"] + data["instances"][:1]}
    with pytest.raises(CatalogError, match="duplicate instance names: aws-l4-x1") as caught:
        catalogs.load_hardware(_write(tmp_path / "dup.yaml", duplicated))
    assert caught.value.path == tmp_path / "dup.yaml"

    unknown_gpu = {**data, "instances": [{**data["instances"][0], "gpu_type": "TPU-v5e"}]}
    with pytest.raises(CatalogError, match=r"instances\[0\] \(aws-l4-x1\): gpu_type 'TPU-v5e'"):
        catalogs.load_hardware(_write(tmp_path / "gpu.yaml", unknown_gpu))

    bad_entry = {**data, "instances": [{**data["instances"][0], "gpu_count": -1}]}
    with pytest.raises(CatalogError, match=r"instances\[0\]\.gpu_count"):
        catalogs.load_hardware(_write(tmp_path / "count.yaml", bad_entry))

    unversioned = {key: value for key, value in data.items() if key != "catalog_version"}
    with pytest.raises(CatalogError, match="catalog_version: Field required"):
        catalogs.load_hardware(_write(tmp_path / "noversion.yaml", unversioned))

    with pytest.raises(CatalogError, match="malformed YAML"):
        catalogs.load_frameworks(_write(tmp_path / "broken.yaml", "frameworks: [unclosed\n"))

    use_cases = yaml.safe_load(catalogs.USE_CASES_FILE.read_text())
    twice = {**use_cases, "use_cases": use_cases["use_cases"] * 2}
    with pytest.raises(CatalogError, match="duplicate use case subcategories"):
        catalogs.load_use_cases(_write(tmp_path / "uc.yaml", twice))


# --- seeding ---------------------------------------------------------------------------------------------------


def _ids(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as connection:
        return {
            "hardware": dict(connection.execute(select(HardwareConfig.name, HardwareConfig.id)).all()),
            "frameworks": dict(connection.execute(select(InferenceFramework.name, InferenceFramework.id)).all()),
            "use_cases": dict(connection.execute(select(UseCase.subcategory, UseCase.id)).all()),
        }


def test_seed_is_idempotent_and_restores_edited_rows(engine: Engine) -> None:
    expected = {
        "hardware_configs": len(catalogs.load_hardware()),
        "inference_frameworks": len(catalogs.load_frameworks()),
        "use_case_taxonomy": len(catalogs.load_use_cases()),
    }
    assert catalogs.seed(engine) == expected
    first = _ids(engine)
    assert {key: len(value) for key, value in first.items()} == {
        "hardware": expected["hardware_configs"],
        "frameworks": expected["inference_frameworks"],
        "use_cases": expected["use_case_taxonomy"],
    }

    with engine.begin() as connection:
        connection.execute(
            update(HardwareConfig).where(HardwareConfig.name == "aws-h100-sxm-x8").values(cost_per_hour_usd=0.01)
        )
    assert catalogs.seed(engine) == expected
    assert _ids(engine) == first

    with engine.connect() as connection:
        p5 = connection.execute(select(HardwareConfig).where(HardwareConfig.name == "aws-h100-sxm-x8")).one()
        vllm = connection.execute(select(InferenceFramework).where(InferenceFramework.name == "vllm")).one()
        qa = connection.execute(select(UseCase).where(UseCase.subcategory == "qa")).one()
    assert p5.cost_per_hour_usd == 55.04 and p5.total_vram_gb == 640
    assert p5.specs["vendor"] == "nvidia" and p5.specs["memory_bandwidth_gbps"] == 3350
    assert vllm.capabilities["vendors"] == ["nvidia", "amd"] and vllm.capabilities["benchmark_by_default"] is True
    assert vllm.capabilities["efficiency"] == {"prefill": 0.55, "decode": 0.8}
    assert vllm.config_template["launch_command"].startswith("vllm serve {model}")
    assert vllm.supports_quantization and vllm.supports_streaming
    assert qa.characteristics["measure_accuracy"] is True and qa.characteristics["sla"]["ttft_p90_ms"] == 500
    assert math.isclose(sum(qa.default_weights.values()), 1.0)


def test_seed_catalogs_one_by_one(engine: Engine) -> None:
    assert catalogs.seed_hardware(engine) == len(catalogs.load_hardware())
    frameworks = len(catalogs.load_frameworks())
    assert catalogs.seed_frameworks(engine) == frameworks == 6
    assert catalogs.seed_use_cases(engine) == len(catalogs.load_use_cases())
    assert catalogs.seed_frameworks(engine) == frameworks
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM inference_frameworks")) == frameworks


def test_seed_command(engine: Engine) -> None:
    result = CliRunner().invoke(main, ["seed", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"]["hardware_configs"] == len(catalogs.load_hardware())
    assert report["catalog_versions"] == catalogs.catalog_versions()

    result = CliRunner().invoke(main, ["seed"])
    assert result.exit_code == 0, result.output
    assert "use_case_taxonomy: 10 rows" in result.output
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM use_case_taxonomy")) == 10
