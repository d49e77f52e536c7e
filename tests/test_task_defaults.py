"""The sizes the tasks choose when left at 0 (issue #14: the user does not tune): hidden size from the number of
cases, raised for wide inputs or many classes; batch size from the number of cases, bounded for long cases. The
rows measured in zoo/TASK-RESULTS.md keep the sizes they ran with: a change of the rules that moves one of them
must re-measure it (and change this table with it)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lstmzoo.tasks.sequences import (
    BATCH_STEPS,
    SequenceClassificationTask,
    SequenceRegressionTask,
    automatic_batch_size,
    automatic_hidden_size,
)
from lstmzoo.tasks.text import TextClassificationTask

# row -> (task, N the rule sees: the cases in --data, C values per time step, classes, T the longest case,
#         (hidden_size, batch_size) the runs recorded). All rows train with --test-data, so N is the whole --data
# file (the validation part is taken out of it after sizing). spoken-digits: FSDD's longest recording is 18,262
# samples at 8 kHz, 229 frames of 10 ms; rt-polarity: 10,662 sentences less the 1,066 of the zoo's test split,
# at most max_tokens = 400 words each.
MEASURED = {
    "pendigits-npz": ("sequence-classification", 7494, 5, 10, 48, (128, 64)),
    "pendigits-csv": ("sequence-classification", 7494, 5, 10, 48, (128, 64)),
    "spoken-digits": ("sequence-classification", 2700, 39, 10, 229, (64, 64)),
    "mnist-rows": ("sequence-classification", 4000, 28, 10, 28, (64, 64)),
    "rt-polarity-csv": ("text-classification", 9596, None, 2, 400, (128, 32)),
    "rt-polarity-folders": ("text-classification", 9596, None, 2, 400, (128, 32)),
}
RESULTS = Path(__file__).resolve().parents[1] / "zoo" / "TASK-RESULTS.md"


def automatic(task, n, channels, classes, longest):
    if task == "text-classification":
        return automatic_hidden_size(n, classes), automatic_batch_size(n, longest, most=32)
    return automatic_hidden_size(n, max(channels, classes)), automatic_batch_size(n, longest)


@pytest.mark.parametrize("row", sorted(MEASURED))
def test_the_measured_rows_keep_their_sizes(row):
    task, n, channels, classes, longest, sizes = MEASURED[row]
    assert automatic(task, n, channels, classes, longest) == sizes


def test_the_table_is_what_task_results_records():
    """The sizes above are those zoo/TASK-RESULTS.md's machine-readable record holds for every run of the row."""
    text = RESULTS.read_text()
    record = json.loads(text[text.index("[", text.index("<!--")):text.rindex("]") + 1])
    settled = {}
    for entry in record:
        if entry["row"] in MEASURED and not entry.get("settings"):
            settled.setdefault(entry["row"], set()).update(
                (run["settled"]["hidden_size"], run["settled"]["batch_size"]) for run in entry["runs"])
    assert settled == {row: {values[-1]} for row, values in MEASURED.items()}


def test_the_rules():
    # From N alone (narrow inputs, few classes): 32 below 500 cases, 64 below 5,000, else 128.
    assert [automatic_hidden_size(n, 3) for n in (10, 499, 500, 4999, 5000, 10**6)] == [32, 32, 64, 64, 128, 128]
    # Raised to the next power of two at or above the width (channels or classes), that raise at most 256.
    assert [automatic_hidden_size(100, w) for w in (32, 33, 64, 65, 200, 256, 257, 5000)] == \
        [32, 64, 64, 128, 256, 256, 256, 256]
    assert automatic_hidden_size(10**6, 300) == 256 and automatic_hidden_size(10**6, 100) == 128
    # A 20th of N, 8 to 64 (texts: to 32); at most BATCH_STEPS time steps of the longest case, at least 1.
    assert [automatic_batch_size(n, 50) for n in (10, 200, 640, 5000)] == [8, 10, 32, 64]
    assert automatic_batch_size(5000, 50, most=32) == 32
    assert BATCH_STEPS == 65_536 and automatic_batch_size(5000, 1024) == 64
    assert [automatic_batch_size(5000, t) for t in (1025, 4096, 20_000, 10**6)] == [63, 16, 3, 1]


def test_settle_sees_the_whole_data_file(tmp_path):
    """Through settle, with --test-data as the measured rows ran: N is every case of --data (pendigits' shape:
    7,494 cases of 48 steps x 5 values, 10 classes; rt-polarity's: 9,596 texts, 2 classes), and the sizes are
    recorded in the settled hyperparameters (which config.json holds)."""
    rng = np.random.default_rng(0)
    labels = np.array([str(k) for k in np.arange(7494) % 10])
    np.savez(tmp_path / "train.npz", X=rng.standard_normal((7494, 48, 5)).astype(np.float32), y=labels)
    np.savez(tmp_path / "test.npz", X=rng.standard_normal((20, 48, 5)).astype(np.float32), y=labels[:20])
    task = SequenceClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.npz"), "test_data": str(tmp_path / "test.npz")}))
    assert (hp["hidden_size"], hp["batch_size"]) == (128, 64)
    np.savez(tmp_path / "wide.npz", X=rng.standard_normal((300, 20, 100)).astype(np.float32),
             y=rng.standard_normal(300))
    task = SequenceRegressionTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "wide.npz")}))
    assert (hp["hidden_size"], hp["batch_size"]) == (128, 15)          # 100 channels; 300 // 20 cases
    lengths = rng.integers(100, 2049, 1280)
    lengths[0] = 2048
    np.savez(tmp_path / "long.npz", X=rng.standard_normal((1280, 2048, 1)).astype(np.float32),
             y=rng.standard_normal(1280), lengths=lengths)
    hp = task.settle(task.resolve({"data": str(tmp_path / "long.npz")}))
    assert (hp["hidden_size"], hp["batch_size"]) == (64, 32)           # 65,536 steps // 2,048 (a 20th: 64)
    hp = task.settle(task.resolve({"data": str(tmp_path / "wide.npz"), "hidden_size": 16, "batch_size": 4}))
    assert (hp["hidden_size"], hp["batch_size"]) == (16, 4)            # a size given is kept

    words = [f"w{k}" for k in range(50)]
    for name, n in (("train.csv", 9596), ("test.csv", 20)):
        with open(tmp_path / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows((" ".join(rng.choice(words, 12)), ("neg", "pos")[k % 2]) for k in range(n))
    task = TextClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.csv"), "test_data": str(tmp_path / "test.csv")}))
    assert (hp["hidden_size"], hp["batch_size"], hp["output_size"]) == (128, 32, 2)
