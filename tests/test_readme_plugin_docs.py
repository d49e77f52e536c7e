"""The README's "Models: `Module`, `Linear` and the losses" section: its example runs and does what it says, and its
loss table names every loss ``lstmzoo.nn`` exports."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import lstmzoo.nn

HEADING = "### Models: `Module`, `Linear` and the losses"


def section():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index(HEADING) + len(HEADING)
    return readme[start:readme.index("\n### ", start)]


@pytest.fixture(scope="module")
def example():
    """The section's Python block, run; its namespace and what it printed."""
    (code,) = re.findall(r"```python\n(.*?)```", section(), re.DOTALL)
    namespace, printed = {"__name__": "readme_example"}, io.StringIO()
    np.random.seed(0)
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    return namespace, printed.getvalue()


def test_the_example_prints_what_its_comment_says(example):
    namespace, printed = example
    assert printed.strip() == "['gain.weight', 'head.weight', 'head.bias']"
    assert list(namespace["model"].parameters())[:2] == ["lstm.weight_ih_l0", "lstm.weight_hh_l0"]


def test_the_custom_layer_is_trained_through_the_flat_buffer(example):
    """The optimizer flattened the model, and the step reached the layer's own parameter (which it would not, had
    the layer kept its array in an attribute of its own)."""
    namespace, _ = example
    model, optimizer = namespace["model"], namespace["optimizer"]
    weight = model.gain._params["weight"]
    assert weight.base is optimizer.params
    assert not np.allclose(weight, 1.0)
    assert np.all(model.grads()["gain.weight"] != 0)


def test_the_custom_layer_gradients_match_finite_differences(example):
    namespace, _ = example
    rng = np.random.default_rng(1)
    gain = namespace["Gain"](3)
    gain._params["weight"][...] = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    w = rng.normal(size=(2, 4, 3)).astype(np.float32)
    gain(x)
    dx = gain.backward(w)
    analytic = gain.grads()["weight"].copy()
    step = 1e-2
    for k in range(3):
        values = []
        for sign in (1, -1):
            gain._params["weight"][k] += sign * step
            values.append(float((w * gain(x)).sum()))
            gain._params["weight"][k] -= sign * step
        np.testing.assert_allclose(analytic[k], (values[0] - values[1]) / (2 * step), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx, w * gain._params["weight"], rtol=1e-6)


def test_the_custom_layer_refuses_backward_after_an_eval_forward(example):
    namespace, _ = example
    gain = namespace["Gain"](3).eval()
    gain(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="train mode"):
        gain.backward(np.ones((2, 3), np.float32))


def test_the_loss_table_names_every_exported_loss():
    table = section()
    exported = [name for name in lstmzoo.nn.__all__ if name.endswith("Loss")]
    assert exported
    for name in exported:
        assert f"| `{name}(" in table, f"the README's loss table lacks {name}"
