"""Moved: the base of the recipes that forecast a series of their own is ``lstmzoo.tasks.ForecastingRecipe`` (the
forecasting task with a recipe's dataset, loader and defaults). These names remain for plugins written against
the old module (the example plugin among them) and will go once they import from ``lstmzoo.tasks``."""

from lstmzoo.tasks.forecasting_recipes import ForecastingRecipe as TimeSeriesRecipe
from lstmzoo.tasks.forecasting_recipes import forecasting_hyperparameters, read_one_series

__all__ = ["TimeSeriesRecipe", "forecasting_hyperparameters", "read_one_series"]
