"""Linear, Embedding, Dropout, activations, Sequential, losses: finite differences and PyTorch parity."""

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo.nn import CrossEntropyLoss, Dropout, Embedding, Linear, MSELoss, ReLU, Sequential, Tanh


def check_module_gradients(module, x):
    """FD of <module(x), w> against backward for x and every parameter (float64)."""
    w = np.random.default_rng(1).standard_normal(module.forward(x).shape)

    def loss():
        return float((module.forward(x) * w).sum())

    module.zero_grad()
    module.forward(x)
    dx = module.backward(w)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8, err_msg="x")
    for name, p in module.parameters().items():
        np.testing.assert_allclose(
            module.grads()[name], numeric_gradient(loss, p), rtol=1e-6, atol=1e-8, err_msg=name
        )


# ------------------------------------------------------------------------------------------ layers


@pytest.mark.parametrize("bias", [True, False])
def test_linear_finite_differences_with_leading_dims(bias):
    rng = np.random.default_rng(0)
    layer = Linear(4, 3, bias=bias, dtype="float64", rng=rng)
    assert list(layer.parameters()) == (["weight", "bias"] if bias else ["weight"])
    check_module_gradients(layer, rng.standard_normal((2, 3, 4)))


def test_linear_init_and_validation():
    layer = Linear(16, 5)
    assert layer.parameters()["weight"].shape == (5, 16)
    assert np.abs(layer.parameters()["weight"]).max() <= 0.25
    with pytest.raises(ValueError, match=r"expected \[..., 16\]"):
        layer.forward(np.zeros((2, 15), np.float32))
    with pytest.raises(ValueError, match="dtype float64"):
        layer.forward(np.zeros((2, 16)))


def test_sequential_with_activations_finite_differences():
    rng = np.random.default_rng(2)
    model = Sequential(
        Linear(3, 5, dtype="float64", rng=rng),
        Tanh(),
        Linear(5, 4, dtype="float64", rng=rng),
        ReLU(),
        Linear(4, 2, dtype="float64", rng=rng),
    )
    assert list(model.parameters()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert len(model) == 5 and isinstance(model[1], Tanh)
    check_module_gradients(model, rng.standard_normal((3, 2, 3)))


def test_embedding_gradients_with_padding_and_repeats():
    rng = np.random.default_rng(3)
    emb = Embedding(6, 3, padding_idx=-1, dtype="float64", rng=rng)
    assert emb.padding_idx == 5
    np.testing.assert_array_equal(emb.parameters()["weight"][5], 0)
    indices = np.array([[1, 5, 1], [0, 5, 2]])
    out = emb.forward(indices)
    np.testing.assert_array_equal(out[0, 0], emb.parameters()["weight"][1])
    dout = rng.standard_normal(out.shape)
    assert emb.backward(dout) is None
    grad = emb.grads()["weight"]
    np.testing.assert_allclose(grad[1], dout[0, 0] + dout[0, 2])
    np.testing.assert_array_equal(grad[5], 0)
    np.testing.assert_array_equal(grad[3], 0)
    with pytest.raises(ValueError, match="0..5"):
        emb.forward(np.array([6]))
    with pytest.raises(ValueError, match="integer"):
        emb.forward(np.array([1.0]))


def test_dropout_train_and_eval():
    x = np.ones((200, 100), np.float32)
    drop = Dropout(0.3, rng=np.random.default_rng(4))
    y = drop.forward(x)
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(drop.backward(x), y)  # same mask on the way back
    drop.eval()
    assert drop.forward(x) is x
    with pytest.raises(RuntimeError, match="train mode"):
        drop.backward(x)
    drop.train()
    np.testing.assert_array_equal(Dropout(1.0).forward(x), 0)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)


def test_layers_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    linear, emb = (
        Linear(4, 3, dtype="float64", rng=rng),
        Embedding(7, 4, padding_idx=0, dtype="float64", rng=rng),
    )
    t_linear, t_emb = torch.nn.Linear(4, 3).double(), torch.nn.Embedding(7, 4, padding_idx=0).double()
    for ours, theirs in ((linear, t_linear), (emb, t_emb)):
        assert list(theirs.state_dict()) == list(ours.parameters())
        theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.parameters().items()})
    indices = np.array([[0, 3, 3], [6, 0, 1]])
    dout = rng.standard_normal((2, 3, 3))
    y = linear.forward(emb.forward(indices))
    emb.backward(linear.backward(dout))
    t_y = t_linear(t_emb(torch.from_numpy(indices)))
    t_y.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=1e-12)
    for ours, theirs in ((linear, t_linear), (emb, t_emb)):
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(ours.grads()[name], p.grad.numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------ losses


def check_loss_gradient(loss_fn, pred, target):
    loss_fn.forward(pred, target)
    analytic = loss_fn.backward()
    numeric = numeric_gradient(lambda: loss_fn.forward(pred, target), pred)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_finite_differences_and_pytorch(reduction):
    rng = np.random.default_rng(6)
    pred, target = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    check_loss_gradient(MSELoss(reduction), pred, target)
    torch = pytest.importorskip("torch")
    t_pred = torch.tensor(pred, requires_grad=True)
    t_loss = torch.nn.MSELoss(reduction=reduction)(t_pred, torch.tensor(target))
    t_loss.backward()
    loss = MSELoss(reduction)
    assert loss.forward(pred, target) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), t_pred.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="no broadcasting"):
        loss.forward(pred, target[:, :, :1])


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_finite_differences_and_pytorch(use_weight, reduction):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((3, 4, 5)) * 3
    target = rng.integers(0, 5, size=(3, 4))
    target[0, 1] = target[2, 3] = -1
    weight = rng.uniform(0.5, 2.0, 5) if use_weight else None
    loss = CrossEntropyLoss(weight=weight, ignore_index=-1, reduction=reduction)
    check_loss_gradient(loss, logits, target)
    torch = pytest.importorskip("torch")
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.CrossEntropyLoss(
        weight=None if weight is None else torch.tensor(weight), ignore_index=-1, reduction=reduction
    )(t_logits.permute(0, 2, 1), torch.tensor(target))
    t_loss.backward()
    assert loss.forward(logits, target) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), t_logits.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_stability_and_edge_cases():
    loss = CrossEntropyLoss()
    logits = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    assert loss.forward(logits, np.array([0])) == pytest.approx(0.0, abs=1e-6)
    assert loss.forward(logits, np.array([2])) == pytest.approx(2000.0, rel=1e-6)
    assert np.isfinite(loss.backward()).all()
    assert np.isnan(loss.forward(logits, np.array([-100])))
    np.testing.assert_array_equal(loss.backward(), 0)
    with pytest.raises(ValueError, match="0..2"):
        loss.forward(logits, np.array([3]))
    with pytest.raises(ValueError, match="classes in the last dimension"):
        loss.forward(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        loss.forward(logits, np.array([0.0]))
    with pytest.raises(RuntimeError, match="forward first"):
        loss.backward()
