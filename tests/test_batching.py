import numpy as np
import pytest

from lstmzoo.batching import bucket_by_length, minibatch_indices, pad_sequences


def test_pad_sequences_time_major_and_batch_first():
    seqs = [np.ones((3, 2), np.float32), 2 * np.ones((1, 2), np.float32), np.zeros((0, 2), np.float32)]
    padded, lengths = pad_sequences(seqs, pad_value=-1)
    assert padded.shape == (3, 3, 2) and padded.dtype == np.float32
    assert lengths.tolist() == [3, 1, 0] and lengths.dtype == np.int64
    assert (padded[:, 0] == 1).all()
    assert (padded[0, 1] == 2).all() and (padded[1:, 1] == -1).all()
    assert (padded[:, 2] == -1).all()
    assert padded.flags.c_contiguous

    batch_major, same_lengths = pad_sequences(seqs, pad_value=-1, batch_first=True)
    np.testing.assert_array_equal(batch_major, padded.swapaxes(0, 1))
    np.testing.assert_array_equal(same_lengths, lengths)


def test_pad_sequences_dtype_promotion_and_override():
    ints, floats = np.arange(3), np.linspace(0, 1, 2)
    assert pad_sequences([ints, floats])[0].dtype == np.float64
    padded, _ = pad_sequences([ints, ints[:1]], dtype=np.int32)
    assert padded.dtype == np.int32 and padded.shape == (3, 2)
    assert padded[:, 0].tolist() == [0, 1, 2] and padded[:, 1].tolist() == [0, 0, 0]


def test_pad_sequences_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        pad_sequences([])
    with pytest.raises(ValueError, match="feature shape"):
        pad_sequences([np.zeros((2, 3)), np.zeros((2, 4))])


def test_minibatch_indices_cover_everything_once():
    rng = np.random.default_rng(0)
    batches = minibatch_indices(10, 4, rng)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [len(b) for b in minibatch_indices(10, 4, rng, drop_last=True)] == [4, 4]
    ordered = minibatch_indices(5, 2, shuffle=False)
    assert [b.tolist() for b in ordered] == [[0, 1], [2, 3], [4]]


def test_minibatch_indices_reproducible_from_seed():
    a = minibatch_indices(50, 7, np.random.default_rng(3))
    b = minibatch_indices(50, 7, np.random.default_rng(3))
    assert all((x == y).all() for x, y in zip(a, b))
    with pytest.raises(ValueError, match="rng"):
        minibatch_indices(5, 2, None)


def test_bucket_by_length_cuts_padding_and_keeps_every_index():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=1000)
    batches = bucket_by_length(lengths, 16, np.random.default_rng(1), chunk_batches=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))

    def padding(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)

    assert padding(batches) < padding(minibatch_indices(1000, 16, np.random.default_rng(1))) / 4
    kept = bucket_by_length(lengths, 16, np.random.default_rng(1), drop_last=True)
    assert all(len(b) == 16 for b in kept) and len(kept) == 1000 // 16


def test_evaluation_batches_go_by_length_eval_batch_at_a_time():
    """The one way tasks and recipes cut their cases for scoring: every case once, ``EVAL_BATCH`` at a time, in
    order of length (ties in case order), so a batch pads little."""
    from lstmzoo.tasks.reports import EVAL_BATCH, batches_by_length
    lengths = np.random.default_rng(0).integers(1, 50, size=2 * EVAL_BATCH + 7)
    batches = batches_by_length(lengths)
    assert [len(b) for b in batches] == [EVAL_BATCH, EVAL_BATCH, 7]
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert (np.diff(lengths[order]) >= 0).all()
    ties = order[lengths[order] == lengths[order][0]]
    assert (np.diff(ties) > 0).all()
    assert batches_by_length([]) == []


def test_padded_batch_pads_past_each_end_and_keeps_the_lengths():
    from lstmzoo.tasks.reports import padded_batch
    tokens, lengths = padded_batch([np.array([4, 5, 6]), np.array([7])], pad_value=9)
    assert tokens.tolist() == [[4, 7], [5, 9], [6, 9]] and lengths.tolist() == [3, 1]
    features, lengths = padded_batch([np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)], device="cpu")
    assert features.shape == (4, 2, 3) and features.dtype == np.float32 and lengths.tolist() == [2, 4]
    assert (features[2:, 0] == 0).all() and (features[:, 1] == 1).all()
