"""device="cuda" end to end: the layers, a loss, an optimizer step, on the CUDA kernels.

Under Numba's CUDA simulator (the default in this suite, see conftest.py) NumPy arrays stand in for CuPy
arrays; on a machine with a GPU run with NUMBA_ENABLE_CUDASIM=0 and the same tests run on the device.
Shapes stay tiny: the simulator runs every CUDA thread as a Python thread.
"""

import numpy as np
import pytest

from lstmzoo import random as lz_random
from lstmzoo.array import cuda_simulator, to_numpy


def _cuda_usable():
    if cuda_simulator():
        return True
    try:
        import cupy  # noqa: F401
        from numba import cuda
        return cuda.is_available()
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not _cuda_usable(), reason="needs NUMBA_ENABLE_CUDASIM=1, or a GPU with CuPy")


def _pair(cls, **kwargs):
    """The same layer (same weights) on the CPU and on CUDA."""
    cpu = cls(dtype="float64", device="cpu", **kwargs)
    gpu = cls(dtype="float64", device="cuda", **kwargs)
    gpu.load_parameters({k: gpu.xp.asarray(v) for k, v in cpu.parameters().items()})
    return cpu, gpu


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_cuda_layer_equals_cpu_layer(kind):
    from lstmzoo import nn
    rng = np.random.default_rng(1)
    cpu, gpu = _pair(getattr(nn, kind), input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    T, B = 4, 3
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([2, 4, 3])
    y_cpu, state_cpu = cpu.forward(x, lengths=lengths)
    y_gpu, state_gpu = gpu.forward(gpu.xp.asarray(x), lengths=lengths)
    np.testing.assert_allclose(to_numpy(y_gpu), y_cpu, rtol=1e-9, atol=1e-12)
    states = zip(state_gpu, state_cpu) if kind == "LSTM" else [(state_gpu, state_cpu)]
    for a, b in states:
        np.testing.assert_allclose(to_numpy(a), b, rtol=1e-9, atol=1e-12)
    dy = rng.standard_normal(y_cpu.shape)
    dx_cpu = cpu.backward(dy)
    dx_gpu = gpu.backward(gpu.xp.asarray(dy))
    np.testing.assert_allclose(to_numpy(dx_gpu), dx_cpu, rtol=1e-9, atol=1e-12)
    grads_gpu = gpu.grads()
    for name, g in cpu.grads().items():
        np.testing.assert_allclose(to_numpy(grads_gpu[name]), g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_training_step_on_cuda_equals_cpu():
    """LSTM -> Linear -> MSE -> clipping -> Adam: one step on each device, same weights after."""
    from lstmzoo import nn, optim

    class Forecaster(nn.Module):
        def __init__(self, device):
            super().__init__()
            self.lstm = nn.LSTM(2, 3, dtype="float64", device=device)
            self.head = nn.Linear(3, 1, dtype="float64", device=device)

        def forward(self, x):
            y, _ = self.lstm.forward(x)
            return self.head.forward(y[-1])

        def backward(self, dout):
            dlast = self.head.backward(dout)
            dy = self.lstm.xp.zeros((3,) + dlast.shape, dtype=dlast.dtype)
            dy[-1] = dlast
            self.lstm.backward(dy)

    lz_random.seed(0)
    cpu = Forecaster("cpu")
    gpu = Forecaster("cuda")
    gpu.load_parameters({k: gpu.lstm.xp.asarray(v) for k, v in cpu.parameters().items()})
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 1))
    for model in (cpu, gpu):
        xp = model.lstm.xp
        opt = optim.Adam(model, lr=0.01)
        loss = nn.MSELoss()
        for _ in range(2):
            opt.zero_grad()
            loss.forward(model.forward(xp.asarray(x)), xp.asarray(target))
            model.backward(loss.backward())
            optim.clip_grad_norm(model, 1.0)
            opt.step()
    for name, value in cpu.parameters().items():
        np.testing.assert_allclose(to_numpy(gpu.parameters()[name]), value, rtol=1e-9, atol=1e-12, err_msg=name)


def test_cli_trains_a_recipe_on_cuda_and_evaluates_it_anywhere(tmp_path, monkeypatch):
    """`lstmzoo train --device cuda` end to end (tiny settings: the simulator is slow), then the run is
    evaluated on the CUDA path and on the CPU with the same result; without a usable GPU, evaluating a
    CUDA run says how to load it on the CPU instead of failing with a traceback."""
    import json

    from click.testing import CliRunner

    from lstmzoo.cli import main

    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["train", "airline-passengers", "--device", "cuda", "--epochs", "2",
                                  "--set", "hidden_size=4", "--set", "window=3", "--set", "batch_size=64",
                                  "--set", "windows_per_epoch=64",
                                  "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["hyperparameters"]["device"] == "cuda"
    on_cuda = json.loads(runner.invoke(main, ["evaluate", "airline-passengers", "--checkpoint", str(run),
                                              "--json"]).stdout)
    on_cpu = json.loads(runner.invoke(main, ["evaluate", "airline-passengers", "--checkpoint", str(run),
                                             "--json", "--device", "cpu"]).stdout)
    assert on_cuda.keys() == on_cpu.keys()
    for name in on_cpu:
        assert abs(on_cuda[name] - on_cpu[name]) <= 1e-4 * abs(on_cpu[name]), name

    try:
        import cupy  # noqa: F401
        return
    except ImportError:
        pass
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")  # now no CUDA device is usable in this process
    result = runner.invoke(main, ["evaluate", "airline-passengers", "--checkpoint", str(run)])
    assert result.exit_code == 2
    assert "--device cpu" in result.output and "Traceback" not in result.output
