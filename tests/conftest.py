import os

# Numba must see this before it is first imported: the CUDA kernels' tests then run on the CPU simulator.
# On a machine with a GPU, run the suite with NUMBA_ENABLE_CUDASIM=0 to test the real device.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
