"""Model manifests: validation names the file and field, registration upserts in one transaction, keys resolve."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from benchmark_platform.cli import main
from benchmark_platform.manifests import (
    EXAMPLE_MANIFESTS_DIR,
    ManifestError,
    load_manifest,
    register_model,
    register_models,
    resolve_model_version,
    version_key,
    vram_requirement_gb,
)
from benchmark_platform.manifests import list_version_keys as list_keys
from benchmark_platform.orm import Model, ModelVersion, version_key_expression, version_key_sql

LLAMA_8B = EXAMPLE_MANIFESTS_DIR / "llama-3.1-8b.yaml"
LLAMA_70B = EXAMPLE_MANIFESTS_DIR / "llama-3.1-70b.yaml"
QWEN_7B = EXAMPLE_MANIFESTS_DIR / "qwen2.5-7b.yaml"


def test_example_manifests_hold_real_architecture_facts() -> None:
    assert sorted(path.name for path in EXAMPLE_MANIFESTS_DIR.glob("*.yaml")) == [
        "deepseek-r1.yaml",
        "gpt-oss-120b.yaml",
        "gpt-oss-20b.yaml",
        "llama-3.1-70b.yaml",
        "llama-3.1-8b.yaml",
        "qwen2.5-7b.yaml",
        "qwen3-30b-a3b.yaml",
    ]
    small = load_manifest(LLAMA_8B)
    assert small.parameters == 8_030_261_248
    facts = small.architecture_facts
    assert (facts.num_layers, facts.hidden_size, facts.num_attention_heads, facts.num_kv_heads, facts.head_dim) == (
        32,
        4096,
        32,
        8,
        128,
    )
    assert {version.format for version in small.versions} == {"safetensors", "awq", "gptq"}
    assert "llama-3.1-8b@int4-awq" in small.version_keys()
    large = load_manifest(LLAMA_70B)
    assert [version.version for version in large.versions] == ["fp16", "fp8", "int4-awq"]
    assert large.architecture_facts.num_layers == 80
    assert load_manifest(QWEN_7B).architecture_facts.num_kv_heads == 4


def test_top_level_examples_link_points_at_the_bundled_manifests() -> None:
    repository_examples = Path(__file__).resolve().parents[1] / "examples" / "models" / "llama-3.1-8b.yaml"
    assert repository_examples.resolve() == LLAMA_8B.resolve()


def test_the_version_key_reads_the_same_in_python_in_orm_queries_and_in_sql_text(engine: Engine) -> None:
    register_model(engine, load_manifest(LLAMA_8B))
    with engine.connect() as connection:
        python_keys = set(list_keys(connection))
        orm_keys = set(connection.scalars(select(version_key_expression()).join_from(ModelVersion, Model)))
        sql = f"SELECT {version_key_sql()} FROM model_versions v JOIN models m ON m.id = v.model_id"
        text_keys = set(connection.scalars(text(sql)))
    assert python_keys == orm_keys == text_keys
    assert version_key("llama-3.1-8b", "int4-awq") in python_keys


def test_vram_requirement_formula() -> None:
    assert vram_requirement_gb(8_030_261_248, 16) == pytest.approx(19.2726, abs=1e-4)
    assert vram_requirement_gb(70_000_000_000, 4) == pytest.approx(42.0)
    assert vram_requirement_gb(1_000_000_000, 8) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        vram_requirement_gb(0, 16)


def _manifest_data() -> dict:
    return yaml.safe_load(LLAMA_8B.read_text())


def _write(tmp_path: Path, data, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


def _with_version(data: dict, index: int, **changes) -> dict:
    versions = [dict(version) for version in data["versions"]]
    versions[index].update(changes)
    return {**data, "versions": versions}


def _bad_manifests() -> list:
    data = _manifest_data()
    return [
        pytest.param(_without(data, "parameters"), "parameters", "Field required", id="missing-field"),
        pytest.param({**data, "parameters": -8}, "parameters", "greater than 0", id="negative-parameters"),
        pytest.param(
            _with_version(data, 1, quantization="int3"), "versions[1].quantization", "Input should be", id="unknown-q"
        ),
        pytest.param(
            _with_version(data, 0, quantization_bits=8), "versions[0].quantization_bits", "fp16 stores 16", id="bits"
        ),
        pytest.param(
            _with_version(data, 3, quantization="fp16", quantization_bits=16),
            "versions[3].format",
            "awq checkpoints hold int4",
            id="awq-holding-fp16",
        ),
        pytest.param(
            {**data, "versions": data["versions"] + data["versions"][:1]}, "versions", "'fp16' is listed", id="dup"
        ),
        pytest.param({**data, "versions": []}, "versions", "at least 1 item", id="no-versions"),
        pytest.param({**data, "size": "small"}, "size", "Extra inputs", id="unknown-key"),
        pytest.param(
            {**data, "architecture_facts": {**data["architecture_facts"], "num_kv_heads": 7}},
            "architecture_facts.num_kv_heads",
            "not a multiple",
            id="kv-heads",
        ),
        pytest.param(
            "name: x\nversions: [\n",
            "(yaml)",
            "malformed YAML: did not find expected node content (line 3)",
            id="malformed-yaml",
        ),
        pytest.param("- just\n- a list\n", "(document)", "expected a mapping", id="not-a-mapping"),
    ]


@pytest.mark.parametrize(("data", "field", "message"), _bad_manifests())
def test_bad_manifest_names_file_and_field(tmp_path: Path, data, field: str, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.path == path
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: {field}: ")


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the manifest") as caught:
        load_manifest(tmp_path / "absent.yaml")
    assert caught.value.field == "(file)"


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (
            connection.scalar(select(func.count()).select_from(Model)),
            connection.scalar(select(func.count()).select_from(ModelVersion)),
        )


def test_register_model_upserts_and_resolves(engine: Engine) -> None:
    manifest = load_manifest(LLAMA_8B)
    keys = register_model(engine, manifest)
    assert keys == manifest.version_keys()
    with Session(engine) as session:
        first_ids = list_keys(session.connection())
        awq = session.get_one(ModelVersion, first_ids["llama-3.1-8b@int4-awq"])
        model = session.scalars(select(Model)).one()
    assert sorted(first_ids) == sorted(keys)
    assert (awq.quantization, awq.quantization_bits, awq.format) == ("int4", 4, "awq")
    assert awq.vram_requirement_gb == pytest.approx(vram_requirement_gb(8_030_261_248, 4))
    assert awq.model_config["num_kv_heads"] == 8 and awq.model_config["baseline_accuracy"] == 0.694
    assert model.parameters == 8_030_261_248 and "llama" in model.tags and model.metadata_["license"] == "llama3.1"

    # Registering again (with a changed artifact) updates in place: same rows, same ids.
    changed = manifest.model_copy(
        update={"versions": [manifest.versions[0].model_copy(update={"artifact_uri": "s3://mirror/llama"})]}
    )
    assert register_model(engine, changed) == ["llama-3.1-8b@fp16"]
    register_model(engine, manifest)
    assert _counts(engine) == (1, 5)
    with engine.connect() as connection:
        assert list_keys(connection) == first_ids
        fp16_id = first_ids[version_key("llama-3.1-8b", "fp16")]
        assert resolve_model_version(connection, "llama-3.1-8b@fp16") == fp16_id
        assert resolve_model_version(connection, str(fp16_id)) == fp16_id
        assert resolve_model_version(connection, fp16_id) == fp16_id
        with pytest.raises(LookupError, match="did you mean llama-3.1-8b@int4-awq"):
            resolve_model_version(connection, "llama-3.1-8b@int4_awq")
        with pytest.raises(LookupError, match="no model version has id"):
            resolve_model_version(connection, uuid.uuid4())
        with pytest.raises(LookupError, match="expected NAME@VERSION"):
            resolve_model_version(connection, "gpt-5")


def test_resolve_on_an_empty_registry_says_how_to_register(engine: Engine) -> None:
    with engine.connect() as connection:
        assert list_keys(connection) == {}
        with pytest.raises(LookupError, match="register-model"):
            resolve_model_version(connection, "llama-3.1-8b@fp16")


def test_register_model_cli(engine: Engine) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["register-model", str(LLAMA_8B), str(QWEN_7B)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == ["llama-3.1-8b@fp16", "llama-3.1-8b@fp8"]
    assert "qwen2.5-7b@int4-gguf" in result.output.splitlines()

    result = runner.invoke(main, ["register-model", "--json", str(LLAMA_70B)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["llama-3.1-70b@fp16", "llama-3.1-70b@fp8", "llama-3.1-70b@int4-awq"]
    assert _counts(engine) == (3, 13)


def test_register_model_cli_rejects_bad_input_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    bad = _write(tmp_path, {**_manifest_data(), "name": "other-model", "parameters": -1})
    result = CliRunner().invoke(main, ["register-model", str(QWEN_7B), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: parameters: " in result.output
    assert _counts(engine) == (0, 0)

    twice = _write(tmp_path, _manifest_data(), "copy-of-llama.yaml")
    result = CliRunner().invoke(main, ["register-model", str(LLAMA_8B), str(twice)])
    assert result.exit_code == 2
    assert f"{twice}: name: model 'llama-3.1-8b' is also defined in {LLAMA_8B}" in result.output
    assert _counts(engine) == (0, 0)


def test_register_models_is_one_transaction(engine: Engine) -> None:
    good = load_manifest(QWEN_7B)
    # Valid for pydantic but refused by the database (format outside the schema's list): nothing may remain.
    broken = load_manifest(LLAMA_8B)
    broken = broken.model_copy(
        update={"versions": [broken.versions[0].model_copy(update={"format": "onnx"})]}  # bypasses validation
    )
    with pytest.raises(Exception, match="format_known"):
        register_models(engine, [good, broken])
    assert _counts(engine) == (0, 0)
