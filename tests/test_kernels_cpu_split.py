"""The forward's hidden-unit split (kernels/cpu.py, ``_forward_units``: all rows in every thread, each thread its
units, one barrier per step) against the row split on one thread (bitwise) and the NumPy reference; ``plan``'s
choice between the two splits."""

import numpy as np
import pytest
from lstmzoo.kernels import cpu, reference
from test_kernels_cpu import CELLS, assert_close, backward, forward, make_inputs

KINDS = {"lstm": cpu.LSTM, "gru": cpu.GRU, "rnn_tanh": cpu.RNN_TANH, "rnn_relu": cpu.RNN_RELU}


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads (as in test_kernels_cpu.py)."""
    import numba

    def pin(n):
        monkeypatch.setattr(numba, "get_num_threads", lambda: n)
    return pin


def inputs(rng, cell, T, B, n_in, H, dtype):
    """``make_inputs`` with W_hh scaled to a contracting recurrence, so that long sequences stay comparable with
    the reference in float32 (with make_inputs' scale a 100-step RNN is chaotic: 1-thread results differ from the
    reference by 1e-3)."""
    p = make_inputs(rng, cell, T, B, n_in, H, dtype)
    p["w_hh"] *= 2 / np.sqrt(H)
    return p


def assert_same_cache(a, b, lengths):
    """Bitwise equal states (hs, cs) and saved values where written (steps within each row's length)."""
    for x, y in zip(a[5:7], b[5:7]):
        np.testing.assert_array_equal(x, y)
    valid = np.arange(len(a[7]))[:, None] < np.asarray(lengths)[None, :]
    np.testing.assert_array_equal(a[7][valid], b[7][valid])


def run(cell, p, lengths, training, threads, pin_threads):
    pin_threads(threads)
    got, cache = forward(cpu, cell, p, lengths, training)
    return got, cache


@pytest.fixture
def units_everywhere(monkeypatch):
    """The unit split for every shape it can run (from 1 row and 1 step, any H with 16 units per thread), so that
    the tests' small shapes take it."""
    monkeypatch.setattr(cpu, "_MIN_ROWS_UNIT_SPLIT", 1)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS", 0)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_TRAINING", 0)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_ONE_ROW", 1)
    monkeypatch.setattr(cpu, "_MIN_ROW_STEPS_UNITS_SMALL", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING_ONE_ROW", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING_LARGE", 1)


@pytest.mark.parametrize("B, threads, kind, H, projected, blocks", [
    (4, 1, cpu.LSTM, 512, False, [(0, 4, "packed")]),  # one thread: never the unit split
    (1, 1, cpu.LSTM, 512, False, [(0, 1, "gemv")]),
    (4, 2, None, None, False, [(0, 4, "packed")]),  # no cell given (the backward): rows
    (4, 2, cpu.LSTM, 512, True, [(0, 4, "packed")]),  # the LSTM with a projection keeps the row split
    (4, 2, cpu.LSTM, 512, False, [(0, 4, "units", ((0, 256), (256, 512)))]),
    (2, 2, cpu.LSTM, 1024, False, [(0, 2, "units", ((0, 512), (512, 1024)))]),
    (1, 2, cpu.LSTM, 384, False, [(0, 1, "gemv")]),  # one row: OpenBLAS's GEMV on its threads ...
    (1, 2, cpu.LSTM, 112, False, [(0, 1, "gemv")]),
    (1, 2, cpu.LSTM, 128, False, [(0, 1, "units", ((0, 64), (64, 128)))]),  # ... but where a thread's share fits L2
    (1, 2, cpu.LSTM, 256, False, [(0, 1, "units", ((0, 128), (128, 256)))]),
    (1, 2, cpu.LSTM, 1024, False, [(0, 1, "units", ((0, 512), (512, 1024)))]),  # ... or is 2 L2s or more
    (1, 2, cpu.LSTM, 256, True, [(0, 1, "gemv")]),
    (1, 2, cpu.RNN_TANH, 512, False, [(0, 1, "units", ((0, 256), (256, 512)))]),
    (2, 2, cpu.GRU, 1024, False, [(0, 2, "units", ((0, 512), (512, 1024)))]),
    (7, 2, cpu.RNN_TANH, 1024, False, [(0, 7, "units", ((0, 512), (512, 1024)))]),
    (4, 2, cpu.RNN_TANH, 512, False, [(0, 4, "units", ((0, 256), (256, 512)))]),  # from 2^17 elements of W_hh
    (4, 2, cpu.LSTM, 182, False, [(0, 4, "units", ((0, 80), (80, 182)))]),
    (4, 2, cpu.LSTM, 181, False, [(0, 4, "packed")]),  # below: rows
    (4, 2, cpu.RNN_TANH, 362, False, [(0, 4, "packed")]),
    (4, 3, cpu.LSTM, 600, False, [(0, 4, "units", ((0, 192), (192, 384), (384, 600)))]),
    (8, 2, cpu.LSTM, 512, False, [(0, 4, "packed"), (4, 8, "packed")]),  # from 8 rows: the row split
    (8, 2, cpu.LSTM, 1024, False, [(0, 8, "units", ((0, 512), (512, 1024)))]),  # W_hh >= 2^22: units to 12 rows
    (12, 2, cpu.LSTM, 1024, False, [(0, 12, "units", ((0, 512), (512, 1024)))]),
    (13, 2, cpu.LSTM, 1024, False, [(0, 6, "packed"), (6, 13, "packed")]),
    (12, 2, cpu.GRU, 1184, False, [(0, 12, "units", ((0, 592), (592, 1184)))]),
    (12, 2, cpu.GRU, 1168, False, [(0, 6, "packed"), (6, 12, "packed")]),
    (12, 2, cpu.LSTM, 1024, True, [(0, 6, "packed"), (6, 12, "packed")]),  # a projection: rows
    (32, 2, cpu.LSTM, 1024, False, [(0, 16, "packed"), (16, 32, "packed")]),
])
def test_plan_chooses_the_split(B, threads, kind, H, projected, blocks, monkeypatch):
    """The same rules on AVX2 and AVX-512 builds (one rule set since session 29)."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    assert cpu.plan(B, threads, kind=kind, hidden=H, projected=projected).blocks == [cpu.Block(*b) for b in blocks]


L, G, R = cpu.LSTM, cpu.GRU, cpu.RNN_TANH
# Whole plans, T = 100, float32, 1 MB L2s: (B, threads, cell, I, H, pass, projected) ->
# (the split: "units" with its parts, or the rows of each block; fused; beside)
PLANS = [
    (1, 2, L, 112, 112, "inference", False, ([1], False, False)),  # one row: OpenBLAS's GEMV below 2^16
    (1, 2, L, 128, 128, "inference", False, ("units 64 64", False, False)),
    (1, 2, L, 128, 128, "training", False, ([1], False, False)),
    (1, 2, L, 256, 256, "inference", False, ("units 128 128", False, False)),  # a share fits in L2
    (1, 2, L, 384, 384, "inference", False, ([1], False, False)),  # a share of 1.1 L2s
    (1, 2, L, 512, 512, "inference", False, ("units 256 256", False, False)),  # 2 L2s: streamed either way
    (1, 2, L, 256, 256, "training", False, ("units 128 128", False, False)),  # half an L2
    (1, 2, L, 256, 256, "backward", False, ("units 128 128", False, False)),
    (4, 2, L, 128, 128, "inference", False, ([4], False, True)),  # W_hh < 2^17: one block, a free thread
    (4, 2, L, 256, 256, "inference", False, ("units 128 128", False, False)),
    (4, 2, L, 64, 256, "inference", False, ("units 128 128", False, False)),  # a narrow input too
    (4, 2, L, 512, 512, "training", False, ("units 256 256", False, False)),
    (4, 2, L, 512, 512, "inference", True, ([4], False, True)),  # a projection: rows
    (4, 1, L, 512, 512, "inference", False, ([4], False, False)),  # one thread
    (2, 2, L, 32, 128, "inference", False, ([2], False, False)),  # 2^21.6 multiply-adds: not beside
    (4, 2, L, 128, 128, "backward", False, ([4], False, True)),  # dx, dW beside the loop
    (4, 2, G, 256, 256, "backward", False, ([4], False, False)),  # GRU: dW_ih, dW_hh 1.6 MB, past the L2
    (4, 2, G, 64, 256, "backward", False, ([4], False, True)),  # 0.99 MB
    (8, 2, L, 128, 128, "inference", False, ([4, 4], False, False)),
    (16, 2, L, 128, 128, "inference", False, ([8, 8], True, False)),  # 8 rows a block: fused ...
    (16, 2, G, 128, 128, "training", False, ([8, 8], False, False)),  # ... but the GRU
    (16, 2, R, 128, 128, "inference", False, ([8, 8], True, False)),
    (12, 2, L, 1024, 1024, "inference", False, ("units 512 512", False, False)),  # 2^22: units to 12 rows
    (16, 2, L, 320, 320, "inference", False, ([8, 8], True, False)),  # 8..32 rows: 1 MB L2s, the rows
    (32, 2, L, 1024, 1024, "inference", False, ([16, 16], False, False)),  # 32 MB: fused from 32 rows
    (62, 2, L, 1024, 1024, "inference", False, ([31, 31], False, False)),  # 32 MB of weights: fused from
    (64, 2, L, 1024, 1024, "inference", False, ([32, 32], True, False)),   # 32 rows
    (256, 2, L, 32, 128, "training", False, ([128, 128], True, False)),
]


@pytest.mark.parametrize("B, H, steps, mode, want", [
    (1, 1024, None, "inference", "units"),  # steps not given: as for many
    (1, 1024, 1, "inference", "gemv"),  # one row: the unit split from 32 steps in inference ...
    (1, 1024, 31, "inference", "gemv"),
    (1, 1024, 32, "inference", "units"),
    (1, 256, 63, "training", "gemv"),  # ... from 64 in training
    (1, 256, 63, "backward", "gemv"),
    (1, 256, 64, "training", "units"),
    (1, 256, 64, "backward", "units"),
    (4, 1024, 1, "inference", "packed"),  # 2 or more rows: from 2 steps in inference ...
    (4, 512, 2, "inference", "units"),
    (4, 256, 2, "inference", "units"),  # (W_hh 2^18 elements)
    (12, 1024, 2, "inference", "units"),
    (4, 255, 5, "inference", "packed"),  # ... below 2^18 elements of W_hh from 24 rows times steps
    (4, 255, 6, "inference", "units"),
    (2, 192, 11, "inference", "packed"),
    (2, 192, 12, "inference", "units"),
    (3, 192, 7, "inference", "packed"),
    (3, 192, 8, "inference", "units"),
    (7, 192, 3, "inference", "packed"),
    (7, 192, 4, "inference", "units"),
    (4, 512, 23, "training", "packed"),  # from 24 in training ...
    (4, 512, 23, "backward", "packed"),
    (4, 512, 24, "training", "units"),
    (4, 512, 24, "backward", "units"),
    (4, 724, 23, "training", "packed"),  # (W_hh 2^21 less 448 elements)
    (4, 1024, 7, "training", "packed"),  # ... from 8 from 2^21 elements of W_hh
    (4, 1024, 7, "backward", "packed"),
    (4, 1024, 8, "training", "units"),
    (4, 1024, 8, "backward", "units"),
    (4, 725, 8, "training", "units"),
])
def test_the_unit_split_needs_steps_to_repay_it(B, H, steps, mode, want, monkeypatch):
    """Each thread of the unit split packs its share of the weights and every call wakes the other thread: calls of
    few steps run faster on the row split, and the fewer the weights the more steps it takes (``plan``'s docstring,
    "Few steps")."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    how = cpu.plan(B, 2, cpu.LSTM, H, training=mode == "training", backward=mode == "backward", inputs=H,
                   steps=steps)
    assert how.blocks[0].step == want


@pytest.mark.parametrize("kind, H, steps, want", [
    (cpu.GRU, 295, 5, "packed"),  # 3 * 295^2 < 2^18: from 6 steps at 4 rows
    (cpu.GRU, 295, 6, "units"),
    (cpu.GRU, 296, 2, "units"),
    (cpu.RNN_TANH, 511, 5, "packed"),
    (cpu.RNN_TANH, 511, 6, "units"),
    (cpu.RNN_TANH, 512, 2, "units"),
])
def test_the_steps_the_unit_split_needs_follow_the_weights_of_each_cell(kind, H, steps, want, monkeypatch):
    """The step rule counts W_hh's elements, whatever the cell (4 rows, inference)."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    assert cpu.plan(4, 2, kind, H, inputs=H, steps=steps).blocks[0].step == want


# 8..32 rows in inference split the units where W_hh outgrows an L2 of at least 2 MB: they gained on
# 2 MB L2s (Intel Xeon, sessions 23-24) and lost on 1 MB L2s (Zen 4, session 25; ``PLANS`` holds those cases).
# Whole plans on 2 MB L2s, as ``PLANS``.
PLANS_2MB_L2 = [
    (16, 2, L, 384, 384, "inference", False, ("units 192 192", False, False)),  # W_hh 2.25 MB: units, ...
    (8, 2, L, 96, 384, "inference", False, ("units 192 192", False, False)),  # ... projection first
    (32, 2, L, 1024, 1024, "inference", False, ("units 512 512", False, False)),
    (32, 2, G, 512, 512, "inference", False, ("units 256 256", False, False)),
    (33, 2, L, 384, 384, "inference", False, ([16, 17], True, False)),  # from 33 rows: the row split
    (16, 2, L, 362, 362, "inference", False, ([8, 8], True, False)),  # W_hh 2 MB less 1.6 KB: in an L2
    (16, 2, L, 384, 384, "training", False, ([8, 8], True, False)),  # training
    (16, 1, L, 384, 384, "inference", False, ([16], True, False)),  # one thread
]


@pytest.mark.parametrize("l2, B, threads, kind, n_in, H, mode, projected, want",
                         [(1 << 20, *p) for p in PLANS] + [(2 << 20, *p) for p in PLANS_2MB_L2])
def test_plan_table(l2, B, threads, kind, n_in, H, mode, projected, want, monkeypatch):
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: l2)
    how = cpu.plan(B, threads, kind, H, projected, training=mode == "training", backward=mode == "backward",
                   inputs=n_in, steps=100)
    split, fused, beside = want
    if isinstance(split, str):
        parts = [int(n) for n in split.split()[1:]]
        bounds = np.cumsum([0] + parts).tolist()
        assert how.blocks == [cpu.Block(0, B, "units", tuple(zip(bounds[:-1], bounds[1:])))]
    else:
        assert [block.end - block.start for block in how.blocks] == split
        assert all(block.step == ("gemv" if rows == 1 else "packed") for block, rows in zip(how.blocks, split))
    assert (how.fused, how.beside) == (fused, beside)
    assert cpu.plan(B, threads, kind, H, projected, training=mode == "training", backward=mode == "backward",
                    inputs=n_in) == (how.blocks, False, False)  # the split does not need T


@pytest.mark.parametrize("B, kind, H, n_in, threads, training, projected, step", [
    (4, cpu.LSTM, 256, 256, 2, False, False, "units"),   # I = H
    (4, cpu.LSTM, 256, 64, 2, False, False, "units"),    # I = H/4
    (4, cpu.LSTM, 256, None, 2, False, False, "units"),  # the input width not given
    (2, cpu.LSTM, 182, 182, 2, False, False, "units"),   # 4 * 182^2 >= 2^17
    (2, cpu.LSTM, 181, 181, 2, False, False, "packed"),  # below 2^17 elements
    (7, cpu.LSTM, 448, 448, 2, False, False, "units"),   # a share past the L2
    (8, cpu.LSTM, 182, 182, 2, False, False, "packed"),  # from 8 rows the row split, even past 2^17 (and past
    (8, cpu.LSTM, 512, 512, 2, False, False, "packed"),  # a 512 KB L2: the 8..32-row unit split needs 2 MB ones)
    (4, cpu.LSTM, 256, 256, 2, False, True, "packed"),   # a projection
    (4, cpu.LSTM, 256, 256, 1, False, False, "packed"),  # one thread
    (4, cpu.LSTM, 256, 256, 2, True, False, "units"),    # training from 2^18, as the backward
    (4, cpu.LSTM, 255, 255, 2, True, False, "packed"),
    (4, cpu.GRU, 210, 210, 2, False, False, "units"),
    (4, cpu.GRU, 209, 209, 2, False, False, "packed"),
    (4, cpu.RNN_TANH, 363, 363, 2, False, False, "units"),
    (4, cpu.RNN_TANH, 362, 362, 2, False, False, "packed"),
])
def test_two_to_seven_rows_split_the_units_from_2_17_weights(
        B, kind, H, n_in, threads, training, projected, step, monkeypatch):
    """Where each unit-split thread projects its own units' inputs (AVX-512 builds since session 21, AVX2 builds
    since session 29), 2..7 rows split the units from 2^17 elements of W_hh (2^18 in training), whatever the input
    width and the L2; the backward's rule is not changed by it."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 512 << 10)
    blocks = cpu.plan(B, threads, kind=kind, hidden=H, projected=projected, training=training, inputs=n_in).blocks
    assert blocks[0].step == step
    if (kind, H) == (cpu.LSTM, 182):
        assert cpu.plan(B, threads, kind=kind, hidden=H, backward=True).blocks[0].step == "packed"


@pytest.mark.parametrize("H, itemsize, threads, l2, step", [
    (256, 4, 2, 1 << 20, "units"),   # LSTM W_hh 2^18 elements: 512 KB a thread
    (256, 4, 2, 512 << 10, "units"),  # Zen 1/3's 512 KB L2 still holds it
    (300, 8, 2, 1 << 20, "gemv"),     # float64: 1.4 MB a thread, just past a 1 MB L2
    (256, 8, 2, 512 << 10, "units"),  # float64: 1 MB a thread, 2 L2s of 512 KB
    (362, 4, 2, 1 << 20, "units"),
    (363, 4, 2, 1 << 20, "gemv"),     # 2 * 1 MB < 4 * 363^2 * 4 bytes
    (363, 4, 3, 1 << 20, "units"),    # three shares fit
    (511, 4, 2, 1 << 20, "gemv"),     # a share of 2 MB less 18 KB: the band just past the L2
    (512, 4, 2, 1 << 20, "units"),    # 2 MB a thread, 2 L2s: streamed from L3 by either split
    (362, 8, 2, 1 << 20, "gemv"),     # float64: 2 MB less 900 bytes a thread
    (363, 8, 2, 1 << 20, "units"),
    (240, 4, 2, 1 << 20, "units"),    # below 2^18 elements (from 2^16, the next test)
    (256, 4, 1, 1 << 20, "gemv"),     # one thread
])
def test_one_row_splits_the_units_where_a_share_of_w_hh_fits_in_l2_or_is_far_past_it(H, itemsize, threads, l2, step,
                                                                                     monkeypatch):
    """Inference; training's one-row rule is the test after the next."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: l2)
    assert cpu.plan(1, threads, kind=cpu.LSTM, hidden=H, itemsize=itemsize).blocks[0].step == step


@pytest.mark.parametrize("kind, H, step", [
    (cpu.LSTM, 128, "units"), (cpu.LSTM, 127, "gemv"),  # 4 * 128^2 = 2^16 elements
    (cpu.GRU, 148, "units"), (cpu.GRU, 147, "gemv"),
    (cpu.RNN_TANH, 256, "units"), (cpu.RNN_TANH, 255, "gemv"),
])
def test_one_row_inference_splits_the_units_from_2_16_weights(kind, H, step, monkeypatch):
    """Where each thread projects its own units' inputs; training keeps OpenBLAS's GEMV below 2^18 elements (and
    past half an L2)."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    assert cpu.plan(1, 2, kind=kind, hidden=H).blocks[0].step == step
    for flags in ({"training": True}, {"backward": True}):
        assert cpu.plan(1, 2, kind=kind, hidden=H, **flags).blocks[0].step == "gemv"


@pytest.mark.parametrize("kind, H, itemsize, threads, l2, step", [
    (cpu.LSTM, 256, 4, 2, 1 << 20, "units"),     # a share of 512 KB: half an L2
    (cpu.LSTM, 257, 4, 2, 1 << 20, "gemv"),      # just past half
    (cpu.LSTM, 240, 4, 2, 1 << 20, "gemv"),      # below 2^18 elements
    (cpu.LSTM, 256, 4, 2, 512 << 10, "gemv"),    # Zen 1/3's 512 KB L2: a whole one
    (cpu.LSTM, 256, 4, 1, 1 << 20, "gemv"),      # one thread
    (cpu.LSTM, 512, 4, 2, 1 << 20, "gemv"),      # 2 L2s a thread (inference splits it, training does not)
    (cpu.RNN_TANH, 512, 4, 2, 1 << 20, "units"),
    (cpu.GRU, 296, 4, 2, 1 << 20, "gemv"),       # the GRU's first H with 2^18 elements is past half an L2
])
def test_one_row_in_training_splits_the_units_where_a_share_is_half_an_l2(
        kind, H, itemsize, threads, l2, step, monkeypatch):
    """Both passes of a one-row training step (the forward and its backward) split the units together."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: l2)
    for flags in ({"training": True}, {"backward": True}):
        assert cpu.plan(1, threads, kind=kind, hidden=H, itemsize=itemsize, **flags).blocks[0].step == step


def test_a_forward_tells_plan_its_input_width(pin_threads, monkeypatch):
    """lstm_forward and the backward's own look at the forward's plan pass I: B = 3, I = 32, H = 256 runs the unit
    split on 2 threads, bitwise what one thread computes."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    calls, real = [], cpu._forward_units
    monkeypatch.setattr(cpu, "_forward_units", lambda *args: calls.append(args[1]) or real(*args))
    rng = np.random.default_rng(5)
    p = inputs(rng, "lstm", 24, 3, 32, 256, np.float32)  # 24 steps: training splits the units too
    for training in (False, True):
        got, cache = run("lstm", p, None, training, 2, pin_threads)
        one, _ = run("lstm", p, None, training, 1, pin_threads)
        for a, b in zip(got, one):
            np.testing.assert_array_equal(a, b)
    assert calls == [((0, 128), (128, 256))] * 2


@pytest.mark.parametrize("B, threads, H, blocks", [
    (4, 2, 37, [(0, 4, "units", ((0, 16), (16, 37)))]),  # the last part takes the remainder
    (1, 2, 64, [(0, 1, "units", ((0, 32), (32, 64)))]),
    (4, 3, 100, [(0, 4, "units", ((0, 32), (32, 64), (64, 100)))]),
    (4, 2, 31, [(0, 4, "packed")]),  # fewer than 16 units per thread: rows
])
def test_plan_splits_small_shapes_when_told(B, threads, H, blocks, units_everywhere):
    assert cpu.plan(B, threads, kind=cpu.LSTM, hidden=H).blocks == [cpu.Block(*b) for b in blocks]


@pytest.mark.parametrize("H, threads", [(20, 2), (37, 2), (64, 2), (100, 3), (1000, 7), (1024, 2), (48, 3)])
def test_unit_parts_cover_the_units(H, threads):
    parts = cpu._unit_parts(H, threads)
    assert parts[0][0] == 0 and parts[-1][1] == H
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert len(parts) <= threads and all(u1 - u0 >= cpu._UNIT_GRAIN for u0, u1 in parts)
    assert all(u0 % cpu._UNIT_GRAIN == 0 for u0, _ in parts)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, H, threads", [(2, 37, 2), (5, 64, 2), (7, 45, 3), (3, 100, 2), (1, 50, 2)])
def test_unit_split_is_bitwise_the_row_split_and_matches_reference(cell, dtype, B, H, threads, pin_threads,
                                                                   units_everywhere):
    """B < 8 on 2-3 threads runs the unit split (projection first); the row split on one thread runs the same sums
    in the same order (from 2 rows, the micro-kernel): bitwise equal outputs, states and saved values, training and
    inference, with lengths and h0/c0; odd H and H below threads x the panel width; and the reference within
    tolerance (forward and the backward that reads the split's cache)."""
    assert cpu.plan(B, threads, kind=KINDS[cell], hidden=H).blocks[0].step == "units"
    rng = np.random.default_rng(B * H)
    T = 9
    p = inputs(rng, cell, T, B, 6, H, dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    want, want_cache = forward(reference, cell, p, lengths)
    for training in (True, False):
        got, got_cache = run(cell, p, lengths, training, threads, pin_threads)
        one, one_cache = run(cell, p, lengths, training, 1, pin_threads)
        for a, b, c in zip(got, one, want):
            if B > 1:  # one row on one thread: OpenBLAS's GEMV, sums in its order
                np.testing.assert_array_equal(a, b)
            assert_close(a, c, dtype)
        if training:
            if B > 1:
                assert_same_cache(got_cache, one_cache, lengths)
            dy = rng.standard_normal(got[0].shape).astype(dtype)
            for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                            backward(reference, cell, want_cache, dy, None, None)):
                assert_close(a, b, dtype)


@pytest.mark.parametrize("cell", ["lstm", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_unit_split_is_bitwise_the_fused_row_split(cell, dtype, pin_threads, monkeypatch):
    """The unit split with the input projection in the step's GEMM (forced here for 9 rows) against the fused row
    split on one thread (9 rows: fused): bitwise, and the reference within tolerance."""
    monkeypatch.setattr(cpu, "_MAX_ROWS_UNIT_SPLIT", 10**9)
    monkeypatch.setattr(cpu, "_MIN_ROWS_UNITS_FUSED", 0)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS", 0)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_TRAINING", 0)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING", 1)
    monkeypatch.setattr(cpu, "_MIN_ROW_STEPS_UNITS_SMALL", 1)
    B, H, T = 9, 53, 7
    rng = np.random.default_rng(3)
    p = inputs(rng, cell, T, B, 11, H, dtype)
    lengths = rng.integers(1, T + 1, B)
    how = cpu.plan(B, 2, kind=KINDS[cell], hidden=H, inputs=11, steps=T)
    assert how.blocks[0].step == "units" and how.fused
    assert cpu.plan(B, 1, kind=KINDS[cell], hidden=H, inputs=11, steps=T).fused
    want, _ = forward(reference, cell, p, lengths)
    for training in (True, False):
        got, got_cache = run(cell, p, lengths, training, 2, pin_threads)
        one, one_cache = run(cell, p, lengths, training, 1, pin_threads)
        for a, b, c in zip(got, one, want):
            np.testing.assert_array_equal(a, b)
            assert_close(a, c, dtype)
        if training:
            assert_same_cache(got_cache, one_cache, lengths)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [8, 12])
def test_unit_split_of_8_to_12_rows_matches_reference(cell, dtype, B, pin_threads, units_everywhere, monkeypatch):
    """8-12 rows take the unit split (projection first) where W_hh is large (forced here for small H): forward in
    both modes and the backward, itself split by units, within tolerance of the reference; its results do not
    depend on whether the backward splits the units (bitwise)."""
    monkeypatch.setattr(cpu, "_LARGE_UNIT_WEIGHTS", 0)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_BACKWARD", 0)
    H, T = 45, 8
    how = cpu.plan(B, 2, kind=KINDS[cell], hidden=H, inputs=7, steps=T)
    assert how.blocks[0].step == "units" and not how.fused
    assert cpu.plan(B, 2, kind=KINDS[cell], hidden=H, backward=True).blocks[0].step == "units"
    rng = np.random.default_rng(B + H)
    p = inputs(rng, cell, T, B, 7, H, dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    want, want_cache = forward(reference, cell, p, lengths)
    for training in (True, False):
        got, got_cache = run(cell, p, lengths, training, 2, pin_threads)
        for a, c in zip(got, want):
            assert_close(a, c, dtype)
        if training:
            dy = rng.standard_normal(got[0].shape).astype(dtype)
            split = backward(cpu, cell, got_cache, dy, None, None)
            for a, b in zip(split, backward(reference, cell, want_cache, dy, None, None)):
                assert_close(a, b, dtype)
            monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_BACKWARD", 10**18)     # the backward on the row split
            for a, b in zip(split, backward(cpu, cell, got_cache, dy, None, None)):
                np.testing.assert_array_equal(a, b)
            monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_BACKWARD", 0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_many_steps_on_the_unit_split(cell, pin_threads, units_everywhere):
    """400 steps of 2 threads meeting at the barrier: a thread that ran ahead would read a half-written h_t and
    the result would differ from the one-thread result (checked to fail with the barrier's wait removed)."""
    B, H, T = 4, 64, 400
    rng = np.random.default_rng(7)
    p = inputs(rng, cell, T, B, 8, H, np.float32)
    for training in (False, True):
        got, _ = run(cell, p, None, training, 2, pin_threads)
        one, _ = run(cell, p, None, training, 1, pin_threads)
        for a, b in zip(got, one):
            np.testing.assert_array_equal(a, b)


def test_projection_keeps_the_row_split(pin_threads, units_everywhere):
    """The LSTM with a projection (w_hr) at B < 8 on 2 threads: the row split (one block), against the reference."""
    pin_threads(2)
    rng = np.random.default_rng(9)
    B, H, P, T = 4, 40, 24, 6
    p = make_inputs(rng, "lstm", T, B, 5, H, np.float64)
    p["h0"] = p["h0"][:, :P]
    p["w_hh"] = p["w_hh"][:, :P].copy()
    w_hr = (0.3 * rng.standard_normal((P, H))).astype(np.float64)
    assert cpu.plan(B, kind=cpu.LSTM, hidden=H, projected=True).blocks[0].step == "packed"
    got = cpu.lstm_forward(**p, w_hr=w_hr, training=False)
    want = reference.lstm_forward(**p, w_hr=w_hr, training=False)
    for a, b in zip(got[:3], want[:3]):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_thread_does_not_hang_the_others(failing, pin_threads, monkeypatch, units_everywhere):
    """When one thread of the unit split fails, the other is released from the barrier (``barrier.abort``) and
    the error reaches the caller; nothing waits forever."""
    real = cpu._unit_sequence

    def fail_second(state, kind, k, *args):  # thread 0 runs on the calling thread, 1 on the crew's
        if k == failing:
            raise RuntimeError(f"thread {k} failed")
        return real(state, kind, k, *args)
    monkeypatch.setattr(cpu, "_unit_sequence", fail_second)
    pin_threads(2)
    rng = np.random.default_rng(1)
    p = inputs(rng, "lstm", 50, 4, 8, 64, np.float32)
    with pytest.raises(RuntimeError, match=f"thread {failing} failed"):
        forward(cpu, "lstm", p, None, False)


@pytest.mark.parametrize("cell", ["lstm", "rnn_tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_training_on_the_unit_split_matches_reference(cell, dtype, pin_threads, monkeypatch):
    """One row in training where both passes split the units (LSTM H = 256, RNN H = 512 with a 1 MB L2, float32;
    float64 forced; 5 steps, forced too): outputs, states and every gradient match the reference, with dh_n (and
    dc_n)."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING_ONE_ROW", 1)
    if dtype == np.float64:
        monkeypatch.setattr(cpu, "_ONE_ROW_TRAINING_L2S", 1.0)
    H = 256 if cell == "lstm" else 512
    kind = KINDS[cell]
    pin_threads(2)
    for flags in ({"training": True}, {"backward": True}):
        assert cpu.plan(1, kind=kind, hidden=H, itemsize=np.dtype(dtype).itemsize, inputs=7, steps=5,
                        **flags).blocks[0].step == "units"
    rng = np.random.default_rng(H)
    p = inputs(rng, cell, 5, 1, 7, H, dtype)
    got, got_cache = forward(cpu, cell, p, None, True)
    want, want_cache = forward(reference, cell, p, None, True)
    for a, b in zip(got, want):
        assert_close(a, b, dtype)
    dy = rng.standard_normal(got[0].shape).astype(dtype)
    dh = rng.standard_normal(got[1].shape).astype(dtype)
    dc = rng.standard_normal(got[1].shape).astype(dtype) if cell == "lstm" else None
    for a, b in zip(backward(cpu, cell, got_cache, dy, dh, dc), backward(reference, cell, want_cache, dy, dh, dc)):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("threads, steps, mode, want", [
    (1, 32, "inference", "packed"),   # one row on one thread from 32 steps: the micro-kernel's one-row tile
    (1, 100, "training", "packed"),   # (the forward of a training step too)
    (1, 31, "inference", "gemv"),     # fewer steps: packing W_hh does not repay itself
    (1, None, "inference", "gemv"),   # steps not told
    (1, 100, "backward", "gemv"),     # the one-row backward keeps OpenBLAS's GEMV
    (2, 100, "inference", "gemv"),    # on 2 threads OpenBLAS's GEMV uses both
])
def test_one_row_on_one_thread_runs_the_micro_kernel_from_32_steps(threads, steps, mode, want):
    how = cpu.plan(1, threads, cpu.LSTM, 96, training=mode == "training", backward=mode == "backward", inputs=96,
                   steps=steps)
    assert how.blocks == [cpu.Block(0, 1, want)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_forward_on_the_micro_kernel_matches_reference(cell, dtype, pin_threads):
    """One row, one thread, 40 steps: the forward's one-row micro-kernel tile (the LSTM also with a projection),
    outputs and states against the reference, and the gradients through it (its cache) too."""
    pin_threads(1)
    rng = np.random.default_rng(40)
    p = inputs(rng, cell, 40, 1, 24, 96, dtype)
    assert cpu.plan(1, 1, KINDS[cell], 96, inputs=24, steps=40).blocks[0].step == "packed"
    got, cache = forward(cpu, cell, p, None, True)
    want, want_cache = forward(reference, cell, p, None, True)
    for a, b in zip(got, want):
        assert_close(a, b, dtype)
    dy = rng.standard_normal(got[0].shape).astype(dtype)
    for a, b in zip(backward(cpu, cell, cache, dy, None, None), backward(reference, cell, want_cache, dy, None, None)):
        if b is not None:
            assert_close(a, b, dtype)
    if cell == "lstm":
        P = 40
        p["h0"], p["w_hh"] = p["h0"][:, :P], p["w_hh"][:, :P].copy()
        w_hr = (rng.standard_normal((P, 96)) / np.sqrt(96)).astype(dtype)
        got = cpu.lstm_forward(**p, w_hr=w_hr, training=False)
        want = reference.lstm_forward(**p, w_hr=w_hr, training=False)
        for a, b in zip(got[:3], want[:3]):
            assert_close(a, b, dtype)
