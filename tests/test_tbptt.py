"""Stateful recurrent layers (truncated back-propagation through time) and ``tbptt_batches``."""

import itertools

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo.batching import tbptt_batches
from lstmzoo.nn import GRU, LSTM, RNN

SIZES = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "dtype": "float64"}


def pair(cls, **options):
    """A stateful layer and a stateless one with the same weights."""
    stateful = cls(**SIZES, stateful=True, **options)
    plain = cls(**SIZES, **options)
    plain.load_parameters({name: value.copy() for name, value in stateful.parameters().items()})
    return stateful, plain


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
@pytest.mark.parametrize("batch_first", [False, True])
def test_chunks_give_the_outputs_of_one_forward(cls, batch_first):
    stateful, plain = pair(cls, batch_first=batch_first)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 3) if batch_first else (9, 2, 3))
    axis = 1 if batch_first else 0
    whole, whole_final = plain(x)
    pieces = []
    for chunk in np.split(x, [4, 5], axis=axis):   # uneven chunks: 4, 1, 4 steps
        y, final = stateful(chunk)
        pieces.append(y)
    np.testing.assert_allclose(np.concatenate(pieces, axis=axis), whole, rtol=1e-12, atol=1e-13)
    for got, expected in zip(as_tuple(final), as_tuple(whole_final)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_gradient_stops_at_the_chunk_boundary(cls):
    """The second chunk's gradients are those of a forward from the carried state taken as a constant."""
    stateful, plain = pair(cls)
    rng = np.random.default_rng(1)
    first, second = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 2, 3))
    weight = rng.standard_normal((3, 2, 4))
    stateful(first)
    carried = tuple(s.copy() for s in stateful._carried_state)
    stateful.zero_grad()
    stateful(second)
    stateful.backward(weight)

    initial = carried if cls is LSTM else carried[0]

    def loss():
        return float(np.sum(plain(second, state=initial)[0] * weight))

    for name, value in plain.parameters().items():
        np.testing.assert_allclose(stateful.grads()[name], numeric_gradient(loss, value), rtol=1e-5, atol=1e-8,
                                   err_msg=name)
    for got, array in zip(as_tuple(stateful.initial_state_grad), carried):
        np.testing.assert_allclose(got, numeric_gradient(loss, array), rtol=1e-5, atol=1e-8)
    # Full back-propagation through both chunks gives a different gradient: the truncation is real.
    plain.zero_grad()
    plain(np.concatenate([first, second]))
    plain.backward(np.concatenate([np.zeros_like(weight), weight]))
    assert not np.allclose(plain.grads()["weight_hh_l0"], stateful.grads()["weight_hh_l0"], rtol=1e-3)


def test_reset_state_and_a_new_batch_size_start_from_zeros():
    stateful, plain = pair(LSTM)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 3))
    fresh, _ = plain(x)
    stateful(x)
    carried, _ = stateful(x)
    assert not np.allclose(carried, fresh)
    stateful.reset_state()
    np.testing.assert_array_equal(stateful(x)[0], fresh)

    other = rng.standard_normal((4, 3, 3))            # three sequences instead of two: zeros again
    np.testing.assert_array_equal(stateful(other)[0], plain(other)[0])


def test_an_explicit_state_wins_and_the_default_does_not_carry():
    stateful, plain = pair(LSTM)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 3))
    state = tuple(rng.standard_normal((2, 2, 4)) for _ in range(2))
    fresh, _ = plain(x)
    stateful(x)
    np.testing.assert_array_equal(stateful(x, state=state)[0], plain(x, state=state)[0])
    np.testing.assert_array_equal(plain(x)[0], fresh)      # stateful=False: every call starts from zeros
    # The carried state is a copy: writing into the returned final state changes nothing.
    _, (h_n, _) = stateful(x)
    expected = stateful._carried_state[0].copy()
    h_n[...] = 0
    np.testing.assert_array_equal(stateful._carried_state[0], expected)


def test_tbptt_batches_cut_contiguous_streams_in_order():
    tokens = np.arange(103)
    windows = tbptt_batches(tokens, batch_size=4, steps=7)
    n = (103 - 1) // 4                                  # 25 steps per stream
    assert [w[0].shape for w in windows] == [(4, 7)] * 3 + [(4, 4)]
    inputs = np.concatenate([w[0] for w in windows], axis=1)
    targets = np.concatenate([w[1] for w in windows], axis=1)
    for b in range(4):
        np.testing.assert_array_equal(inputs[b], tokens[b * n:(b + 1) * n])
    np.testing.assert_array_equal(targets, inputs + 1)
    # Row b of a window continues row b of the one before.
    for before, after in itertools.pairwise(windows):
        np.testing.assert_array_equal(after[0][:, 0], before[0][:, -1] + 1)


def test_tbptt_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="too few"):
        tbptt_batches(np.arange(4), batch_size=4, steps=2)
    with pytest.raises(ValueError, match="1-D"):
        tbptt_batches(np.zeros((3, 3), dtype=np.int64), batch_size=1, steps=2)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        tbptt_batches(np.arange(10), batch_size=2, steps=0)
