#!/usr/bin/env bash
# Everything a lent GPU checks, in one run (the device time is short): the kernel and long-context tests
# compiled (no TRITON_INTERPRET), the decode-attention microbenchmark, and the reader on the GPU (block
# and full, then long context). Logs and JSON go to $OUT. Before: python bench/gpu_reader.py --prepare
# gpu-reader-model and pip install --target gpu-deps pytest platformdirs filelock (pure Python; carried with
# gpu-reader-model; the GPU box has torch, triton and transformers).
set -uo pipefail
OUT=${OUT:-bench/results}
export PYTHONPATH="$PWD:$PWD/gpu-deps:${PYTHONPATH:-}" TRITON_INTERPRET=0 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -V
  python -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)"
} 2>&1 | tee "$OUT/env.txt"
timeout 120 python -m pytest -q -x -p no:cacheprovider tests/test_kernels.py tests/test_sparse_attention.py \
  tests/test_long_context.py 2>&1 | tail -25 | tee "$OUT/tests.txt"
timeout 100 python bench/gpu_decode.py --quick 2>&1 | tee "$OUT/gpu_decode.txt"
timeout 200 python bench/gpu_reader.py --model-dir gpu-reader-model --long 131072 --repeats 3 --counts 5,50 2>&1 \
  | grep -v Warning | tee "$OUT/gpu_reader.txt"
cp bench/results/gpu_reader.json "$OUT/" 2>/dev/null
exit 0
