"""spoken-digit-strings and pendigits-strings: building the strings from the wave-1 digits (through the mirror),
their features, the per-frame model's gradients, the scores, and train -> evaluate -> predict through the CLI on
short runs."""

import json
import re

import numpy as np
import pytest
from helpers import SHARED, needs_librosa, needs_shared, numeric_gradient, run, write_wav
from lstmzoo.zoo.digit_strings import (
    MAX_DIGITS,
    MIN_DIGITS,
    DigitStringRecipe,
    PenDigitStrings,
    SpokenDigitStrings,
    Units,
    draw_string,
    edit_distance,
    lay_out,
    stack_frames,
    string_features,
    string_hyperparameters,
    string_scores,
)

SMALL = {"val_strings": 12, "test_strings": 40}
# A short pendigits-strings run that learns: 4 epochs of 1,000 strings at a high rate, coarser resampling. Measured
# (seed 0): validation character error rate 0.95 / 0.32 / 0.14 / 0.13 after epochs 1-4 and 6.9 % on the first 100
# test strings (71 % of them exact), where answering nothing (CTC's blank-only phase) scores 100 %.
PEN_SHORT = ["--epochs", "4", "--set", "strings_per_epoch=1000", "--set", "hidden_size=64", "--set", "lr=0.01",
             "--set", "points_per_height=4", "--set", "augment=0", "--set", "val_strings=50", "--set", "test_strings=100",
             "--set", "beam_width=3"]
# A short spoken-digit-strings run that learns: 4 epochs of 600 strings at a high rate. Measured (seed 0): validation
# digit error rate 0.67 / 0.16 / 0.09 / 0.09 after epochs 1-4 and 4.6 % on the first 100 test strings (83 % exact).
SPOKEN_SHORT = ["--epochs", "4", "--set", "strings_per_epoch=600", "--set", "hidden_size=64", "--set", "lr=0.01",
                "--set", "val_strings=50", "--set", "test_strings=100", "--set", "beam_width=3"]
BAR = [np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0]])]                 # a "1": one stroke, 20 high
TEE = [np.array([[0.0, 0.0], [0.0, 20.0]]), np.array([[-5.0, 20.0], [5.0, 20.0]])]     # stem, then bar


def _check_strings(strings, units, groups_allowed):
    lengths = [len(t) for t in strings.targets]
    assert MIN_DIGITS <= min(lengths) and max(lengths) <= MAX_DIGITS
    for source, target in zip(strings.sources, strings.targets):
        assert np.array_equal(units.labels[source], target)        # the labels are the digits it was built of
        assert len({units.groups[i] for i in source}) == 1          # one speaker or writer per string
        assert units.groups[source[0]] in groups_allowed


def _same(a, b):
    return (len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))
            and all(np.array_equal(x, y) for x, y in zip(a.targets, b.targets)))


# ------------------------------------------------------------------------------------------- strings
def test_draw_string_takes_2_to_7_digits_of_one_group():
    units = Units(list(range(40)), np.arange(40) % 10, np.repeat(["a", "b", "c", "d"], 10))
    rng = np.random.default_rng(0)
    drawn = [draw_string(units, rng) for _ in range(600)]
    assert sorted({len(d) for d in drawn}) == list(range(MIN_DIGITS, MAX_DIGITS + 1))
    assert all(len({units.groups[i] for i in d}) == 1 for d in drawn)
    assert {units.groups[d[0]] for d in drawn} == {"a", "b", "c", "d"}
    with pytest.raises(ValueError, match="no digits"):
        Units([], [], [])


def test_edit_distance_and_scores():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1            # a deletion
    assert edit_distance([1, 2], [3, 1, 2, 4]) == 2         # two insertions
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2         # two substitutions
    assert edit_distance([], [5, 5]) == 2
    rate, exact, edits = string_scores([[1, 2, 3], [4, 5]], [[1, 2, 3], [4]])
    assert (rate, exact, edits) == (1 / 5, 1 / 2, 1)


@needs_shared
def test_pen_strings_are_fixed_and_writer_independent(mirror):
    recipe = PenDigitStrings()
    hp = recipe.resolve(SMALL)
    train, val, test = recipe.load_units(hp)
    assert (len(train) + len(val), len(test)) == (7494, 3498)
    assert set(val.groups.tolist()) == {28, 29, 30} and not set(train.groups.tolist()) & {28, 29, 30}
    data = recipe.load_data(hp)
    assert (len(data.val), len(data.test)) == (12, 40)
    _check_strings(data.test, test, set(range(1, 15)))
    _check_strings(data.val, val, {28, 29, 30})
    # The same strings every time, and a smaller count gives the first ones of a larger.
    again = recipe.load_data(recipe.resolve({"val_strings": 12, "test_strings": 25}))
    assert _same(again.val, data.val)
    assert _same(again.test, type(data.test)(data.test.sequences[:25], data.test.targets[:25],
                                              data.test.sources[:25]))
    for features, target in zip(data.test.sequences, data.test.targets):
        assert features.dtype == np.float32 and features.shape[1] == recipe.input_size(hp)
        assert 8 * len(target) < len(features) < 40 * len(target)     # about 20 points per digit
        assert np.isfinite(features).all() and np.abs(features[:, 0]).max() <= 1 + 1e-6
    # Training strings: fresh from the epoch's generator, digits + 1 as CTC targets (0 is the blank).
    batches = recipe.make_batches(data, {**hp, "strings_per_epoch": 40, "batch_size": 16}, np.random.default_rng(1))
    assert sum(len(b[1]) for b in batches) == 40
    inputs, lengths, targets, target_lengths = batches[0]
    assert inputs.shape == (lengths.max(), len(lengths), 4) and targets.shape == (len(lengths), target_lengths.max())
    assert targets.min() >= 0 and targets.max() <= 10
    assert all((targets[b, :n] >= 1).all() for b, n in enumerate(target_lengths))


def test_lay_out_and_string_features():
    laid = lay_out([BAR, TEE], [0.5])
    # The tee starts half a median height (20) right of the bar; bottoms aligned at 0.
    assert np.allclose(laid[1], [[15.0, 0.0], [15.0, 20.0]]) and np.allclose(laid[2][:, 0], [10, 20])
    features = string_features(laid, 8)
    assert features.shape[1] == 4 and features.dtype == np.float32
    assert np.isclose(features[:, 0].min(), -1) and np.isclose(features[:, 0].max(), 1)
    assert features[:, 3].sum() == 2                         # two pen lifts: to the tee's stem, to its bar
    jump = np.flatnonzero(features[:, 3])[0]
    assert features[jump, 1] > 3 * np.abs(features[1:jump, 1:3]).max()     # the jump is the long step
    assert 1 <= np.median(np.hypot(features[1:jump, 1], features[1:jump, 2])) < 1.5     # a typical step ~ 1
    # Neither position nor scale changes the features.
    assert np.allclose(string_features([3 * s + 100 for s in laid], 8), features, atol=1e-5)


def test_stack_frames():
    frames = np.arange(14, dtype=np.float32).reshape(7, 2)
    stacked = stack_frames(frames, 3)
    assert stacked.shape == (3, 6)
    assert stacked[0].tolist() == [0, 1, 2, 3, 4, 5] and stacked[2].tolist() == [12, 13, 12, 13, 12, 13]


def test_frame_model_gradients():
    from lstmzoo.tasks.models import FrameModel
    rng = np.random.default_rng(0)
    model = FrameModel(3, 4, 5, num_layers=2, bidirectional=True, dtype="float64")
    x = rng.normal(size=(6, 2, 3))
    lengths = np.array([6, 4])
    weights = rng.normal(size=(6, 2, 5))
    weights[4:, 1] = 0          # a loss that ignores the padding, as CTC does

    def loss():
        return float((model(x, lengths=lengths) * weights).sum())

    model.train()
    model.zero_grad()
    out = model(x, lengths=lengths)
    assert out.shape == (6, 2, 5)
    dx = model.backward(weights)
    assert np.allclose(dx, numeric_gradient(loss, x), atol=1e-6)
    assert np.allclose(model.grads()["head.weight"], numeric_gradient(loss, model.parameters()["head.weight"]),
                       atol=1e-6)
    name = "lstm.weight_ih_l1_reverse"
    assert np.allclose(model.grads()[name], numeric_gradient(loss, model.parameters()[name]), atol=1e-6)


# ---------------------------------------------------------------------------------------- end to end
def _one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines


@needs_shared
def test_pen_train_evaluate_predict(mirror, tmp_path):
    out = tmp_path / "run"
    run("train", "pendigits-strings", "--out", out, "--seed", 0, *PEN_SHORT)
    evaluated = run("evaluate", "pendigits-strings", "--checkpoint", out, "--json")
    assert "decoding 100 test strings (beam width 3)..." in evaluated.stderr.splitlines()
    metrics = json.loads(evaluated.stdout)
    assert metrics["strings"] == 100 and 0 <= metrics["greedy_sequence_accuracy"] <= 1
    assert metrics["errors"] == pytest.approx(metrics["character_error_rate"] * metrics["digits"])
    # It learned to read the digits: far below the 100 % of answering nothing.
    assert metrics["character_error_rate"] < 0.3 and metrics["sequence_accuracy"] > 0.3, metrics

    text = (SHARED / "pendigits" / "pendigits-orig.tes").read_text()
    starts = [m.start() for m in re.finditer(r"^\.SEGMENT", text, re.MULTILINE)][:4]
    (tmp_path / "number.txt").write_text(text[starts[0]:starts[3]])         # three digits, laid out side by side
    said = run("predict", "pendigits-strings", "--checkpoint", out, "--input", tmp_path / "number.txt")
    assert re.fullmatch(r"\d+|\(no digits recognised\)", said.output.strip()), said.output
    result = json.loads(run("predict", "pendigits-strings", "--checkpoint", out, "--input", tmp_path / "number.txt",
                            "--json").stdout)
    # about 10 points per digit at points_per_height=4
    assert result["segments"] == 3 and result["points"] > 15 and re.fullmatch(r"\d*", result["digits"])

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.json").write_text("[[1, 2]]")
    for bad in ("missing.txt", "empty.txt", "bad.json"):
        _one_line_error(run("predict", "pendigits-strings", "--checkpoint", out, "--input", tmp_path / bad, code=2))


@needs_shared
@needs_librosa
def test_spoken_strings_are_built_from_the_official_split(mirror):
    recipe = SpokenDigitStrings()
    hp = recipe.resolve(SMALL)
    train, val, test = recipe.load_units(hp)
    assert (len(train), len(val), len(test)) == (2400, 300, 300)
    assert {r.index for r in test.items} == set(range(5)) and {r.index for r in val.items} == set(range(45, 50))
    data = recipe.load_data(hp)
    _check_strings(data.test, test, {r.speaker for r in test.items})
    _check_strings(data.val, val, {r.speaker for r in val.items})
    assert _same(recipe.load_data(hp).test, data.test)
    for features, source in zip(data.test.sequences, data.test.sources):
        assert features.shape[1] == recipe.input_size(hp) == 3 * 13 * 3 and np.isfinite(features).all()
        speech = sum(len(test.items[i].audio) for i in source) / 8000
        pauses = (len(source) + 1) * hp["max_gap"]
        # One step per 3 frames of 10 ms: the recordings' time, plus up to max_gap per pause.
        assert speech * 100 / 3 - 1 <= len(features) <= (speech + pauses) * 100 / 3 + 2


@needs_shared
@needs_librosa
def test_spoken_train_evaluate_predict(mirror, tmp_path):
    from lstmzoo.zoo.spoken_digits import SpokenDigits
    out = tmp_path / "run"
    run("train", "spoken-digit-strings", "--out", out, "--seed", 0, *SPOKEN_SHORT)
    metrics = json.loads(run("evaluate", "spoken-digit-strings", "--checkpoint", out, "--json").stdout)
    # It learned to hear the digits: far below the 100 % of answering nothing.
    assert metrics["strings"] == 100 and metrics["digit_error_rate"] < 0.3 and metrics["sequence_accuracy"] > 0.3, \
        metrics

    recordings = [r for r in SpokenDigits().load_recordings() if r.index == 0 and r.speaker == "theo"]
    pause = np.zeros(800, dtype=np.float32)
    write_wav(tmp_path / "number.wav", np.concatenate([recordings[4].audio, pause, recordings[2].audio]), 8000)
    result = json.loads(run("predict", "spoken-digit-strings", "--checkpoint", out, "--input",
                            tmp_path / "number.wav", "--json").stdout)
    assert re.fullmatch(r"\d*", result["digits"]) and result["sample_rate"] == 8000
    said = run("predict", "spoken-digit-strings", "--checkpoint", out, "--input", tmp_path / "number.wav").output
    assert said.strip() == (result["digits"] or "(no digits recognised)")

    (tmp_path / "text.wav").write_text("not audio")
    for bad in ("missing.wav", "text.wav"):
        _one_line_error(run("predict", "spoken-digit-strings", "--checkpoint", out, "--input", tmp_path / bad,
                            code=2))


# ------------------------------------------------------------------------------------------ the baseline
class _Points(DigitStringRecipe):
    """Digits that are points on a line (digit d near 10 d); test digit ``wrong`` (a 3) lies where 7s do."""
    name, error_metric, wrong = "points", "digit_error_rate", 13
    hyperparameters = string_hyperparameters(hidden_size=4, num_layers=1, epochs=1, lr=0.01, batch_size=4,
                                             dropout=0.0, strings_per_epoch=8)

    def load_units(self, hp):
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(10), 4)
        train = Units(list(10.0 * labels + rng.uniform(-1, 1, 40)), labels, np.tile(["a", "b"], 20))
        test_labels = np.arange(20) % 10
        test_points = 10.0 * test_labels
        test_points[self.wrong] = 70.0
        return train, train, Units(list(test_points), test_labels, np.repeat(["c", "d"], 10))

    def render(self, units, indices, hp, rng, train):
        return np.zeros((len(indices), 1), dtype=np.float32)

    def digit_features(self, units, hp):
        return np.array(units.items)[:, None]


def test_segmented_knn_classifies_each_digit_of_the_test_strings():
    recipe = _Points()
    hp = recipe.resolve({"val_strings": 5, "test_strings": 300})
    data = recipe.load_data(hp)
    result = recipe.baseline(data, hp)
    hypotheses = [[7 if i == recipe.wrong else int(i % 10) for i in source] for source in data.test.sources]
    rate, exact, _ = string_scores(data.test.targets, hypotheses)
    assert result == {"segmented_knn_der": rate, "segmented_knn_sequence_accuracy": exact, "segmented_knn_k": 1}
    assert 0 < rate < 0.2 and 0 < exact < 1
    data.test.targets[0] = data.test.targets[0][::-1] + 1
    with pytest.raises(ValueError, match="not built from"):
        recipe.baseline(data, hp)


@needs_shared
def test_pen_segmented_knn_baseline(mirror):
    recipe = PenDigitStrings()
    hp = recipe.resolve(SMALL)
    result = recipe.baseline(recipe.load_data(hp), hp)
    assert set(result) == {"segmented_knn_cer", "segmented_knn_sequence_accuracy", "segmented_knn_k"}
    assert 0 <= result["segmented_knn_cer"] < 0.1 and 0.6 < result["segmented_knn_sequence_accuracy"] <= 1
    assert result["segmented_knn_k"] in (1, 2, 3, 4, 5)


@needs_shared
@needs_librosa
def test_spoken_segmented_knn_baseline(mirror):
    recipe = SpokenDigitStrings()
    hp = recipe.resolve(SMALL)
    data = recipe.load_data(hp)
    features = recipe.digit_features(data.train, hp)
    assert features.shape == (2400, 2 * 3 * 13) and np.isfinite(features).all()
    # Scaled to peak 1: the level the strings give a recording does not change its features.
    louder = Units([type(r)(r.digit, r.speaker, r.index, 0.3 * r.audio) for r in data.train.items[:5]],
                   data.train.labels[:5], data.train.groups[:5])
    np.testing.assert_allclose(recipe.digit_features(louder, hp), features[:5], rtol=1e-4, atol=1e-4)
    result = recipe.baseline(data, hp)
    assert 0 <= result["segmented_knn_der"] < 0.15 and result["segmented_knn_k"] in (1, 2, 3, 4, 5)


def test_info_states_the_targets():
    assert "character_error_rate 0.05" in run("info", "pendigits-strings").output
    assert "digit_error_rate 0.1" in run("info", "spoken-digit-strings").output


def test_the_target_is_the_default_built_from_the_anchor():
    from lstmzoo.recipe import Recipe
    for recipe, metric, limit in ((PenDigitStrings(), "character_error_rate", 0.05),
                                  (SpokenDigitStrings(), "digit_error_rate", 0.1)):
        assert type(recipe).target is Recipe.target
        assert recipe.target({metric: limit}) == (f"{metric} <= {limit:g}", True)
        assert recipe.target({metric: limit + 0.001}) == (f"{metric} <= {limit:g}", False)
