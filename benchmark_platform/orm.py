"""SQLAlchemy 2 typed models of every table in the design. Alembic migrations own the real schema;
a test checks that the migrated database and these models never drift apart."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column

from benchmark_platform.domain import CONFIG_KEY_COLUMNS, SERVING_OPTION_COLUMNS

QUANTIZATIONS = ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")
FORMATS = ("gguf", "gptq", "awq", "safetensors")
CONFIG_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "skipped")
RUNNER_LABELS = ("measured", "simulated")
# Mirror domain.SpeculativeMethod / domain.KvCacheDtype (a test keeps them equal).
SPECULATIVE_METHODS = ("none", "mtp", "eagle3", "ngram")
KV_CACHE_DTYPES = ("auto", "fp8")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    architecture: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[int] = mapped_column(BigInteger)
    base_model: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    tags: Mapped[list[str]] = mapped_column(server_default=text("'{}'::text[]"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("parameters > 0", name="parameters_positive"),)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    quantization: Mapped[str] = mapped_column(String(10))
    quantization_bits: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(20))
    artifact_uri: Mapped[str] = mapped_column(Text)
    model_config: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    vram_requirement_gb: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        CheckConstraint(_in("quantization", QUANTIZATIONS), name="quantization_known"),
        CheckConstraint(_in("format", FORMATS), name="format_known"),
        Index("idx_model_versions_vram_quantization", "vram_requirement_gb", "quantization_bits", "format"),
    )


VERSION_KEY_SEPARATOR = "@"


def version_key_expression(model: Any = Model, version: Any = ModelVersion) -> ColumnElement[str]:
    """A model version's readable key, ``<model name>@<version>``, as SQL over ``models`` joined to
    ``model_versions``: the one definition of the key (``manifests.version_key`` builds the same string in Python)."""
    return model.name.concat(VERSION_KEY_SEPARATOR).concat(version.version)


def version_key_sql(model_alias: str = "m", version_alias: str = "v") -> str:
    """``version_key_expression`` as SQL text over tables aliased ``m`` and ``v``, for statements written as text."""
    expression = version_key_expression(aliased(Model, name=model_alias), aliased(ModelVersion, name=version_alias))
    return str(expression.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


class HardwareConfig(Base):
    __tablename__ = "hardware_configs"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    gpu_type: Mapped[str] = mapped_column(String(50))
    gpu_count: Mapped[int] = mapped_column(Integer)
    vram_per_gpu_gb: Mapped[int] = mapped_column(Integer)
    total_vram_gb: Mapped[int] = mapped_column(Integer)
    cost_per_hour_usd: Mapped[float] = mapped_column(Float)
    spot_cost_per_hour_usd: Mapped[float | None] = mapped_column(Float)
    reserved_cost_per_hour_usd: Mapped[float | None] = mapped_column(Float)  # migration 0010: committed-use price
    cloud_provider: Mapped[str] = mapped_column(String(20))
    instance_type: Mapped[str] = mapped_column(String(100))
    spot_available: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    specs: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint("gpu_count > 0", name="gpu_count_positive"),
        Index("idx_hardware_configs_vram_cost", "total_vram_gb", "cost_per_hour_usd", "spot_available"),
    )


class InferenceFramework(Base):
    __tablename__ = "inference_frameworks"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(50), unique=True)
    version: Mapped[str] = mapped_column(String(50))
    capabilities: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    supports_quantization: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    supports_streaming: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    config_template: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


class UseCase(Base):
    __tablename__ = "use_case_taxonomy"

    id: Mapped[uuid.UUID] = _uuid_pk()
    category: Mapped[str] = mapped_column(String(100))
    subcategory: Mapped[str] = mapped_column(String(100), unique=True)
    pipeline_tag: Mapped[str] = mapped_column(String(100))
    characteristics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    default_weights: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


class ServingOptionColumns:
    """Revision 0013: ``domain.ServingOptions`` as columns of a config, its result and a ranked deployment; the
    defaults are a plain deployment (what rows before 0013 measured)."""

    expert_parallel: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    data_parallel_attention: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    speculative_method: Mapped[str] = mapped_column(String(20), server_default=text("'none'"))
    kv_cache_dtype: Mapped[str] = mapped_column(String(20), server_default=text("'auto'"))
    prefix_caching: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


def _serving_option_checks() -> tuple[CheckConstraint, ...]:
    return (
        CheckConstraint("expert_parallel >= 1", name="expert_parallel_positive"),
        CheckConstraint(_in("speculative_method", SPECULATIVE_METHODS), name="speculative_method_known"),
        CheckConstraint(_in("kv_cache_dtype", KV_CACHE_DTYPES), name="kv_cache_dtype_known"),
        CheckConstraint(
            "NOT data_parallel_attention OR expert_parallel > 1", name="dp_attention_needs_expert_parallel"
        ),
    )


class BenchmarkConfig(ServingOptionColumns, Base):
    __tablename__ = "benchmark_configs"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    hardware_config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hardware_configs.id"))
    framework_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inference_frameworks.id"))
    workload_type: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int] = mapped_column(Integer)
    sequence_length: Mapped[int] = mapped_column(Integer)
    tensor_parallel: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Revision 0003: retry backoff (not claimed before run_after) and preemptions (expired leases) counted apart.
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preemption_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Adaptive benchmarking (migration 0004): why the planner skipped it, whether it is exempt from pruning, and what
    # the simulator predicted for it.
    skip_reason: Mapped[str | None] = mapped_column(String(50))
    pruning_exempt: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        UniqueConstraint(*CONFIG_KEY_COLUMNS, name="unique_config"),
        CheckConstraint(_in("status", CONFIG_STATUSES), name="status_known"),
        CheckConstraint("tensor_parallel > 0", name="tensor_parallel_positive"),
        *_serving_option_checks(),
        CheckConstraint("status <> 'skipped' OR skip_reason IS NOT NULL", name="skipped_has_reason"),
        CheckConstraint("batch_size > 0 AND sequence_length > 0", name="dimensions_positive"),
        Index(
            "idx_benchmark_config_status_priority",
            "status",
            "priority",
            "created_at",
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
        Index("idx_benchmark_config_model_status", "model_version_id", "status"),
        # idx_benchmark_config_stale_running (status, started_at) was dropped by migration 0006: only the removed
        # claim-age reaper rule read it; expired leases are found through idx_benchmark_config_lease.
        Index(
            "idx_benchmark_config_claim",
            "hardware_config_id",
            "priority",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("idx_benchmark_config_lease", "lease_expires_at", postgresql_where=text("status = 'running'")),
        # Migration 0008: a claim preferring the framework a worker has loaded, without a hardware pool, starts at
        # that framework's first pending row instead of filtering every other framework's in front of it.
        Index(
            "idx_benchmark_config_claim_framework",
            "framework_id",
            "priority",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class BenchmarkResult(ServingOptionColumns, Base):
    __tablename__ = "benchmark_results"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    hardware_config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hardware_configs.id"))
    framework_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inference_frameworks.id"))
    config_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("benchmark_configs.id", ondelete="SET NULL"))
    benchmark_date: Mapped[date] = mapped_column(Date, server_default=func.current_date())
    workload_type: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int] = mapped_column(Integer)
    sequence_length: Mapped[int] = mapped_column(Integer)
    tensor_parallel: Mapped[int] = mapped_column(Integer)
    ttft_p50_ms: Mapped[float | None] = mapped_column(Float)
    ttft_p90_ms: Mapped[float | None] = mapped_column(Float)
    ttft_p99_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p50_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p90_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p99_ms: Mapped[float | None] = mapped_column(Float)
    throughput_tokens_sec: Mapped[float | None] = mapped_column(Float)
    rps_sustained: Mapped[float | None] = mapped_column(Float)
    accuracy_score: Mapped[float | None] = mapped_column(Float)
    gpu_utilization_pct: Mapped[float | None] = mapped_column(Float)
    memory_used_gb: Mapped[float | None] = mapped_column(Float)
    # Revision 0002: per-GPU, interactivity, cost, energy (throughput_tokens_sec is output tokens/s per node).
    total_tokens_sec: Mapped[float | None] = mapped_column(Float)
    output_tokens_sec_per_gpu: Mapped[float | None] = mapped_column(Float)
    total_tokens_sec_per_gpu: Mapped[float | None] = mapped_column(Float)
    interactivity_tokens_sec: Mapped[float | None] = mapped_column(Float)
    cost_per_million_output_tokens: Mapped[float | None] = mapped_column(Float)
    cost_per_million_total_tokens: Mapped[float | None] = mapped_column(Float)
    energy_per_output_token_j: Mapped[float | None] = mapped_column(Float)
    detailed_metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    runner: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = _created_at()
    # Computed by the database from detailed_metrics (migration 0005): writers only fill the detail.
    quality_flags: Mapped[dict[str, str]] = mapped_column(
        JSONB, Computed("COALESCE(detailed_metrics -> 'quality_flags', '{}'::jsonb)", persisted=True)
    )

    __table_args__ = (
        CheckConstraint(_in("runner", RUNNER_LABELS), name="runner_known"),
        CheckConstraint("tensor_parallel > 0", name="tensor_parallel_positive"),
        *_serving_option_checks(),
        Index(
            "uq_benchmark_results_config_id", "config_id", unique=True, postgresql_where=text("config_id IS NOT NULL")
        ),
        Index(
            "idx_benchmark_results_model_hardware_framework",
            "model_version_id",
            "hardware_config_id",
            "framework_id",
            text("benchmark_date DESC"),
        ),
        Index(
            "idx_benchmark_results_latency_sla",
            "ttft_p90_ms",
            "throughput_tokens_sec",
            postgresql_where=text("ttft_p90_ms <= 300"),
        ),
        Index("idx_benchmark_results_date_workload", "benchmark_date", "workload_type"),
    )


class ModelUseCase(Base):
    __tablename__ = "model_use_cases"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    use_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("use_case_taxonomy.id", ondelete="CASCADE"))
    suitability_score: Mapped[float] = mapped_column(Float)
    recommended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    priority: Mapped[int | None] = mapped_column(Integer)
    performance_summary: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        UniqueConstraint("model_id", "use_case_id", name="uq_model_use_cases_model_use_case"),
        CheckConstraint("suitability_score >= 0 AND suitability_score <= 1", name="suitability_in_unit_range"),
        Index("idx_models_use_cases_suitability", "model_id", "use_case_id", text("suitability_score DESC")),
        Index("idx_recommended_models", "model_id", "recommended", postgresql_where=text("recommended = true")),
    )


class DailyModelStats(Base):
    __tablename__ = "daily_model_stats"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    stats_date: Mapped[date] = mapped_column(Date)
    avg_accuracy: Mapped[float | None] = mapped_column(Float)
    avg_throughput: Mapped[float | None] = mapped_column(Float)
    p95_latency_ms: Mapped[float | None] = mapped_column(Float)
    total_benchmarks: Mapped[int] = mapped_column(Integer)
    aggregated_metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("model_id", "stats_date", name="uq_daily_model_stats_model_date"),
        Index("idx_daily_stats_model_date", "model_id", text("stats_date DESC")),
    )


class ModelRanking(Base):
    __tablename__ = "model_rankings"

    id: Mapped[uuid.UUID] = _uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    use_case_category: Mapped[str] = mapped_column(String(100))
    composite_score: Mapped[float] = mapped_column(Float)
    rank_position: Mapped[int] = mapped_column(Integer)
    score_breakdown: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    calculated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("model_id", "use_case_category", name="uq_model_rankings_model_use_case"),
        CheckConstraint("composite_score >= 0 AND composite_score <= 1", name="score_in_unit_range"),
        Index(
            "idx_model_rankings_use_case",
            "use_case_category",
            text("composite_score DESC"),
            text("calculated_at DESC"),
        ),
    )


# Mirrors ranking.rankings (a test keeps them equal).
DEPLOYMENT_STATUSES = ("ranked", "incomplete", "no_price", "breaks_sla")


class UseCaseRankingSummary(Base):
    """One use case's stored ranking: what the rankings step computed for it (weights used, how many deployments
    it considered and excluded, notes). Its deployments are in ``deployment_rankings``."""

    __tablename__ = "use_case_rankings"

    use_case: Mapped[str] = mapped_column(String(100), primary_key=True)
    use_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("use_case_taxonomy.id", ondelete="CASCADE"))
    weights: Mapped[dict[str, Any]] = mapped_column(JSONB)
    considered: Mapped[int] = mapped_column(Integer)
    excluded: Mapped[dict[str, Any]] = mapped_column(JSONB)
    notes: Mapped[list[str]] = mapped_column(server_default=text("'{}'::text[]"))
    calculated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Migration 0009: what the adaptive planner skipped of the use case's configs, read by the report.
    pruning: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Migration 0010: the price basis and cost unit it was ranked on (null: stored before, not read back).
    price_basis: Mapped[str | None] = mapped_column(String(20))
    cost_unit: Mapped[str | None] = mapped_column(String(20))


class DeploymentRanking(ServingOptionColumns, Base):
    """Every deployment a use case's ranking considered: ranked ones with rank, score, Pareto flag and per-criterion
    closeness (``criteria``), the others with the reason they were left out (``status``)."""

    __tablename__ = "deployment_rankings"

    id: Mapped[uuid.UUID] = _uuid_pk()
    use_case: Mapped[str] = mapped_column(ForeignKey("use_case_rankings.use_case", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    pareto: Mapped[bool | None] = mapped_column(Boolean)
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    hardware_config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hardware_configs.id", ondelete="CASCADE"))
    framework_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inference_frameworks.id", ondelete="CASCADE"))
    tensor_parallel: Mapped[int] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    n_sequence_lengths: Mapped[int] = mapped_column(Integer)
    min_sequence_length: Mapped[int] = mapped_column(Integer)
    max_sequence_length: Mapped[int] = mapped_column(Integer)
    ttft_p90_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p90_ms: Mapped[float | None] = mapped_column(Float)
    throughput_tokens_sec: Mapped[float | None] = mapped_column(Float)
    output_tokens_sec_per_gpu: Mapped[float | None] = mapped_column(Float)
    interactivity_tokens_sec: Mapped[float | None] = mapped_column(Float)
    cost_per_million_tokens: Mapped[float | None] = mapped_column(Float)
    cost_per_million_total_tokens: Mapped[float | None] = mapped_column(Float)
    cost_per_thousand_requests: Mapped[float | None] = mapped_column(Float)
    accuracy_score: Mapped[float | None] = mapped_column(Float)
    accuracy_imputed: Mapped[bool] = mapped_column(Boolean)
    hourly_price_usd: Mapped[float | None] = mapped_column(Float)
    price_basis: Mapped[str] = mapped_column(String(20))
    simulated: Mapped[bool] = mapped_column(Boolean)
    # Revision 0011: where the numbers come from, and the simulator's figures beside measured ones.
    source: Mapped[str] = mapped_column(String(20), server_default="simulated")
    simulated_ttft_p90_ms: Mapped[float | None] = mapped_column(Float)
    simulated_tpot_p90_ms: Mapped[float | None] = mapped_column(Float)
    simulated_output_tokens_sec_per_gpu: Mapped[float | None] = mapped_column(Float)
    latest_benchmark_date: Mapped[date | None] = mapped_column(Date)
    criteria: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    calculated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint(
            "use_case",
            "model_version_id",
            "hardware_config_id",
            "framework_id",
            "tensor_parallel",
            "batch_size",
            *SERVING_OPTION_COLUMNS,
            name="uq_deployment_rankings_deployment",
        ),
        *_serving_option_checks(),
        CheckConstraint(_in("status", DEPLOYMENT_STATUSES), name="status_known"),
        CheckConstraint("(status = 'ranked') = (rank IS NOT NULL AND score IS NOT NULL)", name="ranked_has_score"),
        CheckConstraint("score >= 0 AND score <= 1", name="score_in_unit_range"),
        Index("idx_deployment_rankings_use_case_rank", "use_case", "rank"),
    )
