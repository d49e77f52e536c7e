"""rt-polarity: the sentence loader on the real files (through the mirror), Kim's tokeniser, the bag-of-words
baseline, and train -> evaluate (and --cv) -> predict through the CLI on a short run of a subset."""

import json

import numpy as np
import pytest
from helpers import SHARED, run
from lstmzoo.zoo.rt_polarity import RtPolarity, tokenize

FILES = [SHARED / "rt-polarity" / name for name in ("rt-polarity.pos", "rt-polarity.neg")]




# ------------------------------------------------------------------------------------------- tokeniser
@pytest.mark.parametrize("text, tokens", [
    ("It's a film that doesn't work.", ["it", "'s", "a", "film", "that", "does", "n't", "work"]),
    ("we've, they're, I'd, you'll!", ["we", "'ve", ",", "they", "'re", ",", "i", "'d", ",", "you", "'ll", "!"]),
    ("(sadly) why?", ["(", "sadly", ")", "why", "?"]),
    ("a  --  b ; c:d", ["a", "b", "c", "d"]),
    ("caf\xe9 \x85 \u2019", ["caf"]),          # non-ASCII is dropped, as in Kim's clean_str
    ("   ", []),
])
def test_tokenize_follows_kims_clean_str(text, tokens):
    assert tokenize(text) == tokens


# ------------------------------------------------------------------------------------------- the data
def test_loader_reads_every_sentence_and_splits_them(mirror):
    recipe = RtPolarity()
    sentences, labels = recipe.load_sentences()
    assert len(sentences) == 10662 and np.bincount(labels).tolist() == [5331, 5331]      # SOURCE.md
    assert all(s for s in sentences)
    assert any("\u2026" in s or "\xe9" in s for s in sentences)        # decoded as Windows-1252
    data = recipe.load_data(recipe.resolve())
    assert (len(data.train), len(data.val), len(data.test)) == (8636, 960, 1066)
    assert 480 < np.bincount(data.test.labels)[1] < 590
    vocab = data.fitted["vocabulary"]       # in the data, not on the recipe: its words in index order
    assert vocab[:2] == ["<pad>", "<unk>"] and 15000 < len(vocab) < 20000 and len(set(vocab)) == len(vocab)
    assert vars(recipe) == {}
    assert all(s.dtype == np.int64 and s.min() >= 1 for s in data.train.sequences)
    # The test split is fixed by the recipe, whatever the training seed or the limit.
    again = recipe.load_data(recipe.resolve({"seed": 5, "limit": 300}))
    assert len(again.train) == 300 and len(again.val) == 960
    assert np.array_equal(again.test.labels, data.test.labels)
    assert [len(s) for s in again.test.sequences] == [len(s) for s in data.test.sequences]


def test_bag_of_words_baseline_on_a_subset(mirror):
    recipe = RtPolarity()
    hp = recipe.resolve({"limit": 2000})
    result = recipe.baseline(recipe.load_data(hp), hp)
    assert set(result) == {"bow_logreg_accuracy"} and 0.6 < result["bow_logreg_accuracy"] < 0.85


# ------------------------------------------------------------------------------------------ the CLI
def test_train_evaluate_cross_validate_predict(mirror, tmp_path):
    out = tmp_path / "run"
    run("train", "rt-polarity", "--epochs", 1, "--out", out, "--set", "limit=300", "--set", "hidden_size=16",
        "--set", "embedding_dim=16")
    assert (out / "confusion-matrix.png").is_file() and not (out / "vocab.json").exists()
    config = json.loads((out / "config.json").read_text())
    vocab = config["fitted"]["vocabulary"]
    assert vocab[:2] == ["<pad>", "<unk>"] and config["hyperparameters"]["vocab_size"] == len(vocab) > 100
    metrics = json.loads(run("evaluate", "rt-polarity", "--checkpoint", out, "--json").stdout)
    assert {"accuracy", "macro_f1", "loss", "errors"} <= set(metrics) and 0 <= metrics["accuracy"] <= 1

    cv = json.loads(run("evaluate", "rt-polarity", "--checkpoint", out, "--cv", 2, "--json").stdout)
    assert cv["cv_folds"] == 2 and set(cv) >= {"cv_accuracy", "fold_1_accuracy", "fold_2_accuracy"}
    assert cv["cv_accuracy"] == pytest.approx((cv["fold_1_accuracy"] + cv["fold_2_accuracy"]) / 2)

    line = run("predict", "rt-polarity", "--checkpoint", out, "--input", "a gorgeous , witty film .").output
    assert line.strip().split()[0] in ("positive", "negative") and "a gorgeous , witty film ." in line
    lines = tmp_path / "lines.txt"
    lines.write_text("a gorgeous , witty film .\n\nthe plot is a tedious mess .\n", encoding="utf-8")
    result = json.loads(run("predict", "rt-polarity", "--checkpoint", out, "--input", lines, "--json").stdout)
    assert [p["text"] for p in result["predictions"]] == ["a gorgeous , witty film .", "the plot is a tedious mess ."]
    assert all(0.5 <= p["probability"] <= 1 and p["label"] in ("positive", "negative")
               for p in result["predictions"])

    for empty in ("", "   "):
        refused = run("predict", "rt-polarity", "--checkpoint", out, "--input", empty, code=2)
        assert len(refused.output.strip().splitlines()) == 1 and "non-empty text" in refused.output

    from lstmzoo.checkpoint import CheckpointError
    # The model is built from the hyperparameters alone (no load_data first); evaluating the run on data encoded
    # with another vocabulary is refused.
    recipe = RtPolarity()
    model, hp = recipe.restore(out)
    other = recipe.load_data({**hp, "limit": 200})
    with pytest.raises(CheckpointError, match="vocabulary rebuilt from the training sentences is not the one"):
        recipe.evaluate(model, other, hp, out_dir=out)
    assert recipe.evaluate(model, other, hp)["accuracy"] >= 0


def test_a_short_run_learns(mirror, tmp_path):
    """Three epochs of a small model on all the training sentences: measured 78.9 / 79.2 / 79.3 % (seeds 0-2) on
    the 1,066 test sentences, where always answering the majority class scores about 50 %."""
    out = tmp_path / "run"
    run("train", "rt-polarity", "--out", out, "--seed", 0, "--epochs", 3, "--set", "hidden_size=32",
        "--set", "embedding_dim=32")
    metrics = json.loads(run("evaluate", "rt-polarity", "--checkpoint", out, "--json").stdout)
    labels = RtPolarity().load_data(RtPolarity.resolve()).test.labels
    majority = max(labels.mean(), 1 - labels.mean())
    assert majority < 0.55 and metrics["accuracy"] > majority + 0.15, (metrics, majority)


def test_cv_is_refused_by_a_recipe_without_it(tmp_path):
    out = tmp_path / "run"
    run("train", "airline-passengers", "--epochs", 1, "--out", out, "--set", "hidden_size=4")
    refused = run("evaluate", "airline-passengers", "--checkpoint", out, "--cv", 3, code=2)
    assert refused.output.strip().splitlines()[-1] == "Error: recipe airline-passengers does not support --cv"
