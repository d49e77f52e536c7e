"""Benchmark of the fused CPU kernels (LSTM, GRU or tanh RNN) against torch's ``nn.LSTM`` (oneDNN), ``nn.GRU``
and ``nn.RNN``, printed as a Markdown table.

Used by ``lstmzoo bench`` and ``benchmarks/kernels_cpu.py``. torch is optional: without it the peer
columns read "n/a". Each library is timed after a short idle and one untimed call, alternating between
the two in the same process, because a library whose worker threads are still spinning slows the other
one down by up to 10x (notes/cpu-lstm-measurements.md).
"""

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
    out(f"{cell.upper()}, float32, time-major, median of {repeats} timings, {thread_note}; "
        f"torch {torch.__version__ if torch is not None else 'not installed'}; "
        f"load average before (1, 5, 15 min): {_load_average()}")
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


def _load_average():
    """Other processes on the machine distort the timings, multi-threaded ones most: say how busy it was."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says: every table names its CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _time_shape(cpu, torch, shape, mode, repeats, cell="lstm"):
    """Median seconds per call of (lstmzoo, torch or None), timings alternating between the two."""
    T_, B, I, H = shape
    G = GATES[cell]
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)
    params = {"w_ih": rng.uniform(-bound, bound, (G * H, I)), "w_hh": rng.uniform(-bound, bound, (G * H, H)),
              "b_ih": rng.uniform(-bound, bound, G * H), "b_hh": rng.uniform(-bound, bound, G * H)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    x = rng.standard_normal((T_, B, I)).astype(np.float32)
    h0 = np.zeros((B, H), np.float32)
    dy = rng.standard_normal((T_, B, H)).astype(np.float32)
    training = mode == "training"

    def ours():
        if cell == "lstm":
            *_, cache = cpu.lstm_forward(x, h0, h0, **params, training=training)
            if training:
                cpu.lstm_backward(dy, None, None, cache)
        else:
            *_, cache = getattr(cpu, cell + "_forward")(x, h0, **params, training=training)
            if training:
                getattr(cpu, cell + "_backward")(dy, None, cache)

    calls = [ours]
    if torch is not None:
        calls.append(torch_call(torch, params, x, dy, training, cell=cell))
    medians = median_times(calls, repeats)
    return medians[0], (medians[1] if torch is not None else None)


def torch_call(torch, params, x, dy, training, device="cpu", cell="lstm"):
    """A no-argument function running ``torch.nn.LSTM`` (``nn.GRU``, ``nn.RNN`` with tanh for ``cell`` "gru",
    "rnn") with our weights ``params`` (``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``) on NumPy ``x`` [T, B, I]: inference
    under ``no_grad``, or forward + backward of ``dy``. ``benchmarks/kernels_cuda.py`` uses it with
    ``device="cuda"``."""
    _, _, I = x.shape
    H = params["w_hh"].shape[1]
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    lstm = module(I, H).to(device)
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
