"""The lstmzoo command: every command through CliRunner, the real console script once, user mistakes as one
sentence with exit status 2, train -> evaluate -> predict, and resume after Ctrl-C."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lstmzoo.zoo.airline import AirlinePassengers

from lstmzoo.checkpoint import load_weights
from lstmzoo.cli import main

COMMANDS = ["list", "info", "download", "train", "evaluate", "predict", "generate", "plugins", "bench",
            "sweep"]
QUICK = ["--epochs", "3", "--set", "hidden_size=8"]


def run(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def assert_user_error(*args):
    """Exit 2, one line on stderr, no traceback."""
    result = run(*args, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def airline_run(tmp_path_factory):
    """A short airline-passengers training run (3 epochs) shared by the tests that read a checkpoint."""
    out = tmp_path_factory.mktemp("runs") / "air"
    result = run("train", "airline-passengers", "--out", out, *QUICK)
    return out, result


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_a_worked_example(command):
    result = run(command, "--help")
    assert "Examples:" in result.output and f"lstmzoo {command}" in result.output


def test_list_and_info():
    assert "airline-passengers" in run("list").output
    speech = run("list", "--application", "speech-commands").output.splitlines()
    assert speech[0].startswith("recipes:") and speech[1:]
    assert all(line.split()[1] == "speech-commands" for line in speech[1:])
    listed = json.loads(run("list", "--json").output)
    assert {"name": "airline-passengers", "application": "time-series"}.items() <= listed[0].items()
    text = run("info", "airline-passengers").output
    assert "preprocessing:" in text and "12-month change" in text and "hidden_size" in text
    described = json.loads(run("info", "airline-passengers", "--json").output)
    assert described["hyperparameters"]["epochs"]["type"] == "int"
    assert described["anchor"]["metric"] == "rmse"


def test_download_and_plugins():
    assert "ships with the package" in run("download", "airline-passengers").output
    assert_user_error("download")
    assert "lstmzoo 0.1.0: airline-passengers" in run("plugins").output
    assert json.loads(run("plugins", "--json").output)["failures"] == []


def test_download_offline_is_one_sentence(monkeypatch, tmp_path):
    from lstmzoo.recipe import DataFile
    monkeypatch.setenv("LSTMZOO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMZOO_MIRROR", raising=False)
    unreachable = "http://127.0.0.1:9/airline-passengers.csv"    # the discard port: nothing listens
    monkeypatch.setattr(AirlinePassengers, "datasets", (DataFile("airline-passengers", "airline-passengers.csv",
                                                                 unreachable, "0" * 64),))
    result = run("download", "airline-passengers", code=1)
    assert result.stderr.count("\n") == 1 and unreachable in result.stderr and "LSTMZOO_MIRROR" in result.stderr


def test_bench_calls_the_benchmark(monkeypatch):
    import lstmzoo.bench
    calls = []
    monkeypatch.setattr(lstmzoo.bench, "run", lambda quick, cell: calls.append((quick, cell)))
    run("bench", "--quick")
    run("bench", "--cell", "gru")
    assert calls == [(True, "lstm"), (False, "gru")]
    run("bench", "--cell", "lstmx", code=2)


def test_train_evaluate_predict(airline_run, tmp_path):
    out, result = airline_run
    for name in ("config.json", "weights-best.safetensors", "weights-last.safetensors", "metrics.jsonl",
                 "learning-curve.png"):
        assert (out / name).is_file() and str(out / name) in result.stdout
    assert "test metrics of the best model:" in result.stdout and "seasonal_naive_rmse" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "airline-passengers" and config["hyperparameters"]["hidden_size"] == 8

    metrics = json.loads(run("evaluate", "airline-passengers", "--checkpoint", out, "--json").stdout)
    assert set(metrics) >= {"rmse", "mae", "persistence_rmse", "seasonal_naive_rmse"}
    assert metrics["seasonal_naive_rmse"] == pytest.approx(41.85, abs=0.01)
    assert metrics["persistence_rmse"] == pytest.approx(48.04, abs=0.01)
    assert all(np.isfinite(v) for v in metrics.values())

    forecast = run("predict", "airline-passengers", "--checkpoint", out, "--horizon", 3).stdout
    assert "1961-01" in forecast and "1961-03" in forecast and (out / "forecast.png").is_file()
    past = tmp_path / "past.csv"
    past.write_text("\n".join(str(v) for v in range(100, 160)) + "\n")
    plot = tmp_path / "plot.png"
    result = json.loads(run("predict", "airline-passengers", "--checkpoint", out, "--input", past,
                            "--plot", plot, "--json").stdout)
    assert len(result["forecast"]) == 12 and result["history_length"] == 60 and plot.is_file()


def test_user_mistakes_are_one_sentence_and_exit_2(airline_run, tmp_path):
    out, _ = airline_run
    assert "did you mean airline-passengers" in assert_user_error("info", "airline-pasengers")
    assert "no hyperparameter 'hiden_size'" in assert_user_error("train", "airline-passengers", "--set", "hiden_size=8")
    assert "takes a float" in assert_user_error("train", "airline-passengers", "--set", "lr=fast")
    assert "name=value" in assert_user_error("train", "airline-passengers", "--set", "lr")
    assert "--out" in assert_user_error("train", "airline-passengers", "--resume")
    assert "already holds a run: continue it with --resume" in assert_user_error("train", "airline-passengers", "--out", out)
    assert "no config.json" in assert_user_error("evaluate", "airline-passengers", "--checkpoint", tmp_path / "nope")

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"recipe": "sine-wave", "hyperparameters": {}}))
    assert "recipe 'sine-wave', not of 'airline-passengers'" in assert_user_error(
        "evaluate", "airline-passengers", "--checkpoint", other)

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_bytes((out / "config.json").read_bytes())
    (damaged / "weights-best.safetensors").write_bytes((out / "weights-best.safetensors").read_bytes()[:100])
    assert "not a valid safetensors file" in assert_user_error("evaluate", "airline-passengers", "--checkpoint",
                                                               damaged)
    (damaged / "config.json").write_text("{ not json")
    assert "not valid JSON" in assert_user_error("predict", "airline-passengers", "--checkpoint", damaged)

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("month,value\n1949-01,112\n1949-02,lots\n")
    assert "line 3, column 'value': 'lots' is not a number" in assert_user_error(
        "predict", "airline-passengers", "--checkpoint", out, "--input", bad_csv)
    short = tmp_path / "short.csv"
    short.write_text("1\n2\n3\n")
    assert "at least 36 past values" in assert_user_error(
        "predict", "airline-passengers", "--checkpoint", out, "--input", short)
    assert "missing.csv does not exist" in assert_user_error(
        "predict", "airline-passengers", "--checkpoint", out, "--input", tmp_path / "missing.csv")


def test_ctrl_c_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    run("train", "airline-passengers", "--out", whole, *QUICK)

    validate = AirlinePassengers.validate
    calls = []

    def ctrl_c_in_epoch_2(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return validate(self, *args)

    monkeypatch.setattr(AirlinePassengers, "validate", ctrl_c_in_epoch_2)
    result = run("train", "airline-passengers", "--out", interrupted, *QUICK, code=130)
    assert f"lstmzoo train airline-passengers --out {interrupted} --resume" in result.stderr
    monkeypatch.setattr(AirlinePassengers, "validate", validate)

    run("train", "airline-passengers", "--out", interrupted, "--resume")
    for name in ("weights-last.safetensors", "weights-best.safetensors"):
        expected, resumed = load_weights(whole / name), load_weights(interrupted / name)
        assert expected.keys() == resumed.keys()
        assert all(np.array_equal(expected[k], resumed[k]) for k in expected)


def test_example_plugin_trains_and_evaluates(example_plugin, tmp_path):
    assert "sine-wave" in run("list").output
    out = tmp_path / "sine"
    run("train", "sine-wave", "--out", out)   # the defaults: about a second
    metrics = json.loads(run("evaluate", "sine-wave", "--checkpoint", out, "--json").stdout)
    assert metrics["rmse"] < metrics["persistence_rmse"]
    assert "recipe 'sine-wave', not of 'airline-passengers'" in assert_user_error(
        "evaluate", "airline-passengers", "--checkpoint", out)


def test_console_script_in_a_subprocess(broken_plugins, airline_run):
    """The installed `lstmzoo` script: a broken plugin is one line on stderr; a mistake exits 2 cleanly."""
    script = Path(sys.executable).with_name("lstmzoo")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}; install with pip install -e .")
    env = {**os.environ, "PYTHONPATH": str(broken_plugins)}
    listed = subprocess.run([script, "list"], check=False, capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "airline-passengers" in listed.stdout
    skipped = [line for line in listed.stderr.splitlines() if line.startswith("skipped plugin broken-plugin")]
    assert len(skipped) == 2 and "Traceback" not in listed.stderr

    out, _ = airline_run
    evaluated = subprocess.run([script, "evaluate", "airline-passengers", "--checkpoint", out, "--json"],
                               check=False, capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "rmse" in json.loads(evaluated.stdout)

    mistake = subprocess.run([sys.executable, "-m", "lstmzoo", "info", "nope"], check=False, capture_output=True, text=True)
    assert mistake.returncode == 2 and mistake.stderr.count("\n") == 1 and "Traceback" not in mistake.stderr


def test_info_shows_numeric_choices(monkeypatch):
    from lstmzoo.recipe import Hyperparameter
    monkeypatch.setitem(AirlinePassengers.hyperparameters, "window", Hyperparameter(12, "months read", choices=(6, 12)))
    result = run("info", "airline-passengers")
    assert result.exit_code == 0 and "(one of 6, 12)" in result.output
