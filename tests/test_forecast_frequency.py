"""A forecasting run remembers the frequency of the series it was trained on (config.json's fitted record), and
predict refuses a dated history at another frequency (a daily history for a monthly run) in one sentence, writing
nothing; a history without dates, a run from before the record, and a mixed file's series at their own frequencies
keep working. evaluate --data (the values that follow each series) is checked against the training series."""

import json
import shutil

import numpy as np
import pytest
from helpers import run
from test_cli_tasks import user_error
from test_task_forecasting import write_series

from lstmzoo.checkpoint import read_checked_json, write_checked_json

TINY = ["--set", "hidden_size=8", "--set", "epochs=1", "--set", "windows_per_epoch=64"]


@pytest.fixture(scope="module")
def monthly_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frequency")
    data = write_series(folder / "sales.csv", n_series=2, length=60)
    run("train", "forecasting", "--data", data, "--out", folder / "run", *TINY)
    return folder / "run", data


def _rows(text):
    return [line.split(",") for line in text.splitlines()[1:]]


def test_the_run_records_its_frequency(monthly_run):
    out, _ = monthly_run
    fitted = json.loads((out / "config.json").read_text())["fitted"]
    assert fitted["frequencies"] == [{"name": "monthly", "season": 12, "unit": "months", "amount": 1,
                                      "month_end": False}]


def test_a_daily_history_for_a_monthly_run_is_refused_and_nothing_is_written(monthly_run, tmp_path):
    out, _ = monthly_run
    before = sorted(p.name for p in out.iterdir())
    daily = write_series(tmp_path / "daily.csv", n_series=2, length=60, start="2024-01-01")
    forecast = tmp_path / "forecast.csv"
    said = user_error("predict", "forecasting", "--checkpoint", out, "--input", daily, "--output", forecast,
                      "--plot", tmp_path / "forecast.png")
    assert "series 's0' is daily, but the run in" in said and "trained on monthly series" in said, said
    assert "give a history at the run's frequency (monthly), or train a run on daily data" in said
    assert not forecast.exists() and not (tmp_path / "forecast.png").exists()
    # One series (ds, y) at another frequency: the same sentence about the file.
    weekly = tmp_path / "weekly.csv"
    weekly.write_text("ds,y\n" + "".join(f"{np.datetime64('2024-01-01') + 7 * i},{100 + i}\n" for i in range(40)))
    said = user_error("predict", "forecasting", "--checkpoint", out, "--input", weekly)
    assert f"{weekly} is a weekly series, but the run in" in said and "monthly" in said
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_history_at_the_runs_frequency_or_without_dates_still_predicts(monthly_run, tmp_path):
    out, _ = monthly_run
    history = write_series(tmp_path / "history.csv", n_series=3, length=40, seed=4, start="2018-01")
    rows = _rows(run("predict", "forecasting", "--checkpoint", out, "--input", history).stdout)
    assert len(rows) == 3 * 12 and [r[1] for r in rows[:2]] == ["2021-05", "2021-06"]   # after 2021-04, monthly
    assert np.isfinite([float(r[2]) for r in rows]).all()
    # month ends (a monthly series dated on each month's last day) are monthly too
    ends = tmp_path / "ends.csv"
    days = (np.datetime64("2019-01") + np.arange(1, 41)).astype("M8[D]") - 1
    ends.write_text("ds,y\n" + "".join(f"{d},{100 + i % 12}\n" for i, d in enumerate(days)))
    rows = _rows(run("predict", "forecasting", "--checkpoint", out, "--input", ends).stdout)
    assert [r[1] for r in rows[:2]] == ["2022-05-31", "2022-06-30"]
    # one numeric column: no dates, nothing to compare (as before the record)
    values = tmp_path / "values.csv"
    values.write_text("".join(f"{100 + i % 12 + 0.5 * i}\n" for i in range(40)))
    rows = _rows(run("predict", "forecasting", "--checkpoint", out, "--input", values).stdout)
    assert len(rows) == 12 and rows[0][1] == "41"


def test_a_run_from_before_the_record_still_predicts_any_history(monthly_run, tmp_path):
    out, _ = monthly_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    config = read_checked_json(old / "config.json", "config")
    del config["fitted"]["frequencies"]
    write_checked_json(old / "config.json", config)
    daily = write_series(tmp_path / "daily.csv", n_series=2, length=60, start="2024-01-01")
    rows = _rows(run("predict", "forecasting", "--checkpoint", old, "--input", daily).stdout)
    assert len(rows) == 2 * 12 and [r[1] for r in rows[:2]] == ["2024-03-01", "2024-03-02"]   # as before: daily


def test_evaluate_data_at_another_frequency_is_refused(monthly_run, tmp_path):
    out, data = monthly_run
    following = tmp_path / "next.csv"
    following.write_text("unique_id,ds,y\n" + "".join(f"s{k},{np.datetime64('2020-01-01') + i},{100 + i}\n"
                                                      for k in range(2) for i in range(12)))
    said = user_error("evaluate", "forecasting", "--checkpoint", out, "--data", following)
    assert "series 's0' is daily, but" in said and "holds it monthly" in said
    following.write_text("unique_id,ds,y\n" + "".join(f"s{k},{np.datetime64('2020-01') + i},{100 + i}\n"
                                                      for k in range(2) for i in range(12)))
    assert np.isfinite(json.loads(run("evaluate", "forecasting", "--checkpoint", out, "--data", following,
                                      "--json").stdout)["mase"])


def test_a_file_of_monthly_and_daily_series_forecasts_each_at_its_own_frequency(tmp_path):
    """A run on a file that mixes monthly and daily series takes a history of either (each is a frequency it was
    trained on), and each series' forecast rows step at its own frequency (they stepped at the file's)."""
    monthly = write_series(tmp_path / "m.csv", n_series=3, length=60).read_text().splitlines()
    daily = write_series(tmp_path / "d.csv", n_series=2, length=80, start="2020-01-01").read_text().splitlines()
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join(monthly + [line.replace("s", "d", 1) for line in daily[1:]]) + "\n")
    run("train", "forecasting", "--data", mixed, "--out", tmp_path / "run", *TINY, "--set", "horizon=3")
    fitted = json.loads((tmp_path / "run" / "config.json").read_text())["fitted"]
    assert sorted(f["name"] for f in fitted["frequencies"]) == ["daily", "monthly"]
    rows = _rows(run("predict", "forecasting", "--checkpoint", tmp_path / "run").stdout)
    ds = {}
    for name, when, _ in rows:
        ds.setdefault(name, []).append(when)
    # (the file's dates are read at its finest unit, days)
    assert ds["s0"] == ["2020-01-01", "2020-02-01", "2020-03-01"] and ds["d0"][:2] == ["2020-03-21", "2020-03-22"]
    rows = _rows(run("predict", "forecasting", "--checkpoint", tmp_path / "run", "--input", tmp_path / "d.csv").stdout)
    assert [r[1] for r in rows[:2]] == ["2020-03-21", "2020-03-22"]


def test_following_values_of_one_step_each(tmp_path):
    """--test-data of one value per series (horizon 1), and LSTMForecaster with its default horizon (1, which
    writes such a file): the file's own frequency cannot be inferred and is not needed (it was refused: "every
    series has a single timestamp")."""
    from lstmzoo.estimators import LSTMForecaster

    data = write_series(tmp_path / "train.csv", n_series=2, length=40)
    (tmp_path / "next.csv").write_text("unique_id,ds,y\ns0,2018-05,1.0\ns1,2018-05,2.0\n")
    run("train", "forecasting", "--data", data, "--test-data", tmp_path / "next.csv", "--out", tmp_path / "run",
        *TINY, "--set", "horizon=1")
    y = [100 + np.sin(np.arange(30.0)), 50 + np.arange(25.0)]
    forecaster = LSTMForecaster(hidden_size=4, epochs=1, windows_per_epoch=16, random_state=0).fit(y)
    assert forecaster.horizon_ == 1 and forecaster.predict().shape == (2, 1)
