"""The recipes' own hyperparameters have ranges checked at --set (#13 item 14), and a user's mistake in a recipe
(a bad input file, a bad --set combination, a missing optional package) raises UserError, which the CLI prints as
one sentence, while a programming error stays an ordinary exception, reported as a bug (#13 item 19)."""

import sys

import numpy as np
import pytest
from helpers import run
from lstmzoo.zoo import moving_mnist, multi30k, pendigits, spoken_digits, tinyshakespeare, vocabulary

from lstmzoo.errors import UserError
from lstmzoo.recipe import COMMON_HYPERPARAMETERS
from lstmzoo.registry import get_recipe, list_recipes
from lstmzoo.tasks import read_one_series

ZOO = ["airline-passengers", "daily-min-temperatures", "monthly-sunspots", "pendigits", "spoken-digits", "rt-polarity",
       "tinyshakespeare", "multi30k-en-de", "moving-mnist", "moving-mnist-digits", "spoken-digit-strings",
       "pendigits-strings"]


# ------------------------------------------------------------------------------------------- ranges
def test_every_numeric_hyperparameter_of_the_zoo_has_a_range():
    assert set(ZOO) <= {r.name for r in list_recipes()}
    unbounded = [f"{name}: {hp}" for name in ZOO for hp, spec in get_recipe(name).all_hyperparameters().items()
                 if spec.type in (int, float) and spec is not COMMON_HYPERPARAMETERS["seed"]
                 and spec.bounds(hp) == (None, None)]
    assert unbounded == []


@pytest.mark.parametrize("recipe, name, value", [
    ("spoken-digits", "val_from", 5), ("spoken-digits", "val_from", 50), ("spoken-digits", "n_mfcc", 0),
    ("spoken-digits", "n_mfcc", 33), ("spoken-digits", "augment", 1.5), ("spoken-digits", "trim_db", -1.0),
    ("pendigits", "points", 1), ("pendigits", "val_writers", 30), ("pendigits", "augment", -0.1),
    ("pendigits-strings", "test_strings", 1001), ("pendigits-strings", "min_gap", -0.5),
    ("spoken-digit-strings", "max_gap", -0.1), ("spoken-digit-strings", "stack", 0),
    ("multi30k-en-de", "min_count", 0), ("multi30k-en-de", "length_penalty", -1.0), ("multi30k-en-de", "lr_decay", 0.0),
    ("rt-polarity", "word_dropout", 1.5), ("rt-polarity", "min_count", 0), ("rt-polarity", "embedding_dropout", 1.0),
    ("moving-mnist", "kernel_size", 64), ("moving-mnist", "eps", 0.5), ("moving-mnist", "layers", 0),
    ("moving-mnist-digits", "frame_step", 0), ("moving-mnist-digits", "pool", 65), ("moving-mnist-digits", "train_videos", 0),
    ("tinyshakespeare", "steps", 0),
])
def test_an_out_of_range_value_is_refused_at_resolve(recipe, name, value):
    chosen = get_recipe(recipe)
    for given in (value, str(value)):         # a config.json's value, and --set's text
        with pytest.raises(UserError, match=f"hyperparameter '{name}' must be (between|at least|at most)"):
            chosen.resolve({name: given})
    chosen.resolve({name: chosen.all_hyperparameters()[name].default})


def test_an_out_of_range_set_is_one_sentence_before_any_work():
    result = run("train", "spoken-digits", "--set", "val_from=5", code=2)
    lines = result.stderr.strip().splitlines()
    assert lines == ["Error: hyperparameter 'val_from' must be between 6 and 49, got 5"]


def test_an_even_kernel_size_is_refused():
    recipe = get_recipe("moving-mnist")
    with pytest.raises(UserError, match="kernel_size must be odd"):
        recipe.build_model(recipe.resolve({"kernel_size": 8, "embed_size": 4, "hidden_size": 4}))


def test_gaps_the_wrong_way_round_are_refused():
    recipe = get_recipe("pendigits-strings")
    with pytest.raises(UserError, match="min_gap must not exceed max_gap"):
        recipe.load_units(recipe.resolve({"min_gap": 0.6, "max_gap": 0.5}))


# --------------------------------------------------------------------------------------- user mistakes
def _timeseries_predict(horizon=1, input=None):
    recipe = get_recipe("airline-passengers")
    recipe.predict(None, recipe.resolve(), "unused", horizon=horizon, input=input)


def _negative_airline():
    """The airline recipe (log transform) on a series with a negative value."""
    values = np.r_[112.0, -1.0, np.full(142, 150.0)]
    recipe = type(get_recipe("airline-passengers"))
    return type("Negative", (recipe,), {"load_series": lambda self, hp: ([str(i) for i in range(144)], values)})()


def _generate(**options):
    recipe = get_recipe("tinyshakespeare")
    next(recipe.generate(None, recipe.resolve({"vocabulary": "abc"}), "ab", 3, rng=np.random.default_rng(0), **options))


def _written(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


MISTAKES = {
    "a series with a word for a value": lambda tmp: read_one_series(
        _written(tmp, "past.csv", b"month,value\n1949-01,112\n1949-02,many\n")),
    "two series for a time-series recipe": lambda tmp: read_one_series(
        _written(tmp, "two.csv", b"a,1,5\na,2,6\nb,1,7\nb,2,8\n")),
    "a forecast horizon of 0": lambda tmp: _timeseries_predict(horizon=0),
    "a history too short to forecast from": lambda tmp: _timeseries_predict(
        input=_written(tmp, "short.csv", b"1\n2\n3\n")),
    "a series of negative numbers for a log transform": lambda tmp: _negative_airline().load_data(
        get_recipe("airline-passengers").resolve()),
    "pendigits without an input": lambda tmp: get_recipe("pendigits").predict(None, {}, tmp),
    "a UNIPEN file that is not text": lambda tmp: pendigits.read_unipen(
        b"\xff\xfe", "digit.txt"),
    "JSON points of the wrong shape": lambda tmp: pendigits.read_trajectory(
        "[[1, 2]]"),
    "broken JSON text": lambda tmp: pendigits.read_trajectory("[[1, 2, 1]"),
    "a WAV file that is not one": lambda tmp: spoken_digits.read_wav_file(
        _written(tmp, "digit.wav", b"seven")),
    "a video of the wrong size": lambda tmp: moving_mnist.read_video(
        _npy(tmp, np.zeros((10, 32, 32), np.uint8))),
    "a video of 15 frames for moving-mnist": lambda tmp: get_recipe("moving-mnist").predict(
        None, {}, tmp, input=_npy(tmp, np.zeros((15, 64, 64), np.uint8))),
    "conv that does not parse": lambda tmp: get_recipe("moving-mnist-digits").layers(
        get_recipe("moving-mnist-digits").resolve({"conv": "4/x/2"})),
    "a pool that does not divide 64": lambda tmp: get_recipe("moving-mnist-digits").layers(
        get_recipe("moving-mnist-digits").resolve({"pool": 3})),
    "an empty text for a text recipe": lambda tmp: vocabulary.input_lines(
        " ", "rt-polarity"),
    "a text file that is not UTF-8": lambda tmp: vocabulary.input_lines(
        _written(tmp, "lines.txt", b"\xff\xfe\x00bad"), "multi30k-en-de"),
    "characters outside the vocabulary": lambda tmp: tinyshakespeare.encode("ab#", "ab"),
    "a temperature of 0": lambda tmp: _generate(temperature=0.0),
    "a negative top_k": lambda tmp: _generate(top_k=-1),
    "tinyshakespeare without a text": lambda tmp: get_recipe("tinyshakespeare").predict(None, {}, tmp, input=""),
}


def _npy(tmp_path, array):
    np.save(tmp_path / "video.npy", array)
    return tmp_path / "video.npy"


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_users_mistake_is_a_user_error(mistake, tmp_path):
    with pytest.raises(UserError) as error:
        MISTAKES[mistake](tmp_path)
    assert "\n" not in str(error.value) and str(error.value).strip()


@pytest.mark.parametrize("module, missing, call", [
    (spoken_digits, "librosa", lambda m: m.mfcc_features(np.zeros(8000), 8000, 13)),
    (multi30k, "sacrebleu", lambda m: m.bleu_scores(["a"], ["a"])),
], ids=["librosa", "sacrebleu"])
def test_a_missing_optional_package_is_a_user_error_saying_what_to_install(module, missing, call, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(UserError, match="pip install"):
        call(module)


def test_a_programming_error_stays_an_ordinary_exception():
    """Inconsistent arguments from code (not from a user) are a bug: a plain ValueError, not a UserError."""
    from lstmzoo.zoo.digit_strings import Units

    from lstmzoo.tasks import LabelledSequences as SequenceSet
    for make in (lambda: SequenceSet([np.zeros((3, 2))], [0, 1]), lambda: Units([1, 2], [0], ["a", "a"])):
        with pytest.raises(ValueError) as error:
            make()
        assert not isinstance(error.value, UserError)
