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
