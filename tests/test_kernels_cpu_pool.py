"""kernels/cpu.py's ``_in_parallel``: while a call runs, the pool's threads are kept off the CPU of the thread that
called it (Linux), and get that thread's CPU set back afterwards, also when the call fails."""

import os
import threading

import pytest
from lstmzoo.kernels import cpu

pytestmark = pytest.mark.skipif(
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


def test_the_pool_thread_runs_off_this_threads_cpu_and_gets_its_set_back():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])  # starts the pool's thread (its first call is not narrowed)
    for _ in range(5):
        seen, after = _worker_sets()
        assert seen["during"] < own and len(own - seen["during"]) == 1  # one CPU, this thread's, left out
        assert after == own


def test_a_failing_call_still_gives_the_set_back():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])

    def fails():
        raise RuntimeError("first call failed")
    with pytest.raises(RuntimeError, match="first call failed"):
        _worker_sets(fails)
    assert os.sched_getaffinity(cpu._POOL_THREADS[1][0]) == own


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
