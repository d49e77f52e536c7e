"""pendigits: the UNIPEN loader on the real files (through the mirror), the trajectory preprocessing, the kNN
baseline on UCI's 16 features, and train -> evaluate -> predict through the CLI on a short run."""

import json
import re

import numpy as np
import pytest
from helpers import SHARED, needs_shared, run
from lstmzoo.zoo.pendigits import (
    PenDigits,
    point_features,
    read_fixed,
    read_points_json,
    read_unipen,
    resample,
)

from lstmzoo.errors import UserError
from lstmzoo.tasks.baselines import knn_baseline

# Per-class counts from SOURCE.md (and UCI), digits 0-9.
TRAIN_COUNTS = [780, 779, 780, 719, 780, 720, 720, 778, 719, 719]
TEST_COUNTS = [363, 364, 364, 336, 364, 335, 336, 364, 336, 336]
TWO_STROKES = [np.array([[0, 0], [0, 10], [0, 20]]), np.array([[-5, 20], [5, 20]])]     # a "T": stem, bar




# ------------------------------------------------------------------------------------------- the data
@needs_shared
def test_loader_reads_the_writer_independent_split(mirror):
    recipe = PenDigits()
    train, test = recipe.load_digits(0), recipe.load_digits(1)
    assert (len(train), len(test)) == (7494, 3498)
    assert np.bincount([int(d.label) for d in train]).tolist() == TRAIN_COUNTS
    assert np.bincount([int(d.label) for d in test]).tolist() == TEST_COUNTS
    assert sorted({d.writer for d in train}) == list(range(1, 31))
    assert sorted({d.writer for d in test}) == list(range(1, 15))
    assert all(s.ndim == 2 and s.shape[1] == 2 and len(s) > 0 for d in train[:500] for s in d.strokes)
    assert max(len(d.strokes) for d in train) > 1

    hp = recipe.resolve()
    data = recipe.load_data(hp)
    assert (len(data.train) + len(data.val), len(data.test)) == (7494, 3498)
    assert len(data.val) == sum(d.writer in (28, 29, 30) for d in train)      # the last 3 writers, whole
    assert all(s.shape == (hp["points"], 3) for s in data.train.sequences)     # points: augmented per batch
    assert all(s.shape == (hp["points"], 5) for s in data.test.sequences)      # features
    features = np.stack(data.test.sequences)
    assert np.isfinite(features).all() and np.abs(features[:, :, :2]).max() <= 1 + 1e-6


@needs_shared
def test_fixed_version_and_knn_baseline(mirror):
    recipe = PenDigits()
    x, y = read_fixed((SHARED / "pendigits" / "pendigits.tra").read_bytes(), "pendigits.tra")
    assert x.shape == (7494, 16) and np.bincount(y).tolist() == TRAIN_COUNTS
    test_x, test_y = read_fixed((SHARED / "pendigits" / "pendigits.tes").read_bytes(), "pendigits.tes")
    small = knn_baseline(x[:600], y[:600], test_x[:300], test_y[:300])
    assert 1 <= small["knn_k"] <= 5 and small["knn_accuracy"] > 0.85
    assert set(small) >= {f"knn{k}_accuracy" for k in range(1, 6)}
    assert recipe.baseline(None, recipe.resolve())["knn_accuracy"] > 0.97      # UCI: ~97.8 %


# ------------------------------------------------------------------------------------- preprocessing
def test_resample_spreads_points_by_length_and_flags_the_pen_lift():
    points = resample(TWO_STROKES, 12)
    assert points.shape == (12, 3)
    # The stem is twice as long as the bar: 8 points and 4, the bar's first one reached with the pen up.
    assert points[:, 2].tolist() == [0] * 8 + [1] + [0] * 3
    assert np.allclose(points[:8, 0], 0) and np.allclose(points[:8, 1], np.linspace(-1, 1, 8))
    assert np.allclose(points[8:, 0], np.linspace(-0.5, 0.5, 4)) and np.allclose(points[8:, 1], 1)
    features = point_features(points)
    assert features.shape == (12, 5) and features.dtype == np.float32
    assert np.allclose(features[1:8, 2:4], [0, 2 / 7 * 12 / 8])     # equal steps up the stem
    # Neither position nor scale changes the features.
    moved = [3 * s + 100 for s in TWO_STROKES]
    assert np.allclose(point_features(resample(moved, 12)), features)
    assert len(resample(TWO_STROKES * 10, 12)) == 20        # more strokes than points: one point each


def test_unipen_and_json_readers_agree_and_refuse_other_text():
    unipen = b'.SEGMENT DIGIT 7 ? "4"\n.COMMENT 4 3 12\n.PEN_DOWN\n0 0\n0 10\n0 20\n.PEN_UP\n.DT 100\n' \
             b".PEN_DOWN\n-5 20\n5 20\n.PEN_UP\n"
    (digit,) = read_unipen(unipen, "t")
    assert (digit.label, digit.writer, len(digit.strokes)) == ("4", 3, 2)
    points = [[*p, 1] for p in TWO_STROKES[0].tolist()] + [[0, 20, 0]] + [[*p, 1] for p in TWO_STROKES[1].tolist()]
    assert all(np.array_equal(a, b) for a, b in zip(read_points_json(points, "j"), digit.strokes))
    with pytest.raises(UserError, match="line 2"):
        read_unipen(b".PEN_DOWN\n1 two\n.PEN_UP\n", "t")
    with pytest.raises(UserError, match="no pen-down strokes"):
        read_unipen(b".SEGMENT DIGIT 1\n", "t")
    with pytest.raises(UserError, match="point 1"):
        read_points_json([[0, 0, 1], [0, 1]], "j")


# ---------------------------------------------------------------------------------------- end to end
def _first_digit(path):
    """The text of the first .SEGMENT of a UNIPEN file, and its label."""
    text = path.read_text()
    start = text.index(".SEGMENT")
    segment = text[start:text.index(".SEGMENT", start + 1)]
    return segment, re.search(r'"(\d)"', segment).group(1)


@needs_shared
def test_train_evaluate_predict(mirror, tmp_path):
    out = tmp_path / "run"
    trained = run("train", "pendigits", "--out", out, "--seed", 0, "--epochs", 2, "--set", "hidden_size=16",
                  "--set", "points=16", "--set", "batch_size=64")
    assert "resampling 10,992 pen trajectories..." in trained.stderr.splitlines()     # no bar outside a terminal
    metrics = json.loads(run("evaluate", "pendigits", "--checkpoint", out, "--json").stdout)
    # It learned: measured 92.0 / 88.1 / 88.5 % (seeds 0-2) where the majority class is 10.4 % (TEST_COUNTS).
    assert set(metrics) >= {"accuracy", "macro_f1"} and metrics["accuracy"] > 0.75
    assert max(TEST_COUNTS) / sum(TEST_COUNTS) < 0.105
    assert (out / "confusion-matrix.png").read_bytes().startswith(b"\x89PNG")
    table = (out / "per-class.csv").read_text().splitlines()
    assert table[0] == "class,support,precision,recall,f1" and [row.split(",")[:2] for row in table[1:]] == \
        [[str(digit), str(count)] for digit, count in enumerate(TEST_COUNTS)]
    f1 = [float(row.split(",")[4]) for row in table[1:]]
    assert np.mean(f1) == pytest.approx(metrics["macro_f1"], abs=1e-4)    # the table's F1 at 4 decimals

    segment, label = _first_digit(SHARED / "pendigits" / "pendigits-orig.tes")
    (tmp_path / "digit.txt").write_text(segment)
    said = run("predict", "pendigits", "--checkpoint", out, "--input", tmp_path / "digit.txt").output.strip()
    assert re.fullmatch(r"\d \(probability [01]\.\d{3}\)", said), said
    strokes = read_unipen(segment.encode(), "digit")[0].strokes
    points = [point for s in strokes for point in [[*p, 1] for p in s.tolist()] + [[*s[-1].tolist(), 0]]]
    (tmp_path / "digit.json").write_text(json.dumps(points))
    as_json = json.loads(run("predict", "pendigits", "--checkpoint", out, "--input", tmp_path / "digit.json",
                             "--json").stdout)
    assert f"{as_json['label']} (probability {as_json['probability']:.3f})" == said
    assert label in as_json["probabilities"]

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (tmp_path / "bad.json").write_text('[[1, 2]]')
    for bad in ("missing.txt", "empty.txt", "binary.png", "bad.json"):
        result = run("predict", "pendigits", "--checkpoint", out, "--input", tmp_path / bad, code=2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines


def test_info_states_the_anchor():
    text = run("info", "pendigits").output
    assert "accuracy 0.98" in text and "k-NN" in text and "pen-lifted" in text
