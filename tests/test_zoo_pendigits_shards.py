"""pendigits' augmentation under data-parallel training (issue 16): every rank draws the distortions of the whole
global batch, but distorts and computes the features of its own rows only. One process gets the batches it always
got, bit for bit; each rank's shard of a batch is one process's shard, bit for bit, and the generator ends where
one process's does. The last test trains on 2 MPI ranks against one process."""

import types

import numpy as np
import pytest
from helpers import needs_shared
from lstmzoo.zoo.pendigits import FEATURES, PenDigits, distort, point_features, resample
from test_distributed import _assert_same_weights, _lstmzoo, _metrics, _weights, needs_mpi

from lstmzoo import distributed
from lstmzoo.tasks.recipes import LabelledSequences, SequenceClassificationData


def random_digits(count, points, seed=0):
    """Resampled random scribbles of 1-3 strokes, [points, 3] float32 each, as load_data keeps the training digits."""
    rng = np.random.default_rng(seed)
    digits = []
    for _ in range(count):
        strokes = [np.cumsum(rng.standard_normal((rng.integers(2, 30), 2)), axis=0)
                   for _ in range(rng.integers(1, 4))]
        digits.append(resample(strokes, points))
    return digits


def old_augment(sequences, strength, rng):
    """pendigits' augment before the ranks' shares: a distortion per digit, drawn and applied in turn."""
    if strength > 0:
        sequences = [distort(points, rng, strength) for points in sequences]
    return [point_features(points) for points in sequences]


def as_rank(monkeypatch, rank, size):
    monkeypatch.setattr(distributed, "world", lambda: types.SimpleNamespace(rank=rank, size=size))


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("points", [20, 2])     # 2: digits of 2 and 3 points (a point per stroke at least)
@pytest.mark.parametrize("strength", [0.0, 0.1, 0.4])
def test_one_process_gets_the_batches_it_always_got(strength, points):
    recipe = PenDigits()
    digits = random_digits(37, points)
    assert len({len(d) for d in digits}) == (1 if points == 20 else 2)
    hp = {"augment": strength}
    ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
    got = recipe.augment(digits, hp, ours)
    expected = old_augment(digits, strength, theirs)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        same_bits(a, b)
    assert ours.bit_generator.state == theirs.bit_generator.state


def training_data(count=75, points=16, seed=1):
    digits = random_digits(count, points, seed)
    labels = np.arange(count) % 10
    train = LabelledSequences(digits, labels)
    return SequenceClassificationData(train, train.subset([0]), train.subset([0]))


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("batch_size", [8, 2])    # 2 digits on 3 ranks: one rank without rows
def test_each_ranks_shard_is_one_processes_shard_bit_for_bit(monkeypatch, size, batch_size):
    recipe = PenDigits()
    hp = {**recipe.resolve({"batch_size": batch_size}), "device": "cpu"}
    data = training_data()
    rng = np.random.default_rng(7)
    one = recipe.make_batches(data, hp, rng)
    one_state = rng.bit_generator.state
    for rank in range(size):
        as_rank(monkeypatch, rank, size)
        rng = np.random.default_rng(7)
        batches = recipe.make_batches(data, hp, rng)
        assert rng.bit_generator.state == one_state     # the same draws as one process, for every rank
        assert len(batches) == len(one)
        for theirs, ours in zip(one, batches):
            piece, items, rows = distributed.shard_batch(ours, rank, size)
            expected, expected_items, expected_rows = distributed.shard_batch(theirs, rank, size)
            assert (items, rows) == (expected_items, expected_rows)
            for a, b in zip(piece, expected):
                same_bits(np.asarray(a), np.asarray(b))
            # the other rows were not computed: zeros in their place (the padded shape is one process's)
            inputs = ours[0]
            assert inputs.shape == theirs[0].shape
            others = np.ones(items, dtype=bool)
            others[rows] = False
            assert not inputs[:, others].any()


def test_distortion_and_features_run_for_this_ranks_rows_only(monkeypatch):
    """The work saved: on rank 1 of 2, half the digits are distorted and get features; the rest are zeros."""
    import lstmzoo.zoo.pendigits as pendigits
    calls = []
    original = pendigits._distorted
    monkeypatch.setattr(pendigits, "_distorted", lambda points, draws: calls.append(1) or original(points, draws))
    as_rank(monkeypatch, 1, 2)
    out = PenDigits().augment(random_digits(9, 12), {"augment": 0.1}, np.random.default_rng(0))
    assert len(calls) == 5 and len(out) == 9        # rows 4..8 of 9
    assert all(a.shape == (12, FEATURES) and a.dtype == np.float32 for a in out)
    assert [bool(a.any()) for a in out] == [False] * 4 + [True] * 5


@pytest.mark.parametrize("points", [1, 2, 5, 48])
def test_features_of_digits_of_one_length_at_once_are_one_digits_bits(points):
    import lstmzoo.zoo.pendigits as pendigits
    digits = [d for d in random_digits(60, points, seed=points) if len(d) == points]   # (more strokes: longer)
    assert len(digits) >= 5
    digits[3][:, :2] = 0.25         # a digit that is one point: the scale's 1e-9 floor
    digits[4][:, 1] = -1.0          # a horizontal line
    stacked = pendigits._stacked_point_features(np.stack(digits))
    for one, digit in zip(stacked, digits):
        same_bits(one, point_features(digit))


# ------------------------------------------------------------------------------------------- under MPI
# 7 steps of 1024 digits: few enough Adam steps that float rounding is not amplified into a different
# trajectory (see benchmarks/RESULTS.md), with dropout and augmentation on.
PENDIGITS = ["pendigits", "--epochs", "1", "--set", "hidden_size=8", "--set", "batch_size=1024", "--set",
             "points=16"]


@needs_mpi
@needs_shared
def test_two_ranks_train_pendigits_to_one_process_weights(tmp_path, mirror):
    _lstmzoo([*PENDIGITS, "--out", "one"], tmp_path)
    _lstmzoo([*PENDIGITS, "--out", "two"], tmp_path, ranks=2, record=tmp_path / "record")
    _assert_same_weights(_weights(tmp_path / "one"), _weights(tmp_path / "two"), atol=1e-5)
    for row_one, row_two in zip(_metrics(tmp_path / "one"), _metrics(tmp_path / "two"), strict=True):
        for name in ("train_loss", "val_loss"):
            assert row_two[name] == pytest.approx(row_one[name], rel=1e-5), name
