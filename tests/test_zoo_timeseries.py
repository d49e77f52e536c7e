"""The time-series recipes on their real data (through the mirror ../shared/datasets): loaders against SOURCE.md,
a short train -> evaluate -> predict through the CLI, and benchmarks/zoo.py's results table."""

import importlib.util
import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from helpers import SHARED, needs_shared, run

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter, Recipe
from lstmzoo.registry import get_recipe

ROOT = Path(__file__).resolve().parents[1]

# recipe -> (values, first label, last label, test values, persistence rmse, seasonal naive rmse, label after the end)
SERIES = {
    "monthly-sunspots": (2820, "1749-01", "1983-12", 931, 18.40, 38.75, "1984-01"),
    "daily-min-temperatures": (3650, "1981-01-01", "1990-12-31", 365, 2.582, 3.651, "1991-01-01"),
}
# A short run that learns: the defaults (sunspots, 1-4 s) or fewer epochs (temperatures, 3-9 s). Measured test rmse
# over seeds 0-2: sunspots 16.29-16.42 (0.89 x persistence 18.40), temperatures 2.239-2.241 with 10 epochs (0.87 x
# persistence 2.58). A model that learned nothing is no better than persistence (sunspots predicts the change from
# it) or much worse (temperatures).
LEARNS = {"monthly-sunspots": [], "daily-min-temperatures": ["--epochs", "10"]}



@needs_shared
@pytest.mark.parametrize("name", SERIES)
def test_loader_matches_source(name, mirror):
    count, first, last, test_size, persistence, seasonal, _ = SERIES[name]
    recipe = get_recipe(name)
    hp = recipe.resolve()
    data = recipe.load_data(hp)
    assert len(data.values) == len(data.labels) == count     # CRLF and no final newline: every row read
    assert (data.labels[0], data.labels[-1]) == (first, last)
    assert len(data.values) - data.test_start == test_size
    assert data.test_start - data.val_start == hp["val_size"]
    baseline = recipe.baseline(data, hp)
    assert baseline["persistence_rmse"] == pytest.approx(persistence, abs=0.01)
    assert baseline["seasonal_naive_rmse"] == pytest.approx(seasonal, abs=0.01)
    # The autoregression fitted on the training part forecasts better than persistence on all three series.
    assert baseline["ar_rmse"] < baseline["persistence_rmse"]


def test_autoregression_recovers_a_linear_process():
    """On a noise-free AR(2) series the least-squares forecasts are exact."""
    from lstmzoo.zoo.timeseries import Series
    recipe = type("Untransformed", (type(get_recipe("airline-passengers")),), {"transform": None})()
    values = np.empty(300)
    values[:2] = (1.0, 2.0)
    for t in range(2, 300):
        values[t] = 0.6 * values[t - 1] - 0.3 * values[t - 2] + 5.0
    data = Series(np.arange(300), values, 200, 250, 0.0, 1.0)
    targets = np.arange(250, 300)
    assert np.allclose(recipe._autoregression(data, 4, targets), values[targets], atol=1e-8)


def _synthetic(transform, n=400, seed=0):
    """A recipe with ``transform`` (sqrt counts: no differencing, predict the change) on a positive series."""
    from lstmzoo.zoo.timeseries import Series
    base = type(get_recipe("monthly-sunspots"))
    recipe = type("Synthetic", (base,), {"transform": transform})()
    values = 50 + 40 * np.sin(np.arange(n) / 20) + np.random.default_rng(seed).uniform(0, 10, n)
    z = recipe._transform(values[:300])
    return recipe, Series([str(i) for i in range(n)], values, 300, 350, float(z.mean()), float(z.std()))


@pytest.mark.parametrize("step", [1, 3, 12])
def test_windows_read_step_values_per_lstm_step(step):
    recipe, data = _synthetic("sqrt")
    hp = {"window": 36, "step": step}
    targets = np.array([40, 41, 200, 399])
    inputs, expected = recipe._windows(data, data.values, targets, hp)
    assert inputs.shape == (36 // step, len(targets), step) and inputs.dtype == np.float32
    flat, flat_expected = recipe._windows(data, data.values, targets, {"window": 36, "step": 1})
    # LSTM step k, position j reads the value k * step + j of the window, oldest first.
    assert np.array_equal(inputs.transpose(0, 2, 1).reshape(36, len(targets)), flat[:, :, 0])
    assert np.array_equal(expected, flat_expected)
    standardised = (np.sqrt(data.values) - data.mean) / data.std
    assert np.allclose(flat[:, 2, 0], standardised[164:200], atol=1e-6)


@needs_shared
def test_window_must_be_a_multiple_of_step(mirror):
    recipe = get_recipe("monthly-sunspots")
    with pytest.raises(UserError, match="window=36 is not a multiple of step=5"):
        recipe.load_data(recipe.resolve({"window": 36, "step": 5}))
    with pytest.raises(UserError, match="'step' must be between 1 and .*, got 0"):
        recipe.resolve({"window": 36, "step": 0})


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_smearing_averages_the_inverse_over_the_residuals(transform):
    recipe, data = _synthetic(transform)
    targets = np.arange(350, 400)
    predicted = np.random.default_rng(1).normal(0, 0.1, len(targets))
    residuals = np.random.default_rng(2).normal(0, 0.3, 500)
    plain = recipe._restore(data, data.values, targets, predicted)
    smeared = recipe._restore(data, data.values, targets, predicted, residuals)
    # The transformed-scale forecast z, recovered from the plain one, then E[inverse(z + e)] by hand.
    z = np.sqrt(plain) if transform == "sqrt" else np.log(plain)
    inverse = {"sqrt": np.square, "log": np.exp}[transform]
    assert np.allclose(smeared, inverse(z[:, None] + residuals[None, :]).mean(axis=1))
    # Both inverses are convex, so averaging over zero-mean errors raises every forecast (Jensen).
    shift = residuals - residuals.mean()
    assert np.all(recipe._restore(data, data.values, targets, predicted, shift) > plain)
    if transform == "sqrt":         # (z + e)^2 averages to z^2 + 2 z mean(e) + mean(e^2)
        assert np.allclose(smeared, plain + 2 * z * residuals.mean() + np.mean(residuals ** 2))
    # The autoregression baseline is undone the same way: its least-squares residuals average to 0, so
    # smearing raises each of its forecasts too.
    assert np.all(recipe._autoregression(data, 12, targets, True) > recipe._autoregression(data, 12, targets))


@needs_shared
def test_smearing_uses_the_training_residuals_and_can_be_turned_off(mirror):
    recipe = get_recipe("monthly-sunspots")
    hp = recipe.resolve({"hidden_size": 4})
    data = recipe.load_data(hp)
    model = recipe.build_model(hp)
    model.eval()
    residuals = recipe._residuals(model, data, hp)
    assert residuals.shape == (data.val_start - hp["window"],)
    targets = np.arange(hp["window"], data.val_start)
    forecast = recipe._forecast(model, data, data.values, targets, hp)[2]
    positive = forecast > 1         # where the square root's inverse did not clip at 0
    assert positive.mean() > 0.5
    assert np.allclose(residuals[positive], (np.sqrt(data.values[targets]) - np.sqrt(forecast))[positive], atol=1e-4)
    assert recipe._residuals(model, data, {**hp, "smearing": False}) is None
    smeared, plain = (recipe.evaluate(model, data, {**hp, "smearing": on})["rmse"] for on in (True, False))
    assert smeared != plain


@needs_shared
def test_sunspots_report_the_12_month_lag_too(mirror):
    recipe = get_recipe("monthly-sunspots")
    hp = recipe.resolve()
    assert recipe.season == 132 and recipe.baseline(recipe.load_data(hp), hp)["seasonal_naive_12_rmse"] == \
        pytest.approx(36.52, abs=0.01)


@needs_shared
@pytest.mark.parametrize("name", SERIES)
def test_train_evaluate_predict(name, mirror, tmp_path):
    *_, after = SERIES[name]
    out = tmp_path / "run"
    assert "test metrics of the best model:" in run("train", name, "--out", out, "--seed", 0, *LEARNS[name]).stdout
    metrics = json.loads(run("evaluate", name, "--checkpoint", out, "--json").stdout)
    assert set(metrics) >= {"rmse", "mae", "persistence_rmse", "seasonal_naive_rmse"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    # It learned: better than the better naive forecast (persistence, on both series) by 8 %.
    assert metrics["rmse"] < 0.92 * metrics["persistence_rmse"] < metrics["seasonal_naive_rmse"], metrics
    # The tail of the real file (header, CRLF, no final newline) is the user's history.
    source = (SHARED / name / f"{name}.csv").read_bytes().split(b"\r\n")
    past = tmp_path / "past.csv"
    past.write_bytes(b"\r\n".join([source[0], *source[-40:]]))
    plot = tmp_path / "forecast.png"
    result = json.loads(run("predict", name, "--checkpoint", out, "--input", past, "--horizon", 5,
                            "--plot", plot, "--json").stdout)
    assert result["history_length"] == 40 and len(result["forecast"]) == 5
    assert result["forecast"][0]["label"] == after
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_info_states_the_season_and_the_target():
    text = run("info", "monthly-sunspots").output
    assert "132 months" in text and "0.9 x" in text
    assert "365" in run("info", "daily-min-temperatures").output


# --------------------------------------------------------------------------------------- benchmarks/zoo.py
@pytest.fixture(scope="module")
def zoo():
    spec = importlib.util.spec_from_file_location("zoo_benchmark", ROOT / "benchmarks" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(name, values, met):
    return {"recipe": name, "metric": "rmse", "anchor": {"value": 2.0, "source": "a naive forecast"},
            "runs": [{"seed": seed, "metrics": {"rmse": value}, "train_seconds": 3.0 + seed,
                      "best_epoch": 1, "epochs_run": 1, "baseline": {"persistence_rmse": 2.5},
                      "target": {"text": "rmse <= 0.9 x better naive = 2.25", "met": ok}}
                     for seed, value, ok in zip(range(len(values)), values, met)],
            "command": f"lstmzoo train {name} --seed 0", "date": "2025-01-01", "machine": "test", "lstmzoo": "0"}


def test_results_table_merges_and_keeps_other_rows(zoo, tmp_path):
    results = tmp_path / "RESULTS.md"
    zoo.write_results(results, [_record("a-recipe", [2.0, 2.1, 1.9], [True, True, True])])
    zoo.write_results(results, [_record("b-recipe", [2.4], [False])])
    text = results.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == ["`a-recipe`", "`b-recipe`"]
    assert "| 2 | 1.9-2.1 (seeds 0, 1, 2) |" in rows[0] and "| yes (3/3 seeds) |" in rows[0]
    assert "persistence_rmse 2.5" in rows[0] and "3 s (3-5 s over seeds)" in rows[0]
    assert "| no |" in rows[1] and "one seed" in rows[1]
    # Re-running a recipe replaces its row only.
    zoo.write_results(results, [_record("a-recipe", [1.5], [True])])
    assert set(zoo.read_records(results)) == {"a-recipe", "b-recipe"}
    assert zoo.read_records(results)["a-recipe"]["runs"][0]["metrics"]["rmse"] == 1.5


def test_zoo_script_runs_a_recipe_end_to_end(zoo, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    zoo.main(["airline-passengers", "--seeds", "0", "1", "--results", str(results), "--runs", str(tmp_path / "runs"),
              "--set", "epochs=1", "--set", "hidden_size=4"])
    record = zoo.read_records(results)["airline-passengers"]
    assert [run["seed"] for run in record["runs"]] == [0, 1]
    assert record["runs"][0]["baseline"]["seasonal_naive_rmse"] == pytest.approx(41.85, abs=0.01)
    assert record["command"] == "lstmzoo train airline-passengers --seed 0 --set epochs=1 --set hidden_size=4"
    assert (tmp_path / "runs" / "airline-passengers-seed1" / "weights-best.safetensors").is_file()
    assert "`airline-passengers`" in capsys.readouterr().out


def test_added_seeds_join_the_existing_row(zoo, tmp_path):
    results = tmp_path / "RESULTS.md"
    zoo.write_results(results, [_record("a-recipe", [2.0], [True])])
    later = _record("a-recipe", [9.9, 2.2], [False, True])
    later["runs"] = later["runs"][1:]              # seed 1 only, run by another process
    later["command"] = "lstmzoo train a-recipe --seed 1"
    zoo.write_results(results, [later], add=True)
    record = zoo.read_records(results)["a-recipe"]
    assert [run["seed"] for run in record["runs"]] == [0, 1]
    assert record["command"] == "lstmzoo train a-recipe --seed 0"
    assert "2-2.2 (seeds 0, 1)" in results.read_text()
    other = _record("a-recipe", [2.0], [True])
    other["command"] = "lstmzoo train a-recipe --seed 0 --set lr=1"
    with pytest.raises(ValueError, match="different|settings"):
        zoo.write_results(results, [other], add=True)


def test_zoo_script_resumes_kept_runs(zoo, tmp_path):
    results, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    zoo.main(["airline-passengers", "--results", str(results), "--runs", str(runs), "--set", "epochs=1",
              "--set", "hidden_size=4", "--set", "patience=0"])
    with pytest.raises(SystemExit):     # a kept run is not overwritten without --resume
        zoo.main(["airline-passengers", "--results", str(results), "--runs", str(runs), "--set", "epochs=2"])
    zoo.main(["airline-passengers", "--results", str(results), "--runs", str(runs), "--resume", "--set", "epochs=2",
              "--set", "hidden_size=4", "--set", "patience=0"])
    run = zoo.read_records(results)["airline-passengers"]["runs"][0]
    assert run["epochs_run"] == 2
    rows = [json.loads(line) for line in (runs / "airline-passengers-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert run["train_seconds"] == pytest.approx(sum(row["seconds"] for row in rows), abs=0.1)


class _Measured(Recipe):
    """A recipe that only loads data and measures a baseline: its baseline shows the seed and setting it got."""
    name = "a-recipe"
    hyperparameters: ClassVar[dict] = {"scale": Hyperparameter(1.0, "multiplies the baseline")}

    def load_data(self, hp):
        return {"seed": hp["seed"], "scale": hp["scale"]}

    def baseline(self, data, hp):
        assert data["seed"] == hp["seed"]
        return {"fake_rmse": 10 * data["scale"] + data["seed"]}

    def train(self, *args, **kwargs):
        raise AssertionError("--baselines must not train")


def test_baselines_are_added_to_the_recorded_runs_without_training(zoo, tmp_path, monkeypatch, capsys):
    import datetime
    results = tmp_path / "RESULTS.md"
    measured = _record("a-recipe", [2.0, 2.1], [True, True])
    measured["command"] = "lstmzoo train a-recipe --seed 0 --set scale=2"
    for run_ in measured["runs"]:
        run_["baseline"] = {}
    zoo.write_results(results, [measured, _record("b-recipe", [2.4], [False])])
    assert "| none yet |" in results.read_text()
    monkeypatch.setattr(zoo, "get_recipe", lambda name: _Measured() if name == "a-recipe" else get_recipe(name))
    zoo.main(["a-recipe", "--baselines", "--results", str(results)])
    records = zoo.read_records(results)
    today = datetime.date.today().isoformat()
    assert [run_["baseline"] for run_ in records["a-recipe"]["runs"]] == [{"fake_rmse": 20.0}, {"fake_rmse": 21.0}]
    assert records["a-recipe"]["baseline_date"] == today and "baseline_date" not in records["b-recipe"]
    assert [run_["metrics"] for run_ in records["a-recipe"]["runs"]] == [run_["metrics"] for run_ in measured["runs"]]
    rows = [line for line in results.read_text().splitlines() if line.startswith("| `")]
    assert f"| fake_rmse 20 (zoo.py --baselines, {today}) |" in rows[0]
    assert "| persistence_rmse 2.5 |" in rows[1]                 # measured in its own run: not marked
    assert "zoo.py --baselines, DATE" in results.read_text()      # the paragraph says what the mark means
    assert f"fake_rmse 20 (zoo.py --baselines, {today})" in capsys.readouterr().out
    # Seeds added later keep the mark while the first seed's baseline is the one shown; a new row drops it.
    later = _record("a-recipe", [0.0, 0.0, 2.2], [True, True, True])
    later["runs"], later["command"] = later["runs"][2:], "lstmzoo train a-recipe --seed 2 --set scale=2"
    zoo.write_results(results, [later], add=True)
    assert zoo.read_records(results)["a-recipe"]["baseline_date"] == today
    zoo.write_results(results, [_record("a-recipe", [1.0], [True])])
    rows = [line for line in results.read_text().splitlines() if line.startswith("| `")]
    assert "| persistence_rmse 2.5 |" in rows[0] and "baseline_date" not in zoo.read_records(results)["a-recipe"]


def test_baselines_refuse_missing_rows_other_options_and_changed_rows(zoo, tmp_path, monkeypatch, capsys):
    results = tmp_path / "RESULTS.md"
    zoo.write_results(results, [_record("b-recipe", [2.4], [False])])
    before = results.read_text()
    monkeypatch.setattr(zoo, "get_recipe", lambda name: _Measured())
    for argv, message in ((["a-recipe"], "has no row of a-recipe to add a baseline to: train it first"),
                          (["b-recipe", "--seeds", "1"], "uses each row's recorded seeds and settings"),
                          (["b-recipe", "--set", "scale=3"], "uses each row's recorded seeds and settings"),
                          ([], "needs the names of the recipes")):
        with pytest.raises(SystemExit):
            zoo.main([*argv, "--baselines", "--results", str(results)])
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert ": error: " in error and message in error
    assert results.read_text() == before
    with pytest.raises(ValueError, match="changed while"):       # another process re-ran the row meanwhile
        zoo.write_baselines(results, {"b-recipe": ("lstmzoo train b-recipe --seed 1", {1: {}})}, "2026-01-01")
    assert results.read_text() == before
