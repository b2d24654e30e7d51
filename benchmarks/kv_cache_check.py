"""How much KV cache does the engine really leave? Public start-up logs against the memory model.

Loads ``benchmarks/data/kv_cache_logs.yaml`` (vLLM's and SGLang's start-up memory lines, copied from public issue
threads and one public accuracy sweep) and, for every row whose model the project can describe (an example manifest,
the MoE facts file or a ``model_shapes`` entry, found as ``simulator_accuracy.model_of`` finds them), prints what
``memory.py`` predicts next to what the engine logged:

  - the KV cache per GPU (GiB) and the replica's KV tokens, from ``memory.kv_cache_bytes_per_gpu`` and
    ``memory.kv_capacity_tokens`` as the simulator calls them (the catalog's nominal VRAM, 90 % usable, a flat
    ``RUNTIME_RESERVE_GB``), and the same with the row's own total memory and ``gpu_memory_utilization`` (what is
    left of the error is the weights' and the reserve's);
  - the weights per GPU and the KV bytes per token, the two terms that should match exactly.

Then, for every row that shows it, what the engine held outside weights and KV cache (non-torch memory, the
activation peak of the profile run, CUDA graphs; or total x utilization - weights - KV) against the flat reserve, next
to what could scale it: model size, hidden / intermediate / vocab size, tensor parallelism, and the scheduler limits
the profile run uses (``max_num_batched_tokens`` tokens through the MLP, ``max_num_seqs`` rows of FP32 logits in the
sampler warm-up; the activation peak per vocabulary entry shows the latter). Figures the source does not print stay
"-"; derived ones are marked.

    python benchmarks/kv_cache_check.py [--data PATH]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml

from benchmark_platform import catalogs, memory
from benchmark_platform.domain import ServingOptions
from benchmark_platform.runners.base import ModelFacts

try:  # run as a script (benchmarks/ on sys.path) or as a module of the repository
    import simulator_accuracy as accuracy
except ModuleNotFoundError:  # pragma: no cover
    from benchmarks import simulator_accuracy as accuracy

DATA_FILE = Path(__file__).parent / "data" / "kv_cache_logs.yaml"
# Architecture facts of models without a manifest (Qwen3-8B / 14B / 32B, Qwen2.5-0.5B): the validation file's.
SHAPES_FILE = Path(__file__).parent / "data" / "validation_serving.yaml"
GIB = 2**30
RESERVE_GIB = memory.RUNTIME_RESERVE_GB * 1e9 / GIB
# Relative KV errors are quoted only where the logged pool is at least this large (a start-up that failed with a
# pool near zero or negative gives a meaningless ratio); the GiB gap is quoted for every row.
RELATIVE_FLOOR_GIB = 4.0
# Hugging Face ids in the logs -> the id simulator_accuracy knows for the same architecture (Llama 3 8B has the 3.1
# 8B shape; the Qwen3-235B FP8 checkpoint is the 2507 release's architecture).
SAME_ARCHITECTURE = {
    "meta-llama/Meta-Llama-3-8B": "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-235B-A22B-FP8": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
}
# Ids simulator_accuracy resolves as mixture-of-experts models (its MoE path).
MOE_MODELS = {*accuracy.MOE_FACTS_OF_MODEL, "openai/gpt-oss-120b", "openai/gpt-oss-20b", "Qwen/Qwen3-30B-A3B"}


def load_rows(path: Path = DATA_FILE) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["rows"]


def load_shapes(path: Path = SHAPES_FILE) -> dict[str, dict]:
    return accuracy.model_shapes(yaml.safe_load(path.read_text(encoding="utf-8")))


def model_of(row: dict, shapes: dict[str, dict]) -> ModelFacts | None:
    """The row's model at the row's precision, as ``simulator_accuracy.model_of`` builds it; None when the project
    has no architecture facts for it or the row does not state the precision."""
    if row.get("precision") is None:
        return None
    name = SAME_ARCHITECTURE.get(row["model"], row["model"])
    probe = {
        "model": name,
        "precision": row["precision"],
        "gpu_type": row.get("gpu_type") or "H100-SXM",
        "file": "validation_serving_moe.yaml" if name in MOE_MODELS else DATA_FILE.name,
    }
    if name in shapes:
        probe["model_shape"] = accuracy._model_shape(probe, shapes[name])
    return accuracy.model_of(probe)


def architecture(row: dict, model: ModelFacts | None, shapes: dict[str, dict]) -> dict[str, int | None]:
    """Hidden, intermediate (dense FFN, or one expert's) and vocab size of the row's model, where known."""
    shape = shapes.get(SAME_ARCHITECTURE.get(row["model"], row["model"]), {})
    facts = {key: shape.get(key) for key in ("hidden_size", "intermediate_size", "vocab_size")}
    if model is not None:
        intermediate = model.intermediate_size or (model.moe.expert_intermediate_size if model.moe else None)
        facts = {
            "hidden_size": model.hidden_size or facts["hidden_size"],
            "intermediate_size": intermediate or facts["intermediate_size"],
            "vocab_size": model.vocab_size or facts["vocab_size"],
        }
    return facts


def catalog_vram(row: dict) -> float | None:
    """The catalog's nominal VRAM (GiB) of the row's GPU, as the simulator reads it; None when not in the catalog."""
    gpu = accuracy.GPU_ALIASES.get(row.get("gpu_type"), row.get("gpu_type"))
    chip = catalogs.load_gpus().get(gpu) if gpu else None
    return None if chip is None else float(chip.vram_gb)


def options_of(row: dict) -> ServingOptions:
    return ServingOptions(kv_cache_dtype="fp8" if row.get("kv_cache_dtype") == "fp8" else "auto")


def compare(row: dict, model: ModelFacts) -> dict[str, float | None]:
    """memory.py's figures for the row, next to the logged ones (errors: predicted / logged - 1)."""
    tp, options = row["tensor_parallel"], options_of(row)
    out: dict[str, float | None] = dict.fromkeys(
        ("pred_kv", "kv_err", "kv_gap", "pred_tokens", "tok_err", "same_kv", "same_err", "same_gap", "pred_w", "w_err")
        + ("bpt", "pred_bpt")
    )
    vram = catalog_vram(row) or row.get("gpu_total_gib")
    logged_kv, logged_tokens = row.get("kv_cache_gib"), row.get("kv_cache_tokens")
    if vram is not None:
        out["pred_kv"] = memory.kv_cache_bytes_per_gpu(model, vram, tp, options) / GIB
        out["pred_tokens"] = memory.kv_capacity_tokens(model, vram, tp, None, options)
        if logged_kv is not None:
            out["kv_gap"] = out["pred_kv"] - logged_kv
            out["kv_err"] = out["pred_kv"] / logged_kv - 1 if logged_kv >= RELATIVE_FLOOR_GIB else None
        if logged_tokens:
            out["tok_err"] = out["pred_tokens"] / logged_tokens - 1
    total, utilization = row.get("gpu_total_gib"), row.get("gpu_memory_utilization")
    if total and utilization and row["engine"] == "vllm":
        # the same budget as the engine's: total x utilization, read through memory.py's 0.9
        same_vram = total * utilization / memory.USABLE_VRAM_FRACTION
        out["same_kv"] = memory.kv_cache_bytes_per_gpu(model, same_vram, tp, options) / GIB
        if logged_kv is not None:
            out["same_gap"] = out["same_kv"] - logged_kv
            out["same_err"] = out["same_kv"] / logged_kv - 1 if logged_kv >= RELATIVE_FLOOR_GIB else None
    out["pred_w"] = memory.options_weight_bytes_per_gpu(model, tp, options) / GIB
    if row.get("weights_gib"):
        out["w_err"] = out["pred_w"] / row["weights_gib"] - 1
    out["pred_bpt"] = memory.replica_kv_bytes_per_token(model, tp, None, options)
    if logged_kv and logged_tokens:
        out["bpt"] = logged_kv * GIB / logged_tokens
    return out


def overhead(row: dict) -> tuple[float | None, str]:
    """What the engine held outside weights and KV cache inside its budget (GiB), and how it was obtained."""
    total, utilization, kv = row.get("gpu_total_gib"), row.get("gpu_memory_utilization"), row.get("kv_cache_gib")
    weights = row.get("weights_gib") or row.get("weights_plus_non_torch_gib")
    if row["engine"] == "vllm" and total and utilization and weights is not None and kv is not None:
        return total * utilization - weights - kv, "total x util - weights - KV"
    parts = [row.get("non_torch_gib"), row.get("activation_peak_gib")]
    if all(part is not None for part in parts):
        return sum(parts), "non-torch + activation"
    return None, ""


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _int(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_kv(rows: list[dict], shapes: dict[str, dict]) -> list[dict]:
    print(
        "KV cache per GPU: logged vs memory.py (catalog VRAM x 0.9 - weights - "
        f"{memory.RUNTIME_RESERVE_GB} GB), and with the row's own total x utilization\n"
    )
    print(
        "| Row | Engine | GPU x TP | util | Logged KV GiB | Pred. KV GiB (gap GiB, err) "
        "| Same-budget KV GiB (gap, err) | Logged tokens | Pred. tokens (err) | Weights GiB logged / pred. (err) "
        "| KV B/token logged / pred. |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    compared = []
    for row in rows:
        model = model_of(row, shapes)
        head = f"| {row['id']} | {row['engine']} {row.get('engine_version') or ''} "
        if model is None:
            reason = "precision not stated" if row.get("precision") is None else "no architecture facts"
            print(f"{head}| not compared: {reason} ({row['model']}) |")
            continue
        c = compare(row, model)
        compared.append(row | {"_c": c})
        print(
            f"{head}| {row.get('gpu_type') or '?'} x{row['tensor_parallel']} "
            f"| {_cell(row.get('gpu_memory_utilization'))} | {_cell(row.get('kv_cache_gib'))} "
            f"| {_cell(c['pred_kv'])} ({_gap(c['kv_gap'])}, {_err(c['kv_err'])}) "
            f"| {_cell(c['same_kv'])} ({_gap(c['same_gap'])}, {_err(c['same_err'])}) "
            f"| {_int(row.get('kv_cache_tokens'))} "
            f"| {_int(c['pred_tokens'])} ({_err(c['tok_err'])}) "
            f"| {_cell(row.get('weights_gib'))} / {_cell(c['pred_w'])} ({_err(c['w_err'])}) "
            f"| {_int(c['bpt'])} / {_int(c['pred_bpt'])} |"
        )
    return compared


def print_summary(compared: list[dict]) -> None:
    """Median and range of each gap (GiB) and error (relative; with the median |error|) over the rows that have it."""
    print()
    floor = f"logged pool >= {RELATIVE_FLOOR_GIB:g} GiB"
    for key, label, relative in (
        ("kv_gap", "KV gap GiB (predicted - logged), memory.py as the simulator calls it", False),
        ("same_gap", "KV gap GiB, the row's own total x utilization", False),
        ("kv_err", f"KV GiB, memory.py as the simulator calls it ({floor})", True),
        ("tok_err", "KV tokens, memory.py as the simulator calls it", True),
        ("same_err", f"KV GiB, the row's own total x utilization ({floor})", True),
        ("w_err", "weights per GPU", True),
    ):
        values = [row["_c"][key] for row in compared if row["_c"][key] is not None]
        if not values:
            continue
        spec = "+.1%" if relative else "+.2f"
        absolute = f", median |err| {statistics.median(abs(v) for v in values):.1%}" if relative else ""
        print(
            f"{label}: median {statistics.median(values):{spec}}{absolute}, range {min(values):{spec}} .. "
            f"{max(values):{spec}} ({len(values)} rows)"
        )


def print_overhead(rows: list[dict], shapes: dict[str, dict]) -> None:
    print(
        f"\nOutside weights and KV cache, per GPU (GiB), against memory.py's flat reserve of "
        f"{memory.RUNTIME_RESERVE_GB} GB = {RESERVE_GIB:.2f} GiB. MLP term: max_num_batched_tokens x intermediate x "
        "2 (gate, up) x 2 B / TP; sampler term: max_num_seqs x vocab x 4 B (FP32 logits); GiB, where both inputs are "
        "printed.\n"
    )
    print(
        "| Row | vLLM | TP | non-torch | activation | act. KiB / vocab entry | CUDA graphs | Other in budget (how) "
        "| - reserve "
        "| Params B | hidden / inter / vocab | max_model_len | max_num_batched_tokens | max_num_seqs "
        "| MLP term | sampler term |"
    )
    print("| --- | --- " + "| ---: " * 8 + "| --- " + "| ---: " * 5 + "|")
    for row in rows:
        other, how = overhead(row)
        if other is None and row.get("cuda_graph_gib") is None:
            continue
        model = model_of(row, shapes)
        facts = architecture(row, model, shapes)
        tp, tokens, seqs = row["tensor_parallel"], row.get("max_num_batched_tokens"), row.get("max_num_seqs")
        mlp = tokens * facts["intermediate_size"] * 2 * 2 / tp / GIB if tokens and facts["intermediate_size"] else None
        sampler = seqs * facts["vocab_size"] * 4 / GIB if seqs and facts["vocab_size"] else None
        activation = row.get("activation_peak_gib")
        per_vocab = activation * GIB / facts["vocab_size"] / 1024 if activation and facts["vocab_size"] else None
        arch = " / ".join(_int(facts[key]) for key in ("hidden_size", "intermediate_size", "vocab_size"))
        print(
            f"| {row['id']} | {row.get('engine_version') or '-'} | {tp} | {_cell(row.get('non_torch_gib'))} "
            f"| {_cell(activation)} | {_cell(per_vocab, 1)} | {_cell(row.get('cuda_graph_gib'))} "
            f"| {_cell(other)} ({how or '-'}) | {_cell(None if other is None else other - RESERVE_GIB)} "
            f"| {_cell(None if model is None else model.parameters / 1e9, 1)} | {arch} "
            f"| {_int(row.get('max_model_len'))} | {_int(tokens)} | {_int(seqs)} | {_cell(mlp)} | {_cell(sampler)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE)
    arguments = parser.parse_args()
    rows, shapes = load_rows(arguments.data), load_shapes()
    compared = print_kv(rows, shapes)
    print_summary(compared)
    print_overhead(rows, shapes)


if __name__ == "__main__":
    main()
