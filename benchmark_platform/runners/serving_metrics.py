"""The field's per-deployment figures from one replica's (or the node's) speed: pure arithmetic, no I/O.

As InferenceMAX and vLLM's serving benchmark report them: a node of ``gpu_count`` GPUs runs ``gpu_count /
tensor_parallel`` replicas, so node throughput = replicas x replica throughput and per-GPU throughput = node
throughput / gpu_count; interactivity = 1000 / TPOT p50 (tokens per second one user sees); cost per million tokens
= the node's hourly price / tokens per hour x 1e6, at the price basis ``HardwareFacts.hourly_price`` chooses (spot
where offered, like the ranking); energy per output token = the node's power / output tokens per second.
"""

from __future__ import annotations

from typing import Any

from benchmark_platform.runners.base import HardwareFacts


def cost_per_million_tokens(hourly_price_usd: float, tokens_per_second: float) -> float:
    return hourly_price_usd / (tokens_per_second * 3600) * 1e6


def simulated_node_power_watts(hardware: HardwareFacts, gpu_busy_fraction: float) -> float | None:
    """Board power x busy share, summed over the node's GPUs (idle draw and host power left out: a lower bound)."""
    if hardware.tdp_watts is None:
        return None
    return hardware.gpu_count * hardware.tdp_watts * gpu_busy_fraction


def deployment_figures(
    hardware: HardwareFacts,
    *,
    output_tokens_per_s_node: float,
    total_tokens_per_s_node: float,
    tpot_p50_ms: float,
    node_power_watts: float | None,
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The metric columns of revision 0002 plus ``throughput_tokens_sec`` (output tokens/s, node), and what they
    assumed (price basis and hourly price, power) for ``detailed_metrics``."""
    price, basis = hardware.hourly_price()
    per_gpu = 1 / hardware.gpu_count
    columns: dict[str, float | None] = {
        "throughput_tokens_sec": output_tokens_per_s_node,
        "total_tokens_sec": total_tokens_per_s_node,
        "output_tokens_sec_per_gpu": output_tokens_per_s_node * per_gpu,
        "total_tokens_sec_per_gpu": total_tokens_per_s_node * per_gpu,
        "interactivity_tokens_sec": 1000.0 / tpot_p50_ms if tpot_p50_ms > 0 else None,
        "cost_per_million_output_tokens": (
            cost_per_million_tokens(price, output_tokens_per_s_node) if price is not None else None
        ),
        "cost_per_million_total_tokens": (
            cost_per_million_tokens(price, total_tokens_per_s_node) if price is not None else None
        ),
        "energy_per_output_token_j": (node_power_watts / output_tokens_per_s_node if node_power_watts else None),
    }
    assumptions = {"price_basis": basis, "hourly_price_usd": price, "node_power_watts": node_power_watts}
    return columns, assumptions
