"""kernels/cpu.py's ``_in_parallel``: the crew's threads run the calls with the calling thread's and hand back their
results and errors; the first call's failure releases the others (``release``) and still waits for them; a crew
thread that slept is woken; calls from two Python threads at once (the second through the queued pool) and from a
crew thread all finish; while a call runs, the crew's threads are kept off the CPU of the thread that called it
(Linux), and get that thread's CPU set back afterwards, also when the call fails; a forked child gets crews of its
own."""

import functools
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
from lstmzoo.kernels import barrier, cpu
from numba import njit

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
    cpu._in_parallel([after_second, second])  # returns once the crew's thread is done with ``second``
    return seen, os.sched_getaffinity(seen["tid"])


@linux_cpus
def test_the_pool_thread_runs_off_this_threads_cpu_and_gets_its_set_back():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])  # starts the crew's thread
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
    assert os.sched_getaffinity(cpu._crew(1).tids[0]) == own


@linux_cpus
def test_nothing_is_narrowed_for_a_caller_with_one_cpu():
    own = os.sched_getaffinity(0)
    cpu._in_parallel([lambda: None, lambda: None])
    try:
        os.sched_setaffinity(0, {min(own)})
        assert cpu._keep_off_this_cpu(cpu._crew(1).tids) is None
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


def test_results_in_order_and_a_crew_threads_error_raised():
    assert cpu._in_parallel([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]

    def fails():
        raise ValueError("crew call failed")
    with pytest.raises(ValueError, match="crew call failed"):
        cpu._in_parallel([lambda: 1, fails])
    assert cpu._in_parallel([lambda: "a", lambda: "b"]) == ["a", "b"]  # the crew goes on


def test_the_first_calls_failure_releases_and_waits_for_the_others():
    """``release`` runs when the first call fails, and ``_in_parallel`` returns (raises) only once the crew's call
    is done: here the crew's call waits on a barrier that only ``release`` (an abort) lets it pass."""
    state = barrier.new_state()
    seen = {}

    def crew_call():
        seen["passed"] = barrier.wait(state, 2, 0)  # False once aborted
        time.sleep(0.05)
        seen["done"] = True

    def fails():
        raise RuntimeError("first call failed")
    with pytest.raises(RuntimeError, match="first call failed"):
        cpu._in_parallel([fails, crew_call], functools.partial(barrier.abort, state))
    assert seen == {"passed": False, "done": True}


@njit(nogil=True)
def _meet(state, k, steps, out):
    """Two threads meeting on a barrier ``steps`` times (it never returns unless both run at once)."""
    for t in range(steps):
        barrier.wait(state, 2, t)
    out[k] = steps
    return k


def _two_compiled_calls(steps=200):
    state, out = barrier.new_state(), np.zeros(2, np.int64)
    calls = [functools.partial(_meet, state, k, steps, out) for k in range(2)]
    assert cpu._in_parallel(calls) == [0, 1] and list(out) == [steps, steps]


def test_compiled_calls_run_at_once_and_a_sleeping_crew_thread_is_woken(monkeypatch):
    """Compiled calls run at the same time (they meet on a barrier); with no time to stay ready
    (``_READY_NS`` = 0) the crew's thread sleeps between calls and is woken for each."""
    _two_compiled_calls()
    monkeypatch.setattr(cpu, "_READY_NS", 0)
    for _ in range(3):
        time.sleep(0.01)
        _two_compiled_calls()
    assert cpu._in_parallel([lambda: 1, lambda: 2]) == [1, 2]


def test_calls_from_two_python_threads_and_from_a_crew_thread():
    """Two Python threads calling at once (one of them through the queued pool while the crew is busy) and a crew
    thread's own call of ``_in_parallel`` all finish with their results."""
    errors = []

    def many():
        try:
            for _ in range(30):
                _two_compiled_calls(20)
        except BaseException as error:  # collected for the assert below
            errors.append(error)
    threads = [threading.Thread(target=many) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    nested = cpu._in_parallel([lambda: 0, lambda: cpu._in_parallel([lambda: 1, lambda: 2])])
    assert nested == [0, [1, 2]]


_SAYS_GO = """
import numpy as np
from lstmzoo.kernels import cpu
cpu._READY_NS = 10 ** 15  # the crew's threads wait for a round's go, never for the time to run out
cpu.set_num_threads(2)
T, B, I, H = 6, 2, 8, 32
cpu.plan = lambda *a, **k: cpu.Plan([cpu.Block(0, B, "units", cpu._unit_parts(H, 2))])
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I)).astype(np.float32)
h0 = np.zeros((B, H), np.float32)
weights = [rng.standard_normal(shape).astype(np.float32) * 0.1 for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
for _ in range(3):
    y, h, c, cache = cpu.lstm_forward(x, h0, h0, *weights, training=True)
    cpu.lstm_backward(np.ones_like(y), None, None, cache)
print("finished")
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs Linux and 2 CPUs")
def test_the_unit_splits_calling_thread_says_the_round_has_started():
    """The unit split's forward and backward (``go_first``: the calling thread's compiled part says go) with crew
    threads that wait for go for ever: they finish. Had the calling thread not said it, its part would wait on the
    barrier for a crew thread that waits for go: for ever, so the calls run in a process of their own with a time
    limit."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _SAYS_GO], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-3000:]


def test_the_crews_rest_before_openblas_runs_on_its_threads(monkeypatch):
    """``_rest_the_crews`` sends a crew thread that would stay ready for ever to sleep, and the next call wakes it;
    the OpenBLAS calls on OpenBLAS's own threads (one row's time loop, ``_matmul``) rest the crews first."""
    monkeypatch.setattr(cpu, "_READY_NS", 10 ** 15)
    assert cpu._in_parallel([lambda: 1, lambda: 2]) == [1, 2]  # the crew's thread now stays ready for ever
    worker = cpu._crew(1).workers[0]
    time.sleep(0.05)
    assert not worker.sleeping
    cpu._rest_the_crews()
    deadline = time.monotonic() + 30
    while not worker.sleeping and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.sleeping
    assert cpu._in_parallel([lambda: 3, lambda: 4]) == [3, 4]
    rests = []
    monkeypatch.setattr(cpu, "_rest_the_crews", lambda: rests.append(1))
    with cpu._recurrence_blas(2):
        pass
    assert not rests
    with cpu._recurrence_blas(1):
        pass
    cpu._matmul(np.ones((3, 4)), np.ones((4, 5)))
    assert len(rests) == 2
    monkeypatch.undo()
    cpu._rest_the_crews()  # not left staying ready for ever


def test_a_round_left_running_is_finished_before_the_next(monkeypatch):
    """A caller interrupted while it waited for the crew (here: its wait raises at once) leaves the crew's thread
    running its call; the next ``_in_parallel`` waits for that call to end before it posts its own."""
    slow = threading.Event()

    def crew_call():
        time.sleep(0.2)
        slow.set()
        return "late"
    worker = cpu._crew(1).workers[0]
    real = cpu._Worker.outcome_of

    def interrupted(self, round_):
        raise KeyboardInterrupt
    monkeypatch.setattr(cpu._Worker, "outcome_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpu._in_parallel([lambda: 1, crew_call])
    monkeypatch.setattr(cpu._Worker, "outcome_of", real)
    assert not slow.is_set() and worker.finished < cpu._crew(1).round
    assert cpu._in_parallel([lambda: 1, lambda: 2]) == [1, 2]
    assert slow.is_set()
