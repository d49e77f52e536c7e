"""LSTM with projections (``proj_size``, PyTorch's ``weight_hr``): the CPU kernel against the reference,
finite differences, the layer against ``torch.nn.LSTM(proj_size=...)``, and the validation."""

import math

import numpy as np
import pytest
from helpers import numeric_gradient
from lstmzoo.kernels import cpu, reference

from lstmzoo.array import cuda_simulator
from lstmzoo.nn import GRU, LSTM, RNN

T, I, H, P = 6, 3, 7, 4
GRAD_NAMES = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_hr")


def make_inputs(rng, T, B, I, H, P, dtype):
    """Kernel arguments at a scale that keeps the gates out of saturation."""

    def normal(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {"x": normal(T, B, I, scale=1.0), "h0": normal(B, P), "c0": normal(B, H), "w_ih": normal(4 * H, I),
            "w_hh": normal(4 * H, P), "b_ih": normal(4 * H, scale=0.3), "b_hh": normal(4 * H, scale=0.3),
            "w_hr": normal(P, H)}


def assert_close(actual, expected, dtype, name):
    assert actual.dtype == expected.dtype == dtype, name
    assert actual.shape == expected.shape, name
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=name)
    else:
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


# ------------------------------------------------------------------------------------------ kernels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_lengths", [False, True])
# Two threads (pinned where the kernels' plan reads the count, as on any machine): 1 row, OpenBLAS's GEMV; 3, the
# packed micro-kernel on one thread; 12 and 80, two blocks of rows, one thread each, through the micro-kernel (6 and
# 40 rows each: full and partial register tiles).
@pytest.mark.parametrize("B, steps", [(1, ["gemv"]), (3, ["packed"]), (12, ["packed", "packed"]),
                                      (80, ["packed", "packed"])])
def test_cpu_matches_reference(dtype, with_lengths, B, steps, monkeypatch):
    import numba
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    assert [block.step for block in cpu.plan(B).blocks] == steps
    rng = np.random.default_rng(B + 10 * with_lengths)
    p = make_inputs(rng, T, B, I, H, P, dtype)
    lengths = rng.integers(1, T + 1, B) if with_lengths else None
    dy = rng.standard_normal((T, B, P)).astype(dtype)
    dh_n = rng.standard_normal((B, P)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype)

    *want, want_cache = reference.lstm_forward(**p, lengths=lengths)
    *got, got_cache = cpu.lstm_forward(**p, lengths=lengths)
    *inference, no_cache = cpu.lstm_forward(**p, lengths=lengths, training=False)
    assert no_cache is None
    for name, a, b, c, shape in zip(("y", "h_n", "c_n"), got, inference, want, ((T, B, P), (B, P), (B, H))):
        assert c.shape == shape, name
        assert_close(a, c, dtype, name)
        assert_close(b, c, dtype, f"{name} (inference)")

    for final_grads in ((dh_n, dc_n), (None, None)):
        want_grads = reference.lstm_backward(dy, *final_grads, want_cache)
        got_grads = cpu.lstm_backward(dy, *final_grads, got_cache)
        assert len(got_grads) == len(want_grads) == len(GRAD_NAMES)
        for name, a, b in zip(GRAD_NAMES, got_grads, want_grads):
            assert_close(a, b, dtype, name)


@pytest.mark.parametrize("module", [reference, cpu], ids=["reference", "cpu"])
def test_gradients_match_finite_differences(module):
    rng = np.random.default_rng(5)
    Tg, Bg, Ig, Hg, Pg = 4, 3, 2, 3, 2
    p = make_inputs(rng, Tg, Bg, Ig, Hg, Pg, np.float64)
    lengths = np.array([4, 2, 3])
    wy = rng.standard_normal((Tg, Bg, Pg))
    wh = rng.standard_normal((Bg, Pg))
    wc = rng.standard_normal((Bg, Hg))

    def loss():
        y, h_n, c_n, _ = module.lstm_forward(**p, lengths=lengths)
        return float((y * wy).sum() + (h_n * wh).sum() + (c_n * wc).sum())

    *_, cache = module.lstm_forward(**p, lengths=lengths)
    grads = module.lstm_backward(wy, wh, wc, cache)
    for name, grad in zip(("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"), grads):
        np.testing.assert_allclose(grad, numeric_gradient(loss, p[name]), rtol=1e-6, atol=1e-8, err_msg=name)


def test_cuda_kernel_refuses_a_projection():
    if not cuda_simulator():
        pytest.skip("the CUDA kernels' module is imported under NUMBA_ENABLE_CUDASIM=1 here")
    from lstmzoo.kernels import cuda

    p = make_inputs(np.random.default_rng(0), 2, 1, I, H, P, np.float64)
    with pytest.raises(NotImplementedError, match="proj_size is not supported on the GPU yet"):
        cuda.lstm_forward(**p)


# -------------------------------------------------------------------------------------------- layer


def torch_twin(torch, layer):
    """torch.nn.LSTM with the layer's parameters; asserts the same names, order and shapes."""
    twin = torch.nn.LSTM(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                         bidirectional=layer.bidirectional, batch_first=layer.batch_first,
                         proj_size=layer.proj_size).double()
    state = twin.state_dict()
    assert list(state) == list(layer.parameters())
    for name, value in layer.parameters().items():
        assert tuple(state[name].shape) == value.shape, name
    twin.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in layer.parameters().items()})
    return twin


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_layer_matches_pytorch(batch_first, packed):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(7)
    layer = LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=batch_first, proj_size=2, dtype="float64",
                 rng=rng)
    twin = torch_twin(torch, layer)
    steps, batch = 5, 4
    x = rng.standard_normal((batch, steps, 3) if batch_first else (steps, batch, 3))
    h0, c0 = rng.standard_normal((4, batch, 2)), rng.standard_normal((4, batch, 5))
    lengths = np.array([3, 5, 1, 4]) if packed else None

    y, (h_n, c_n) = layer.forward(x, (h0, c0), lengths)
    assert y.shape == ((batch, steps, 4) if batch_first else (steps, batch, 4))
    assert h_n.shape == (4, batch, 2) and c_n.shape == (4, batch, 5)
    wy, wh, wc = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    dx = layer.backward(wy, wh, wc)

    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    inp = (pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
           if packed else tx)
    ty, (th_n, tc_n) = twin(inp, (th0, tc0))
    if packed:
        ty, _ = pad_packed_sequence(ty, batch_first=batch_first, total_length=steps)
    ((ty * torch.tensor(wy)).sum() + (th_n * torch.tensor(wh)).sum() + (tc_n * torch.tensor(wc)).sum()).backward()

    for got, want in ((y, ty), (h_n, th_n), (c_n, tc_n)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip((dx, *layer.initial_state_grad), (tx, th0, tc0)):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, param in twin.named_parameters():
        np.testing.assert_allclose(layer.grads()[name], param.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_parameters_shapes_and_initialisation():
    layer = LSTM(3, 16, num_layers=2, bidirectional=True, proj_size=2, rng=np.random.default_rng(0))
    params = layer.parameters()
    expected = {}
    for k, layer_input in ((0, 3), (1, 4)):
        for suffix in (f"l{k}", f"l{k}_reverse"):
            expected.update({f"weight_ih_{suffix}": (64, layer_input), f"weight_hh_{suffix}": (64, 2),
                             f"bias_ih_{suffix}": (64,), f"bias_hh_{suffix}": (64,),
                             f"weight_hr_{suffix}": (2, 16)})
    assert {name: value.shape for name, value in params.items()} == expected
    assert list(params) == list(expected)  # PyTorch's state_dict order
    bound = 1 / math.sqrt(16)  # PyTorch: 1/sqrt(hidden_size) for every parameter, W_hr included
    for name, value in params.items():
        assert np.abs(value).max() <= bound, name
    assert np.abs(params["weight_hr_l0"]).max() > 0.8 * bound
    assert "proj_size=2" in repr(layer)


def test_layer_runs_in_float32_and_eval_mode():
    layer = LSTM(3, 6, proj_size=4, rng=np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((5, 2, 3)).astype(np.float32)
    y, (h_n, c_n) = layer.forward(x)
    layer.eval()
    y_eval, (h_eval, c_eval) = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (5, 2, 4) and c_n.shape == (1, 2, 6)
    np.testing.assert_array_equal(y, y_eval)
    np.testing.assert_array_equal(h_n, h_eval)
    np.testing.assert_array_equal(c_n, c_eval)


@pytest.mark.parametrize("proj_size", [-1, 6, 9, 2.0, True, "2"])
def test_rejects_a_bad_proj_size(proj_size):
    with pytest.raises(ValueError, match="proj_size must be an integer from 0"):
        LSTM(3, 6, proj_size=proj_size)


@pytest.mark.parametrize("cls", [GRU, RNN])
def test_only_the_lstm_has_a_projection(cls):
    with pytest.raises(ValueError, match=f"only supported by LSTM, not by {cls.__name__}"):
        cls(3, 6, proj_size=2)


def test_rejects_wrong_state_widths():
    layer = LSTM(3, 6, proj_size=2)
    x = np.zeros((4, 2, 3), np.float32)
    with pytest.raises(ValueError, match="h0"):
        layer.forward(x, (np.zeros((1, 2, 6), np.float32), np.zeros((1, 2, 6), np.float32)))
    with pytest.raises(ValueError, match="c0"):
        layer.forward(x, (np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.float32)))


def test_layer_on_the_gpu_says_it_is_unsupported():
    if not cuda_simulator():
        pytest.skip("device='cuda' is usable here only under NUMBA_ENABLE_CUDASIM=1 (or on a GPU with CuPy)")
    with pytest.raises(ValueError, match="proj_size is not supported on the GPU yet"):
        LSTM(3, 6, proj_size=2, device="cuda")
