#!/usr/bin/env bash
# GPU check of egsw on one NVIDIA GPU (written for an H200, under 8 minutes): GRPO vs GRPO+EGSW (step,
# trajectory) on a random-initialised model of Qwen2.5-Math-1.5B's architecture, bf16; step time, tokens per
# second, peak GPU memory and the EGSW/GRPO ratios. Nothing is downloaded. See benchmarks/gpu_check.py.
#   bash benchmarks/gpu_check.sh [gpu_check.py options]      e.g. --max-completion-length 1024
# PYTHON selects the interpreter (default: .venv/bin/python if it has CUDA, else python3); it needs a CUDA
# build of torch and this package (pip install -e .).
set -euo pipefail
cd "$(dirname "$0")/.."

has_cuda() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  if [[ -x .venv/bin/python ]] && has_cuda .venv/bin/python; then PYTHON=.venv/bin/python; fi
fi
if ! "$PYTHON" -c 'import egsw' 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "gpu_check: nvidia-smi not found" >&2
"$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")'
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
