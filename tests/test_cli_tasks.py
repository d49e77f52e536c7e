"""The tasks through the command line: train TASK --data, evaluate (the run's own test part, or --data), predict
--output; a bad file leaves no run folder; the recipes refuse --data."""

import json

import numpy as np
from helpers import run
from test_task_forecasting import QUICK, write_series

SETTINGS = [arg for name, value in QUICK.items() for arg in ("--set", f"{name}={value}")]


def user_error(*args):
    result = run(*args, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_forecasting_from_the_command_line(tmp_path):
    data = write_series(tmp_path / "sales.csv", n_series=4, length=72)
    out = tmp_path / "run"
    trained = run("train", "forecasting", "--data", data, "--out", out, *SETTINGS)
    assert "test metrics of the best model:" in trained.stdout and "seasonal_naive_mase" in trained.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["data_files"]["data"]["path"] == str(data.resolve())
    assert config["hyperparameters"]["horizon"] == 12                # settled from the monthly file
    evaluated = json.loads(run("evaluate", "forecasting", "--checkpoint", out, "--json").stdout)
    printed = dict(line.split() for line in trained.stdout.split("test metrics of the best model:")[1].splitlines()
                   if line.strip())
    assert {name: f"{value:.4f}" for name, value in evaluated.items()} == printed   # the same test part

    forecast = tmp_path / "forecast.csv"
    said = run("predict", "forecasting", "--checkpoint", out, "--input", data, "--output", forecast).stdout
    assert str(forecast) in said
    lines = forecast.read_text().splitlines()
    assert lines[0] == "unique_id,ds,y_hat" and len(lines) == 1 + 4 * 12
    printed_rows = run("predict", "forecasting", "--checkpoint", out).stdout.splitlines()
    assert printed_rows == lines                                     # without --output: the same CSV on stdout
    as_json = json.loads(run("predict", "forecasting", "--checkpoint", out, "--json").stdout)
    assert as_json["rows"]["unique_id"][:2] == ["s0", "s0"] and np.isfinite(as_json["rows"]["y_hat"]).all()

    data.write_text(data.read_text().replace("s0,", "s9,", 1))
    assert "changed since the run" in user_error("evaluate", "forecasting", "--checkpoint", out)


def test_a_relative_data_path_is_checked_and_found_from_another_folder(tmp_path, monkeypatch):
    """train --data sales.csv (relative): evaluate from another folder reads the same file, and says when it
    changed (the check compared the typed path with the recorded absolute one, and skipped)."""
    (tmp_path / "a").mkdir()
    write_series(tmp_path / "a" / "sales.csv", n_series=2, length=60)
    monkeypatch.chdir(tmp_path / "a")
    run("train", "forecasting", "--data", "sales.csv", "--out", tmp_path / "run", "--set", "hidden_size=8",
        "--set", "epochs=1", "--set", "windows_per_epoch=64")
    monkeypatch.chdir(tmp_path)
    run("evaluate", "forecasting", "--checkpoint", tmp_path / "run", "--json")
    assert run("predict", "forecasting", "--checkpoint", tmp_path / "run").stdout.startswith("unique_id,ds,y_hat")
    data = tmp_path / "a" / "sales.csv"
    data.write_text(data.read_text().replace("s0,", "s9,", 1))
    assert "changed since the run" in user_error("evaluate", "forecasting", "--checkpoint", tmp_path / "run")


def test_mistakes_leave_no_run_folder(tmp_path):
    assert "--data FILE" in user_error("train", "forecasting", "--out", tmp_path / "a")
    bad = tmp_path / "bad.csv"
    bad.write_text("unique_id,ds,y\ns0,2020-01,1\ns0,2020-02,lots\n")
    assert "bad.csv line 3" in user_error("train", "forecasting", "--data", bad, "--out", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert "--data and --test-data are for the tasks" in user_error("train", "airline-passengers", "--data", bad)
    listed = json.loads(run("list", "--json").stdout)
    assert {r["name"] for r in listed if r["task"]} == {"forecasting", "sequence-classification",
                                                        "sequence-regression", "text-classification"}


def test_a_bad_test_file_or_too_few_cases_leave_no_run_folder(tmp_path):
    """A --test-data file is checked, and the data split, before the run folder is made (they were read after:
    a bad test file left the folder with its lock file; too few texts or cases crashed in the first validation)."""
    from test_task_readers import write_sequences
    from test_task_sequences import sequences

    data = write_series(tmp_path / "sales.csv", n_series=2, length=60)
    one = tmp_path / "one.csv"
    one.write_text("".join(line + "\n" for line in data.read_text().splitlines() if not line.startswith("s1,")))
    assert "has no values for series 's1'" in user_error("train", "forecasting", "--data", data, "--test-data", one,
                                                         "--out", tmp_path / "a")
    X, y, lengths = sequences(n=30, seed=1)
    write_sequences(tmp_path / "train.npz", X, lengths, y)
    write_sequences(tmp_path / "test.npz", X[:4], lengths[:4], np.array([9, 9, 9, 9]))
    assert "the label '9'" in user_error("train", "sequence-classification", "--data", tmp_path / "train.npz",
                                         "--test-data", tmp_path / "test.npz", "--out", tmp_path / "b")
    write_sequences(tmp_path / "few.npz", X[:4], lengths[:4], np.array([0, 0, 1, 1]))
    assert "too few cases (4)" in user_error("train", "sequence-classification", "--data", tmp_path / "few.npz",
                                             "--out", tmp_path / "c")
    (tmp_path / "few.csv").write_text("text,label\ngood,pos\nbad,neg\nnice,pos\nsad,neg\n")
    assert "too few texts (4)" in user_error("train", "text-classification", "--data", tmp_path / "few.csv",
                                             "--out", tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_info_names_each_tasks_formats():
    """``lstmzoo info TASK`` (where train's --help and its missing --data point) lists the layouts it reads under
    "data:", which was empty for a task."""
    for task, words in (("forecasting", ["unique_id, ds, y", "one numeric column"]),
                        ("sequence-classification", [".ts", ".npz with X [N, T, C]", "long .csv"]),
                        ("sequence-regression", ["@targetLabel true", "y [N] (numbers)"]),
                        ("text-classification", ["JSON lines", "one sub-folder of .txt files per class"])):
        text = run("info", task).output
        data = text.split("\ndata:\n")[1].split("\n\n")[0]
        assert data.startswith("  your own, given with --data PATH") and all(w in data for w in words), (task, data)
        assert json.loads(run("info", task, "--json").output)["formats"] in data


def test_predict_options_a_task_does_not_take(tmp_path):
    """predict --horizon (shown in predict's --help for time series) with the forecasting task says the run's
    horizon is fixed and how to change it; other options name the task as a task."""
    assert "forecasts the horizon its run was trained for" in user_error(
        "predict", "forecasting", "--checkpoint", tmp_path, "--horizon", 3)
    assert "the sequence-classification task does not take --plot" in user_error(
        "predict", "sequence-classification", "--checkpoint", tmp_path, "--plot", tmp_path / "p.png")
    (tmp_path / "x.csv").write_text("y\n1\n")
    assert user_error("train", "forecasting", "--data", tmp_path / "x.csv", "--set", "horizn=3").startswith(
        "Error: the forecasting task has no hyperparameter 'horizn'; it has ")


def test_predict_takes_unlabelled_input(tmp_path):
    """predict sequence-classification --input of cases without labels (an .npz of X alone, a .ts without
    labels) and text-classification --input of a .txt file of texts: the rows of the labelled file."""
    from test_task_readers import write_sequences
    from test_task_sequences import sequences
    from test_task_text import texts, write_csv

    X, y, lengths = sequences(n=60, seed=1)
    np.savez(tmp_path / "train.npz", X=X, y=y, lengths=lengths)
    run("train", "sequence-classification", "--data", tmp_path / "train.npz", "--out", tmp_path / "seq", "--epochs", 1)
    labelled = run("predict", "sequence-classification", "--checkpoint", tmp_path / "seq", "--input",
                   tmp_path / "train.npz").stdout
    assert labelled.startswith("id,label,p_class 0,p_class 1,p_class 2\n") and len(labelled.splitlines()) == 61
    for path in (write_sequences(tmp_path / "new.npz", X, lengths, None),
                 write_sequences(tmp_path / "new.ts", X[:, :lengths.max()], lengths, None)):
        assert run("predict", "sequence-classification", "--checkpoint", tmp_path / "seq", "--input",
                   path).stdout == labelled

    run("train", "text-classification", "--data", write_csv(tmp_path / "texts.csv", n=60), "--out",
        tmp_path / "text", "--epochs", 1, "--set", "embedding_dim=8", "--set", "hidden_size=8")
    rows, labels = texts(5, seed=2)
    (tmp_path / "new.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "new.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(rows, labels)))
    predicted = run("predict", "text-classification", "--checkpoint", tmp_path / "text", "--input",
                    tmp_path / "new.txt", "--output", tmp_path / "out.csv")
    assert "wrote 5 rows" in predicted.stdout
    assert (tmp_path / "out.csv").read_text().splitlines() == run(
        "predict", "text-classification", "--checkpoint", tmp_path / "text", "--input", tmp_path / "new.csv"
    ).stdout.splitlines()
