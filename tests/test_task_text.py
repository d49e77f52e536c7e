"""The text-classification task on small files the tests write: CSV, JSON lines and a folder per class; the
vocabulary in config.json is all predict needs; the user's mistakes."""

import csv
import json

import numpy as np
import pytest

from lstmzoo.errors import UserError
from lstmzoo.tasks.text import TextClassificationTask, build_vocabulary, encode, tokenize

QUICK = {"epochs": 15, "embedding_dim": 16, "hidden_size": 16, "patience": 0, "lr": 0.005}
CUES = {"praise": ["wonderful", "superb", "moving", "delightful"], "complaint": ["dull", "awful", "tedious", "flat"],
        "question": ["why", "how", "when", "where"]}


def texts(n=240, seed=0):
    """Texts of filler words with one cue word of their class somewhere (a word order the model must search)."""
    rng = np.random.default_rng(seed)
    filler = [f"w{k}" for k in range(40)]
    labels = rng.choice(list(CUES), n)
    out = []
    for label in labels:
        words = list(rng.choice(filler, rng.integers(4, 15)))
        words.insert(rng.integers(0, len(words) + 1), rng.choice(CUES[label]))
        out.append(" ".join(words) + ".")
    return out, labels


def write_csv(path, n=240, seed=0):
    rows, labels = texts(n, seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(rows, labels))
    return path


def test_tokens_vocabulary_and_encoding():
    assert tokenize("Isn't it GREAT, Zoë?") == ["isn", "'", "t", "it", "great", ",", "zoë", "?"]
    vocabulary = build_vocabulary([["a", "b", "a"], ["c", "a", "b"]], min_count=2, max_size=10)
    assert vocabulary == ["<pad>", "<unk>", "a", "b"]
    assert [t.tolist() for t in encode([["b", "zzz"], []], vocabulary, max_tokens=5)] == [[3, 1], [1]]


def test_learns_from_a_csv_and_predicts_from_the_run_folder(tmp_path):
    task = TextClassificationTask()
    hp = task.settle(task.resolve({"data": str(write_csv(tmp_path / "train.csv")), **QUICK}))
    assert hp["output_size"] == 3 and hp["vocab_size"] == 2 + 40 + 12 + 1      # words, cues and "."
    trained = task.train(hp, tmp_path / "run", progress=False)
    metrics = task.evaluate(trained.model, trained.data, hp, out_dir=tmp_path / "run")
    # Measured: accuracy 1.0 against the majority class 0.40 (seed 0).
    assert metrics["accuracy"] > metrics["majority_accuracy"] + 0.4 and metrics["macro_f1"] > 0.8
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fitted"]["classes"] == ["complaint", "praise", "question"]
    (tmp_path / "train.csv").unlink()                    # predict needs only the run folder
    result = task.predict(trained.model, hp, tmp_path / "run", input="w1 w2 superb w3")
    assert result["rows"]["label"] == ["praise"]


def test_reads_json_lines_and_class_folders(tmp_path):
    rows, labels = texts(60, seed=1)
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps({"body": t, "kind": lab}) + "\n"
                                                  for t, lab in zip(rows, labels)))
    task = TextClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "texts.jsonl"), "text_column": "body",
                                   "label_column": "kind"}))
    assert hp["output_size"] == 3
    for k, (text, label) in enumerate(zip(rows, labels)):
        (tmp_path / "folders" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folders" / label / f"{k}.txt").write_text(text)
    data = task.load_data({**hp, "data": str(tmp_path / "folders")})
    assert len(data.train) + len(data.val) + len(data.test) == 60


def test_user_mistakes_are_one_sentence(tmp_path):
    task = TextClassificationTask()
    with pytest.raises(UserError, match="--data"):
        task.settle(task.resolve())
    write_csv(tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text("text,label\nsomething new,surprise\nw1 superb,praise\n")
    with pytest.raises(UserError, match="label 'surprise', which the training texts"):
        task.settle(task.resolve({"data": str(tmp_path / "train.csv"), "test_data": str(tmp_path / "test.csv")}))


def test_predict_reads_texts_without_labels(tmp_path):
    """Texts to predict need no labels: a CSV/TSV of the text column alone, JSON lines without the label, a .txt
    file of one text per line, a folder of .txt files; each gives the rows the labelled file gives."""
    task = TextClassificationTask()
    hp = task.settle(task.resolve({"data": str(write_csv(tmp_path / "train.csv")), **QUICK, "epochs": 2}))
    trained = task.train(hp, tmp_path / "run", progress=False)
    rows, labels = texts(12, seed=3)
    write = {
        "labelled.csv": lambda path: path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in
                                                                            zip(rows, labels))),
        "only.csv": lambda path: path.write_text("text\n" + "".join(f"{t}\n" for t in rows)),
        "only.tsv": lambda path: path.write_text("id\ttext\n" + "".join(f"{k}\t{t}\n" for k, t in enumerate(rows))),
        "only.jsonl": lambda path: path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows)),
        "lines.txt": lambda path: path.write_text("\n".join(rows) + "\n"),
        "folder": lambda path: [(path / f"{k:02d}.txt").write_text(t) for k, t in enumerate(rows)
                                if path.mkdir(exist_ok=True) is None],
    }
    results = {}
    for name, writer in write.items():
        writer(tmp_path / name)
        results[name] = task.predict(trained.model, hp, tmp_path / "run", input=str(tmp_path / name))["text"]
    assert results["labelled.csv"].startswith("id,label,p_complaint,p_praise,p_question\n")
    assert len(results["labelled.csv"].splitlines()) == 13
    assert all(text == results["labelled.csv"] for text in results.values()), results
    with pytest.raises(UserError, match="needs the field 'text'"):
        (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
        task.predict(trained.model, hp, tmp_path / "run", input=str(tmp_path / "bad.jsonl"))


def write_folders(folder, n=60, seed=0):
    """The texts of ``texts(n, seed)`` as a folder with a sub-folder of .txt files per class."""
    rows, labels = texts(n, seed)
    for k, (text, label) in enumerate(zip(rows, labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{k:03d}.txt").write_text(text)
    return folder


def test_imbalanced_classes_get_weights(tmp_path):
    """Class weights inversely proportional to the training part's class counts when the largest class is more
    than 1.5 times the smallest (as sequence classification); none for balanced classes; the batches carry them."""
    rows, _ = texts(120, seed=4)
    labels = ["common"] * 90 + ["rare"] * 30
    with open(tmp_path / "imbalanced.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *zip(rows, labels)])
    task = TextClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "imbalanced.csv"), **QUICK}))
    data = task.load_data(hp)
    counts = np.bincount(data.train.y)
    assert counts[0] > 2.5 * counts[1]                  # stratified: about 3 to 1 in the training part too
    np.testing.assert_allclose(data.fitted["class_weight"], len(data.train) / (2 * counts))
    np.testing.assert_allclose(data.fitted["class_weight"], [72 / (2 * 54), 72 / (2 * 18)], rtol=0.05)
    weight = task.make_batches(data, hp, np.random.default_rng(0))[0][3]
    np.testing.assert_allclose(weight, data.fitted["class_weight"], rtol=1e-6)
    balanced = task.settle(task.resolve({"data": str(write_csv(tmp_path / "balanced.csv", n=120)), **QUICK}))
    assert task.load_data(balanced).fitted["class_weight"] is None


def test_data_and_test_data_in_different_layouts(tmp_path):
    """--data a CSV and --test-data a folder per class, and the reverse: the test part is the other file's texts,
    with the classes matched by name."""
    write_csv(tmp_path / "train.csv", n=120, seed=0)
    write_folders(tmp_path / "train", n=120, seed=0)
    write_csv(tmp_path / "test.csv", n=30, seed=5)
    write_folders(tmp_path / "test", n=30, seed=5)
    _, expected = texts(30, seed=5)
    task = TextClassificationTask()
    for data, test in (("train.csv", "test"), ("train", "test.csv")):
        hp = task.settle(task.resolve({"data": str(tmp_path / data), "test_data": str(tmp_path / test), **QUICK}))
        loaded = task.load_data(hp)
        assert len(loaded.train) + len(loaded.val) == 120 and len(loaded.test) == 30
        assert sorted(np.asarray(loaded.fitted["classes"])[loaded.test.y]) == sorted(expected), (data, test)
        assert loaded.fitted["classes"] == ["complaint", "praise", "question"]


def cli_error(*args):
    """The one line (``Error: ...``, exit 2, no traceback) the command line says for a user's mistake."""
    from helpers import run
    result = run(*args, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_cli_trains_across_layouts_and_predict_refuses_a_missing_file(tmp_path):
    """train --data a folder per class --test-data a CSV, evaluate; then predict --input naming a file that does
    not exist (a reader's suffix, or one word with a path separator) is one sentence with exit 2 instead of
    classifying the path as a text, while a text (also one with a slash in it) is still classified."""
    from helpers import run
    write_folders(tmp_path / "train", n=60, seed=0)
    write_csv(tmp_path / "test.csv", n=15, seed=5)
    out = tmp_path / "run"
    run("train", "text-classification", "--data", tmp_path / "train", "--test-data", tmp_path / "test.csv",
        "--out", out, "--epochs", 1, "--set", "embedding_dim=8", "--set", "hidden_size=8")
    config = json.loads((out / "config.json").read_text())["hyperparameters"]
    assert (config["hidden_size"], config["batch_size"]) == (8, 8)      # given; automatic: 60 // 20 -> 8
    assert set(json.loads(run("evaluate", "text-classification", "--checkpoint", out, "--json").stdout)) >= {
        "accuracy", "macro_f1"}
    predict = ("predict", "text-classification", "--checkpoint", out, "--input")
    for missing in ("missing.csv", "missing.TSV", "missing.jsonl", "missing.json", "missing.txt",
                    str(tmp_path / "missing.csv"), str(tmp_path / "absent"), "data/new"):
        assert cli_error(*predict, missing) == f"Error: {missing} does not exist (given with --input)"
    for text in ("w1 superb w2", "rated 5/10, w3 dull", "superb"):
        rows = run(*predict, text).stdout.splitlines()
        assert rows[0].startswith("id,label,p_complaint") and len(rows) == 2, rows
    (tmp_path / "test.csv").unlink()                     # predict without --input reads the test file: gone
    assert "test.csv, which the run in" in cli_error("predict", "text-classification", "--checkpoint", out)
