"""tinyshakespeare: the 90/10 split of the real text (through the mirror), the streamed validation loss, the
training windows, train -> evaluate -> generate -> predict through the CLI on a tiny run, the vocabulary carried by
the data and the hyperparameters (none kept on the recipe), and runs trained before that (vocab.json)."""

import json
import shutil

import numpy as np
import pytest
from helpers import needs_shared, run
from lstmzoo.zoo.tinyshakespeare import TinyShakespeare, encode, split_text, stream_loss

from lstmzoo.errors import UserError
from lstmzoo.nn import CrossEntropyLoss

TINY = {"limit": 3000, "embedding_dim": 8, "hidden_size": 16, "num_layers": 2, "batch_size": 4, "steps": 16,
        "eval_batch_size": 4}
# A short run that learns (about 40 s): 50,000 characters, 3 epochs at a high rate. Measured validation loss 2.35 /
# 2.32 nats (seeds 0, 1) where a character bigram model of the same training text scores 2.70 (unigram 3.36).
SHORT = {"limit": 50000, "embedding_dim": 16, "hidden_size": 64, "num_layers": 1, "batch_size": 16, "steps": 32,
         "eval_batch_size": 16, "lr": 0.01}
SETTINGS = [arg for name, value in SHORT.items() for arg in ("--set", f"{name}={value}")]


def tiny_recipe(text="First Citizen:\nBefore we proceed any further, hear me speak.\n"):
    recipe = TinyShakespeare()
    vocabulary = "".join(sorted(set(text)))
    hp = recipe.resolve({**TINY, "seed": 0, "vocabulary": vocabulary})
    return recipe, hp, recipe.build_model(hp), encode(text, vocabulary)


# ------------------------------------------------------------------------------------------- the data
@needs_shared
def test_split_is_nanogpts_90_10(mirror):
    recipe = TinyShakespeare()
    text = recipe.load_text()
    assert len(text) == 1115394                       # SOURCE.md
    train, val = split_text(text)
    assert (len(train), len(val)) == (1003854, 111540)
    assert train + val == text and val.startswith(text[1003854:1003900])
    data = recipe.load_data(recipe.resolve())
    vocabulary = data["vocabulary"]
    assert len(vocabulary) == 65 and vocabulary == "".join(sorted(set(text)))
    assert (len(data["train"]), len(data["val"])) == (1003854, 111540)
    assert "".join(vocabulary[i] for i in data["val"][:40]) == val[:40]


def test_encode_names_unknown_characters():
    with pytest.raises(UserError, match="'#'"):
        encode("ab#", "ab")


# ------------------------------------------------------------------------------------------- the loss
@pytest.mark.parametrize("batch_size, steps", [(4, 5), (3, 100), (1, 7), (25, 2), (80, 3)])
def test_stream_loss_scores_every_character_once_in_order(batch_size, steps):
    """Streams, windows and the left-over tail add up to one forward from zeros per stream, the last stream
    running on to the end of the text."""
    _, _, model, tokens = tiny_recipe()
    model.eval()
    criterion = CrossEntropyLoss(reduction="sum")
    predictions = len(tokens) - 1
    streams = min(batch_size, predictions)
    n = predictions // streams
    starts = [b * n for b in range(streams)]
    expected = 0.0
    for b, start in enumerate(starts):
        stop = start + n if b < len(starts) - 1 else predictions
        model.reset_state()
        expected += criterion(model(tokens[start:stop, None])[0], tokens[start + 1:stop + 1, None])
    total, count = stream_loss(model, tokens, batch_size, steps)
    assert count == predictions
    np.testing.assert_allclose(total, expected, rtol=1e-5)


@pytest.mark.parametrize("batch_size, ranks", [(4, 2), (3, 2), (25, 3), (2, 3)])
def test_the_ranks_streams_add_up_to_the_whole_loss(batch_size, ranks):
    """Data-parallel validation: each rank scores its streams (the last rank the left-over characters too; a rank
    without streams nothing), and the sums are the whole text's."""
    from lstmzoo.distributed import rows_of
    _, _, model, tokens = tiny_recipe()
    model.eval()
    whole, count = stream_loss(model, tokens, batch_size, 5)
    parts = [stream_loss(model, tokens, batch_size, 5, streams=rows_of(batch_size, rank, ranks))
             for rank in range(ranks)]
    assert sum(n for _, n in parts) == count == len(tokens) - 1
    np.testing.assert_allclose(sum(total for total, _ in parts), whole, rtol=1e-6)


def test_a_ranks_shard_is_its_streams():
    recipe = tiny_recipe()[0]
    inputs, targets = np.arange(15).reshape(5, 3), np.arange(15).reshape(5, 3) + 1
    (x, y, first), items, rows = recipe.shard_batch((inputs, targets, True), 1, 2)
    assert (items, rows, first) == (3, slice(1, 3), True)
    np.testing.assert_array_equal(x, inputs[:, 1:])
    np.testing.assert_array_equal(y, targets[:, 1:])


def test_training_windows_continue_each_other_and_reset_first():
    recipe, hp, _, tokens = tiny_recipe()
    data = {"train": np.arange(200), "val": tokens}
    batches = recipe.make_batches(data, hp, np.random.default_rng(0))
    assert [first for _, _, first in batches] == [True] + [False] * (len(batches) - 1)
    inputs = np.concatenate([x for x, _, _ in batches])               # [T, B]: time first
    targets = np.concatenate([y for _, y, _ in batches])
    assert inputs.shape[1] == hp["batch_size"] and np.array_equal(targets, inputs + 1)
    assert np.array_equal(inputs[:, 1], inputs[:, 0] + len(inputs))   # stream 1 follows on from stream 0
    assert 0 <= inputs[0, 0] < hp["steps"]                            # a random offset below `steps`


# ------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def trained(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shakespeare"
    result = run("train", "tinyshakespeare", "--out", out, "--seed", 0, "--epochs", 3, *SETTINGS)
    assert "bits_per_char" in result.stdout
    return out


@needs_shared
def test_train_and_evaluate(trained):
    from lstmzoo.zoo.tinyshakespeare import CharNgram
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3] and rows[-1]["train_loss"] < np.log(65)
    # The vocabulary is a hyperparameter of the run (config.json), not a file beside it.
    vocabulary = json.loads((trained / "config.json").read_text())["hyperparameters"]["vocabulary"]
    assert len(vocabulary) == 65 and not (trained / "vocab.json").exists()
    evaluated = run("evaluate", "tinyshakespeare", "--checkpoint", trained, "--json")
    assert "scoring 50,000 characters of validation text..." in evaluated.stderr.splitlines()
    metrics = json.loads(evaluated.stdout)
    assert metrics["characters"] == 49999
    # It learned more than which character follows which: below a bigram model of the same training text.
    recipe = TinyShakespeare()
    data = recipe.load_data(recipe.resolve({"limit": SHORT["limit"]}))
    bigram = CharNgram(data["train"], 2, 65).loss(data["val"])
    assert metrics["loss"] < bigram - 0.2, (metrics["loss"], bigram)
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / np.log(2))
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))
    best = min(row["val_loss"] for row in rows)
    assert metrics["loss"] == pytest.approx(best, rel=1e-6)           # the best epoch's weights, same text


@needs_shared
def test_generate_streams_the_prompt_and_length_reproducibly(trained):
    def generate(*options):
        return run("generate", "tinyshakespeare", "--checkpoint", trained, *options).stdout

    text = generate("--prompt", "ROMEO:", "--length", 60, "--seed", 3)
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 60 + 1 and text.endswith("\n")
    assert generate("--prompt", "ROMEO:", "--length", 60, "--seed", 3) == text
    assert generate("--prompt", "ROMEO:", "--length", 60, "--seed", 4, "--top-k", 0, "--temperature", 2) != text
    assert len(generate("--length", 25, "--seed", 0)) == 26           # empty prompt: just the sampled text


@needs_shared
def test_top_k_one_is_greedy(trained):
    greedy = run("generate", "tinyshakespeare", "--checkpoint", trained, "--prompt", "KING", "--length", 12,
                 "--top-k", 1, "--seed", 5).stdout
    assert greedy == run("generate", "tinyshakespeare", "--checkpoint", trained, "--prompt", "KING", "--length",
                         12, "--top-k", 1, "--seed", 6).stdout
    # The argmax chain recomputed from scratch for each prefix (no carried state).
    recipe = TinyShakespeare()
    model, hp = recipe.restore(trained)
    text = "KING"
    for _ in range(12):
        model.reset_state()
        logits, _ = model(encode(text, hp["vocabulary"])[:, None])
        text += hp["vocabulary"][int(np.argmax(logits[-1, 0]))]
    assert greedy == text + "\n"


@needs_shared
def test_predict_reports_bits_per_char_and_next_characters(trained):
    result = json.loads(run("predict", "tinyshakespeare", "--checkpoint", trained, "--input", "To be, or not",
                            "--json").stdout)
    assert result["bits_per_char"] > 0 and len(result["next"]) == 5
    probabilities = [entry["probability"] for entry in result["next"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6


@needs_shared
@pytest.mark.parametrize("options, message", [
    (["--prompt", "ROMEO#"], "outside the model's vocabulary"),
    (["--temperature", "0"], "temperature must be above 0"),
    (["--temperature", "-1"], "temperature must be above 0"),
])
def test_generate_errors_exit_2(trained, options, message):
    result = run("generate", "tinyshakespeare", "--checkpoint", trained, *options, code=2)
    assert message in result.stderr and "Traceback" not in result.stderr


def _as_older_run(run_dir, older):
    """A copy of the run in ``run_dir`` laid out as lstmzoo wrote runs before the vocabulary travelled in the data:
    no ``vocabulary`` among config.json's hyperparameters, the characters in vocab.json beside it."""
    from lstmzoo.checkpoint import CONFIG, read_config, write_checked_json, write_json
    shutil.copytree(run_dir, older)
    config = read_config(older)
    vocabulary = config["hyperparameters"].pop("vocabulary")
    write_checked_json(older / CONFIG, config)
    write_json(older / "vocab.json", vocabulary)
    return older


@needs_shared
def test_a_run_trained_before_the_vocabulary_was_a_hyperparameter_is_still_read(trained, tmp_path):
    older = _as_older_run(trained, tmp_path / "older")
    for command in (["evaluate", "--json"], ["predict", "--input", "To be, or not", "--json"],
                    ["generate", "--prompt", "ROMEO:", "--length", 30, "--seed", 3]):
        assert (run(command[0], "tinyshakespeare", "--checkpoint", older, *command[1:]).stdout
                == run(command[0], "tinyshakespeare", "--checkpoint", trained, *command[1:]).stdout)
    _, hp = TinyShakespeare().restore(older)
    assert hp["vocabulary"] == json.loads((older / "vocab.json").read_text())
    (older / "vocab.json").unlink()
    refused = run("generate", "tinyshakespeare", "--checkpoint", older, code=2)
    assert "vocab.json" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


@needs_shared
def test_resuming_a_run_ends_with_the_weights_of_the_uninterrupted_one(trained, tmp_path):
    """--resume, of a run of this version and of one trained before (vocab.json): three epochs in two goes (the
    first stopped after its first epoch by a --time-limit every epoch exceeds, as the limit is checked at epoch
    ends: with 1s a fast machine finished two) give the weights of the three-epoch run (``trained``), bit for bit."""
    from lstmzoo.checkpoint import load_weights
    first = tmp_path / "first"
    run("train", "tinyshakespeare", "--out", first, "--seed", 0, "--epochs", 3, "--time-limit", "0.001s", *SETTINGS)
    assert len((first / "metrics.jsonl").read_text().splitlines()) == 1
    older = _as_older_run(first, tmp_path / "older")
    for folder in (first, older):
        run("train", "tinyshakespeare", "--out", folder, "--epochs", 3, "--resume")
        resumed, whole = load_weights(folder / "weights-last.safetensors"), load_weights(
            trained / "weights-last.safetensors")
        assert resumed.keys() == whole.keys()
        for name in whole:
            assert np.array_equal(resumed[name], whole[name]), (folder.name, name)


@needs_shared
def test_the_recipe_keeps_no_vocabulary_between_runs(trained, tmp_path):
    """The vocabulary travels in the data and the hyperparameters: one recipe instance restoring a run of another
    vocabulary, then loading data, training and building models, keeps nothing of the first (the instance holds
    no state at all), and build_model needs no load_data first."""
    recipe = TinyShakespeare()
    from lstmzoo.checkpoint import write_json
    other = _as_older_run(trained, tmp_path / "other")        # a run of the same characters in another order
    write_json(other / "vocab.json", "".join(sorted(json.loads((other / "vocab.json").read_text()), reverse=True)))
    _, hp = recipe.restore(other)
    assert hp["vocabulary"][0] == "z"
    data = recipe.load_data(recipe.resolve({"limit": 2000}))
    assert data["vocabulary"][0] == "\n" and "".join(data["vocabulary"][i] for i in data["val"][:20]) == (
        split_text(recipe.load_text())[1][:20])
    trained_here = recipe.train(recipe.resolve({**TINY, "epochs": 1}), tmp_path / "run", progress=False)
    assert trained_here.hp["vocabulary"] == data["vocabulary"]
    assert vars(recipe) == {}
    fresh = TinyShakespeare().build_model(TinyShakespeare.resolve({**TINY, "vocabulary": "abc"}))
    assert fresh.embedding.num_embeddings == 3


def test_generate_refuses_other_recipes_and_missing_runs(tmp_path):
    result = run("generate", "airline-passengers", "--checkpoint", tmp_path, code=2)
    assert "is not a language model" in result.stderr
    result = run("generate", "tinyshakespeare", "--checkpoint", tmp_path / "nothing", code=2)
    assert "not a run folder" in result.stderr


# --------------------------------------------------------------------------------- the n-gram baseline
def _reference_kneser_ney(tokens, order, vocab_size, history, char):
    """P(char | history) of interpolated Kneser-Ney written out with dicts, one level at a time."""
    from collections import Counter
    tokens = [int(t) for t in tokens]

    def grams(length):
        return [tuple(tokens[i:i + length]) for i in range(len(tokens) - length + 1)]

    def counts(length):
        if length == order:
            return Counter(grams(length))
        return Counter(gram[1:] for gram in set(grams(length + 1)))      # distinct characters seen before

    def probability(length):
        if length == 0:
            return 1 / vocab_size
        lower = probability(length - 1)
        if len(history) < length - 1:
            return lower
        context = tuple(history[len(history) - (length - 1):])
        table = counts(length)
        n1, n2 = sum(v == 1 for v in table.values()), sum(v == 2 for v in table.values())
        discount = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 + 2 * n2 else 0.5
        followers = {gram: v for gram, v in table.items() if gram[:-1] == context}
        if not followers:
            return lower
        total = sum(followers.values())
        return (max(followers.get((*context, char), 0) - discount, 0) + discount * len(followers) * lower) / total

    return probability(order)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_matches_a_plain_kneser_ney_reference_and_normalises(order):
    from lstmzoo.zoo.tinyshakespeare import CharNgram
    vocab = "abcdr !"                     # "!" never occurs: it still gets a little probability
    tokens = encode("abracadabra cab a bad dab abracadabra", vocab)
    model = CharNgram(tokens, order, len(vocab))
    for context in ("", "a", "abr", "ra", " c", "!!", "dd", "cab a"):
        history = [vocab.index(c) for c in context]
        p = model.distribution(history)
        assert p.shape == (len(vocab),) and p.sum() == pytest.approx(1.0, abs=1e-12) and (p > 0).all()
        expected = [_reference_kneser_ney(tokens, order, len(vocab), history, c) for c in range(len(vocab))]
        np.testing.assert_allclose(p, expected, rtol=1e-12)
    # loss: each character after the first given the ones before it in the same text.
    text = encode("abrac dab", vocab)
    expected = -np.mean([np.log(_reference_kneser_ney(tokens, order, len(vocab), list(text[:t]), text[t]))
                         for t in range(1, len(text))])
    assert model.loss(text) == pytest.approx(expected, rel=1e-12)


@needs_shared
def test_ngram_baseline_on_the_real_split(mirror):
    from lstmzoo.zoo.tinyshakespeare import CharNgram
    recipe = TinyShakespeare()
    hp = recipe.resolve({"limit": 40000})
    data = recipe.load_data(hp)
    result = recipe.baseline(data, hp)
    assert set(result) == {"ngram_val_loss", "ngram_order"} and 2 <= result["ngram_order"] <= 8
    unigram = CharNgram(data["train"], 1, 65).loss(data["val"])
    assert result["ngram_val_loss"] < unigram < np.log(65)
    model = CharNgram(data["train"], result["ngram_order"], 65)
    assert result["ngram_val_loss"] == pytest.approx(model.loss(data["val"]))
    for start in (0, 500, 3000):          # real contexts, including ones never seen in training
        assert model.distribution(data["val"][start:start + 10]).sum() == pytest.approx(1.0, abs=1e-12)
