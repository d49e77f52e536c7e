"""`lstmzoo evaluate RECIPE --checkpoint DIR` prints exactly the test metrics `lstmzoo train` printed for the same
run folder (its table, and its --json to the printed digits), and the trained model beat its trivial baseline
(#13 item 20): on airline-passengers (defaults: about 2 s) and on a short pendigits run."""

import json
import re

import pytest
from helpers import needs_shared, run

# recipe -> (train options, check that the model learned: metrics -> (met, what it says))
RUNS = {
    # The defaults: measured rmse 18.6 / 17.9 / 20.0 (seeds 0-2) against seasonal naive 41.85.
    "airline-passengers": ([], lambda m: (m["rmse"] < 0.6 * m["seasonal_naive_rmse"],
                                          f"rmse {m['rmse']:.2f} vs 0.6 x seasonal naive {m['seasonal_naive_rmse']:.2f}")),
    # Measured 92.0 / 88.1 / 88.5 % (seeds 0-2) against the majority class' 10.4 % of the test writers' digits
    # (364 of 3,498, tests/test_zoo_pendigits.py's TEST_COUNTS).
    "pendigits": (["--epochs", 2, "--set", "hidden_size=16", "--set", "points=16", "--set", "batch_size=64"],
                  lambda m: (m["accuracy"] > 0.75, f"accuracy {m['accuracy']:.4f} vs the majority class' 0.104")),
}


def printed_metrics(stdout):
    """The lines of the table after "test metrics of the best model:" (or of the last epoch's, or averaged)."""
    return re.split(r"test metrics of the [^:\n]*:\n", stdout, maxsplit=1)[1].splitlines()


def formatted(metrics):
    """``metrics`` as `lstmzoo train` prints them (floats with 4 decimals)."""
    width = max(map(len, metrics))
    return [f"  {name:<{width}}  {value:.4f}" if isinstance(value, float) else f"  {name:<{width}}  {value}"
            for name, value in metrics.items()]


@pytest.mark.parametrize("recipe", [
    "airline-passengers", pytest.param("pendigits", marks=needs_shared)])
def test_evaluate_prints_what_train_printed(recipe, request, tmp_path):
    if recipe == "pendigits":
        request.getfixturevalue("mirror")
    options, learned = RUNS[recipe]
    out = tmp_path / "run"
    trained = printed_metrics(run("train", recipe, "--out", out, "--seed", 0, *options).stdout)
    assert len(trained) >= 2 and all(re.fullmatch(r"  \S+ +\S+", line) for line in trained)
    assert run("evaluate", recipe, "--checkpoint", out).stdout.splitlines() == trained
    metrics = json.loads(run("evaluate", recipe, "--checkpoint", out, "--json").stdout)
    assert formatted(metrics) == trained
    met, said = learned(metrics)
    assert met, said
