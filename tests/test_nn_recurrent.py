"""lstmzoo.nn.LSTM / GRU / RNN: against a per-sequence composition of the reference kernels, finite
differences, PyTorch (when installed), input validation and train/eval behaviour."""

import numpy as np
import pytest
from helpers import numeric_gradient
from hypothesis import given, settings
from hypothesis import strategies as st
from lstmzoo.kernels import reference

import lstmzoo.random
from lstmzoo.nn import GRU, LSTM, RNN

KINDS = {"lstm": (LSTM, {}), "gru": (GRU, {}), "rnn": (RNN, {}), "rnn_relu": (RNN, {"nonlinearity": "relu"})}


def make(kind, *args, **kwargs):
    cls, extra = KINDS[kind]
    return cls(*args, **extra, **kwargs)


def num_states(layer):
    return 2 if isinstance(layer, LSTM) else 1


def random_inputs(layer, steps, batch, rng, with_state=True):
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    x = rng.standard_normal(shape).astype(layer.dtype)
    if not with_state:
        return x, None
    state_shape = (layer.num_layers * layer.num_directions, batch, layer.hidden_size)
    states = tuple(rng.standard_normal(state_shape).astype(layer.dtype) for _ in range(num_states(layer)))
    return x, states if len(states) == 2 else states[0]


# ------------------------------------------------------------------------------- reference composition


def reference_stack(layer, x, state, lengths):
    """The layer's forward written the obvious way: every sequence on its own, cut to its length, the
    reverse direction by flipping that cut, layers chained through concatenation."""
    kind = "rnn" if isinstance(layer, RNN) else ("lstm" if isinstance(layer, LSTM) else "gru")
    forward = getattr(reference, f"{kind}_forward")
    options = {"nonlinearity": layer.nonlinearity} if kind == "rnn" else {}
    params = layer.parameters()
    if layer.batch_first:
        x = x.transpose(1, 0, 2)
    steps, batch, _ = x.shape
    lengths = [steps] * batch if lengths is None else list(lengths)
    states = state if isinstance(state, tuple) else (state,)
    D, H = layer.num_directions, layer.hidden_size
    y = np.zeros((steps, batch, D * H))
    finals = [np.zeros((layer.num_layers * D, batch, H)) for _ in states]
    for b in range(batch):
        seq = x[: lengths[b], b : b + 1]
        for k in range(layer.num_layers):
            outputs = []
            for d in range(D):
                suffix = f"l{k}" + ("_reverse" if d else "")
                row = k * D + d
                weights = [params[f"{n}_{suffix}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inp = seq[::-1] if d else seq
                out, *final, _ = forward(inp, *(s[row, b : b + 1] for s in states), *weights, **options)
                outputs.append(out[::-1] if d else out)
                for buffer, value in zip(finals, final):
                    buffer[row, b] = value[0]
            seq = np.concatenate(outputs, axis=2)
        y[: lengths[b], b] = seq[:, 0]
    if layer.batch_first:
        y = y.transpose(1, 0, 2)
    return y, tuple(finals)


def unpack(layer, output):
    """(y, finals as a tuple) from a layer's forward output."""
    y, final = output
    return y, final if isinstance(final, tuple) else (final,)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_matches_reference_composition(kind, bidirectional, batch_first, use_lengths):
    rng = np.random.default_rng(1)
    layer = make(
        kind,
        3,
        4,
        num_layers=2,
        bidirectional=bidirectional,
        batch_first=batch_first,
        dtype="float64",
        rng=rng,
    )
    x, state = random_inputs(layer, 6, 3, rng)
    lengths = np.array([6, 2, 4]) if use_lengths else None
    y, finals = unpack(layer, layer.forward(x, state, lengths))
    y_ref, finals_ref = reference_stack(layer, x, state, lengths)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(finals, finals_ref):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    steps=st.integers(1, 5),
    batch=st.integers(1, 4),
    hidden=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_matches_reference_composition_random_shapes(kind, layers, bidirectional, steps, batch, hidden, seed):
    rng = np.random.default_rng(seed)
    layer = make(kind, 2, hidden, num_layers=layers, bidirectional=bidirectional, dtype="float64", rng=rng)
    x, state = random_inputs(layer, steps, batch, rng, with_state=bool(seed % 2))
    lengths = rng.integers(1, steps + 1, size=batch)
    state_ref = (
        state
        if state is not None
        else tuple(np.zeros((layers * layer.num_directions, batch, hidden)) for _ in range(num_states(layer)))
    )
    if num_states(layer) == 1 and isinstance(state_ref, tuple):
        state_ref = state_ref[0]
    y, finals = unpack(layer, layer.forward(x, state, lengths))
    y_ref, finals_ref = reference_stack(layer, x, state_ref, lengths)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(finals, finals_ref):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_matches_float64():
    rng = np.random.default_rng(2)
    layer64 = LSTM(3, 5, num_layers=2, bidirectional=True, dtype="float64", rng=rng)
    layer32 = LSTM(3, 5, num_layers=2, bidirectional=True, dtype="float32")
    layer32.load_parameters(layer64.parameters())
    x, _ = random_inputs(layer64, 7, 2, rng, with_state=False)
    y64, (h64, c64) = layer64.forward(x, lengths=[7, 3])
    y32, (h32, c32) = layer32.forward(x.astype(np.float32), lengths=[7, 3])
    assert y32.dtype == h32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c32, c64, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ finite differences


def objective_weights(layer, y_shape, batch, rng):
    state_shape = (layer.num_layers * layer.num_directions, batch, layer.hidden_size)
    return rng.standard_normal(y_shape), [rng.standard_normal(state_shape) for _ in range(num_states(layer))]


def check_gradients(layer, x, state, lengths, dropout_rng=None):
    """Finite differences of L = <y, wy> + sum <final_i, w_i> against layer.backward for x, the initial
    state and every parameter. ``dropout_rng``: the layer's generator, rewound before every forward so
    each evaluation sees the same dropout masks."""
    rng = np.random.default_rng(7)
    rewind = dropout_rng.bit_generator.state if dropout_rng is not None else None

    def loss():
        if rewind is not None:
            dropout_rng.bit_generator.state = rewind
        y, finals = unpack(layer, layer.forward(x, state, lengths))
        return float((y * wy).sum() + sum((f * w).sum() for f, w in zip(finals, w_finals)))

    y, _ = unpack(layer, layer.forward(x, state, lengths))
    wy, w_finals = objective_weights(layer, y.shape, x.shape[0 if layer.batch_first else 1], rng)
    loss()  # same masks as the checked backward
    layer.zero_grad()
    dx = layer.backward(wy, *w_finals)
    d_state = (
        layer.initial_state_grad
        if isinstance(layer.initial_state_grad, tuple)
        else (layer.initial_state_grad,)
    )
    states = state if isinstance(state, tuple) else (state,)
    checks = [("x", x, dx)] + [(f"state{i}", s, g) for i, s, g in zip(range(2), states, d_state)]
    checks += [(name, p, layer.grads()[name]) for name, p in layer.parameters().items()]
    for name, array, analytic in checks:
        numeric = numeric_gradient(loss, array)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_finite_differences_bidirectional_two_layers_with_lengths(kind):
    rng = np.random.default_rng(3)
    layer = make(kind, 2, 3, num_layers=2, bidirectional=True, batch_first=True, dtype="float64", rng=rng)
    x, state = random_inputs(layer, 4, 3, rng)
    check_gradients(layer, x, state, np.array([4, 1, 3]))


def test_finite_differences_with_dropout_between_layers():
    dropout_rng = np.random.default_rng(11)
    layer = LSTM(2, 3, num_layers=3, bidirectional=True, dropout=0.4, dtype="float64", rng=dropout_rng)
    x, state = random_inputs(layer, 3, 2, np.random.default_rng(4))
    check_gradients(layer, x, state, [2, 3], dropout_rng=dropout_rng)


def test_gradients_accumulate_and_initial_state_grad_shapes():
    rng = np.random.default_rng(5)
    layer = LSTM(2, 3, num_layers=2, bidirectional=True, dtype="float64", rng=rng)
    x, _ = random_inputs(layer, 4, 2, rng, with_state=False)
    grads = []
    for _ in range(2):
        y, _ = layer.forward(x)
        layer.backward(np.ones_like(y))
        grads.append({k: v.copy() for k, v in layer.grads().items()})
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], 2 * grads[0][name], rtol=1e-12)
    dh0, dc0 = layer.initial_state_grad
    assert dh0.shape == dc0.shape == (4, 2, 3)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_backward_without_dy_is_a_zero_dy_exactly(kind, bidirectional, batch_first):
    """dy None (a model reading only the final state): the same dx, gradients and initial-state gradients, bit for
    bit, as an all-zero dy, through dropout between layers, uneven lengths, and batches of other sizes after a
    larger one (the layer's kept zero array is reused)."""
    def run(layer, x, lengths, give_dy, seed):
        lstmzoo.random.seed(seed)            # the same dropout masks for both
        layer.zero_grad()
        y, final = unpack(layer, layer.forward(x, lengths=lengths))
        rng = np.random.default_rng(seed)
        finals = [rng.standard_normal(f.shape).astype(f.dtype) for f in final]
        dx = layer.backward(np.zeros_like(y) if give_dy else None, *finals)
        initial = layer.initial_state_grad
        return [dx, *(initial if isinstance(initial, tuple) else (initial,)),
                *(g.copy() for g in layer.grads().values())]

    for dtype in ("float32", "float64"):
        lstmzoo.random.seed(1)      # the layer draws its weights and dropout masks from lstmzoo.random
        layer = make(kind, 3, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, dropout=0.4,
                     dtype=dtype).train()
        rng = np.random.default_rng(2)
        for steps, batch, lengths in ((6, 4, [6, 2, 5, 1]), (9, 3, None), (4, 2, [3, 4])):
            x, _ = random_inputs(layer, steps, batch, rng, with_state=False)
            expected = run(layer, x, lengths, True, seed=steps)
            got = run(layer, x, lengths, False, seed=steps)
            assert len(got) == len(expected)
            for a, b in zip(got, expected):
                assert a.dtype == b.dtype and np.array_equal(a, b)
            assert np.abs(got[0]).max() > 0     # the final states' gradients did reach x


# --------------------------------------------------------------------------------------- PyTorch


def torch_twin(torch, layer):
    cls = {LSTM: torch.nn.LSTM, GRU: torch.nn.GRU, RNN: torch.nn.RNN}[type(layer)]
    extra = {"nonlinearity": layer.nonlinearity} if isinstance(layer, RNN) else {}
    twin = cls(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        batch_first=layer.batch_first,
        **extra,
    ).double()
    state = twin.state_dict()
    assert list(state) == list(layer.parameters())
    for name, value in layer.parameters().items():
        assert tuple(state[name].shape) == value.shape, name
    twin.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in layer.parameters().items()})
    return twin


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_matches_pytorch(kind, bidirectional, batch_first, packed):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(6)
    layer = make(
        kind,
        3,
        4,
        num_layers=2,
        bidirectional=bidirectional,
        batch_first=batch_first,
        dtype="float64",
        rng=rng,
    )
    twin = torch_twin(torch, layer)
    steps, batch = 5, 4
    x, state = random_inputs(layer, steps, batch, rng)
    lengths = np.array([3, 5, 1, 4]) if packed else None
    states = state if isinstance(state, tuple) else (state,)

    y, finals = unpack(layer, layer.forward(x, state, lengths))
    wy, w_finals = objective_weights(layer, y.shape, batch, rng)
    dx = layer.backward(wy, *w_finals)

    tx = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    inp = (
        pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        if packed
        else tx
    )
    ty, tfinal = twin(inp, tuple(tstates) if len(tstates) == 2 else tstates[0])
    if packed:
        ty, _ = pad_packed_sequence(ty, batch_first=batch_first, total_length=steps)
    tfinals = tfinal if isinstance(tfinal, tuple) else (tfinal,)
    (ty * torch.tensor(wy)).sum().add(
        sum((f * torch.tensor(w)).sum() for f, w in zip(tfinals, w_finals))
    ).backward()

    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(finals, tfinals):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    d_state = (
        layer.initial_state_grad
        if isinstance(layer.initial_state_grad, tuple)
        else (layer.initial_state_grad,)
    )
    for got, want in zip(d_state, tstates):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, param in twin.named_parameters():
        np.testing.assert_allclose(
            layer.grads()[name], param.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name
        )


def test_initialisation_range_and_seeding():
    lstmzoo.random.seed(123)
    a = LSTM(3, 16, num_layers=2, bidirectional=True)
    lstmzoo.random.seed(123)
    b = LSTM(3, 16, num_layers=2, bidirectional=True)
    for name, value in a.parameters().items():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= 1 / 4
        assert np.abs(value).max() > 0.2  # uniform over the whole range, not a narrower one
        np.testing.assert_array_equal(value, b.parameters()[name])


# ----------------------------------------------------------------------------------- validation


def bad_calls():
    x = np.zeros((5, 2, 3), np.float32)
    h = np.zeros((2, 2, 4), np.float32)
    nan_x = x.copy()
    nan_x[1, 1, 1] = np.nan
    inf_h = h.copy()
    inf_h[0, 0, 0] = np.inf
    return [
        ("rank", dict(x=np.zeros((5, 3), np.float32)), "3 dimensions"),
        ("features", dict(x=np.zeros((5, 2, 4), np.float32)), "input_size=3"),
        ("dtype float64", dict(x=x.astype(np.float64)), "dtype float64"),
        ("dtype float16", dict(x=x.astype(np.float16)), "dtype float16"),
        ("dtype int", dict(x=x.astype(np.int64)), "dtype int64"),
        ("not an array", dict(x=[[[0.0] * 3] * 2] * 5), "must be an array"),
        ("nan in x", dict(x=nan_x), "NaN or inf"),
        ("batch mismatch", dict(x=x, state=(np.zeros((2, 3, 4), np.float32), h)), "batch mismatch"),
        ("state shape", dict(x=x, state=(np.zeros((1, 2, 4), np.float32), h)), "expected (2, 2, 4)"),
        ("hidden size", dict(x=x, state=(h, np.zeros((2, 2, 5), np.float32))), "expected (2, 2, 4)"),
        ("state not a pair", dict(x=x, state=h), "tuple (h0, c0)"),
        ("inf in state", dict(x=x, state=(h, inf_h)), "NaN or inf"),
        ("state dtype", dict(x=x, state=(h, h.astype(np.float64))), "dtype float64"),
        ("length zero", dict(x=x, lengths=[0, 5]), "1..5"),
        ("length too long", dict(x=x, lengths=[6, 5]), "1..5"),
        ("lengths shape", dict(x=x, lengths=[5, 5, 5]), "expected (2,)"),
        ("lengths float", dict(x=x, lengths=[2.5, 5.0]), "integers"),
    ]


@pytest.mark.parametrize("case, kwargs, message", bad_calls(), ids=[c[0] for c in bad_calls()])
def test_bad_input_raises_value_error(case, kwargs, message):
    layer = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layer.forward(**kwargs)


def test_bad_input_gru_state_and_backward_shapes():
    layer = GRU(3, 4, bidirectional=True)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match="batch mismatch"):
        layer.forward(x, np.zeros((2, 1, 4), np.float32))
    y, h = layer.forward(x)
    with pytest.raises(ValueError, match=r"dy has shape \(5, 2, 4\), expected \(5, 2, 8\)"):
        layer.backward(y[:, :, :4])
    with pytest.raises(ValueError, match="dh_n has shape"):
        layer.backward(y, h[:1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=0, hidden_size=3), "input_size"),
        (dict(input_size=2, hidden_size=3, dtype="float16"), "dtype"),
        (dict(input_size=2, hidden_size=3, dtype="int32"), "dtype"),
        (dict(input_size=2, hidden_size=3, dropout=1.5), "dropout"),
        (dict(input_size=2, hidden_size=3, device="tpu"), "device"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LSTM(**kwargs)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(2, 3, nonlinearity="sigmoid")


def test_cuda_without_cupy_is_a_clear_runtime_error(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")  # the simulator would stand NumPy in for CuPy
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="CuPy"):
        LSTM(2, 3, device="cuda")


# ---------------------------------------------------------------------------------- modes, buffers


def test_eval_mode_stores_nothing_and_backward_refuses():
    layer = LSTM(3, 4, num_layers=2, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    layer.eval()
    y, _ = layer.forward(x)
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="train mode"):
        layer.backward(np.ones_like(y))
    layer.train()
    y, _ = layer.forward(x)
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward already ran"):
        layer.backward(np.ones_like(y))


def test_dropout_between_layers_only_in_train_mode():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 3, 2)).astype(np.float32)
    layer = GRU(2, 8, num_layers=2, dropout=0.5)
    twin = GRU(2, 8, num_layers=2)
    twin.load_parameters(layer.parameters())
    y_train_1, _ = layer.forward(x)
    y_train_2, _ = layer.forward(x)
    assert not np.allclose(y_train_1, y_train_2)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x)[0], twin.forward(x)[0])
    # one layer: PyTorch applies no dropout after the last layer, so train mode is deterministic too
    single = GRU(2, 8, dropout=0.5)
    np.testing.assert_array_equal(single.forward(x)[0], single.forward(x)[0])


def test_assigning_into_parameters_changes_outputs():
    layer = RNN(2, 3)
    x = np.ones((4, 1, 2), np.float32)
    before, _ = layer.forward(x)
    layer.parameters()["bias_ih_l0"][...] = 5.0
    after, _ = layer.forward(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after[0, 0],
        np.tanh(x[0, 0] @ layer.parameters()["weight_ih_l0"].T + 5.0 + layer.parameters()["bias_hh_l0"]),
        rtol=1e-6,
    )


def test_flatten_keeps_outputs_and_gradients_identical():
    rng = np.random.default_rng(9)
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", rng=rng)
    x, state = random_inputs(layer, 5, 2, rng)
    y, (h, c) = layer.forward(x, state, [5, 2])
    layer.backward(np.ones_like(y))
    grads = {k: v.copy() for k, v in layer.grads().items()}
    layer.zero_grad()
    params, flat_grads = layer.flatten()
    assert params.size == layer.num_parameters()
    y2, (h2, c2) = layer.forward(x, state, [5, 2])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(c, c2)
    layer.backward(np.ones_like(y2))
    for name, g in layer.grads().items():
        np.testing.assert_array_equal(g, grads[name])
    assert np.shares_memory(layer.grads()["weight_hh_l1_reverse"], flat_grads)
    np.testing.assert_array_equal(flat_grads, np.concatenate([g.ravel() for g in grads.values()]))
