"""Reference catalogs: the GPU instances, inference frameworks and use cases the platform benchmarks.

The facts live in versioned YAML files beside this module so a change is a reviewed diff, not a database edit.
Each file is validated by the pydantic models below (unknown keys are errors, so a typo cannot silently drop a
figure) and written to PostgreSQL by upserts keyed on the natural name: seeding twice leaves the same rows with
the same ids, so benchmark results stay attached to their hardware, framework and use case.
"""

from __future__ import annotations

import functools
import math
import string
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects.postgresql import insert

from benchmark_platform.domain import Quantization, ServingOptionFlags, Vendor, WeightFormat
from benchmark_platform.orm import HardwareConfig, InferenceFramework, UseCase
from benchmark_platform.ranking import criteria
from benchmark_platform.safe_yaml import FiniteFloat, Int32, NoBooleanNumbers, YamlInputError, load_yaml_file
from benchmark_platform.workloads import DATASET_NAMES

CATALOG_DIR = Path(__file__).parent
HARDWARE_FILE = CATALOG_DIR / "hardware.yaml"
FRAMEWORKS_FILE = CATALOG_DIR / "frameworks.yaml"
USE_CASES_FILE = CATALOG_DIR / "use_cases.yaml"

CloudProvider = Literal["aws", "gcp", "azure", "spheron", "tensorwave"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=100)]

QUANTIZED = frozenset({"fp8", "int8", "int4"})
LAUNCH_PLACEHOLDERS = frozenset({"model", "port", "tp", "dp", "max_model_len", "quantization_flag"})


class CatalogError(ValueError):
    """A catalog file is unreadable or invalid; the message names the file and the offending entry."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _Frozen(NoBooleanNumbers):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _duplicates(values: list[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


# --- hardware --------------------------------------------------------------------------------------------------


class GpuChipSpecs(_Frozen):
    """Spec-sheet figures of one GPU model (per GPU; dense tensor throughput; null where the chip lacks a unit)."""

    vendor: Vendor
    memory_bandwidth_gbps: float = Field(gt=0)
    fp16_tflops: float = Field(gt=0)
    fp8_tflops: float | None = Field(gt=0)
    fp4_tflops: float | None = Field(default=None, gt=0, description="dense FP4 (NVFP4 / MXFP4) where the chip has it")
    int8_tops: float | None = Field(gt=0)
    interconnect: str = Field(min_length=1)
    interconnect_bandwidth_gbps: float = Field(gt=0)
    tdp_watts: Int32 = Field(gt=0)
    source: str = Field(min_length=1)
    as_of: date


class CloudPricing(_Frozen):
    """Where a cloud's prices come from; committed-use (reserved) prices, where the catalog has any, name their own
    source and date (their term and discount differ from the list prices')."""

    region: str = Field(min_length=1)
    price_source: str = Field(min_length=1)
    price_as_of: date
    reserved_price_source: str | None = Field(default=None, min_length=1)
    reserved_price_as_of: date | None = None

    @model_validator(mode="after")
    def _reserved_source_and_date_together(self) -> CloudPricing:
        if (self.reserved_price_source is None) != (self.reserved_price_as_of is None):
            raise ValueError("give reserved_price_source and reserved_price_as_of together")
        return self


class HardwareSpecs(GpuChipSpecs, CloudPricing):
    """What ``hardware_configs.specs`` holds: the chip's figures plus where the prices come from."""


class _Priced(_Frozen):
    cost_per_hour_usd: float = Field(gt=0)
    spot_cost_per_hour_usd: float | None = Field(gt=0)
    spot_available: bool
    reserved_cost_per_hour_usd: float | None = Field(
        default=None, gt=0, description="committed-use price per hour; null where the catalog has none"
    )

    @model_validator(mode="after")
    def _spot_consistent(self) -> _Priced:
        if self.spot_available != (self.spot_cost_per_hour_usd is not None):
            raise ValueError("give spot_cost_per_hour_usd exactly when spot_available is true")
        for basis, price in (("spot", self.spot_cost_per_hour_usd), ("reserved", self.reserved_cost_per_hour_usd)):
            if price is not None and price >= self.cost_per_hour_usd:
                raise ValueError(f"{basis} price {price} is not below the on-demand price {self.cost_per_hour_usd}")
        return self


class HardwareInstance(_Priced):
    """One entry of the catalog file's ``instances`` list; its GPU facts come from the ``gpus`` section."""

    name: Slug
    cloud_provider: CloudProvider
    instance_type: str = Field(min_length=1)
    gpu_type: str = Field(min_length=1)
    gpu_count: Int32 = Field(gt=0)
    price_source: str | None = Field(
        default=None, min_length=1, description="where this instance's prices come from, overriding its cloud's"
    )
    price_as_of: date | None = None

    @model_validator(mode="after")
    def _price_source_and_date_together(self) -> HardwareInstance:
        if (self.price_source is None) != (self.price_as_of is None):
            raise ValueError("give price_source and price_as_of together")
        return self


class HardwareSpec(HardwareInstance):
    """A cloud instance with its GPUs' spec-sheet figures: one row of ``hardware_configs``."""

    vram_per_gpu_gb: Int32 = Field(gt=0)
    specs: HardwareSpecs

    @property
    def total_vram_gb(self) -> int:
        return self.gpu_count * self.vram_per_gpu_gb

    def to_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gpu_type": self.gpu_type,
            "gpu_count": self.gpu_count,
            "vram_per_gpu_gb": self.vram_per_gpu_gb,
            "total_vram_gb": self.total_vram_gb,
            "cost_per_hour_usd": self.cost_per_hour_usd,
            "spot_cost_per_hour_usd": self.spot_cost_per_hour_usd,
            "reserved_cost_per_hour_usd": self.reserved_cost_per_hour_usd,
            "cloud_provider": self.cloud_provider,
            "instance_type": self.instance_type,
            "spot_available": self.spot_available,
            "specs": self.specs.model_dump(mode="json"),
        }


class GpuEntry(GpuChipSpecs):
    vram_gb: Int32 = Field(gt=0)


class _CatalogFile(_Frozen):
    catalog_version: Int32 = Field(gt=0)
    source: str = Field(min_length=1)
    as_of: date


class HardwareCatalogFile(_CatalogFile):
    """hardware.yaml: GPU models once, then the instances that carry them (so a chip's figures live in one place)."""

    clouds: dict[CloudProvider, CloudPricing]
    gpus: dict[str, GpuEntry]
    instances: list[HardwareInstance] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> HardwareCatalogFile:
        for index, instance in enumerate(self.instances):
            if instance.gpu_type not in self.gpus:
                raise ValueError(
                    f"instances[{index}] ({instance.name}): gpu_type {instance.gpu_type!r} is not under gpus"
                    f" (known: {', '.join(sorted(self.gpus))})"
                )
            if instance.cloud_provider not in self.clouds:
                raise ValueError(
                    f"instances[{index}] ({instance.name}): cloud {instance.cloud_provider!r} is not under clouds"
                )
            if instance.reserved_cost_per_hour_usd is not None:
                if self.clouds[instance.cloud_provider].reserved_price_source is None:
                    raise ValueError(
                        f"instances[{index}] ({instance.name}): a reserved price needs reserved_price_source and "
                        f"reserved_price_as_of under clouds.{instance.cloud_provider}"
                    )
        if duplicated := _duplicates([instance.name for instance in self.instances]):
            raise ValueError(f"duplicate instance names: {', '.join(duplicated)}")
        return self

    def hardware(self) -> list[HardwareSpec]:
        specs = []
        for instance in self.instances:
            chip = self.gpus[instance.gpu_type]
            pricing = self.clouds[instance.cloud_provider]
            # A price sourced on the instance itself (a provider page per offer) replaces the cloud's source.
            if instance.price_source is not None:
                pricing = pricing.model_copy(
                    update={"price_source": instance.price_source, "price_as_of": instance.price_as_of}
                )
            specs.append(
                HardwareSpec(
                    **instance.model_dump(),
                    vram_per_gpu_gb=chip.vram_gb,
                    specs=HardwareSpecs(**chip.model_dump(exclude={"vram_gb"}), **pricing.model_dump()),
                )
            )
        return specs


# --- frameworks ------------------------------------------------------------------------------------------------


class Efficiency(_Frozen):
    """Fractions of peak the framework reaches: FLOPs in prefill, memory bandwidth in decode."""

    prefill: float = Field(gt=0, le=1)
    decode: float = Field(gt=0, le=1)


class FrameworkSpec(_Frozen):
    """An inference server: what it loads, how to launch it, how to call it. One row of ``inference_frameworks``."""

    name: Slug
    version: str = Field(min_length=1, max_length=50)
    benchmark_by_default: bool
    vendors: list[Vendor] = Field(min_length=1)
    supports_quantizations: list[Quantization] = Field(min_length=1)
    supports_formats: list[WeightFormat] = Field(min_length=1)
    supports_streaming: bool
    supports_ignore_eos: bool
    completions_path: str = Field(pattern=r"^/")
    chat_completions_path: str = Field(pattern=r"^/")
    launch_command: str = Field(min_length=1)
    quantization_flags: dict[Quantization | WeightFormat, str] = Field(default_factory=dict)
    serving_options: ServingOptionFlags = Field(default_factory=ServingOptionFlags)
    efficiency: Efficiency

    @model_validator(mode="after")
    def _consistent(self) -> FrameworkSpec:
        for field in ("vendors", "supports_quantizations", "supports_formats"):
            if duplicated := _duplicates(getattr(self, field)):
                raise ValueError(f"{field} lists {', '.join(duplicated)} more than once")
        placeholders = {name for _, name, _, _ in string.Formatter().parse(self.launch_command) if name is not None}
        if unknown := placeholders - LAUNCH_PLACEHOLDERS:
            raise ValueError(
                f"launch_command uses unknown placeholders {sorted(unknown)}; allowed: {sorted(LAUNCH_PLACEHOLDERS)}"
            )
        if "port" not in placeholders:
            raise ValueError("launch_command must contain {port}")
        supported = set(self.supports_quantizations) | set(self.supports_formats)
        if unsupported := set(self.quantization_flags) - supported:
            raise ValueError(f"quantization_flags names {sorted(unsupported)}, which the framework does not support")
        return self

    @property
    def supports_quantization(self) -> bool:
        return bool(QUANTIZED & set(self.supports_quantizations))

    @property
    def config_template(self) -> dict[str, Any]:
        return {"launch_command": self.launch_command, "quantization_flags": dict(self.quantization_flags)}

    def to_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "supports_quantization": self.supports_quantization,
            "supports_streaming": self.supports_streaming,
            "capabilities": self.model_dump(
                mode="json",
                include={
                    "benchmark_by_default",
                    "vendors",
                    "supports_quantizations",
                    "supports_formats",
                    "supports_ignore_eos",
                    "completions_path",
                    "chat_completions_path",
                    "serving_options",
                    "efficiency",
                },
            ),
            "config_template": self.config_template,
        }


class FrameworksCatalogFile(_CatalogFile):
    frameworks: list[FrameworkSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FrameworksCatalogFile:
        if duplicated := _duplicates([framework.name for framework in self.frameworks]):
            raise ValueError(f"duplicate framework names: {', '.join(duplicated)}")
        return self


# --- use cases -------------------------------------------------------------------------------------------------


class Sla(_Frozen):
    """Latency targets at p90 in milliseconds; null means the use case sets none on that metric."""

    ttft_p90_ms: float | None = Field(gt=0)
    tpot_p90_ms: float | None = Field(gt=0)


# The design's batch sizes (1-8) and the sweep the platform ran before per-use-case sweeps (up to 32): every use
# case keeps them, so results stay comparable across catalog versions. Then the field's sweep goes further.
BASE_CONCURRENCY = (1, 2, 4, 8, 16, 32)
MIN_TOP_CONCURRENCY = {"interactive": 64, "offline": 256}


def _ascending_unique(values: list[int], field: str) -> None:
    if values != sorted(set(values)):
        raise ValueError(f"{field} must be ascending without repeats, got {values}")


class UseCaseCharacteristics(_Frozen):
    """A use case as a load: lengths (typical and p10-p90 spread), how it is served, its representative
    sequence-length buckets and concurrency sweep, and its SLA."""

    typical_input_tokens: Int32 = Field(gt=0)
    typical_output_tokens: Int32 = Field(gt=0)
    input_tokens_range: tuple[Int32, Int32]
    output_tokens_range: tuple[Int32, Int32]
    serving: Literal["interactive", "offline"]
    sequence_lengths: list[Annotated[Int32, Field(ge=128, le=131072)]] = Field(min_length=1)
    concurrency: list[Annotated[Int32, Field(ge=1, le=4096)]] = Field(min_length=1)
    chat: bool
    measure_accuracy: bool
    dataset: str = Field(default="synthetic-fixed", description="one of workloads.DATASET_NAMES")
    sla: Sla
    price_basis: criteria.PriceBasis = Field(description="the hourly price its costs are on (ranking.criteria)")
    cost_unit: criteria.CostUnitKey = Field(description="the unit its costs are stated in (ranking.criteria)")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in DATASET_NAMES:
            raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> UseCaseCharacteristics:
        for kind in ("input", "output"):
            low, high = getattr(self, f"{kind}_tokens_range")
            typical = getattr(self, f"typical_{kind}_tokens")
            if not 0 < low <= typical <= high:
                raise ValueError(f"{kind}_tokens_range [{low}, {high}] must hold typical_{kind}_tokens {typical}")
        _ascending_unique(self.sequence_lengths, "sequence_lengths")
        if self.sequence_lengths[-1] < self.typical_input_tokens:
            raise ValueError(
                f"sequence_lengths {self.sequence_lengths} has no bucket holding the typical prompt "
                f"({self.typical_input_tokens} tokens)"
            )
        _ascending_unique(self.concurrency, "concurrency")
        if missing := sorted(set(BASE_CONCURRENCY) - set(self.concurrency)):
            raise ValueError(f"concurrency must keep the base sweep {list(BASE_CONCURRENCY)}; missing {missing}")
        if self.concurrency[-1] < MIN_TOP_CONCURRENCY[self.serving]:
            raise ValueError(
                f"concurrency of an {self.serving} use case must reach {MIN_TOP_CONCURRENCY[self.serving]}, "
                f"got up to {self.concurrency[-1]}"
            )
        return self


class CriteriaWeights(RootModel[dict[str, Annotated[FiniteFloat, Field(ge=0, le=1)]]]):
    """Default ranking weights: one per criterion of the registry (``ranking.criteria.CRITERIA``), no other name,
    each in [0, 1], summing to 1. A criterion the use case ignores weighs 0."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _registered_and_summing_to_one(self) -> CriteriaWeights:
        if problems := criteria.weight_problems(self.root):
            raise ValueError("; ".join(problems))
        total = math.fsum(self.root.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights sum to {total:.6g}, not 1")
        return self

    def __getitem__(self, key: str) -> float:
        return self.root[key]


class UseCaseSpec(_Frozen):
    """A workload with its typical shape, SLA and ranking weights. One row of ``use_case_taxonomy``."""

    subcategory: Slug
    category: Slug
    pipeline_tag: Slug
    characteristics: UseCaseCharacteristics
    default_weights: CriteriaWeights

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class UseCasesCatalogFile(_CatalogFile):
    use_cases: list[UseCaseSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> UseCasesCatalogFile:
        if duplicated := _duplicates([use_case.subcategory for use_case in self.use_cases]):
            raise ValueError(f"duplicate use case subcategories: {', '.join(duplicated)}")
        return self


# --- loading ---------------------------------------------------------------------------------------------------

_File = TypeVar("_File", bound=_CatalogFile)


def error_location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a readable field path, e.g. ``versions[2].quantization_bits``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _read_catalog(path: Path, file_model: type[_File]) -> _File:
    try:
        document = load_yaml_file(path)
    except YamlInputError as exc:
        raise CatalogError(path, str(exc)) from exc
    if not isinstance(document.data, dict):
        raise CatalogError(path, "expected a mapping at the top level")
    try:
        return file_model.model_validate(document.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{error_location(error['loc'])}: {error['msg']} (line {document.line_of(error['loc'])})"
            for error in exc.errors()
        )
        raise CatalogError(path, problems) from exc


@functools.cache
def _bundled(path: Path, file_model: type[_File]) -> _File:
    return _read_catalog(path, file_model)


def _catalog(default_path: Path, file_model: type[_File], path: Path | None) -> _File:
    return _bundled(default_path, file_model) if path is None else _read_catalog(Path(path), file_model)


def load_hardware(path: Path | None = None) -> list[HardwareSpec]:
    """Every hardware config of the catalog (the bundled hardware.yaml unless ``path`` names another file)."""
    return _catalog(HARDWARE_FILE, HardwareCatalogFile, path).hardware()


def load_gpus(path: Path | None = None) -> dict[str, GpuEntry]:
    """Every GPU model of the hardware catalog by type, offered in an instance or not (spec-sheet figures only)."""
    return dict(_catalog(HARDWARE_FILE, HardwareCatalogFile, path).gpus)


def load_frameworks(path: Path | None = None) -> list[FrameworkSpec]:
    """Every inference framework of the catalog (the bundled frameworks.yaml unless ``path`` names another file)."""
    return list(_catalog(FRAMEWORKS_FILE, FrameworksCatalogFile, path).frameworks)


def load_use_cases(path: Path | None = None) -> list[UseCaseSpec]:
    """Every use case of the taxonomy (the bundled use_cases.yaml unless ``path`` names another file)."""
    return list(_catalog(USE_CASES_FILE, UseCasesCatalogFile, path).use_cases)


def catalog_versions() -> dict[str, int]:
    """The ``catalog_version`` of each bundled catalog file, to report what a seed wrote."""
    return {
        "hardware": _catalog(HARDWARE_FILE, HardwareCatalogFile, None).catalog_version,
        "frameworks": _catalog(FRAMEWORKS_FILE, FrameworksCatalogFile, None).catalog_version,
        "use_cases": _catalog(USE_CASES_FILE, UseCasesCatalogFile, None).catalog_version,
    }


# --- seeding ---------------------------------------------------------------------------------------------------


def _upsert(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, updating every column of a row whose ``key`` exists; ids are never changed."""
    if not rows:
        return 0
    statement = insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_={column: statement.excluded[column] for column in rows[0] if column != key}
    )
    connection.execute(statement)
    return len(rows)


def _seed_hardware(connection: Connection) -> int:
    return _upsert(connection, HardwareConfig.__table__, "name", [spec.to_row() for spec in load_hardware()])


def _seed_frameworks(connection: Connection) -> int:
    return _upsert(connection, InferenceFramework.__table__, "name", [spec.to_row() for spec in load_frameworks()])


def _seed_use_cases(connection: Connection) -> int:
    return _upsert(connection, UseCase.__table__, "subcategory", [spec.to_row() for spec in load_use_cases()])


def seed_hardware(engine: Engine) -> int:
    """Upsert the hardware catalog into ``hardware_configs``; returns the number of catalog rows."""
    with engine.begin() as connection:
        return _seed_hardware(connection)


def seed_frameworks(engine: Engine) -> int:
    """Upsert the framework catalog into ``inference_frameworks``; returns the number of catalog rows."""
    with engine.begin() as connection:
        return _seed_frameworks(connection)


def seed_use_cases(engine: Engine) -> int:
    """Upsert the use-case taxonomy into ``use_case_taxonomy``; returns the number of catalog rows."""
    with engine.begin() as connection:
        return _seed_use_cases(connection)


def seed(engine: Engine) -> dict[str, int]:
    """Upsert all three catalogs in one transaction; returns the number of catalog rows per table."""
    with engine.begin() as connection:
        return {
            HardwareConfig.__tablename__: _seed_hardware(connection),
            InferenceFramework.__tablename__: _seed_frameworks(connection),
            UseCase.__tablename__: _seed_use_cases(connection),
        }


# --- reading back ----------------------------------------------------------------------------------------------


def _rows(engine: Engine, query) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def stored_hardware(engine: Engine) -> list[dict[str, Any]]:
    """The seeded hardware configs as the reference asset shows them: name, GPU, count, VRAM, cloud and prices."""
    return _rows(
        engine,
        select(
            HardwareConfig.name,
            HardwareConfig.gpu_type,
            HardwareConfig.gpu_count,
            HardwareConfig.total_vram_gb,
            HardwareConfig.cloud_provider,
            HardwareConfig.cost_per_hour_usd,
            HardwareConfig.spot_cost_per_hour_usd,
        ).order_by(HardwareConfig.gpu_type, HardwareConfig.gpu_count, HardwareConfig.cloud_provider),
    )


def stored_frameworks(engine: Engine) -> list[dict[str, Any]]:
    """The seeded inference frameworks: name, version and whether they stream."""
    return _rows(
        engine,
        select(InferenceFramework.name, InferenceFramework.version, InferenceFramework.supports_streaming).order_by(
            InferenceFramework.name
        ),
    )


def stored_use_cases(engine: Engine) -> list[dict[str, Any]]:
    """The seeded use cases: subcategory, category and pipeline tag."""
    return _rows(
        engine, select(UseCase.subcategory, UseCase.category, UseCase.pipeline_tag).order_by(UseCase.subcategory)
    )


def use_case_exists(connection: Connection, subcategory: str) -> bool:
    """Whether the taxonomy has a use case called ``subcategory`` (results name it as their ``workload_type``)."""
    return connection.scalar(select(UseCase.id).where(UseCase.subcategory == subcategory)) is not None


def gpu_count(connection: Connection, hardware_config_id: uuid.UUID) -> int:
    """The number of GPUs of a hardware config (a node): the widest tensor-parallel degree it can serve."""
    return connection.scalar(select(HardwareConfig.gpu_count).where(HardwareConfig.id == hardware_config_id))


# --- external names ----------------------------------------------------------------------------------------------

EXTERNAL_NAMES_FILE = CATALOG_DIR / "external_names.yaml"
_Name = Annotated[str, StringConstraints(min_length=1)]


class LatencyBound(_Frozen):
    """A benchmark scenario's p99 bounds (ms; null: none published) and LoadGen's performance sample count."""

    ttft_ms: FiniteFloat | None = Field(gt=0)
    tpot_ms: FiniteFloat | None = Field(gt=0)
    performance_sample_count: Int32 | None = Field(gt=0)


class ExternalSourceNames(_Frozen):
    """One public source's names for hardware (to a GPU of hardware.yaml), frameworks, models and precisions."""

    hardware: dict[_Name, _Name]
    frameworks: dict[_Name, _Name]
    models: dict[_Name, _Name]
    precisions: dict[_Name, _Name]
    latency_constraints: dict[_Name, LatencyBound] = Field(default_factory=dict)


class ExternalNamesFile(_CatalogFile):
    """external_names.yaml: what import-results maps a public source's names onto; every target must exist."""

    inferencex: ExternalSourceNames
    mlperf: ExternalSourceNames

    @model_validator(mode="after")
    def _targets_exist(self) -> ExternalNamesFile:
        gpus = set(load_gpus())
        frameworks = {framework.name for framework in load_frameworks()}
        for source in ("inferencex", "mlperf"):
            names: ExternalSourceNames = getattr(self, source)
            if unknown := sorted(set(names.hardware.values()) - gpus):
                raise ValueError(f"{source}.hardware: {', '.join(unknown)} not under hardware.yaml's gpus")
            if unknown := sorted(set(names.frameworks.values()) - frameworks):
                raise ValueError(f"{source}.frameworks: {', '.join(unknown)} not in frameworks.yaml")
        return self


def load_external_names(path: Path | None = None) -> ExternalNamesFile:
    """The public sources' name mappings (the bundled external_names.yaml unless ``path`` names another file)."""
    return _catalog(EXTERNAL_NAMES_FILE, ExternalNamesFile, path)
