"""The NumPy reference (the spec every kernel matches): its gradients and its agreement with PyTorch."""

import numpy as np
import pytest
from helpers import numeric_gradient
from lstmzoo.kernels import reference

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def make_inputs(rng, cell, T, B, I, H):
    G = GATES[cell]

    def normal(*shape, scale=1.0):
        return scale * rng.standard_normal(shape)

    return {"x": normal(T, B, I), "h0": normal(B, H, scale=0.5), "c0": normal(B, H, scale=0.5),
                "w_ih": normal(G * H, I, scale=0.5), "w_hh": normal(G * H, H, scale=0.5),
                "b_ih": normal(G * H, scale=0.3), "b_hh": normal(G * H, scale=0.3)}


def forward(cell, p, lengths):
    if cell == "lstm":
        y, h_n, c_n, cache = reference.lstm_forward(**p, lengths=lengths)
        return (y, h_n, c_n), cache
    args = {k: v for k, v in p.items() if k != "c0"}
    if cell == "gru":
        y, h_n, cache = reference.gru_forward(**args, lengths=lengths)
    else:
        y, h_n, cache = reference.rnn_forward(**args, lengths=lengths, nonlinearity=cell.split("_")[1])
    return (y, h_n), cache


def named_grads(cell, cache, dy, dh_n, dc_n):
    if cell == "lstm":
        names = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
        return dict(zip(names, reference.lstm_backward(dy, dh_n, dc_n, cache)))
    names = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"]
    backward = reference.gru_backward if cell == "gru" else reference.rnn_backward
    return dict(zip(names, backward(dy, dh_n, cache)))


@pytest.mark.parametrize("cell", CELLS)
def test_finite_difference_gradients(cell):
    """Central differences of L = sum(y R1) + sum(h_n R2) [+ sum(c_n R3)], with unequal lengths."""
    rng = np.random.default_rng(0)
    p = make_inputs(rng, cell, 4, 3, 3, 4)
    if cell == "rnn_relu":  # keep pre-activations away from the kink at 0, where the loss is not smooth
        p["b_ih"] += 0.5
    lengths = np.array([2, 4, 3])
    outputs, cache = forward(cell, p, lengths)
    weights = [rng.standard_normal(o.shape) for o in outputs]

    def loss():
        return sum(float(np.sum(o * w)) for o, w in zip(forward(cell, p, lengths)[0], weights))

    grads = named_grads(cell, cache, weights[0], weights[1], weights[2] if cell == "lstm" else None)
    for name, grad in grads.items():
        numeric = numeric_gradient(loss, p[name])
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_packed_sequences(cell):
    """Forward outputs and every gradient agree with torch.nn.LSTM/GRU/RNN on a packed batch."""
    torch = pytest.importorskip("torch")
    rnn_utils = torch.nn.utils.rnn
    rng = np.random.default_rng(1)
    T, B, I, H = 5, 4, 3, 6
    p = make_inputs(rng, cell, T, B, I, H)
    lengths = np.array([3, 5, 1, 4])  # unsorted: enforce_sorted=False
    if cell == "lstm":
        module = torch.nn.LSTM(I, H, dtype=torch.float64)
    elif cell == "gru":
        module = torch.nn.GRU(I, H, dtype=torch.float64)
    else:
        module = torch.nn.RNN(I, H, nonlinearity=cell.split("_")[1], dtype=torch.float64)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            torch_name = name.replace("w_", "weight_").replace("b_", "bias_") + "_l0"
            getattr(module, torch_name).copy_(torch.from_numpy(p[name]))

    x = torch.from_numpy(p["x"]).requires_grad_(True)
    h0 = torch.from_numpy(p["h0"])[None].requires_grad_(True)
    c0 = torch.from_numpy(p["c0"])[None].requires_grad_(True)
    packed = rnn_utils.pack_padded_sequence(x, torch.from_numpy(lengths), enforce_sorted=False)
    out, state = module(packed, (h0, c0) if cell == "lstm" else h0)
    y_torch, _ = rnn_utils.pad_packed_sequence(out, total_length=T)
    finals = list(state) if cell == "lstm" else [state]

    outputs, cache = forward(cell, p, lengths)
    np.testing.assert_allclose(outputs[0], y_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(outputs[1:], finals):
        np.testing.assert_allclose(mine, theirs[0].detach().numpy(), rtol=1e-10, atol=1e-12)

    weights = [rng.standard_normal(o.shape) for o in outputs]
    loss = (y_torch * torch.from_numpy(weights[0])).sum()
    for final, w in zip(finals, weights[1:]):
        loss = loss + (final[0] * torch.from_numpy(w)).sum()
    loss.backward()
    torch_grads = {"x": x.grad, "h0": h0.grad[0], "c0": c0.grad[0] if cell == "lstm" else None}
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        torch_name = name.replace("w_", "weight_").replace("b_", "bias_") + "_l0"
        torch_grads[name] = getattr(module, torch_name).grad
    grads = named_grads(cell, cache, weights[0], weights[1], weights[2] if cell == "lstm" else None)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, torch_grads[name].numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
