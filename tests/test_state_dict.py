"""Module.state_dict / load_state_dict behave like PyTorch's, and weights move both ways with torch.nn.LSTM."""

import numpy as np
import pytest

from lstmzoo.nn import LSTM, Linear, Module


class Tagger(Module):
    def __init__(self):
        super().__init__()
        self.lstm = LSTM(3, 5, num_layers=2, bidirectional=True, dtype="float64")
        self.head = Linear(10, 2, dtype="float64")


def test_state_dict_shares_memory_and_round_trips():
    model, other = Tagger(), Tagger()
    state = model.state_dict()
    assert list(state) == list(model.parameters()) and "lstm.weight_hh_l1_reverse" in state
    state["head.bias"][...] = 7.0                      # live, as in PyTorch
    assert np.all(model.parameters()["head.bias"] == 7.0)
    keys = other.load_state_dict({name: value.copy() for name, value in state.items()})
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_strict_and_shape_errors_change_nothing():
    model = Tagger()
    before = {name: value.copy() for name, value in model.state_dict().items()}
    partial = {"head.bias": np.ones(2), "extra.weight": np.ones(1)}
    with pytest.raises(ValueError, match=r"missing key\(s\).*unexpected key\(s\) \['extra.weight'\]"):
        model.load_state_dict(partial)
    np.testing.assert_array_equal(model.state_dict()["head.bias"], before["head.bias"])
    keys = model.load_state_dict(partial, strict=False)
    assert keys.unexpected_keys == ["extra.weight"] and "head.weight" in keys.missing_keys
    np.testing.assert_array_equal(model.state_dict()["head.bias"], np.ones(2))
    wrong = {**{n: v.copy() for n, v in model.state_dict().items()}, "head.weight": np.zeros((3, 10))}
    wrong["head.bias"] = np.full(2, 5.0)
    with pytest.raises(ValueError, match="head.weight"):
        model.load_state_dict(wrong, strict=False)
    np.testing.assert_array_equal(model.state_dict()["head.bias"], np.ones(2))   # nothing was copied


def test_weights_move_between_lstmzoo_and_torch():
    torch = pytest.importorskip("torch")
    ours = LSTM(4, 6, num_layers=2, bidirectional=True, dtype="float64")
    theirs = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True).double()
    ours.load_state_dict(theirs.state_dict())           # torch tensors in, by PyTorch's names
    x = np.random.default_rng(0).standard_normal((7, 3, 4))
    expected = theirs(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(ours.forward(x)[0], expected, rtol=1e-10, atol=1e-12)
    back = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True).double()
    back.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in ours.state_dict().items()})
    np.testing.assert_allclose(back(torch.from_numpy(x))[0].detach().numpy(), expected, rtol=1e-12)
