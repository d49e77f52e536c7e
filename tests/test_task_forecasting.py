"""The forecasting task on small files the tests write: one global model over series of any level learns what the
naive forecasts miss; the splits, the baselines, --test-data, predict's rows and the user's mistakes."""

import csv

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
