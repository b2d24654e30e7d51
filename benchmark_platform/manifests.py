"""Model manifests: one YAML file per model, listing its architecture facts and its quantized versions.

A manifest is validated in full before anything touches the database, so a bad file changes nothing; errors name
the file and the field. Registering upserts the model by name and each version by (model, version), inside one
transaction, so registering the same manifest twice is harmless and keeps ids stable.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert

from benchmark_platform.catalogs import Quantization, Slug, WeightFormat, error_location
from benchmark_platform.domain import Architecture, ModelFacts, VersionPrecision
from benchmark_platform.orm import VERSION_KEY_SEPARATOR, Model, ModelVersion, version_key_expression
from benchmark_platform.safe_yaml import (
    Int32,
    Int64,
    JsonObject,
    NoBooleanNumbers,
    Text,
    YamlInputError,
    load_yaml_file,
)

EXAMPLE_MANIFESTS_DIR = Path(__file__).parent / "examples" / "models"

# Storage bits per weight each quantization implies.
QUANTIZATION_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}
# Formats that only store some quantizations (safetensors and gguf hold any).
FORMAT_QUANTIZATIONS = {"awq": ("int4",), "gptq": ("int4", "int8")}
# Weights plus about 20% for activations, CUDA context and framework buffers (before any KV cache).
VRAM_OVERHEAD = 1.2
# Where weights may come from. The path after the scheme becomes the inference server's model argument, so it may
# not start with "-" (hf://--trust-remote-code would be read as a flag) and holds no whitespace or control characters.
ARTIFACT_SCHEMES = ("hf", "s3", "gs", "file", "http", "https")
_ARTIFACT_URI = re.compile(rf"(?:{'|'.join(ARTIFACT_SCHEMES)})://(?![-/]*-)[^\s\x00-\x1f\x7f]+")


class ManifestError(Exception):
    """A manifest that cannot be registered; ``path`` is the file and ``field`` the offending field."""

    def __init__(self, path: Path | str, field: str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.field = field
        self.message = message
        self.line = line
        super().__init__(f"{self.path}: {field}: {message}" + (f" (line {line})" if line else ""))


class _Frozen(NoBooleanNumbers):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ArchitectureFacts(Architecture):
    """The shape of the network, from the model's config.json; the roofline and KV-cache estimates need it. A
    manifest states the whole shape: the fields some readers do without (``domain.Architecture``) are required."""

    hidden_size: Int32 = Field(gt=0)
    num_attention_heads: Int32 = Field(gt=0)
    max_position_embeddings: Int32 = Field(gt=0)


class ModelVersionSpec(VersionPrecision):
    """One servable artifact of the model: a quantization stored in a weight format (and, for MoE checkpoints that
    quantize only the experts, the bits of the rest: ``dense_weight_bits``)."""

    version: Slug
    quantization: Quantization
    quantization_bits: Int32 = Field(gt=0)
    format: WeightFormat
    artifact_uri: str = Field(min_length=1, max_length=2000)

    @field_validator("artifact_uri")
    @classmethod
    def _known_scheme_no_flag(cls, value: str) -> str:
        if not _ARTIFACT_URI.fullmatch(value):
            raise ValueError(
                f"expected {', '.join(f'{scheme}://' for scheme in ARTIFACT_SCHEMES)} followed by a path that does not "
                "start with '-' and holds no whitespace or control characters"
            )
        return value

    @field_validator("quantization")
    @classmethod
    def _fp4_states_its_scheme(cls, value: str, info: ValidationInfo) -> str:
        scheme = info.data.get("fp4_scheme")
        if value == "fp4" and scheme is None:
            raise ValueError("an fp4 version states its fp4_scheme (nvfp4 or mxfp4)")
        if value != "fp4" and scheme is not None:
            raise ValueError(f"fp4_scheme {scheme!r} is for fp4 versions, not {value}")
        return value

    @field_validator("quantization_bits")
    @classmethod
    def _bits_match_quantization(cls, value: int, info: ValidationInfo) -> int:
        quantization = info.data.get("quantization")
        if quantization is not None and QUANTIZATION_BITS[quantization] != value:
            raise ValueError(f"{quantization} stores {QUANTIZATION_BITS[quantization]} bits per weight, not {value}")
        return value

    @field_validator("format")
    @classmethod
    def _format_holds_quantization(cls, value: str, info: ValidationInfo) -> str:
        quantization = info.data.get("quantization")
        allowed = FORMAT_QUANTIZATIONS.get(value)
        if quantization is not None and allowed is not None and quantization not in allowed:
            raise ValueError(f"{value} checkpoints hold {' or '.join(allowed)} weights, not {quantization}")
        return value


class ModelManifest(_Frozen):
    """A model and its versions, as registered by ``benchmark-platform register-model``."""

    name: Slug
    architecture: Text = Field(min_length=1, max_length=100)
    parameters: Int64 = Field(gt=0)
    base_model: Text | None = Field(default=None, max_length=200)
    tags: list[Text] = Field(default_factory=list, max_length=100)
    metadata: JsonObject = Field(default_factory=dict)
    architecture_facts: ArchitectureFacts
    versions: list[ModelVersionSpec] = Field(min_length=1)

    @field_validator("architecture_facts")
    @classmethod
    def _parameters_hold_the_experts(cls, facts: ArchitectureFacts, info: ValidationInfo) -> ArchitectureFacts:
        parameters = info.data.get("parameters")
        if facts.moe is None or parameters is None:
            return facts
        per_expert = 3 * facts.hidden_size * facts.moe.expert_intermediate_size
        experts = facts.routed_expert_parameters() + facts.moe_layers() * facts.moe.shared_experts * per_expert
        if experts >= parameters:
            raise ValueError(
                f"its experts alone hold {experts:,} parameters, not fewer than the model's {parameters:,}: check "
                "parameters, experts, expert_intermediate_size and dense_layers"
            )
        return facts

    @field_validator("versions")
    @classmethod
    def _versions_unique(cls, versions: list[ModelVersionSpec], info: ValidationInfo) -> list[ModelVersionSpec]:
        counts = Counter(version.version for version in versions)
        if duplicated := sorted(name for name, count in counts.items() if count > 1):
            raise ValueError(f"version {', '.join(map(repr, duplicated))} is listed more than once")
        facts = info.data.get("architecture_facts")
        for version in versions:
            if version.dense_weight_bits is not None and facts is not None and facts.moe is None:
                raise ValueError(
                    f"version {version.version!r}: dense_weight_bits is for MoE models (architecture_facts.moe)"
                )
        return versions

    def version_keys(self) -> list[str]:
        return [version_key(self.name, version.version) for version in self.versions]


def version_key(model_name: str, version: str) -> str:
    """The readable key of a model version, e.g. ``llama-3.1-8b@int4-awq``."""
    return f"{model_name}{VERSION_KEY_SEPARATOR}{version}"


def model_facts(manifest: ModelManifest, version: ModelVersionSpec) -> ModelFacts:
    """One version of a validated manifest, as a runner sees it (no database needed)."""
    return ModelFacts(
        name=manifest.name,
        version_key=version_key(manifest.name, version.version),
        artifact_uri=version.artifact_uri,
        parameters=manifest.parameters,
        quantization=version.quantization,
        quantization_bits=version.quantization_bits,
        format=version.format,
        **manifest.architecture_facts.model_dump(),
        **_precision(version),
    )


def _precision(version: ModelVersionSpec) -> dict[str, Any]:
    """The version's precision facts that ``model_config`` keeps (those it states)."""
    return version.model_dump(mode="json", include=set(VersionPrecision.model_fields), exclude_none=True)


def vram_requirement_gb(parameters: int, bits: int) -> float:
    """GPU memory (GB) to hold the weights and runtime overhead: parameters x bits / 8 x 1.2 / 1e9."""
    if parameters <= 0 or bits <= 0:
        raise ValueError(f"parameters and bits must be positive, got {parameters} and {bits}")
    return parameters * bits / 8 * VRAM_OVERHEAD / 1e9


def load_manifest(path: Path | str) -> ModelManifest:
    """Read and fully validate one manifest; raises ManifestError naming the file and the field."""
    path = Path(path)
    try:
        document = load_yaml_file(path)
    except YamlInputError as exc:
        field = "(file)" if exc.line is None and not exc.message.startswith("malformed") else "(yaml)"
        message = exc.message.replace("cannot read:", "cannot read the manifest:", 1)
        raise ManifestError(path, field, message, exc.line) from exc
    data = document.data
    if not isinstance(data, dict):
        raise ManifestError(path, "(document)", "expected a mapping with name, architecture, parameters, versions, ...")
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = first["msg"]
        if len(errors) > 1:
            others = "; ".join(f"{error_location(error['loc'])}: {error['msg']}" for error in errors[1:])
            message += f" (also {others})"
        field = error_location(first["loc"])
        raise ManifestError(path, field, message, document.line_of(first["loc"])) from exc


def load_manifests(paths: Iterable[Path | str]) -> list[ModelManifest]:
    """Validate several manifests; a model defined by two files is an error (the second would silently win)."""
    manifests: list[ModelManifest] = []
    defined_in: dict[str, Path] = {}
    for path in map(Path, paths):
        manifest = load_manifest(path)
        if manifest.name in defined_in:
            raise ManifestError(path, "name", f"model {manifest.name!r} is also defined in {defined_in[manifest.name]}")
        defined_in[manifest.name] = path
        manifests.append(manifest)
    return manifests


def _register(connection: Connection, manifest: ModelManifest) -> list[str]:
    models = Model.__table__
    model_values = {
        "name": manifest.name,
        "architecture": manifest.architecture,
        "parameters": manifest.parameters,
        "base_model": manifest.base_model,
        "metadata": manifest.metadata,
        "tags": manifest.tags,
    }
    upsert_model = insert(models).values(model_values)
    upsert_model = upsert_model.on_conflict_do_update(
        index_elements=["name"],
        set_={**{column: upsert_model.excluded[column] for column in model_values}, "updated_at": func.now()},
    ).returning(models.c.id)
    model_id = connection.execute(upsert_model).scalar_one()

    model_config = manifest.architecture_facts.model_dump(mode="json")
    version_rows = [
        {
            "model_id": model_id,
            "version": version.version,
            "quantization": version.quantization,
            "quantization_bits": version.quantization_bits,
            "format": version.format,
            "artifact_uri": version.artifact_uri,
            "model_config": model_config | _precision(version),
            "vram_requirement_gb": vram_requirement_gb(manifest.parameters, version.quantization_bits),
        }
        for version in manifest.versions
    ]
    key_columns = ("model_id", "version")
    upsert_versions = insert(ModelVersion.__table__).values(version_rows)
    upsert_versions = upsert_versions.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={column: upsert_versions.excluded[column] for column in version_rows[0] if column not in key_columns},
    )
    connection.execute(upsert_versions)
    return manifest.version_keys()


def register_models(engine: Engine, manifests: Iterable[ModelManifest]) -> list[str]:
    """Upsert several models and their versions in one transaction; returns the version keys.

    Versions missing from a manifest are kept: benchmark results may still point at them.
    """
    with engine.begin() as connection:
        return [key for manifest in manifests for key in _register(connection, manifest)]


def register_model(engine: Engine, manifest: ModelManifest) -> list[str]:
    """Upsert one model and its versions in one transaction; returns the version keys ("name@version")."""
    return register_models(engine, [manifest])


def list_version_keys(connection: Connection) -> dict[str, uuid.UUID]:
    """Every registered model version, readable key -> id, sorted by key."""
    rows = connection.execute(
        select(Model.name, ModelVersion.version, ModelVersion.id)
        .join(Model, Model.id == ModelVersion.model_id)
        .order_by(Model.name, ModelVersion.version)
    )
    return {version_key(name, version): version_id for name, version, version_id in rows}


def stored_versions(engine: Engine) -> list[dict[str, Any]]:
    """Every registered version as the model catalog asset shows it: key, quantization, format and VRAM need."""
    query = (
        select(
            version_key_expression().label("version_key"),
            ModelVersion.quantization,
            ModelVersion.format,
            ModelVersion.vram_requirement_gb,
        )
        .join(Model, Model.id == ModelVersion.model_id)
        .order_by(Model.name, ModelVersion.version)
    )
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def versions_registered_after(engine: Engine, after: datetime | None) -> list[Any]:
    """Versions (``created_at``, ``key``) registered after ``after`` (all when None), oldest first: the new-version
    sensor's scan."""
    query = (
        select(ModelVersion.created_at, version_key_expression().label("key"))
        .join(Model, Model.id == ModelVersion.model_id)
        .order_by(ModelVersion.created_at, ModelVersion.id)
    )
    if after is not None:
        query = query.where(ModelVersion.created_at > after)
    with engine.connect() as connection:
        return connection.execute(query).all()


def _as_uuid(ref: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(ref, uuid.UUID):
        return ref
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def resolve_model_version(connection: Connection, ref: str | uuid.UUID) -> uuid.UUID:
    """The id of a model version given its id or readable key; LookupError (with close matches) when unknown."""
    version_id = _as_uuid(ref)
    if version_id is not None:
        if connection.scalar(select(ModelVersion.id).where(ModelVersion.id == version_id)) is None:
            raise LookupError(f"no model version has id {version_id}")
        return version_id
    name, _, version = str(ref).rpartition(VERSION_KEY_SEPARATOR)
    found = connection.scalar(
        select(ModelVersion.id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == name, ModelVersion.version == version)
    )
    if found is not None:
        return found
    known = list_version_keys(connection)
    close = difflib.get_close_matches(str(ref), known, n=5, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    elif known:
        hint = f"registered versions include {', '.join(list(known)[:10])}"
    else:
        hint = "no model versions are registered yet (benchmark-platform register-model MANIFEST.yaml)"
    raise LookupError(f"unknown model version {str(ref)!r} (expected NAME@VERSION or a version id); {hint}")
