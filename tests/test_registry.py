"""The recipe registry: entry-point discovery, the contract check, plugin failures that never break the rest."""

import subprocess
import sys
from typing import ClassVar

import pytest

from lstmzoo.recipe import Anchor, DataFile, Hyperparameter, Recipe, contract_problems
from lstmzoo.registry import UnknownRecipeError, get_recipe, list_recipes, plugin_report, registry


def test_builtin_recipe_is_registered_through_the_entry_point():
    recipe = get_recipe("airline-passengers")
    assert recipe.application == "time-series"
    assert recipe.datasets[0].bundled_with == "lstmzoo.zoo"
    assert "airline-passengers" in [r.name for r in list_recipes("time-series")]
    assert list_recipes("video") == [] or all(r.application == "video" for r in list_recipes("video"))
    provider = next(p for p in plugin_report()["providers"] if p["distribution"] == "lstmzoo")
    assert "airline-passengers" in provider["recipes"]


def test_unknown_recipe_names_close_matches():
    with pytest.raises(UnknownRecipeError, match="did you mean airline-passengers"):
        get_recipe("airline-pasengers")
    with pytest.raises(UnknownRecipeError, match="lstmzoo list"):
        get_recipe("zzzzzz")


def test_example_plugin_recipe_is_listed(example_plugin):
    assert get_recipe("sine-wave").application == "time-series"
    providers = {p["distribution"]: p for p in plugin_report()["providers"]}
    assert list(providers["lstmzoo-example-plugin"]["recipes"]) == ["sine-wave"]
    assert providers["lstmzoo-example-plugin"]["version"] == "0.1.0"


def test_broken_plugins_are_reported_not_fatal(broken_plugins):
    failures = {f.entry_point.split(" =")[0]: f for f in registry().failures}
    assert failures["needs-librosa"].distribution == "broken-plugin"
    assert "ImportError" in failures["needs-librosa"].reason and "librosa" in failures["needs-librosa"].reason
    assert "application 'cooking'" in failures["cooking"].reason
    assert "does not implement" in failures["cooking"].reason
    assert get_recipe("airline-passengers")     # the others still work
    with pytest.raises(UnknownRecipeError):
        get_recipe("cooking")


class _Complete(Recipe):
    name = "complete"
    application = "time-series"
    summary = "a recipe that keeps the contract"
    datasets = (DataFile("d", "f.csv", "https://example.org/f.csv", "0" * 64),)
    hyperparameters: ClassVar[dict] = {"lr": Hyperparameter(0.01, "learning rate"),
                                       "bidirectional": Hyperparameter(True, "both"),
                                       "cell": Hyperparameter("lstm", "cell kind", choices=("lstm", "gru"))}
    anchor = Anchor("rmse", 1.0, "somewhere")

    def build_model(self, hp): ...
    def load_data(self, hp): ...
    def evaluate(self, model, data, hp, out_dir=None): ...
    def predict(self, model, hp, out_dir, *, input=None): ...
    def train(self, hp, run_dir, *, resume=False, progress=True): ...


def test_contract_check():
    assert contract_problems(_Complete()) == []
    assert contract_problems(object())[0].startswith("object is not a subclass")

    class Broken(_Complete):
        name = "Not A Name"
        summary = "two\nlines"
        datasets = (DataFile("d", "f", "u", "abc"),)
        hyperparameters: ClassVar[dict] = {"layers": Hyperparameter([1, 2], "a list")}
        mode = "up"
        train = Recipe.train   # the default train then needs make_batches, train_step and validate
    problems = " | ".join(contract_problems(Broken()))
    for phrase in ("name 'Not A Name'", "one non-empty line", "no valid sha256", "hyperparameter 'layers'",
                   "mode must be", "make_batches, train_step, validate"):
        assert phrase in problems


def test_hyperparameters_resolve_from_text_and_values():
    hp = _Complete.resolve({"lr": "1e-3", "bidirectional": "no", "cell": "gru", "epochs": 3})
    assert hp["lr"] == 0.001 and hp["bidirectional"] is False and hp["cell"] == "gru" and hp["epochs"] == 3
    assert hp["seed"] == 0 and hp["device"] == "cpu"   # the common ones, with their defaults
    assert _Complete.resolve({"lr": 1})["lr"] == 1.0 and type(_Complete.resolve({"lr": 1})["lr"]) is float
    for overrides, message in (({"nope": "1"}, "has no hyperparameter 'nope'"),
                               ({"lr": "fast"}, "takes a float, got 'fast'"),
                               ({"epochs": "2.5"}, "takes a int"),
                               ({"bidirectional": "maybe"}, "takes a bool"),
                               ({"cell": "rnn"}, "must be one of lstm, gru"),
                               ({"device": "tpu"}, "must be one of cpu, cuda")):
        with pytest.raises(ValueError, match=message):
            _Complete.resolve(overrides)


def test_listing_imports_no_heavy_module():
    code = ("import sys\n"
            "from lstmzoo.cli import main\n"
            "main(['list'], standalone_mode=False)\n"
            "heavy = [m for m in ('numba', 'lstmzoo.nn', 'lstmzoo.kernels', 'matplotlib', 'sklearn')\n"
            "         if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "airline-passengers" in completed.stdout


def test_the_zoo_builds_on_the_public_task_layer():
    """The zoo's classification recipes subclass the base a plugin gets from lstmzoo.tasks, and the zoo keeps no
    base of its own (a plugin never needs to import lstmzoo.zoo)."""
    import importlib.util

    from lstmzoo.tasks import SequenceClassificationRecipe
    for name in ("pendigits", "spoken-digits", "rt-polarity"):
        assert isinstance(get_recipe(name), SequenceClassificationRecipe), name
    for module in ("lstmzoo.zoo.classification", "lstmzoo.zoo.models"):
        assert importlib.util.find_spec(module) is None, module
