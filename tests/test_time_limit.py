"""``fit(time_limit=...)`` and ``lstmzoo train --time-limit``: training ends at the first epoch end past the limit
with the best checkpoint, the run records why it stopped, a resume starts the clock again and goes on training,
and a bad duration is one sentence with exit status 2."""

import itertools
import json
import math

import click
import numpy as np
import pytest
from helpers import run
from test_distributed import _lstmzoo, needs_mpi
from test_task_sequences import sequences
from test_train import assert_bit_identical, deterministic, weights
from test_train import run as fit_run

from lstmzoo import checkpoint as ckpt
from lstmzoo import train as train_module
from lstmzoo.cli import parse_duration


@pytest.fixture
def ten_seconds_per_epoch(monkeypatch):
    """A fake clock for the time limit: ``fit`` reads it once as it starts and once per epoch end, and each
    reading is 10 s after the one before, so every epoch "takes" 10 s, and a resume starts at a later time."""
    clock = itertools.count(0.0, 10.0)
    monkeypatch.setattr(train_module.time, "monotonic", lambda: next(clock))


def test_stops_at_the_first_epoch_end_past_the_limit(tmp_path, ten_seconds_per_epoch):
    model, result = fit_run(tmp_path / "run", epochs=8, time_limit=25)
    # Epoch ends at 10, 20, 30 s: the third is past 25 s.
    assert result.epochs_run == 3 and result.stopped_by_time_limit
    state = ckpt.read_json(tmp_path / "run" / ckpt.STATE)
    assert state["stopped_by_time_limit"] and not state["stopped_early"] and state["epoch"] == 3
    rows = [json.loads(line) for line in (tmp_path / "run" / ckpt.METRICS).read_text().splitlines()]
    assert [row.get("stopped_by_time_limit", False) for row in rows] == [False, False, True]
    # The model ends with the best epoch's weights, as at any other end of training.
    assert_bit_identical(model.parameters(), weights(tmp_path / "run" / ckpt.WEIGHTS_BEST))
    assert result.best_epoch == 1 + int(np.argmin([row["val_loss"] for row in rows]))


def test_the_limit_counts_from_the_resume_and_the_run_goes_on(tmp_path, ten_seconds_per_epoch):
    fit_run(tmp_path / "run", epochs=8, time_limit=25)                     # stops after epoch 3 (at 30 s)
    _, result = fit_run(tmp_path / "run", epochs=8, time_limit=25, resume=True)
    # Counted from the run's start the limit was long past, and the resume would stop after one epoch.
    assert result.epochs_run == 6 and result.stopped_by_time_limit
    _, result = fit_run(tmp_path / "run", epochs=8, resume=True)            # no limit: to the end
    assert result.epochs_run == 8 and not result.stopped_by_time_limit
    assert not ckpt.read_json(tmp_path / "run" / ckpt.STATE)["stopped_by_time_limit"]


def test_stopped_by_the_limit_then_resumed_is_bit_identical_to_one_run(tmp_path, ten_seconds_per_epoch):
    straight, straight_result = fit_run(tmp_path / "straight", epochs=6)
    fit_run(tmp_path / "limited", epochs=6, time_limit=15)                 # stops after epoch 2
    resumed, resumed_result = fit_run(tmp_path / "limited", epochs=6, resume=True)
    assert_bit_identical(weights(tmp_path / "straight" / ckpt.WEIGHTS_LAST),
                         weights(tmp_path / "limited" / ckpt.WEIGHTS_LAST))
    assert_bit_identical(straight.parameters(), resumed.parameters())
    strip = [{k: v for k, v in row.items() if k != "stopped_by_time_limit"} for row in resumed_result.history]
    assert deterministic(straight_result.history) == deterministic(strip)


def test_a_limit_reached_at_the_last_epoch_is_not_a_stop(tmp_path, ten_seconds_per_epoch):
    _, result = fit_run(tmp_path / "run", epochs=3, time_limit=25)
    assert result.epochs_run == 3 and not result.stopped_by_time_limit


@pytest.mark.parametrize("limit", [0, -1.0, math.nan, math.inf, True, "10m"])
def test_fit_refuses_a_bad_limit(tmp_path, limit):
    with pytest.raises(ValueError, match="time_limit"):
        fit_run(tmp_path / "run", epochs=2, time_limit=limit)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400),
                                           ("2m30s", 150), ("0.01s", 0.01), (" 1H ", 3600)])
def test_durations(text, seconds):
    assert parse_duration(text, "--time-limit") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "10x", "m", "", "0s", "0h0m", "30s10m", "-5m", "1 h"])
def test_bad_durations(text):
    with pytest.raises(click.ClickException, match="--time-limit") as raised:
        parse_duration(text, "--time-limit")
    assert raised.value.exit_code == 2


def test_a_task_stops_after_epoch_one_and_evaluate_agrees(tmp_path):
    X, y, lengths = sequences(n=120, seed=1)
    np.savez(tmp_path / "train.npz", X=X, y=y, lengths=lengths)
    out = tmp_path / "run"
    trained = run("train", "sequence-classification", "--data", tmp_path / "train.npz", "--out", out,
                  "--time-limit", "0.001s")
    assert "time limit reached after epoch 1 of 100: training stops, keeping the best checkpoint (epoch 1)" \
        in trained.stderr
    assert "(epoch 1 of 1)" in trained.stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert ckpt.read_json(out / "state.json")["stopped_by_time_limit"]
    printed = dict(line.split() for line in trained.stdout.split("test metrics of the best model:")[1].splitlines()
                   if line.strip())
    evaluated = json.loads(run("evaluate", "sequence-classification", "--checkpoint", out, "--json").stdout)
    assert {name: f"{value:.4f}" for name, value in evaluated.items()} == printed

    # --resume goes on from epoch 1, with a limit of its own (counted from the resume) or none.
    resumed = run("train", "sequence-classification", "--out", out, "--resume", "--epochs", "3")
    assert "(epoch" in resumed.stdout and "of 3)" in resumed.stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("value", ["10", "ten minutes", "0s"])
def test_a_bad_limit_exits_2_and_leaves_no_run_folder(tmp_path, value):
    X, y, lengths = sequences(n=40, seed=1)
    np.savez(tmp_path / "train.npz", X=X, y=y, lengths=lengths)
    result = run("train", "sequence-classification", "--data", tmp_path / "train.npz", "--out", tmp_path / "run",
                 "--time-limit", value, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--time-limit" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_under_mpi_every_rank_stops_after_the_same_epoch(tmp_path):
    """Rank 0's clock decides: a rank that went on alone would wait for the others' gradients for ever."""
    from test_task_forecasting import write_series
    data = write_series(tmp_path / "sales.csv", n_series=4, length=60)
    result = _lstmzoo(["forecasting", "--data", str(data), "--epochs", "5", "--set", "hidden_size=8", "--set",
                       "windows_per_epoch=100", "--time-limit", "0.001s", "--out", "two"], tmp_path, ranks=2,
                      record=tmp_path / "record")
    assert result.stderr.count("time limit reached after epoch 1 of 5") == 1, result.stderr
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1
    assert "test metrics of the best model:" in result.stdout
