#!/usr/bin/env bash
# GPU check of EGSW on verl, one NVIDIA GPU (under 25 minutes: three verl runs of 4 steps, each with its own
# Ray, FSDP and vLLM start-up): GRPO vs GRPO+EGSW (step, trajectory) through verl's own trainer on a
# random-initialised model of Qwen2.5-Math-1.5B's architecture; step time, advantage time, peak GPU memory and the
# EGSW/GRPO ratios. Nothing is downloaded. See benchmarks/verl_gpu_check.py.
#   bash benchmarks/verl_gpu_check.sh [verl_gpu_check.py options]      e.g. --response-length 1024
# PYTHON selects the interpreter (default: python3); it needs verl's GPU stack (pip install 'verl[vllm]>=0.9,<0.10')
# and this package with its verl extra (pip install -e '.[verl]').
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import egsw' 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "verl_gpu_check: nvidia-smi not found" >&2
"$PYTHON" -c 'import torch, verl, vllm; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}; verl {verl.__version__}; vllm {vllm.__version__}")'
exec timeout 1500 "$PYTHON" benchmarks/verl_gpu_check.py "$@"
