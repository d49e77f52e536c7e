"""Recipe.target's default: the anchor's metric against its value, the comparison's direction from
lstmzoo.metrics; the zoo recipes that state no other target use it."""

import pytest

from lstmzoo.errors import RecipeError
from lstmzoo.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER, higher_is_better
from lstmzoo.recipe import Anchor, Recipe
from lstmzoo.registry import get_recipe


def recipe_with(metric, value=0.5):
    class Anchored(Recipe):
        name = "anchored"
        anchor = Anchor(metric=metric, value=value, source="a test")
    return Anchored()


def test_the_tables_do_not_overlap_and_name_the_metrics_of_the_tasks_and_the_zoo():
    assert not HIGHER_IS_BETTER & LOWER_IS_BETTER
    assert {"accuracy", "macro_f1", "r2"} <= HIGHER_IS_BETTER and {"rmse", "mae", "mase", "smape"} <= LOWER_IS_BETTER
    assert higher_is_better("bleu") and not higher_is_better("loss")
    with pytest.raises(ValueError, match="whether a higher or a lower 'speed' is better"):
        higher_is_better("speed")


@pytest.mark.parametrize("metric, value, expected", [
    ("accuracy", 0.9, ("accuracy >= 0.5", True)),
    ("accuracy", 0.5, ("accuracy >= 0.5", True)),           # reaching the anchor meets it
    ("accuracy", 0.4, ("accuracy >= 0.5", False)),
    ("rmse", 0.4, ("rmse <= 0.5", True)),
    ("rmse", 0.6, ("rmse <= 0.5", False)),
])
def test_the_anchor_is_met_at_its_value_or_better(metric, value, expected):
    assert recipe_with(metric).target({metric: value, "other": 0.0}) == expected


def test_no_anchor_no_target_and_an_unknown_metric_is_the_recipes_to_state():
    assert Recipe().target({"accuracy": 1.0}) is None
    with pytest.raises(RecipeError, match="recipe 'anchored' has no target: .*'speed'.*; override target()"):
        recipe_with("speed").target({"speed": 1.0})


@pytest.mark.parametrize("name, metrics, expected", [
    ("pendigits", {"accuracy": 0.9926}, ("accuracy >= 0.98", True)),
    ("spoken-digits", {"accuracy": 0.96}, ("accuracy >= 0.97", False)),
    ("rt-polarity", {"accuracy": 0.7899}, ("accuracy >= 0.77", True)),
    ("moving-mnist", {"bce_per_video": 4254.0}, ("bce_per_video <= 4832.49", True)),
    ("moving-mnist-digits", {"both_right": 0.94}, ("both_right >= 0.95", False)),
])
def test_the_zoo_recipes_without_a_target_of_their_own_use_the_default(name, metrics, expected):
    recipe = get_recipe(name)
    assert type(recipe).target is Recipe.target
    assert recipe.target(metrics) == expected
