"""Digit strings recognised with CTC: spoken (``spoken-digit-strings``, speech-to-text) and handwritten
(``pendigits-strings``, handwritten-text recognition), both built from the single digits of the wave-1 recipes.

Neither dataset holds strings, so the recipes build them: a string takes 2-7 digits (uniform) of one speaker or
writer, each a random recording or trajectory of that speaker or writer. Training strings are drawn afresh every
epoch (``strings_per_epoch`` of them, from the epoch's seeded generator); validation and test strings are fixed
(``VAL_SEED``, ``TEST_SEED``): ``val_strings`` from the validation digits, and the first ``test_strings`` of the
same 1,000 test strings, built from the official test digits only (FSDD recordings with index 0-4; the 14
writers of ``pendigits-orig.tes``). The targets are stated on all 1,000.

The model: a bidirectional LSTM over the feature frames, dropout, a linear layer to 11 classes per frame (CTC blank
= 0, digit d = d + 1), trained with the CTC loss. Validation decodes greedily (best path) and picks the epoch with
the lowest validation error rate; the test split and ``predict`` use the prefix beam search (``beam_width``; 1 =
greedy), and ``evaluate`` reports the greedy figures beside the beam's. The error rate is the summed edit
distance over the summed reference length; sequence accuracy counts strings decoded exactly. The baseline
measured beside it (``baseline``) is k-NN on each test string's digits one by one, told where they are.

spoken-digit-strings: each recording's peak is scaled to a random level (0.3-0.9; recordings differ 30-fold in
level) and the recordings are joined with pauses of 0-``max_gap`` s of faint Gaussian noise (also before the first
and after the last). The features are those of ``spoken-digits`` (13 MFCCs, deltas, delta-deltas per 10 ms,
normalised over the utterance) computed on the joined waveform, exactly as ``predict`` computes them for a WAV
file of a spoken number, then ``stack`` consecutive frames are concatenated into one step (fewer, wider steps: the
LSTM runs ``stack`` times fewer steps). Speakers: the 6 of FSDD; train = index 5 to ``val_from``-1, validation =
``val_from``-49 (the same speakers, other recordings), test = 0-4.

pendigits-strings: each digit's strokes (raw tablet coordinates, same writer, so the same scale) are placed side by
side: bottoms aligned, each digit starting right of the previous one's bounding box plus a gap of ``min_gap`` to
``max_gap`` of the digits' median height; training digits are first rotated, sheared and stretched like
``pendigits``' (``augment``). The string is resampled at equal arc-length spacing, ``points_per_height`` points per
string height of ink (about 20 per digit), and per point the features are the height-normalised y (-1 to 1), the
step (dx, dy) from the previous point (scaled so a typical step is about 1) and a flag where the pen was lifted to
reach the point: the jump between strokes and between digits shows in the step. Writers: the 30 of ``.tra`` less
the last ``val_writers`` (validation) for training, the 14 of ``.tes`` for the test.
"""

import dataclasses
from typing import ClassVar

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Anchor, Hyperparameter, Recipe
from lstmzoo.tasks.recipes import classification_hyperparameters

from .pendigits import PenDigits, distort, read_trajectory, resample
from .spoken_digits import (
    SAMPLE_RATE,
    SpokenDigits,
    mfcc_features,
    n_mfcc_hyperparameter,
    read_wav_file,
    val_from_hyperparameter,
)

MIN_DIGITS, MAX_DIGITS = 2, 7
BLANK = 0                           # CTC blank; digit d is class d + 1
CLASSES = 11
VAL_SEED, TEST_SEED = 7_2026, 11_2026       # the fixed validation and test strings
TEST_STRINGS = 1000                         # the fixed test strings the targets are stated on


# ----------------------------------------------------------------------------------------------- strings
@dataclasses.dataclass
class Units:
    """The single digits strings are built from: ``items`` (recordings, or each digit's strokes), their digits
    and their groups (speaker or writer: a string takes all its digits from one group)."""
    items: list
    labels: np.ndarray
    groups: np.ndarray

    def __post_init__(self):
        self.labels, self.groups = np.asarray(self.labels, dtype=np.int64), np.asarray(self.groups)
        if not len(self.items) == len(self.labels) == len(self.groups):
            raise ValueError(f"{len(self.items)} items, {len(self.labels)} labels and {len(self.groups)} groups")
        if not len(self.items):
            raise ValueError("no digits to build strings from")
        self.members = [np.flatnonzero(self.groups == group) for group in np.unique(self.groups)]

    def __len__(self):
        return len(self.items)


def draw_string(units, rng):
    """Indices into ``units`` of one string: a group drawn uniformly, then 2-7 of its digits (with
    replacement)."""
    length = rng.integers(MIN_DIGITS, MAX_DIGITS + 1)
    members = units.members[rng.integers(len(units.members))]
    return members[rng.integers(0, len(members), length)]


@dataclasses.dataclass
class StringSet:
    """Fixed strings: their feature sequences ``[T_i, F]``, digits and the indices of the units they came from."""
    sequences: list
    targets: list
    sources: list

    def __len__(self):
        return len(self.targets)


@dataclasses.dataclass
class StringData:
    train: Units            # strings are drawn from these every epoch
    val: StringSet
    test: StringSet


def edit_distance(reference, hypothesis):
    """Levenshtein distance (substitutions, insertions, deletions, each 1) between two sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, wanted in enumerate(reference, 1):
        current = [i]
        for j, got in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (wanted != got)))
        previous = current
    return previous[-1]


def string_scores(references, hypotheses):
    """``(error rate, sequence accuracy, edits)``: the summed edit distance over the summed reference length,
    and the fraction of strings decoded exactly."""
    references = [list(map(int, r)) for r in references]
    hypotheses = [list(map(int, h)) for h in hypotheses]
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    exact = sum(r == h for r, h in zip(references, hypotheses))
    return edits / sum(map(len, references)), exact / len(references), edits


def string_hyperparameters(*, hidden_size, num_layers, epochs, lr, batch_size, dropout, strings_per_epoch):
    """The hyperparameters both string recipes have, with that recipe's defaults."""
    common = classification_hyperparameters(hidden_size=hidden_size, epochs=epochs, lr=lr, batch_size=batch_size,
                                            patience=0, num_layers=num_layers, dropout=dropout)
    return {
        "strings_per_epoch": Hyperparameter(strings_per_epoch, "training strings drawn afresh every epoch", low=1,
                                            high=10_000_000),
        "val_strings": Hyperparameter(300, "fixed validation strings (they pick the best epoch)", low=1,
                                      high=1_000_000),
        "test_strings": Hyperparameter(TEST_STRINGS, "the first this many of the 1,000 fixed test strings are scored "
                                                     "(the target is stated on all 1,000)", low=1, high=TEST_STRINGS),
        "beam_width": Hyperparameter(10, "prefix beam search width for the test and predict (1 = greedy)"),
        **common,
        "patience": Hyperparameter(0, "epochs without a lower validation error rate before stopping (0 = never)"),
    }


# ------------------------------------------------------------------------------------------------ recipe
class DigitStringRecipe(Recipe):
    """CTC recognition of digit strings; a subclass says where its digits come from (``load_units``), how a
    string of them becomes features (``render``) and how ``predict`` reads an input (``read_input``)."""
    error_metric = ""               # "digit_error_rate", "character_error_rate"; the target is the anchor's
    mode = "min"
    schedule = "cosine"             # the learning rate falls along half a cosine to zero over `epochs`

    def input_size(self, hp):
        raise NotImplementedError

    def load_units(self, hp):
        """``(train, val, test)`` ``Units``."""
        raise NotImplementedError

    def render(self, units, indices, hp, rng, train):
        """The ``[T, F]`` float32 features of the string of ``units`` ``indices``; ``rng`` draws the layout
        (and, when ``train``, the augmentation)."""
        raise NotImplementedError

    def read_input(self, input, hp):
        """``(features, details)`` of ``predict``'s ``input``; UserError (one sentence) when it is unusable."""
        raise NotImplementedError

    def digit_features(self, units, hp):
        """``[len(units), F]`` fixed-length features of each single digit of ``units``, for ``baseline``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ data
    def fixed_strings(self, units, count, seed, hp, what):
        """``count`` strings drawn and rendered one after another from one generator seeded with ``seed``, so
        a smaller ``count`` gives the first strings of a larger one (``what`` names them in the progress bar)."""
        from .progress import phase
        rng = np.random.default_rng(seed)
        sources = []
        sequences = []
        for _ in phase(range(count), f"building {count:,} fixed {what} strings", unit="string"):
            sources.append(draw_string(units, rng))
            sequences.append(self.render(units, sources[-1], hp, rng, train=False))
        return StringSet(sequences, [units.labels[s] for s in sources], sources)

    def load_data(self, hp):
        train, val, test = self.load_units(hp)
        return StringData(train, self.fixed_strings(val, hp["val_strings"], VAL_SEED, hp, "validation"),
                          self.fixed_strings(test, hp["test_strings"], TEST_SEED, hp, "test"))

    # -------------------------------------------------------------------------------- training
    def build_model(self, hp):
        from lstmzoo.tasks.models import FrameModel
        return FrameModel(self.input_size(hp), hp["hidden_size"], CLASSES, num_layers=hp["num_layers"],
                          bidirectional=hp["bidirectional"], dropout=hp["dropout"], device=hp["device"])

    def make_batches(self, data, hp, rng):
        from lstmzoo.batching import bucket_by_length, pad_sequences
        from lstmzoo.tasks.reports import padded_batch

        from .progress import phase
        sources = [draw_string(data.train, rng) for _ in range(hp["strings_per_epoch"])]
        sequences = [self.render(data.train, s, hp, rng, train=True)
                     for s in phase(sources, "building this epoch's training strings", unit="string", announce=False)]
        batches = []
        for indices in bucket_by_length([len(s) for s in sequences], hp["batch_size"], rng):
            inputs, lengths = padded_batch([sequences[i] for i in indices], hp["device"])
            targets, target_lengths = pad_sequences([data.train.labels[sources[i]] + 1 for i in indices],
                                                    batch_first=True)
            batches.append((inputs, lengths, targets, target_lengths))
        return batches

    def train_step(self, model, batch, hp):
        from lstmzoo.nn import CTCLoss
        inputs, lengths, targets, target_lengths = batch
        loss = CTCLoss(blank=BLANK, reduction="mean", zero_infinity=True)
        value = loss(model(inputs, lengths=lengths), targets, lengths, target_lengths)
        model.backward(loss.backward())
        return value, len(lengths)

    # ------------------------------------------------------------------------------- decoding
    def decode(self, model, sequences, hp, beam_widths, targets=None, describe=None, announce=True):
        """``(decoded, loss)``: ``{beam width: the digits decoded from each of sequences}`` (width 1: greedy) and,
        given ``targets`` (each sequence's digits), the mean CTC loss per string (else None), from one forward
        pass of the model (in eval mode) over the batches of ``lstmzoo.tasks.reports.batches_by_length``, with a
        progress bar named ``describe`` (see ``progress.phase``)."""
        from lstmzoo.array import to_numpy
        from lstmzoo.batching import pad_sequences
        from lstmzoo.nn import CTCLoss, ctc_beam_decode, ctc_greedy_decode
        from lstmzoo.tasks.reports import batches_by_length, padded_batch

        from .progress import phase
        decoded = {width: [None] * len(sequences) for width in beam_widths}
        total = 0.0
        for chosen in phase(batches_by_length([len(s) for s in sequences]), describe, unit="batch",
                            announce=announce):
            inputs, lengths = padded_batch([sequences[i] for i in chosen], hp["device"])
            logits = to_numpy(model(inputs, lengths=lengths))
            for width in beam_widths:
                paths = (ctc_greedy_decode(logits, lengths, blank=BLANK) if width <= 1 else
                         ctc_beam_decode(logits, lengths, beam_width=width, blank=BLANK))
                for index, path in zip(chosen, paths, strict=True):
                    decoded[width][index] = [int(label) - 1 for label in path]
            if targets is not None:
                labels, label_lengths = pad_sequences([targets[i] + 1 for i in chosen], batch_first=True)
                loss = CTCLoss(blank=BLANK, reduction="mean", zero_infinity=True)
                total += loss(logits, labels, lengths, label_lengths) * len(lengths)
        return decoded, None if targets is None else total / len(sequences)

    def validate(self, model, data, hp):
        decoded, loss = self.decode(model, data.val.sequences, hp, (1,), targets=data.val.targets,
                                    describe="decoding the validation strings", announce=False)
        rate, sequence_accuracy, _ = string_scores(data.val.targets, decoded[1])
        return {"val_loss": loss, f"val_{self.error_metric}": rate,
                "val_sequence_accuracy": sequence_accuracy}

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, model, data, hp, out_dir=None):
        """The test strings' error rate and sequence accuracy with the beam search, and with greedy decoding."""
        model.eval()
        widths = sorted({1, hp["beam_width"]})
        decoded, loss = self.decode(model, data.test.sequences, hp, widths, targets=data.test.targets,
                                    describe=f"decoding {len(data.test):,} test strings (beam width "
                                             f"{hp['beam_width']})")
        metrics = {}
        for width, prefix in ((hp["beam_width"], ""), (1, "greedy_")):
            rate, sequence_accuracy, edits = string_scores(data.test.targets, decoded[width])
            metrics.update({f"{prefix}{self.error_metric}": rate, f"{prefix}sequence_accuracy": sequence_accuracy,
                            f"{prefix}errors": edits})
        return {**metrics, "loss": loss, "strings": len(data.test),
                "digits": int(sum(map(len, data.test.targets)))}

    def baseline(self, data, hp):
        """Oracle-segmented k-NN: each test string's digits are classified one by one, the baseline being told
        which single recording or trajectory each digit of the string is (the LSTM is not: it must find the
        digits in the joined sequence), by k-nearest neighbours on fixed-length features of the whole digit
        (``digit_features``, standardised with the training digits' statistics) with the training digits the
        training strings are drawn from as neighbours, k chosen by leave-one-out on them. The digits of a
        string are scored together as ``evaluate`` scores the LSTM's output: ``segmented_knn_der`` (digit error
        rate) or ``segmented_knn_cer`` (character error rate) over the same test strings, the sequence
        accuracy, and k."""
        from lstmzoo.tasks.baselines import knn_choose_k, knn_predictions
        test = self.load_units(hp)[2]
        if not all(np.array_equal(test.labels[s], t) for s, t in zip(data.test.sources, data.test.targets)):
            raise ValueError(f"{self.name}: the test strings were not built from this recipe's test digits")
        train_x, test_x = self.digit_features(data.train, hp), self.digit_features(test, hp)
        mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        k, _ = knn_choose_k(train_x, data.train.labels)
        predicted = knn_predictions(train_x, data.train.labels, test_x, ks=(k,))[k]
        rate, sequence_accuracy, _ = string_scores(data.test.targets, [predicted[s] for s in data.test.sources])
        initials = "".join(word[0] for word in self.error_metric.split("_"))
        return {f"segmented_knn_{initials}": rate, "segmented_knn_sequence_accuracy": sequence_accuracy,
                "segmented_knn_k": k}

    # -------------------------------------------------------------------------------- predict
    def predict(self, model, hp, out_dir, *, input=None):
        """The digits recognised in ``input`` (see ``predict_input``)."""
        if input is None:
            raise UserError(f"{self.name} needs --input: {self.predict_input}")
        features, details = self.read_input(input, hp)
        (digits,) = self.decode(model, [features], hp, (hp["beam_width"],))[0][hp["beam_width"]]
        return {"digits": "".join(map(str, digits)), "input": str(input), **details}

    def format_prediction(self, result):
        return result["digits"] or "(no digits recognised)"


# ----------------------------------------------------------------------------------------- spoken
def stack_frames(features, stack):
    """``[ceil(T / stack), stack F]``: each step holds ``stack`` consecutive frames (the last frame repeated to
    fill the final step)."""
    steps = -(-len(features) // stack)
    padded = np.concatenate([features, np.repeat(features[-1:], steps * stack - len(features), axis=0)])
    return padded.reshape(steps, stack * features.shape[1])


class SpokenDigitStrings(DigitStringRecipe):
    name = "spoken-digit-strings"
    application = "speech-to-text"
    summary = ("Spoken digit strings (2-7 FSDD recordings of one speaker joined by pauses) to text: MFCC + "
               "BiLSTM + CTC")
    datasets = SpokenDigits.datasets
    error_metric = "digit_error_rate"
    monitor = "val_digit_error_rate"
    hyperparameters: ClassVar[dict] = {
        "n_mfcc": n_mfcc_hyperparameter(),
        "stack": Hyperparameter(3, "consecutive 10 ms frames concatenated into one LSTM step", low=1, high=100),
        "max_gap": Hyperparameter(0.2, "longest pause (seconds of faint noise) around each recording", low=0.0,
                                  high=10.0),
        "val_from": val_from_hyperparameter("validation digits"),
        **string_hyperparameters(hidden_size=128, num_layers=1, epochs=10, lr=0.003, batch_size=16, dropout=0.2,
                                 strings_per_epoch=2000),
    }
    anchor = Anchor(metric="digit_error_rate", value=0.10,
                    source="target on 1,000 fixed strings of the official FSDD test recordings (index 0-4); FSDD "
                           "has no published string benchmark")
    measured = ("test digit error rate 0.20 % (9 edits) with seed 0, seeds 0/1/2: 0.20 / 0.38 / 0.34 % "
                "(benchmarks/zoo.py, 2026-12-06, session 30's CPU dense GEMMs: the CTC head's GEMMs on one OpenBLAS"
                " thread; 74-76 s each on 2 cores), the same figures as before it; re-run 2026-12-02 on one "
                "evaluation batch size and the vectorised cell passes; before them 0.16 %, 99.3 % of strings exact "
                "(7 edits in 4,484 digits) with seed 0; seeds 0/1/2: 0.16 / 0.38 / 0.33 % (greedy decoding: 0.20 / "
                "0.38 / 0.31 %) (benchmarks/zoo.py, 2026-11-25), 74-112 s each on one CPU core")
    preprocessing = ("strings of 2-7 recordings of one speaker, each scaled to a random peak level, joined by "
                     "0-`max_gap` s pauses of faint noise; MFCCs (`n_mfcc`) + deltas + delta-deltas of the joined "
                     "waveform (25 ms window, 10 ms hop), normalised over the utterance; `stack` frames per step; "
                     "train = index 5 to `val_from`-1 (fresh strings each epoch), validation = `val_from` to 49, "
                     "test = 1,000 fixed strings of index 0-4")
    predict_input = ("a WAV file of a spoken number, digits 0-9 said one by one (mono or stereo, any sample rate: "
                     "it is resampled to 8 kHz)")

    def input_size(self, hp):
        return 3 * hp["n_mfcc"] * hp["stack"]

    def load_units(self, hp):
        recordings = SpokenDigits().load_recordings()

        def units(keep):
            chosen = [r for r in recordings if keep(r.index)]
            return Units(chosen, [r.digit for r in chosen], [r.speaker for r in chosen])

        return (units(lambda i: 5 <= i < hp["val_from"]), units(lambda i: i >= hp["val_from"]),
                units(lambda i: i < 5))

    def render(self, units, indices, hp, rng, train):
        pieces = []
        noise = 10 ** rng.uniform(-3.5, -2)         # the pauses' noise level for this string
        for index in indices:
            pieces.append(rng.normal(0, noise, rng.integers(0, int(hp["max_gap"] * SAMPLE_RATE) + 1)))
            audio = units.items[index].audio
            pieces.append(audio * (rng.uniform(0.3, 0.9) / max(float(np.abs(audio).max()), 1e-6)))
        pieces.append(rng.normal(0, noise, rng.integers(0, int(hp["max_gap"] * SAMPLE_RATE) + 1)))
        audio = np.concatenate(pieces).astype(np.float32)
        return stack_frames(mfcc_features(audio, SAMPLE_RATE, hp["n_mfcc"]), hp["stack"])

    def digit_features(self, units, hp):
        """Each recording's mean and standard deviation over time of the MFCCs, deltas and delta-deltas (as
        ``spoken-digits``' baseline), computed on the recording scaled to peak 1: the strings scale each
        recording to a random peak level, which this undoes."""
        def summary(audio):
            raw = mfcc_features(audio / max(float(np.abs(audio).max()), 1e-6), SAMPLE_RATE, hp["n_mfcc"],
                                normalise=False)
            return np.concatenate([raw.mean(axis=0), raw.std(axis=0)])

        return np.stack([summary(recording.audio) for recording in units.items]).astype(np.float64)

    def read_input(self, input, hp):
        audio, rate = read_wav_file(input)
        features = stack_frames(mfcc_features(audio, rate, hp["n_mfcc"]), hp["stack"])
        return features, {"sample_rate": rate, "seconds": round(len(audio) / rate, 3)}


# ------------------------------------------------------------------------------------------- handwriting
def distort_strokes(strokes, rng, strength):
    """``distort`` (one random rotation, shear and stretch) applied to a whole digit about its bounding-box
    centre."""
    everything = np.concatenate(strokes)
    centre = (everything.min(axis=0) + everything.max(axis=0)) / 2
    moved = distort(everything - centre, rng, strength) + centre
    return np.split(moved, np.cumsum([len(s) for s in strokes])[:-1])


def lay_out(digits, gaps):
    """The strokes of ``digits`` (each a list of ``[n, 2]`` strokes, y up) placed side by side: bottoms
    aligned, each digit ``gaps[i - 1]`` times the digits' median height right of the previous one's
    bounding box."""
    boxes = [(np.concatenate(d).min(axis=0), np.concatenate(d).max(axis=0)) for d in digits]
    height = float(np.median([high[1] - low[1] for low, high in boxes]))
    strokes, cursor = [], 0.0
    for number, (digit, (low, high)) in enumerate(zip(digits, boxes)):
        if number:
            cursor += gaps[number - 1] * height
        strokes.extend(np.asarray(s, dtype=np.float64) + [cursor - low[0], -low[1]] for s in digit)
        cursor += high[0] - low[0]
    return strokes


def string_features(strokes, points_per_height):
    """``[P, 4]`` float32 features of a written string: resampled (``pendigits.resample``) at equal arc-length
    spacing, ``points_per_height`` points per string height of ink; y normalised to -1..1 by the string's
    height, the step (dx, dy) from the previous point scaled by ``points_per_height / 2`` (a typical step is
    about 1), and the pen-lifted flag."""
    everything = np.concatenate(strokes)
    width, height = np.ptp(everything, axis=0)
    # A string is never much wider than 2 * MAX_DIGITS heights: the floor keeps a flat scribble finite.
    height = max(float(height), float(width) / (2 * MAX_DIGITS), 1e-9)
    ink = sum(float(np.hypot(*np.diff(s, axis=0).T).sum()) for s in strokes) / height
    points = resample(strokes, max(len(strokes), round(ink * points_per_height)))
    # resample scales by half the longer side of the bounding box; rescale to half the height.
    xy = points[:, :2].astype(np.float64) * (max(float(width), height) / height)
    steps = np.diff(xy, axis=0, prepend=xy[:1]) * (points_per_height / 2)
    return np.column_stack([xy[:, 1], steps, points[:, 2]]).astype(np.float32)


class PenDigitStrings(DigitStringRecipe):
    name = "pendigits-strings"
    application = "handwriting"
    summary = ("Handwritten numbers (2-7 pendigits trajectories of one writer side by side) to text, "
               "writer-independent: BiLSTM + CTC")
    datasets = PenDigits.datasets[:2]
    error_metric = "character_error_rate"
    monitor = "val_character_error_rate"
    hyperparameters: ClassVar[dict] = {
        "points_per_height": Hyperparameter(8, "points per string height of ink (about 20 per digit)", low=1,
                                            high=100),
        "augment": Hyperparameter(0.1, "strength of the random rotation/shear/stretch of each training digit "
                                       "(0 = off)", low=0.0, high=1.0),
        "min_gap": Hyperparameter(0.05, "smallest gap between digits, in digit heights", low=0.0, high=10.0),
        "max_gap": Hyperparameter(0.5, "largest gap between digits, in digit heights (at least min_gap)", low=0.0,
                                  high=10.0),
        "val_writers": PenDigits.hyperparameters["val_writers"],
        **string_hyperparameters(hidden_size=128, num_layers=1, epochs=20, lr=0.003, batch_size=16, dropout=0.2,
                                 strings_per_epoch=2000),
    }
    anchor = Anchor(metric="character_error_rate", value=0.05,
                    source="target on 1,000 fixed strings of the 14 test writers' digits (pendigits-orig.tes); "
                           "no published string benchmark on pendigits")
    measured = ("test character error rate 1.19 % (54 edits, 94.7 % of strings exact) with seed 0, seeds 0/1/2: "
                "1.19 / 3.13 / 1.30 % (benchmarks/zoo.py, 2026-12-06, session 30's CPU dense GEMMs: the CTC head's "
                "GEMMs on one OpenBLAS thread; 71-92 s each on 2 cores); zoo/RESULTS.md before it: 1.13 % (seeds "
                "1.08-2.63 %); re-run 2026-12-02 on one evaluation batch size and the vectorised cell passes; "
                "before them 0.97 %, 95.7 % of strings exact (44 edits in 4,531 digits) with seed 0; seeds 0/1/2: "
                "0.97 / 3.22 / 1.35 % (greedy decoding: 0.97 / 3.16 / 1.35 %) (benchmarks/zoo.py, 2026-11-25), "
                "63-110 s each on one CPU core; the 3 validation writers are harder than the test writers "
                "(validation error rate 5-7 %)")
    preprocessing = ("strings of 2-7 digits of one writer placed side by side (bottoms aligned, gaps of "
                     "`min_gap`-`max_gap` digit heights; training digits rotated/sheared/stretched by `augment`); "
                     "resampled at equal arc-length spacing (`points_per_height`); features y (normalised by the "
                     "string's height), dx, dy and a pen-lifted flag; train = the 30 writers of .tra less the last "
                     "`val_writers` (validation), test = 1,000 fixed strings of the 14 writers of .tes")
    predict_input = ("a UNIPEN file of a written number (.PEN_DOWN / .PEN_UP blocks of 'x y' lines, y up); a file "
                     "of several .SEGMENTs (one digit each, like pendigits-orig.tes) is laid out side by side in "
                     "file order; or a JSON file (or text) of [x, y, pen_down] points")

    def input_size(self, hp):
        return 4

    def load_units(self, hp):
        if hp["min_gap"] > hp["max_gap"]:
            raise UserError(f"min_gap must not exceed max_gap, got {hp['min_gap']} and {hp['max_gap']}")
        recipe = PenDigits()
        train, test = recipe.load_digits(0), recipe.load_digits(1)
        held_out = set(np.unique([digit.writer for digit in train])[-hp["val_writers"]:].tolist())

        def units(digits):
            return Units([d.strokes for d in digits], [int(d.label) for d in digits], [d.writer for d in digits])

        return (units([d for d in train if d.writer not in held_out]), units([d for d in train if d.writer in held_out]),
                units(test))

    def render(self, units, indices, hp, rng, train):
        digits = [units.items[index] for index in indices]
        if train and hp["augment"] > 0:
            digits = [distort_strokes(digit, rng, hp["augment"]) for digit in digits]
        gaps = rng.uniform(hp["min_gap"], hp["max_gap"], len(digits) - 1)
        return string_features(lay_out(digits, gaps), hp["points_per_height"])

    def digit_features(self, units, hp):
        """Each digit's strokes resampled to 8 points at equal arc-length spacing (``pendigits.resample``:
        centred, scaled to [-1, 1] with the aspect kept), their x and y: the construction of UCI's 16-feature
        version that ``pendigits``' k-NN baseline uses, applied to the same trajectories the strings are built
        from."""
        return np.stack([resample(strokes, 8)[:, :2].ravel() for strokes in units.items]).astype(np.float64)

    def read_input(self, input, hp):
        segments, source = read_trajectory(input, segments=True)
        gap = (hp["min_gap"] + hp["max_gap"]) / 2
        strokes = lay_out(segments, [gap] * (len(segments) - 1)) if len(segments) > 1 else segments[0]
        features = string_features(strokes, hp["points_per_height"])
        return features, {"source": source, "segments": len(segments), "strokes": len(strokes),
                          "points": len(features)}
