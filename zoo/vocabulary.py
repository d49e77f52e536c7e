"""Text recipes' shared pieces: a vocabulary built from the training data and kept in the run folder, and
reading ``predict``'s text input.

A recipe whose model is sized by a vocabulary (words, characters) builds it from the training split when it
trains; ``evaluate``, ``predict`` and ``generate`` must rebuild exactly that model from the run folder alone,
so ``train`` writes the vocabulary there as JSON (``vocab.json``) and ``restore`` reads it back.
"""

from pathlib import Path

from lstmzoo.errors import UserError

VOCAB = "vocab.json"


class RunVocabulary:
    """Mixin, listed before ``Recipe`` in the bases. The recipe keeps its vocabulary (any JSON value) in
    ``self._vocab`` and implements ``make_vocabulary(hp)`` (build it from the training data) and
    ``is_vocabulary(value)`` (whether a value read back is one of its own). While ``self._vocab_from_run`` is
    set (during ``train``, after ``restore``), ``load_data`` must use ``self._vocab`` rather than build one."""

    _vocab = None
    _vocab_from_run = False

    def make_vocabulary(self, hp):
        raise NotImplementedError

    def is_vocabulary(self, value):
        raise NotImplementedError

    def train(self, hp, run_dir, *, resume=False, progress=True, **options):
        from lstmzoo import distributed
        from lstmzoo.checkpoint import check_new_run_folder, run_folder_lock, write_json
        world = distributed.world()
        if world is not None and world.rank != 0:
            # Data-parallel training: rank 0 holds the run folder and writes vocab.json into it; this rank builds
            # the same vocabulary and trains beside it.
            self._vocab, self._vocab_from_run = self.make_vocabulary(hp), True
            try:
                return super().train(hp, run_dir, resume=resume, progress=progress, **options)
            finally:
                self._vocab_from_run = False
        # The vocabulary is written before fit takes the run folder's lock, so take it here: one writer, and
        # never into a folder that is not a fresh run folder. ``options`` go to Recipe.train (a sweep's
        # on_epoch_end, data-parallel hooks).
        with run_folder_lock(run_dir):
            if not resume:
                check_new_run_folder(run_dir)
            self._vocab_from_run = False
            self._vocab = self.make_vocabulary(hp)
            write_json(Path(run_dir) / VOCAB, self._vocab)
            self._vocab_from_run = True
            try:
                return super().train(hp, run_dir, resume=resume, progress=progress, **options)
            finally:
                self._vocab_from_run = False

    def restore(self, run_dir, weights=None, device=None):
        from lstmzoo.checkpoint import CheckpointError, read_json
        path = Path(run_dir) / VOCAB
        if (Path(run_dir) / "config.json").is_file() and not path.is_file():
            raise CheckpointError(f"{run_dir} has no {VOCAB}: {self.name} needs the vocabulary of its run")
        if path.is_file():
            value = read_json(path)
            if not self.is_vocabulary(value):
                raise CheckpointError(f"{path} is not a {self.name} vocabulary")
            self._vocab, self._vocab_from_run = value, True
        return super().restore(run_dir, weights=weights, device=device)


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
