"""Every public kernel entry point refuses bad arguments with a ValueError that names the argument.

The compiled kernels index without bounds checks, so before ``kernels/arguments.py`` a one-element ``b_ih`` or
``lengths`` crashed the process, a short ``lengths`` read unrelated memory and an integer input was a Numba
typing error. Each call below would have done one of those; that it raises here, in this process, also shows
that nothing ran before the check. The CUDA kernels are included where they can run (simulator or GPU).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lstmzoo.kernels import cpu, ctc, displace, reference


def _backends():
    """reference and cpu, and cuda under the simulator (tests/conftest.py) or on a GPU with CuPy."""
    backends = [pytest.param(reference, id="reference"), pytest.param(cpu, id="cpu")]
    from numba import config
    from numba import cuda as numba_cuda
    if config.ENABLE_CUDASIM or numba_cuda.is_available():
        from lstmzoo.kernels import cuda
        if cuda.SIMULATOR or cuda.cupy is not None:
            backends.append(pytest.param(cuda, id="cuda"))
    return backends


BACKENDS = _backends()
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
T, B, I, H = 3, 2, 3, 4


def good_arguments(cell, dtype=np.float64, T=T, B=B, I=I, H=H):
    rng = np.random.default_rng(0)
    G = GATES[cell]
    shapes = {"x": (T, B, I), "h0": (B, H), "c0": (B, H), "w_ih": (G * H, I), "w_hh": (G * H, H),
              "b_ih": (G * H,), "b_hh": (G * H,)}
    if cell != "lstm":
        del shapes["c0"]
    return {name: (0.3 * rng.standard_normal(shape)).astype(dtype) for name, shape in shapes.items()}


def forward(module, cell, arguments, **options):
    return getattr(module, f"{cell}_forward")(**arguments, **options)


def with_dtype(arguments, dtype):
    return {name: value.astype(dtype) for name, value in arguments.items()}


# (argument, what is wrong, how to make it from the good arguments, message)
BAD_FORWARD = [
    ("b_ih", "one element", lambda a: {"b_ih": a["b_ih"][:1]}, r"b_ih has shape \(1,\), expected"),
    ("b_hh", "transposed 2-D", lambda a: {"b_hh": a["b_hh"][None]}, r"b_hh has shape \(1, \d+\), expected"),
    ("h0", "wrong width", lambda a: {"h0": np.zeros((B, H + 1))}, r"h0 has shape \(2, 5\), expected \(2, 4\)"),
    ("h0", "wrong batch", lambda a: {"h0": np.zeros((B + 1, H))}, r"h0 has shape \(3, 4\), expected \(2, 4\)"),
    ("w_ih", "wrong input width", lambda a: {"w_ih": a["w_ih"][:, :-1]}, r"w_ih has shape .*, expected"),
    ("w_hh", "rows not a multiple of the gates", lambda a: {"w_hh": np.zeros((5, H))}, r"w_hh has shape \(5, 4\)"),
    ("w_hh", "wrong width", lambda a: {"w_hh": a["w_hh"][:, :-1]}, r"w_hh has shape"),
    ("x", "no steps", lambda a: {"x": a["x"][:0]}, r"x must have at least one step"),
    ("x", "no sequences", lambda a: {"x": a["x"][:, :0]}, r"x must have at least one step"),
    ("x", "2-D", lambda a: {"x": a["x"][0]}, r"x must have 3 dimensions"),
    ("x", "a list", lambda a: {"x": a["x"].tolist()}, r"x must be an array, got list"),
    ("x", "int64", lambda a: with_dtype(a, np.int64), r"x has dtype int64, expected float32 or float64"),
    ("x", "float16", lambda a: with_dtype(a, np.float16), r"x has dtype float16, expected float32 or float64"),
    ("x", "bool", lambda a: with_dtype(a, np.bool_), r"x has dtype bool, expected float32 or float64"),
    ("w_hh", "float32 beside float64", lambda a: {"w_hh": a["w_hh"].astype(np.float32)},
     r"w_hh has dtype float32, expected float64"),
    ("lengths", "one element", lambda a: {"lengths": np.array([T])}, r"lengths has shape \(1,\), expected \(2,\)"),
    ("lengths", "longer than the batch", lambda a: {"lengths": np.array([T, T, T])}, r"lengths has shape \(3,\)"),
    ("lengths", "negative", lambda a: {"lengths": np.array([-1, T])}, r"lengths must be in 1..3"),
    ("lengths", "zero", lambda a: {"lengths": np.array([0, T])}, r"lengths must be in 1..3"),
    ("lengths", "over T", lambda a: {"lengths": np.array([T + 1, T])}, r"lengths must be in 1..3"),
    ("lengths", "fractional", lambda a: {"lengths": np.array([1.5, 2.0])}, r"lengths must hold integers"),
    ("lengths", "booleans", lambda a: {"lengths": np.array([True, True])}, r"lengths must hold integers"),
]
BAD_LSTM = [
    ("c0", "wrong width", lambda a: {"c0": np.zeros((B, H - 1))}, r"c0 has shape \(2, 3\), expected \(2, 4\)"),
    ("c0", "float32 beside float64", lambda a: {"c0": a["c0"].astype(np.float32)}, r"c0 has dtype float32"),
    ("w_hr", "wrong width", lambda a: {"w_hr": np.zeros((2, H + 1)), "h0": np.zeros((B, 2)),
                                       "w_hh": np.zeros((4 * H, 2))}, r"w_hr has shape \(2, 5\), expected \[P, H\]"),
    ("h0", "H wide with a projection", lambda a: {"w_hr": np.zeros((2, H)), "w_hh": np.zeros((4 * H, 2))},
     r"h0 has shape \(2, 4\), expected \(2, 2\)"),
]


def _cases(table, cells):
    return [pytest.param(cell, change, message, id=f"{cell}-{argument}-{what}")
            for cell in cells for argument, what, change, message in table]


@pytest.mark.parametrize("module", BACKENDS)
@pytest.mark.parametrize("cell, change, message",
                         _cases(BAD_FORWARD, GATES) + _cases(BAD_LSTM, ["lstm"]))
def test_forward_refuses(module, cell, change, message):
    arguments = good_arguments(cell)
    arguments.update(change(arguments))
    if module.__name__.endswith("cuda") and "w_hr" in arguments:
        pytest.skip("the CUDA kernels have no projection")
    with pytest.raises(ValueError, match=message):
        forward(module, cell, arguments)


@pytest.mark.parametrize("module", BACKENDS)
@pytest.mark.parametrize("cell", GATES)
def test_good_arguments_pass_in_both_dtypes(module, cell):
    for dtype in (np.float32, np.float64):
        y, *_ = forward(module, cell, good_arguments(cell, dtype), lengths=[T, 1])
        assert y.shape == (T, B, H) and y.dtype == dtype


@pytest.mark.parametrize("module", BACKENDS)
@pytest.mark.parametrize("cell", GATES)
def test_backward_refuses(module, cell):
    arguments = good_arguments(cell)
    *_, cache = forward(module, cell, arguments)
    backward = getattr(module, f"{cell}_backward")
    states = (None, None) if cell == "lstm" else (None,)
    dy = np.zeros((T, B, H))
    with pytest.raises(ValueError, match=r"dy has shape \(3, 2, 5\), expected \(3, 2, 4\)"):
        backward(np.zeros((T, B, H + 1)), *states, cache)
    with pytest.raises(ValueError, match=r"dy has dtype float32, expected float64"):
        backward(dy.astype(np.float32), *states, cache)
    with pytest.raises(ValueError, match=r"dh_n has shape \(1, 4\), expected \(2, 4\)"):
        backward(dy, np.zeros((1, H)), *states[1:], cache)
    if cell == "lstm":
        with pytest.raises(ValueError, match=r"dc_n has shape \(2, 3\), expected \(2, 4\)"):
            backward(dy, None, np.zeros((B, H - 1)), cache)
    *_, no_cache = forward(module, cell, arguments, training=False)
    with pytest.raises(ValueError, match="cache is None: the forward ran with training=False"):
        backward(dy, *states, no_cache)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_wrong_dimension_is_named(data):
    """One dimension of one weight or state array off by a few, or an axis added or dropped: a ValueError that
    names that array, whatever the sizes."""
    module = data.draw(st.sampled_from([p.values[0] for p in BACKENDS]), label="backend")
    cell = data.draw(st.sampled_from(sorted(GATES)), label="cell")
    sizes = {name: data.draw(st.integers(1, 5), label=name) for name in ("T", "B", "I", "H")}
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    arguments = good_arguments(cell, dtype, **sizes)
    name = data.draw(st.sampled_from(sorted(set(arguments) - {"x"})), label="argument")
    shape = list(arguments[name].shape)
    how = data.draw(st.sampled_from(["resize", "add axis", "drop axis"]), label="how")
    if how == "resize":
        axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
        shape[axis] = data.draw(st.integers(0, 9).filter(lambda n: n != shape[axis]), label="size")
    elif how == "add axis":
        shape.insert(data.draw(st.integers(0, len(shape)), label="at"), 1)
    else:
        shape.pop(data.draw(st.integers(0, len(shape) - 1), label="axis"))
    arguments[name] = np.zeros(shape, dtype)
    with pytest.raises(ValueError, match=f"^{name} has shape"):
        forward(module, cell, arguments)


# ------------------------------------------------------------------------------------------------ CTC

def ctc_arguments():
    log_probs = np.log(np.full((4, 2, 3), 1 / 3))
    return {"log_probs": log_probs, "targets": np.array([[1, 2], [2, -1]]), "input_lengths": np.array([4, 3]),
            "target_lengths": np.array([2, 1]), "blank": 0}


BAD_CTC = [
    ({"log_probs": np.zeros((4, 2, 3), np.int64)}, r"log_probs has dtype int64, expected float32 or float64"),
    ({"log_probs": np.zeros((4, 2, 3), np.float16)}, r"log_probs has dtype float16"),
    ({"log_probs": np.zeros((4, 3))}, r"log_probs must have shape \[T, B, C\]"),
    ({"log_probs": np.zeros((0, 2, 3))}, r"log_probs must have shape \[T, B, C\] with T, B, C >= 1"),
    ({"blank": 3}, r"blank must be a class index in 0..2"),
    ({"blank": 1.0}, r"blank must be a class index"),
    ({"input_lengths": np.array([4])}, r"input_lengths has shape \(1,\), expected \(2,\)"),
    ({"input_lengths": np.array([5, 3])}, r"input_lengths must be in 1..4"),
    ({"input_lengths": np.array([0, 3])}, r"input_lengths must be in 1..4"),
    ({"input_lengths": np.array([4.0, 3.5])}, r"input_lengths must hold integers"),
    ({"target_lengths": np.array([3, 1])}, r"target_lengths must be in 0..2"),
    ({"target_lengths": np.array([-1, 1])}, r"target_lengths must be in 0..2"),
    ({"target_lengths": np.array([2])}, r"target_lengths has shape \(1,\)"),
    ({"targets": np.array([[1.0, 2.0], [2.0, 0.0]])}, r"targets must be integer labels padded to \[B, S\]"),
    ({"targets": np.array([1, 2, 2])}, r"targets must be integer labels padded to \[B, S\]"),
    ({"targets": np.array([[1, 3], [2, 0]])}, r"target labels must be in 0..2 and differ from blank=0"),
    ({"targets": np.array([[1, -2], [2, 0]])}, r"target labels must be in 0..2"),
    ({"targets": np.array([[1, 0], [2, 0]])}, r"differ from blank=0"),
]


@pytest.mark.parametrize("change, message", BAD_CTC)
def test_ctc_loss_refuses(change, message):
    arguments = dict(ctc_arguments(), **change)
    with pytest.raises(ValueError, match=message):
        ctc.ctc_loss(**arguments)


def test_ctc_loss_ignores_padding_past_the_target_lengths():
    losses, grads = ctc.ctc_loss(**ctc_arguments())  # the -1 pads sequence 1's target
    assert np.isfinite(losses).all() and grads.shape == (4, 2, 3)


# ------------------------------------------------------------------------------------------ displacement

BAD_DISPLACE = [
    ((np.zeros((2, 5, 5), np.int64), np.zeros((2, 3, 3), np.int64)), r"x has dtype int64, expected float32"),
    ((np.zeros((2, 5, 5)), np.zeros((2, 3, 3), np.float32)), r"kernels has dtype float32, expected float64"),
    ((np.zeros((2, 5, 5)), np.zeros((2, 4, 4))), r"displace needs images \[N, H, W\]"),
    ((np.zeros((2, 5, 5)), np.zeros((1, 3, 3))), r"displace needs images \[N, H, W\]"),
    ((np.zeros((2, 0, 5)), np.zeros((2, 3, 3))), r"displace needs images \[N, H, W\] \(H, W >= 1\)"),
    ((np.zeros((2, 5, 5)), [[[0.0]]] * 2), r"kernels must be an array, got list"),
]


@pytest.mark.parametrize("arguments, message", BAD_DISPLACE)
def test_displace_refuses(arguments, message):
    with pytest.raises(ValueError, match=message):
        displace.displace(*arguments)
    with pytest.raises(ValueError, match=message):
        displace.displace_backward(*arguments, np.zeros((2, 5, 5)))


def test_displace_backward_refuses_a_wrong_output_gradient():
    x, kernels = np.zeros((2, 5, 5)), np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match=r"dy_out has shape \(2, 5, 4\), expected \(2, 5, 5\)"):
        displace.displace_backward(x, kernels, np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"dy_out has dtype float32, expected float64"):
        displace.displace_backward(x, kernels, np.zeros((2, 5, 5), np.float32))
