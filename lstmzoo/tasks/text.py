"""Text classification on a user's own labelled texts: ``lstmzoo train text-classification --data reviews.csv``
(CSV, TSV or JSON lines with ``text`` and ``label`` fields, or a folder with a sub-folder of ``.txt`` files per
class; see ``lstmzoo.tasks.readers``).

- splits as in sequence classification: a fixed stratified test part (unless ``--test-data``), a stratified
  validation part of the rest for early stopping;
- words: lower-cased runs of letters and digits, and each punctuation mark on its own (``tokenize``); the
  vocabulary is the training part's words seen at least ``min_count`` times (at most ``max_vocab``, most
  frequent first), after ``<pad>`` (0) and ``<unk>`` (1), where every other word goes; it is recorded in
  ``config.json`` with the label names, so ``predict`` needs nothing else;
- the model: embedding -> bidirectional LSTM over each text's own length -> max over time -> linear
  (``TextClassifier``), cross-entropy with class weights when the classes are imbalanced;
- sizes left at 0 chosen from the data by sequence classification's rules (``sequences.automatic_hidden_size``
  and ``automatic_batch_size``), with N the texts in ``--data`` (before the test and validation parts are taken
  out): hidden size 32 below 500 texts, 64 below 5,000, else 128, at least the next power of two at or above the
  number of classes (up to 256); batch size a 20th of N, 8 to 32, and fewer where that many texts of the longest
  training text's length would pass 65,536 words (texts are cut at ``max_tokens``, 400 words by default, so only a
  larger ``max_tokens`` can lower it: memory grows with batch x length). The embedding stays ``embedding_dim``;
- metrics: ``accuracy``, ``macro_f1``, the majority class's accuracy and a bag-of-words logistic regression's
  (the classic non-neural baseline), a per-class table and a confusion matrix.
"""

import dataclasses
import os
import re
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter

from .base import Task
from .readers import read_texts
from .reports import (
    batch_weight,
    check_parts,
    classification_metrics,
    outputs_by_length,
    softmax,
    split_indices,
)
from .sequences import SPLIT_SEED, automatic_batch_size, automatic_hidden_size

PAD, UNK = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text):
    """Lower-cased words (runs of letters, digits and underscores, in any script) and punctuation marks."""
    return _WORD.findall(text.lower())


def build_vocabulary(token_lists, min_count, max_size):
    """The words seen at least ``min_count`` times, most frequent first (ties by word), at most ``max_size``
    of them, after ``<pad>`` and ``<unk>``."""
    counts = Counter(word for tokens in token_lists for word in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return ["<pad>", "<unk>", *words[:max_size]]


def encode(token_lists, vocabulary, max_tokens):
    """Token indices per text (the first ``max_tokens``; an empty text is one ``<unk>``)."""
    index = {word: k for k, word in enumerate(vocabulary)}
    return [np.array([index.get(w, UNK) for w in tokens[:max_tokens]] or [UNK], dtype=np.int64)
            for tokens in token_lists]


@dataclasses.dataclass
class Texts:
    tokens: list            # int64 arrays, one per text
    y: np.ndarray | None    # int64 class indices, None when unknown

    def __len__(self):
        return len(self.tokens)

    @property
    def lengths(self):
        return np.array([len(t) for t in self.tokens], dtype=np.int64)


@dataclasses.dataclass
class TextData:
    train: Texts
    val: Texts
    test: Texts
    fitted: dict            # vocabulary, classes, class_weight


class TextClassificationTask(Task):
    name = "text-classification"
    application = "text-classification"
    summary = "classify your own texts: a CSV/TSV/JSON-lines file of text,label or a folder per class"
    formats = (".csv, .tsv or JSON lines (.jsonl or .json) with text and label fields (other names: text_column=, "
               "label_column=), or a folder with one sub-folder of .txt files per class (its name the label); "
               "--data and --test-data may differ in layout")
    predict_input = ("texts with or without labels (labels, if present, are ignored): a .csv/.tsv/.jsonl with "
                     "the text column, a .txt file of one text per line, a folder of .txt files, or a text")
    monitor = "val_accuracy"
    mode = "max"
    hyperparameters: ClassVar[dict] = {
        "data": Hyperparameter("", "the training texts: .csv/.tsv/.jsonl or a folder per class (set by --data)"),
        "test_data": Hyperparameter("", "test texts in a layout of --data (set by --test-data; default: "
                                        "test_fraction of --data held out)"),
        "text_column": Hyperparameter("text", "the field holding the text"),
        "label_column": Hyperparameter("label", "the field holding the label"),
        "test_fraction": Hyperparameter(0.2, "fraction held out as the test part without --test-data", low=0.05,
                                        high=0.5),
        "val_fraction": Hyperparameter(0.1, "fraction of the training part held out for early stopping"),
        "min_count": Hyperparameter(2, "training words seen fewer times are unknown", low=1, high=1_000_000),
        "max_vocab": Hyperparameter(30_000, "the most frequent words kept", low=10, high=10_000_000),
        "max_tokens": Hyperparameter(400, "words read from each text (the rest is cut)", low=1, high=100_000),
        "embedding_dim": Hyperparameter(128, "word embedding size (random initial vectors)"),
        "hidden_size": Hyperparameter(0, "LSTM hidden units per direction (0 = from the data: 32 below 500 texts, "
                                         "64 below 5,000, else 128; at least the next power of two at or above "
                                         "the classes, up to 256)", low=0, high=16_384),
        "num_layers": Hyperparameter(1, "stacked LSTM layers"),
        "bidirectional": Hyperparameter(True, "read each text in both directions"),
        "dropout": Hyperparameter(0.3, "dropout on the embeddings, between LSTM layers and before the output"),
        "epochs": Hyperparameter(30, "maximum passes over the training texts"),
        "batch_size": Hyperparameter(0, "texts per training step (0 = a 20th of the texts, 8 to 32; fewer where "
                                        "that many of the longest text pass 65,536 words)", low=0, high=65_536),
        "lr": Hyperparameter(0.002, "Adam learning rate"),
        "patience": Hyperparameter(4, "epochs without a better validation accuracy before stopping (0 = never)"),
        "clip_norm": Hyperparameter(5.0, "global gradient-norm clipping (0 = off)"),
        "vocab_size": Hyperparameter(0, "words in the vocabulary (set from the data)", low=0, high=100_000_000),
        "output_size": Hyperparameter(0, "classes (set from the data)", low=0, high=1_000_000),
    }

    # ------------------------------------------------------------------------------------------ settling
    def settle(self, hp):
        """``hp`` with the vocabulary and class counts of ``hp["data"]`` and the sizes left at 0 chosen from it
        (see the module docstring); config.json records the values chosen, so a run folder rebuilds its model."""
        if not hp["data"]:
            raise UserError("the text-classification task trains on your texts: give them with --data PATH")
        if all(hp[name] for name in ("vocab_size", "output_size", "hidden_size", "batch_size")):
            return hp                                   # settled already (the CLI settles before Recipe.train)
        data = self.load_data({**hp, "vocab_size": 1, "output_size": 1})
        n = len(data.train) + len(data.val) + (0 if hp["test_data"] else len(data.test))     # the texts in --data
        classes = len(data.fitted["classes"])
        return {**hp, "vocab_size": len(data.fitted["vocabulary"]), "output_size": classes,
                "hidden_size": hp["hidden_size"] or automatic_hidden_size(n, classes),
                "batch_size": hp["batch_size"] or automatic_batch_size(n, data.train.lengths.max(initial=1),
                                                                       most=32)}

    def _read(self, hp, path, labelled=True):
        return read_texts(path, text_column=hp["text_column"], label_column=hp["label_column"], labelled=labelled)

    # ---------------------------------------------------------------------------------------------- data
    def load_data(self, hp):
        whole = self._read(hp, hp["data"])
        tokens = [tokenize(text) for text in whole.texts]
        rng = np.random.default_rng(SPLIT_SEED)
        if hp["test_data"]:
            rest, test_set = np.arange(len(whole)), self._read(hp, hp["test_data"])
        else:
            rest, test = split_indices(len(whole), hp["test_fraction"], rng, whole.labels)
            test_set = None
        train, val = split_indices(len(rest), hp["val_fraction"], rng, whole.labels[rest])
        train, val = rest[train], rest[val]
        held_out = {} if hp["test_data"] else {"test": test}
        check_parts(whole.path, "texts", f" (at least {2 if hp['test_data'] else 3} of each class)", training=train,
                    validation=val, **held_out)
        classes, counts = np.unique(whole.labels[train], return_counts=True)
        vocabulary = build_vocabulary([tokens[i] for i in train], hp["min_count"], hp["max_vocab"])
        fitted = {"vocabulary": vocabulary, "classes": classes.tolist(),
                  "class_weight": (len(train) / (len(classes) * counts)).tolist()
                  if counts.max() > 1.5 * counts.min() else None}
        if test_set is not None:
            unseen = sorted(set(test_set.labels) - set(fitted["classes"]))
            if unseen:
                raise UserError(f"{test_set.path} has the label {str(unseen[0])!r}, which the training texts in "
                                f"{whole.path} never have")
            test_part = self._texts(fitted, [tokenize(t) for t in test_set.texts], test_set.labels, hp)
        else:
            test_part = self._texts(fitted, [tokens[i] for i in test], whole.labels[test], hp)
        return TextData(self._texts(fitted, [tokens[i] for i in train], whole.labels[train], hp),
                        self._texts(fitted, [tokens[i] for i in val], whole.labels[val], hp), test_part, fitted)

    def _texts(self, fitted, token_lists, labels, hp):
        index = {name: k for k, name in enumerate(fitted["classes"])}
        y = None if labels is None else np.array([index[label] for label in labels], dtype=np.int64)
        return Texts(encode(token_lists, fitted["vocabulary"], hp["max_tokens"]), y)

    # ------------------------------------------------------------------------------------------ training
    def build_model(self, hp):
        from .models import TextClassifier
        if not hp["vocab_size"]:
            raise ValueError("build_model needs settled hyperparameters: call settle(hp) first")
        return TextClassifier(hp["vocab_size"], hp["embedding_dim"], hp["hidden_size"], hp["output_size"],
                              num_layers=hp["num_layers"], bidirectional=hp["bidirectional"], dropout=hp["dropout"],
                              embedding_dropout=hp["dropout"], device=hp["device"])

    def _batch(self, texts, index, hp):
        from lstmzoo.array import device_module
        from lstmzoo.batching import pad_sequences
        xp = device_module(hp["device"])
        padded, lengths = pad_sequences([texts.tokens[i] for i in index], pad_value=PAD)
        return xp.asarray(padded), lengths, None if texts.y is None else xp.asarray(texts.y[index])

    def make_batches(self, data, hp, rng):
        from lstmzoo.batching import bucket_by_length
        weight = data.fitted["class_weight"]
        weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        return [(*self._batch(data.train, index, hp), weight)
                for index in bucket_by_length(data.train.lengths, hp["batch_size"], rng)]

    def train_step(self, model, batch, hp):
        from lstmzoo.nn import CrossEntropyLoss
        tokens, lengths, targets, weight = batch
        loss = CrossEntropyLoss(weight=weight)
        value = loss(model(tokens, lengths=lengths), targets)
        model.backward(loss.backward())
        return value, batch_weight(weight, targets)

    def probabilities(self, model, texts, hp):
        scores = outputs_by_length(model, texts.lengths, lambda index: self._batch(texts, index, hp)[:2],
                                   hp["output_size"])
        return softmax(scores)

    def validate(self, model, data, hp):
        from lstmzoo.metrics import accuracy
        return {"val_accuracy": accuracy(data.val.y, self.probabilities(model, data.val, hp).argmax(axis=1))}

    # ---------------------------------------------------------------------------------------- evaluation
    def evaluate(self, model, data, hp, out_dir=None):
        predicted = self.probabilities(model, data.test, hp).argmax(axis=1)
        metrics = classification_metrics(self.name, data.test.y, predicted, data.fitted["classes"], out_dir)
        return {**metrics, **self.baseline(data, hp)}

    def baseline(self, data, hp):
        """The majority class's accuracy and a bag-of-words logistic regression's, fitted on the training part."""
        from lstmzoo.metrics import accuracy
        majority = np.bincount(data.train.y).argmax()
        predicted = bag_of_words_logistic_regression(data.train.tokens, data.train.y, data.test.tokens,
                                                     len(data.fitted["vocabulary"]), len(data.fitted["classes"]))
        return {"majority_accuracy": accuracy(data.test.y, np.full(len(data.test), majority)),
                "bow_logreg_accuracy": accuracy(data.test.y, predicted)}

    def target(self, metrics):
        return ("accuracy above the majority class's", metrics["accuracy"] > metrics["majority_accuracy"])

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, model, hp, out_dir, *, input=None, output=None):
        """A row per text of ``input`` (a file or folder of texts, labelled or not, or one text): its position,
        the label and each class's probability; written to ``output`` as CSV when given. An ``input`` that does
        not exist but looks like a path (``looks_like_a_path``) is refused (UserError), not classified."""
        fitted = self.recorded_preprocessing(out_dir)
        source = input or hp["test_data"] or hp["data"]
        try:
            exists = Path(source).exists()
        except OSError:     # a text too long to be a file name
            exists = False
        if not exists and (not input or looks_like_a_path(source)):
            raise UserError(f"{source} does not exist (given with --input)" if input else
                            f"{source}, which the run in {out_dir} read, is gone: give the texts to "
                            f"classify with --input")
        texts = self.read_input(lambda: self._read(hp, source, labelled=False).texts) if exists else [str(source)]
        probabilities = self.probabilities(model, self._texts(fitted, [tokenize(t) for t in texts], None, hp), hp)
        classes = fitted["classes"]
        rows = {"id": np.arange(len(texts)), "label": np.asarray(classes)[probabilities.argmax(axis=1)],
                **{f"p_{name}": probabilities[:, k] for k, name in enumerate(classes)}}
        return self.prediction(rows, output)


PREDICT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".txt")     # the files predict reads (readers.read_texts)


def looks_like_a_path(text):
    """Whether ``predict``'s ``--input`` ``text`` names a file rather than being a text to classify: it ends in
    a suffix the reader takes (``.csv``, ``.tsv``, ``.jsonl``, ``.json``, ``.txt``), or it is one word (no white
    space) with a path separator in it (``data/new``; a text such as "rated 5/10" has spaces, so it stays a
    text)."""
    text = str(text).strip()
    if text.lower().endswith(PREDICT_SUFFIXES):
        return True
    separators = {"/", os.sep, os.altsep} - {None}
    return bool(text) and not any(c.isspace() for c in text) and any(s in text for s in separators)


def bag_of_words_logistic_regression(train_tokens, train_y, test_tokens, vocab_size, classes, l2=1.0):
    """Test predictions of a multinomial logistic regression on binary bags of words (padding and unknown
    words left out), L2-regularised, fitted by L-BFGS on the training texts."""
    from scipy import sparse
    from scipy.optimize import minimize

    def bag(token_lists):
        rows = np.concatenate([np.full(len(t), i) for i, t in enumerate(token_lists)])
        cols = np.concatenate(token_lists)
        known = cols > UNK
        matrix = sparse.csr_matrix((np.ones(known.sum()), (rows[known], cols[known])),
                                   shape=(len(token_lists), vocab_size))
        matrix.data[:] = 1.0
        return sparse.hstack([matrix, np.ones((len(token_lists), 1))]).tocsr()

    x, onehot = bag(train_tokens), np.eye(classes)[train_y]

    def loss(flat):
        w = flat.reshape(x.shape[1], classes)
        z = x @ w
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -np.sum(onehot * log_p) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        grad = x.T @ (np.exp(log_p) - onehot)
        grad[:-1] += l2 * w[:-1]
        return value, grad.reshape(-1)

    w = minimize(loss, np.zeros(x.shape[1] * classes), jac=True, method="L-BFGS-B",
                 options={"maxiter": 300}).x.reshape(x.shape[1], classes)
    return np.asarray(bag(test_tokens) @ w).argmax(axis=1)
