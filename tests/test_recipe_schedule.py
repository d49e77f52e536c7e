"""The default make_scheduler follows Recipe.schedule: the cosine recipes get the schedule they wrote out before
(``CosineLR(optimizer, hp["epochs"])``: the same rates epoch by epoch and the same saved state, so their runs
resume), a recipe without one a constant rate, and an unknown name is a broken recipe."""

import math
from types import SimpleNamespace

import pytest

from lstmzoo.errors import RecipeError
from lstmzoo.recipe import Recipe
from lstmzoo.registry import get_recipe
from lstmzoo.schedules import CosineLR

COSINE = ("pendigits", "spoken-digits", "pendigits-strings", "spoken-digit-strings", "moving-mnist",
          "moving-mnist-digits")


@pytest.mark.parametrize("name", COSINE)
def test_the_cosine_recipes_fall_along_half_a_cosine_over_their_epochs(name):
    recipe = get_recipe(name)
    assert recipe.schedule == "cosine" and type(recipe).make_scheduler is Recipe.make_scheduler
    hp = recipe.resolve({"epochs": 7})
    optimizer = SimpleNamespace(lr=0.003)
    scheduler = recipe.make_scheduler(optimizer, hp)
    rates = [optimizer.lr]
    for _ in range(9):                                  # two past the end: it stays at 0
        scheduler.step()
        rates.append(optimizer.lr)
    expected = [0.003 * (1 + math.cos(math.pi * min(epoch, 7) / 7)) / 2 for epoch in range(10)]
    assert rates == pytest.approx(expected, rel=0, abs=1e-15)
    # What a checkpoint saves: the same as the CosineLR the recipe built itself before, so older runs resume.
    assert scheduler.state_dict() == CosineLR(SimpleNamespace(lr=0.003), 7).state_dict() | {"epoch": 9}


def test_no_schedule_is_a_constant_rate_and_an_unknown_one_a_broken_recipe():
    class Constant(Recipe):
        name = "constant"

    assert Constant().make_scheduler(SimpleNamespace(lr=0.1), {"epochs": 3}) is None

    class Unknown(Recipe):
        name = "unknown"
        schedule = "linear"

    with pytest.raises(RecipeError, match="schedule 'linear'"):
        Unknown().make_scheduler(SimpleNamespace(lr=0.1), {"epochs": 3})
