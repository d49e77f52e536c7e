"""What every task shares: the user's files (hyperparameters ``data`` and ``test_data``, which the CLI's
``--data`` and ``--test-data`` set), their fingerprints and the fitted preprocessing in ``config.json``, and the
check that the files a run was trained on did not change since."""

import hashlib
import re
from pathlib import Path
from typing import ClassVar

from lstmzoo.errors import UserError
from lstmzoo.recipe import Recipe


def fingerprint(path):
    """The sha256 of a file, or of a folder's files (their relative names and contents, in name order)."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{member.relative_to(path).as_posix()}\0{fingerprint(member)}\0".encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A reader's advice to train with another setting, and what predict (whose run keeps its settings) says instead.
PREDICT_ADVICE = (
    (re.compile(r"; remove it, or set missing= to one of [^;]*$"),
     "; remove or fill it (this run refuses missing values: one trained with --set missing=... fills them)"),
    (re.compile(r"; name (yours|the id, time and target columns) with [^;]*$"),
     "; name the columns as in the file this run was trained on"),
)


class Task(Recipe):
    """A recipe that trains on the user's files. ``data`` (what ``load_data`` returns) may carry ``fitted``: the
    preprocessing fitted on the training part (scalers, vocabulary, label names) as plain JSON values, which
    ``config.json`` records so that ``predict`` needs only the run folder."""
    task = True
    DATA_ROLES = ("data", "test_data")
    # The version of what a run of this task holds (model inputs, the fitted record): raised when a change makes
    # older run folders unreadable, so that they are refused in one sentence instead of failing on a shape.
    # config.json records it as "task_format"; runs from before that field are format 1.
    format = 1
    # The layouts ``--data`` and ``--test-data`` take, as ``lstmzoo info TASK`` shows them under "data:".
    formats = ""
    # ``predict``'s options (those of the zoo's recipes) a task does not take -> the sentence that says why.
    predict_refusals: ClassVar[dict] = {}

    @classmethod
    def resolve(cls, overrides=None):
        """``Recipe.resolve``; its sentence about an unknown setting names the task as a task."""
        try:
            return super().resolve(overrides)
        except UserError as error:
            prefix = f"recipe {cls.name!r} "
            if not str(error).startswith(prefix):
                raise
            raise UserError(f"the {cls.name} task {str(error)[len(prefix):]}") from None

    @classmethod
    def describe(cls):
        return {**super().describe(), "formats": cls.formats}

    def run_config(self, hp, data=None):
        files = {role: {"path": str(Path(hp[role]).resolve()), "sha256": fingerprint(hp[role])}
                 for role in self.DATA_ROLES if hp[role]}
        fitted = getattr(data, "fitted", None)
        return {**super().run_config(hp), "task_format": self.format, "data_files": files,
                **({"fitted": fitted} if fitted is not None else {})}

    def check_run_format(self, run_dir):
        from lstmzoo.checkpoint import CheckpointError, read_config
        made = read_config(run_dir, self.name, of_recipe=True).get("task_format", 1)
        if made != self.format:
            raise CheckpointError(f"the run in {run_dir} was trained by another version of the {self.name} task "
                                  f"(run format {made}, this lstmzoo reads format {self.format}): train it again")

    def restore(self, run_dir, weights=None, device=None):
        """``Recipe.restore``, with ``data`` and ``test_data`` the absolute paths config.json records for the files
        the run read: a path given relative to the folder ``train`` ran in names the same file from anywhere, and
        ``check_data_unchanged`` checks it."""
        from lstmzoo.checkpoint import read_config
        self.check_run_format(run_dir)
        model, hp = super().restore(run_dir, weights=weights, device=device)
        recorded = read_config(run_dir, self.name, of_recipe=True).get("data_files") or {}
        for role, entry in recorded.items():
            if role in self.DATA_ROLES and hp.get(role) and isinstance(entry, dict) and entry.get("path"):
                hp[role] = entry["path"]
        return model, hp

    def recorded_preprocessing(self, run_dir):
        """The ``fitted`` preprocessing in ``run_dir``'s config.json; UserError when it has none."""
        from lstmzoo.checkpoint import read_config
        fitted = read_config(run_dir, self.name, of_recipe=True).get("fitted")
        if not isinstance(fitted, dict):
            raise UserError(f"{run_dir}'s config.json records no fitted preprocessing: it is not a finished run "
                            f"of {self.name}")
        return fitted

    def prediction(self, rows, output=None, **extra):
        """``predict``'s result for ``rows`` (columns: name -> array): written to ``output`` as CSV when given
        (atomically), else printed as CSV by ``format_prediction``; JSON-serialisable, with ``extra`` beside."""
        from lstmzoo.checkpoint import atomic_write_bytes

        from .reports import csv_text, json_columns
        text = csv_text(rows)
        if output is not None:
            atomic_write_bytes(Path(output), text.encode("utf-8"))
        return {"rows": json_columns(rows), "text": text, "output": None if output is None else str(output),
                **extra}

    @staticmethod
    def read_input(read):
        """``read()`` of ``predict``'s input; a reader's advice to set a setting (``missing=``, ``text_column=``,
        ...), which ``predict`` does not take (the run keeps those it was trained with), told as what to do."""
        try:
            return read()
        except UserError as error:
            message = str(error)
            for advice, instead in PREDICT_ADVICE:
                message = advice.sub(instead, message)
            if message == str(error):
                raise
            raise UserError(message) from None

    def format_prediction(self, result):
        if result["output"] is None:
            return result["text"].rstrip("\n")
        return f"wrote {len(next(iter(result['rows'].values())))} rows to {result['output']}"

    def check_data_unchanged(self, run_dir, hp):
        """UserError when a file the run in ``run_dir`` trained or tested on is missing or changed since."""
        from lstmzoo.checkpoint import read_config
        recorded = read_config(run_dir, self.name, of_recipe=True).get("data_files") or {}
        for role, entry in recorded.items():
            if role not in self.DATA_ROLES or hp.get(role) != entry.get("path", hp.get(role)):
                continue
            path = Path(entry["path"])
            if not path.exists():
                raise UserError(f"{path}, which the run in {run_dir} was trained on, is gone; evaluate on another "
                                f"file with --data")
            if fingerprint(path) != entry.get("sha256"):
                raise UserError(f"{path} changed since the run in {run_dir} was trained on it (its sha256 differs); "
                                f"evaluate on a file of your choice with --data")
