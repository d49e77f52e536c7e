"""Text recipes' shared pieces: the vocabulary of a run trained before the vocabulary travelled in the data, and
reading ``predict``'s text input.

A recipe whose model is sized by a vocabulary (words, characters) builds it in ``load_data`` from the training
data and carries it in what ``load_data`` returns; ``train`` puts its size (tinyshakespeare: the characters
themselves) among the hyperparameters, so that ``build_model(hp)`` and ``restore`` need nothing else, and the
run's config.json records the vocabulary. Runs trained before kept it in ``vocab.json`` beside config.json and
recorded no size: ``older_run_vocabulary`` reads that file and ``restore_older_run`` sizes their model from it.
"""

import copy
from pathlib import Path

from lstmzoo.errors import UserError

VOCAB = "vocab.json"        # where runs trained before the vocabulary travelled in the data kept it


def older_run_vocabulary(recipe, run_dir, is_vocabulary):
    """The vocabulary in ``run_dir``'s vocab.json (a run trained before the vocabulary travelled in the data);
    ``checkpoint.CheckpointError`` (one sentence) when the file is missing or ``is_vocabulary(value)`` says it is
    not one of ``recipe``'s."""
    from lstmzoo.checkpoint import CheckpointError, read_json
    path = Path(run_dir) / VOCAB
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {VOCAB} and its config.json records no vocabulary: "
                              f"{recipe.name} needs the vocabulary of its run")
    value = read_json(path)
    if not is_vocabulary(value):
        raise CheckpointError(f"{path} is not a {recipe.name} vocabulary")
    return value


def restore_older_run(recipe, run_dir, sizes, weights=None, device=None):
    """``Recipe.restore`` of a run whose config.json lacks the hyperparameters ``sizes`` (name -> value) that size
    its model (a run trained before the vocabulary travelled in the data): they come from its vocab.json, and the
    returned ``hp`` holds them. ``recipe`` itself is left as it was."""
    from lstmzoo.recipe import Recipe
    sized = copy.copy(recipe)       # a throw-away view whose build_model adds the sizes; `recipe` keeps no state
    sized.build_model = lambda hp: recipe.build_model({**hp, **sizes})
    model, hp = Recipe.restore(sized, run_dir, weights=weights, device=device)
    return model, {**hp, **sizes}


def input_lines(input, recipe, what="text", errors="strict"):
    """``(lines, source)`` of a text recipe's ``predict`` input: the text itself, or the non-empty lines
    (stripped) of the UTF-8 file it names. ``what`` names the expected text in the error message;
    ``errors="replace"`` reads undecodable bytes as U+FFFD instead of refusing the file. UserError, one
    sentence, for an empty text or an unreadable or empty file."""
    if input is None or not str(input).strip():
        raise UserError(f"{recipe} needs a non-empty {what} (or a file of lines) as --input")
    path = Path(str(input))
    try:
        is_file = path.is_file()
    except OSError:     # a sentence too long to be a file name
        is_file = False
    if not is_file:
        return [str(input).strip()], "text"
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors=errors).splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"{path} cannot be read as UTF-8 text") from None
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror or error})") from None
    if not lines:
        raise UserError(f"{path} holds no text (give one sentence per line)")
    return lines, str(path)
