"""Progress of the recipes' long phases (preparing data, scoring a test set) on stderr.

On a terminal a phase shows a tqdm bar that disappears when it ends; where stderr is not a terminal (a log, CI)
the bar hides, and a phase that runs once (``announce``) prints one plain line instead ("extracting MFCCs from
3,000 recordings..."), so a log never sits silent for long without saying why. Passes that repeat every epoch
(validation) show the bar only: the trainer's own line per epoch covers them in a log.
"""

import sys

from tqdm import tqdm


def phase(iterable, description, *, total=None, unit="it", announce=True):
    """``iterable``, wrapped in a progress bar named ``description`` (``total`` steps of ``unit``; by default
    ``len(iterable)``). With ``announce``, one line ``description...`` on stderr where the bar is hidden. A
    ``description`` of None leaves ``iterable`` as it is (a short pass, such as one prediction, shows nothing)."""
    if description is None:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    # disable=None: tqdm hides the bar when stderr is not a terminal.
    bar = tqdm(iterable, total=total, desc=description, unit=unit, leave=False, file=sys.stderr, disable=None)
    if announce and bar.disable:
        print(f"{description}...", file=sys.stderr, flush=True)
    return bar
