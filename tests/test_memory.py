"""kernels/memory.py: large arrays recycled between calls, never while anything still sees them."""

import threading

import numpy as np
import pytest
from lstmzoo.kernels import cpu, memory
from numba import njit

BIG = memory.MIN_BYTES // 4  # float32 elements of one smallest recycled array


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """An empty pool for each test (the slabs of other tests neither reused nor dropped), the default limit."""
    monkeypatch.setattr(memory, "_slabs", [])
    monkeypatch.setattr(memory, "limit", 1 << 40)


def address(a):
    return a.__array_interface__["data"][0]


def test_small_requests_go_to_numpy():
    a = memory.empty(BIG - 1, np.float32)
    assert a.flags.owndata and memory.held() == (0, 0)


def test_arrays_are_what_np_empty_and_np_zeros_give():
    a = memory.empty((3, BIG, 2), np.float64)
    assert a.shape == (3, BIG, 2) and a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable
    z = memory.zeros((BIG + 5,), np.float32)
    assert z.shape == (BIG + 5,) and not z.any()


def test_a_slab_is_handed_out_again_only_once_nothing_sees_it():
    a = memory.empty(BIG, np.float32)
    first = address(a)
    b = memory.empty(BIG, np.float32)
    assert address(b) != first  # a is alive: a new slab
    row = a[10:]  # a view keeps the slab in use after the array goes
    del a
    c = memory.empty(BIG, np.float32)
    assert address(c) not in (first, address(b))
    del row
    d = memory.empty(BIG, np.float32)
    assert address(d) == first
    assert memory.held() == (3 * BIG * 4, 0)


def test_arrays_numba_made_from_one_keep_its_slab():
    @njit
    def tail(a):
        return a[1:]

    a = memory.empty(BIG, np.float32)
    first = address(a)
    kept = tail(a)
    del a
    assert address(memory.empty(BIG, np.float32)) != first
    del kept
    assert address(memory.empty(BIG, np.float32)) == first


def test_a_slab_serves_requests_of_half_its_size_up_to_its_size():
    a = memory.empty(4 * BIG, np.float32)
    first = address(a)
    del a
    assert address(memory.empty(4 * BIG + 1, np.float32)) != first  # larger: a new slab
    assert address(memory.empty(BIG, np.float32)) != first  # a quarter: a new slab
    got = memory.empty(2 * BIG, np.float64)  # half of it: reused
    assert address(got) == first and got.dtype == np.float64


def test_free_slabs_past_the_limit_are_dropped_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(memory, "limit", (2 * BIG + 5) * 4)  # the last two of the four below
    arrays = [memory.empty(BIG + i, np.float32) for i in range(4)]
    addresses = [address(a) for a in arrays]
    del arrays
    big = memory.empty(100 * BIG, np.float32)  # a request none fits: the pool trims itself
    assert memory.held() == (big.nbytes, (2 * BIG + 5) * 4)
    kept = [memory.empty(BIG + 3, np.float32), memory.empty(BIG + 2, np.float32)]
    assert [address(a) for a in kept] == [addresses[3], addresses[2]]
    assert len(memory._slabs) == 3


def test_release_drops_the_free_slabs_and_keeps_those_in_use():
    a = memory.empty(BIG, np.float32)
    del a
    b = memory.empty(2 * BIG + 1, np.float32)
    assert memory.held() == ((2 * BIG + 1) * 4, BIG * 4)
    memory.release()
    assert memory.held() == ((2 * BIG + 1) * 4, 0)
    b[:] = 1  # still its own
    del b
    assert memory.held() == (0, (2 * BIG + 1) * 4)


def test_threads_never_get_one_slab_at_once():
    """Eight threads each take arrays, fill them with their number and check them, many times: no two hold the
    same slab at once."""
    wrong = []

    def work(k):
        for _ in range(40):
            a = memory.empty(BIG, np.int32)
            a.fill(k)
            if (a != k).any():
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_poisoned_arrays_show_reads_of_unwritten_memory(monkeypatch):
    monkeypatch.setattr(memory, "_poison", True)
    assert np.isnan(memory.empty(BIG, np.float32)).all()
    assert (memory.empty(BIG, np.int64) == np.iinfo(np.int64).max).all()
    assert not memory.zeros(BIG, np.float32).any()


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_a_training_step_reuses_the_memory_of_the_step_before(kind):
    """Forward and backward twice at a shape whose arrays are recycled: the second step takes no new slab (the
    first step's all came free when its results and cache went) and gives the first step's results bitwise."""
    rng = np.random.default_rng(0)
    T, B, n_in, H = 50, 64, 64, 96
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    x = rng.standard_normal((T, B, n_in)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    w_ih, w_hh = (rng.standard_normal((G * H, n)).astype(np.float32) * 0.1 for n in (n_in, H))
    b_ih, b_hh = (rng.standard_normal(G * H).astype(np.float32) for _ in range(2))
    dy = rng.standard_normal((T, B, H)).astype(np.float32)

    def step():
        if kind == "lstm":
            y, h, c, cache = cpu.lstm_forward(x, h0, h0, w_ih, w_hh, b_ih, b_hh)
            return [y, h, c] + [g for g in cpu.lstm_backward(dy, None, None, cache) if g is not None]
        forward, backward = getattr(cpu, f"{kind}_forward"), getattr(cpu, f"{kind}_backward")
        y, h, cache = forward(x, h0, w_ih, w_hh, b_ih, b_hh)
        return [y, h] + [g for g in backward(dy, None, cache) if g is not None]

    first = [a.copy() for a in step()]
    kept = len(memory._slabs)
    assert kept > 0  # the shape is large enough to be recycled
    second = step()
    assert len(memory._slabs) == kept
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
