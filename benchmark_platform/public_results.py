"""Public measurements in (SemiAnalysis InferenceX rows, MLPerf Inference LLM results): pure parsing and placing.

Each source row becomes a ``PublicRow`` in this platform's units (latencies in ms, throughput per GPU) with its
provenance, or a counted reason why not (``ImportTally``): a malformed row, a name ``catalogs/external_names.yaml``
does not map (never guessed), a model version that is not registered, no catalog instance of its GPU that can hold
it. ``place`` then puts each row on a catalog instance and on the use cases it represents, as result rows the queue
records idempotently (``import_key``).

Placing: a row's serving instance spans ``gpus`` GPUs (InferenceX: the tensor-parallel degree, or prefill + decode
GPUs when disaggregated; MLPerf: the whole system). It goes on the instance of that GPU whose GPU count is the
smallest multiple of it (then the lowest price per GPU, then the name), running ``gpu_count / gpus`` such instances
side by side; the node's throughput is the measured per-GPU figure times its GPU count (replicas are independent).
A row represents a use case when its prompt length is one of the use case's sequence-length buckets and its output
length lies in the use case's output range.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark_platform.catalogs import ExternalSourceNames

MS_PER_SECOND = 1000.0
PUBLIC_SOURCES = ("inferencex", "mlperf")  # a result's ``source`` in rankings, recommend and the report


class PublicRowError(ValueError):
    """A row is not what its source promises; the message names the field."""


@dataclass
class ImportTally:
    """What an import read and why rows were left out (reason -> count), printed by the CLI."""

    read: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    unplaced: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = []
        for title, counter in (("bad rows", self.bad), ("unknown names", self.unknown), ("not placed", self.unplaced)):
            for reason, count in counter.most_common():
                out.append(f"{title}: {reason}: {count}")
        return out


@dataclass(frozen=True)
class PublicRow:
    """One public measurement in our units: latencies in ms (None where the source has no such percentile),
    throughput per GPU of the serving instance, and the names mapped onto the catalog."""

    source: str
    key: str
    gpu_type: str
    gpus: int
    framework: str
    version_key: str
    batch_size: int
    input_tokens: int
    output_tokens: int | None
    benchmark_date: date
    output_tokens_sec_per_gpu: float
    total_tokens_sec_per_gpu: float | None
    latency_ms: dict[str, float | None]
    interactivity_tokens_sec: float | None
    provenance: dict[str, Any]
    use_case: str | None = None  # set by the source when it says (MLPerf scenarios), else derived from the lengths


def _identity(source: str, values: Iterable[Any]) -> str:
    digest = hashlib.sha256(json.dumps([source, *values], default=str).encode()).hexdigest()[:32]
    return f"{source}:{digest}"


def _field(row: Mapping[str, Any], name: str) -> Any:
    if name not in row:
        raise PublicRowError(f"{name}: missing")
    return row[name]


def _number(row: Mapping[str, Any], name: str, *, positive: bool = False, optional: bool = False) -> float | None:
    if optional and row.get(name) is None:
        return None
    value = _field(row, name)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PublicRowError(f"{name}: expected a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PublicRowError(f"{name}: expected a finite non-negative number, got {value!r}")
    if positive and value == 0:
        raise PublicRowError(f"{name}: expected a positive number")
    return float(value)


def _integer(row: Mapping[str, Any], name: str) -> int:
    value = _number(row, name, positive=True)
    if value != int(value):
        raise PublicRowError(f"{name}: expected a whole number, got {value}")
    return int(value)


def _day(row: Mapping[str, Any], name: str) -> date:
    value = _field(row, name)
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PublicRowError(f"{name}: expected a date, got {str(value)[:40]!r}") from None


def _mapped(names: Mapping[str, str], kind: str, value: Any, tally: ImportTally) -> str | None:
    target = names.get(value) if isinstance(value, str) else None
    if target is None:
        tally.unknown[f"{kind} {value!r}"] += 1
    return target


# --- InferenceX --------------------------------------------------------------------------------------------------

INFERENCEX_CONFIG_FIELDS = (
    "hardware",
    "framework",
    "model",
    "precision",
    "spec_method",
    "disagg",
    "is_multinode",
    "prefill_tp",
    "prefill_ep",
    "prefill_dp_attention",
    "prefill_num_workers",
    "decode_tp",
    "decode_ep",
    "decode_dp_attention",
    "decode_num_workers",
    "num_prefill_gpu",
    "num_decode_gpu",
)
_PERCENTILE_KEYS = {"p50": "median", "p90": "p90", "p99": "p99"}


def inferencex_api_rows(document: Any) -> list[Mapping[str, Any]]:
    """The API's benchmark rows (config inlined), as a list; PublicRowError when the document is not one."""
    if not isinstance(document, list):
        raise PublicRowError("expected a JSON list of benchmark rows")
    return document


def inferencex_dump_rows(
    configs: Any, results: Any, workflow_runs: Any | None
) -> Iterator[Mapping[str, Any] | PublicRowError]:
    """The dump's ``benchmark_results`` joined with ``configs`` and ``workflow_runs`` into the API's row shape
    (``run_url`` from the run's ``html_url``); a result whose config is missing yields a PublicRowError."""
    for name, table in (("configs.json", configs), ("benchmark_results.json", results)):
        if not isinstance(table, list):
            raise PublicRowError(f"{name}: expected a JSON list of rows")
    config_by_id = {row.get("id"): row for row in configs if isinstance(row, dict)}
    runs = {row.get("id"): row for row in workflow_runs or [] if isinstance(row, dict)}
    for result in results:
        if not isinstance(result, dict):
            yield PublicRowError("benchmark_results: expected an object")
            continue
        config = config_by_id.get(result.get("config_id"))
        if config is None:
            yield PublicRowError(f"config_id {result.get('config_id')!r}: not in configs.json")
            continue
        run = runs.get(result.get("workflow_run_id")) or {}
        joined = {name: config.get(name) for name in INFERENCEX_CONFIG_FIELDS}
        joined |= {name: result.get(name) for name in ("isl", "osl", "conc", "image", "metrics", "date")}
        yield joined | {"run_url": run.get("html_url"), "error": result.get("error")}


def _seconds_to_ms(metrics: Mapping[str, Any], key: str) -> float | None:
    value = _number(metrics, key, optional=True)
    return None if value is None else value * MS_PER_SECOND


def parse_inferencex_row(row: Any, names: ExternalSourceNames, tally: ImportTally) -> PublicRow | None:
    """One InferenceX row (the API's shape) as a PublicRow; None when a name is unknown (counted in ``tally``)."""
    if not isinstance(row, dict):
        raise PublicRowError("expected an object")
    if row.get("error"):
        raise PublicRowError(f"error: the run reported {str(row['error'])[:60]!r}")
    metrics = _field(row, "metrics")
    if not isinstance(metrics, dict):
        raise PublicRowError("metrics: expected an object")
    isl, osl, conc = _integer(row, "isl"), _integer(row, "osl"), _integer(row, "conc")
    disagg = _field(row, "disagg")
    if not isinstance(disagg, bool):
        raise PublicRowError(f"disagg: expected true or false, got {disagg!r}")
    gpus = _integer(row, "num_prefill_gpu") + _integer(row, "num_decode_gpu") if disagg else _integer(row, "decode_tp")
    latency = {
        f"{metric}_{ours}_ms": _seconds_to_ms(metrics, f"{theirs}_{metric}")
        for metric in ("ttft", "tpot")
        for ours, theirs in _PERCENTILE_KEYS.items()
    }
    for metric in ("ttft", "tpot"):
        values = [v for v in (latency[f"{metric}_p{p}_ms"] for p in (50, 90, 99)) if v is not None]
        if values != sorted(values):
            raise PublicRowError(f"metrics: {metric} percentiles out of order")
    total = _number(metrics, "tput_per_gpu", positive=True)
    output = _number(metrics, "output_tput_per_gpu", positive=True, optional=True)
    derived = output is None
    if derived:  # older rows: output share of input + output at the configured lengths (both drawn from [0.8L, L])
        output = total * osl / (isl + osl)
    hardware = _mapped(names.hardware, "hardware", row.get("hardware"), tally)
    framework = _mapped(names.frameworks, "framework", row.get("framework"), tally)
    model = _mapped(names.models, "model", row.get("model"), tally)
    precision = _mapped(names.precisions, "precision", row.get("precision"), tally)
    day = _day(row, "date")
    if None in (hardware, framework, model, precision):
        return None
    provenance = {name: row.get(name) for name in INFERENCEX_CONFIG_FIELDS}
    provenance |= {"isl": isl, "osl": osl, "conc": conc, "image": row.get("image"), "run_url": row.get("run_url")}
    if derived:
        provenance["output_tput_per_gpu_derived"] = "tput_per_gpu x osl / (isl + osl): the row has no output figure"
    identity = [row.get(name) for name in INFERENCEX_CONFIG_FIELDS]
    return PublicRow(
        source="inferencex",
        key=_identity("inferencex", [*identity, isl, osl, conc, day, row.get("run_url")]),
        gpu_type=hardware,  # type: ignore[arg-type]
        gpus=gpus,
        framework=framework,  # type: ignore[arg-type]
        version_key=f"{model}@{precision}",
        batch_size=conc,
        input_tokens=isl,
        output_tokens=osl,
        benchmark_date=day,
        output_tokens_sec_per_gpu=output,  # type: ignore[arg-type]
        total_tokens_sec_per_gpu=total,
        latency_ms=latency,
        interactivity_tokens_sec=_number(metrics, "median_intvty", positive=True, optional=True),
        provenance=provenance,
    )


# --- MLPerf ------------------------------------------------------------------------------------------------------

MLPERF_SCENARIOS = ("Offline", "Server", "Interactive")


def mlperf_rows(text: str) -> list[dict[str, str]]:
    """The rows of a round's ``summary.csv``; PublicRowError when its header lacks a column the import reads."""
    reader = csv.DictReader(io.StringIO(text))
    needed = ("Organization", "Division", "SystemName", "MlperfModel", "Scenario", "Result", "Units")
    needed += ("accelerator_model_name", "total_accelerators", "framework", "weight_data_types", "version")
    if missing := [name for name in needed if name not in (reader.fieldnames or ())]:
        raise PublicRowError(f"header: missing column {missing[0]}")
    return list(reader)


def _first_word(text: str) -> str:
    return text.replace(",", " ").split()[0].lower() if text.strip() else ""


def parse_mlperf_row(
    row: Mapping[str, str],
    names: ExternalSourceNames,
    use_cases: Mapping[str, str],
    sequence_length: int,
    tally: ImportTally,
) -> PublicRow | None:
    """One summary.csv row as a PublicRow (throughput only: MLPerf publishes no latency percentiles; the scenario's
    TTFT/TPOT bounds, which the run met, are kept in the provenance). ``use_cases`` maps a scenario to the use case
    it is recorded under. MLPerf sets no client concurrency (Offline issues every query at once): ``batch_size``
    holds the benchmark's performance sample count, so the row never stands in for a measured concurrency."""
    scenario = row.get("Scenario")
    if scenario not in MLPERF_SCENARIOS:
        raise PublicRowError(f"Scenario: expected one of {', '.join(MLPERF_SCENARIOS)}, got {scenario!r}")
    if row.get("Units") != "Tokens/s":
        raise PublicRowError(f"Units: expected Tokens/s (an LLM benchmark), got {row.get('Units')!r}")
    tokens_per_second = _number(row, "Result", positive=True)
    accelerators = _integer(row, "total_accelerators")
    hardware = _mapped(names.hardware, "hardware", row.get("accelerator_model_name"), tally)
    framework = _mapped(names.frameworks, "framework", _first_word(row.get("framework") or ""), tally)
    benchmark = row.get("MlperfModel") or ""
    model = _mapped(names.models, "model", benchmark, tally)
    precision = _mapped(names.precisions, "precision", _first_word(row.get("weight_data_types") or ""), tally)
    if None in (hardware, framework, model, precision):
        return None
    base = benchmark.removesuffix("-99.9").removesuffix("-99")
    bound_key = base if scenario != "Interactive" else f"{base}-interactive"
    bound = names.latency_constraints.get(bound_key)
    samples = bound.performance_sample_count if bound else None
    if not samples:
        tally.unknown[f"benchmark {bound_key!r} (no latency_constraints entry)"] += 1
        return None
    provenance = {
        name: row.get(name)
        for name in ("Organization", "Division", "Availability", "SystemName", "Platform", "version", "inferred")
    }
    provenance |= {
        "benchmark": benchmark,
        "scenario": scenario,
        "system_tokens_per_second": tokens_per_second,
        "accelerator": row.get("accelerator_model_name"),
        "total_accelerators": accelerators,
        "framework": row.get("framework"),
        "weight_data_types": row.get("weight_data_types"),
        "accuracy": row.get("Accuracy"),
        "latency_constraints_p99_ms": None if scenario == "Offline" else {"ttft": bound.ttft_ms, "tpot": bound.tpot_ms},  # type: ignore[union-attr]
        "batch_size": "the benchmark's performance sample count: MLPerf reports no concurrency",
    }
    identity = [row.get(name) for name in ("version", "Organization", "Division", "SystemName", "Platform")]
    return PublicRow(
        source="mlperf",
        key=_identity("mlperf", [*identity, benchmark, scenario, row.get("Result")]),
        gpu_type=hardware,  # type: ignore[arg-type]
        gpus=accelerators,
        framework=framework,  # type: ignore[arg-type]
        version_key=f"{model}@{precision}",
        batch_size=int(samples),
        input_tokens=sequence_length,
        output_tokens=None,
        benchmark_date=date.today(),
        output_tokens_sec_per_gpu=tokens_per_second / accelerators,
        total_tokens_sec_per_gpu=None,
        latency_ms={f"{m}_p{p}_ms": None for m in ("ttft", "tpot") for p in (50, 90, 99)},
        interactivity_tokens_sec=None,
        provenance=provenance,
        use_case=use_cases.get(scenario),
    )


# --- placing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """What placing needs of a catalog instance."""

    name: str
    gpu_type: str
    gpu_count: int
    hourly_price: float


@dataclass(frozen=True)
class UseCaseShape:
    """What placing needs of a use case: its prompt buckets and output range."""

    name: str
    sequence_lengths: tuple[int, ...]
    output_range: tuple[int, int]


def choose_instance(instances: Sequence[Instance], gpu_type: str, gpus: int) -> Instance | None:
    """The instance of ``gpu_type`` whose GPU count is the smallest multiple of ``gpus``, then the cheapest per GPU."""
    fitting = [i for i in instances if i.gpu_type == gpu_type and i.gpu_count % gpus == 0]
    return min(fitting, key=lambda i: (i.gpu_count, i.hourly_price / i.gpu_count, i.name), default=None)


def represented_use_cases(row: PublicRow, use_cases: Sequence[UseCaseShape]) -> list[str]:
    """The use cases a row stands for: its own (MLPerf scenarios), else those whose prompt buckets hold its input
    length and whose output range holds its output length."""
    if row.use_case is not None:
        return [row.use_case]
    return [
        shape.name
        for shape in use_cases
        if row.input_tokens in shape.sequence_lengths
        and row.output_tokens is not None
        and shape.output_range[0] <= row.output_tokens <= shape.output_range[1]
    ]


def result_rows(
    rows: Iterable[PublicRow],
    instances: Sequence[Instance],
    use_cases: Sequence[UseCaseShape],
    versions: set[str],
    tally: ImportTally,
) -> list[dict[str, Any]]:
    """Result rows (``benchmark_results`` columns, with names in place of ids: ``version_key``, ``hardware_name``,
    ``framework_name``) for the rows that can be placed; the others counted in ``tally.unplaced``."""
    out = []
    for row in rows:
        if row.version_key not in versions:
            tally.unplaced[f"model version {row.version_key} not registered"] += 1
            continue
        instance = choose_instance(instances, row.gpu_type, row.gpus)
        if instance is None:
            tally.unplaced[f"no {row.gpu_type} instance with a multiple of {row.gpus} GPUs"] += 1
            continue
        targets = represented_use_cases(row, use_cases)
        if not targets:
            tally.unplaced[f"no use case for prompt {row.input_tokens} / output {row.output_tokens} tokens"] += 1
            continue
        detail = {
            "runner_name": "imported",
            "source_tool": {"name": row.source},
            "imported": True,
            "provenance": row.provenance,
            "serving_instance_gpus": row.gpus,
        }
        columns = row.latency_ms | {
            "throughput_tokens_sec": row.output_tokens_sec_per_gpu * instance.gpu_count,
            "output_tokens_sec_per_gpu": row.output_tokens_sec_per_gpu,
            "total_tokens_sec_per_gpu": row.total_tokens_sec_per_gpu,
            "total_tokens_sec": None
            if row.total_tokens_sec_per_gpu is None
            else row.total_tokens_sec_per_gpu * instance.gpu_count,
            "interactivity_tokens_sec": row.interactivity_tokens_sec,
            "runner": "measured",
            "version_key": row.version_key,
            "hardware_name": instance.name,
            "framework_name": row.framework,
            "batch_size": row.batch_size,
            "sequence_length": row.input_tokens,
            "tensor_parallel": row.gpus,
            "benchmark_date": row.benchmark_date,
        }
        for use_case in targets:
            key = f"{row.key}:{use_case}"
            out.append(columns | {"workload_type": use_case, "detailed_metrics": detail | {"import_key": key}})
    return out
