"""The training loop: epochs of minibatch steps, validation, checkpoints, early stopping, exact resume.

``fit`` knows nothing about the model's task. The caller gives it three functions:

- ``make_batches(rng) -> iterable of batches``: one epoch's batches, shuffled with ``rng`` (a NumPy
  Generator that ``fit`` derives from ``lstmzoo.random`` each epoch, so the order is reproducible and
  survives a resume);
- ``train_step(model, batch) -> (loss, n_items)``: forward, loss, backward (gradients accumulate into
  ``model.grads()``); ``loss`` is the MEAN over the batch's ``n_items`` items (sequences, tokens: the caller
  decides), and the epoch's ``train_loss`` is the ``n_items``-weighted mean of those. ``fit`` calls
  ``optimizer.zero_grad()`` before it, and gradient clipping and ``optimizer.step()`` after it;
- ``evaluate(model) -> dict of metric name -> float`` (or ``None`` for no validation): run with the model in
  eval mode; the names usually start with ``val_``.

Every epoch appends a row to ``metrics.jsonl`` and commits a checkpoint (``lstmzoo.checkpoint`` describes
the run folder), so an interrupted or crashed run resumes with ``resume=True`` and ends bit-identical to
one that never stopped. ``fit`` holds the run folder's lock throughout: one writer at a time.

Launched by ``mpiexec -n N`` (``lstmzoo.distributed``), ``fit`` trains data-parallel: each rank computes its rows of
every batch, the gradients are averaged with one Allreduce per step, validation is split over the ranks, and rank 0
alone holds the lock and writes the run folder; the result is one process's up to float rounding.

A training that diverges stops at the first loss, gradient, weight or metric that is NaN or infinite, with a
``TrainingError`` (one sentence): nothing non-finite is ever logged or checkpointed, so the last checkpoint
stays the last finite one.

A ``time_limit`` (seconds) ends training at the first epoch end at which that much time has passed since ``fit``
started (a resume starts the clock again), like early stopping: the best checkpoint reached by then is kept, and
``state.json`` records ``stopped_by_time_limit``; a resume of such a run goes on training.

Progress goes to stderr: on a terminal a bar per epoch (batches, loss, items/s) that gives way to one line per
epoch; in a log (stderr not a terminal) just that one plain line per epoch.
"""

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed
from . import random as lz_random
from .checkpoint import CheckpointError
from .errors import NonFiniteError
from .optim import clip_grad_norm


class TrainingError(Exception):
    """Training cannot go on (a loss, gradient or metric that is NaN or infinite); one sentence meant for the
    user."""


@dataclass
class FitResult:
    best_metric: float | None   # best value of the monitored metric (None if no epoch ran)
    best_epoch: int | None      # the epoch it was reached in, 1-based; the model holds its weights
    epochs_run: int             # epochs completed in total, counting those before a resume
    history: list = field(repr=False)   # the rows of metrics.jsonl, one dict per epoch
    run_dir: Path
    stopped_by_time_limit: bool = False     # ended by ``time_limit`` before ``epochs`` or early stopping


# The trainer's own part of state.json (save_training_state adds the optimizer's, scheduler's and RNG's).
_FRESH_STATE = {"epoch": 0, "monitor": None, "mode": None, "best_metric": None, "best_epoch": None,
                "epochs_without_improvement": 0, "stopped_early": False, "stopped_by_time_limit": False}


def fit(model, optimizer, train_step, make_batches, evaluate, *, epochs, run_dir, monitor="val_loss",
        mode="min", keep="best", patience=None, clip_norm=None, scheduler=None, resume=False, config=None,
        progress=True, on_epoch_end=None, learning_curve=True, shard_batch=None, time_limit=None, average=None):
    """Train ``model`` for up to ``epochs`` epochs, checkpointing into ``run_dir`` after each one.

    ``monitor`` names the metric (from ``evaluate``'s dict, or ``"train_loss"``) that decides the best epoch,
    ``mode`` whether lower (``"min"``) or higher (``"max"``) is better; ``patience`` stops after that many
    epochs without improvement; ``time_limit`` (seconds, None: none) stops at the first epoch end after that
    much time since this call began (at least one epoch runs), keeping the best checkpoint; ``clip_norm`` clips the global gradient norm before each step;
    ``scheduler.step(metric)`` runs once per epoch with the monitored value. ``resume=True`` continues the
    checkpoint in ``run_dir`` (a finished run just returns); without it ``run_dir`` must not hold one.
    ``config`` (recipe, hyperparameters) goes to config.json when a fresh run starts. ``on_epoch_end(row)``
    is called with each epoch's metrics row once its checkpoint is committed.

    ``epochs`` must be at least 1; ``patience`` None or 0 never stops early; ``clip_norm`` None or 0 does not
    clip (ValueError for a negative or NaN one).

    ``keep`` says which weights the model holds at the end: ``"best"`` the best epoch's by ``monitor``,
    ``"last"`` the last epoch's (a run whose length a schedule fixes), ``"average"`` the mean of the weights of the
    last ``average`` epochs (checkpoint averaging: the weights at the ends of the last epochs, averaged parameter by
    parameter; a smoother model than any one of them, as Polyak averaging gives). Either way
    ``weights-best.safetensors`` holds the best epoch's by ``monitor``, ``weights-last.safetensors`` the last's
    (and with ``average``, ``weights-average.safetensors`` the mean, computed when training ends: the last epochs'
    weights are kept in ``weights-epoch-N.safetensors`` until then), and the ``FitResult`` reports the best epoch;
    the checkpoint, and so resume, is the same for all three.

    At the end the model holds the kept weights, in eval mode, and ``learning-curve.png`` is drawn (unless
    ``learning_curve=False``: a run folder nobody will look at, such as an estimator's). Returns a
    ``FitResult``. Under MPI, ``shard_batch(batch, rank, size) -> lstmzoo.distributed.Shard`` cuts a batch whose
    layout ``lstmzoo.distributed.shard_batch`` (the default) does not know. Raises ``CheckpointError`` for a run
    folder that cannot be used (missing, damaged, of another recipe, in use by another process, not a run folder
    at all), ``TrainingError`` for a loss, gradient,
    weight or metric that is NaN or infinite (the last good checkpoint stays); ``KeyboardInterrupt`` passes
    through, likewise leaving the last completed epoch's checkpoint to resume from.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if keep not in ("best", "last", "average"):
        raise ValueError(f"keep must be 'best', 'last' or 'average', got {keep!r}")
    if average is not None and (not _is_integer(average) or average < 1):
        raise ValueError(f"average must be None or an integer of at least 1 (epochs), got {average!r}")
    if keep == "average" and average is None:
        raise ValueError("keep='average' needs average, the number of last epochs to average")
    if not _is_integer(epochs) or epochs < 1:
        raise ValueError(f"epochs must be an integer of at least 1, got {epochs!r}")
    if patience is not None and (not _is_integer(patience) or patience < 0):
        raise ValueError(f"patience must be None or an integer of at least 0 (0: never stop early), got "
                         f"{patience!r}")
    if clip_norm is not None and (isinstance(clip_norm, bool) or not isinstance(clip_norm, (int, float))
                                  or not clip_norm >= 0):
        raise ValueError(f"clip_norm must be None or a number of at least 0 (0: no clipping), got {clip_norm!r}")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not time_limit > 0 or not math.isfinite(time_limit)):
        raise ValueError(f"time_limit must be None or a positive number of seconds, got {time_limit!r}")
    begun = time.monotonic()    # the time limit counts from here: from the resume, for a resumed run
    run_dir = Path(run_dir)
    world = distributed.world()
    if world is None:
        if not resume:      # before the lock file is made: a folder that is refused is left exactly as it was
            ckpt.check_new_run_folder(run_dir, names=ckpt.RUN_FILES)
        lock = ckpt.run_folder_lock(run_dir)
    else:
        if not resume:
            world.from_root(lambda: ckpt.check_new_run_folder(run_dir, names=ckpt.RUN_FILES))
        lock = ckpt.run_folder_lock(run_dir) if world.rank == 0 else contextlib.nullcontext()
        train_step = world.sharded_step(train_step, shard_batch)
        evaluate = evaluate and world.sharded_evaluation(evaluate)
        progress = progress and world.rank == 0
    with lock:
        return _fit_locked(model, optimizer, train_step, make_batches, evaluate, epochs=epochs, run_dir=run_dir,
                           monitor=monitor, mode=mode, keep=keep, patience=patience or None,
                           clip_norm=clip_norm or None, scheduler=scheduler, resume=resume, config=config,
                           progress=progress, on_epoch_end=on_epoch_end, learning_curve=learning_curve, world=world,
                           deadline=None if time_limit is None else begun + time_limit, average=average)


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _fit_locked(model, optimizer, train_step, make_batches, evaluate, *, epochs, run_dir, monitor, mode, keep,
                patience, clip_norm, scheduler, resume, config, progress, on_epoch_end, learning_curve, world,
                deadline, average):
    def start():
        return _start(model, optimizer, scheduler, run_dir=run_dir, monitor=monitor, mode=mode, resume=resume,
                      config=config)
    if world is None:
        state, history = start()
    else:   # rank 0 reads or starts the run folder, and every rank takes its state
        state, history = world.share_training_state(model, optimizer, scheduler, world.from_root(start))
    writer = world is None or world.rank == 0
    state["stopped_by_time_limit"] = False      # a run a time limit ended goes on when resumed

    while state["epoch"] < epochs and not state["stopped_early"] and not state["stopped_by_time_limit"]:
        epoch = state["epoch"] + 1
        if world is not None:
            world.epoch = epoch     # for the line that names a rank that died (distributed.ending_the_job_on_failure)
        started = time.perf_counter()
        lr = optimizer.lr
        # One draw from the shared generator seeds this epoch's shuffle, so the shared state saved at the end
        # of the epoch determines every later epoch. (Generator.spawn would not do: its counter lives in the
        # SeedSequence, outside the bit generator state that get_state() saves.)
        epoch_rng = np.random.default_rng(int(lz_random.rng().integers(2**63)))
        intact = _intact(run_dir, state["epoch"])
        train_loss, items, train_seconds = _train_epoch(
            model, optimizer, train_step, make_batches(epoch_rng), clip_norm,
            describe=f"epoch {epoch}/{epochs}", progress=progress, intact=intact)
        row = {"epoch": epoch, "train_loss": train_loss}
        if evaluate is not None:
            model.eval()
            try:
                with _divergence_caught(f"the validation of epoch {epoch}", intact):
                    row.update({name: float(value) for name, value in evaluate(model).items()})
            finally:
                model.train()
        if monitor not in row:
            raise ValueError(f"monitor {monitor!r} is not among the epoch's metrics {sorted(row)}")
        # Any metric, not only the monitored one: the row goes into metrics.jsonl, which holds standard JSON.
        for name, value in row.items():
            if not math.isfinite(value):
                raise TrainingError(f"the training diverged: {name} became {value} in epoch {epoch}; "
                                    f"{intact} (try a lower learning rate or clip_norm).")
        if not _finite_parameters(model):
            raise TrainingError(f"the training diverged: the weights became NaN or infinite in epoch "
                                f"{epoch}; {intact} (try a lower learning rate or clip_norm).")
        value = row[monitor]
        row.update(lr=lr, seconds=time.perf_counter() - started, items_per_second=items / train_seconds)

        best = state["best_metric"]
        improved = best is None or (value < best if mode == "min" else value > best)
        if improved:
            state.update(best_metric=value, best_epoch=epoch, epochs_without_improvement=0)
        else:
            state["epochs_without_improvement"] += 1
        state["stopped_early"] = patience is not None and state["epochs_without_improvement"] >= patience
        state["epoch"] = epoch
        # Under MPI every rank must stop after the same epoch: rank 0's clock decides.
        out_of_time = deadline is not None and time.monotonic() >= deadline
        if world is not None and deadline is not None:
            out_of_time = world.from_root(lambda reached=out_of_time: reached)
        state["stopped_by_time_limit"] = out_of_time and epoch < epochs and not state["stopped_early"]
        if state["stopped_by_time_limit"]:
            row["stopped_by_time_limit"] = True
        if scheduler is not None:
            scheduler.step(value)

        # The row goes first: if the commit below never happens, resume drops it with the epoch it describes.
        if writer:
            ckpt.append_jsonl(run_dir / ckpt.METRICS, row)
            ckpt.save_training_state(run_dir, model, optimizer, scheduler, state, save_best=improved,
                                     save_epoch=average is not None)
            if average is not None:
                ckpt.remove_epoch_weights_before(run_dir, epoch - average + 1)
        history.append(row)
        if progress:
            tqdm.write(_summary(row, improved), file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if state["stopped_by_time_limit"] and progress:
            tqdm.write(f"time limit reached after epoch {epoch} of {epochs}: training stops, keeping the best "
                       f"checkpoint (epoch {state['best_epoch']})", file=sys.stderr)

    if average is not None and state["epoch"] > 0:
        window = list(range(max(1, state["epoch"] - average + 1), state["epoch"] + 1))

        def averaged():
            mean = ckpt.save_average_weights(run_dir, window)
            if keep == "average":
                model.load_parameters(mean)
        if world is None:
            averaged()
        else:
            world.from_root(averaged)
            if keep == "average":
                world.share_weights(model)
    # keep="last": the model holds the last epoch's weights already (trained, or loaded by a resume).
    if keep == "best" and world is None:
        ckpt.load_best_weights(run_dir, model)
    elif keep == "best":
        world.from_root(lambda: ckpt.load_best_weights(run_dir, model))
        world.share_weights(model)
    model.eval()  # training is over: whatever scores the returned model must not see dropout
    if learning_curve and writer:
        write_learning_curve(history, run_dir / ckpt.LEARNING_CURVE, monitor, state["best_epoch"],
                             quiet=not progress)
    return FitResult(best_metric=state["best_metric"], best_epoch=state["best_epoch"],
                     epochs_run=state["epoch"], history=history, run_dir=run_dir,
                     stopped_by_time_limit=state["stopped_by_time_limit"])


def _start(model, optimizer, scheduler, *, run_dir, monitor, mode, resume, config):
    """The trainer's state and the metrics rows to go on from: the checkpoint's when resuming (loaded into model,
    optimizer, scheduler and the shared generator), else a fresh run's (config.json and an empty metrics.jsonl
    written)."""
    if resume:
        # The run in the folder must be the one asked for (its config.json intact and of the same recipe).
        if ckpt.has_checkpoint(run_dir):
            ckpt.read_config(run_dir, recipe=(config or {}).get("recipe"))
        saved = ckpt.load_training_state(run_dir, model, optimizer, scheduler)
        state = _trainer_state(saved, run_dir)
        if (state["monitor"], state["mode"]) != (monitor, mode):
            raise CheckpointError(f"{run_dir} was trained with monitor={state['monitor']!r}, "
                                  f"mode={state['mode']!r}; resume it with the same, not "
                                  f"monitor={monitor!r}, mode={mode!r}.")
        history = ckpt.truncate_jsonl(run_dir / ckpt.METRICS, state["epoch"])
    else:
        if ckpt.has_checkpoint(run_dir):
            raise CheckpointError(f"{run_dir} already holds a checkpoint; pass resume to continue it, or "
                                  f"choose another folder.")
        # Only a run folder's own files are overwritten: a config.json or metrics.jsonl of something else is not.
        ckpt.check_new_run_folder(run_dir, names=ckpt.RUN_FILES)
        ckpt.remove_stale_staged_files(run_dir)
        ckpt.write_config(run_dir, config)
        # Forget the rows of an earlier run in this folder that never committed a checkpoint.
        ckpt.atomic_write_bytes(run_dir / ckpt.METRICS, b"")
        history = []
        state = {**_FRESH_STATE, "monitor": monitor, "mode": mode}
    return state, history


def _trainer_state(saved, run_dir):
    """The trainer's fields of a loaded state.json, checked: CheckpointError, one sentence, when damaged."""
    def number_or_none(value):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and math.isfinite(value))

    def count_or_none(value):
        return value is None or (_is_integer(value) and value >= 0)

    checks = {"monitor": lambda v: isinstance(v, str), "mode": lambda v: v in ("min", "max"),
              "best_metric": number_or_none, "best_epoch": count_or_none,
              "epochs_without_improvement": lambda v: _is_integer(v) and v >= 0,
              "stopped_early": lambda v: isinstance(v, bool)}
    for key, valid in checks.items():
        if key not in saved or not valid(saved[key]):
            raise CheckpointError(f"{run_dir / ckpt.STATE} is damaged: its {key!r} is missing or has the wrong "
                                  f"type.")
    # A state.json from before the time limit existed has no stopped_by_time_limit: it was not.
    return {key: saved.get(key, _FRESH_STATE[key]) for key in _FRESH_STATE}


def _intact(run_dir, epoch):
    if epoch == 0:
        return "no checkpoint was written yet"
    return f"the checkpoint of epoch {epoch} in {run_dir} is intact"


@contextlib.contextmanager
def _divergence_caught(where, intact):
    """The layers refuse non-finite inputs and gradients with NonFiniteError (lstmzoo.nn.layers.check_array).
    Inside a training step that is the sign of a diverging model (or of NaN in the data), reported as the
    trainer's TrainingError; any other ValueError is left alone."""
    try:
        yield
    except NonFiniteError as error:
        raise _diverged(where, intact, error) from error


def _diverged(where, intact, error):
    return TrainingError(f"the training diverged (or the data holds NaN): {where} met values that are NaN or "
                         f"infinite ({error}); {intact} (try a lower learning rate or clip_norm).")


def _finite_parameters(model):
    """Whether every weight is finite: one sum per parameter (a NaN or inf makes it so), one host transfer."""
    sums = [p.sum(dtype=np.float64) if isinstance(p, np.ndarray) else p.sum()
            for p in model.parameters().values()]
    return not sums or math.isfinite(float(sum(sums)))


def _gradient_norm(model):
    """The global L2 norm of the gradients (as clip_grad_norm computes it, without clipping)."""
    squares = [g.ravel() @ g.ravel() for g in model.grads().values()]
    return math.sqrt(float(sum(squares))) if squares else 0.0


def _train_epoch(model, optimizer, train_step, batches, clip_norm, *, describe, progress, intact):
    """One pass over ``batches``; returns (items-weighted mean loss, items, seconds)."""
    model.train()
    loss_sum, items = 0.0, 0
    started = time.perf_counter()
    total = len(batches) if hasattr(batches, "__len__") else None
    # disable=None lets tqdm hide the bar when stderr is not a terminal (logs, CI).
    with tqdm(batches, total=total, desc=describe, disable=None if progress else True, leave=False,
              file=sys.stderr, unit="batch") as bar:
        for number, batch in enumerate(bar, 1):
            optimizer.zero_grad()
            try:    # _divergence_caught without a context manager per step
                loss, n = train_step(model, batch)
            except NonFiniteError as error:
                raise _diverged(f"batch {number} of {describe}", intact, error) from error
            loss = float(loss)
            if not math.isfinite(loss):
                raise TrainingError(f"the training diverged: its loss became {loss} at batch {number} of "
                                    f"{describe}; {intact} (try a lower learning rate or clip_norm).")
            with np.errstate(invalid="ignore", over="ignore"):     # an infinite norm is reported just below
                norm = clip_grad_norm(model, clip_norm) if clip_norm is not None else _gradient_norm(model)
            if not math.isfinite(norm):
                raise TrainingError(f"the training diverged: its gradients became NaN or infinite at batch "
                                    f"{number} of {describe}; {intact} (try a lower learning rate or clip_norm).")
            optimizer.step()
            loss_sum += loss * n
            items += n
            if not bar.disable:     # a log or no progress: nothing to format
                elapsed = time.perf_counter() - started
                bar.set_postfix({"loss": f"{loss_sum / items:.4g}", "items/s": f"{items / elapsed:.3g}"},
                                refresh=False)
    if items == 0:
        raise ValueError("make_batches gave no batches (or train_step counted no items) for an epoch")
    return loss_sum / items, items, time.perf_counter() - started


def _summary(row, improved):
    skip = {"epoch", "seconds", "items_per_second"}
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in skip and isinstance(v, float))
    return f"epoch {row['epoch']}: {metrics}  ({row['seconds']:.1f}s){'  *best*' if improved else ''}"


def write_learning_curve(history, path, monitor, best_epoch=None, quiet=False):
    """Plot train loss and ``monitor`` per epoch into a PNG, atomically; skipped without matplotlib."""
    if not history:
        return
    try:
        # The object API with the Agg canvas draws off-screen without touching pyplot's global backend, which
        # a notebook calling fit() may be using.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        if not quiet:
            print(f"note: matplotlib is not installed, so {path} was not drawn "
                  f"(pip install 'lstmzoo[plot]').", file=sys.stderr)
        return
    epochs = [row["epoch"] for row in history]
    panels = ["train_loss"] + ([monitor] if monitor != "train_loss" else [])
    figure = Figure(figsize=(6, 2.6 * len(panels)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, panels):
        ax.plot(epochs, [row.get(name) for row in history], marker="o", markersize=3)
        if best_epoch is not None and name == monitor:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                       label=f"best (epoch {best_epoch})")
            ax.legend()
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    ckpt.save_figure(figure, path, dpi=100)
