"""Results-frame rows and frames and use-case criteria, without a database."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from benchmark_platform.domain import PLAIN_DEPLOYMENT
from benchmark_platform.ranking import RESULT_FRAME_COLUMNS, UseCaseCriteria
from benchmark_platform.ranking.frames import METRIC_COLUMNS

# --- results rows, frames and use cases ---------------------------------------------------------------------------

DAY = date(2026, 1, 5)
CHATBOT_WEIGHTS = {
    "ttft_p90": 0.3,
    "tpot_p90": 0.25,
    "throughput": 0.1,
    "cost_per_million_tokens": 0.2,
    "accuracy": 0.15,
}


def uid(kind: str, name: str) -> uuid.UUID:
    """A stable id derived from a name, so rows naming the same model share its id."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{name}")


def result_row(
    model: str = "llama",
    version: str = "fp16",
    hardware: str = "aws-h100",
    framework: str = "vllm",
    **overrides: Any,
) -> dict[str, Any]:
    """One results-frame row; ids derive from the names, so rows of the same model share its id."""
    row: dict[str, Any] = {
        "result_id": uuid.uuid4(),
        "benchmark_date": DAY,
        "created_at": datetime(2026, 1, 5, 12, tzinfo=UTC),
        "workload_type": "chatbot",
        "batch_size": 8,
        "sequence_length": 512,
        "tensor_parallel": 1,
        **dataclasses.asdict(PLAIN_DEPLOYMENT),
        "runner": "measured",
        "model_id": uid("model", model),
        "model_name": model,
        "model_version_id": uid("version", f"{model}@{version}"),
        "version_key": f"{model}@{version}",
        "hardware_config_id": uid("hardware", hardware),
        "hardware_name": hardware,
        "gpu_type": "H100-SXM",
        "gpu_count": 1,
        "cost_per_hour_usd": 4.0,
        "spot_cost_per_hour_usd": None,
        "spot_available": False,
        "framework_id": uid("framework", framework),
        "framework_name": framework,
        **{column: np.nan for column in METRIC_COLUMNS},
        "ttft_p90_ms": 100.0,
        "tpot_p50_ms": 16.0,
        "tpot_p90_ms": 20.0,
        "throughput_tokens_sec": 1000.0,
    }
    row.update(overrides)
    row.setdefault("source", row["runner"])
    return row


def results_frame(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(RESULT_FRAME_COLUMNS))
    return frame.astype({column: float for column in METRIC_COLUMNS})


def chatbot(**overrides: Any) -> UseCaseCriteria:
    fields: dict[str, Any] = {
        "subcategory": "chatbot",
        "sla_ttft_p90_ms": 500,
        "sla_tpot_p90_ms": 50,
        "weights": CHATBOT_WEIGHTS,
    }
    return UseCaseCriteria(**(fields | overrides))


# A result file of vLLM's serving benchmark (`vllm bench serve --save-result`), for the importers' tests.
VLLM_SERVE_RESULT = {
    "backend": "vllm",
    "model_id": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "num_prompts": 200,
    "request_rate": "inf",
    "burstiness": 1.0,
    "max_concurrency": 16,
    "duration": 16.0,
    "completed": 200,
    "total_input_tokens": 102400,
    "total_output_tokens": 25600,
    "request_throughput": 12.5,
    "request_goodput": 11.0,
    "output_throughput": 1600.0,
    "total_token_throughput": 8000.0,
    "mean_ttft_ms": 85.0,
    "median_ttft_ms": 80.0,
    "std_ttft_ms": 10.0,
    "p90_ttft_ms": 120.0,
    "p99_ttft_ms": 150.0,
    "mean_tpot_ms": 8.4,
    "median_tpot_ms": 8.2,
    "p90_tpot_ms": 9.1,
    "p99_tpot_ms": 10.2,
    "mean_itl_ms": 8.4,
    "median_itl_ms": 8.0,
    "p99_itl_ms": 15.0,
    "mean_e2el_ms": 1150.0,
    "median_e2el_ms": 1100.0,
    "p99_e2el_ms": 1600.0,
}
