"""The public task layer: forecasting, sequence classification and regression, text classification.

Recipes, plugins and the CLI's tasks build on what is exported here, never on ``lstmzoo.zoo``.
``readers`` turns a user's files into arrays (see its docstring for the formats understood);
``SequenceClassificationRecipe`` is the base of a recipe (a plugin's, the zoo's) that classifies sequences of its
own dataset, ``ForecastingRecipe`` (with ``forecasting_hyperparameters``) of a recipe that forecasts a series of
its own on the ``ForecastingTask``; ``padded_batch`` and ``batches_by_length`` are how every task and recipe
batches variable-length sequences, scoring ``EVAL_BATCH`` of them at a time. The models (``SequenceModel``, ``TextClassifier``,
``FrameModel``) import the layers, so they are loaded on first use: ``from lstmzoo.tasks import SequenceModel``
inside a recipe's ``build_model`` keeps listing recipes light.
"""

from .forecasting import ForecastingTask
from .forecasting_recipes import ForecastingRecipe, forecasting_hyperparameters, read_one_series
from .readers import (
    MISSING_FILLS,
    Frequency,
    SequenceSet,
    SeriesSet,
    TextSet,
    fill_missing,
    read_sequences,
    read_series,
    read_texts,
)
from .recipes import (
    LabelledSequences,
    SequenceClassificationData,
    SequenceClassificationRecipe,
    classification_hyperparameters,
)
from .reports import EVAL_BATCH, batches_by_length, padded_batch

_MODELS = ("FrameModel", "SequenceModel", "TextClassifier")


def __getattr__(name):
    if name in _MODELS:
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EVAL_BATCH",
    "MISSING_FILLS",
    "ForecastingRecipe",
    "ForecastingTask",
    "FrameModel",
    "Frequency",
    "LabelledSequences",
    "SequenceClassificationData",
    "SequenceClassificationRecipe",
    "SequenceModel",
    "SequenceSet",
    "SeriesSet",
    "TextClassifier",
    "TextSet",
    "batches_by_length",
    "classification_hyperparameters",
    "fill_missing",
    "forecasting_hyperparameters",
    "padded_batch",
    "read_one_series",
    "read_sequences",
    "read_series",
    "read_texts",
]
