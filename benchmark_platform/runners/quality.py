"""Quality flags: what makes a result untrustworthy, or worth a second look (pure functions over its detail).

Each flag is a name and a sentence saying why. The ranking leaves out results carrying an ``EXCLUDING`` flag (their
numbers describe the client or a cache, not the configuration) and marks the others (the numbers are real but
need care). Flags live in ``detailed_metrics["quality_flags"]``; the ``benchmark_results.quality_flags`` column is
computed from it by the database.
"""

from __future__ import annotations

from typing import Any

from benchmark_platform.runners.stats import MIN_SAMPLES_FOR

CLIENT_LAG_P99_MS = 5.0
CLIENT_CPU_FRACTION = 0.9
PREFIX_HIT_RATE = 0.1
ERROR_RATE = 0.01
REPORTED_PERCENTILE = "p99"  # the highest percentile in the result columns

# Measurements of something else than the configuration: left out of rankings.
EXCLUDING = frozenset({"client_bound", "over_saturated", "prefix_cache_warm"})
# Real behaviour or thin evidence: ranked, but marked.
MARKING = frozenset({"server_preempted", "error_rate_high", "too_few_requests"})
ALL_FLAGS = EXCLUDING | MARKING


def flags_for(detail: dict[str, Any]) -> dict[str, str]:
    """The flags a measured result's detail deserves, each with its reason."""
    flags: dict[str, str] = {}
    client = detail.get("client") or {}
    lag = (client.get("event_loop_lag_ms") or {}).get("p99")
    cpu = client.get("cpu_fraction_of_one_core")
    processes = client.get("processes") or 1
    if lag is not None and lag > CLIENT_LAG_P99_MS:
        flags["client_bound"] = f"the client's event loop lagged {lag:.1f} ms at p99 (> {CLIENT_LAG_P99_MS:g} ms)"
    elif cpu is not None and cpu / processes > CLIENT_CPU_FRACTION:
        flags["client_bound"] = f"each client process used {cpu / processes:.0%} of a core"
    if detail.get("oversaturated"):
        flags["over_saturated"] = str(detail["oversaturated"])
    server = detail.get("server_metrics")
    servers = server if isinstance(server, list) else [server]
    preemptions = sum((item or {}).get("preemptions") or 0 for item in servers)
    if preemptions:
        flags["server_preempted"] = f"the server preempted {preemptions:.0f} requests (KV cache full)"
    dataset = detail.get("dataset") or {}
    unique = dataset.get("kind", "synthetic") != "multiturn" and not dataset.get("shared_prefix_fraction")
    hit_rates = [item.get("prefix_cache_hit_rate") for item in servers if item]
    hit_rate = max((rate for rate in hit_rates if rate is not None), default=None)
    if unique and hit_rate is not None and hit_rate > PREFIX_HIT_RATE:
        flags["prefix_cache_warm"] = (
            f"prefix-cache hit rate {hit_rate:.0%} although every prompt was unique: the server reused a cache"
        )
    completed, errors = detail.get("completed_requests") or 0, detail.get("errors") or 0
    if completed + errors and errors / (completed + errors) > ERROR_RATE:
        flags["error_rate_high"] = f"{errors} of {completed + errors} requests failed (> {ERROR_RATE:.0%})"
    needed = MIN_SAMPLES_FOR[REPORTED_PERCENTILE]
    if completed < needed:
        flags["too_few_requests"] = f"{completed} requests cannot support a {REPORTED_PERCENTILE} (needs {needed})"
    return flags


def ranking_action(flags: dict[str, str] | None) -> str:
    """``excluded``, ``marked`` or ``clean``."""
    names = set(flags or {})
    if names & EXCLUDING:
        return "excluded"
    return "marked" if names else "clean"
