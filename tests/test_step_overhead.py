"""The per-step shortcuts of the layers (issue 16: the fixed CPU cost of a small training step) give what the general
code gives, bit for bit: the reverse direction of sequences that all run every step, the cross-entropy without
class weights or ignored targets, and ``flatten`` answering without a walk while nothing moved."""

import copy

import numpy as np
import pytest

from lstmzoo import kernels
from lstmzoo.nn import GRU, LSTM, RNN, CrossEntropyLoss, Linear, Module
from lstmzoo.nn.layers import check_array


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _by_kernels(layer, x, lengths, dy):
    """A one-layer bidirectional layer's y, dx and weight gradients computed as before the shortcut: the kernels
    given every sequence's length, the reverse direction gathered by ``_reverse_index``."""
    steps, batch = x.shape[:2]
    forward = getattr(kernels.cpu, f"{layer.kind}_forward")
    backward = getattr(kernels.cpu, f"{layer.kind}_backward")
    index = layer._reverse_index(steps, np.asarray(lengths))
    zeros = [np.zeros((batch, layer.hidden_size), layer.dtype)] * layer.num_states
    outputs, dx, grads = [], 0, {}
    for direction in (0, 1):
        names = layer._weight_names(0, direction)
        sequence = layer._gather_time(x, index) if direction else x
        output, *_, cache = forward(sequence, *zeros, *(layer.parameters()[n] for n in names), lengths=lengths,
                                    training=True, **layer._kernel_options())
        outputs.append(layer._gather_time(output, index) if direction else output)
        grad_y = dy[:, :, direction * layer.hidden_size:(direction + 1) * layer.hidden_size]
        grad_y = layer._gather_time(grad_y, index) if direction else np.ascontiguousarray(grad_y)
        d, *rest = backward(grad_y, *([None] * layer.num_states), cache)
        dx = dx + (layer._gather_time(d, index) if direction else d)
        grads.update(zip(names, rest[layer.num_states:]))
    return np.concatenate(outputs, axis=2), dx, grads


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lengths", ["all of them", "none", "some shorter"])
def test_reverse_direction_bit_identical_to_the_gather_with_lengths(cls, dtype, lengths):
    rng = np.random.default_rng(3)
    steps, batch = 7, 5
    layer = cls(3, 6, bidirectional=True, dtype=dtype, rng=np.random.default_rng(1))
    x = rng.standard_normal((steps, batch, 3)).astype(dtype)
    given = {"all of them": np.full(batch, steps), "none": None, "some shorter": np.array([7, 2, 7, 5, 1])}[lengths]
    y, _ = layer(x, lengths=given)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    y_ref, dx_ref, grads_ref = _by_kernels(layer, x, np.full(batch, steps) if given is None else given, dy)
    assert _same(y, y_ref) and _same(dx, dx_ref)
    for name, grad in grads_ref.items():
        assert _same(layer.grads()[name], grad), name


def test_lengths_all_full_reach_the_kernels_as_none(monkeypatch):
    seen = []
    forward = kernels.cpu.lstm_forward

    def spy(*args, lengths=None, **kwargs):
        seen.append(lengths)
        return forward(*args, lengths=lengths, **kwargs)

    monkeypatch.setattr(kernels.cpu, "lstm_forward", spy)
    layer = LSTM(2, 3, bidirectional=True)
    x = np.ones((4, 3, 2), np.float32)
    layer(x, lengths=np.array([4, 4, 4]))
    layer(x, lengths=np.array([4, 1, 4]))
    assert seen[:2] == [None, None]
    np.testing.assert_array_equal(seen[2], [4, 1, 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(1,), (16,), (3, 5)])
def test_cross_entropy_without_weights_bit_identical_to_unit_weights(dtype, reduction, shape):
    """Without class weights and ignored targets the loss skips the multiplications by 1: the same bits as with
    class weights of 1 (the general code, every float operation as before)."""
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal(shape + (10,)) * 4).astype(dtype)
    target = rng.integers(0, 10, shape)
    fast, general = CrossEntropyLoss(reduction=reduction), CrossEntropyLoss(np.ones(10), reduction=reduction)
    value, reference = fast(logits, target), general(logits, target)
    assert value == reference
    assert _same(fast.backward(), general.backward())


def test_cross_entropy_shortcut_keeps_ignore_index_and_range_checks():
    logits = np.zeros((3, 4), np.float32)
    loss = CrossEntropyLoss(ignore_index=2)     # an ignore_index among the classes: targets equal to it count nothing
    assert loss(logits, np.array([0, 2, 1])) == pytest.approx(np.log(4))
    assert not loss.backward()[1].any()
    with pytest.raises(ValueError, match=r"0\.\.3"):
        CrossEntropyLoss()(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="integer"):
        CrossEntropyLoss()(logits, np.array([True, False, True]))
    assert CrossEntropyLoss()(logits, np.array([0, 1, 3], np.uint8)) == pytest.approx(np.log(4))


class _Pair(Module):
    def __init__(self):
        super().__init__()
        self.a = Linear(2, 3)
        self.b = Linear(3, 1)


def test_flatten_answers_from_its_buffers_until_something_moves():
    model = _Pair()
    params, grads = model.flatten()
    assert model.flatten() == (params, grads) and model.flatten()[0] is params
    # a parameter replaced by another array: flattened again, its values kept
    replacement = np.full((1, 3), 7.0, np.float32)
    model.b._params["weight"] = replacement
    params2, _ = model.flatten()
    assert params2 is not params and np.shares_memory(model.b.parameters()["weight"], params2)
    np.testing.assert_array_equal(model.b.parameters()["weight"], replacement)
    # a module gains a parameter: flattened again with it
    model.b.add_parameter("extra", np.ones(4, np.float32))
    params3, _ = model.flatten()
    assert params3.size == params2.size + 4 and np.shares_memory(model.b.parameters()["extra"], params3)
    # a child added: the same
    model.c = Linear(1, 1)
    params4, _ = model.flatten()
    assert params4.size == params3.size + 2 and np.shares_memory(model.c.parameters()["weight"], params4)
    # a copy's parameters are its own arrays: it flattens into its own buffers
    twin = copy.deepcopy(model)
    twin_params, _ = twin.flatten()
    assert not np.shares_memory(twin_params, params4)
    assert all(np.shares_memory(p, twin_params) for p in twin.parameters().values())
    np.testing.assert_array_equal(twin_params, params4)


def test_flatten_of_a_child_then_the_parent_stays_consistent():
    model = _Pair()
    child_params, _ = model.a.flatten()
    params, _ = model.flatten()
    assert all(np.shares_memory(p, params) for p in model.parameters().values())
    assert model.flatten()[0] is params
    again, _ = model.a.flatten()        # the child's old buffer no longer backs it: flattened anew, as before
    assert again is not child_params


def test_check_array_shape_given_as_a_list():
    check_array("x", np.zeros((2, 3), np.float32), np.float32, np, [2, 3])
    with pytest.raises(ValueError, match=r"expected \(2, 4\)"):
        check_array("x", np.zeros((2, 3), np.float32), np.float32, np, [2, 4])
    kernels.arguments.check_array("w", np.zeros((2, 3), np.float32), np.float32, [2, 3], "[2, 3]")
    with pytest.raises(ValueError, match="expected"):
        kernels.arguments.check_array("w", np.zeros((2, 3), np.float32), np.float32, [3, 2], "[3, 2]")
