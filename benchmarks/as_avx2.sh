#!/usr/bin/env bash
# Run a command as on an AVX2-only x86-64 CPU, on a CPU that has AVX-512: Numba compiles for Haswell with every
# AVX-512 (and AMX, AVX10) feature of this host turned off, so the micro-kernel takes its 256-bit tile; OpenBLAS
# uses its Haswell kernels; torch's oneDNN, MKL and ATen stop at AVX2 (the peer runs the same instruction set).
#
#     bash benchmarks/as_avx2.sh python benchmarks/kernels_cpu.py --cell lstm --threads 2
#     NUMBA_NUM_THREADS=2 bash benchmarks/as_avx2.sh python benchmarks/forward_ab.py --threads 2 --old HEAD~1
#
# An emulation, not an AVX2 machine: the caches, the core and its clock are this host's (a Zen 4 runs 512-bit
# instructions as two 256-bit halves, so there the two widths have the same peak; on Intel AVX-512 CPUs they do not).
# Compiled code goes to its own Numba cache (NUMBA_CACHE_DIR, default /tmp/lstmzoo-numba-avx2) so that the host's
# AVX-512 cache is left alone. The tables' CPU line still names the host's flags; the "micro-kernel 256-bit" in it
# and torch's capability (printed below) say what ran.
set -euo pipefail
features=$(python - <<'EOF'
import llvmlite.binding as ll
tokens = []
for token in ll.get_host_cpu_features().flatten().split(","):
    if token[1:].startswith(("avx512", "amx", "avx10", "evex512")):
        token = "-" + token[1:]
    tokens.append(token)
print(",".join(tokens))
EOF
)
export NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES="$features"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/lstmzoo-numba-avx2}"
export OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
python -c "from lstmzoo.kernels import microkernel; print(f'# as AVX2: micro-kernel {microkernel.VECTOR_BITS}-bit')"
exec "$@"
