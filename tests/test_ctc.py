"""CTC: Numba kernel vs NumPy reference, PyTorch parity, finite differences, brute force, decoding, errors."""

import itertools

import numpy as np
import pytest
from helpers import numeric_gradient
from lstmzoo.kernels import ctc as kernel

from lstmzoo.nn import CTCLoss, ctc_beam_decode, ctc_greedy_decode
from lstmzoo.nn.ctc import _log_softmax, _prefix_beam_search, ctc_loss_reference


def random_case(seed, T, B, C, dtype=np.float64, blank=0):
    """Logits, padded targets and lengths with zero-length targets, repeated labels and short inputs."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((T, B, C)) * 2).astype(dtype)
    labels = [c for c in range(C) if c != blank]
    target_lengths = rng.integers(0, T // 2 + 1, B)
    target_lengths[0] = 0
    input_lengths = rng.integers(T // 2 + 1, T + 1, B)
    input_lengths[-1] = T
    targets = rng.choice(labels, (B, max(target_lengths.max(), 2)))
    if B > 1 and target_lengths[1] >= 2:
        targets[1, :2] = labels[0]  # "aa": the two need a blank between them
    targets[:, target_lengths.max():] = -1  # padding is never read
    return logits, targets, input_lengths, target_lengths


def concatenated(targets, target_lengths):
    return np.concatenate([targets[b, :n] for b, n in enumerate(target_lengths)]).astype(np.int64)


def labelling_probabilities(log_probs, blank=0):
    """Every labelling's probability by brute force: the sum over all C**T paths that collapse to it."""
    T, C = log_probs.shape
    probabilities = {}
    for path in itertools.product(range(C), repeat=T):
        labelling = tuple(c for t, c in enumerate(path) if c != blank and (t == 0 or path[t - 1] != c))
        p = np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
        probabilities[labelling] = probabilities.get(labelling, 0.0) + p
    return probabilities


# ------------------------------------------------------------------------------------------------- loss

@pytest.mark.parametrize("T, B, C, blank, seed", [(1, 1, 2, 0, 0), (6, 3, 3, 0, 1), (12, 5, 6, 2, 2),
                                                  (30, 4, 10, 9, 3), (9, 7, 2, 1, 4)])
def test_kernel_matches_reference(T, B, C, blank, seed):
    logits, targets, input_lengths, target_lengths = random_case(seed, T, B, C, blank=blank)
    log_probs = _log_softmax(logits)
    expected = ctc_loss_reference(log_probs, targets, input_lengths, target_lengths, blank)
    got = kernel.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank)
    assert np.isfinite(expected[0]).any()
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-10, atol=1e-10, err_msg="losses")
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-10, atol=1e-10, err_msg="gradients")
    for b, length in enumerate(input_lengths):
        assert not got[1][length:, b].any()


def test_impossible_alignment_is_infinite_with_nan_gradient_in_both():
    log_probs = _log_softmax(np.random.default_rng(0).standard_normal((3, 2, 3)))
    targets = np.array([[1, 1], [1, 2]])  # "aa" needs 3 steps; "ab" fits in 2
    args = (log_probs, targets, np.array([2, 2]), np.array([2, 2]), 0)
    for losses, grads in (ctc_loss_reference(*args), kernel.ctc_loss(*args)):
        assert losses[0] == np.inf and np.isnan(grads[:2, 0]).all()
        assert np.isfinite(losses[1]) and np.isfinite(grads[:, 1]).all()


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("form", ["padded", "concatenated"])
def test_matches_torch(dtype, tol, reduction, form):
    torch = pytest.importorskip("torch")
    logits, targets, input_lengths, target_lengths = random_case(5, 10, 6, 5, dtype)
    given = targets if form == "padded" else concatenated(targets, target_lengths)
    loss = CTCLoss(reduction=reduction)
    value = loss(logits, given, input_lengths, target_lengths)
    grad = loss.backward()

    z = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(
        z.log_softmax(2), torch.tensor(np.where(targets < 0, 0, targets) if form == "padded" else given),
        torch.tensor(input_lengths), torch.tensor(target_lengths), reduction=reduction, zero_infinity=True)
    expected.backward()
    assert grad.dtype == dtype and grad.shape == logits.shape
    np.testing.assert_allclose(value, expected.item(), rtol=tol)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("zero_infinity", [True, False])
def test_zero_infinity_matches_torch(zero_infinity):
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(6).standard_normal((4, 3, 4))
    targets = np.array([[1, 2, 3], [2, 2, 2], [3, 1, 1]])  # "bbb" needs 5 steps: impossible in 4
    input_lengths, target_lengths = np.array([4, 4, 4]), np.array([3, 3, 2])
    loss = CTCLoss(reduction="sum", zero_infinity=zero_infinity)
    value = loss(logits, targets, input_lengths, target_lengths)
    grad = loss.backward()

    z = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(
        z.log_softmax(2), torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths),
        reduction="sum", zero_infinity=zero_infinity)
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-10)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-10, atol=1e-12)
    if zero_infinity:
        assert np.isfinite(value) and not grad[:, 1].any()
    else:
        assert value == np.inf and np.isnan(grad[:, 1]).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_matches_finite_differences(reduction):
    """Central differences with step h = 1e-5 against the analytic gradient (its smallest element here: 5e-4).

    The difference quotient carries two errors. Truncation, h**2 / 6 times the third derivative: about 1e-11.
    Rounding noise, the loss's own error over 2h: the loss (about 30 with "sum") goes through NumPy's exp and
    log, whose SIMD code differs by CPU (AVX-512 or AVX2) and rounds differently by an ulp or two, ~4e-15 here;
    over 2h that is ~4e-10. With the default h = 1e-6 it was ~4e-9, which failed rtol 1e-6 + atol 1e-9 on AVX2
    machines (2.25e-6 relative on a 1.5e-3 element) and passed on AVX-512 ones by luck. atol 1e-8 is 25x the
    noise and still 5e4x below the smallest gradient element, so a wrong gradient fails on every CPU.
    """
    logits, targets, input_lengths, target_lengths = random_case(7, 5, 3, 4)
    loss = CTCLoss(reduction=reduction)
    loss(logits, targets, input_lengths, target_lengths)
    grad = loss.backward()
    numeric = numeric_gradient(lambda: loss(logits, targets, input_lengths, target_lengths), logits, eps=1e-5)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_loss_is_minus_log_of_the_brute_force_sum_over_paths():
    T, C = 5, 3
    logits = np.random.default_rng(8).standard_normal((T, 4, C))
    targets = np.array([[1, 2, 0], [1, 1, 0], [2, 1, 2], [0, 0, 0]])
    target_lengths = np.array([2, 2, 3, 0])
    loss = CTCLoss(reduction="sum")
    for b in range(4):
        value = loss(logits[:, b:b + 1], targets[b:b + 1], [T], target_lengths[b:b + 1])
        probabilities = labelling_probabilities(_log_softmax(logits)[:, b])
        target = tuple(targets[b, :target_lengths[b]])
        np.testing.assert_allclose(np.exp(-value), probabilities[target], rtol=1e-12)


def test_mean_divides_by_target_length_and_batch():
    logits, targets, input_lengths, target_lengths = random_case(9, 8, 4, 5)
    per_sequence = [CTCLoss(reduction="sum")(logits[:, b:b + 1], targets[b:b + 1], input_lengths[b:b + 1],
                                             target_lengths[b:b + 1]) for b in range(4)]
    mean = CTCLoss(reduction="mean")(logits, targets, input_lengths, target_lengths)
    np.testing.assert_allclose(mean, np.mean(np.array(per_sequence) / np.maximum(target_lengths, 1)))


def test_backward_returns_the_gradient_once():
    logits, targets, input_lengths, target_lengths = random_case(10, 4, 2, 3)
    loss = CTCLoss()
    loss(logits, targets, input_lengths, target_lengths)
    loss.backward()
    with pytest.raises(RuntimeError, match="needs a forward"):
        loss.backward()


# --------------------------------------------------------------------------------------------- decoding

def one_hot_logits(paths, C):
    """Logits [T, B, C] whose best path in sequence b is paths[b] (scores 3 vs 0)."""
    logits = np.zeros((len(paths[0]), len(paths), C))
    for b, path in enumerate(paths):
        logits[np.arange(len(path)), b, path] = 3.0
    return logits


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    logits = one_hot_logits([[1, 1, 0, 1, 2, 2, 0, 0], [0, 3, 3, 3, 0, 2, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2]], 4)
    assert ctc_greedy_decode(logits, [8, 6, 8]) == [[1, 1, 2], [3, 2], [2]]
    assert ctc_greedy_decode(logits, [8, 8, 8], blank=2) == [[1, 0, 1, 0], [0, 3, 0, 1], []]


def test_beam_finds_the_labelling_that_greedy_misses():
    # Each step: blank 0.6, label 0.4. Best path "" (0.36) but "a" sums three paths: 0.16 + 0.24 + 0.24.
    logits = np.log(np.array([[[0.6, 0.4]], [[0.6, 0.4]]]))
    assert ctc_greedy_decode(logits, [2]) == [[]]
    assert ctc_beam_decode(logits, [2], beam_width=2) == [[1]]


@pytest.mark.parametrize("seed", range(4))
def test_beam_decode_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    T, B, C = 5, 6, 3
    logits = rng.standard_normal((T, B, C)) * rng.uniform(0.5, 3.0, (1, B, 1))
    input_lengths = rng.integers(1, T + 1, B)
    log_probs = _log_softmax(logits)
    wide = ctc_beam_decode(logits, input_lengths, beam_width=C ** T)
    for b, length in enumerate(input_lengths):
        probabilities = labelling_probabilities(log_probs[:length, b])
        np.testing.assert_allclose(probabilities[tuple(wide[b])], max(probabilities.values()), rtol=1e-12)
        # Unpruned, the search itself scores every labelling exactly.
        search = _prefix_beam_search(log_probs[:length, b], C ** T, 0)
        assert search.keys() == probabilities.keys()
        np.testing.assert_allclose([np.exp(search[k]) for k in probabilities], list(probabilities.values()),
                                   rtol=1e-12)


def labelling_log_probabilities(logits, input_lengths, labellings):
    """log p(labellings[b] | logits[:, b]) through the CTC loss, which the brute-force test pins down."""
    lengths = np.array([len(labels) for labels in labellings])
    targets = np.zeros((len(labellings), max(lengths.max(), 1)), np.int64)
    for b, labels in enumerate(labellings):
        targets[b, :len(labels)] = labels
    loss = CTCLoss(reduction="sum")
    return np.array([-loss(logits[:, b:b + 1], targets[b:b + 1], input_lengths[b:b + 1], lengths[b:b + 1])
                     for b in range(len(labellings))])


@pytest.mark.parametrize("beam_width", [1, 2, 3])
def test_beam_is_never_less_probable_than_greedy(beam_width):
    # Narrow beams on short, peaky sequences are where a pure prefix search can lose the best path.
    rng = np.random.default_rng(11)
    T, B, C = 6, 200, 3
    logits = rng.standard_normal((T, B, C)) * rng.uniform(0.5, 3.0, (1, B, 1))
    input_lengths = rng.integers(1, T + 1, B)
    greedy = labelling_log_probabilities(logits, input_lengths, ctc_greedy_decode(logits, input_lengths))
    beam = labelling_log_probabilities(logits, input_lengths,
                                       ctc_beam_decode(logits, input_lengths, beam_width=beam_width))
    assert (beam >= greedy - 1e-12).all()
    if beam_width == 1:
        assert (beam > greedy + 1e-3).any()  # not merely greedy decoding again


# ----------------------------------------------------------------------------------------------- errors

def bad_calls():
    logits = np.zeros((4, 2, 3))
    targets, input_lengths, target_lengths = np.array([[1, 2], [2, 0]]), np.array([4, 3]), np.array([2, 1])
    good = {"logits": logits, "targets": targets, "input_lengths": input_lengths,
            "target_lengths": target_lengths}
    return [
        (dict(good, logits=np.zeros((4, 3))), "shape \\[T, B, C\\]"),
        (dict(good, logits=np.zeros((4, 2, 3), np.int64)), "float32 or float64"),
        (dict(good, logits=np.zeros((4, 2, 3), np.float16)), "float32 or float64"),
        (dict(good, input_lengths=np.array([4, 0])), "input_lengths must be in 1..4"),
        (dict(good, input_lengths=np.array([5, 3])), "input_lengths must be in 1..4"),
        (dict(good, input_lengths=np.array([4.0, 3.0])), "input_lengths must hold integers"),
        (dict(good, input_lengths=np.array([4, 3, 2])), "input_lengths must have shape \\(2,\\)"),
        (dict(good, target_lengths=np.array([2, -1])), "target_lengths must be >= 0"),
        (dict(good, target_lengths=np.array([3, 1])), "padded targets must have shape"),
        (dict(good, targets=targets.astype(float)), "targets must hold integer"),
        (dict(good, targets=np.array([[1, 0], [2, 0]])), "differ from blank=0"),
        (dict(good, targets=np.array([[1, 3], [2, 0]])), "must be in 0..2"),
        (dict(good, targets=np.array([1, 2, 2, 1])), "sum\\(target_lengths\\) = 3"),
        (dict(good, targets=np.zeros((2, 2, 2), np.int64)), "padded \\[B, S\\] or concatenated 1-D"),
    ]


@pytest.mark.parametrize("call, message", bad_calls())
def test_loss_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        CTCLoss()(**call)


def test_option_and_decoder_errors():
    with pytest.raises(ValueError, match="reduction"):
        CTCLoss(reduction="none")
    with pytest.raises(ValueError, match="blank must be a class index"):
        CTCLoss(blank=1.5)(np.zeros((4, 1, 3)), np.array([[1]]), [4], [1])
    with pytest.raises(ValueError, match="blank must be a class index in 0..2"):
        CTCLoss(blank=3)(np.zeros((4, 1, 3)), np.array([[1]]), [4], [1])
    with pytest.raises(ValueError, match="beam_width must be a positive integer"):
        ctc_beam_decode(np.zeros((4, 1, 3)), [4], beam_width=0)
    for decode in (ctc_greedy_decode, ctc_beam_decode):
        with pytest.raises(ValueError, match="input_lengths must be in 1..4"):
            decode(np.zeros((4, 1, 3)), [5])
        with pytest.raises(ValueError, match="blank must be a class index"):
            decode(np.zeros((4, 1, 3)), [4], blank=-1)
