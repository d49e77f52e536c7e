"""kernels/barrier.py: the spin barrier the hidden-unit split of the time loops meets on once per step."""

import functools
import threading

import numpy as np
import pytest
from lstmzoo.kernels import barrier, cpu
from numba import njit


@njit(nogil=True)
def _steps(state, k, threads, data, seen, use_barrier):
    """Thread ``k`` of ``threads``: at each step writes its own slot, meets the others, then reads every thread's
    slot of that step (all must be there: written before their arrival) and counts what it saw."""
    steps = data.shape[1]
    for t in range(steps):
        # some work of varying length, so that the threads arrive in varying order
        s = 0.0
        for i in range((t * 7 + k * 13) % 50 * 20):
            s += i * 1e-9
        data[k, t] = t + 1 + s * 0.0
        if use_barrier:
            if not barrier.wait(state, threads, t):
                return t
        seen_all = 0
        for j in range(threads):
            if data[j, t] == t + 1:
                seen_all += 1
        seen[k, t] = seen_all
    return steps


def _run(threads, steps, use_barrier=True):
    state = barrier.new_state()
    data = np.zeros((threads, steps))
    seen = np.zeros((threads, steps), np.int64)
    done = cpu._in_parallel([functools.partial(_steps, state, k, threads, data, seen, use_barrier)
                             for k in range(threads)])
    return state, seen, done


@pytest.mark.parametrize("threads", [2, 3, 4])  # 3 and 4: more threads than this machine's 2 cores (sched_yield)
def test_every_thread_sees_every_write_of_the_step(threads):
    steps = 2000
    state, seen, done = _run(threads, steps)
    assert done == [steps] * threads
    assert (seen == threads).all()
    assert barrier.arrivals(state) == threads * steps


def test_without_the_barrier_the_check_fails():
    """The test above can fail: without the barrier a thread reads slots the others have not written yet."""
    _, seen, _ = _run(2, 2000, use_barrier=False)
    assert (seen < 2).any()


def test_abort_releases_the_waiting_threads():
    state = barrier.new_state()
    result = []
    waiter = threading.Thread(target=lambda: result.append(barrier.wait(state, 2, 0)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the second thread never arrives
    barrier.abort(state)
    waiter.join(10)
    assert not waiter.is_alive() and result == [False]


def test_atomic_add_returns_the_old_value():
    state = barrier.new_state()
    assert barrier.arrivals(state) == 0

    @njit
    def add(state, n):
        return barrier.atomic_add(state, barrier.COUNT, n)
    assert add(state, 5) == 0 and add(state, 2) == 5
    assert barrier.arrivals(state) == 7


@njit(nogil=True)
def _produce(state, data):
    for t in range(data.shape[0]):
        s = 0.0
        for i in range((t * 7) % 50 * 20):  # work of varying length
            s += i * 1e-9
        data[t] = t + 1 + s * 0.0
        barrier.publish(state, t + 1)
    return data.shape[0]


@njit(nogil=True)
def _consume(state, data, seen, wait):
    for t in range(data.shape[0]):
        if wait and not barrier.wait_until(state, t + 1):
            return t
        seen[t] = data[t] == t + 1
    return data.shape[0]


def _pipe(steps, wait):
    state = barrier.new_state()
    data = np.zeros(steps)
    seen = np.zeros(steps, np.bool_)
    done = cpu._in_parallel([functools.partial(_consume, state, data, seen, wait),
                             functools.partial(_produce, state, data)])
    return done, seen


def test_wait_until_sees_what_was_written_before_the_publish():
    done, seen = _pipe(20000, True)
    assert done == [20000, 20000] and seen.all()


def test_without_wait_until_the_consumer_runs_ahead():
    """The test above can fail: without waiting, the consumer reads steps not written yet."""
    _, seen = _pipe(20000, False)
    assert not seen.all()


def test_abort_releases_wait_until():
    state = barrier.new_state()
    result = []
    waiter = threading.Thread(target=lambda: result.append(barrier.wait_until(state, 1)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()
    barrier.abort(state)
    waiter.join(10)
    assert not waiter.is_alive() and result == [False]
