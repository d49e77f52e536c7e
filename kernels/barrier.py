"""A spin barrier for compiled loops that run on several threads at once and meet once per time step.

The hidden-unit split of the forward recurrence (``cpu._unit_sequence``) runs one long-lived compiled call per thread
(launched by ``cpu._in_parallel``: a Python thread pool and ``nogil`` functions, so every call has an OS thread of its
own), and the threads must meet after every step, because every thread's next step reads all of ``h_t``. A hand-off
to a thread pool per step cost far more than it saved on this machine kind (notes/cpu-lstm-measurements.md), so the
threads meet on a shared counter instead:

- ``state`` is an int64 array of ``STATE_SIZE`` elements shared by the threads: ``state[COUNT]`` counts the arrivals
  (it only grows: arrival number ``n * (t + 1)`` completes step ``t`` of ``n`` threads, no reset, no sense flag),
  ``state[ABORT]`` (on its own cache line) is set nonzero when a thread failed and will never arrive.
- ``wait(state, n, step)``: an atomic increment (``atomicrmw add``, sequentially consistent: everything the thread
  wrote before it is visible to whoever sees the new count), then acquire loads of the counter until it reaches
  ``n * (step + 1)`` (an atomic load is never hoisted out of the loop nor merged, unlike a plain load of an array
  element that LLVM may keep in a register). Returns False when ``state[ABORT]`` was set instead.
- Spinning costs a core: after ``SPINS`` loads the waiting thread calls ``sched_yield`` between loads, so that on
  an oversubscribed machine (more runnable threads than cores) the thread it waits for gets the core. It never
  sleeps for a fixed time and never gives up while the other threads are alive: a descheduled thread delays the
  others, it does not deadlock them, because each call has its own OS thread.

The atomics are LLVM IR through Numba intrinsics (as kernels/microkernel.py writes its register tile); ``sched_yield``
is called by name, resolved by the JIT in the running process (libc), so the compiled loops stay cacheable (a ctypes
function pointer would be a constant address that Numba cannot cache). As with microkernel.py: the cached loops of
``cpu.py`` hold this code compiled in, and Numba only notices a change of ``cpu.py``; after editing this file, clear
the cache (or touch ``cpu.py``).
"""

import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_JIT = {"cache": True, "error_model": "numpy"}

COUNT, ABORT, STATE_SIZE = 0, 8, 16  # int64 elements: the counter and the abort flag 64 bytes apart
SPINS = 4000  # acquire loads before the first sched_yield (a few microseconds)


def new_state():
    """A fresh barrier state for one group of threads (zeros: no arrivals, no abort)."""
    return np.zeros(STATE_SIZE, np.int64)


def _element_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``array[index] += value`` as one atomic read-modify-write (sequentially consistent); returns the old value.
    ``array``: a C-contiguous int64 array; no bounds check."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64 and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0],
                                   context.cast(builder, args[1], signature.args[1], types.intp))
        operand = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, operand, "seq_cst")
    return types.int64(array, index, value), codegen


@intrinsic
def load_acquire(typingctx, array, index):
    """``array[index]`` as an atomic load with acquire ordering (int64, no bounds check): LLVM reloads it every
    time, and what the writer stored before its release is visible after it."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0],
                                   context.cast(builder, args[1], signature.args[1], types.intp))
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def store_release(typingctx, array, index, value):
    """``array[index] = value`` as an atomic store with release ordering (int64, no bounds check)."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64 and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0],
                                   context.cast(builder, args[1], signature.args[1], types.intp))
        builder.store_atomic(context.cast(builder, args[2], signature.args[2], types.int64), pointer, "release", 8)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


@intrinsic
def yield_cpu(typingctx):
    """``sched_yield()``: let another runnable thread have this core (returns at once where none waits)."""
    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(function, [])
        return context.get_dummy_value()
    return types.none(), codegen


# The C library's id of its monotonic clock (1 on Linux, 6 on macOS): ``monotonic_ns``.
_CLOCK_MONOTONIC = getattr(time, "CLOCK_MONOTONIC", 1)


@intrinsic
def monotonic_ns(typingctx):
    """``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds (called by name, as ``sched_yield``)."""
    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32), timespec.as_pointer()]),
            "clock_gettime")
        slot = cgutils.alloca_once(builder, timespec)
        builder.call(function, [ir.Constant(ir.IntType(32), _CLOCK_MONOTONIC), slot])
        seconds = builder.load(builder.gep(slot, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 0)]))
        nanoseconds = builder.load(builder.gep(slot, [ir.Constant(ir.IntType(32), 0),
                                                      ir.Constant(ir.IntType(32), 1)]))
        return builder.add(builder.mul(seconds, i64(1_000_000_000)), nanoseconds)
    return types.int64(), codegen


@njit(nogil=True, **_JIT)
def wait(state, threads, step):
    """Arrive at the barrier of ``step`` (0, 1, ...) and wait until all ``threads`` have; False if the group was
    aborted (``abort``) instead. Each thread must call it once per step, steps in order."""
    atomic_add(state, COUNT, 1)
    return wait_until(state, threads * (step + 1))


@njit(nogil=True, **_JIT)
def abort(state):
    """Release every thread waiting on ``state`` (their ``wait`` returns False), e.g. when one of them failed."""
    store_release(state, ABORT, 1)


@njit(nogil=True, **_JIT)
def resume(state):
    """Undo ``abort``: ``wait``, ``wait_until`` and ``wait_for`` on ``state`` wait again (for a state that is used
    again, as a crew's ``go`` after ``cpu._rest_the_crews``)."""
    store_release(state, ABORT, 0)


@njit(nogil=True, **_JIT)
def arrivals(state):
    """The arrivals so far (for tests)."""
    return load_acquire(state, COUNT)


@njit(nogil=True, **_JIT)
def publish(state, count):
    """Make ``count`` the progress a producer thread has reached (e.g. the time steps it has written), for
    ``wait_until``: a release store, so what it wrote before is visible to whoever sees the count."""
    store_release(state, COUNT, count)


@njit(nogil=True, **_JIT)
def wait_until(state, count):
    """Wait until the count on ``state`` (the arrivals of ``wait``, or the progress ``publish``ed by a producer) is
    at least ``count``; False if the group was aborted (``abort``) instead. Spins on acquire loads, then yields the
    core between them after ``SPINS``."""
    return wait_for(state, count, FOREVER)


# ``wait_for``'s nanoseconds that never run out (146 years).
FOREVER = 1 << 62


@njit(nogil=True, **_JIT)
def wait_for(state, count, nanoseconds):
    """``wait_until`` for at most about ``nanoseconds``: True once the count on ``state`` is at least ``count``,
    False when the time ran out first (or the group was aborted). For a thread that keeps itself ready for the
    next call a while before it sleeps (``cpu._Worker``): acquire loads, then ``sched_yield`` between them after
    ``SPINS``; the clock is read after the first 256 loads (a wait that ends before reads none) and every 256
    after."""
    spins = 0
    end = 0
    while load_acquire(state, COUNT) < count:
        if load_acquire(state, ABORT) != 0:
            return False
        spins += 1
        if spins >= SPINS:
            yield_cpu()
        if spins & 255 == 0:
            now = monotonic_ns()
            if end == 0:
                end = now + nanoseconds
            elif now >= end:
                return load_acquire(state, COUNT) >= count
    return True


@njit(nogil=True, **_JIT)
def publish_and_wait_for(done, count, state, next_count, nanoseconds):
    """``publish(done, count)``, then ``wait_for(state, next_count, nanoseconds)``, in one call without the GIL:
    a pool thread that has finished a task says so and keeps itself ready for the next one, and the caller that
    waited for it can take the GIL at once."""
    store_release(done, COUNT, count)
    return wait_for(state, next_count, nanoseconds)
