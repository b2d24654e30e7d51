#!/usr/bin/env bash
# GPU check: a random-weight model with Llama-3.1-8B's shape, a locally built tokenizer, a minimal OpenAI-compatible
# streaming server on transformers + torch, and the openai runner (bench-endpoint, NVML sampling) at concurrency 1,
# 8 and 32; the measured figures are printed beside the roofline simulator's prediction for the GPU. Nothing is
# downloaded. Needs one NVIDIA GPU, torch (CUDA), transformers, tokenizers and the platform's own dependencies.
# Finishes within 8 minutes (each step has its own timeout).
#
#   benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: docs/gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/gpu-check}
PORT=${GPU_CHECK_PORT:-8011}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
started=$(date +%s)

"$PYTHON" - <<'PY' || { echo "gpu_check: missing requirements (see above)"; exit 2; }
import importlib, sys
missing = [m for m in ("torch", "transformers", "tokenizers", "httpx", "pydantic", "numpy", "starlette", "uvicorn",
                       "pynvml", "click", "yaml") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)}")
import torch
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA GPU")
print(f"torch {torch.__version__}, GPU {torch.cuda.get_device_name(0)}")
PY
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

TOKENIZER=$(mktemp -d)
timeout 60 "$PYTHON" benchmarks/local_tokenizer.py "$TOKENIZER" --vocab-size 128256 || exit 1
timeout 420 "$PYTHON" benchmarks/gpu_check_server.py --shape llama-3.1-8b --tokenizer "$TOKENIZER" --port "$PORT" \
  >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$TOKENIZER"' EXIT
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "gpu_check: the server died:"; cat "$OUT/server.log"; exit 1; }
  sleep 1
done
cat "$OUT/server.log"

for concurrency in 1 8 32; do
  requests=$(( concurrency * 3 > 8 ? concurrency * 3 : 8 ))
  timeout 100 "$PYTHON" -m benchmark_platform.cli bench-endpoint --base-url "http://127.0.0.1:$PORT" \
    --model llama-3.1-8b-random --concurrency "$concurrency" --num-requests "$requests" \
    --input-tokens 512 --output-tokens 128 --timeout 90 --json >"$OUT/c$concurrency.json" 2>"$OUT/c$concurrency.err"
  echo "concurrency $concurrency: exit $? after $(( $(date +%s) - started )) s"
done

"$PYTHON" benchmarks/gpu_check_predict.py --gpu "$GPU_NAME" "$OUT"/c1.json "$OUT"/c8.json "$OUT"/c32.json \
  | tee "$OUT/summary.txt"
echo "gpu_check finished in $(( $(date +%s) - started )) s"
