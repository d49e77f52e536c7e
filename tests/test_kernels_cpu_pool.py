"""kernels/cpu.py's ``_in_parallel``: while a call runs, the pool's threads are kept off the CPU of the thread that
called it (Linux), and get that thread's CPU set back afterwards, also when the call fails; a forked child gets
pools of its own."""

import multiprocessing
import os
import threading

import numpy as np
import pytest
from lstmzoo.kernels import cpu

linux_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or cpu._current_cpu() is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least 2 CPUs in this process's set")


def _worker_sets(first=lambda: None):
    """One _in_parallel call of two: on the pool's thread a record of its id and CPU set, and on this thread, once
    that is recorded, ``first``; returns (that record, the pool thread's set after the call)."""
    seen, recorded = {}, threading.Event()

    def second():
        seen["tid"] = threading.get_native_id()
        seen["during"] = os.sched_getaffinity(0)
        recorded.set()

    def after_second():  # as this thread's own part of a real call, which outlasts the start of the other's
        assert recorded.wait(30)
        return first()
    try:
        cpu._in_parallel([after_second, second])
    finally:
        cpu._thread_pool(1).submit(lambda: None).result()  # the pool's thread is done with ``second``
    return seen, os.sched_getaffinity(seen["tid"])


@linux_cpus
def test_the_pool_thread_runs_off_this_threads_cpu_and_gets_its_set_back():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])  # starts the pool's thread (its first call is not narrowed)
    for _ in range(5):
        seen, after = _worker_sets()
        assert seen["during"] < own and len(own - seen["during"]) == 1  # one CPU, this thread's, left out
        assert after == own


@linux_cpus
def test_a_failing_call_still_gives_the_set_back():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])

    def fails():
        raise RuntimeError("first call failed")
    with pytest.raises(RuntimeError, match="first call failed"):
        _worker_sets(fails)
    assert os.sched_getaffinity(cpu._POOL_THREADS[1][0]) == own


@linux_cpus
def test_nothing_is_narrowed_for_a_caller_with_one_cpu():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])
    try:
        os.sched_setaffinity(0, {min(own)})
        assert cpu._keep_off_this_cpu(1) is None
        seen, after = _worker_sets()
    finally:
        os.sched_setaffinity(0, own)
    assert seen["during"] == after


def _forward_in_child(args, want, queue):
    got = cpu.lstm_forward(*args, training=False)[0]
    queue.put(bool(np.array_equal(got, want)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs os.fork")
def test_a_forked_child_runs_the_threaded_kernels(monkeypatch):
    """The parent's pool threads do not exist in a child made by fork: the child must start its own pools, not
    wait forever for them (it did before)."""
    import numba
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    rng = np.random.default_rng(0)
    T, B, n_in, H = 5, 16, 8, 32
    args = (rng.standard_normal((T, B, n_in)).astype(np.float32), np.zeros((B, H), np.float32),
            np.zeros((B, H), np.float32), rng.standard_normal((4 * H, n_in)).astype(np.float32) * 0.1,
            rng.standard_normal((4 * H, H)).astype(np.float32) * 0.1, np.zeros(4 * H, np.float32),
            np.zeros(4 * H, np.float32))
    assert len(cpu.plan(B).blocks) == 2  # two row blocks: the pool's thread runs one
    want = cpu.lstm_forward(*args, training=False)[0]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forward_in_child, args=(args, want, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child's forward did not return within 60 s")
    assert child.exitcode == 0 and queue.get(timeout=5)
