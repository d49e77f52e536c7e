"""The CUDA kernels (``kernels/cuda.py``) against the NumPy reference and the CPU kernels.

Runs under Numba's CUDA simulator or on a real GPU (with CuPy), unchanged:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_kernels_cuda.py

The variable must be set before numba is first imported (``tests/conftest.py`` sets it unless it is
already set; ``NUMBA_ENABLE_CUDASIM=0`` tests a real GPU). Without the simulator and without a GPU (and
CuPy) the whole module skips, printing the reason.

Which launches are exercised:
- per-step path: the step tiles are shrunk to 2 units x 2 sequences x 3 k-columns, so the tiny shapes
  below run several blocks in both grid dimensions, ragged unit/batch edges and several k-slices;
- persistent path: under the simulator the launch is ONE block (a cooperative grid there holds one block,
  and a grid barrier between blocks is not simulated), so the multi-block grid barrier is only checked
  on a real GPU, where the same tests launch one block per hidden unit for these shapes;
- gemm path (cuBLAS per step, ``np.matmul`` under the simulator, then the elementwise kernels): 2 threads a
  block, so several blocks along the units with a ragged last one. The gemm backward runs after the gemm
  forward, the step backward after the step and persistent forwards (``BACKWARD``).
"""

import os

import numpy as np
import pytest


def _why_no_cuda():
    """None when the CUDA kernels can run here, else the reason they cannot."""
    wants_simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    try:
        from numba import config, cuda
    except Exception as error:  # pragma: no cover - numba is a dependency
        return f"numba.cuda cannot be imported ({error})"
    if wants_simulator and not config.ENABLE_CUDASIM:
        return "numba was imported before NUMBA_ENABLE_CUDASIM=1 was set; run this file in its own pytest"
    if config.ENABLE_CUDASIM:
        return None
    if not cuda.is_available():
        return ("no CUDA GPU here and NUMBA_ENABLE_CUDASIM=1 not set "
                "(run: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_kernels_cuda.py)")
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "a CUDA GPU is present but CuPy is not installed (pip install 'lstmzoo[cuda]')"
    return None


_REASON = _why_no_cuda()
if _REASON is not None:
    print(f"tests/test_kernels_cuda.py skipped: {_REASON}")
    pytest.skip(_REASON, allow_module_level=True)

from lstmzoo.kernels import cpu, reference  # noqa: E402
from lstmzoo.kernels import cuda as cuda_kernels  # noqa: E402

# cell name -> (gates, kernel prefix, rnn nonlinearity)
CELLS = {
    "lstm": (4, "lstm", None),
    "gru": (3, "gru", None),
    "rnn_tanh": (1, "rnn", "tanh"),
    "rnn_relu": (1, "rnn", "relu"),
}
# (T, B, I, H, lengths): unsorted lengths, including a sequence shorter than T and one of length 1
SHAPES = {
    "T3_B3_I2_H4": (3, 3, 2, 4, [2, 3, 1]),
    "T4_B2_I3_H3": (4, 2, 3, 3, [1, 4]),
}
PATHS = ["step", "gemm", "persistent"]
# the backward's per-step path with each forced forward path: both backward paths are covered
BACKWARD = {"step": "step", "gemm": "gemm", "persistent": "step"}


@pytest.fixture
def path(request, monkeypatch):
    """Force a forward path; shrink the step tiles; record which launch ran."""
    monkeypatch.setattr(cuda_kernels, "FORCE_PATH", request.param)
    monkeypatch.setattr(cuda_kernels, "FORCE_BACKWARD", BACKWARD[request.param])
    monkeypatch.setattr(cuda_kernels, "GEMM_THREADS", 2)  # several blocks along the units, a ragged last one
    monkeypatch.setattr(cuda_kernels, "STEP_TILE_UNITS", 2)
    monkeypatch.setattr(cuda_kernels, "STEP_TILE_BATCH", 2)
    monkeypatch.setattr(cuda_kernels, "STEP_TILE_K", 3)
    launches = []
    choose = cuda_kernels.choose_path

    def recording_choose_path(*args):
        chosen = choose(*args)
        launches.append(chosen)
        return chosen

    monkeypatch.setattr(cuda_kernels, "choose_path", recording_choose_path)
    yield request.param, launches
    assert launches and all(p == request.param for p, _ in launches)
    if request.param == "persistent" and cuda_kernels.SIMULATOR:
        # the simulator can only check the persistent kernel as one block (see the module docstring)
        assert all(config[1] == 1 for _, config in launches)


def make_inputs(cell, T, B, I, H, dtype, seed=0):
    gates = CELLS[cell][0]
    rng = np.random.default_rng(seed)

    def draw(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": draw(T, B, I), "h0": draw(B, H), "c0": draw(B, H),
        "w_ih": draw(gates * H, I, scale=0.5), "w_hh": draw(gates * H, H, scale=0.5),
        "b_ih": draw(gates * H, scale=0.5), "b_hh": draw(gates * H, scale=0.5),
        "dy": draw(T, B, H), "dh_n": draw(B, H), "dc_n": draw(B, H),
    }


def run(module, cell, inputs, lengths, training=True, final_grads=True):
    """Forward then backward of ``module``: a dict of every output and gradient, as NumPy arrays."""
    _, prefix, nonlinearity = CELLS[cell]
    to_device = cuda_kernels.xp.asarray if module is cuda_kernels else np.asarray
    a = {name: to_device(value) for name, value in inputs.items()}
    forward, backward = getattr(module, prefix + "_forward"), getattr(module, prefix + "_backward")
    weights = (a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])
    dh_n = a["dh_n"] if final_grads else None
    if prefix == "lstm":
        y, h_n, c_n, cache = forward(a["x"], a["h0"], a["c0"], *weights, lengths=lengths, training=training)
        out = {"y": y, "h_n": h_n, "c_n": c_n}
        if training:
            grads = backward(a["dy"], dh_n, a["dc_n"] if final_grads else None, cache)
            names = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    else:
        extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
        y, h_n, cache = forward(a["x"], a["h0"], *weights, lengths=lengths, training=training, **extra)
        out = {"y": y, "h_n": h_n}
        if training:
            grads = backward(a["dy"], dh_n, cache)
            names = ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    if training:
        out.update(zip(names, grads))
    else:
        assert cache is None
    return {name: _to_numpy(value) for name, value in out.items()}


def _to_numpy(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def assert_same(actual, expected, rtol, atol):
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_reference_and_cpu_float64(cell, shape, use_lengths, path):
    T, B, I, H, lengths = SHAPES[shape]
    lengths = lengths if use_lengths else None
    inputs = make_inputs(cell, T, B, I, H, np.float64)
    got = run(cuda_kernels, cell, inputs, lengths)
    assert_same(got, run(reference, cell, inputs, lengths), rtol=1e-9, atol=1e-9)
    assert_same(got, run(cpu, cell, inputs, lengths), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_and_no_final_state_gradient(cell, path):
    """training=False (two ping-pong state slots) gives the same outputs; dh_n=None/dc_n=None backward."""
    T, B, I, H, lengths = SHAPES["T3_B3_I2_H4"]
    inputs = make_inputs(cell, T, B, I, H, np.float64, seed=1)
    inference = run(cuda_kernels, cell, inputs, lengths, training=False)
    expected = run(reference, cell, inputs, lengths, final_grads=False)
    assert_same(inference, {name: expected[name] for name in inference}, rtol=1e-9, atol=1e-9)
    assert_same(run(cuda_kernels, cell, inputs, lengths, final_grads=False), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_reference_float32(cell, path):
    T, B, I, H, lengths = SHAPES["T3_B3_I2_H4"]
    inputs = make_inputs(cell, T, B, I, H, np.float32, seed=2)
    assert_same(run(cuda_kernels, cell, inputs, lengths), run(reference, cell, inputs, lengths),
                rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", ["persistent"], indirect=True)
def test_persistent_with_fewer_lanes_than_hidden_units(path, monkeypatch):
    """Each lane sums several k of a dot product before the shared-memory reduction."""
    monkeypatch.setattr(cuda_kernels, "PERSISTENT_KSPLIT", 2)
    T, B, I, H, lengths = SHAPES["T3_B3_I2_H4"]
    inputs = make_inputs("lstm", T, B, I, H, np.float64, seed=3)
    assert_same(run(cuda_kernels, "lstm", inputs, lengths), run(reference, "lstm", inputs, lengths),
                rtol=1e-9, atol=1e-9)
    assert all(config[2][0] == 2 for _, config in path[1])  # block = (ksplit lanes, units)


def test_selection_rule():
    """Small batch -> persistent where one cooperative grid holds the W_hh slices; large batch -> step."""
    dtype = np.dtype(np.float64)
    xp = cuda_kernels.xp
    T, B, H = 2, 2, 4
    inputs = make_inputs("lstm", T, B, 2, H, dtype)
    args = cuda_kernels._kernel_args((
        xp.zeros((T, B, 4 * H)), xp.asarray(inputs["b_hh"]), xp.asarray(inputs["w_hh"]),
        xp.zeros((T + 1, B, H)), xp.zeros((T + 1, B, H)), xp.zeros((T, B, 4 * H)), xp.zeros((T, B, H)),
        xp.full(B, T, dtype=np.int32), 1, 0))
    path, config = cuda_kernels.choose_path("lstm", dtype, B, H, args)
    assert path == "persistent" and 1 <= config[1] <= H
    big = cuda_kernels.PERSISTENT_MAX_BATCH + 1
    assert cuda_kernels.choose_path("lstm", dtype, big, H, args) == ("step", None)
    # past the persistent kernel's batch: cuBLAS per step from 2^25 multiply-adds per gate a step (B * H * H)
    assert cuda_kernels.choose_path("lstm", dtype, 128, 512, args) == ("gemm", None)
    assert cuda_kernels.choose_path("lstm", dtype, 127, 512, args) == ("step", None)
    assert cuda_kernels.choose_path("lstm", dtype, 256, 256, args) == ("step", None)


@pytest.mark.parametrize("B, H, expected", [
    (1, 256, "step"), (16, 256, "step"), (256, 256, "step"),          # below 2^25 multiply-adds a step
    (1, 512, "gemm"), (16, 1024, "gemm"), (17, 512, "step"),        # small batch, large H: cuBLAS per step
    (64, 512, "step"), (128, 512, "gemm"), (64, 1024, "gemm"),        # from 2^25: cuBLAS per step
])
def test_backward_selection_rule(B, H, expected):
    assert cuda_kernels.choose_backward("lstm", np.dtype(np.float32), B, H) == expected


@pytest.mark.skipif(cuda_kernels.SIMULATOR, reason="real GPU only: the simulator would take minutes at these sizes")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_default_tiles_on_a_real_gpu(cell, path, monkeypatch):
    """The launch geometry users get: default tiles, ragged edges (B=37, H=300, I=70), many blocks in the grid.

    The persistent path here runs one block per few hidden units with a grid-wide barrier between the steps,
    which the simulator cannot check.
    """
    monkeypatch.setattr(cuda_kernels, "FORCE_PATH", path)
    monkeypatch.setattr(cuda_kernels, "FORCE_BACKWARD", BACKWARD[path])
    T, B, I, H = 9, 37, 70, 300
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, T + 1, B)
    inputs = make_inputs(cell, T, B, I, H, np.float64, seed=5)
    inputs = {name: value * (0.2 if name.startswith("w_") else 1.0) for name, value in inputs.items()}
    assert_same(run(cuda_kernels, cell, inputs, lengths), run(reference, cell, inputs, lengths),
                rtol=1e-9, atol=1e-9)
    # float32: each output against the float64 reference, to 1e-5 of that output's largest magnitude (sums over
    # T*B terms cancel: an element near zero carries the rounding of the large terms it was summed from)
    got32 = run(cuda_kernels, cell, {name: value.astype(np.float32) for name, value in inputs.items()}, lengths)
    expected = run(reference, cell, inputs, lengths)
    for name, value in expected.items():
        assert got32[name].dtype == np.float32, name
        np.testing.assert_allclose(got32[name], value, rtol=0, atol=1e-5 * np.abs(value).max(), err_msg=name)
