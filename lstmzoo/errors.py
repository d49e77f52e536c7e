"""The one exception that means "the user asked for something that cannot be done".

The CLI prints a ``UserError`` as its one sentence and exits with status 2. Anything else that escapes a
command is a bug (ours or a plugin's): the CLI says so in one line, says where to report it, and shows the
traceback with ``--debug`` or ``LSTMZOO_DEBUG=1``. So the data layer, the run-folder code, the tasks and
every recipe raise ``UserError`` for a user's mistake (a bad file, a bad ``--set``, a damaged run folder) and
let everything else propagate.

``UserError`` is a ``ValueError``, so library code that catches ``ValueError`` keeps working. This module
imports nothing, so the recipes' metadata modules can import it without slowing ``lstmzoo list``.
"""


class UserError(ValueError):
    """A user's mistake; the message is one sentence that says what to do."""


class RecipeError(Exception):
    """A recipe (usually a plugin's) broke the recipe contract at run time; the message names the recipe and the
    rule. Not the user's mistake, and not a bug of lstmzoo's own: the CLI prints the sentence, exit status 1."""


class NonFiniteError(ValueError):
    """An array a layer checks (lstmzoo.nn.layers.check_array) holds NaN or infinity. A ValueError like every
    other argument check; the trainer tells it apart by its type (inside a training step it means the model
    diverged, or the data holds NaN). Here rather than in lstmzoo.nn, so that the trainer imports no layers."""
