"""Bad data through the command line (issue #14): `lstmzoo train TASK --data ... [--test-data ...] --out RUN` on a
tiny bad file ends with one sentence on stderr, exit status 2, no traceback and nothing in RUN (which is not made,
or stays empty when it was there before). Each case names what the issue asks the sentence to name: the formats
read, the columns found, the file, line and column of a value that is not a number, where a missing value is,
the label the training data never has, ... One NaN file is accepted with --set missing=... and trains."""

import json
import re

import numpy as np
import pytest
from helpers import run

# ------------------------------------------------------------------------------------------- tiny good files
SERIES_LENGTH = 60      # monthly: horizon 12, season 12; a series needs 2 * 12 + 12 + 1 = 37 values


def series_rows(n_series=2, length=SERIES_LENGTH):
    """Rows ``[id, ds, y]`` of monthly series, as text; data row k of the file is on line k + 2."""
    months = np.datetime64("2015-01") + np.arange(length)
    return [[f"s{k}", str(month), f"{10 * (k + 1) + np.sin(2 * np.pi * t / 12):.3f}"]
            for k in range(n_series) for t, month in enumerate(months)]


def write_rows(path, header, rows):
    path.write_text("".join(",".join(map(str, fields)) + "\n" for fields in [header, *rows]))
    return path


def write_series(path, rows=None, header=("unique_id", "ds", "y")):
    return write_rows(path, header, series_rows() if rows is None else rows)


N_CASES = 30


def cases(labels=None):
    """30 cases of 2 channels, lengths 5 to 8, labels a, b, c in turn: (X [N, 8, 2], lengths, labels)."""
    lengths = 5 + np.arange(N_CASES) % 4
    X = np.zeros((N_CASES, 8, 2))
    for i, length in enumerate(lengths):
        t = np.arange(length)
        X[i, :length, 0] = np.round(np.sin((1 + i % 3) * t / 3), 3)
        X[i, :length, 1] = np.round((i + t) % 5 / 5, 3)
    return X, lengths, np.array(["abc"[i % 3] for i in range(N_CASES)] if labels is None else labels)


def write_npz(path, X=None, lengths=None, y=None, **arrays):
    X0, lengths0, y0 = cases()
    arrays = {"X": X0 if X is None else X, "lengths": lengths0 if lengths is None else lengths,
              "y": y0 if y is None else y, **arrays}
    np.savez(path, **{name: value for name, value in arrays.items() if value is not False})
    return path


def sequence_rows(y=None):
    """Rows ``[id, f0, f1, label]`` of the long CSV (as text; data row k on line k + 2)."""
    X, lengths, labels = cases(y)
    return [[f"case{i}", *map(repr, X[i, t].tolist()), labels[i]]
            for i in range(N_CASES) for t in range(lengths[i])]


def write_long_csv(path, rows=None, header=("id", "f0", "f1", "label")):
    return write_rows(path, header, sequence_rows() if rows is None else rows)


TS_HEADER_LINES = 6      # the first case is on line 7


def ts_lines(y=None):
    X, lengths, labels = cases(y)
    return [":".join([",".join(map(repr, X[i, :lengths[i], c].tolist())) for c in range(2)] + [labels[i]])
            for i in range(N_CASES)]


def write_ts(path, lines=None, classes="a b c"):
    path.write_text(f"@problemName tiny\n@univariate false\n@dimensions 2\n@equalLength false\n"
                    f"@classLabel true {classes}\n@data\n" + "\n".join(ts_lines() if lines is None else lines) + "\n")
    return path


def ts_value(lines, case, dimension, value, text):
    """``lines`` with value ``value`` of ``dimension`` of ``case`` (all 0-based) replaced by ``text``."""
    parts = lines[case].split(":")
    values = parts[dimension].split(",")
    values[value] = text
    parts[dimension] = ",".join(values)
    return [*lines[:case], ":".join(parts), *lines[case + 1:]]


def text_rows(n=40, labels=("pos", "neg")):
    return [[f"{'good nice' if labels[i % len(labels)] == 'pos' else 'bad sad'} words number {i}",
             labels[i % len(labels)]] for i in range(n)]


def write_texts(path, rows=None, header=("text", "label")):
    return write_rows(path, header, text_rows() if rows is None else rows)


def write_text_folder(path, classes=("pos", "neg"), n=12):
    for label in classes:
        (path / label).mkdir(parents=True)
        for i in range(n):
            (path / label / f"{i}.txt").write_text(f"{label} words of text number {i}\n")
    return path


def replaced(rows, index, column, value):
    rows = [list(row) for row in rows]
    rows[index][column] = value
    return rows


# ------------------------------------------------------------------------------------------------ the cases
# Each case: (task, a function of the folder that writes the files and returns (arguments, words the sentence
# must hold)). Paths in the words are file names: the sentence names the file.
def forecasting_missing_file(d):
    return ["--data", d / "nothere.csv"], ["nothere.csv does not exist", "--data"]


def forecasting_missing_test_file(d):
    return ["--data", write_series(d / "sales.csv"), "--test-data", d / "nothere.csv"], \
        ["nothere.csv does not exist", "--test-data"]


def forecasting_unknown_format(d):
    (d / "sales.xlsx").write_bytes(b"PK\x03\x04 not a CSV")
    return ["--data", d / "sales.xlsx"], ["sales.xlsx is not a forecasting file", ".csv", ".tsv"]


def forecasting_missing_columns(d):
    return ["--data", write_series(d / "sales.csv", header=("series", "date", "value"))], \
        ["sales.csv has no column 'unique_id'", "found 'series', 'date', 'value'", "id_column="]


def forecasting_non_numeric(d):
    rows = replaced(series_rows(), 1, 2, "lots")
    return ["--data", write_series(d / "sales.csv", rows)], ["sales.csv line 3, column 'y'", "'lots' is not a number"]


def forecasting_nan(d):
    rows = replaced(series_rows(), SERIES_LENGTH + 4, 2, "NaN")     # series s1's fifth value
    return ["--data", write_series(d / "sales.csv", rows)], \
        [f"sales.csv line {SERIES_LENGTH + 6}, column 'y' is missing", "missing=", "interpolate"]


def forecasting_question_mark(d):
    rows = replaced(series_rows(), 7, 2, "?")
    return ["--data", write_series(d / "sales.csv", rows)], ["sales.csv line 9, column 'y' is missing", "missing="]


def forecasting_nan_in_test_data(d):
    train = write_series(d / "sales.csv", [row for row in series_rows() if row[1] < "2019-01"])
    rows = replaced([row for row in series_rows() if row[1] >= "2019-01"], 2, 2, "NaN")
    return ["--data", train, "--test-data", write_series(d / "next.csv", rows)], \
        ["next.csv line 4, column 'y' is missing"]


def forecasting_short_series(d):
    rows = [row for row in series_rows() if row[0] == "s0" or row[1] < "2016-09"]    # s1: 20 months
    return ["--data", write_series(d / "sales.csv", rows)], \
        ["sales.csv: series 's1' has 20 values", "forecasting 12 steps needs at least 37", "horizon="]


def sequences_missing_file(d):
    return ["--data", d / "nothere.npz"], ["nothere.npz does not exist", "--data"]


def sequences_unknown_format(d):
    (d / "train.h5").write_bytes(b"\x89HDF\r\n")
    return ["--data", d / "train.h5"], ["train.h5 is not a sequence file", ".ts", ".npz", ".csv"]


def npz_missing_arrays(d):
    _, _, y = cases()
    return ["--data", write_npz(d / "train.npz", y=False, labels=y)], ["train.npz needs arrays X and y",
                                                                        "found X, lengths, labels"]


def npz_non_numeric(d):
    X, _, _ = cases()
    return ["--data", write_npz(d / "train.npz", X=X.astype(str))], ["train.npz: X must be numbers", "<U"]


def npz_nan(d):
    X, _, _ = cases()
    X[3, 2, 1] = np.nan
    return ["--data", write_npz(d / "train.npz", X=X)], ["train.npz X[3, 2, 1] is missing", "missing="]


def npz_single_class(d):
    return ["--data", write_npz(d / "train.npz", y=np.array(["a"] * N_CASES))], \
        ["train.npz has a single class ('a')", "at least two"]


def npz_empty_sequence(d):
    _, lengths, _ = cases()
    lengths[4] = 0
    return ["--data", write_npz(d / "train.npz", lengths=lengths)], \
        ["train.npz: case 4 has length 0", "may not be empty"]


def npz_unseen_label(d):
    _, _, y = cases()
    y[5] = "z"
    return ["--data", write_npz(d / "train.npz"), "--test-data", write_npz(d / "test.npz", y=y)], \
        ["test.npz has the label 'z'", "train.npz never have"]


def csv_missing_columns(d):
    return ["--data", write_long_csv(d / "train.csv", header=("case", "f0", "f1", "label"))], \
        ["train.csv has no column 'id'", "found 'case', 'f0', 'f1', 'label'", "id_column="]


def csv_non_numeric(d):
    return ["--data", write_long_csv(d / "train.csv", replaced(sequence_rows(), 10, 2, "high"))], \
        ["train.csv line 12, column 'f1'", "'high' is not a number"]


def csv_nan(d):
    return ["--data", write_long_csv(d / "train.csv", replaced(sequence_rows(), 6, 1, ""))], \
        ["train.csv line 8, column 'f0' is missing", "missing="]


def csv_question_mark(d):
    return ["--data", write_long_csv(d / "train.csv", replaced(sequence_rows(), 20, 2, "?"))], \
        ["train.csv line 22, column 'f1' is missing", "missing="]


def csv_single_class(d):
    return ["--data", write_long_csv(d / "train.csv", sequence_rows(["b"] * N_CASES))], \
        ["train.csv has a single class ('b')"]


def csv_unseen_label(d):
    _, _, y = cases()
    y[0] = "z"
    return ["--data", write_long_csv(d / "train.csv"), "--test-data", write_long_csv(d / "test.csv",
                                                                                     sequence_rows(y))], \
        ["test.csv has the label 'z'", "train.csv never have"]


def ts_non_numeric(d):
    lines = ts_value(ts_lines(), case=2, dimension=0, value=1, text="x")
    return ["--data", write_ts(d / "train.ts", lines)], \
        [f"train.ts line {TS_HEADER_LINES + 3}, dimension 1, value 2", "'x' is not a number"]


def ts_question_mark(d):
    lines = ts_value(ts_lines(), case=4, dimension=1, value=2, text="?")
    return ["--data", write_ts(d / "train.ts", lines)], \
        [f"train.ts line {TS_HEADER_LINES + 5}, dimension 2, value 3 is missing", "missing="]


def ts_single_class(d):
    return ["--data", write_ts(d / "train.ts", ts_lines(["c"] * N_CASES), classes="c")], \
        ["train.ts has a single class ('c')"]


def ts_empty_sequence(d):
    lines = ts_lines()
    lines[1] = "::" + lines[1].split(":")[-1]      # case 2: no values in either dimension, then its label
    return ["--data", write_ts(d / "train.ts", lines)], \
        [f"train.ts line {TS_HEADER_LINES + 2}: dimension 1 is empty", "at least one value"]


def ts_unseen_label(d):
    _, _, y = cases()
    y[7] = "z"
    return ["--data", write_ts(d / "train.ts"), "--test-data", write_ts(d / "test.ts", ts_lines(y), "a b c z")], \
        ["test.ts has the label 'z'", "train.ts never have"]


def regression_constant_target(d):
    return ["--data", write_npz(d / "train.npz", y=np.full(N_CASES, 2.5))], \
        ["train.npz has the same target (2.5) for every case"]


def text_missing_file(d):
    return ["--data", d / "nothere.csv"], ["nothere.csv does not exist", "--data"]


def text_unknown_format(d):
    (d / "reviews.xlsx").write_bytes(b"PK\x03\x04")
    return ["--data", d / "reviews.xlsx"], \
        ["reviews.xlsx is not a text file", ".csv", ".tsv", ".jsonl", "sub-folder of .txt files per class"]


def text_missing_columns(d):
    return ["--data", write_texts(d / "reviews.csv", header=("review", "sentiment"))], \
        ["reviews.csv has no column 'text'", "found 'review', 'sentiment'", "text_column="]


def text_single_class(d):
    return ["--data", write_texts(d / "reviews.csv", text_rows(labels=("pos",)))], \
        ["reviews.csv has a single class ('pos')"]


def text_unseen_label(d):
    return ["--data", write_texts(d / "reviews.csv"), "--test-data",
            write_texts(d / "test.csv", text_rows(6, labels=("pos", "neg", "neutral")))], \
        ["test.csv has the label 'neutral'", "reviews.csv never have"]


def folder_missing(d):
    return ["--data", write_text_folder(d / "reviews"), "--test-data", d / "nothere"], \
        ["nothere does not exist", "--test-data"]


def folder_single_class(d):
    return ["--data", write_text_folder(d / "reviews", classes=("pos",))], ["reviews has a single class ('pos')"]


def folder_without_classes(d):
    (d / "reviews").mkdir()
    (d / "reviews" / "loose.txt").write_text("a text outside any class folder\n")
    return ["--data", d / "reviews"], ["reviews holds no class sub-folders with .txt files", "CLASS/*.txt"]


def folder_unseen_label(d):
    return ["--data", write_text_folder(d / "reviews"), "--test-data",
            write_text_folder(d / "test", classes=("pos", "neutral"), n=2)], \
        ["test has the label 'neutral'", "reviews never have"]


CASES = {
    "forecasting": [forecasting_missing_file, forecasting_missing_test_file, forecasting_unknown_format,
                    forecasting_missing_columns, forecasting_non_numeric, forecasting_nan, forecasting_question_mark,
                    forecasting_nan_in_test_data, forecasting_short_series],
    "sequence-classification": [sequences_missing_file, sequences_unknown_format, npz_missing_arrays,
                                npz_non_numeric, npz_nan, npz_single_class, npz_empty_sequence, npz_unseen_label,
                                csv_missing_columns, csv_non_numeric, csv_nan, csv_question_mark, csv_single_class,
                                csv_unseen_label, ts_non_numeric, ts_question_mark, ts_single_class,
                                ts_empty_sequence, ts_unseen_label],
    "sequence-regression": [regression_constant_target],
    "text-classification": [text_missing_file, text_unknown_format, text_missing_columns, text_single_class,
                            text_unseen_label, folder_missing, folder_single_class, folder_without_classes,
                            folder_unseen_label],
}
PARAMETERS = [pytest.param(task, case, id=case.__name__) for task, listed in CASES.items() for case in listed]


def one_sentence(result):
    """The error line of a refused command: exit status 2, one line on stderr starting as the CLI's user errors
    do, nothing on stdout, no traceback or usage block."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output and "Usage:" not in result.output, result.output
    assert not re.search(r"\.\s+[A-Z]", lines[0]), lines[0]     # no second sentence
    return lines[0]


@pytest.mark.parametrize("out_exists", [False, True], ids=["new-out", "empty-out"])
@pytest.mark.parametrize("task, case", PARAMETERS)
def test_bad_data_is_one_sentence_and_leaves_no_run_folder(tmp_path, task, case, out_exists):
    data = tmp_path / "data"
    data.mkdir()
    arguments, words = case(data)
    out = tmp_path / "run"
    if out_exists:
        out.mkdir()
    result = run("train", task, *arguments, "--out", out, code=2)
    said = one_sentence(result)
    missing = [word for word in words if word not in said]
    assert not missing, (missing, said)
    if out_exists:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists()


def test_evaluate_data_that_does_not_exist_is_one_sentence(tmp_path):
    """evaluate --data names a file that is not there: one sentence (click's usage block before), before the
    checkpoint is looked at."""
    said = one_sentence(run("evaluate", "forecasting", "--checkpoint", tmp_path, "--data", tmp_path / "gone.csv",
                            code=2))
    assert "gone.csv does not exist (given with --data)" in said


def test_missing_values_are_filled_when_missing_says_how(tmp_path):
    """The NaN file refused above trains with --set missing=interpolate (one tiny epoch), and its run records
    how missing values were filled."""
    rows = replaced(series_rows(), SERIES_LENGTH + 4, 2, "NaN")
    rows = replaced(rows, 7, 2, "?")
    data = write_series(tmp_path / "sales.csv", rows)
    out = tmp_path / "run"
    trained = run("train", "forecasting", "--data", data, "--out", out, "--set", "missing=interpolate",
                  "--set", "epochs=1", "--set", "windows_per_epoch=64", "--set", "hidden_size=8")
    assert "test metrics of the best model:" in trained.stdout
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["missing"] == "interpolate"
