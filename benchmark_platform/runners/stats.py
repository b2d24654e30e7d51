"""Percentile summaries, confidence intervals and the raw per-request samples of a run (pure functions).

Raw samples are stored as integer microseconds, zlib-compressed and base64-encoded, so a stored run's percentiles can
be recomputed and several runs (repeats, client processes) merged exactly: merging concatenates the samples.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

# numpy's default (linear interpolation between closest ranks), as vLLM's serving benchmark uses.
PERCENTILE_METHOD = "linear"
PERCENTILES = (50, 90, 95, 99, 99.9)
# The smallest sample whose p99.9 is not just its maximum, and so on: fewer requests cannot support the percentile.
MIN_SAMPLES_FOR = {"p50": 2, "p90": 10, "p95": 20, "p99": 100, "p99.9": 1000}
# Two-sided 95 % Student t quantiles by degrees of freedom; past 30 the normal 1.96 is close enough.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
_T95_16_TO_30 = (
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
SAMPLE_FIELDS = ("sent_us", "ttft_us", "e2e_us", "output_tokens", "prompt_tokens", "itl_count")


def summarize(values: Sequence[float] | np.ndarray, scale: float = 1.0) -> dict[str, float] | None:
    """p50/p90/p95/p99/p99.9/mean/min/max of ``values`` × ``scale`` (e.g. 1e3 for seconds to ms); None when there
    are none."""
    data = np.asarray(values, dtype=float) * scale
    if data.size == 0:
        return None
    p50, p90, p95, p99, p999 = np.percentile(data, PERCENTILES, method=PERCENTILE_METHOD)
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "p99.9": float(p999),
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
        "count": int(data.size),
    }


def t95(degrees_of_freedom: int) -> float:
    """Two-sided 95 % quantile of Student's t."""
    if degrees_of_freedom < 1:
        raise ValueError("a confidence interval needs at least two values")
    table = _T95 + _T95_16_TO_30
    return table[degrees_of_freedom - 1] if degrees_of_freedom <= len(table) else 1.96


def mean_ci95(values: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean and 95 % confidence interval (Student t) of repeated runs' values; a single value has no interval."""
    data = [float(value) for value in values]
    mean = math.fsum(data) / len(data)
    if len(data) < 2:
        return {"mean": mean, "ci95_low": mean, "ci95_high": mean, "n": len(data), "values": data}
    std = math.sqrt(math.fsum((value - mean) ** 2 for value in data) / (len(data) - 1))
    half = t95(len(data) - 1) * std / math.sqrt(len(data))
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": len(data), "values": data}


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype="<i8").tobytes(), 6)).decode()


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i8")


def encode_samples(columns: dict[str, Iterable[int]], itl_us: Iterable[int]) -> dict:
    """Per-request columns (``SAMPLE_FIELDS``, integers) and every request's inter-token gaps, concatenated in
    request order (``itl_count`` says how many belong to each), as compressed text."""
    encoded = {name: _pack(np.fromiter(columns[name], dtype=np.int64)) for name in SAMPLE_FIELDS}
    sizes = {len(_unpack(value)) for value in encoded.values()}
    if len(sizes) > 1:
        raise ValueError("sample columns differ in length")
    return {
        "encoding": "int64 microseconds, zlib, base64",
        "columns": encoded,
        "itl_us": _pack(np.fromiter(itl_us, dtype=np.int64)),
    }


def decode_samples(stored: dict) -> dict[str, np.ndarray]:
    """The arrays ``encode_samples`` stored (``itl_us`` included)."""
    arrays = {name: _unpack(stored["columns"][name]) for name in SAMPLE_FIELDS}
    arrays["itl_us"] = _unpack(stored["itl_us"])
    if int(arrays["itl_count"].sum()) != arrays["itl_us"].size:
        raise ValueError("stored samples are inconsistent: itl_count does not add up to the gaps stored")
    return arrays


def merge_samples(stored: Sequence[dict]) -> dict:
    """Several runs' samples as one (concatenated in the order given): percentiles of the result are exact."""
    decoded = [decode_samples(item) for item in stored]
    columns = {name: np.concatenate([item[name] for item in decoded]) for name in SAMPLE_FIELDS}
    return encode_samples(columns, np.concatenate([item["itl_us"] for item in decoded]))


def summaries_from_samples(stored: dict) -> dict[str, dict[str, float] | None]:
    """TTFT, TPOT, ITL and E2E summaries (ms) recomputed from stored samples."""
    arrays = decode_samples(stored)
    tokens = arrays["output_tokens"]
    many = tokens > 1
    tpot = (arrays["e2e_us"][many] - arrays["ttft_us"][many]) / (tokens[many] - 1)
    return {
        "ttft_ms": summarize(arrays["ttft_us"], 1e-3),
        "tpot_ms": summarize(tpot, 1e-3),
        "itl_ms": summarize(arrays["itl_us"], 1e-3),
        "e2e_ms": summarize(arrays["e2e_us"], 1e-3),
    }
