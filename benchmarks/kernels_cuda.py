"""Time the CUDA LSTM (GRU, RNN) kernels against torch.nn.LSTM (cuDNN) on one GPU and print a Markdown table.

    python benchmarks/kernels_cuda.py                 # T=100 and 500, B 1..256, H 256..1024
    python benchmarks/kernels_cuda.py --cell gru      # the same against torch.nn.GRU (rnn: tanh nn.RNN)
    python benchmarks/kernels_cuda.py --quick         # a handful of shapes, fewer repeats
    python benchmarks/kernels_cuda.py --T 100 --B 1 8 --H 512
    python benchmarks/kernels_cuda.py --variants step/step gemm/gemm persistent/gemm   # every path forced, side by side

Needs an NVIDIA GPU and CuPy (``pip install 'lstmzoo[gpu]'``); torch with CUDA is optional (without it
the peer columns read "n/a"). Both libraries run in this process on the same device, in float32,
time-major, input size = hidden size. Each timing is CUDA events around ``--calls`` calls after a
warm-up call (compilation and cuDNN plan selection happen there); the table shows the median over
``--repeats`` timings, alternating between the libraries (and the ``--variants``). "path" is the forward path
``kernels/cuda.py``'s rule chose for the shape (persistent, gemm or step), so its thresholds can be checked
against these rows (benchmarks/RESULTS.md "GPU" has the A/B they were set from).
"""

import argparse
import os
import sys

import numpy as np

from lstmzoo.bench import torch_call

FULL = {"T": [100, 500], "B": [1, 4, 8, 32, 128, 256], "H": [256, 512, 1024]}
QUICK = {"T": [100], "B": [1, 8, 128], "H": [256, 1024]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of shapes, fewer repeats")
    parser.add_argument("--T", type=int, nargs="+", help="sequence lengths (default 100 500)")
    parser.add_argument("--B", type=int, nargs="+", help="batch sizes (default 1 4 8 32 128 256)")
    parser.add_argument("--H", type=int, nargs="+", help="hidden sizes (default 256 512 1024)")
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm", help="cell (default lstm)")
    parser.add_argument("--variants", nargs="+", default=["auto/auto"], metavar="FORWARD/BACKWARD",
                        help="paths to time side by side, each FORWARD/BACKWARD with FORWARD auto, step, gemm or "
                             "persistent and BACKWARD auto, step or gemm (default auto/auto: what the selection "
                             "rule picks); inference times each distinct FORWARD once")
    parser.add_argument("--repeats", type=int, default=None, help="timings per cell (default 5, quick 3)")
    parser.add_argument("--calls", type=int, default=3, help="calls per timing (default 3)")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="let cuDNN use TF32 tensor cores (off by default: both sides in full float32)")
    args = parser.parse_args()
    variants = [_parse_variant(parser, text) for text in args.variants]

    cupy = _require_gpu()
    from lstmzoo.kernels import cuda as kernels

    torch = _import_torch_cuda()
    if torch is not None:
        torch.backends.cudnn.allow_tf32 = args.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    sizes = QUICK if args.quick else FULL
    Ts, Bs, Hs = args.T or sizes["T"], args.B or sizes["B"], args.H or sizes["H"]
    repeats = args.repeats or (3 if args.quick else 5)

    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    peer = (f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
            f"TF32 {'on' if args.allow_tf32 else 'off'}") if torch is not None else "torch with CUDA: not available"
    print(f"{device}; {args.cell.upper()}, float32, time-major, I = H; median of {repeats} CUDA-event timings "
          f"of {args.calls} calls; CuPy {cupy.__version__}; {peer}")
    print()
    names = ["lstmzoo"] if len(variants) == 1 else ["/".join(v) for v in variants]
    print("| T | B | H | mode | path | " + " | ".join(f"{n} ms" for n in names) + " | cuDNN ms | "
          + ("lstmzoo / cuDNN |" if len(variants) == 1 else "best / cuDNN |"))
    print("|---|---|---|---|---|" + "---:|" * (len(names) + 2))
    for T in Ts:
        for H in Hs:
            for B in Bs:
                for mode in ("inference", "training"):
                    training = mode == "training"
                    timed = variants if training else list(dict.fromkeys((f, "auto") for f, _ in variants))
                    ours, theirs, path = _time_shape(cupy, torch, kernels, args.cell, T, B, H, training, repeats,
                                                     args.calls, timed)
                    by_variant = dict(zip(timed, ours))
                    cells = [by_variant.get(v if training else (v[0], "auto")) for v in variants]
                    shown = [f"{ms:.3f}" if ms is not None else "n/a" for ms in cells]
                    best = min((ms for ms in cells if ms is not None), default=None)
                    peer_ms = f"{theirs:.3f}" if theirs is not None else "n/a"
                    ratio = f"{best / theirs:.2f}" if theirs is not None and best is not None else "n/a"
                    print(f"| {T} | {B} | {H} | {mode} | {path} | " + " | ".join(shown)
                          + f" | {peer_ms} | {ratio} |", flush=True)


def _parse_variant(parser, text):
    forward, _, backward = text.partition("/")
    if forward not in ("auto", "step", "gemm", "persistent") or backward not in ("auto", "step", "gemm"):
        parser.error(f"--variants: {text!r} is not FORWARD/BACKWARD with FORWARD auto, step, gemm or persistent "
                     "and BACKWARD auto, step or gemm")
    return forward, backward


def _require_gpu():
    """CuPy on a working GPU, or exit with one sentence saying what is missing (also for benchmarks/cuda_launch.py)."""
    script = f"benchmarks/{os.path.basename(sys.argv[0])}"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit(f"{script}: NUMBA_ENABLE_CUDASIM=1 is set; simulator timings mean nothing, "
                 "unset it and run on a machine with an NVIDIA GPU")
    try:
        import cupy
    except ImportError:
        sys.exit(f"{script} needs CuPy and an NVIDIA GPU: pip install 'lstmzoo[cuda]'")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception:
        sys.exit(f"{script} needs an NVIDIA GPU with a working driver, and none was found")
    return cupy


def _import_torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _time_shape(cupy, torch, kernels, cell, T, B, H, training, repeats, calls, variants):
    """([lstmzoo median ms or None per variant], cuDNN median ms or None, auto's forward path) for one shape and
    mode; a variant whose forced path cannot run this shape (the persistent kernel where it does not fit) is None."""
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    host = {"w_ih": rng.uniform(-bound, bound, (G * H, H)), "w_hh": rng.uniform(-bound, bound, (G * H, H)),
            "b_ih": rng.uniform(-bound, bound, G * H), "b_hh": rng.uniform(-bound, bound, G * H),
            "x": rng.standard_normal((T, B, H)), "dy": rng.standard_normal((T, B, H))}
    host = {name: value.astype(np.float32) for name, value in host.items()}
    dev = {name: cupy.asarray(value) for name, value in host.items()}
    h0 = cupy.zeros((B, H), dtype=cupy.float32)
    weights = {name: dev[name] for name in ("w_ih", "w_hh", "b_ih", "b_hh")}

    def call():
        if cell == "lstm":
            _, _, _, cache = kernels.lstm_forward(dev["x"], h0, h0, **weights, training=training)
            if training:
                kernels.lstm_backward(dev["dy"], None, None, cache)
        else:
            forward, backward = getattr(kernels, cell + "_forward"), getattr(kernels, cell + "_backward")
            _, _, cache = forward(dev["x"], h0, **weights, training=training)
            if training:
                backward(dev["dy"], None, cache)

    def forced(forward, backward):
        def run():
            kernels.FORCE_PATH = None if forward == "auto" else forward
            kernels.FORCE_BACKWARD = None if backward == "auto" else backward
            try:
                call()
            finally:
                kernels.FORCE_PATH = kernels.FORCE_BACKWARD = None
        return run

    chosen = []
    choose = kernels.choose_path

    def recording_choose_path(*args):
        path_and_config = choose(*args)
        chosen.append(path_and_config[0])
        return path_and_config

    kernels.choose_path = recording_choose_path
    try:
        forced("auto", "auto")()  # compiles the kernels for this shape, records the path
    finally:
        kernels.choose_path = choose

    timers = []
    for variant in variants:
        run = forced(*variant)
        try:
            run()  # compiles this variant's kernels (a warm-up call)
        except ValueError:  # forced persistent where it cannot run
            timers.append(None)
            continue
        timers.append(lambda run=run: _cupy_event_ms(cupy, run, calls))
    if torch is not None:
        theirs = torch_call(torch, {k: host[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}, host["x"], host["dy"],
                            training, device="cuda", cell=cell)
        theirs()
        timers.append(lambda: _torch_event_ms(torch, theirs, calls))
    samples = [[] for _ in timers]
    for _ in range(repeats):
        for timer, times in zip(timers, samples):
            if timer is not None:
                times.append(timer())
    medians = [float(np.median(times)) if times else None for times in samples]
    ours = medians[:len(variants)]
    return ours, (medians[-1] if torch is not None else None), chosen[0]


def _cupy_event_ms(cupy, call, calls):
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(calls):
        call()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / calls


def _torch_event_ms(torch, call, calls):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        call()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / calls


if __name__ == "__main__":
    main()
