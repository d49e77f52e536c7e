"""Data-parallel training over MPI: ``mpiexec -n N lstmzoo train ...`` runs N ranks of one training.

Nothing here imports mpi4py unless the process was started by an MPI launcher (``mpiexec``, ``mpirun``,
``srun``) with more than one rank, which ``world()`` tells from the launcher's environment variables; a plain run
gets ``None`` and ``lstmzoo.train.fit`` takes its single-process path unchanged.

How N ranks reproduce one (up to float rounding):

- every rank builds the same model and then takes rank 0's weights (one ``Bcast`` of the flat parameter buffer,
  ``Module.flatten``); a resumed run's whole training state (weights, optimizer, scheduler, shared generator,
  trainer state) is read by rank 0 and broadcast;
- every rank draws the same epoch: ``make_batches`` runs on every rank with the same generator, so shuffling and
  augmentation are made for the GLOBAL batch; each rank then keeps its rows of every batch (``shard_batch``) and
  its dropout masks are drawn for the global batch and sliced (``lstmzoo.random.batch_rows``), so the shared
  generator advances identically everywhere and a rank's masks are those one process would have drawn for its rows;
- after each rank's ``train_step`` on its rows (mean loss over its ``n`` items) ONE ``Allreduce`` sums the flat
  gradient buffer scaled by ``n`` together with ``loss * n`` and ``n``; dividing by the summed ``n`` gives every
  rank the gradient and loss of the global batch, so clipping and the optimizer step agree on every rank;
- validation is sharded: during ``evaluate`` each call ``model(x, lengths=...)`` runs on the rank's rows of ``x``
  and the outputs are gathered, so every rank computes the recipe's own metrics from all the outputs (exact for
  any metric, rmse and MASE included); a recipe whose validation calls the model otherwise (a stateful language
  model walking a text's streams, a decoder's search) splits it itself with ``evaluation_part``;
- rank 0 alone holds the run folder's lock and writes it; the other ranks print nothing.

The batch layout the generic ``shard_batch`` understands (every batch of lstmzoo's tasks and sequence recipes): a
tuple whose first element is the model's input, time-major ``[T, B, ...]`` as the LSTM layers take it; every later
element that is an array with ``B`` rows on its first axis is per item and sliced there (lengths, labels, targets
``[B, k]``), except a 1-D floating-point array, which is a per-class constant (class weights) and, like ``None``,
flags and arrays of other sizes, goes whole to every rank. A recipe whose batches look otherwise overrides
``Recipe.shard_batch(batch, rank, size)``, returning a ``Shard``. Dropout draws per item along axis 1 of a 3-D
(time-major) input and axis 0 of a 2-D one (``lstmzoo.nn.layers.dropout_mask``). ``train_step``'s item count must be
what its mean loss divides by: a class-weighted cross-entropy (divided by the summed weights) is reproduced only
approximately.
"""

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import random as lz_random
from .errors import UserError
from .launcher import SIZE_VARIABLES, launched_size  # noqa: F401 (both part of this module's interface)

_world = None


def world():
    """The ``World`` of this MPI job, or None when the process was not launched as one of several ranks (then
    mpi4py is never imported)."""
    global _world
    if _world is None and launched_size() > 1:
        use_mpi_defaults()
        try:
            from mpi4py import MPI
        except ImportError:
            raise UserError("this process was started by an MPI launcher with several ranks, but mpi4py is not "
                            "installed: pip install 'lstmzoo[mpi]'") from None
        _world = World(MPI.COMM_WORLD, MPI.Exception)
    return _world


# The MPI settings a rank starts with unless the user set them (environment variables, read by MPI_Init).
# MPICH's single-copy transfers between the ranks of one machine (CMA: the receiver reads the sender's memory with
# process_vm_readv) let a rank that dies make its partner fail first, in the middle of a transfer; MPICH then ends
# the job with the partner's error ("process_vm_readv failed (errno 3)", naming no rank) before the launcher can
# report the dead rank's pid (seen in about 1 of 25 killed jobs with a 120 kB gradient). Without them the partner
# waits and the launcher names the dead process (40 of 40). Measured, 2 ranks on one machine (2-core Zen 5):
# Allreduce of 30k float32 22 us without, 27 us with; 300k 166-200 us against 132 us; 3M 2.1 ms against 1.4 ms.
MPI_DEFAULTS = {"MPIR_CVAR_CH4_CMA_ENABLE": "0"}


def use_mpi_defaults(environ=os.environ):
    """Set ``MPI_DEFAULTS`` in ``environ`` where the user has not: before mpi4py is imported (MPI_Init)."""
    for name, value in MPI_DEFAULTS.items():
        environ.setdefault(name, value)


def check_device(device):
    """UserError, one sentence, for a device data-parallel training does not support yet (CUDA)."""
    if world() is not None and device != "cpu":
        raise UserError(f"data-parallel training under MPI runs on the CPU only: --device {device} with several "
                        f"ranks (NCCL) is not supported yet; use --device cpu, or one GPU without mpiexec")


class Shard(NamedTuple):
    """A rank's part of a global batch: the rank's ``piece`` of the batch, the global batch's number of ``items``
    and the ``rows`` (a slice of range(items)) the piece holds."""
    piece: object
    items: int
    rows: slice


def rows_of(items, rank, size):
    """The rows of a batch of ``items`` that ``rank`` of ``size`` takes: contiguous, sizes differing by at most 1."""
    return slice(items * rank // size, items * (rank + 1) // size)


def shard_batch(batch, rank, size):
    """``rank``'s ``Shard`` of a batch in the generic layout (see the module's docstring)."""
    if not isinstance(batch, (tuple, list)) or not batch or getattr(batch[0], "ndim", 0) < 2:
        raise UserError(f"data-parallel training cannot split this recipe's batches: the first element of a batch "
                        f"must be the time-major input [T, B, ...], got {type(batch).__name__}; the recipe must "
                        f"override Recipe.shard_batch")
    items = batch[0].shape[1]
    rows = rows_of(items, rank, size)
    return Shard(type(batch)(_take_rows(element, items, rows, index) for index, element in enumerate(batch)),
                 items, rows)


def _take_rows(element, items, rows, index):
    if index == 0:
        return element[:, rows]
    shape = getattr(element, "shape", None)
    if shape is None or len(shape) == 0:
        return element
    if len(shape) == 1 and np.issubdtype(element.dtype, np.floating):
        return element      # a per-class constant: class weights
    if shape[0] == items:
        return element[rows]
    if items in shape:
        raise UserError(f"data-parallel training cannot split this recipe's batches: element {index} has shape "
                        f"{tuple(shape)}, with the {items} items on an axis other than the first; the recipe must "
                        f"override Recipe.shard_batch")
    return element


class Process(NamedTuple):
    """A rank's process: its ``pid`` in the process namespace ``namespace`` on the machine named ``host``."""
    pid: int
    host: str
    namespace: str


def this_process():
    """This process's ``Process``. The namespace (Linux's pid namespace, "" elsewhere) tells apart two containers
    on one host, whose pids are not each other's."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return Process(os.getpid(), socket.gethostname(), namespace)


def process_gone(pid):
    """Whether the process ``pid`` (of this machine and namespace) has ended: it no longer exists, or it is a
    zombie that its parent (the launcher's proxy) has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:     # it exists, under another user
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


class World:
    """The ranks of one MPI job (``mpi4py`` communicator ``comm``), and the collective steps of training.
    ``errors`` is the exception class a failed MPI call raises (``mpi4py.MPI.Exception``: mpi4py sets
    ``MPI.ERRORS_RETURN`` on ``COMM_WORLD``, so a collective with a dead rank raises, unless MPICH deems the error
    fatal and ends the job itself, as it did for a failed single-copy transfer, see ``MPI_DEFAULTS``);
    ``epoch`` is the epoch in progress, which ``lstmzoo.train.fit`` sets (None before the first)."""

    def __init__(self, comm, errors=None):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.processes = [Process(*process) for process in comm.allgather(tuple(this_process()))]
        self.errors = errors
        self.epoch = None
        self._reduce_buffer = None

    def describe(self):
        """One line naming every rank's process, so that the launcher's report of a dead PID names its rank."""
        ranks = ", ".join(f"rank {rank} = pid {process.pid} on {process.host}"
                          for rank, process in enumerate(self.processes))
        return f"data-parallel training on {self.size} MPI ranks ({ranks})"

    def is_mpi_error(self, error):
        """Whether ``error`` is a failed MPI call's exception."""
        if self.errors is None:
            from mpi4py import MPI
            self.errors = MPI.Exception
        return isinstance(error, self.errors)

    def dead_ranks(self, wait=1.0):
        """The ranks on this machine whose process has ended, waiting up to ``wait`` seconds for one to be seen
        ended (a rank's death can reach this one in a collective a moment before the process is gone). The ranks
        on other machines cannot be checked from here; see ``remote_ranks``."""
        mine = self.processes[self.rank]
        local = [rank for rank, process in enumerate(self.processes)
                 if rank != self.rank and (process.host, process.namespace) == (mine.host, mine.namespace)]
        deadline = time.monotonic() + wait
        while True:
            dead = [rank for rank in local if process_gone(self.processes[rank].pid)]
            if dead or time.monotonic() >= deadline:
                return dead
            time.sleep(0.02)

    def remote_ranks(self):
        """The ranks whose process this one cannot check: on another machine (or in another container)."""
        mine = self.processes[self.rank]
        return [rank for rank, process in enumerate(self.processes)
                if (process.host, process.namespace) != (mine.host, mine.namespace)]

    def lost_ranks_report(self, error, wait=1.0):
        """After ``error``, a failed MPI call: the one line that names the rank(s) that died, and whether this rank
        is the one to say it (the lowest surviving rank of the dead ranks' machine; rank 0 when the dead are on
        another machine), or None when no rank is seen dead and every rank is on this machine (then the error is
        an ordinary failure)."""
        during = f" during epoch {self.epoch}" if self.epoch is not None else ""
        advice = "ending the job; continue it from its last complete epoch with --resume"
        dead = self.dead_ranks(wait)
        if dead:
            ranks = ", ".join(str(rank) for rank in dead)
            processes = ", ".join(f"pid {self.processes[rank].pid} on {self.processes[rank].host}" for rank in dead)
            line = (f"lstmzoo: rank{'s' if len(dead) > 1 else ''} {ranks} of {self.size} ({processes}) "
                    f"died{during}; {advice}")
            speaker = min(set(range(self.size)) - set(dead) - set(self.remote_ranks()))
            return line, self.rank == speaker
        remote = self.remote_ranks()
        if not remote:
            return None
        hosts = sorted({self.processes[rank].host for rank in remote})
        said = _first_line(error)
        line = (f"lstmzoo: rank {self.rank} of {self.size} lost contact with the other ranks{during} ({said}); "
                f"no rank on {self.processes[self.rank].host} died, so one on {', '.join(hosts)} likely did; "
                f"{advice}")
        return line, self.rank == 0

    # ------------------------------------------------------------------------------------ rank 0 decides
    def from_root(self, function):
        """``function()`` run on rank 0 alone, its result handed to every rank; an exception it raises is raised
        on every rank (so no rank waits for a rank 0 that gave up)."""
        outcome = None
        if self.rank == 0:
            try:
                outcome = (True, function())
            except Exception as error:  # noqa: BLE001 - every rank raises it below
                outcome = (False, error)
        ok, value = self.comm.bcast(outcome, root=0)
        if not ok:
            if self.rank == 0:
                raise value
            raise value from None
        return value

    def share_weights(self, model):
        """Every rank takes rank 0's weights: one Bcast of the flat parameter buffer."""
        params, _ = model.flatten()
        self.comm.Bcast(params, root=0)

    def share_training_state(self, model, optimizer, scheduler, extra):
        """Every rank takes rank 0's weights, optimizer, scheduler and shared-generator state; returns rank 0's
        ``extra`` (the trainer's own state)."""
        self.share_weights(model)
        packed = self.comm.bcast((optimizer.state_dict(), scheduler.state_dict() if scheduler is not None else None,
                                  lz_random.get_state(), extra) if self.rank == 0 else None, root=0)
        (arrays, scalars), scheduler_state, rng_state, extra = packed
        if self.rank != 0:
            optimizer.load_state_dict(arrays, scalars)
            if scheduler is not None:
                scheduler.load_state_dict(scheduler_state)
            lz_random.set_state(rng_state)
        return extra

    # ---------------------------------------------------------------------------------------- training
    def sharded_step(self, train_step, shard=None):
        """``train_step(model, batch)`` on this rank's rows of the batch, with the gradients and the loss of the
        whole batch on every rank afterwards. ``shard(batch, rank, size)`` (default ``shard_batch``) cuts a batch.
        A rank whose rows are empty (a batch of fewer items than ranks) still runs the step on the whole batch, so
        that its random draws keep in step, and contributes nothing."""
        shard = shard or shard_batch

        def step(model, batch):
            piece, items, rows = shard(batch, self.rank, self.size)
            empty = rows.stop == rows.start
            with lz_random.batch_rows(items, slice(0, items) if empty else rows):
                loss, n = train_step(model, batch if empty else piece)
            if empty:
                model.zero_grad()
                loss, n = 0.0, 0
            return self.reduce_gradients(model, float(loss), n)
        return step

    def reduce_gradients(self, model, loss, n):
        """Average the gradients over the ranks, weighted by their item counts ``n``: ONE Allreduce of the flat
        gradient buffer (scaled by ``n``) followed by ``loss * n`` and ``n``; returns the global (mean loss, items)."""
        _, grads = model.flatten()
        size = grads.size
        if self._reduce_buffer is None or self._reduce_buffer.size != size + 2:
            self._reduce_buffer = np.empty(size + 2, dtype=grads.dtype)
        buffer = self._reduce_buffer
        # NaN * 0 is NaN: a rank that contributes no items must not turn the sum NaN.
        np.multiply(grads, n, out=buffer[:size]) if n else buffer[:size].fill(0)
        buffer[size], buffer[size + 1] = loss * n if n else 0.0, n
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        total = float(buffer[size + 1])
        np.divide(buffer[:size], total, out=grads)
        return float(buffer[size]) / total, total

    def sum(self, *numbers):
        """The sums of ``numbers`` over the ranks (one allreduce), as a tuple of floats."""
        from mpi4py import MPI
        buffer = np.array(numbers, dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return tuple(float(value) for value in buffer)

    def join(self, values):
        """Every rank's list ``values``, concatenated in rank order."""
        return [value for part in self.comm.allgather(list(values)) for value in part]

    def sharded_evaluation(self, evaluate):
        """``evaluate(model)`` with the model's forward passes split over the ranks (see ``ShardedModel``)."""
        return lambda model: evaluate(ShardedModel(model, self))


class Part(NamedTuple):
    """A rank's share of a validation that the recipe splits itself (``evaluation_part``)."""
    model: object       # the model itself: its calls run on this rank alone
    rows: slice         # this rank's items, a slice of range(items)
    sum: Callable       # sum(*numbers) -> the tuple of their sums over the ranks
    join: Callable      # join(list) -> every rank's lists, concatenated in rank order


def evaluation_part(model, items):
    """This rank's ``Part`` of a validation over ``items`` independent pieces (a text's streams, sentences to
    translate), for a recipe whose model calls ``ShardedModel`` cannot split (a stateful language model, a
    decoder's search): the recipe scores ``rows`` with ``model`` and combines the ranks' results with ``sum`` and
    ``join``. Outside data-parallel validation (``model`` is not a ``ShardedModel``) the whole: every item, and
    ``sum`` and ``join`` hand their arguments back unchanged."""
    if isinstance(model, ShardedModel):
        world = model._world
        return Part(model._model, rows_of(items, world.rank, world.size), world.sum, world.join)
    return Part(model, slice(0, items), lambda *numbers: numbers, list)


class ShardedModel:
    """A model whose calls ``model(x)`` / ``model(x, lengths=...)`` on a time-major ``x [T, B, ...]`` run on this
    rank's rows and return every rank's outputs ``[B, ...]``, gathered; everything else is the model's."""

    def __init__(self, model, world):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_world", world)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, x, lengths=None):
        world = self._world
        if getattr(x, "ndim", 0) < 2:
            return self._model(x, lengths=lengths)
        rows = rows_of(x.shape[1], world.rank, world.size)
        local = None
        if rows.stop > rows.start:
            local = self._model(x[:, rows], lengths=None if lengths is None else np.asarray(lengths)[rows])
            if not isinstance(local, np.ndarray) or local.ndim < 1 or local.shape[0] != rows.stop - rows.start:
                raise UserError(f"data-parallel validation splits the model's calls over the ranks, but "
                                f"{type(self._model).__name__} returned {type(local).__name__} rather than one "
                                f"row per sequence; this model cannot be validated under MPI yet")
        parts = [part for part in world.comm.allgather(local) if part is not None]
        return np.concatenate(parts, axis=0)


# Seconds a rank waits between writing its one line about a failure and MPI_Abort. The launcher forwards each rank's
# stderr through its own processes, which the abort ends: a line flushed just before it was lost once in CI (session
# 19; MPICH's Hydra, 2 ranks on one machine; tests/test_distributed.py's failing-rank test; not reproduced locally).
ABORT_GRACE_S = 0.5


@contextlib.contextmanager
def ending_the_job_on_failure():
    """Around a training under MPI: an exception on one rank ends the whole job (``MPI_Abort``), with one line on
    the rank's own stderr naming it, instead of leaving the other ranks waiting for it in a collective for ever.

    A rank that dies (killed, out of memory) usually makes the launcher end the job and report the dead process's
    pid, which ``World.describe`` mapped to its rank at the start. But a rank that was exchanging data with it can
    see the death first, as a failed MPI call (MPICH: "process_vm_readv failed (errno 3)" in a shared-memory
    Allreduce); then the dead ranks are looked for (``World.lost_ranks_report``) and ONE line names them, e.g.
    "lstmzoo: rank 1 of 2 (pid 4242 on node1) died during epoch 7; ending the job; ...", before the abort.

    Outside MPI, or on one rank, nothing changes. Ctrl-C is not caught: the launcher forwards it to every rank."""
    current = world()
    if current is None or current.size == 1:
        yield
        return
    try:
        yield
    except Exception as error:
        stream = sys.__stderr__   # the rank's own stderr, also on the ranks quiet_other_ranks silenced
        lost = current.lost_ranks_report(error) if current.is_mpi_error(error) else None
        if lost is not None:
            line, speaker = lost
            if speaker:
                stream.write(line + "\n")
                stream.flush()
                time.sleep(ABORT_GRACE_S)
            current.comm.Abort(1)
            raise
        stream.write(f"lstmzoo: rank {current.rank} of {current.size} failed ({_first_line(error)}); ending the "
                     f"job on every rank\n")
        stream.flush()
        time.sleep(ABORT_GRACE_S)
        current.comm.Abort(2 if isinstance(error, UserError) else 1)
        raise


def _first_line(error):
    """``error`` in a few words: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def quiet_other_ranks():
    """On every rank but 0, send stdout and stderr to the null device: rank 0 speaks for the job."""
    current = world()
    if current is not None and current.rank != 0:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
