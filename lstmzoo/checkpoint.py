"""Checkpoints: weights as safetensors under PyTorch's names, training state as safetensors + JSON.

Every file is written atomically (a temporary file in the same directory, fsync, ``os.replace``), so a
reader sees either the old complete file or the new complete file, never a mix. Nothing here uses pickle.

A run folder (``lstmzoo.train.fit`` writes it) holds:

===========================  ===========================================================================
``config.json``              the recipe's config (recipe name, hyperparameters) plus ``versions``
                             (lstmzoo, numpy, numba, python), ``created`` (UTC, ISO 8601), ``format``
                             and ``sha256``; written once, when a fresh run starts
``weights-last.safetensors`` the model after the last completed epoch
``weights-best.safetensors`` the model after the epoch with the best monitored metric
``optimizer.safetensors``    the optimizer's arrays (moments, momentum buffers), last completed epoch
``state.json``               the commit marker of a checkpoint: ``epoch`` completed, ``optimizer``
                             scalars (lr, step count, hyperparameters), ``scheduler`` state, ``rng``
                             (``lstmzoo.random.get_state()``), ``monitor``, ``mode``, ``best_metric``,
                             ``best_epoch``, ``epochs_without_improvement``, ``stopped_early``, ``format``,
                             ``sha256``
``metrics.jsonl``            one JSON object per completed epoch: ``epoch``, ``train_loss``, the
                             validation metrics, ``lr``, ``seconds``, ``items_per_second``
``learning-curve.png``       train loss and the monitored metric per epoch (if matplotlib is installed)
``.lstmzoo.lock``            the lock file: one writer at a time (``run_folder_lock``)
===========================  ===========================================================================

Weights files load in PyTorch with ``safetensors.torch.load_file(path)``: a model holding
``self.lstm = LSTM(...)`` stores ``lstm.weight_ih_l0`` and so on, which ``torch.nn.LSTM.load_state_dict``
takes once the ``lstm.`` prefix is stripped. Each safetensors file we write carries in its metadata a
SHA-256 of its tensors (so a flipped byte in the data is caught, which the format alone does not do) and,
for the training files, the epoch it belongs to. ``config.json`` and ``state.json`` carry one too (see
``write_checked_json``): any changed byte of them is refused, not loaded with other values.

One writer at a time: ``run_folder_lock`` holds an OS lock on ``.lstmzoo.lock`` in the folder (``fcntl.flock``
on POSIX, ``msvcrt.locking`` on Windows), which the OS releases when the process dies, however it dies.
``lstmzoo.train.fit`` and the CLI's ``train``, ``evaluate`` and ``predict`` hold it; a second writer is
refused with a ``CheckpointError``. Temporary files a killed writer left behind are removed when the lock is
next taken.

Every file is written through ``atomic_write_bytes`` (or ``append_jsonl``, which refuses a symbolic link),
figures through ``save_figure``: a rename replaces a symbolic link planted in the folder instead of writing
through it to a file outside. Readers open only regular files (never a FIFO, a device or a directory), and
every failure of the file system (a read-only folder, a path under a file, a full disk) is a
``CheckpointError`` naming the path and the reason: the user's to fix, one sentence.
"""

import contextlib
import datetime
import errno
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import stat
import struct
import threading
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from . import __version__
from . import random as lz_random
from .array import to_numpy
from .errors import UserError

CONFIG = "config.json"
STATE = "state.json"
WEIGHTS_LAST = "weights-last.safetensors"
WEIGHTS_BEST = "weights-best.safetensors"
WEIGHTS_AVERAGE = "weights-average.safetensors"  # fit(average=k): the mean of the last k epochs' weights
OPTIMIZER = "optimizer.safetensors"
METRICS = "metrics.jsonl"
LEARNING_CURVE = "learning-curve.png"
LOCK = ".lstmzoo.lock"
# The files a run folder's own code writes (a recipe may add its own, such as vocab.json or plots).
RUN_FILES = (CONFIG, STATE, WEIGHTS_LAST, WEIGHTS_BEST, WEIGHTS_AVERAGE, OPTIMIZER, METRICS, LEARNING_CURVE)

# Format 2 added the checksum of config.json and state.json. A file of format 1 (or a config.json without
# "format") was written by an older lstmzoo, before there was a checksum: it is read without one, so that
# such runs can still be evaluated and resumed. A file that claims format 2 but has no checksum is refused.
FORMAT = 2
READABLE_FORMATS = (1, 2)
_CHECKSUM_KEY = "lstmzoo.sha256"
_EPOCH_KEY = "lstmzoo.epoch"
_JSON_CHECKSUM_KEY = "sha256"


class CheckpointError(UserError):
    """A checkpoint or run folder that cannot be used; the message is one sentence meant for the user."""


def _reason(error):
    """The OS's words for an OSError ("permission denied"), without the path it repeats."""
    return (error.strerror or str(error) or type(error).__name__).lower()


# ------------------------------------------------------------------------------------------ atomic files
def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, whole.

    The rename replaces whatever ``path`` is, a symbolic link included, so nothing is ever written through a
    link to a file elsewhere. CheckpointError, naming the path and the reason, when the file system refuses.
    """
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as error:
        raise CheckpointError(f"cannot write {path}: {_reason(error)}.") from error


_TEMPORARY = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")


def _atomic_write(path, data):
    # A unique name per writer; the leading dot and the suffix keep it out of anyone's way, and readers only
    # ever open the final names, so a temporary file left by a hard crash is never picked up (and the next
    # holder of the run folder's lock removes it: _TEMPORARY matches these names).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual permissions under the umask;
    # O_EXCL also refuses to follow a symbolic link planted under the temporary name.
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


def save_figure(figure, path, dpi=100):
    """Render a matplotlib ``Figure`` to PNG in memory and write it to ``path`` atomically.

    matplotlib's own ``savefig(path)`` opens the path and so writes through a symbolic link to wherever it
    points; every figure that goes into a run folder is written through here instead.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())


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


def _dumps(obj, **options):
    # allow_nan=False: NaN and Infinity are not JSON, and strict parsers (jq, JavaScript, Go) refuse them.
    return json.dumps(obj, allow_nan=False, **options)


def write_json(path, obj):
    """Write ``obj`` as indented standard JSON (never NaN or Infinity), atomically."""
    atomic_write_bytes(path, (_dumps(obj, indent=2) + "\n").encode("utf-8"))


def read_regular_file(path):
    """The bytes of ``path``, which must be a regular file (after following links): a directory, a FIFO (whose
    read would hang) or a device such as /dev/zero (which never ends) is refused with CheckpointError, as are
    a missing or unreadable file."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO without a writer would otherwise wait for ever; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist.") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {_reason(error)}.") from error
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path} is not a regular file (a folder, a pipe or a device), so it is not "
                                  f"part of a run.")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {_reason(error)}.") from error
    finally:
        os.close(fd)


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _loads(text):
    """Strict JSON: NaN, Infinity and numbers that overflow a float are refused (ValueError)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def read_json(path):
    """The object in a JSON file; CheckpointError, naming the file, if it is missing, not a regular file or
    not valid standard JSON (truncated, corrupted, nested too deep, a number out of range)."""
    path = Path(path)
    return _parse_json(path, read_regular_file(path))


def _parse_json(path, data):
    try:
        return _loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:      # UnicodeDecodeError and JSONDecodeError are ValueErrors
        detail = "nested too deep" if isinstance(e, RecursionError) else str(e).rstrip(".")
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupted?): {detail}.") from None


# ----------------------------------------------------------------------------------- checksummed JSON
# config.json and state.json carry a SHA-256 of their content, like the weights files. The file is exactly the
# indented serialisation of its object, and the checksum covers the object's canonical serialisation (sorted
# keys, no spaces). On reading both are checked: the bytes must be what writing the parsed object gives (so an
# edit that keeps the values, "1e-05" -> "1E-05", is refused too) and the values must match the checksum.
def _json_digest(obj):
    body = {key: value for key, value in obj.items() if key != _JSON_CHECKSUM_KEY}
    return hashlib.sha256(_dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def write_checked_json(path, obj):
    """Write the dict ``obj`` as ``write_json`` does, with its checksum stored in it under "sha256"."""
    write_json(path, {**obj, _JSON_CHECKSUM_KEY: _json_digest(obj)})


def read_checked_json(path, what):
    """The dict in a file ``write_checked_json`` wrote (the checksum removed); CheckpointError, one sentence,
    when it is not a JSON object, or any byte of it changed. ``what`` names the file's role in the message.

    A file without a checksum is accepted only when it says it predates them (no "format", or format 1).
    """
    path = Path(path)
    data = read_regular_file(path)      # read once: the bytes checked are the bytes parsed
    obj = _parse_json(path, data)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not {what} (it holds a JSON {type(obj).__name__}, not an object).")
    if _JSON_CHECKSUM_KEY not in obj:
        if obj.get("format", 1) != 1:
            raise CheckpointError(f"{path} has lost its checksum (it says format {obj.get('format')!r}, which "
                                  f"has one), so it is damaged and cannot be trusted.")
        return obj
    try:
        intact = (data == (_dumps(obj, indent=2) + "\n").encode("utf-8")
                  and obj[_JSON_CHECKSUM_KEY] == _json_digest(obj))
    except (ValueError, TypeError, RecursionError):
        intact = False
    if not intact:
        raise CheckpointError(f"{path} is corrupted or was edited: its content does not match the checksum "
                              f"stored in it.")
    return {key: value for key, value in obj.items() if key != _JSON_CHECKSUM_KEY}


# -------------------------------------------------------------------------------------------- metrics log
def append_jsonl(path, obj):
    """Append one JSON object as a line (the metrics log), flushed and fsynced.

    Standard JSON only (ValueError for NaN or infinity). A symbolic link at ``path`` is refused
    (CheckpointError), never written through.
    """
    line = (_dumps(obj) + "\n").encode("utf-8")
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
    try:
        if hasattr(os, "O_NOFOLLOW"):
            fd = os.open(path, flags | os.O_NOFOLLOW, 0o666)
        else:   # Windows: no O_NOFOLLOW; a check, then the open
            if path.is_symlink():
                raise OSError(errno.ELOOP, "it is a symbolic link")
            fd = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP or path.is_symlink():
            raise CheckpointError(f"{path} is a symbolic link; a run folder's metrics log is written only as a "
                                  f"file of its own, so remove the link.") from None
        raise CheckpointError(f"cannot write {path}: {_reason(error)}.") from error
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path} is not a regular file, so the metrics log cannot be written to it.")
        with os.fdopen(fd, "ab", closefd=False) as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise CheckpointError(f"cannot write {path}: {_reason(error)}.") from error
    finally:
        os.close(fd)


def read_jsonl(path):
    """The rows of a metrics log, one JSON object with an ``epoch`` per line ([] when it does not exist).

    A last line that does not parse is what a crash during ``append_jsonl`` leaves, and is dropped; a bad
    line anywhere else is corruption and raises CheckpointError.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    try:
        lines = read_regular_file(path).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not UTF-8 text, so it is not a metrics log.") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = _loads(line)
        except (ValueError, RecursionError):
            row = None
        if not isinstance(row, dict) or not _is_count(row.get("epoch")):
            if number == len(lines):
                break
            raise CheckpointError(f"{path} line {number} is not a metrics row (one JSON object with its epoch).")
        rows.append(row)
    return rows


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def truncate_jsonl(path, last_epoch):
    """Keep only the rows with ``epoch <= last_epoch`` (rewriting the file atomically) and return them.

    On resume this drops the rows of epochs that finished after the last checkpoint, which will run again.
    """
    rows = [row for row in read_jsonl(path) if row["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(_dumps(row) + "\n" for row in rows).encode("utf-8"))
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
    data = read_regular_file(path)
    try:
        # The library hands the tensors back in hash order; sorted names make iteration repeatable.
        tensors = dict(sorted(safetensors.numpy.load(data).items()))
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is not a valid safetensors file (truncated, corrupted or another "
                              f"format): {e}.") from None
    # The library has validated the header; it only does not hand back the metadata from bytes.
    (header_size,) = struct.unpack("<Q", data[:8])
    try:
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
    except (ValueError, AttributeError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file: its header holds no metadata object.")
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
    """Write config.json: ``config`` (recipe name, hyperparameters) plus versions, the creation time, the
    format and its checksum."""
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_checked_json(Path(run_dir) / CONFIG, {**(config or {}), "versions": versions(), "created": created,
                                                "format": FORMAT})


def read_config(run_dir, recipe=None, *, of_recipe=False):
    """The dict in ``run_dir``'s config.json, checked: its checksum, an object recording ``versions``, a
    ``recipe`` that is a name and ``hyperparameters`` that are an object (where present; required with
    ``of_recipe``). With ``recipe``, CheckpointError unless the run is one of that recipe. CheckpointError,
    one sentence, for a folder that is not a run folder or a damaged config.json."""
    path = Path(run_dir) / CONFIG
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{run_dir} is not a run folder: it has no {CONFIG}.")
    config = read_checked_json(path, "an lstmzoo run configuration")
    if recipe is not None and isinstance(config.get("recipe"), str) and config["recipe"] != recipe:
        raise CheckpointError(f"{run_dir} holds a run of recipe {config['recipe']!r}, not of {recipe!r}: "
                              f"use that recipe with this folder, or choose another folder.")
    for key, kind in (("versions", dict), ("recipe", str), ("hyperparameters", dict)):
        if (key in config or of_recipe or key == "versions") and not isinstance(config.get(key), kind):
            raise CheckpointError(f"{path} is not an lstmzoo run configuration (its {key!r} is missing or has "
                                  f"the wrong type).")
    if recipe is not None and config.get("recipe") != recipe:      # no recipe recorded at all
        raise CheckpointError(f"{run_dir} holds a run of no recipe, not of {recipe!r}.")
    return config


def has_checkpoint(run_dir):
    """Whether ``run_dir`` holds a committed checkpoint (its state.json)."""
    path = Path(run_dir) / STATE
    return path.exists() or path.is_symlink()


def check_new_run_folder(run_dir, names=None):
    """Refuse (CheckpointError) to start a fresh run in ``run_dir`` unless it is missing, empty, or a run
    folder (an lstmzoo config.json) whose run never committed a checkpoint: a fresh run overwrites files, and
    a folder of something else is not ours to overwrite. ``names``: consider only these entries and the epoch
    weights ``weights-epoch-N`` (``fit`` passes ``RUN_FILES``, the names it writes; the CLI checks every entry before
    a recipe writes its own)."""
    run_dir = Path(run_dir)
    if has_checkpoint(run_dir):
        raise CheckpointError(f"{run_dir} already holds a checkpoint; pass resume to continue it, or choose "
                              f"another folder.")
    try:
        entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []
    except OSError as error:
        raise CheckpointError(f"cannot use {run_dir} as a run folder: {_reason(error)}.") from error
    entries = [name for name in entries if name != LOCK and not _TEMPORARY.fullmatch(name)
               and not name.endswith(".next")
               and (names is None or name in names or _EPOCH_WEIGHTS.fullmatch(name))]
    if not entries:
        return
    if CONFIG in entries:
        try:
            read_config(run_dir)
            return
        except CheckpointError:
            pass
    raise CheckpointError(f"{run_dir} is not empty and is not an lstmzoo run folder (it holds "
                          f"{', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); choose a new or "
                          f"empty folder.")


def remove_stale_staged_files(run_dir):
    """Remove staged ``.next`` files and epoch weights (``weights-epoch-N``), which a fresh run (no state.json)
    never needs."""
    stale = [_staged(Path(run_dir) / name) for name in (WEIGHTS_LAST, OPTIMIZER, WEIGHTS_BEST)]
    for path in stale + [path for _, path in _epoch_weight_files(run_dir)]:
        if path.exists() or path.is_symlink():
            try:
                path.unlink()
            except OSError as error:
                raise CheckpointError(f"cannot remove {path}: {_reason(error)}.") from error


# ----------------------------------------------------------------------------------- averaged weights
# fit(average=k) keeps the weights of the last k epochs, each in weights-epoch-N.safetensors (tagged with its epoch
# like the checkpoint's files, written before the epoch's commit, so a committed epoch always has its file; a file
# of an epoch that never committed is rewritten when that epoch runs again), and ends with their mean in
# weights-average.safetensors. Older epochs' files are removed after each commit.
_EPOCH_WEIGHTS = re.compile(r"weights-epoch-([0-9]+)\.safetensors")


def epoch_weights_path(run_dir, epoch):
    return Path(run_dir) / f"weights-epoch-{epoch}.safetensors"


def _epoch_weight_files(run_dir):
    """``(epoch, path)`` of the epoch weights in ``run_dir``, in epoch order."""
    try:
        names = [p.name for p in Path(run_dir).iterdir()] if Path(run_dir).is_dir() else []
    except OSError:
        return []
    found = [(int(m.group(1)), Path(run_dir) / name) for name in names if (m := _EPOCH_WEIGHTS.fullmatch(name))]
    return sorted(found)


def save_epoch_weights(run_dir, params, epoch):
    """Save one epoch's weights for a later average (before that epoch's commit)."""
    save_weights(epoch_weights_path(run_dir, epoch), params, {_EPOCH_KEY: str(epoch)})


def remove_epoch_weights_before(run_dir, first):
    """Remove the epoch weights of the epochs before ``first`` (no longer in the average's window)."""
    for epoch, path in _epoch_weight_files(run_dir):
        if epoch < first:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise CheckpointError(f"cannot remove {path}: {_reason(error)}.") from error


def save_average_weights(run_dir, epochs):
    """The mean of the weights of ``epochs`` (each file checked against its epoch tag), computed in float64 and
    stored in each parameter's own dtype, written to weights-average.safetensors and returned. CheckpointError
    when an epoch's file is missing or is not that epoch's (a run resumed from a folder that did not keep them)."""
    total, dtypes = None, None
    for epoch in epochs:
        path = epoch_weights_path(run_dir, epoch)
        if not path.exists():
            raise CheckpointError(f"{path} is missing, so the weights of epochs {epochs[0]}-{epochs[-1]} cannot be "
                                  f"averaged (was the run resumed from a folder trained without averaging?).")
        tensors = _load_epoch_file(path, epoch)
        if total is None:
            total = {name: value.astype(np.float64) for name, value in tensors.items()}
            dtypes = {name: value.dtype for name, value in tensors.items()}
        else:
            if tensors.keys() != total.keys():
                raise CheckpointError(f"{path} holds other parameters than the epochs before it.")
            for name, value in tensors.items():
                total[name] += value
    mean = {name: (value / len(epochs)).astype(dtypes[name]) for name, value in total.items()}
    save_weights(Path(run_dir) / WEIGHTS_AVERAGE, mean, {"epochs": ",".join(map(str, epochs))})
    return mean


# ---------------------------------------------------------------------------------------------- the lock
# flock locks belong to an open file description, so a second open() in the same process would conflict with
# the first; the CLI holds the lock around train + evaluate while fit takes it too. Hence one descriptor per
# folder (keyed by device and inode, whatever path names it) and a count of holders in this process.
_held = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def run_folder_lock(run_dir, *, create=True):
    """Hold ``run_dir``'s lock (``.lstmzoo.lock`` in it) for the block: one writing process at a time.

    Re-entrant within a process. The OS releases it when the process ends, even by kill -9. ``create``
    makes the folder (and its parents) if missing. CheckpointError, one sentence, when another process holds
    it, or the folder cannot be made or written (a path under a file, a read-only folder, /proc).
    """
    run_dir = Path(run_dir)
    try:
        if create:
            run_dir.mkdir(parents=True, exist_ok=True)
        elif not run_dir.is_dir():
            raise CheckpointError(f"{run_dir} is not a run folder: "
                                  f"{'it is not a folder' if run_dir.exists() else 'it does not exist'}.")
        info = os.stat(run_dir)
        key = (info.st_dev, info.st_ino)
    except OSError as error:
        raise CheckpointError(f"cannot use {run_dir} as a run folder: {_reason(error)}.") from error
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            _held[key] = entry = [_acquire(run_dir), 1]
            _remove_temporary_files(run_dir)
    try:
        yield run_dir
    finally:
        with _held_guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                _release(entry[0])


def _acquire(run_dir):
    path = run_dir / LOCK
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        raise CheckpointError(f"cannot use {run_dir} as a run folder: {_reason(error)}.") from error
    try:
        _os_lock(fd)
    except OSError as error:
        holder = _holder(fd)
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, getattr(errno, "EDEADLK", None)):
            raise CheckpointError(f"{run_dir} is in use by another lstmzoo process{holder}: wait until it "
                                  f"ends, or choose another folder.") from None
        raise CheckpointError(f"cannot lock {run_dir}: {_reason(error)}.") from error
    except BaseException:
        os.close(fd)
        raise
    if hasattr(os, "pwrite"):   # who holds it, for another process's message; only informative
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
    return fd


def _holder(fd):
    try:
        pid = os.pread(fd, 32, 0).decode().strip() if hasattr(os, "pread") else ""
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


if os.name == "nt":     # pragma: no cover - the tests run on POSIX
    import msvcrt

    def _os_lock(fd):
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _release(fd):
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)
else:
    import fcntl

    def _os_lock(fd):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _release(fd):
        os.close(fd)    # closing the last descriptor of the open file description releases the flock


def _remove_temporary_files(run_dir):
    """Remove the temporary files of writes that a kill interrupted (only the lock holder writes here)."""
    try:
        names = [p.name for p in Path(run_dir).iterdir() if _TEMPORARY.fullmatch(p.name)]
    except OSError:
        return
    for name in names:
        try:
            os.unlink(Path(run_dir) / name)
        except OSError:
            pass


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
    if not staged.exists() and not staged.is_symlink():
        return
    try:
        staged_epoch = int(load_weights_and_metadata(staged)[1].get(_EPOCH_KEY, -1))
    except ValueError:          # CheckpointError included
        staged_epoch = None     # a staged file can only be unreadable if it was never committed
    try:
        if staged_epoch == epoch:
            os.replace(staged, path)
            _fsync_directory(path.parent)
        else:
            staged.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot settle {staged}: {_reason(error)}.") from error


def _load_epoch_file(path, epoch):
    tensors, metadata = load_weights_and_metadata(path)
    if metadata.get(_EPOCH_KEY) != str(epoch):
        raise CheckpointError(f"{path} belongs to epoch {metadata.get(_EPOCH_KEY)}, not to epoch {epoch} "
                              f"recorded in {STATE}, so the checkpoint is inconsistent.")
    return tensors


def save_training_state(run_dir, model, optimizer, scheduler, state, *, save_best=False, save_epoch=False):
    """Checkpoint the end of an epoch: weights-last, optimizer, state.json (weights-best if ``save_best``, the
    epoch's own weights-epoch-N if ``save_epoch``: ``fit(average=k)``).

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
    if save_epoch:
        save_epoch_weights(run_dir, params, epoch)
    write_checked_json(run_dir / STATE, {
        **state,
        "format": FORMAT,
        "optimizer": optimizer_scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": lz_random.get_state(),
    })
    for name in (WEIGHTS_LAST, OPTIMIZER, WEIGHTS_BEST):
        _settle(run_dir / name, epoch)


def read_state(run_dir):
    """The dict in ``run_dir``'s state.json, checked (checksum, format, the fields every checkpoint has).
    CheckpointError, one sentence, when there is none or it cannot be used."""
    run_dir = Path(run_dir)
    if not has_checkpoint(run_dir):
        raise CheckpointError(f"{run_dir} holds no checkpoint to resume ({STATE} is missing).")
    path = run_dir / STATE
    state = read_checked_json(path, "a checkpoint state")
    if state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(f"{path} has checkpoint format {state.get('format')!r}; this lstmzoo reads "
                              f"format {' or '.join(map(str, READABLE_FORMATS))}.")
    problem = (
        "epoch" if not _is_count(state.get("epoch")) else
        "optimizer" if not isinstance(state.get("optimizer"), dict) else
        "scheduler" if not isinstance(state.get("scheduler"), (dict, type(None))) else
        "rng" if not isinstance(state.get("rng"), dict) else None)
    if problem is not None:
        raise CheckpointError(f"{path} is damaged: its {problem!r} is missing or has the wrong type.")
    return state


def load_training_state(run_dir, model, optimizer, scheduler):
    """Restore the last committed checkpoint of ``run_dir`` into model, optimizer, scheduler, shared RNG.

    Returns the dict stored in state.json. CheckpointError when there is none or it cannot be used.
    """
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    epoch = state["epoch"]
    for name in (WEIGHTS_LAST, OPTIMIZER, WEIGHTS_BEST):
        _settle(run_dir / name, epoch)
    weights = _load_epoch_file(run_dir / WEIGHTS_LAST, epoch)
    optimizer_arrays = _load_epoch_file(run_dir / OPTIMIZER, epoch)
    # The objects check what they are given; their errors here mean the run was made with another setup, or
    # (for the JSON parts) that an older state.json without a checksum was damaged.
    try:
        model.load_parameters(weights)
    except ValueError as e:
        raise CheckpointError(f"{run_dir / WEIGHTS_LAST} does not fit this model: {e}.") from None
    try:
        optimizer.load_state_dict(optimizer_arrays, state["optimizer"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{run_dir / OPTIMIZER} and the optimizer state in {run_dir / STATE} do not fit "
                              f"this optimizer: {e}.") from None
    if scheduler is not None:
        try:
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise CheckpointError(f"the scheduler state in {run_dir / STATE} does not fit this scheduler: "
                                  f"{e}.") from None
    try:
        lz_random.set_state(state["rng"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"the random generator state in {run_dir / STATE} is damaged: {e}.") from None
    return state


def load_best_weights(run_dir, model):
    """Load weights-best into ``model``; False (model unchanged) when the run saved no best weights."""
    path = Path(run_dir) / WEIGHTS_BEST
    if not path.exists() and not path.is_symlink():
        return False
    model.load_parameters(load_weights(path))
    return True
