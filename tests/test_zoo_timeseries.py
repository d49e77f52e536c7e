"""The time-series recipes (``lstmzoo.tasks.ForecastingRecipe``): the rolling-origin evaluation against a loop over
origins, the baselines and smearing on a synthetic series; on their real data (through the mirror
../shared/datasets) the loaders against SOURCE.md, a short train -> evaluate -> predict through the CLI, and
benchmarks/zoo.py's results table."""

import importlib.util
import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from helpers import SHARED, needs_shared, run

from lstmzoo.recipe import Hyperparameter, Recipe
from lstmzoo.registry import get_recipe
from lstmzoo.tasks import ForecastingRecipe, forecasting_hyperparameters
from lstmzoo.tasks.forecasting_recipes import _autoregression, _smeared

ROOT = Path(__file__).resolve().parents[1]

# recipe -> (values, first label, last label, test values, persistence rmse, seasonal naive rmse, label after the end)
SERIES = {
    "monthly-sunspots": (2820, "1749-01", "1983-12", 931, 18.40, 38.75, "1984-01"),
    "daily-min-temperatures": (3650, "1981-01-01", "1990-12-31", 365, 2.582, 3.651, "1991-01-01"),
}
# A short run that learns (10-25 s): test rmse under `ratio` x persistence, the better naive forecast of both. Measured
# with seed 0: sunspots 17.16 with 25 epochs (0.93 x persistence 18.40; 16.81 with the defaults), temperatures 2.255
# with 10 epochs (0.87 x persistence 2.58). A model that learned nothing is persistence (both correct the last value)
# or worse.
LEARNS = {"monthly-sunspots": (["--epochs", "25"], 0.95), "daily-min-temperatures": (["--epochs", "10"], 0.92)}


class Synthetic(ForecastingRecipe):
    """A monthly series with growth and a yearly swing that grows with the level (log, seasonal base)."""
    name = "synthetic-series"
    season = 12
    test_size = 40
    transform = "log"
    lag = 12
    hyperparameters = forecasting_hyperparameters(window=24, hidden_size=8, epochs=2, lr=0.01, batch_size=16,
                                                  val_size=20, patience=0, windows_per_epoch=64)

    def load_series(self, hp):
        t = np.arange(200)
        noise = np.random.default_rng(3).normal(0, 0.03, len(t))
        return [str(i) for i in t], 100 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12) + noise)


@needs_shared
@pytest.mark.parametrize("name", SERIES)
def test_loader_matches_source(name, mirror):
    count, first, last, test_size, persistence, seasonal, _ = SERIES[name]
    recipe = get_recipe(name)
    hp = recipe.resolve()
    labels, _ = recipe.load_series(hp)
    data = recipe.load_data(hp)
    assert len(data.series.values) == len(labels) == count     # CRLF and no final newline: every row read
    assert (labels[0], labels[-1]) == (first, last)
    assert count - data.val_end[0] == test_size
    assert data.val_end[0] - data.train_end[0] == hp["val_size"]
    assert data.fitted["preprocessing"] == {name: {"transform": recipe.transform, "lag": recipe.lag}}
    baseline = recipe.baseline(data, hp)
    assert baseline["persistence_rmse"] == pytest.approx(persistence, abs=0.01)
    assert baseline["seasonal_naive_rmse"] == pytest.approx(seasonal, abs=0.01)
    # The autoregression fitted on the training part forecasts better than persistence on both series.
    assert baseline["ar_rmse"] < baseline["persistence_rmse"]


def test_rolling_evaluation_is_a_loop_of_one_step_forecasts_from_each_history():
    """evaluate's one batched pass over the 40 test origins gives what forecasting each test value from the
    series cut just before it gives, one origin at a time, with the training part's preprocessing; the metrics
    are those of NumPy on those forecasts (to float32 rounding: the model computes in float32, in batches)."""
    from lstmzoo import random
    from lstmzoo.tasks.forecasting_recipes import _continued
    recipe = Synthetic()
    hp = recipe.resolve()
    random.seed(0)
    data = recipe.load_data(hp)
    assert (data.train_end[0], data.val_end[0]) == (140, 160)
    model = recipe.build_model(hp)
    model.eval()
    metrics = recipe.evaluate(model, data, hp)
    values = data.series.values
    residuals = recipe.residuals(model, data, hp)
    assert residuals.shape == (140 - 13,)     # training origins 13 ... 139: a season back and one value before
    loop = np.array([recipe.one_step_forecasts(model, _continued(data, values[:origin]), np.array([0]),
                                               np.array([origin]), hp, residuals)[0] for origin in range(160, 200)])
    error = values[160:] - loop
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(error ** 2)), rel=1e-6)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-6)
    scale = np.mean(np.abs(values[12:160] - values[:148]))     # in-sample seasonal naive MAE before the test part
    assert metrics["mase"] == pytest.approx(np.mean(np.abs(error)) / scale, rel=1e-6)
    assert metrics["seasonal_naive_rmse"] == pytest.approx(np.sqrt(np.mean((values[160:] - values[148:188]) ** 2)))
    assert metrics["persistence_rmse"] == pytest.approx(np.sqrt(np.mean((values[160:] - values[159:199]) ** 2)))


def test_autoregression_recovers_a_linear_process():
    """On a noise-free AR(2) series the least-squares forecasts are exact."""
    values = np.empty(300)
    values[:2] = (1.0, 2.0)
    for t in range(2, 300):
        values[t] = 0.6 * values[t - 1] - 0.3 * values[t - 2] + 5.0
    recipe = type("Linear", (Synthetic,), {"transform": "none", "lag": 1, "test_size": 50,
                                           "load_series": lambda self, hp: (list(range(300)), values)})()
    data = recipe.load_data(recipe.resolve())
    origins = np.arange(250, 300)
    assert np.allclose(_autoregression(data, 4, origins), values[origins], atol=1e-8)


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_smearing_averages_the_inverse_over_the_residuals(transform):
    z = np.random.default_rng(1).normal(3, 0.1, 50)
    residuals = np.random.default_rng(2).normal(0, 0.3, 500)
    inverse = {"sqrt": np.square, "log": np.exp}[transform]
    assert np.allclose(_smeared(z, transform), inverse(z))
    smeared = _smeared(z, transform, residuals)
    assert np.allclose(smeared, inverse(z[:, None] + residuals[None, :]).mean(axis=1))
    # Both inverses are convex, so averaging over zero-mean errors raises every forecast (Jensen).
    assert np.all(_smeared(z, transform, residuals - residuals.mean()) > inverse(z))
    if transform == "sqrt":         # (z + e)^2 averages to z^2 + 2 z mean(e) + mean(e^2)
        assert np.allclose(smeared, z ** 2 + 2 * z * residuals.mean() + np.mean(residuals ** 2))


def test_smearing_uses_the_training_residuals_and_can_be_turned_off():
    recipe = Synthetic()
    hp = recipe.resolve()
    data = recipe.load_data(hp)
    model = recipe.build_model(hp)
    model.eval()
    residuals = recipe.residuals(model, data, hp)
    origins = np.arange(13, 140)
    plain = recipe.one_step_forecasts(model, data, np.zeros(len(origins), dtype=np.int64), origins,
                                      {**hp, "smearing": False})
    assert np.allclose(residuals, np.log(data.series.values[origins]) - np.log(plain))
    assert recipe.residuals(model, data, {**hp, "smearing": False}) is None
    smeared, unsmeared = (recipe.evaluate(model, data, {**hp, "smearing": on})["rmse"] for on in (True, False))
    assert smeared != unsmeared


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
    options, ratio = LEARNS[name]
    assert "test metrics of the best model:" in run("train", name, "--out", out, "--seed", 0, *options).stdout
    metrics = json.loads(run("evaluate", name, "--checkpoint", out, "--json").stdout)
    assert set(metrics) >= {"rmse", "mae", "persistence_rmse", "seasonal_naive_rmse"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    # It learned: better than the better naive forecast (persistence, on both series).
    assert metrics["rmse"] < ratio * metrics["persistence_rmse"] < metrics["seasonal_naive_rmse"], metrics
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
