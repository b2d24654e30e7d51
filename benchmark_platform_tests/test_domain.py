"""The domain facts: declared once, loaded from the database by one loader, and the same whether they come from the
database or straight from the catalogs and manifests (as ``simulate`` reads them)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from benchmark_platform import catalogs, domain, manifests, matrix, queue
from benchmark_platform.runners import ModelFacts
from benchmark_platform_tests.factories import seed_with_model


def test_the_architecture_is_declared_once():
    """The matrix's version, a runner's model and a manifest's architecture block all extend ``domain.Architecture``:
    none declares an architecture field of its own beyond making it required."""
    assert matrix.VersionSpec is domain.ModelShape
    assert ModelFacts is domain.ModelFacts
    for model in (domain.ModelShape, domain.ModelFacts, manifests.ArchitectureFacts):
        assert issubclass(model, domain.Architecture)
        assert list(model.model_fields)[: len(domain.Architecture.model_fields)] == list(
            domain.Architecture.model_fields
        )
    # what each reader requires of the shape
    required = {
        model: {name for name, field in model.model_fields.items() if field.is_required()}
        & set(domain.Architecture.model_fields)
        for model in (domain.ModelShape, domain.ModelFacts, manifests.ArchitectureFacts)
    }
    assert required[domain.ModelShape] == {"num_layers", "num_kv_heads", "head_dim"}
    assert required[domain.ModelFacts] == {"num_layers", "num_kv_heads", "head_dim", "hidden_size"}
    assert required[manifests.ArchitectureFacts] == required[domain.ModelFacts] | {
        "num_attention_heads",
        "max_position_embeddings",
    }


def test_the_kv_heads_check_holds_wherever_the_shape_is_given():
    shape = dict(parameters=8, quantization="fp16", quantization_bits=16, format="safetensors", num_layers=2)
    with pytest.raises(ValidationError, match="not a multiple of num_kv_heads"):
        domain.ModelShape(**shape, num_attention_heads=32, num_kv_heads=7, head_dim=128)
    assert domain.ModelShape(**shape, num_attention_heads=32, num_kv_heads=8, head_dim=128).num_kv_heads == 8


def test_facts_from_the_database_equal_facts_from_the_catalogs_and_manifest(engine):
    """One loader for the matrix and the worker (``queue.facts``), and ``simulate``'s converters from the bundled
    files: for every seeded hardware config and framework, and the registered version, they agree field by field."""
    version_id = seed_with_model(engine)
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / "llama-3.1-8b.yaml")
    awq = next(version for version in manifest.versions if version.version == "int4-awq")
    with engine.connect() as connection:
        model = queue.load_model_version(connection, version_id)
        inputs = queue.load_matrix_inputs(connection, version_id)
        hardware_ids = dict(connection.execute(text("SELECT name, id FROM hardware_configs")).all())
        framework_ids = dict(connection.execute(text("SELECT name, id FROM inference_frameworks")).all())
        loaded = [
            (hardware, framework, queue.load_config_facts(
                connection, version_id, hardware_ids[hardware.name], framework_ids[framework.name], "chatbot"
            ))
            for hardware in catalogs.load_hardware()
            for framework in catalogs.load_frameworks()
        ]  # fmt: skip
    assert model == manifests.model_facts(manifest, awq)
    assert model.max_position_embeddings == manifest.architecture_facts.max_position_embeddings
    assert inputs.version == model  # the matrix reads the version through the same loader
    assert loaded
    for hardware, framework, facts in loaded:
        assert facts.model == model
        assert facts.hardware == domain.hardware_facts_from_catalog(hardware)
        assert facts.framework == domain.framework_facts_from_catalog(framework)
        assert facts.workload.name == "chatbot"


@pytest.mark.parametrize("version_key", ["gpt-oss-120b@mxfp4", "deepseek-r1@fp8"])
def test_moe_facts_come_back_from_model_config_as_the_manifest_states_them(engine, version_key):
    """Experts, MLA's latent, sliding windows and the version's precision facts survive ``model_config``; the
    matrix's hardware options say which GPUs have FP4 tensor cores."""
    version_id = seed_with_model(engine, version_key)
    name, _, version = version_key.partition("@")
    manifest = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{name}.yaml")
    spec = next(v for v in manifest.versions if v.version == version)
    with engine.connect() as connection:
        model = queue.load_model_version(connection, version_id)
        inputs = queue.load_matrix_inputs(connection, version_id)
    assert model == manifests.model_facts(manifest, spec)
    assert model.moe is not None and model.moe == manifest.architecture_facts.moe
    assert (model.latent_attention is not None) == (name == "deepseek-r1")
    assert (model.sliding_window, model.dense_weight_bits, model.fp4_scheme) == (
        (domain.SlidingWindow(window=128, layers=18), 16, "mxfp4") if name == "gpt-oss-120b" else (None, None, None)
    )
    fp4 = {option.name: option.fp4 for option in inputs.hardware}
    assert fp4["aws-b200-x8"] and not fp4["aws-h100-sxm-x8"] and not fp4["gcp-h100-sxm-x1"]


def test_a_version_lacking_an_architecture_fact_is_refused_naming_it(engine):
    version_id = seed_with_model(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE model_versions SET model_config = model_config - 'hidden_size' WHERE id = :id"),
            {"id": version_id},
        )
    with engine.connect() as connection, pytest.raises(LookupError, match="lacks architecture fact 'hidden_size'"):
        queue.load_model_version(connection, version_id)
    with pytest.raises(LookupError, match="lacks architecture fact 'hidden_size'"):
        queue.populate_matrix(engine, version_id)


def test_every_listing_of_a_config_key_takes_it_from_the_domain():
    """The config key is declared once (``domain.ConfigKey``); each place that lists its columns follows it."""
    import dataclasses

    from benchmark_platform import matrix, orm, queue
    from benchmark_platform.domain import CONFIG_DIMENSIONS, CONFIG_KEY_COLUMNS, SERVING_OPTION_COLUMNS
    from benchmark_platform.ranking import RESULT_FRAME_COLUMNS
    from benchmark_platform.ranking.rankings import CONFIGURATION_KEY, STORED_DEPLOYMENT_COLUMNS

    plain_dimensions = ("workload_type", "batch_size", "sequence_length", "tensor_parallel")
    assert CONFIG_DIMENSIONS == (*plain_dimensions, *SERVING_OPTION_COLUMNS)
    assert SERVING_OPTION_COLUMNS == (
        "expert_parallel",
        "data_parallel_attention",
        "speculative_method",
        "kv_cache_dtype",
        "prefix_caching",
    )
    size = len(CONFIG_KEY_COLUMNS)
    [unique] = [c for c in orm.BenchmarkConfig.__table__.constraints if c.name == "unique_config"]
    assert tuple(column.name for column in unique.columns) == CONFIG_KEY_COLUMNS
    assert tuple(field.name for field in dataclasses.fields(queue.Claim))[:size] == CONFIG_KEY_COLUMNS
    assert tuple(field.name for field in dataclasses.fields(queue.PlanRow))[3 : 3 + size - 3] == CONFIG_DIMENSIONS
    assert tuple(field.name for field in dataclasses.fields(matrix.ConfigEntry))[2:-1] == CONFIG_DIMENSIONS
    start = RESULT_FRAME_COLUMNS.index("workload_type")
    assert RESULT_FRAME_COLUMNS[start : start + len(CONFIG_DIMENSIONS)] == CONFIG_DIMENSIONS
    # A ranked deployment is keyed by its options too, stored and in the ranking's frames.
    assert set(SERVING_OPTION_COLUMNS) <= set(CONFIGURATION_KEY) & set(STORED_DEPLOYMENT_COLUMNS)
    constraints = orm.DeploymentRanking.__table__.constraints
    [deployment] = [c for c in constraints if c.name == "uq_deployment_rankings_deployment"]
    assert set(SERVING_OPTION_COLUMNS) <= {column.name for column in deployment.columns}


def test_serving_option_literals_match_the_schema_checks():
    from typing import get_args

    from benchmark_platform import domain, orm

    assert get_args(domain.SpeculativeMethod) == orm.SPECULATIVE_METHODS
    assert get_args(domain.KvCacheDtype) == orm.KV_CACHE_DTYPES
    assert ("none", *get_args(domain.Speculation)) == orm.SPECULATIVE_METHODS


def test_deployment_shape_names_only_the_options_that_are_not_the_default():
    from benchmark_platform.domain import PLAIN_DEPLOYMENT, ServingOptions, deployment_shape

    assert deployment_shape(1, PLAIN_DEPLOYMENT) == "TP 1"
    options = ServingOptions(8, True, "eagle3", "fp8", True)
    assert deployment_shape(8, options) == "TP 8, EP 8, DP-attn, EAGLE-3, KV fp8, prefix cache"
    assert deployment_shape(2, ServingOptions(kv_cache_dtype="fp8"), replicas=4) == "TP 2 x 4 replicas, KV fp8"


def test_a_serving_option_flag_with_an_unknown_placeholder_is_refused():
    from pydantic import ValidationError

    from benchmark_platform.domain import ServingOptionFlags

    assert ServingOptionFlags(expert_parallel="--ep-size {ep}", speculative={"eagle3": "--draft {draft_model}"})
    with pytest.raises(ValidationError, match=r"unknown placeholders \['eps'\]"):
        ServingOptionFlags(expert_parallel="--ep-size {eps}")
