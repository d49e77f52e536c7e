"""multi30k-en-de: tokenising, the splits on the real files (through the mirror), the vocabularies (carried by
the data and the run's config.json, none kept on the recipe; runs trained before kept them in vocab.json), BLEU,
and train -> evaluate -> predict through the CLI on a short run of a subset."""

import json
import shutil
import sys

import numpy as np
import pytest
from helpers import run
from lstmzoo.zoo.multi30k import (
    EOS,
    SPECIALS,
    TOKENIZER,
    Multi30kEnDe,
    Pairs,
    TranslationData,
    bleu_scores,
    build_vocab,
    detokenize,
    sizes,
    tfidf_nearest,
    tokenize,
)

from lstmzoo.errors import UserError

# A short run that learns: 3,000 training pairs, 3 epochs, scored on the first 100 test sentences. Measured (with
# scaled attention, 2026-12-03): a teacher-forced test loss of 4.21 nats per word (seed 0) and 4.36 (seed 1) where
# the training text's word frequencies (add-one) score 4.93, and BLEU 0.64 and 0.43 where copying the English source
# scores 0.33 (unscaled, before: 4.39 and BLEU 0.90 for seed 1). BLEU this low is mostly noise (the best epoch is
# picked by it on 100 validation sentences); the loss below the word frequencies is what shows that it learned.
SHORT = ("--set", "limit=3000", "--set", "eval_limit=100", "--set", "embedding_dim=64", "--set", "encoder_hidden=64",
         "--set", "decoder_hidden=128", "--set", "beam_width=2", "--set", "dropout=0.1", "--set", "lr=0.005")


# ------------------------------------------------------------------------------------------- tokeniser
@pytest.mark.parametrize("text, tokens", [
    ("A man, in a T-shirt, rides a bike.", ["A", "man", ",", "in", "a", "T-shirt", ",", "rides", "a", "bike", "."]),
    ("Zwei Männer (mit 3.5 Hüten) sagen \"Hallo!\"", ["Zwei", "Männer", "(", "mit", "3.5", "Hüten", ")", "sagen",
                                                     '"', "Hallo", "!", '"']),
    ("  ", []),
])
def test_tokenize_and_detokenize_round_trip(text, tokens):
    assert tokenize(text) == tokens
    assert detokenize(tokens) == " ".join(text.split())


def test_tokenize_lowercases_on_request():
    assert tokenize("Ein Mann.", lowercase=True) == ["ein", "mann", "."]


def test_build_vocab_puts_specials_first_and_drops_rare_words():
    vocab = build_vocab([["b", "a", "b"], ["c", "a", "b"]], min_count=2)
    assert vocab == [*SPECIALS, "b", "a"]


def test_bleu_is_lowercased_for_the_literature_and_cased_by_default():
    scores = bleu_scores(["Ein Mann fährt ein Fahrrad auf der Straße."],
                         ["ein Mann fährt ein Fahrrad auf der straße."])
    assert scores["bleu"] == pytest.approx(100.0) and 0 < scores["bleu_cased"] < 70


def test_a_missing_sacrebleu_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(UserError, match=r'pip install "lstmzoo\[translation\]"'):
        bleu_scores(["a"], ["a"])


# ------------------------------------------------------------------------------------------- the data
def test_splits_have_the_published_sizes_and_the_vocabularies(mirror):
    recipe = Multi30kEnDe()
    for split, size in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)):      # SOURCE.md
        en, de = recipe.read_split(split)
        assert len(en) == len(de) == size and all(en) and all(de)
    hp = recipe.resolve({"limit": 2000})
    data = recipe.load_data(hp)
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 1014, 1000)
    vocab = data.fitted["vocabulary"]
    assert vocab["src"][:4] == vocab["tgt"][:4] == list(SPECIALS) and not vocab["lowercase"]
    assert "Mann" in vocab["tgt"] and "man" in vocab["src"]
    assert data.test.tgt_text[0] == recipe.read_split("test_2016_flickr")[1][0]
    index = {w: i for i, w in enumerate(vocab["tgt"])}
    assert [vocab["tgt"][i] for i in data.train.tgt[0]] == [w if w in index else "<unk>"
                                                            for w in tokenize(data.train.tgt_text[0])]


# ------------------------------------------------------------------------------------------ the CLI
def test_train_evaluate_predict(mirror, tmp_path):
    out = tmp_path / "run"
    run("train", "multi30k-en-de", "--seed", 0, "--epochs", 3, "--out", out, *SHORT)
    saved = json.loads((out / "config.json").read_text())["fitted"]["vocabulary"]
    recipe = Multi30kEnDe()
    _, hp = recipe.restore(out)
    assert (hp["src_vocab_size"], hp["tgt_vocab_size"]) == (len(saved["src"]), len(saved["tgt"]))
    assert recipe.recorded_vocabulary(out) == saved and len(saved["src"]) > 10 and not (out / "vocab.json").exists()
    assert (out / "test_2016_flickr.hyp.de").read_text(encoding="utf-8").count("\n") == 100

    evaluated = run("evaluate", "multi30k-en-de", "--checkpoint", out, "--json")
    assert "translating 100 test sentences (beam width 2)..." in evaluated.stderr.splitlines()
    metrics = json.loads(evaluated.stdout)
    assert {"bleu", "bleu_cased", "greedy_bleu", "test_loss"} <= set(metrics) and metrics["sentences"] == 100
    # It learned: its words are likelier than the training text's word frequencies make them, and its
    # translations score above the English sentences copied unchanged.
    data = recipe.load_data(recipe.resolve({"limit": 3000, "eval_limit": 100}))
    counts = np.bincount(np.concatenate([np.append(t, EOS) for t in data.train.tgt]), minlength=len(saved["tgt"]))
    frequencies = (counts + 1) / (counts + 1).sum()
    unigram = float(-np.log(frequencies[np.concatenate([np.append(t, EOS) for t in data.test.tgt])]).mean())
    copied = bleu_scores(list(data.test.src_text), data.test.tgt_text)["bleu"]
    assert metrics["test_loss"] < unigram - 0.3 and metrics["bleu"] > copied, (metrics, unigram, copied)

    result = json.loads(run("predict", "multi30k-en-de", "--checkpoint", out, "--input", "A man rides a bike.",
                            "--json").stdout)
    assert [t["source"] for t in result["translations"]] == ["A man rides a bike."]
    assert isinstance(result["translations"][0]["translation"], str)
    lines = tmp_path / "lines.txt"
    lines.write_text("A dog runs.\n\nTwo children play in the park.\n", encoding="utf-8")
    result = json.loads(run("predict", "multi30k-en-de", "--checkpoint", out, "--input", lines, "--json").stdout)
    assert [t["source"] for t in result["translations"]] == ["A dog runs.", "Two children play in the park."]
    printed = run("predict", "multi30k-en-de", "--checkpoint", out, "--input", lines).output
    assert printed == "".join(t["translation"] + "\n" for t in result["translations"])

    for empty in ("", "   "):
        refused = run("predict", "multi30k-en-de", "--checkpoint", out, "--input", empty, code=2)
        assert len(refused.output.strip().splitlines()) == 1 and "non-empty English sentence" in refused.output
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert "cannot be read as UTF-8" in run("predict", "multi30k-en-de", "--checkpoint", out, "--input", binary,
                                            code=2).output

    # A run trained before the vocabulary travelled in the data (vocab.json, no sizes in config.json) is read.
    older = _as_older_run(out, tmp_path / "older")
    assert json.loads(run("evaluate", "multi30k-en-de", "--checkpoint", older, "--json").stdout) == metrics
    assert run("predict", "multi30k-en-de", "--checkpoint", older, "--input", lines).output == printed
    (older / "vocab.json").unlink()
    assert "vocab.json" in run("evaluate", "multi30k-en-de", "--checkpoint", older, code=2).output


def _as_older_run(run_dir, older):
    """A copy of the run in ``run_dir`` laid out as lstmzoo wrote runs before the vocabulary travelled in the data:
    config.json without ``fitted`` and the vocabulary sizes, the vocabulary in vocab.json beside it."""
    from lstmzoo.checkpoint import CONFIG, read_config, write_checked_json, write_json
    shutil.copytree(run_dir, older)
    config = read_config(older)
    vocabulary = config.pop("fitted")["vocabulary"]
    for name in ("src_vocab_size", "tgt_vocab_size"):
        del config["hyperparameters"][name]
    write_checked_json(older / CONFIG, config)
    write_json(older / "vocab.json", vocabulary)
    return older


TINY = {"limit": 300, "eval_limit": 20, "embedding_dim": 8, "encoder_hidden": 8, "decoder_hidden": 8,
        "beam_width": 1, "epochs": 1}


def test_the_recipe_keeps_no_vocabulary_between_runs(mirror, tmp_path):
    """One recipe instance, two runs of different vocabularies (300 and 600 training pairs): restoring the first
    leaves nothing behind that the second's data, training or model would pick up (the instance holds no state),
    and build_model needs no load_data first."""
    recipe = Multi30kEnDe()
    small, large = recipe.resolve(TINY), recipe.resolve({**TINY, "limit": 600})
    recipe.train(small, tmp_path / "small", progress=False)
    _, restored = recipe.restore(tmp_path / "small")
    data, fresh = recipe.load_data(large), Multi30kEnDe().load_data(large)
    assert data.fitted == fresh.fitted and len(fresh.fitted["vocabulary"]["src"]) > restored["src_vocab_size"]
    assert all(np.array_equal(a, b) for a, b in zip(data.train.src, fresh.train.src, strict=True))
    trained = recipe.train(large, tmp_path / "large", progress=False)
    assert trained.hp["src_vocab_size"] == len(fresh.fitted["vocabulary"]["src"])
    model, _ = recipe.restore(tmp_path / "large")
    assert model.src_embedding.num_embeddings == len(fresh.fitted["vocabulary"]["src"])
    assert vars(recipe) == {}
    sized = Multi30kEnDe().build_model(recipe.resolve({**TINY, "src_vocab_size": 10, "tgt_vocab_size": 12}))
    assert (sized.src_embedding.num_embeddings, sized.tgt_embedding.num_embeddings) == (10, 12)


def test_a_run_from_before_scaled_attention_keeps_its_attention(mirror, tmp_path):
    """A run folder recorded before the hyperparameter scaled_attention existed trained without it: restore,
    evaluate and --resume rebuild that attention (its config.json lacks the name, and the recipe's default is now
    True); the same run with the name gives the same model."""
    recipe = Multi30kEnDe()
    assert recipe.resolve({})["scaled_attention"] is True
    assert recipe.recorded({"seed": 3}) == {"scaled_attention": False, "seed": 3}
    assert recipe.recorded({"scaled_attention": True}) == {"scaled_attention": True}
    out = tmp_path / "older"
    settings = [arg for name, value in {**TINY, "scaled_attention": "false"}.items()
                for arg in ("--set", f"{name}={value}")]
    run("train", "multi30k-en-de", "--out", out, *settings)
    metrics = json.loads(run("evaluate", "multi30k-en-de", "--checkpoint", out, "--json").stdout)
    from lstmzoo.checkpoint import CONFIG, read_config, write_checked_json
    config = read_config(out)
    del config["hyperparameters"]["scaled_attention"]
    write_checked_json(out / CONFIG, config)
    model, hp = recipe.restore(out)
    assert hp["scaled_attention"] is False and not model.attention.scaled
    assert json.loads(run("evaluate", "multi30k-en-de", "--checkpoint", out, "--json").stdout) == metrics
    run("train", "multi30k-en-de", "--out", out, "--resume", "--epochs", 2)
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert not recipe.restore(out)[0].attention.scaled


class _Echo:
    """A stand-in model: decodes every sentence to ``<unk> ist <unk>`` and aligns those tokens with the source
    positions ``alignment``, so that ``translate``'s unknown-word replacement can be checked exactly."""
    import numpy as xp

    def __init__(self, alignment):
        self.alignment = alignment

    def greedy_decode(self, src, lengths):
        return [[1, 4, 1] for _ in lengths]

    def alignments(self, src, lengths, hypotheses):
        return [self.alignment for _ in hypotheses]


@pytest.mark.parametrize("replace, expected", [(True, "Anna ist 42"), (False, "<unk> ist <unk>")])
def test_unknown_words_become_the_source_words_they_attend_to(replace, expected):
    recipe = Multi30kEnDe()
    vocabulary = {"tokenizer": TOKENIZER, "lowercase": False, "src": [*SPECIALS, "is"], "tgt": [*SPECIALS, "ist"]}
    hp = {**recipe.resolve(), "replace_unk": replace}
    assert recipe.translate(_Echo([0, 1, 2]), vocabulary, ["Anna is 42"], hp, beam_width=1) == [expected]


# -------------------------------------------------------------------------------------- the baseline
def test_tfidf_nearest_matches_a_dense_reference():
    corpus = [s.split() for s in ("a dog runs", "a man rides a bike", "two dogs run in a park", "a a a man",
                                  "children play", "a dog plays in the park")]
    queries = [s.split() for s in ("a dog in the park", "man rides", "unseen words only", "dogs dogs run",
                                   "a man rides a bike")]
    words = sorted({w for tokens in corpus for w in tokens})
    counts = np.array([[tokens.count(w) for w in words] for tokens in corpus], dtype=float)
    idf = np.log((1 + len(corpus)) / (1 + (counts > 0).sum(axis=0))) + 1
    documents = counts * idf
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    asked = np.array([[tokens.count(w) for w in words] for tokens in queries], dtype=float) * idf
    similarity = asked @ documents.T / np.maximum(np.linalg.norm(asked, axis=1, keepdims=True), 1e-12)
    expected = similarity.argmax(axis=1)
    assert tfidf_nearest(corpus, queries, block=2).tolist() == expected.tolist()
    assert expected[2] == 0 and expected[4] == 1        # nothing known: the first; an exact copy: itself


def test_retrieval_baseline_scores_like_the_target_metric():
    english = ("A man rides a bike.", "Two dogs play in the snow.", "A woman sings on a stage.")
    german = ("Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt auf einer Bühne.")
    train = Pairs([], [], english, german)
    test = Pairs([], [], ("two DOGS play in snow", "a woman sings"), (german[1], "Eine Frau singt."))
    result = Multi30kEnDe().baseline(TranslationData(train, train, test), Multi30kEnDe.resolve())
    expected = bleu_scores([german[1], german[2]], test.tgt_text)["bleu"]
    assert result["retrieval_bleu"] == pytest.approx(expected) and 0 < expected < 100
    assert result["copy_source_bleu"] == pytest.approx(bleu_scores(list(test.src_text), test.tgt_text)["bleu"])


def test_retrieval_baseline_on_test2016(mirror):
    recipe = Multi30kEnDe()
    hp = recipe.resolve({"limit": 3000, "eval_limit": 200})
    result = recipe.baseline(recipe.load_data(hp), hp)
    assert set(result) == {"retrieval_bleu", "copy_source_bleu"}
    assert 2 < result["retrieval_bleu"] < 20 and result["copy_source_bleu"] < result["retrieval_bleu"]


def test_the_ranks_shards_gradients_weighted_by_their_tokens_are_the_batchs():
    """Data-parallel training: each rank's sentence pairs give gradients that, weighted by their target tokens, are
    the whole batch's."""
    from lstmzoo.zoo.multi30k import _batch

    from lstmzoo.seq2seq import Seq2Seq
    rng = np.random.default_rng(0)
    sentences = [rng.integers(4, 30, size=rng.integers(1, 9)) for _ in range(14)]
    batch = _batch(sentences[:7], sentences[7:])
    model = Seq2Seq(30, 30, embedding_dim=6, encoder_hidden=5, decoder_hidden=7, dropout=0.0)

    def gradients(piece):
        model.zero_grad()
        loss, n = model.loss_and_backward(*piece)
        return model.flatten()[1].copy(), loss, n

    whole, loss, n = gradients(batch)
    shards = [Multi30kEnDe().shard_batch(batch, rank, 3) for rank in range(3)]
    assert [shard.rows for shard in shards] == [slice(0, 2), slice(2, 4), slice(4, 7)]
    parts = [gradients(shard.piece) for shard in shards]
    assert sum(part_n for _, _, part_n in parts) == n
    np.testing.assert_allclose(sum(g * part_n for g, _, part_n in parts) / n, whole, rtol=1e-4, atol=1e-6)
    assert sum(part_loss * part_n for _, part_loss, part_n in parts) / n == pytest.approx(loss, rel=1e-5)


def test_attention_check_summarises_where_a_run_attends(mirror, tmp_path, capsys):
    """benchmarks/attention_check.py: the peak weight and entropy agree with the attention weights' own
    definition (a peak of 1 has entropy 0, a uniform attention peak 1/n and entropy 1), and the table names the run."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "attention_check", Path(__file__).resolve().parents[1] / "benchmarks" / "attention_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    recipe = Multi30kEnDe()
    out = tmp_path / "run"
    recipe.train(recipe.resolve(TINY), out, progress=False)
    summary = check.attention_summary(recipe, out, "last", pairs=20)
    assert 0 < summary["peak"] <= 1 and 0 <= summary["entropy"] <= 1 and -1 <= summary["diagonal"] <= 1
    model, _ = recipe.restore(out, weights="last")
    # Zero keys' projection: every score equal, so the attention is uniform over each source.
    model.attention.parameters()["weight"][...] = 0
    recipe.restore = lambda run_dir, weights=None: (model, recipe.resolve({**TINY, **sizes(
        recipe.recorded_vocabulary(out))}))
    uniform = check.attention_summary(recipe, out, "last", pairs=20)
    lengths = [max(len(s), 1) for s in recipe.load_data(recipe.resolve(TINY)).val.src[:20]]
    assert uniform["entropy"] == pytest.approx(1.0, abs=1e-5)
    assert uniform["peak"] == pytest.approx(np.mean([1 / n for n in lengths]), rel=1e-5)
    assert np.isnan(uniform["diagonal"])        # ties go to the first word: the attended position never moves
    del recipe.restore
    check.main([f"{out}:last", "--pairs", "5"])
    assert f"| {out} | last |" in capsys.readouterr().out
