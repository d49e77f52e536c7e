"""Checkpoints: weights as safetensors under PyTorch's names, training state as safetensors + JSON.

Every file is written atomically (a temporary file in the same directory, fsync, ``os.replace``), so a
reader sees either the old complete file or the new complete file, never a mix. Nothing here uses pickle.

A run folder (``lstmzoo.train.fit`` writes it) holds:

===========================  ===========================================================================
``config.json``              the recipe's config (recipe name, hyperparameters) plus ``versions``
                             (lstmzoo, numpy, numba, python) and ``created`` (UTC, ISO 8601); written
                             once, when a fresh run starts
``weights-last.safetensors`` the model after the last completed epoch
``weights-best.safetensors`` the model after the epoch with the best monitored metric
``optimizer.safetensors``    the optimizer's arrays (moments, momentum buffers), last completed epoch
``state.json``               the commit marker of a checkpoint: ``epoch`` completed, ``optimizer``
                             scalars (lr, step count, hyperparameters), ``scheduler`` state, ``rng``
                             (``lstmzoo.random.get_state()``), ``monitor``, ``mode``, ``best_metric``,
                             ``best_epoch``, ``epochs_without_improvement``, ``stopped_early``, ``format``
``metrics.jsonl``            one JSON object per completed epoch: ``epoch``, ``train_loss``, the
                             validation metrics, ``lr``, ``seconds``, ``items_per_second``
``learning-curve.png``       train loss and the monitored metric per epoch (if matplotlib is installed)
===========================  ===========================================================================

Weights files load in PyTorch with ``safetensors.torch.load_file(path)``: a model holding
``self.lstm = LSTM(...)`` stores ``lstm.weight_ih_l0`` and so on, which ``torch.nn.LSTM.load_state_dict``
takes once the ``lstm.`` prefix is stripped. Each safetensors file we write carries in its metadata a
SHA-256 of its tensors (so a flipped byte in the data is caught, which the format alone does not do) and,
for the training files, the epoch it belongs to.
"""

import datetime
import hashlib
import json
import os
import platform
import secrets
import struct
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from . import __version__
from . import random as lz_random
from .array import to_numpy

CONFIG = "config.json"
STATE = "state.json"
WEIGHTS_LAST = "weights-last.safetensors"
WEIGHTS_BEST = "weights-best.safetensors"
OPTIMIZER = "optimizer.safetensors"
METRICS = "metrics.jsonl"
LEARNING_CURVE = "learning-curve.png"

FORMAT = 1
_CHECKSUM_KEY = "lstmzoo.sha256"
_EPOCH_KEY = "lstmzoo.epoch"


class CheckpointError(Exception):
    """A checkpoint or run folder that cannot be used; the message is one sentence meant for the user."""


# ------------------------------------------------------------------------------------------ atomic files
def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, whole."""
    path = Path(path)
    # A unique name per writer; the leading dot and the suffix keep it out of anyone's way, and readers only
    # ever open the final names, so a temporary file left by a hard crash is never picked up.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual permissions under the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory):
    # Makes the rename itself durable, so files committed in order reach the disk in that order.
    # Windows cannot open a directory for fsync; its renames are journalled by NTFS.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def read_json(path):
    """The object in a JSON file; CheckpointError, naming the file, if it is missing or not valid JSON."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupted?): {e}.") from None


# -------------------------------------------------------------------------------------------- metrics log
def append_jsonl(path, obj):
    """Append one JSON object as a line (the metrics log), flushed and fsynced."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path):
    """The objects of a JSON-lines file ([] when it does not exist).

    A last line that does not parse is what a crash during ``append_jsonl`` leaves, and is dropped; a bad
    line anywhere else is corruption and raises CheckpointError.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise CheckpointError(f"{path} line {number} is not valid JSON.") from None
    return rows


def truncate_jsonl(path, last_epoch):
    """Keep only the rows with ``epoch <= last_epoch`` (rewriting the file atomically) and return them.

    On resume this drops the rows of epochs that finished after the last checkpoint, which will run again.
    """
    rows = [row for row in read_jsonl(path) if row["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
    return rows


# ------------------------------------------------------------------------------------------------ weights
def _checksum(tensors):
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name]
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(np.asarray(array, order="C").reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def save_weights(path, params, metadata=None):
    """Save a dict of name -> array (NumPy or CuPy) as safetensors, names exactly as given, atomically.

    ``metadata`` is an optional dict of str -> str stored in the file's header.
    """
    # order="C", not ascontiguousarray, which would turn a 0-d array into shape (1,).
    tensors = {name: np.asarray(to_numpy(value), order="C") for name, value in params.items()}
    header = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in header.items()):
        raise TypeError("safetensors metadata must map str to str")
    header[_CHECKSUM_KEY] = _checksum(tensors)
    atomic_write_bytes(path, safetensors.numpy.save(tensors, metadata=header))


def load_weights_and_metadata(path):
    """(dict of name -> NumPy array in sorted name order, metadata dict) from a safetensors file.

    CheckpointError, naming the file, when it is missing, truncated, corrupted or not safetensors.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist.") from None
    try:
        # The library hands the tensors back in hash order; sorted names make iteration repeatable.
        tensors = dict(sorted(safetensors.numpy.load(data).items()))
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is not a valid safetensors file (truncated, corrupted or another "
                              f"format): {e}.") from None
    # The library has validated the header; it only does not hand back the metadata from bytes.
    (header_size,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
    expected = metadata.get(_CHECKSUM_KEY)
    if expected is not None and expected != _checksum(tensors):
        raise CheckpointError(f"{path} is corrupted: its tensors do not match the checksum stored with them.")
    return tensors, metadata


def load_weights(path):
    """Dict of name -> NumPy array from a safetensors file (ours or anyone's); CheckpointError if unusable."""
    return load_weights_and_metadata(path)[0]


# ------------------------------------------------------------------------------------------ run folder
def versions():
    """Versions of what produced a run, for config.json."""
    def installed(package):
        try:
            return importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {"lstmzoo": __version__, "numpy": np.__version__, "numba": installed("numba"),
            "python": platform.python_version()}


def write_config(run_dir, config=None):
    """Write config.json: ``config`` (recipe name, hyperparameters) plus versions and the creation time."""
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_json(Path(run_dir) / CONFIG, {**(config or {}), "versions": versions(), "created": created})


def has_checkpoint(run_dir):
    """Whether ``run_dir`` holds a committed checkpoint (its state.json)."""
    return (Path(run_dir) / STATE).exists()


# Why staging: the weights, optimizer and state files of one epoch must be loaded together, but no file system
# replaces three files in one atomic step. So each epoch's safetensors files are first written beside their
# final names as "<name>.next" (each atomically, and tagged with the epoch in their metadata), then state.json
# is written: that write is the commit. Only afterwards are the staged files renamed onto their final names.
# A crash before the commit leaves the previous epoch's files untouched (the stale ".next" files carry a newer
# epoch than state.json and are discarded); a crash after it leaves ".next" files whose epoch equals
# state.json's, and loading finishes their renames. Either way what loads is one consistent epoch, and the
# final names only ever hold complete files of a committed epoch.
def _staged(path):
    return path.with_name(path.name + ".next")


def _stage(path, params, epoch):
    save_weights(_staged(path), params, {_EPOCH_KEY: str(epoch)})


def _settle(path, epoch):
    """Finish or discard the staged copy of ``path`` given the committed ``epoch``."""
    staged = _staged(path)
    if not staged.exists():
        return
    try:
        staged_epoch = int(load_weights_and_metadata(staged)[1].get(_EPOCH_KEY, -1))
    except CheckpointError:
        staged_epoch = None     # a staged file can only be unreadable if it was never committed
    if staged_epoch == epoch:
        os.replace(staged, path)
        _fsync_directory(path.parent)
    else:
        staged.unlink()


def _load_epoch_file(path, epoch):
    tensors, metadata = load_weights_and_metadata(path)
    if metadata.get(_EPOCH_KEY) != str(epoch):
        raise CheckpointError(f"{path} belongs to epoch {metadata.get(_EPOCH_KEY)}, not to epoch {epoch} "
                              f"recorded in {STATE}, so the checkpoint is inconsistent.")
    return tensors


def save_training_state(run_dir, model, optimizer, scheduler, state, *, save_best=False):
    """Checkpoint the end of an epoch: weights-last, optimizer, state.json (weights-best if ``save_best``).

    ``state`` holds the trainer's own fields and must include ``epoch``; the optimizer's scalars, the
    scheduler's state and the shared RNG's state are added here. A crash at any point leaves the previous
    checkpoint or this one loadable, never a mix (see the comment above ``_staged``).
    """
    run_dir = Path(run_dir)
    epoch = state["epoch"]
    params = model.parameters()
    optimizer_arrays, optimizer_scalars = optimizer.state_dict()
    _stage(run_dir / WEIGHTS_LAST, params, epoch)
    _stage(run_dir / OPTIMIZER, optimizer_arrays, epoch)
    if save_best:
        _stage(run_dir / WEIGHTS_BEST, params, epoch)
    write_json(run_dir / STATE, {
        **state,
        "format": FORMAT,
        "optimizer": optimizer_scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": lz_random.get_state(),
    })
    for name in (WEIGHTS_LAST, OPTIMIZER, WEIGHTS_BEST):
        _settle(run_dir / name, epoch)


def load_training_state(run_dir, model, optimizer, scheduler):
    """Restore the last committed checkpoint of ``run_dir`` into model, optimizer, scheduler, shared RNG.

    Returns the dict stored in state.json. CheckpointError when there is none or it cannot be used.
    """
    run_dir = Path(run_dir)
    if not has_checkpoint(run_dir):
        raise CheckpointError(f"{run_dir} holds no checkpoint to resume ({STATE} is missing).")
    state = read_json(run_dir / STATE)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir / STATE} has checkpoint format {state.get('format')!r}; this "
                              f"lstmzoo reads format {FORMAT}.")
    epoch = state["epoch"]
    for name in (WEIGHTS_LAST, OPTIMIZER, WEIGHTS_BEST):
        _settle(run_dir / name, epoch)
    weights = _load_epoch_file(run_dir / WEIGHTS_LAST, epoch)
    optimizer_arrays = _load_epoch_file(run_dir / OPTIMIZER, epoch)
    # The objects check what they are given; their ValueErrors here mean the run was made with another setup.
    try:
        model.load_parameters(weights)
    except ValueError as e:
        raise CheckpointError(f"{run_dir / WEIGHTS_LAST} does not fit this model: {e}.") from None
    try:
        optimizer.load_state_dict(optimizer_arrays, state["optimizer"])
    except ValueError as e:
        raise CheckpointError(f"{run_dir / OPTIMIZER} does not fit this optimizer: {e}.") from None
    if scheduler is not None:
        try:
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(f"the scheduler state in {run_dir / STATE} does not fit this scheduler: "
                                  f"{e}.") from None
    lz_random.set_state(state["rng"])
    return state


def load_best_weights(run_dir, model):
    """Load weights-best into ``model``; False (model unchanged) when the run saved no best weights."""
    path = Path(run_dir) / WEIGHTS_BEST
    if not path.exists():
        return False
    model.load_parameters(load_weights(path))
    return True
