#!/usr/bin/env bash
# The GPU checks as one script, for a machine with an NVIDIA GPU, CuPy and torch with CUDA (the device tool's
# image): the CUDA tests on the real device, then benchmarks/kernels_cuda.py against cuDNN for LSTM, GRU, RNN.
# Every part has its own time limit, and writes its output to ${OUT:-/tmp/gpu_check} as it goes.
#     bash benchmarks/gpu_check.sh            # optional wheels for missing packages are taken from .whl/
# Variables: GPU_TESTS (test files), GPU_TESTS_K (a pytest -k expression), VARIANTS (paths to time side by side,
# see benchmarks/kernels_cuda.py --variants), and each part's time limit in seconds: TESTS_S, LAUNCH_S, LSTM_S, CELL_S.
# On the device tool's image (2026-12: numpy 2.5.2, numba 0.68.0) numba-cuda fails at its first compile with
# "module 'numpy' has no attribute 'row_stack'" (removed in numpy 2.5): carry numpy 2.4.6 in .whl/, with pooch.
set -u
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  lscpu | grep -m1 "Model name"
} 2>&1 | tee "$out/env.txt"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -3
python3 - <<'PY' 2>&1 | tee -a "$out/env.txt"
import cupy, numba, numba_cuda, numpy, torch
from numba import cuda
import lstmzoo.kernels.cuda as k
print("numpy", numpy.__version__, "numba", numba.__version__, "numba-cuda", numba_cuda.__version__, "cupy", cupy.__version__, "torch", torch.__version__,
      "cuDNN", torch.backends.cudnn.version(), "simulator", k.SIMULATOR, "numba sees", cuda.gpus)
PY
set -o pipefail
# shellcheck disable=SC2086
timeout "${TESTS_S:-130}" python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs --timeout 120 \
  ${GPU_TESTS:-tests/test_kernels_cuda.py tests/test_cuda_layers.py} ${GPU_TESTS_K:+-k "$GPU_TESTS_K"} 2>&1 \
  | tee "$out/tests.txt"
timeout "${LAUNCH_S:-30}" python3 benchmarks/cuda_launch.py 2>&1 | tee "$out/launch.md"
# VARIANTS: FORWARD/BACKWARD paths side by side (session 17's A/B: "step/step gemm/gemm persistent/gemm");
# auto/auto is what the selection rule picks, named in the "path" column
variants="${VARIANTS:-auto/auto}"
quiet() { grep --line-buffered -v "NumbaPerformanceWarning\|warn(errors"; }
timeout "${LSTM_S:-150}" python3 benchmarks/kernels_cuda.py --T 100 --B 1 4 8 32 128 256 --H 256 512 1024 \
  --variants $variants 2>&1 | quiet | tee "$out/lstm.md"
for cell in gru rnn; do
  timeout "${CELL_S:-60}" python3 benchmarks/kernels_cuda.py --cell $cell --T 100 --B 1 8 64 256 --H 256 1024 \
    --repeats 3 --variants $variants 2>&1 | quiet | tee "$out/$cell.md"
done
exit 0
