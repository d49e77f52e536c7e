"""The public task layer: forecasting, sequence classification and regression, text classification.

Recipes, plugins and the CLI's tasks build on what is exported here, never on ``lstmzoo.zoo``.
``readers`` turns a user's files into arrays (see its docstring for the formats understood).
"""

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

__all__ = [
    "MISSING_FILLS",
    "Frequency",
    "SequenceSet",
    "SeriesSet",
    "TextSet",
    "fill_missing",
    "read_sequences",
    "read_series",
    "read_texts",
]
