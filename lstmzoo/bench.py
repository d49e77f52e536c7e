"""Benchmark of the fused CPU kernels (LSTM, GRU or tanh RNN) against torch's ``nn.LSTM`` (oneDNN), ``nn.GRU``
and ``nn.RNN``, printed as a Markdown table.

Used by ``lstmzoo bench`` and ``benchmarks/kernels_cpu.py``. torch is optional: without it the peer
columns read "n/a". Each library is timed after a short idle and one untimed call, alternating between
the two in the same process, because a library whose worker threads are still spinning slows the other
one down by up to 10x (notes/cpu-lstm-measurements.md).
"""

import functools
import os
import time

import numpy as np

T = 100
BATCHES = (1, 4, 16, 32, 128, 256)
HIDDENS = (128, 256, 512, 1024)
# Input widths, as functions of H: I = H, and I < H (a narrow input, e.g. features or embeddings under a wide state).
INPUTS = {"H": lambda H: H, "H/4": lambda H: H // 4}
QUICK_SHAPES = [(T, 1, 128, 128), (T, 4, 256, 256), (T, 32, 256, 256), (T, 32, 64, 256), (T, 128, 512, 512)]
IDLE_S = 0.3
TIMED_S = 0.25  # aim each timing at about this long, repeating fast calls
CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def shapes_for(batches=BATCHES, hiddens=HIDDENS, inputs=tuple(INPUTS), steps=T):
    """The table's ``(T, B, I, H)`` rows: every batch size, hidden size and input width (a key of ``INPUTS``
    or a number), B slowest."""
    rows = []
    for B in batches:
        for H in hiddens:
            for width in inputs:
                I = INPUTS[width](H) if width in INPUTS else int(width)
                if (steps, B, I, H) not in rows:
                    rows.append((steps, B, I, H))
    return rows


FULL_SHAPES = shapes_for()


def run(quick=False, threads=None, out=print, shapes=None, repeats=None, cell="lstm", modes=("inference", "training")):
    """Time inference and training steps of lstmzoo's CPU ``cell`` (``"lstm"``, ``"gru"`` or ``"rnn"``, tanh) and
    torch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``; ``out`` gets each line."""
    from lstmzoo.kernels import cpu

    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    torch = _import_torch()
    if threads is not None:
        import numba
        numba.set_num_threads(threads)
        cpu.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
    shapes = shapes or (QUICK_SHAPES if quick else FULL_SHAPES)
    repeats = repeats or (3 if quick else 5)
    thread_note = f"{threads} threads" if threads is not None else "default threads"
    torch_version = torch.__version__ if torch is not None else "not installed"
    out(f"{cell.upper()}, float32, time-major, median of {repeats} timings, {thread_note}; {cpu_model()}, "
        f"micro-kernel {cpu.microkernel.VECTOR_BITS}-bit; torch {torch_version}; "
        f"load average before (1, 5, 15 min): {_load_average()}")
    check = core_check_line(threads or numba_threads())
    if check:
        out(check)
    out("")
    out("| T | B | I | H | mode | lstmzoo ms | torch ms | lstmzoo / torch | lstmzoo GFLOP/s |")
    out("|---|---|---|---|---|---:|---:|---:|---:|")
    for shape in shapes:
        for mode in modes:
            ours, theirs = _time_shape(cpu, torch, shape, mode, repeats, cell)
            T_, B, I, H = shape
            flops = 2 * T_ * B * GATES[cell] * H * (I + H) * (3 if mode == "training" else 1)
            peer = f"{theirs * 1e3:.2f}" if theirs is not None else "n/a"
            ratio = f"{ours / theirs:.2f}" if theirs is not None else "n/a"
            out(f"| {T_} | {B} | {I} | {H} | {mode} | {ours * 1e3:.2f} | {peer} | {ratio} | "
                f"{flops / ours / 1e9:.0f} |")
    out("")
    out(f"load average after the run (1, 5, 15 min): {_load_average()}")
    if check:
        out(core_check_line(threads or numba_threads()))


def numba_threads():
    """Numba's thread count (``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``): what the kernels run on."""
    import numba
    return numba.get_num_threads()


def _load_average():
    """Other processes on the machine distort the timings, multi-threaded ones most: say how busy it was."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU as every table names it: its model name (with its family and model numbers where ``cpuinfo`` has
    them), its widest vector instructions and the logical CPUs, e.g. "AMD EPYC (family 26 model 2), AVX-512, 2
    logical CPUs" (Linux's ``cpuinfo``; elsewhere what ``platform`` says). The numbers tell apart CPUs that a
    virtual machine names alike: "AMD EPYC" was a Zen 4 (family 25 model 17) in sessions 25-33 and a Zen 5 in 34."""
    import platform
    name, flags, numbers = _read_cpuinfo(cpuinfo)
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    if numbers:
        name = f"{name} (family {numbers[0]} model {numbers[1]})"
    vector = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags
              else "vector flags unknown")
    return f"{name}, {vector}, {os.cpu_count()} logical CPUs"


def vector_flags(cpuinfo="/proc/cpuinfo"):
    """The first CPU's vector flags in ``cpuinfo`` (avx, avx2, fma, avx512*), as one string in its order."""
    return " ".join(f for f in _read_cpuinfo(cpuinfo)[1] if f in ("avx", "avx2", "fma") or f.startswith("avx512"))


def _read_cpuinfo(cpuinfo):
    """(the first model name or None, the first CPU's flags in order, [] if none, and its (cpu family, model) as
    written there or None) of a /proc/cpuinfo file."""
    name, numbers, flags = None, {}, []
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key in ("cpu family", "model") and key not in numbers:
                    numbers[key] = value.strip()
                elif key == "flags":
                    flags = value.split()
                    break
    except OSError:
        pass
    return name, flags, (numbers["cpu family"], numbers["model"]) if len(numbers) == 2 else None


# core_check_line calls the host's cores shared where a thread running beside the others is this much slower than alone.
SHARED_CORE_RATIO = 0.8
# core_check's problem: one micro-kernel call on an L1-resident 8 x 64 by 64 x 96 float32 product, repeated.
_CORE_CHECK_SHAPE, _CORE_CHECK_S = (8, 64, 96), 0.3


def core_check(threads=2, seconds=_CORE_CHECK_S):
    """(GFLOP/s of one thread alone, [GFLOP/s of each of ``threads`` threads running at once]) of the micro-kernel
    on data that stays in L1, each timing about ``seconds`` long: nothing shared but the cores themselves. Per
    thread the two should be about equal; where the threads at once run far slower than one alone (measured on
    a 2-vCPU cloud machine, 2026-12-04: 98-106 alone, 92-97 each at once, and in one of three tries 51 each), the
    host is giving one of the "cores" to someone else at that moment, and a multi-threaded timing taken then
    says more about the host than about the code."""
    from lstmzoo.kernels import cpu, microkernel

    repeat = _repeat_matmul()
    M, K, N = _CORE_CHECK_SHAPE
    rng = np.random.default_rng(0)
    a = [rng.standard_normal((M, K)).astype(np.float32) for _ in range(threads)]
    packed = [microkernel.pack(rng.standard_normal((K, N)).astype(np.float32)) for _ in range(threads)]
    out = [np.empty((M, N), np.float32) for _ in range(threads)]
    repeat(a[0], packed[0], out[0], 10)
    start = time.perf_counter()
    repeat(a[0], packed[0], out[0], 1000)
    n = max(1000, int(1000 * seconds / max(time.perf_counter() - start, 1e-9)))
    flops = 2 * M * K * N * n
    start = time.perf_counter()
    repeat(a[0], packed[0], out[0], n)
    alone = flops / (time.perf_counter() - start) / 1e9

    def timed(k):
        begin = time.perf_counter()
        repeat(a[k], packed[k], out[k], n)
        return flops / (time.perf_counter() - begin) / 1e9
    together = cpu._in_parallel([functools.partial(timed, k) for k in range(threads)])
    return alone, together


def core_check_line(threads=2):
    """``core_check`` as one line for a table's header or footer."""
    if threads < 2:
        return ""
    alone, together = core_check(threads)
    each = ", ".join(f"{g:.0f}" for g in together)
    verdict = ("far under one alone: the host is sharing a core now; trust the multi-threaded rows less"
               if min(together) < SHARED_CORE_RATIO * alone else "no sign of a shared core")
    return (f"core check (micro-kernel in L1, GFLOP/s): one thread alone {alone:.0f}; {threads} at once {each} "
            f"({verdict})")


@functools.cache
def _repeat_matmul():
    """A compiled ``repeat(a, packed, out, n)``: ``microkernel.matmul_packed(a, packed, out)`` n times, GIL released."""
    from numba import njit

    from lstmzoo.kernels.microkernel import matmul_packed

    @njit(nogil=True)
    def repeat(a, packed, out, n):
        for _ in range(n):
            matmul_packed(a, packed, out)
    return repeat


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def problem(cell, T, B, inputs, H):
    """A timed call's float32 inputs, seeded: (params, x, h0, dy), weights uniform in +-1/sqrt(H) as torch's."""
    G = GATES[cell]
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)
    params = {"w_ih": rng.uniform(-bound, bound, (G * H, inputs)), "w_hh": rng.uniform(-bound, bound, (G * H, H)),
              "b_ih": rng.uniform(-bound, bound, G * H), "b_hh": rng.uniform(-bound, bound, G * H)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    x = rng.standard_normal((T, B, inputs)).astype(np.float32)
    h0 = np.zeros((B, H), np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    return params, x, h0, dy


def kernel_call(module, cell, params, x, h0, dy, training):
    """A no-argument function running ``module``'s forward (the CPU kernels, or an older copy of them; and the
    backward, in training) on ``problem``'s inputs."""
    def call():
        if cell == "lstm":
            *_, cache = module.lstm_forward(x, h0, h0, **params, training=training)
            if training:
                module.lstm_backward(dy, None, None, cache)
        else:
            *_, cache = getattr(module, cell + "_forward")(x, h0, **params, training=training)
            if training:
                getattr(module, cell + "_backward")(dy, None, cache)
    return call


def _time_shape(cpu, torch, shape, mode, repeats, cell="lstm"):
    """Median seconds per call of (lstmzoo, torch or None), timings alternating between the two."""
    params, x, h0, dy = problem(cell, *shape)
    training = mode == "training"
    calls = [kernel_call(cpu, cell, params, x, h0, dy, training)]
    if torch is not None:
        calls.append(torch_call(torch, params, x, dy, training, cell=cell))
    medians = median_times(calls, repeats)
    return medians[0], (medians[1] if torch is not None else None)


def torch_call(torch, params, x, dy, training, device="cpu", cell="lstm"):
    """A no-argument function running ``torch.nn.LSTM`` (``nn.GRU``, ``nn.RNN`` with tanh for ``cell`` "gru",
    "rnn") with our weights ``params`` (``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``) on NumPy ``x`` [T, B, I]: inference
    under ``no_grad``, or forward + backward of ``dy``, in float64 for a float64 ``x`` (float32 otherwise).
    ``benchmarks/kernels_cuda.py`` uses it with ``device="cuda"``."""
    _, _, I = x.shape
    H = params["w_hh"].shape[1]
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    lstm = module(I, H).to(device, dtype=torch.float64 if x.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for name, value in params.items():
            getattr(lstm, name.replace("w_", "weight_").replace("b_", "bias_") + "_l0").copy_(
                torch.from_numpy(value))
    tx = torch.from_numpy(x).to(device).requires_grad_(training)
    tdy = torch.from_numpy(dy).to(device)

    def call():
        if training:
            lstm.zero_grad(set_to_none=True)
            tx.grad = None
            y, _ = lstm(tx)
            y.backward(tdy)
        else:
            with torch.no_grad():
                lstm(tx)
    return call


def _time_after_idle(call):
    """Seconds per call: idle, one untimed call, then enough calls to last about TIMED_S."""
    time.sleep(IDLE_S)
    start = time.perf_counter()
    call()
    estimate = time.perf_counter() - start
    n = max(1, int(TIMED_S / max(estimate, 1e-6)))
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def median_times(calls, repeats):
    """The median seconds per call of each of ``calls``, timed ``repeats`` times, alternating between them."""
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for call, times in zip(calls, samples):
            times.append(_time_after_idle(call))
    return [float(np.median(times)) for times in samples]


def peer_table(description, what, columns, shapes, time_shape, argv=None):
    """``main`` of a script timing one lstmzoo operation against torch: parses ``--threads`` and ``--repeats``,
    then prints a Markdown table, one row per shape (``columns`` name its fields) with lstmzoo's and torch's
    median milliseconds and their ratio. ``time_shape(torch or None, shape, repeats)`` returns the medians
    ``[ours]`` or ``[ours, torch's]``; ``what`` says what is timed."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per shape, of which the median is shown")
    args = parser.parse_args(argv)
    import numba
    numba.set_num_threads(args.threads)
    torch = _import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"{what}, median of {args.repeats} timings, {args.threads} thread(s); torch "
          f"{torch.__version__ if torch is not None else 'not installed'}; load average before: {_load_average()}")
    print()
    print("| " + " | ".join(columns) + " | lstmzoo ms | torch ms | lstmzoo / torch |")
    print("|" + "---|" * len(columns) + "---:|---:|---:|")
    for shape in shapes:
        times = time_shape(torch, shape, args.repeats)
        peer, ratio = (f"{times[1] * 1e3:.2f}", f"{times[0] / times[1]:.2f}") if len(times) > 1 else ("n/a", "n/a")
        print(f"| {' | '.join(map(str, shape))} | {times[0] * 1e3:.2f} | {peer} | {ratio} |")
    print()
    print(f"load average after: {_load_average()}")
