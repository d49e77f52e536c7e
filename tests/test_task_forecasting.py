"""The forecasting task on small files the tests write: one global model over series of any level learns what the
naive forecasts miss; the splits, the baselines, --test-data, predict's rows and the user's mistakes."""

import csv
import dataclasses

import numpy as np
import pytest

from lstmzoo.errors import UserError
from lstmzoo.tasks.forecasting import ForecastingTask

QUICK = {"hidden_size": 32, "epochs": 20, "lr": 0.003}


def write_series(path, n_series=12, length=120, seed=0, start="2015-01", noise=0.03):
    """Monthly series with levels from 10 to 10,000, a trend that differs by series, a yearly cycle and noise:
    the seasonal naive forecast misses the trend, the naive forecast the cycle."""
    rng = np.random.default_rng(seed)
    months = np.datetime64(start) + np.arange(length)
    t = np.arange(length)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["unique_id", "ds", "y"])
        for k in range(n_series):
            level = 10 ** rng.uniform(1, 4)
            y = level * (1 + 0.004 * (k % 3 + 1) * t + 0.2 * np.sin(2 * np.pi * (t + k) / 12)
                         + noise * rng.standard_normal(length))
            out.writerows([f"s{k}", str(m), f"{v:.6f}"] for m, v in zip(months, y))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecasting")
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(write_series(folder / "sales.csv")), **QUICK}))
    return task, hp, task.train(hp, folder / "run", progress=False), folder


def test_settles_horizon_season_and_window_from_the_file(trained):
    _, hp, _, _ = trained
    assert (hp["season"], hp["horizon"], hp["window"]) == (12, 12, 24)


def test_one_global_model_beats_both_naive_forecasts(trained):
    task, hp, result, _ = trained
    metrics = task.evaluate(result.model, result.data, hp)
    # Measured: mase 0.60 against seasonal naive 1.08 and naive 2.19 (seed 0).
    assert metrics["mase"] < 0.8 * metrics["seasonal_naive_mase"] < 0.8 * metrics["naive_mase"]
    assert metrics["smape"] < metrics["seasonal_naive_smape"] and metrics["rmse"] < metrics["seasonal_naive_rmse"]
    assert task.target(metrics)[1]


def test_splits_hold_out_the_last_horizons_and_baselines_are_right(trained):
    task, _, result, folder = trained
    data = result.data
    assert (data.val_end == 108).all() and (data.train_end == 96).all()
    values = data.series.series(0)[2]
    np.testing.assert_array_equal(data.test_values[0], values[108:])
    # A series that repeats its year exactly: the seasonal naive forecast is perfect, the naive one is not.
    path = folder / "cycle.csv"
    cycle = 100 + 10 * np.sin(2 * np.pi * np.arange(60) / 12)
    path.write_text("ds,y\n" + "".join(f"{np.datetime64('2000-01') + i},{v}\n" for i, v in enumerate(cycle)))
    exact = task.settle(task.resolve({"data": str(path)}))
    baseline = task.baseline(task.load_data(exact), exact)
    assert baseline["seasonal_naive_rmse"] == pytest.approx(0, abs=1e-9) and baseline["naive_rmse"] > 5


def test_test_data_gives_the_values_that_follow(trained, tmp_path):
    task, _, _, _ = trained
    whole = write_series(tmp_path / "whole.csv", n_series=3, length=72)
    rows = whole.read_text().splitlines()
    head = [rows[0]] + [r for r in rows[1:] if np.datetime64(r.split(",")[1]) < np.datetime64("2020-01")]
    tail = [rows[0]] + [r for r in rows[1:] if np.datetime64(r.split(",")[1]) >= np.datetime64("2020-01")]
    (tmp_path / "train.csv").write_text("\n".join(head) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(tail) + "\n")
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.csv"), "test_data": str(tmp_path / "test.csv")}))
    data = task.load_data(hp)
    assert (data.val_end == 60).all()
    np.testing.assert_allclose(data.test_values[1], [float(r.split(",")[2]) for r in tail[1:] if r.startswith("s1,")])
    (tmp_path / "partial.csv").write_text("\n".join(r for r in tail if not r.startswith("s2,")) + "\n")
    with pytest.raises(UserError, match="has no values for series 's2'"):
        task.load_data({**hp, "test_data": str(tmp_path / "partial.csv")})


def test_predict_writes_the_next_horizon_of_every_series(trained, tmp_path):
    task, hp, result, folder = trained
    out = tmp_path / "forecast.csv"
    prediction = task.predict(result.model, hp, folder / "run", output=out, plot=tmp_path / "forecast.png")
    lines = out.read_text().splitlines()
    assert lines[0] == "unique_id,ds,y_hat" and len(lines) == 1 + 12 * 12
    assert lines[1].startswith("s0,2025-01,") and lines[12].startswith("s0,2025-12,")
    assert lines[13].startswith("s1,2025-01,")
    assert prediction["output"] == str(out)
    # The forecast of a series continues its own level: the model is global, each series scaled on its own.
    rows = csv.reader((folder / "sales.csv").read_text().splitlines())
    last = {row[0]: float(row[2]) for row in rows if row[1] == "2024-12"}
    first = {line.split(",")[0]: float(line.split(",")[2]) for line in lines[1:] if ",2025-01," in line}
    assert all(0.5 < first[name] / last[name] < 2 for name in last)


def test_user_mistakes_are_one_sentence(tmp_path):
    task = ForecastingTask()
    with pytest.raises(UserError, match="--data"):
        task.settle(task.resolve())
    short = tmp_path / "short.csv"
    write_series(short, n_series=2, length=30)
    with pytest.raises(UserError, match=r"series 's0' has 30 values; forecasting 12 steps needs at least 37"):
        task.settle(task.resolve({"data": str(short)}))
    with pytest.raises(UserError, match="horizon"):
        task.resolve({"horizon": "-1"})


def test_two_single_series_files_belong_together(tmp_path):
    values = 100 + 10 * np.sin(2 * np.pi * np.arange(72) / 12) + np.arange(72)
    months = [np.datetime64("2000-01") + i for i in range(72)]
    (tmp_path / "train.csv").write_text("ds,y\n" + "".join(f"{m},{v}\n" for m, v in zip(months[:60], values[:60])))
    (tmp_path / "test.csv").write_text("ds,y\n" + "".join(f"{m},{v}\n" for m, v in zip(months[60:], values[60:])))
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.csv"), "test_data": str(tmp_path / "test.csv")}))
    np.testing.assert_allclose(task.load_data(hp).test_values[0], values[60:])


# ------------------------------------------------------------------------------------ per-series preprocessing
def _month_file(path, series):
    """A long CSV of monthly series (name -> values) from 2000-01."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["unique_id", "ds", "y"])
        for name, values in series.items():
            out.writerows([name, str(np.datetime64("2000-01") + i), f"{v:.6f}"] for i, v in enumerate(values))
    return path


def _shapes(length=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    cycle = np.sin(2 * np.pi * t / 12)
    return {"multiplicative": 100 * np.exp(0.02 * t) * (1 + 0.25 * cycle) * (1 + 0.02 * rng.standard_normal(length)),
            "additive": 100 + 0.5 * t + 10 * cycle + rng.standard_normal(length),
            "noise": 100 + 5 * rng.standard_normal(length),
            "walk": 100 + np.cumsum(rng.standard_normal(length)),
            "growth": np.exp(0.03 * t) * (1 + 0.05 * rng.standard_normal(length))}


@pytest.mark.parametrize("seed", range(5))
def test_log_and_seasonal_base_are_chosen_by_the_series_shape(seed):
    from lstmzoo.tasks.forecasting import choose_preprocessing
    shapes = _shapes(seed=seed)
    # A seasonal swing that grows with the level: log, then the seasonal base; a constant swing: no log.
    assert choose_preprocessing(shapes["multiplicative"], 12) == ("log", 12)
    assert choose_preprocessing(shapes["additive"], 12) == ("none", 12)
    # No season: the last value is the base; a level that barely moves never gets log (its spread says nothing).
    assert choose_preprocessing(shapes["noise"], 12) == ("none", 1)
    assert choose_preprocessing(shapes["walk"], 12) == ("none", 1)
    assert choose_preprocessing(shapes["walk"], 1) == ("none", 1)
    # Exponential growth with proportional noise, no season: log.
    assert choose_preprocessing(shapes["growth"], 1) == ("log", 1)


def test_a_series_with_zeros_or_negatives_never_gets_log():
    from lstmzoo.tasks.forecasting import choose_preprocessing
    multiplicative = _shapes()["multiplicative"]
    # A zero: the square root at most (the next weaker power); a negative value: no transform at all.
    assert choose_preprocessing(np.r_[0.0, multiplicative[1:]], 12) == ("sqrt", 12)
    assert choose_preprocessing(multiplicative - 150, 12) == ("none", 12)
    assert choose_preprocessing(np.r_[multiplicative[:-1], -1.0], 12)[0] == "none"


def test_a_spread_growing_with_the_square_root_of_the_level_gets_sqrt():
    from lstmzoo.tasks.forecasting import choose_preprocessing
    # Counts around a slow cycle (sunspot-like): Poisson noise, whose spread grows as the square root of the level
    # (Box-Cox lambda 0.5); no yearly season.
    level = 5 + 200 * (1 + np.sin(2 * np.pi * np.arange(480) / 132))
    for seed in range(3):
        counts = np.random.default_rng(seed).poisson(level).astype(float)
        assert choose_preprocessing(counts, 12) == ("sqrt", 1)


def test_each_series_of_a_long_file_gets_its_own_season_and_choice(tmp_path, monkeypatch):
    shapes = _shapes()
    path = tmp_path / "mixed.csv"
    rng = np.random.default_rng(1)
    days = 700
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["unique_id", "ds", "y"])
        out.writerows(["monthly", str(np.datetime64("2000-01") + i), f"{v:.6f}"]
                      for i, v in enumerate(shapes["multiplicative"]))
        weekly = 50 + 10 * np.sin(2 * np.pi * np.arange(days) / 7) + rng.standard_normal(days)
        out.writerows(["daily", str(np.datetime64("2010-01-01") + i), f"{v:.6f}"] for i, v in enumerate(weekly))
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(path)}))
    assert hp["season"] == 7          # the file's median step is a day
    data = task.load_data(hp)
    assert data.season.tolist() == [12, 7]
    assert data.fitted == {"preprocessing": {"monthly": {"transform": "log", "lag": 12}, "daily": {"transform": "none", "lag": 7}},
                           "seasons_per_series": True,
                           "frequencies": [{"name": "daily", "season": 7, "unit": "D", "amount": 1, "month_end": False},
                                           {"name": "monthly", "season": 12, "unit": "months", "amount": 1,
                                            "month_end": False}]}
    assert hp["window"] == 24         # two of the longest season
    # season= set to another value applies to every series.
    forced = task.load_data(task.settle(task.resolve({"data": str(path), "season": "12"})))
    assert forced.season.tolist() == [12, 12] and forced.fitted["seasons_per_series"] is False
    # predict: seasons per series also when the input's median step is another (here monthly: a new monthly
    # series and a short daily history), so the new series gets its own season (12, not the run's 7) by the rule.
    from lstmzoo.tasks import forecasting
    result = task.train({**hp, **QUICK, "epochs": 1}, tmp_path / "run", progress=False)
    seen = []

    def prepared(*args, **kwargs):
        seen.append(made := original(*args, **kwargs))
        return made

    original = forecasting._prepared
    history = tmp_path / "history.csv"
    lines = path.read_text().splitlines()
    daily = [line for line in lines if line.startswith("daily,")]
    history.write_text("\n".join([lines[0], *[line.replace("monthly,", "new,") for line in lines
                                               if line.startswith("monthly,")], *daily[-30:]]) + "\n")
    monkeypatch.setattr(forecasting, "_prepared", prepared)
    task.predict(result.model, {**hp, **QUICK, "epochs": 1}, tmp_path / "run", input=str(history),
                 output=tmp_path / "f.csv", plot=tmp_path / "f.png")
    assert seen[-1].season.tolist() == [12, 7] and seen[-1].lag.tolist() == [12, 7]


def test_the_recorded_preprocessing_is_reproduced_by_predict(tmp_path):
    from lstmzoo.tasks.forecasting import _prepared, _seasons
    shapes = _shapes()
    path = _month_file(tmp_path / "train.csv", {**{k: shapes[k] for k in ("multiplicative", "additive", "noise")},
                                                "again": _shapes(seed=1)["multiplicative"]})
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(path), **QUICK, "epochs": 2}))
    result = task.train(hp, tmp_path / "run", progress=False)
    recorded = task.recorded_preprocessing(tmp_path / "run")
    assert recorded == {"preprocessing": {"multiplicative": {"transform": "log", "lag": 12},
                                          "additive": {"transform": "none", "lag": 12}, "noise": {"transform": "none", "lag": 1},
                                          "again": {"transform": "log", "lag": 12}}, "seasons_per_series": True,
                        "frequencies": [{"name": "monthly", "season": 12, "unit": "months", "amount": 1,
                                         "month_end": False}]}
    # evaluate reads the file again: the same choices.
    assert task.load_data(hp).fitted == recorded
    # A short history of a trained series (too short for the rule, which would choose no log and the last value)
    # keeps its recorded choice; an unknown series is chosen for by the rule; a trained log series that now
    # holds a zero falls back to the rule (no log: the square root).
    short = shapes["multiplicative"][-30:]
    history = _month_file(tmp_path / "history.csv", {"multiplicative": short, "new": shapes["multiplicative"],
                                                      "again": np.r_[0.0, _shapes(seed=1)["multiplicative"][1:]]})
    out = tmp_path / "forecast.csv"
    task.predict(result.model, hp, tmp_path / "run", input=str(history), output=out, plot=tmp_path / "f.png")
    given = task._read(hp, str(history))
    lengths = given.lengths
    data = _prepared(given, lengths, lengths, np.empty((3, 0)), _seasons(given), recorded["preprocessing"])
    assert data.transform.tolist() == ["log", "log", "sqrt"] and data.lag.tolist() == [12, 12, 12]
    rows = np.array([line.split(",")[2] for line in out.read_text().splitlines()[1:]], dtype=float).reshape(3, 12)
    series = np.arange(3)
    expected = task._unscaled(data, series, lengths, task._scaled_forecast(result.model, data, series, lengths, hp))
    np.testing.assert_allclose(rows, expected, rtol=1e-4)   # the CSV holds 6 digits
    assert np.isfinite(rows).all()
    # Chosen by the rule alone, the short history would differ: the record is what made predict use log.
    assert _prepared(given, lengths, lengths, np.empty((3, 0)), _seasons(given)).transform.tolist()[0] == "none"


def test_a_multiplicative_seasonal_series_set_is_learned(tmp_path):
    """Series whose yearly swing grows with their level (log + seasonal base): the model beats the seasonal naive
    forecast, which misses the growth."""
    series = {f"s{k}": _shapes(seed=k)["multiplicative"] * 10 ** (k % 3) for k in range(6)}
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(_month_file(tmp_path / "m.csv", series)), **QUICK}))
    result = task.train(hp, tmp_path / "run", progress=False)
    assert all(entry == {"transform": "log", "lag": 12} for entry in result.data.fitted["preprocessing"].values())
    metrics = task.evaluate(result.model, result.data, hp)
    assert metrics["mase"] < 0.8 * metrics["seasonal_naive_mase"]


def test_a_run_of_an_older_task_format_is_refused_in_one_sentence(trained):
    """A run written before the task's inputs changed (format 1: one input channel, no recorded per-series
    preprocessing) is refused by evaluate, predict and --resume with one sentence, not a shape error; a run
    of the current format restores. A config.json from before "task_format" existed counts as format 1."""
    import shutil

    from click.testing import CliRunner

    from lstmzoo.checkpoint import CheckpointError, read_config, write_config
    from lstmzoo.cli import main

    task, hp, _, folder = trained
    assert read_config(folder / "run")["task_format"] == ForecastingTask.format == 2
    task.restore(folder / "run")
    old = folder / "old-run"
    shutil.copytree(folder / "run", old)
    config = read_config(old)
    del config["task_format"]
    write_config(old, {k: v for k, v in config.items() if k not in ("versions", "created", "format")})
    with pytest.raises(CheckpointError, match="run format 1, this lstmzoo reads format 2"):
        task.restore(old)
    for args in (["evaluate", "forecasting", "--checkpoint", str(old)],
                 ["predict", "forecasting", "--checkpoint", str(old), "--input", hp["data"]],
                 ["train", "forecasting", "--out", str(old), "--resume", "--epochs", "9"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "trained by another version of the forecasting task" in result.output


# ------------------------------------------------------------------------------------- weighing the series
def _calm_and_rough(path):
    """Two monthly series of one global model: a slow cycle whose monthly changes are small next to its spread
    (sunspot-like), and noise whose changes are as large as its spread."""
    rng = np.random.default_rng(0)
    t = np.arange(240)
    return _month_file(path, {"calm": 100 + 20 * np.sin(2 * np.pi * t / 132) + 0.5 * rng.standard_normal(240),
                              "rough": 100 + 5 * rng.standard_normal(240)})


class _Zero:
    """A model that forecasts the base (zero change) and keeps the gradient it is given."""

    def __call__(self, inputs, lengths=None):
        return np.zeros((inputs.shape[1], self.horizon), dtype=np.float32)

    def backward(self, gradient):
        self.gradient = gradient


def test_every_series_weighs_the_same_relative_to_its_base_forecast(tmp_path):
    """Each series' squared errors weigh by 1 over the in-sample error of its base forecast, in the training loss
    and in the validation loss: without it the rough series' errors outweighed the calm one's 14 to 1 (as airline's
    did sunspots' in the three-series benchmark file), in the gradient and in the loss that stops training."""
    from lstmzoo.tasks.forecasting import _training_origins
    task = ForecastingTask()
    hp = {**task.settle(task.resolve({"data": str(_calm_and_rough(tmp_path / "two.csv"))})), "device": "cpu"}
    data = task.load_data(hp)
    series, origins = _training_origins(data)
    _, _, targets, weight = task._windows(data, series, origins, hp, with_targets=True)
    targets, weight = np.asarray(targets, np.float64), np.asarray(weight, np.float64)
    inside = weight > 0
    mse = np.array([np.mean(targets[series == k][inside[series == k]] ** 2) for k in range(2)])
    assert mse[1] > 10 * mse[0]
    assert data.weight.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(data.weight * mse, np.full(2, data.weight[0] * mse[0]), rtol=1e-4)
    # The training step: the zero forecast's weighted loss is the same share for both series, its gradient
    # weighted the same way.
    model = _Zero()
    model.horizon = hp["horizon"]
    losses = [task.train_step(model, task._windows(data, series[series == k], origins[series == k], hp, True), hp)[0]
              for k in range(2)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    # Validation: each series' share of the zero forecast's loss is its squared scaled validation error times its
    # weight; the calm series is not drowned by the rough one.
    val = task.validate(model, data, hp)["val_loss"]
    share = [task.validate(model, dataclasses.replace(data, weight=np.eye(2)[k]), hp)["val_loss"] * data.weight[k]
             for k in range(2)]
    assert val == pytest.approx(sum(share), rel=1e-6)
    assert min(share) > 0.2 * val


def test_a_single_series_weighs_one(tmp_path):
    """One series: weight 1, so a single-series run trains and stops exactly as without weights."""
    task = ForecastingTask()
    path = tmp_path / "one.csv"
    path.write_text("ds,y\n" + "".join(f"{np.datetime64('2000-01') + i},{v}\n"
                                       for i, v in enumerate(_shapes()["walk"])))
    data = task.load_data(task.settle(task.resolve({"data": str(path)})))
    assert data.weight.tolist() == [1.0]


# ------------------------------------------------------------------------------------------ the validation part
def _long_and_short(path):
    """Two monthly series of one file, 240 and 120 values: noise around a level and a slow swing (the last value
    as the base, no transform)."""
    rng = np.random.default_rng(1)
    return _month_file(path, {"long": 100 + 5 * rng.standard_normal(240),
                              "short": 50 + 10 * np.sin(2 * np.pi * np.arange(120) / 50) + rng.standard_normal(120)})


def test_the_validation_part_is_a_share_of_each_series(tmp_path):
    """val_fraction (0.1) of each series' values before its test part, at least horizon: 23 of the long series'
    228 (the horizon's 12 before), 12 of the short one's 108 (10.8 rounds to 11, below the horizon); 0 gives the
    horizon to every series; never so many that fewer than horizon + season + 1 values are left to learn from."""
    task = ForecastingTask()
    hp = task.settle(task.resolve({"data": str(_long_and_short(tmp_path / "two.csv"))}))
    data = task.load_data(hp)
    assert data.val_end.tolist() == [228, 108]
    assert (data.val_end - data.train_end).tolist() == [23, 12]
    data = task.load_data({**hp, "val_fraction": 0.0})
    assert (data.val_end - data.train_end).tolist() == [12, 12]
    from lstmzoo.tasks.forecasting import _validation_sizes
    assert _validation_sizes(np.array([26, 40, 1000]), 12, np.array([12, 12, 7]), 0.5).tolist() == [12, 15, 500]


def test_validation_scores_rolling_origins_through_the_part_per_series(tmp_path):
    """val_loss: for each series the mean squared scaled error of every forecast of a validation value from
    every origin that reaches it (horizon - 1 before the part up to its last value), times the series' weight,
    then the mean over the series: checked against a loop over origins with a model that forecasts the base
    (the last value), so each error is the value's change from the one before the origin."""
    task = ForecastingTask()
    hp = {**task.settle(task.resolve({"data": str(_long_and_short(tmp_path / "two.csv"))})), "device": "cpu"}
    data = task.load_data(hp)
    assert data.lag.tolist() == [1, 1] and data.transform.tolist() == ["none", "none"]
    model = _Zero()
    model.horizon = horizon = hp["horizon"]
    per_series = []
    for k in range(2):
        values = data.series.series(k)[2]
        errors = [((values[o + j] - values[o - 1]) / data.scale[k]) ** 2
                  for o in range(data.train_end[k] - horizon + 1, data.val_end[k])
                  for j in range(horizon) if data.train_end[k] <= o + j < data.val_end[k]]
        per_series.append(np.mean(errors))
    expected = np.mean(np.array(per_series) * data.weight)
    assert task.validate(model, data, hp)["val_loss"] == pytest.approx(expected, rel=1e-9)


def test_a_run_from_before_val_fraction_keeps_its_training_part(trained):
    """A run whose config.json has no val_fraction held out horizon values per series: restore gives it
    val_fraction 0, so evaluate refits the preprocessing and scaling on the same training part."""
    import shutil

    from lstmzoo.checkpoint import read_config, write_config

    task, hp, _, folder = trained
    assert task.restore(folder / "run")[1]["val_fraction"] == 0.1
    old = folder / "run-before-val-fraction"
    shutil.copytree(folder / "run", old)
    config = read_config(old)
    del config["hyperparameters"]["val_fraction"]
    write_config(old, {k: v for k, v in config.items() if k not in ("versions", "created", "format")})
    restored = task.restore(old)[1]
    assert restored["val_fraction"] == 0.0
    data = task.load_data(restored)
    assert (data.val_end - data.train_end == restored["horizon"]).all()
