"""Luong attention (against a plain NumPy loop, finite differences) and the attention encoder-decoder: its
gradient, greedy decoding, beam search, and a small copy task it must learn."""

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo import random
from lstmzoo.batching import pad_sequences
from lstmzoo.nn import LuongAttention
from lstmzoo.optim import Adam
from lstmzoo.seq2seq import Seq2Seq, gnmt_length_penalty

PAD, BOS, EOS = 0, 2, 3


# ------------------------------------------------------------------------------------------- attention
def reference_attention(query, keys, key_lengths, weight=None, scale=1.0):
    """Luong attention one query at a time: the spec the layer must match."""
    batch, steps_q, _ = query.shape
    context = np.zeros((batch, steps_q, keys.shape[2]))
    weights = np.zeros((batch, steps_q, keys.shape[1]))
    for b in range(batch):
        valid = keys[b, :key_lengths[b]]
        for t in range(steps_q):
            q = query[b, t] if weight is None else query[b, t] @ weight
            scores = np.array([q @ k for k in valid]) * scale
            a = np.exp(scores - scores.max())
            a /= a.sum()
            weights[b, t, :key_lengths[b]] = a
            context[b, t] = a @ valid
    return context, weights


def make_attention(score, hidden=5, key_size=None, dtype="float64", scaled=False):
    rng = np.random.default_rng(0)
    layer = LuongAttention(hidden, score=score, key_size=key_size, dtype=dtype, rng=rng, scaled=scaled)
    keys_size = layer.key_size
    query = rng.standard_normal((3, 4, hidden)).astype(dtype)
    keys = rng.standard_normal((3, 6, keys_size)).astype(dtype)
    return layer, query, keys, np.array([6, 2, 4])


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("score,key_size", [("general", None), ("general", 7), ("dot", None)])
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-12), ("float32", 1e-5)])
def test_attention_matches_reference(score, key_size, dtype, tolerance, scaled):
    layer, query, keys, lengths = make_attention(score, key_size=key_size, dtype=dtype, scaled=scaled)
    context, weights = layer(query, keys, lengths)
    weight = layer.parameters()["weight"].astype(np.float64) if score == "general" else None
    scale = 1 / np.sqrt(layer.key_size) if scaled else 1.0
    expected_context, expected_weights = reference_attention(query.astype(np.float64), keys.astype(np.float64),
                                                             lengths, weight, scale)
    np.testing.assert_allclose(context, expected_context, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(weights, expected_weights, rtol=tolerance, atol=tolerance)


def test_attention_ignores_keys_past_each_length():
    layer, query, keys, lengths = make_attention("general")
    context, weights = layer(query, keys, lengths)
    past = np.arange(keys.shape[1])[None, None, :] >= lengths[:, None, None]
    assert np.all(weights[np.broadcast_to(past, weights.shape)] == 0)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, rtol=1e-12)
    changed = keys.copy()
    changed[1, 2:] = 1e3                                  # padding of the second source
    np.testing.assert_array_equal(layer(query, changed, lengths)[0], context)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("score,key_size", [("general", None), ("general", 7), ("dot", None)])
def test_attention_gradients_match_finite_differences(score, key_size, scaled):
    layer, query, keys, lengths = make_attention(score, key_size=key_size, scaled=scaled)
    direction = np.random.default_rng(1).standard_normal((3, 4, layer.key_size))

    def loss():
        return float((layer(query, keys, lengths)[0] * direction).sum())

    layer.forward(query, keys, lengths)
    dquery, dkeys = layer.backward(direction)
    np.testing.assert_allclose(dquery, numeric_gradient(loss, query), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dkeys, numeric_gradient(loss, keys), rtol=1e-6, atol=1e-8)
    assert np.all(dkeys[1, 2:] == 0)                      # padded keys get no gradient
    if score == "general":
        analytic = layer.grads()["weight"].copy()
        np.testing.assert_allclose(analytic, numeric_gradient(loss, layer.parameters()["weight"]),
                                   rtol=1e-6, atol=1e-8)


def test_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="score must be one of"):
        LuongAttention(4, score="concat")
    with pytest.raises(ValueError, match="key_size == hidden_size"):
        LuongAttention(4, score="dot", key_size=6)
    layer, query, keys, _ = make_attention("dot")
    with pytest.raises(ValueError, match="key_lengths must be in 1..6"):
        layer(query, keys, np.array([7, 1, 1]))


# --------------------------------------------------------------------------------------------- seq2seq
def tiny_model(seed=0, dropout=0.0, dtype="float64", **options):
    random.seed(seed)
    settings = {"embedding_dim": 4, "encoder_hidden": 3, "decoder_hidden": 5, **options}
    model = Seq2Seq(9, 10, dropout=dropout, embedding_scale=1.0, pad=PAD, bos=BOS, eos=EOS, dtype=dtype,
                    **settings)
    # Larger output weights make the scores depend strongly on the source and the prefix, and ties unlikely.
    model.parameters()["output.weight"][...] *= 6
    return model


def tiny_batch(seed=1, src_lengths=(5, 2, 4), tgt_lengths=(3, 5, 1)):
    rng = np.random.default_rng(seed)
    return batch_of([rng.integers(4, 9, n) for n in src_lengths], [rng.integers(4, 10, n) for n in tgt_lengths])


def batch_of(sources, targets):
    """``(src, src_lengths, tgt_in, tgt_out, tgt_lengths)`` as ``Seq2Seq.loss_and_backward`` takes them."""
    src, lengths = pad_sequences(sources, pad_value=PAD)
    tgt_in, tgt_lengths = pad_sequences([np.concatenate([[BOS], t]) for t in targets], pad_value=PAD)
    tgt_out, _ = pad_sequences([np.concatenate([t, [EOS]]) for t in targets], pad_value=PAD)
    return src, lengths, tgt_in, tgt_out, tgt_lengths


@pytest.mark.parametrize("options", [{}, {"bridge": False, "score": "dot", "decoder_hidden": 6},
                                     {"encoder_layers": 2, "decoder_layers": 2},
                                     {"input_feeding": True},
                                     {"input_feeding": True, "bridge": False, "score": "dot", "decoder_hidden": 6},
                                     {"input_feeding": True, "encoder_layers": 2, "decoder_layers": 2},
                                     {"scaled_attention": True},
                                     {"scaled_attention": True, "input_feeding": True, "score": "dot",
                                      "decoder_hidden": 6}])
def test_seq2seq_loss_gradient_matches_finite_differences(options):
    model = tiny_model(**options)
    batch = tiny_batch()
    model.zero_grad()
    loss, tokens = model.loss_and_backward(*batch)
    assert tokens == 12
    total, count = model.loss_sum(*batch)
    assert total / count == pytest.approx(loss, rel=1e-12)
    grads = {name: g.copy() for name, g in model.grads().items()}
    rng = np.random.default_rng(2)
    for name, param in model.parameters().items():
        flat = param.reshape(-1)
        picks = rng.choice(flat.size, size=min(4, flat.size), replace=False)
        if name == "src_embedding.weight":
            picks = np.concatenate([picks, [int(batch[0][0, 0]) * param.shape[1]]])   # a row that is used
        for i in picks:
            def loss_at():
                s, c = model.loss_sum(*batch)
                return s / c
            numeric = numeric_gradient(loss_at, flat[i:i + 1])[0]
            assert grads[name].reshape(-1)[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, int(i))


@pytest.mark.parametrize("feeding", [False, True])
def test_dropout_changes_training_but_not_decoding(feeding):
    model = tiny_model(dropout=0.5, input_feeding=feeding)
    batch = tiny_batch()
    first, _ = model.loss_and_backward(*batch)
    second, _ = model.loss_and_backward(*batch)
    assert first != second
    assert model.greedy_decode(batch[0], batch[1], 6) == model.greedy_decode(batch[0], batch[1], 6)
    assert model.training                                 # decoding gives the mode back


def teacher_forced_argmax(model, src, src_lengths, hypothesis, row):
    """The argmax of the teacher-forced scores along ``<s> + hypothesis`` for source ``row``."""
    tgt_in = np.array([[BOS, *hypothesis]], dtype=np.int64).T
    model.eval()
    logits = model.forward(src[:, row:row + 1], src_lengths[row:row + 1], tgt_in, np.array([len(hypothesis) + 1]))
    model.train()
    logits[..., [PAD, BOS]] = -np.inf
    return logits[0].argmax(axis=1).tolist()


@pytest.mark.parametrize("feeding", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_greedy_decode_is_the_teacher_forced_argmax_of_its_own_output(seed, feeding):
    model = tiny_model(seed, input_feeding=feeding)
    src, lengths, *_ = tiny_batch(seed)
    max_len = 7
    for row, hypothesis in enumerate(model.greedy_decode(src, lengths, max_len)):
        ended = len(hypothesis) < max_len
        expected = hypothesis + [EOS] if ended else hypothesis
        assert teacher_forced_argmax(model, src, lengths, hypothesis, row)[:len(expected)] == expected


@pytest.mark.parametrize("seed", range(3))
def test_alignments_are_the_attention_argmax_of_each_decoding_step(seed):
    """Teacher-forced alignments equal the most-attended source position at each step of decoding the same
    tokens one by one (the attention weights recomputed from the decoder state of every step)."""
    model = tiny_model(seed).eval()
    src, lengths, *_ = tiny_batch(seed)
    hypotheses = [list(h) or [EOS] for h in model.greedy_decode(src, lengths, max_len=6)]
    aligned = model.alignments(src, lengths, hypotheses)
    keys, state = model.encode(src, lengths)
    for row, hypothesis in enumerate(hypotheses):
        step_state = tuple(s[:, row:row + 1] for s in state)
        previous = BOS
        for position, token in enumerate(hypothesis):
            h, step_state = model.decoder(model.tgt_embedding(np.array([[previous]])), step_state)
            _, weights = model.attention(h.transpose(1, 0, 2), keys[row:row + 1], lengths[row:row + 1])
            assert aligned[row][position] == int(np.argmax(weights[0, 0]))
            assert aligned[row][position] < lengths[row]
            previous = token


@pytest.mark.parametrize("seed", range(3))
def test_fed_alignments_are_the_attention_argmax_of_each_decoding_step(seed):
    """With input feeding the decoder's input at each step is the token's embedding joined with the previous
    step's attentional vector tanh(W_c [context; h]) (zeros first): decoding step by step by hand gives the
    alignments and the teacher-forced scores."""
    model = tiny_model(seed, input_feeding=True).eval()
    src, lengths, *_ = tiny_batch(seed)
    hypotheses = [list(h) or [EOS] for h in model.greedy_decode(src, lengths, max_len=6)]
    aligned = model.alignments(src, lengths, hypotheses)
    keys, state = model.encode(src, lengths)
    params = model.parameters()
    for row, hypothesis in enumerate(hypotheses):
        step_state = tuple(s[:, row:row + 1] for s in state)
        fed = np.zeros((1, 1, model.decoder_hidden))
        tgt_in = np.array([[BOS, *hypothesis]]).T
        logits = model.forward(src[:, row:row + 1], lengths[row:row + 1], tgt_in, np.array([len(hypothesis) + 1]))
        for position, previous in enumerate(tgt_in[:, 0]):
            x = np.concatenate([model.tgt_embedding(np.array([[previous]])), fed], axis=2)
            h, step_state = model.decoder(x, step_state)
            context, weights = model.attention(h.transpose(1, 0, 2), keys[row:row + 1], lengths[row:row + 1])
            attentional = np.tanh(np.concatenate([context[0], h[0]], axis=1) @ params["combine.weight"].T)
            np.testing.assert_allclose(logits[0, position], (attentional @ params["output.weight"].T
                                                             + params["output.bias"])[0], rtol=1e-12, atol=1e-12)
            if position < len(hypothesis):
                assert aligned[row][position] == int(np.argmax(weights[0, 0]))
            fed = attentional[None]


def test_input_feeding_changes_the_model():
    """The fed decoder reads embedding + attentional vector, and its scores differ from the unfed model's."""
    plain, fed = tiny_model(0), tiny_model(0, input_feeding=True)
    assert plain.decoder.input_size == 4 and fed.decoder.input_size == 4 + 5
    batch = tiny_batch()
    assert plain.loss_sum(*batch)[0] != pytest.approx(fed.loss_sum(*batch)[0], rel=1e-3)


def normalised(model, src, lengths, hypotheses, max_len, alpha):
    """Each hypothesis's log-probability (with </s> when it ended before max_len) over GNMT's lp."""
    scores = []
    for row, h in enumerate(hypotheses):
        ended = len(h) < max_len
        log_p = model.log_likelihood(src[:, row:row + 1], lengths[row:row + 1], [h], ended=ended)[0]
        scores.append(log_p / gnmt_length_penalty(len(h) + ended, alpha))
    return np.array(scores)


@pytest.mark.parametrize("feeding", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_beam_of_one_is_greedy(seed, feeding):
    model = tiny_model(seed, input_feeding=feeding)
    src, lengths, *_ = tiny_batch(seed)
    assert model.beam_search(src, lengths, beam_width=1, max_len=7) == model.greedy_decode(src, lengths, 7)


@pytest.mark.parametrize("feeding", [False, True])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_scores_are_right_and_not_worse_than_greedy(seed, alpha, feeding):
    model = tiny_model(seed, input_feeding=feeding)
    src, lengths, *_ = tiny_batch(seed + 10, src_lengths=(5, 2, 4, 3, 6), tgt_lengths=(1, 1, 1, 1, 1))
    max_len = 6
    beam, beam_scores = model.beam_search(src, lengths, beam_width=4, max_len=max_len,
                                          length_penalty=alpha, return_scores=True)
    # The scores beam search reports are those of its hypotheses under teacher forcing.
    np.testing.assert_allclose(beam_scores, normalised(model, src, lengths, beam, max_len, alpha), rtol=1e-9)
    greedy = model.greedy_decode(src, lengths, max_len)
    assert np.all(np.array(beam_scores) >= normalised(model, src, lengths, greedy, max_len, alpha) - 1e-12)


@pytest.mark.parametrize("feeding", [False, True])
def test_learns_to_reverse_short_sequences(feeding):
    random.seed(0)
    model = Seq2Seq(10, 10, embedding_dim=16, encoder_hidden=32, decoder_hidden=32, dropout=0.0,
                    pad=PAD, bos=BOS, eos=EOS, input_feeding=feeding)
    optimizer = Adam(model, lr=0.01)
    rng = np.random.default_rng(0)

    def batch(n):
        sequences = [rng.integers(4, 10, rng.integers(2, 6)) for _ in range(n)]
        return sequences, batch_of(sequences, [s[::-1] for s in sequences])

    for _ in range(250):
        optimizer.zero_grad()
        model.loss_and_backward(*batch(32)[1])
        optimizer.step()
    sequences, (src, lengths, *_) = batch(200)
    decoded = model.greedy_decode(src, lengths)
    accuracy = np.mean([d == s[::-1].tolist() for d, s in zip(decoded, sequences)])
    assert accuracy >= 0.9

