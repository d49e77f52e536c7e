"""An attention-based encoder-decoder (Luong, Pham & Manning 2015, global attention, with or without input feeding).

Token arrays are time-major ``[T, B]`` integers, padded with ``pad`` past each sequence's length (given as a
NumPy int64 array ``[B]``), the layout of ``lstmzoo.batching.pad_sequences``. For training the target enters
twice: ``tgt_in`` = ``<s> y_1 .. y_n`` and ``tgt_out`` = ``y_1 .. y_n </s>``, both ``n + 1`` long.

Model: source embedding -> dropout -> bidirectional LSTM encoder (its outputs are the attention keys). The
decoder LSTM's initial ``(h0, c0)``, all its layers, is ``tanh(W_b [h_fwd; h_bwd] + b)`` of the encoder's
last layer's final hidden states (``bridge=True``), or zeros. Target embedding -> dropout -> decoder LSTM ->
Luong attention over the encoder outputs (scores over sqrt(2 He) with ``scaled_attention``) ->
``tanh(W_c [context; h])`` -> dropout -> linear ->
target-vocabulary scores. Without input feeding the
decoder's input does not depend on the attention, so teacher-forced training runs the decoder LSTM once over
the whole target; decoding calls it one step at a time with its state.

With ``input_feeding=True`` (Luong et al. 2015, section 3.3) the decoder's input at step t is the target embedding
joined with the previous step's attentional vector ``tanh(W_c [context; h])`` (zeros at the first step), so the
decoder knows what it attended to before; it then runs one step at a time in training too. The decoding state is
``(h, c, attentional [1, B, Hd])``, so beam search reorders all three along axis 1.

Beam search ranks hypotheses by ``log P(y | x) / lp(|y|)`` with GNMT's length penalty
``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al. 2016), where ``n`` counts the generated tokens including
``</s>``; ``alpha = 0`` ranks by the plain log-probability.
"""

import numpy as np

from .array import to_numpy
from .nn import LSTM, CrossEntropyLoss, Dropout, Embedding, Linear, LuongAttention, Module, Tanh
from .nn.layers import require_cache


def gnmt_length_penalty(length, alpha):
    """GNMT's length normaliser ``((5 + length) / 6) ** alpha``."""
    return ((5.0 + np.asarray(length, dtype=np.float64)) / 6.0) ** alpha


class Seq2Seq(Module):
    """Encoder-decoder with Luong attention; see the module docstring for the architecture and layouts."""

    def __init__(self, src_vocab_size, tgt_vocab_size, embedding_dim=256, encoder_hidden=256, encoder_layers=1,
                 decoder_hidden=512, decoder_layers=1, dropout=0.3, score="general", bridge=True,
                 embedding_scale=0.1, pad=0, bos=2, eos=3, input_feeding=False, scaled_attention=False,
                 dtype="float32", device="cpu"):
        super().__init__()
        self.input_feeding = bool(input_feeding)
        self.pad, self.bos, self.eos = int(pad), int(bos), int(eos)
        self.decoder_layers, self.decoder_hidden = int(decoder_layers), int(decoder_hidden)
        key_size = 2 * encoder_hidden
        options = {"dtype": dtype, "device": device}
        self.src_embedding = Embedding(src_vocab_size, embedding_dim, padding_idx=pad, **options)
        self.tgt_embedding = Embedding(tgt_vocab_size, embedding_dim, padding_idx=pad, **options)
        for table in (self.src_embedding, self.tgt_embedding):     # N(0, scale^2) rather than N(0, 1)
            table.parameters()["weight"][...] *= table.dtype.type(embedding_scale)
        self.src_dropout, self.tgt_dropout = Dropout(dropout), Dropout(dropout)
        self.encoder = LSTM(embedding_dim, encoder_hidden, encoder_layers, bidirectional=True, dropout=dropout,
                            **options)
        if bridge:
            self.bridge = Linear(key_size, 2 * self.decoder_layers * self.decoder_hidden, **options)
            self.bridge_tanh = Tanh()
        else:
            self.bridge = None
        self.embedding_dim = int(embedding_dim)
        self.decoder = LSTM(embedding_dim + (decoder_hidden if self.input_feeding else 0), decoder_hidden,
                            decoder_layers, dropout=dropout, **options)
        self.attention = LuongAttention(decoder_hidden, score=score, key_size=key_size, scaled=scaled_attention,
                                        **options)
        self.combine = Linear(key_size + decoder_hidden, decoder_hidden, bias=False, **options)   # Luong's W_c
        self.combine_tanh = Tanh()
        self.output_dropout = Dropout(dropout, batch_axis=0)     # on [B, T, H]: a mask per sentence
        self.output = Linear(decoder_hidden, tgt_vocab_size, **options)
        self.loss = CrossEntropyLoss(ignore_index=self.pad)
        self._cache = None

    @property
    def xp(self):
        return self.output.xp

    # ------------------------------------------------------------------------------------ encoder
    def encode(self, src, src_lengths):
        """``(keys [B, Ts, 2 He], initial decoder state (h0, c0) or None)``."""
        x = self.src_dropout(self.src_embedding(src))
        y, (h_n, _) = self.encoder(x, lengths=src_lengths)
        keys = self.xp.ascontiguousarray(y.transpose(1, 0, 2))
        if self.bridge is None:
            return keys, None
        batch = h_n.shape[1]
        last = h_n[-2:].transpose(1, 0, 2).reshape(batch, -1)       # [B, 2 He]: last layer, both directions
        bridged = self.bridge_tanh(self.bridge(last))
        bridged = bridged.reshape(batch, 2, self.decoder_layers, self.decoder_hidden).transpose(1, 2, 0, 3)
        return keys, (self.xp.ascontiguousarray(bridged[0]), self.xp.ascontiguousarray(bridged[1]))

    def _encoder_final_grads(self, state_grad, batch):
        """The gradient of the bridge's input as the encoder's ``dh_n`` (``dc_n`` is not used by the bridge)."""
        if self.bridge is None:
            return None
        dh0, dc0 = state_grad
        dbridged = self.xp.stack([dh0, dc0]).transpose(2, 0, 1, 3).reshape(batch, -1)
        dlast = self.bridge.backward(self.bridge_tanh.backward(dbridged))
        encoder = self.encoder
        dh_n = self.xp.zeros((encoder.num_layers * 2, batch, encoder.hidden_size), dtype=dlast.dtype)
        dh_n[-2:] = dlast.reshape(batch, 2, encoder.hidden_size).transpose(1, 0, 2)
        return dh_n

    # ------------------------------------------------------------------------------------ decoder
    def _attentional(self, h, keys, src_lengths):
        """Decoder outputs ``h [B, T, Hd]`` -> ``(attentional vectors tanh(W_c [context; h]) [B, T, Hd], attention
        weights [B, T, Ts])``."""
        batch, steps, _ = h.shape
        context, weights = self.attention(h, keys, src_lengths)
        # The linear layers see [B*T, features]: one large GEMM, where NumPy's 3-D matmul would run B small ones.
        combined = self.xp.concatenate([context, h], axis=2).reshape(batch * steps, -1)
        return self.combine_tanh(self.combine(combined)).reshape(batch, steps, -1), weights

    def _scores(self, attentional):
        """Attentional vectors ``[B, T, Hd]`` -> target-vocabulary scores ``[B, T, V]`` (through the dropout)."""
        batch, steps, _ = attentional.shape
        dropped = self.output_dropout(attentional).reshape(batch * steps, -1)
        return self.output(dropped).reshape(batch, steps, -1)

    def _attend(self, h, keys, src_lengths):
        """Decoder outputs ``h [B, T, Hd]`` -> target-vocabulary scores ``[B, T, V]``."""
        return self._scores(self._attentional(h, keys, src_lengths)[0])

    def _attentional_backward(self, dattentional, key_size):
        """Back through ``_attentional`` for ``dattentional [B, T, Hd]``: ``(dh [B, T, Hd], dkeys)``."""
        batch, steps, _ = dattentional.shape
        dcombined = self.combine.backward(self.combine_tanh.backward(dattentional.reshape(batch * steps, -1)))
        dcombined = dcombined.reshape(batch, steps, dcombined.shape[1])
        dquery, dkeys = self.attention.backward(self.xp.ascontiguousarray(dcombined[:, :, :key_size]))
        return dquery + dcombined[:, :, key_size:], dkeys

    # The modules a fed decoder step runs, whose caches each step keeps for its backward.
    _STEP_MODULES = ("decoder", "attention", "combine", "combine_tanh")

    def _decoder_start(self, state, batch):
        """The decoding state before the first target token: the encoder's ``state`` (None: zeros), and with input
        feeding a zero attentional vector ``[1, B, Hd]`` after it."""
        if not self.input_feeding:
            return state
        if state is None:
            state = tuple(self.xp.zeros((self.decoder_layers, batch, self.decoder_hidden), self.output.dtype)
                          for _ in range(2))
        return (*state, self.xp.zeros((1, batch, self.decoder_hidden), self.output.dtype))

    def _fed_step(self, embedded, state, keys, src_lengths):
        """One input-fed decoder step for the embedded tokens ``[1, B, E]``: ``(attentional [B, 1, Hd], attention
        weights [B, 1, Ts], state (h, c, attentional [1, B, Hd]))``."""
        h0, c0, fed = state
        h, (h_n, c_n) = self.decoder(self.xp.concatenate([embedded, fed], axis=2), (h0, c0))
        attentional, weights = self._attentional(self.xp.ascontiguousarray(h.transpose(1, 0, 2)), keys, src_lengths)
        return attentional, weights, (h_n, c_n, self.xp.ascontiguousarray(attentional.transpose(1, 0, 2)))

    def _fed_teacher_forcing(self, embedded, state, keys, src_lengths):
        """Input-fed decoding of the embedded target ``[T, B, E]``: ``(attentional [B, T, Hd], weights [B, T, Ts],
        per-step caches or None)``. In training each step's module caches are kept for ``backward``."""
        state = self._decoder_start(state, embedded.shape[1])
        outputs, weights, caches = [], [], [] if self.training else None
        for t in range(embedded.shape[0]):
            attentional, step_weights, state = self._fed_step(embedded[t:t + 1], state, keys, src_lengths)
            outputs.append(attentional)
            weights.append(step_weights)
            if caches is not None:
                caches.append(tuple(getattr(self, name)._cache for name in self._STEP_MODULES))
        return self.xp.concatenate(outputs, axis=1), self.xp.concatenate(weights, axis=1), caches

    def _fed_backward(self, dattentional, caches, key_size):
        """Back through ``_fed_teacher_forcing`` for ``dattentional [B, T, Hd]``: ``(dembedded [T, B, E], dkeys,
        the gradient of the initial (h0, c0))``."""
        xp = self.xp
        batch, steps, hidden = dattentional.shape
        dembedded = xp.empty((steps, batch, self.embedding_dim), dattentional.dtype)
        dfed, dh_n, dc_n, dkeys = xp.zeros((batch, hidden), dattentional.dtype), None, None, None
        for t in reversed(range(steps)):
            for name, cache in zip(self._STEP_MODULES, caches[t]):
                getattr(self, name)._cache = cache
            dh, dkeys_t = self._attentional_backward(dattentional[:, t:t + 1] + dfed[:, None, :], key_size)
            dkeys = dkeys_t if dkeys is None else dkeys + dkeys_t
            dx = self.decoder.backward(xp.ascontiguousarray(dh.transpose(1, 0, 2)), dh_n, dc_n)
            dh_n, dc_n = self.decoder.initial_state_grad
            dembedded[t] = dx[0, :, :self.embedding_dim]
            dfed = dx[0, :, self.embedding_dim:]
        return dembedded, dkeys, (dh_n, dc_n)

    def forward(self, src, src_lengths, tgt_in, tgt_lengths):
        """Teacher-forced scores (logits) ``[B, Tt, V]`` of each next target token."""
        keys, state = self.encode(src, src_lengths)
        x = self.tgt_dropout(self.tgt_embedding(tgt_in))
        if self.input_feeding:
            attentional, _, caches = self._fed_teacher_forcing(x, state, keys, src_lengths)
            logits = self._scores(attentional)
        else:
            h, _ = self.decoder(x, state, lengths=tgt_lengths)
            logits, caches = self._attend(self.xp.ascontiguousarray(h.transpose(1, 0, 2)), keys, src_lengths), None
        self._cache = (keys.shape, caches) if self.training else None
        return logits

    def backward(self, dlogits):
        keys_shape, caches = require_cache(self)
        self._cache = None
        batch, _, key_size = keys_shape
        dropped = self.output.backward(dlogits.reshape(-1, dlogits.shape[2])).reshape(batch, dlogits.shape[1], -1)
        dattentional = self.output_dropout.backward(dropped)
        if self.input_feeding:
            dx, dkeys, state_grad = self._fed_backward(dattentional, caches, key_size)
        else:
            dh, dkeys = self._attentional_backward(dattentional, key_size)
            dx = self.decoder.backward(self.xp.ascontiguousarray(dh.transpose(1, 0, 2)))
            state_grad = self.decoder.initial_state_grad
        self.tgt_embedding.backward(self.tgt_dropout.backward(dx))
        dh_n = self._encoder_final_grads(state_grad, batch)
        dsrc = self.encoder.backward(self.xp.ascontiguousarray(dkeys.transpose(1, 0, 2)), dh_n)
        self.src_embedding.backward(self.src_dropout.backward(dsrc))

    def loss_and_backward(self, src, src_lengths, tgt_in, tgt_out, tgt_lengths):
        """One teacher-forced training step's forward and backward (gradients accumulate);
        returns ``(mean cross-entropy per target token, number of target tokens)``."""
        logits = self.forward(src, src_lengths, tgt_in, tgt_lengths)
        loss = self.loss(logits, self.xp.asarray(tgt_out).T)
        self.backward(self.loss.backward())
        return loss, int(np.sum(tgt_lengths))

    def loss_sum(self, src, src_lengths, tgt_in, tgt_out, tgt_lengths):
        """``(summed cross-entropy, number of target tokens)`` without backward (for validation)."""
        with _evaluating(self):
            logits = self.forward(src, src_lengths, tgt_in, tgt_lengths)
            count = int(np.sum(tgt_lengths))
            return self.loss(logits, self.xp.asarray(tgt_out).T) * count, count

    # ----------------------------------------------------------------------------------- decoding
    def _step(self, tokens, state, keys, src_lengths):
        """One decoder step for the previous tokens ``[B]``: ``(log-probabilities [B, V] on the host, state)``."""
        embedded = self.tgt_embedding(self.xp.asarray(tokens)[None, :])
        if self.input_feeding:
            attentional, _, state = self._fed_step(embedded, state, keys, src_lengths)
            logits = to_numpy(self._scores(attentional)[:, 0])
        else:
            h, state = self.decoder(embedded, state)
            logits = to_numpy(self._attend(self.xp.ascontiguousarray(h.transpose(1, 0, 2)), keys, src_lengths)[:, 0])
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), state

    def _forbid(self, log_probs):
        """Padding and ``<s>`` are never generated (the probabilities are not renormalised)."""
        log_probs[:, [self.pad, self.bos]] = -np.inf
        return log_probs

    @staticmethod
    def _max_len(src_lengths, max_len):
        return int(2 * np.max(src_lengths) + 10) if max_len is None else int(max_len)

    def greedy_decode(self, src, src_lengths, max_len=None):
        """The most probable next token at each step until ``</s>`` or ``max_len`` tokens (default
        ``2 * longest source + 10``); a list of token lists without ``</s>``."""
        max_len = self._max_len(src_lengths, max_len)
        with _evaluating(self):
            keys, state = self.encode(src, src_lengths)
            batch = keys.shape[0]
            state = self._decoder_start(state, batch)
            tokens = np.full(batch, self.bos, dtype=np.int64)
            outputs = [[] for _ in range(batch)]
            alive = np.ones(batch, dtype=bool)
            for _ in range(max_len):
                log_probs, state = self._step(tokens, state, keys, src_lengths)
                tokens = self._forbid(log_probs).argmax(axis=1)
                for b in np.nonzero(alive)[0]:
                    if tokens[b] == self.eos:
                        alive[b] = False
                    else:
                        outputs[b].append(int(tokens[b]))
                if not alive.any():
                    break
        return outputs

    def beam_search(self, src, src_lengths, beam_width=5, max_len=None, length_penalty=0.6,
                    return_scores=False):
        """Beam search over all sentences of the batch at once: per sentence the hypothesis with the best
        ``log P / lp(n)`` (see the module docstring; ``length_penalty`` is its alpha) among those finished with
        ``</s>`` (a sentence stops once ``beam_width`` have finished) or cut at ``max_len``. A list of token lists
        without ``</s>``, and with ``return_scores`` also their normalised scores."""
        if beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {beam_width}")
        max_len = self._max_len(src_lengths, max_len)
        width = int(beam_width)
        with _evaluating(self):
            keys, state = self.encode(src, src_lengths)
            batch = keys.shape[0]
            state = self._decoder_start(state, batch)
            rows = np.repeat(np.arange(batch), width)
            keys, lengths = keys[self.xp.asarray(rows)], np.asarray(src_lengths)[rows]
            if state is not None:
                state = tuple(s[:, self.xp.asarray(rows)] for s in state)
            scores = np.full((batch, width), -np.inf)
            scores[:, 0] = 0.0                        # one live hypothesis to start from, not `width` copies
            sequences = np.zeros((batch, width, 0), dtype=np.int64)
            tokens = np.full(batch * width, self.bos, dtype=np.int64)
            finished = [[] for _ in range(batch)]     # (normalised score, tokens)
            done = np.zeros(batch, dtype=bool)
            for step in range(1, max_len + 1):
                log_probs, state = self._step(tokens, state, keys, lengths)
                vocab = log_probs.shape[1]
                candidates = (scores.reshape(-1, 1) + self._forbid(log_probs)).reshape(batch, width * vocab)
                # 2 * width candidates always hold `width` that do not end, as at most `width` end with </s>.
                top = np.argpartition(-candidates, 2 * width - 1, axis=1)[:, :2 * width]
                top = np.take_along_axis(top, np.argsort(-np.take_along_axis(candidates, top, axis=1), axis=1,
                                                         kind="stable"), axis=1)
                top_scores = np.take_along_axis(candidates, top, axis=1)
                origin, token = top // vocab, top % vocab
                ends = token == self.eos
                # Only an </s> among the best `width` candidates finishes a hypothesis (so width 1 is greedy).
                closing = ends[:, :width] & np.isfinite(top_scores[:, :width]) & ~done[:, None]
                for b, rank in zip(*np.nonzero(closing)):
                    finished[b].append((top_scores[b, rank] / gnmt_length_penalty(step, length_penalty),
                                        sequences[b, origin[b, rank]].tolist()))
                keep = np.argsort(ends, axis=1, kind="stable")[:, :width]
                scores = np.take_along_axis(top_scores, keep, axis=1)
                origin, token = np.take_along_axis(origin, keep, axis=1), np.take_along_axis(token, keep, axis=1)
                sequences = np.concatenate(
                    [np.take_along_axis(sequences, origin[:, :, None], axis=1), token[:, :, None]], axis=2)
                done |= np.array([len(f) >= width for f in finished])
                scores[done] = -np.inf
                if done.all():
                    break
                parents = self.xp.asarray((np.arange(batch)[:, None] * width + origin).reshape(-1))
                state = tuple(s[:, parents] for s in state)
                tokens = token.reshape(-1)
            for b in np.nonzero(~done)[0]:        # cut at max_len: the live hypotheses compete too
                for k in np.nonzero(np.isfinite(scores[b]))[0]:
                    finished[b].append((scores[b, k] / gnmt_length_penalty(max_len, length_penalty),
                                        sequences[b, k].tolist()))
        best = [max(f, key=lambda item: item[0]) for f in finished]
        hypotheses = [tokens for _, tokens in best]
        return (hypotheses, [float(score) for score, _ in best]) if return_scores else hypotheses

    def alignments(self, src, src_lengths, hypotheses):
        """For each hypothesis (a token list without ``</s>``), the source position each of its tokens attends to
        most, under teacher forcing: a list of int arrays. It lets a caller put back, for an ``<unk>`` in the
        output, the source word it was translated from (Luong et al. 2015's unknown-word replacement)."""
        from .batching import pad_sequences
        tgt_in, lengths = pad_sequences([np.asarray([self.bos, *list(h)[:-1]], dtype=np.int64) for h in hypotheses],
                                        pad_value=self.pad)
        with _evaluating(self):
            keys, state = self.encode(src, src_lengths)
            embedded = self.tgt_embedding(self.xp.asarray(tgt_in))
            if self.input_feeding:
                _, weights, _ = self._fed_teacher_forcing(embedded, state, keys, src_lengths)
            else:
                h, _ = self.decoder(embedded, state, lengths=lengths)
                _, weights = self.attention(self.xp.ascontiguousarray(h.transpose(1, 0, 2)), keys, src_lengths)
        best = to_numpy(weights).argmax(axis=2)
        return [best[b, :len(h)] for b, h in enumerate(hypotheses)]

    def log_likelihood(self, src, src_lengths, hypotheses, ended=True):
        """``log P(hypothesis + </s> | source)`` of each token list (without ``</s>`` when ``ended`` is
        False) under teacher forcing: NumPy float64 ``[B]``."""
        from .batching import pad_sequences
        targets = [np.asarray(list(h) + ([self.eos] if ended else []), dtype=np.int64) for h in hypotheses]
        if any(len(t) == 0 for t in targets):
            raise ValueError("log_likelihood needs at least one token per hypothesis")
        tgt_in, lengths = pad_sequences([np.concatenate([[self.bos], t[:-1]]) for t in targets], pad_value=self.pad)
        tgt_out, _ = pad_sequences(targets, pad_value=self.pad)
        with _evaluating(self):
            logits = to_numpy(self.forward(src, src_lengths, tgt_in, lengths)).astype(np.float64)
        shifted = logits - logits.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        picked = np.take_along_axis(log_probs, tgt_out.T[:, :, None], axis=2)[:, :, 0]
        return (picked * (np.arange(picked.shape[1])[None, :] < lengths[:, None])).sum(axis=1)


class _evaluating:
    """Eval mode for the duration of a ``with`` block, then the mode the model had before."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)
