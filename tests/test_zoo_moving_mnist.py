"""Moving MNIST: the bouncing-digits generator, the MNIST reader, the fixed splits, the FC-LSTM predictor's
gradient, and train -> evaluate -> predict of both recipes through the CLI on short runs."""

import gzip
import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import needs_shared, numeric_gradient, run
from lstmzoo.zoo.moving_mnist import (
    FRAMES,
    TEST_VIDEOS,
    TRAIN_DIGITS,
    VAL_VIDEOS,
    MovingMNIST,
    MovingMNISTDigits,
    binary_cross_entropy,
    bouncing_digits,
    read_idx,
    to_gif,
)

from lstmzoo.errors import UserError

SQUARE = np.full((1, 28, 28), 255, dtype=np.uint8)


# ------------------------------------------------------------------------------------------- generator
def test_generator_shapes_range_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    videos, digits = bouncing_digits(images, np.arange(5) + 10, 7, rng)
    assert videos.shape == (7, FRAMES, 64, 64) and videos.dtype == np.uint8
    assert digits.shape == (7, 2) and set(digits.ravel()) <= set(range(10, 15))
    # Combined by maximum: no pixel is brighter than the brightest digit pixel, and every frame shows something.
    assert videos.max() <= images.max() and (videos.reshape(7, FRAMES, -1).max(axis=2) > 0).all()


def test_digits_stay_whole_inside_the_frame_and_bounce():
    videos, _ = bouncing_digits(SQUARE, [0], 200, np.random.default_rng(1), digits=1)
    lit = videos > 0
    assert (lit.sum(axis=(2, 3)) == 28 * 28).all()          # never cut off by a border
    rows, columns = lit.any(axis=3), lit.any(axis=2)
    top, left = rows.argmax(axis=2), columns.argmax(axis=2)
    assert top.min() >= 0 and top.max() <= 36 and left.max() <= 36
    assert (rows.sum(axis=2) == 28).all() and (columns.sum(axis=2) == 28).all()    # one solid square
    # Constant speed: 0.1 of the free 36 pixels per frame (3.6, truncated to whole pixels).
    steps = np.hypot(np.diff(top, axis=1), np.diff(left, axis=1))
    assert steps.max() <= np.hypot(4.6, 4.6) and np.median(steps) >= 2.5
    # Some squares reach a border and come back: a coordinate that rises, then falls.
    turns = (np.diff(np.sign(np.diff(left, axis=1)), axis=1) < 0).any(axis=1)
    assert turns.any()


def test_generator_is_determined_by_its_generator():
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    first = bouncing_digits(images, np.arange(20), 6, np.random.default_rng(5))
    again = bouncing_digits(images, np.arange(20), 6, np.random.default_rng(5))
    other = bouncing_digits(images, np.arange(20), 6, np.random.default_rng(6))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def _idx(magic, array):
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_idx_reader():
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    assert np.array_equal(read_idx(_idx(2051, images), "i", 2051, (28, 28)), images)
    with pytest.raises(ValueError, match="magic number 2051"):
        read_idx(_idx(2049, np.arange(3)), "l", 2051, (28, 28))
    with pytest.raises(ValueError, match="not a gzip"):
        read_idx(b"plain", "x", 2049, ())
    with pytest.raises(ValueError, match="has shape"):
        read_idx(_idx(2051, np.zeros((2, 27, 28))), "i", 2051, (28, 28))


def test_recipe_cross_entropy_is_the_core_loss():
    from lstmzoo.nn import BCEWithLogitsLoss
    rng = np.random.default_rng(4)
    logits, target = rng.normal(0, 20, (3, 50)).astype(np.float32), rng.random((3, 50)).astype(np.float32)
    assert binary_cross_entropy(logits, target).sum() == pytest.approx(
        BCEWithLogitsLoss("sum")(logits, target), rel=1e-6)


def test_named_digits_handles_a_repeated_digit():
    probabilities = np.full(10, 0.01)
    probabilities[[3, 7]] = 0.9, 0.8
    assert MovingMNISTDigits.named(probabilities) == [3, 7]
    probabilities[7] = 0.3          # the second likeliest is unlikely: the video shows one digit twice
    assert MovingMNISTDigits.named(probabilities) == [3]
    target = MovingMNISTDigits().multi_hot(np.array([[3, 7], [4, 4]]))
    assert target.sum(axis=1).tolist() == [2, 1] and target[1, 4] == 1


# ------------------------------------------------------------------------------------------- the models
@pytest.mark.parametrize("kind", ["predictor", "displacement", "classifier"])
def test_video_models_match_finite_differences(kind):
    from lstmzoo.zoo.video_models import DisplacementPredictor, FuturePredictor, VideoClassifier

    from lstmzoo.nn import BCEWithLogitsLoss
    rng = np.random.default_rng(3)
    if kind == "predictor":     # frames [T, B, pixels]
        model, x, target = FuturePredictor(6, 5, 3, future=3, dtype="float64"), rng.random((4, 2, 6)), \
            rng.random((3, 2, 6))
    elif kind == "displacement":     # 4x4 frames, 2 layers moved by 3x3 kernels
        model, x, target = DisplacementPredictor(4, 5, 3, future=3, layers=2, kernel_size=3, eps=0.05,
                                                 dtype="float64"), rng.random((4, 2, 16)), rng.random((3, 2, 16))
    else:                       # frames [T, B, H, W, C]: a 5x5 frame, convolutions down to 2x2 positions
        model, x, target = VideoClassifier([(2, 1, 3), (2, 2, 5)], 3, 4, in_channels=2, dtype="float64"), \
            rng.random((4, 2, 5, 5, 2)), rng.random((2, 4))
    for value in model.parameters().values():
        value[...] = rng.uniform(-0.8, 0.8, value.shape)    # larger than the default, so every path matters

    def loss():
        return BCEWithLogitsLoss("sum")(model(x), target)

    criterion = BCEWithLogitsLoss("sum")
    criterion(model(x), target)
    dx = model.backward(criterion.backward())
    np.testing.assert_allclose(dx, numeric_gradient(loss, x, eps=1e-5), rtol=1e-5, atol=1e-8)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(model.grads()[name], numeric_gradient(loss, value, eps=1e-5), rtol=1e-5, atol=1e-8,
                                   err_msg=name)


# ------------------------------------------------------------------------------------------- the splits
@needs_shared
def test_fixed_splits_use_their_own_digits(mirror, monkeypatch):
    recipe = MovingMNIST()
    images, labels = recipe.load_digits()
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,) and set(labels) == set(range(10))
    data = recipe.load_data(recipe.resolve())
    assert data.val.frames.shape == (VAL_VIDEOS, FRAMES, 64, 64) and data.val.frames.dtype == np.uint8
    assert data.test.frames.shape == (TEST_VIDEOS, FRAMES, 64, 64) and data.test.digits.shape == (TEST_VIDEOS, 2)
    assert len(data.images) == TRAIN_DIGITS and 0 < data.test.frames.mean() / 255 < 0.2
    again = recipe.load_data(recipe.resolve({"seed": 7}))       # the training seed does not move them
    assert np.array_equal(again.test.frames, data.test.frames) and np.array_equal(again.val.frames, data.val.frames)

    # Blank out the training digits: the test videos stay the same, the validation videos go dark.
    blanked = images.copy()
    blanked[:TRAIN_DIGITS] = 0
    monkeypatch.setattr(MovingMNIST, "load_digits", lambda self: (blanked, labels))
    without = recipe.load_data(recipe.resolve())
    assert np.array_equal(without.test.frames, data.test.frames) and not without.val.frames.any()
    assert np.array_equal(without.test.digits, data.test.digits)
    # The test videos record which test digits they show (the segmented baseline classifies those images).
    assert np.array_equal(data.test_images, images[TRAIN_DIGITS:])
    assert np.array_equal(labels[TRAIN_DIGITS:][data.test.sources], data.test.digits)


def test_segmented_knn_baseline_names_each_videos_digits():
    """On digits drawn as one bright band per class the oracle-segmented k-NN names every video right; make
    one test image look like another class and exactly the videos showing it go wrong."""
    from lstmzoo.zoo.moving_mnist import MovingMNISTData, Videos
    rng = np.random.default_rng(3)

    def drawn(classes):
        images = rng.integers(0, 40, (len(classes), 28, 28), dtype=np.uint8)
        for image, digit in zip(images, classes):
            image[2 * digit:2 * digit + 3] = 255
        return images

    train_labels, test_labels = np.arange(60) % 10, np.arange(20) % 10
    test_images = drawn(test_labels)
    sources = rng.integers(0, 20, (50, 2))
    test = Videos(np.zeros((50, FRAMES, 64, 64), np.uint8), test_labels[sources], sources)
    data = MovingMNISTData(drawn(train_labels), train_labels, test, test, test_images)
    recipe = MovingMNISTDigits()
    scores = recipe.baseline(data, recipe.resolve())
    assert scores["segmented_knn_both_right"] == 1.0 and scores["segmented_knn_k"] in range(1, 6)
    test_images[7] = drawn([2])[0]                       # a 7 that looks like a 2
    showing = (sources == 7).any(axis=1)
    assert recipe.baseline(data, recipe.resolve())["segmented_knn_both_right"] == pytest.approx(1 - showing.mean())
    assert showing.any()


# ---------------------------------------------------------------------------------------- end to end
@pytest.fixture
def one_blas_thread():
    """Matrix products on one thread: the models' products are small, and on a busy 2-core machine OpenBLAS's
    second thread waits for the first (the digits run took 116 s of CPU for 20 on one thread, and 290 s against
    50 s of wall time, under a load of 8). The results are the same to the last digit. Both OpenBLAS copies are
    loaded first, numpy's (the layers) and scipy's (the LSTM kernels): the limits apply to those loaded."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:         # scikit-learn's dependency, in the test extra from Python 3.11
        yield
        return
    import scipy.linalg  # noqa: F401
    with threadpool_limits(1, user_api="blas"):
        yield


def _video_files(tmp_path, frames):
    """A 20-frame test-like video as .npy (uint8) and as a GIF of its first 10 frames."""
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    video = bouncing_digits(images, np.arange(4), 1, np.random.default_rng(1))[0][0]
    np.save(tmp_path / "video.npy", video[:frames])
    to_gif(video[:10] / 255.0, tmp_path / "video.gif")
    return tmp_path / "video.npy", tmp_path / "video.gif"


def _bad_inputs(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "flat.npy", np.zeros((10, 32, 32), dtype=np.uint8))
    np.save(tmp_path / "loud.npy", np.full((10, 64, 64), 3.0))
    (tmp_path / "text.gif").write_text("GIF89a but not really")
    return ["missing.npy", "empty.npy", "flat.npy", "loud.npy", "text.gif"]


def _refuses(recipe, out, tmp_path, names):
    for bad in names:
        result = run("predict", recipe, "--checkpoint", out, "--input", tmp_path / bad, code=2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, lines


@needs_shared
def test_digits_train_evaluate_predict(mirror, tmp_path, one_blas_thread):
    out = tmp_path / "run"
    # Small and quick: one 7x7 convolution (digit-sized templates) over frames 1 and 11 pooled to 16x16, 6 epochs of
    # 3,000 new videos in small batches: about 20 s of one core with evaluation. The default network's deeper
    # convolutions stay at the prior (loss 0.49) for the first 6,000 videos; this one leaves it within 3,000.
    settings = {"train_videos": 3000, "val_videos": 200, "pool": 4, "conv": "", "patch": 7, "stride": 1,
                "embed_size": 128, "hidden_size": 64, "frame_step": 10, "lr": 0.005, "batch_size": 8}
    run("train", "moving-mnist-digits", "--out", out, "--seed", 0, "--epochs", 6,
        *[arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")])
    metrics = json.loads(run("evaluate", "moving-mnist-digits", "--checkpoint", out, "--json").stdout)
    assert set(metrics) == {"both_right", "loss", "errors"}
    assert metrics["errors"] == round(TEST_VIDEOS * (1 - metrics["both_right"]))
    # It learned to name both digits. Chance: the best one answer for every test video, the digit set the most test
    # videos show ({4, 7}: 87 of 3,000, 2.9 %); the same model untrained names both on 1.4-1.6 % (seeds 0-2), and
    # 1 epoch of 64 videos on 1.2 %. Measured both right after training: 29.9 / 31.7 / 36.0 / 34.7 / 32.5 % (seeds 0-4),
    # so the bar, 3x chance (8.7 %), leaves each seed a margin of more than 3x.
    recipe = MovingMNISTDigits()
    shown = Counter(tuple(sorted(set(pair))) for pair in recipe.load_data(recipe.resolve(settings)).test.digits.tolist())
    chance = max(shown.values()) / TEST_VIDEOS
    assert metrics["both_right"] > 3 * chance, (metrics, chance)

    npy, gif = _video_files(tmp_path, 20)
    for video in (npy, gif):
        result = json.loads(run("predict", "moving-mnist-digits", "--checkpoint", out, "--input", video,
                                "--json").stdout)
        assert 1 <= len(result["digits"]) <= 2 and set(result["digits"]) <= set(range(10))
        assert result["frames"] == (20 if video == npy else 10) and len(result["probabilities"]) == 10
    said = run("predict", "moving-mnist-digits", "--checkpoint", out, "--input", npy).output
    assert said.startswith("digits ")
    _refuses("moving-mnist-digits", out, tmp_path, _bad_inputs(tmp_path))


@needs_shared
def test_frames_train_evaluate_predict(mirror, tmp_path, one_blas_thread):
    out = tmp_path / "run"
    settings = {"train_videos": 480, "val_videos": 100, "embed_size": 32, "hidden_size": 32, "lr": 0.01}
    run("train", "moving-mnist", "--out", out, "--seed", 0, "--epochs", 2,
        *[arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")])
    evaluated = run("evaluate", "moving-mnist", "--checkpoint", out, "--json")
    assert "predicting 3,000 test videos' future frames..." in evaluated.stderr.splitlines()
    metrics = json.loads(evaluated.stdout)
    assert set(metrics) == {"bce_per_video"}
    assert (out / "prediction.png").read_bytes().startswith(b"\x89PNG")
    # It learned to move what it saw: 10 % below predicting every pixel as the mean pixel. Measured on the first
    # 300 test videos: 6,473 / 6,461 / 6,418 (seeds 0-2) against the mean pixel's 8,066, where the same model
    # untrained (which already moves the last frame a little) scores 7,761.
    recipe = MovingMNIST()
    hp = recipe.resolve(settings)
    mean_pixel = recipe.baseline(recipe.load_data(hp), hp)["mean_pixel_bce_per_video"]
    assert metrics["bce_per_video"] < 0.9 * mean_pixel, (metrics, mean_pixel)

    npy, gif = _video_files(tmp_path, 20)
    result = json.loads(run("predict", "moving-mnist", "--checkpoint", out, "--input", npy, "--json").stdout)
    assert result["input_frames"] == 10 and result["bce_per_video"] > 0
    from PIL import Image
    with Image.open(result["animation"]) as animation:
        assert animation.n_frames == 20 and animation.size == (64, 64)
    assert Path(result["strip"]).read_bytes().startswith(b"\x89PNG")
    result = json.loads(run("predict", "moving-mnist", "--checkpoint", out, "--input", gif, "--json").stdout)
    assert result["input_frames"] == 10 and "bce_per_video" not in result     # no truth to compare with
    np.save(tmp_path / "fifteen.npy", np.zeros((15, 64, 64), dtype=np.uint8))
    _refuses("moving-mnist", out, tmp_path, ["fifteen.npy", "missing.npy"])     # read_video: tested above


def test_digits_layers_and_their_errors():
    recipe = MovingMNISTDigits()
    # conv's convolutions, then the last one from patch, stride and embed_size (here on a 32x32 frame).
    hp = recipe.resolve({"conv": "4/2/16, 3/1/32", "patch": 3, "stride": 2, "embed_size": 40})
    assert recipe.layers(hp) == [(4, 2, 16), (3, 1, 32), (3, 2, 40)]
    assert recipe.layers(recipe.resolve({"conv": "", "patch": 14, "stride": 3})) == [(14, 3, 96)]
    frames = np.random.default_rng(0).integers(0, 256, (3, FRAMES, 64, 64), dtype=np.uint8)
    features = recipe.features(frames, recipe.resolve({"pool": 4, "frame_step": 3}))
    assert features.shape == (7, 3, 16, 16, 1) and features.dtype == np.float32
    np.testing.assert_allclose(features[1, 2, 0, 0, 0], frames[2, 3, :4, :4].mean() / 255, rtol=1e-6)
    for bad, message in [({"conv": "4/2"}, "triples"), ({"conv": "4/x/2"}, "triples"), ({"conv": "0/1/3"}, "triples"),
                         ({"patch": 9}, "do not fit"), ({"conv": "20/1/4,20/1/4"}, "do not fit"),
                         ({"pool": 3}, "pool must divide")]:
        with pytest.raises(UserError, match=message):
            recipe.layers(recipe.resolve(bad))
    for bad, message in [({"stride": 0}, "'stride' must be between 1 and 64"),
                         ({"frame_step": 0}, "'frame_step' must be between 1 and 20"),
                         ({"pool": 65}, "'pool' must be between 1 and 64")]:
        with pytest.raises(UserError, match=message):
            recipe.resolve(bad)


def test_info_states_the_anchor():
    assert "4832.49" in run("info", "moving-mnist").output
    assert "both_right 0.95" in run("info", "moving-mnist-digits").output
