"""tinyshakespeare: a character-level language model (char-rnn's benchmark, Karpathy 2015) with a stacked LSTM.

Data: ``input.txt``, 1,115,394 characters of Shakespeare (65 distinct). Split as nanoGPT does: the first 90 % of
the characters train, the last 10 % validate; the validation text is also what ``evaluate`` scores (there is no
third split), so the metric is comparable with nanoGPT's "val loss". The vocabulary is the sorted set of the whole
text's characters (nanoGPT's too): ``load_data`` builds it and carries it in the data, ``train`` makes it the
hyperparameter ``vocabulary`` (which sizes the model), and config.json records it with the other hyperparameters,
so ``evaluate``, ``predict`` and ``generate`` need only the run folder. Runs trained before kept it in
``vocab.json``, which ``restore`` still reads.

Model (``CharLanguageModel``): character embedding -> stateful multi-layer LSTM (dropout between layers) ->
dropout -> linear over the characters. Training is truncated back-propagation through time: the training text is
cut into ``batch_size`` contiguous streams and walked in windows of ``steps`` characters, each window starting
from the state the previous one ended in (``lstmzoo.batching.tbptt_batches``); every epoch starts from zeros at a
random offset below ``steps``, so the window boundaries move. ``evaluate`` runs the whole validation text in
order the same way (``eval_batch_size`` streams) and scores the few characters left over by continuing the last
stream, so every character after the first is predicted exactly once.

The baseline measured beside it (``baseline``): an interpolated Kneser-Ney character n-gram model of the
training text (``CharNgram``), its order chosen on the training text alone, scored on the same validation text.

Language-model recipes offer ``generate(model, hp, prompt, length, *, temperature, top_k, rng)``, an iterator
of text pieces (the prompt first, then one sampled character at a time) that ``lstmzoo generate`` streams.
"""

from typing import ClassVar

import numpy as np

from lstmzoo.distributed import evaluation_part
from lstmzoo.errors import UserError
from lstmzoo.recipe import Anchor, DataFile, Hyperparameter, Recipe

from .vocabulary import older_run_vocabulary, restore_older_run

TRAIN_FRACTION = 0.9


def split_text(text):
    """``(train, val)``: the first 90 % of the characters and the rest (nanoGPT's ``int(n * 0.9)``)."""
    cut = int(len(text) * TRAIN_FRACTION)
    return text[:cut], text[cut:]


def encode(text, vocab):
    """Character indices (int64) of ``text``; UserError naming the characters not in ``vocab``."""
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted(set(text) - index.keys())
    if missing:
        raise UserError(f"the text has characters outside the model's vocabulary: "
                        f"{', '.join(map(repr, missing))}")
    return np.array([index[ch] for ch in text], dtype=np.int64)


def is_vocabulary(value):
    """Whether ``value`` (read from a run folder) can be a vocabulary: a non-empty string of distinct characters."""
    return isinstance(value, str) and bool(value) and len(set(value)) == len(value)


# --------------------------------------------------------------------------------------------- model
def _char_language_model(vocab_size, hp):
    from lstmzoo.nn import LSTM, Dropout, Embedding, Linear, Module

    class CharLanguageModel(Module):
        """character indices ``[T, B]`` -> embedding -> stateful LSTM -> dropout -> linear -> logits
        ``[T, B, vocab]``; ``forward`` also returns the LSTM's final state."""

        def __init__(self):
            super().__init__()
            device = hp["device"]
            self.embedding = Embedding(vocab_size, hp["embedding_dim"], device=device)
            self.lstm = LSTM(hp["embedding_dim"], hp["hidden_size"], hp["num_layers"], dropout=hp["dropout"],
                             device=device, stateful=True)
            self.dropout = Dropout(hp["dropout"])
            self.head = Linear(hp["hidden_size"], vocab_size, device=device)

        def forward(self, tokens, state=None):
            y, final = self.lstm(self.embedding(tokens), state=state)
            return self.head(self.dropout(y)), final

        def backward(self, dlogits):
            self.embedding.backward(self.lstm.backward(self.dropout.backward(self.head.backward(dlogits))))

        def reset_state(self):
            self.lstm.reset_state()

    return CharLanguageModel()


def stream_loss(model, tokens, batch_size, steps, describe=None, announce=True, streams=None):
    """Summed cross-entropy (nats) of predicting each of ``tokens[1:]`` once, and the number of predictions
    (``len(tokens) - 1``); with ``streams`` (a slice of the ``min(batch_size, len(tokens) - 1)`` streams) those of
    these streams only, the left-over characters going with the last stream (data-parallel validation: each rank
    scores its streams). The text is cut into ``batch_size`` contiguous streams (``tbptt_batches``), each walked
    in windows of ``steps`` from a zero state with the state carried between windows; the characters the streams
    leave over continue the last stream. So each stream but the first starts without the text before it: with
    ``batch_size=1`` the result is that of one forward over the whole text, with more streams it is slightly
    higher (a few characters at each stream's start are predicted without context) and much faster.
    ``describe`` names a progress bar over the windows (``progress.phase``)."""
    from lstmzoo.batching import tbptt_batches
    from lstmzoo.nn import CrossEntropyLoss

    from .progress import phase
    criterion = CrossEntropyLoss(reduction="sum")
    batch_size = min(batch_size, len(tokens) - 1)
    rows = slice(0, batch_size) if streams is None else streams
    per_stream = (len(tokens) - 1) // batch_size
    if rows.stop <= rows.start:
        return 0.0, 0
    model.reset_state()
    total, final = 0.0, None
    for inputs, targets in phase(tbptt_batches(tokens, batch_size, steps), describe, unit="window",
                                 announce=announce):
        logits, final = model(np.ascontiguousarray(inputs[rows].T))
        total += criterion(logits, np.ascontiguousarray(targets[rows].T))
    used = batch_size * per_stream
    count = per_stream * (rows.stop - rows.start)
    if used < len(tokens) - 1 and rows.stop == batch_size:
        state = tuple(model.lstm.xp.ascontiguousarray(s[:, -1:]) for s in final)
        logits, _ = model(tokens[used:-1, None], state=state)
        total += criterion(logits, tokens[used + 1:, None])
        count += len(tokens) - 1 - used
    model.reset_state()
    return total, count


def loss_metrics(total, count, prefix=""):
    loss = total / count
    return {f"{prefix}loss": loss, f"{prefix}perplexity": float(np.exp(loss)),
            f"{prefix}bits_per_char": loss / np.log(2)}


# ------------------------------------------------------------------------------------------ n-gram baseline
NGRAM_ORDERS = range(1, 9)          # candidate orders of the baseline (65 ** 9 codes still fit in int64)


def _codes(rows, vocab_size):
    """The base-``vocab_size`` integer code of each row of character indices ``rows`` ``[N, k]`` (0 for k = 0)."""
    return rows @ (vocab_size ** np.arange(rows.shape[1] - 1, -1, -1, dtype=np.int64))


def _windows(tokens, length):
    return np.lib.stride_tricks.sliding_window_view(tokens, length)


class CharNgram:
    """Interpolated Kneser-Ney character n-gram model (Chen & Goodman 1998, one discount per order,
    ``n1 / (n1 + 2 n2)``) of ``tokens`` (int64 character indices below ``vocab_size``), interpolated down to the
    uniform distribution, so every character keeps some probability and each context's distribution sums to 1.
    The highest order counts n-grams; the lower orders count the distinct characters seen before them
    (continuation counts); a context never seen falls back to the next lower order."""

    def __init__(self, tokens, order, vocab_size):
        if vocab_size ** order >= 2 ** 63:
            raise ValueError(f"an order-{order} model of {vocab_size} characters overflows the int64 n-gram codes")
        tokens = np.asarray(tokens, dtype=np.int64)
        self.order, self.vocab_size = order, vocab_size
        self.levels = []
        for length in range(1, order + 1):
            if length == order:
                keys, counts = np.unique(_codes(_windows(tokens, length), vocab_size), return_counts=True)
            else:
                longer = np.unique(_codes(_windows(tokens, length + 1), vocab_size))
                keys, counts = np.unique(longer % vocab_size ** length, return_counts=True)
            contexts, owner = np.unique(keys // vocab_size, return_inverse=True)
            n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
            # Kept inside (0, 1): a discount of 0 would leave unseen characters no probability at this level.
            discount = float(min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)) if n1 + 2 * n2 else 0.5
            self.levels.append((keys, counts, contexts, np.bincount(owner, weights=counts),
                                np.bincount(owner), discount))

    def probabilities(self, history, targets):
        """P(``targets[i]`` | ``history[i]``): ``history`` is ``[N, order - 1]`` preceding characters, the last
        column the nearest, -1 where the text had not begun."""
        history = np.asarray(history, dtype=np.int64).reshape(len(targets), self.order - 1)
        targets = np.asarray(targets, dtype=np.int64)
        p = np.full(len(targets), 1.0 / self.vocab_size)
        for length, (keys, counts, contexts, totals, types, discount) in enumerate(self.levels, 1):
            context = history[:, history.shape[1] - (length - 1):]
            known = (context >= 0).all(axis=1)
            code = _codes(np.maximum(context, 0), self.vocab_size)
            at = np.minimum(np.searchsorted(contexts, code), len(contexts) - 1)
            seen = known & (contexts[at] == code)
            gram = code * self.vocab_size + targets
            where = np.minimum(np.searchsorted(keys, gram), len(keys) - 1)
            count = np.where(keys[where] == gram, counts[where], 0)
            mixed = (np.maximum(count - discount, 0) + discount * types[at] * p) / totals[at]
            p = np.where(seen, mixed, p)
        return p

    def history(self, tokens):
        """``[len(tokens), order - 1]``: the characters before each of ``tokens`` (-1 before the start)."""
        padded = np.concatenate([np.full(self.order - 1, -1, dtype=np.int64), np.asarray(tokens, dtype=np.int64)])
        return _windows(padded, self.order - 1)[:len(tokens)]

    def distribution(self, context):
        """The next-character distribution (``[vocab_size]``) after the character indices ``context``."""
        row = self.history(np.append(np.asarray(context, dtype=np.int64), 0))[-1]
        return self.probabilities(np.tile(row, (self.vocab_size, 1)), np.arange(self.vocab_size))

    def loss(self, tokens):
        """Mean cross-entropy (nats) of each of ``tokens[1:]`` given the characters of ``tokens`` before it."""
        tokens = np.asarray(tokens, dtype=np.int64)
        return float(-np.log(self.probabilities(self.history(tokens)[1:], tokens[1:])).mean())


def ngram_baseline(train, val, vocab_size, orders=NGRAM_ORDERS):
    """The order in ``orders`` whose model of the first 90 % of ``train`` predicts the rest best, and the
    validation loss of that order's model of the whole of ``train``."""
    cut = int(len(train) * TRAIN_FRACTION)
    held_out = {order: CharNgram(train[:cut], order, vocab_size).loss(train[cut:]) for order in orders}
    order = min(held_out, key=held_out.get)
    return {"ngram_val_loss": CharNgram(train, order, vocab_size).loss(val), "ngram_order": order}


# -------------------------------------------------------------------------------------------- recipe
class TinyShakespeare(Recipe):
    name = "tinyshakespeare"
    application = "language-modeling"
    summary = "Character-level language model of Shakespeare (char-rnn's tinyshakespeare), stacked stateful LSTM"
    datasets = (
        DataFile("tinyshakespeare", "input.txt",
                 "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                 "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    )
    hyperparameters: ClassVar[dict] = {
        "epochs": Hyperparameter(6, "passes over the training text"),
        "embedding_dim": Hyperparameter(64, "character embedding size"),
        "hidden_size": Hyperparameter(384, "LSTM hidden units per layer"),
        "num_layers": Hyperparameter(2, "stacked LSTM layers"),
        "dropout": Hyperparameter(0.1, "dropout between the LSTM layers and before the output layer"),
        "batch_size": Hyperparameter(32, "parallel streams of training text"),
        "steps": Hyperparameter(64, "characters per truncated back-propagation window", low=1, high=100_000),
        "eval_batch_size": Hyperparameter(16, "parallel streams when scoring the validation text"),
        "lr": Hyperparameter(0.002, "Adam learning rate at the start"),
        "min_lr": Hyperparameter(0.0002, "learning rate reached by the cosine decay in the last epoch"),
        "clip_norm": Hyperparameter(5.0, "global gradient-norm clipping (0 = off)"),
        "patience": Hyperparameter(0, "stop after this many epochs without a better val_loss (0 = never)"),
        "limit": Hyperparameter(0, "use only this many training and validation characters (0 = all; for "
                                   "quick trials)"),
        "vocabulary": Hyperparameter("", "the characters the model knows, in index order (train sets them: the "
                                         "text's characters, sorted)"),
    }
    anchor = Anchor(metric="loss", value=1.4697,
                    source="nanoGPT's baby GPT (6-layer transformer, 10.7M parameters), val loss on the same "
                           "90/10 split; target: val loss <= 1.50 nats per character")
    measured = ("val loss 1.4356 nats/char with seed 0, 482 s on 2 cores (benchmarks/zoo.py, 2026-12-06, session "
                "30's CPU dense GEMMs; seeds 1 and 2 on the same code: 1.4386 and 1.4421, 2026-12-06, beside other "
                "work); before: 1.436 with seed 0, 785 s, seeds 0/1/2: 1.436-1.442 (benchmarks/zoo.py, "
                "zoo/RESULTS.md, 2026-12-03); the first measurement, "
                "2026-11-24: val loss 1.4378 nats/char (2.074 bits/char, perplexity 4.21) with seed 0 (`lstmzoo "
                "train tinyshakespeare --seed 0`): 1,728 s for the 6 epochs (167-347 s each, val loss 1.657 / 1.534"
                " / 1.493 / 1.463 / 1.445 / 1.438) on 2 shared, loaded CPU cores, one thread (NUMBA_NUM_THREADS=1);"
                " scored as one stream (eval_batch_size=1) the same model gives 1.4368; seeds 0/1/2: 1.438 / 1.436 "
                "/ 1.442 (benchmarks/zoo.py, 2026-11-24); re-run with seed 0 on session 9's kernels (2026-12-03): "
                "1.4360, 785 s; nanoGPT's baby GPT: 1.4697")
    preprocessing = ("characters as indices (vocabulary: the whole text's 65 characters, sorted; recorded as the "
                     "hyperparameter vocabulary in the run's config.json); first 90 % train, last 10 % validation (nanoGPT's split); truncated BPTT "
                     "windows over contiguous streams")
    predict_input = "a text: its loss under the model (bits per character) and the most likely next characters"

    # ---------------------------------------------------------------------------------------- data
    def load_text(self):
        from lstmzoo.data import fetch
        return fetch(self.datasets[0]).read_text(encoding="utf-8")

    def load_data(self, hp):
        """``{"train": indices, "val": indices, "vocabulary": characters}`` of the 90/10 split (indices int64):
        the vocabulary is ``hp["vocabulary"]`` when set (a run's own: evaluate, resume), else the whole text's
        characters, sorted."""
        text = self.load_text()
        vocabulary = hp["vocabulary"] or "".join(sorted(set(text)))
        train, val = split_text(text)
        if hp["limit"] > 0:
            train, val = train[:hp["limit"]], val[:hp["limit"]]
        return {"train": encode(train, vocabulary), "val": encode(val, vocabulary), "vocabulary": vocabulary}

    def build_model(self, hp):
        if not hp["vocabulary"]:
            raise ValueError("tinyshakespeare's model is sized by the hyperparameter vocabulary, which train sets "
                             "from the text (and a run folder records)")
        return _char_language_model(len(hp["vocabulary"]), hp)

    # ---------------------------------------------------------------------------------------- training
    def train(self, hp, run_dir, *, resume=False, data=None, **options):
        """``Recipe.train`` with the hyperparameter ``vocabulary`` set from the data (on ``resume``, the run's
        own: config.json's, or an older run's vocab.json)."""
        if resume and not hp["vocabulary"]:
            hp = {**hp, "vocabulary": older_run_vocabulary(self, run_dir, is_vocabulary)}
        data = self.load_data(hp) if data is None else data
        return super().train({**hp, "vocabulary": data["vocabulary"]}, run_dir, resume=resume, data=data,
                             **options)

    def restore(self, run_dir, weights=None, device=None):
        """``Recipe.restore``; a run trained before the vocabulary was a hyperparameter gets its vocab.json's."""
        from lstmzoo.checkpoint import read_config
        if read_config(run_dir, self.name, of_recipe=True)["hyperparameters"].get("vocabulary"):
            return super().restore(run_dir, weights=weights, device=device)
        vocabulary = older_run_vocabulary(self, run_dir, is_vocabulary)
        return restore_older_run(self, run_dir, {"vocabulary": vocabulary}, weights=weights, device=device)

    def make_optimizer(self, model, hp):
        from lstmzoo.optim import Adam
        return Adam(model, lr=hp["lr"])

    def make_scheduler(self, optimizer, hp):
        from lstmzoo.schedules import CosineLR
        return CosineLR(optimizer, total_epochs=max(hp["epochs"] - 1, 1), min_lr=hp["min_lr"])

    def make_batches(self, data, hp, rng):
        """This epoch's windows, in order, as ``(inputs [T, B], targets [T, B], first)``; ``first`` marks the
        window that starts from zeros. The streams start at a random offset below ``steps``."""
        from lstmzoo.batching import tbptt_batches
        offset = int(rng.integers(hp["steps"]))
        windows = tbptt_batches(data["train"][offset:], hp["batch_size"], hp["steps"])
        return [(np.ascontiguousarray(x.T), np.ascontiguousarray(y.T), k == 0) for k, (x, y) in enumerate(windows)]

    def shard_batch(self, batch, rank, size):
        """Data-parallel training: a rank takes its streams, the same columns of every window's inputs and targets
        ``[T, B]``, so its stateful LSTM carries those streams' states from window to window."""
        from lstmzoo.distributed import Shard, rows_of
        inputs, targets, first = batch
        items = inputs.shape[1]
        rows = rows_of(items, rank, size)
        return Shard((np.ascontiguousarray(inputs[:, rows]), np.ascontiguousarray(targets[:, rows]), first),
                     items, rows)

    def train_step(self, model, batch, hp):
        from lstmzoo.nn import CrossEntropyLoss
        inputs, targets, first = batch
        if first:
            model.reset_state()
        criterion = CrossEntropyLoss()
        logits, _ = model(inputs)
        loss = criterion(logits, targets)
        model.backward(criterion.backward())
        return loss, targets.size

    def validate(self, model, data, hp):
        # Under data-parallel training each rank scores its share of the streams, and the sums are added up.
        part = evaluation_part(model, min(hp["eval_batch_size"], len(data["val"]) - 1))
        return loss_metrics(*part.sum(*stream_loss(part.model, data["val"], hp["eval_batch_size"], hp["steps"],
                                                   describe="scoring the validation text", announce=False,
                                                   streams=part.rows)), prefix="val_")

    def evaluate(self, model, data, hp, out_dir=None):
        """Loss (nats per character), perplexity and bits per character over the whole validation text."""
        total, count = stream_loss(model, data["val"], hp["eval_batch_size"], hp["steps"],
                                   describe=f"scoring {len(data['val']):,} characters of validation text")
        return {**loss_metrics(total, count), "characters": count}

    def target(self, metrics):
        return "val loss <= 1.50 nats/char", metrics["loss"] <= 1.50

    def baseline(self, data, hp):
        """An interpolated Kneser-Ney character n-gram model (``CharNgram``) of the training text, its order
        (1-8) chosen on the training text alone (fit on its first 90 %, scored on the rest): ``ngram_val_loss``,
        its mean loss in nats per character over the same validation text and predictions as ``evaluate``'s
        loss (each character after the first, given at most the ``order - 1`` before it)."""
        return ngram_baseline(data["train"], data["val"], len(data["vocabulary"]))

    # ---------------------------------------------------------------------------------------- using it
    def _next_logits(self, model, tokens, state):
        """Logits (float64, host) after feeding ``tokens`` from ``state`` (None: from zeros), and the new
        state."""
        from lstmzoo.array import to_numpy
        if state is None:
            model.reset_state()
        logits, state = model(model.lstm.xp.asarray(np.asarray(tokens, dtype=np.int64)[:, None]), state=state)
        return to_numpy(logits[-1, 0]).astype(np.float64), state

    def generate(self, model, hp, prompt, length, *, temperature=1.0, top_k=0, rng):
        """Text continuing ``prompt``: yields the prompt, then ``length`` characters one at a time, each drawn
        from the model's next-character distribution sharpened by ``temperature`` (> 0) and cut to the
        ``top_k`` most likely (0 = all; 1 = greedy); ``rng`` is a NumPy Generator. An empty prompt starts as
        after a line break. UserError for a prompt with characters outside the vocabulary."""
        if not temperature > 0:
            raise UserError(f"temperature must be above 0, got {temperature}")
        if top_k < 0:
            raise UserError(f"top_k must be 0 (all characters) or more, got {top_k}")
        if length < 0:
            raise UserError(f"length must be 0 or more, got {length}")
        vocabulary = hp["vocabulary"]
        tokens = encode(prompt or "\n", vocabulary)
        model.eval()
        logits, state = self._next_logits(model, tokens, None)
        yield prompt
        for _ in range(length):
            scores = logits / temperature
            if 0 < top_k < len(scores):
                scores = np.where(scores < np.partition(scores, -top_k)[-top_k], -np.inf, scores)
            probabilities = np.exp(scores - scores.max())
            index = int(np.argmax(probabilities)) if top_k == 1 else int(
                rng.choice(len(scores), p=probabilities / probabilities.sum()))
            yield vocabulary[index]
            logits, state = self._next_logits(model, [index], state)

    def predict(self, model, hp, out_dir, *, input=None):
        """The text ``input``'s bits per character (each character after the first, given those before) and
        the five most likely characters to follow it."""
        if not input:
            raise UserError("tinyshakespeare needs a text as --input")
        tokens = encode(str(input), hp["vocabulary"])
        model.eval()
        result = {"input": str(input)}
        if len(tokens) > 1:
            total, count = stream_loss(model, tokens, 1, hp["steps"])
            result["bits_per_char"] = total / count / np.log(2)
        logits, _ = self._next_logits(model, tokens, None)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities)[:5]
        result["next"] = [{"char": hp["vocabulary"][i], "probability": float(probabilities[i])} for i in best]
        return result

    def format_prediction(self, result):
        lines = [f"bits per character: {result['bits_per_char']:.3f}"] if "bits_per_char" in result else []
        lines += [f"next {entry['char']!r}: {entry['probability']:.3f}" for entry in result["next"]]
        return "\n".join(lines)
