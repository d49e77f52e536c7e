"""Without the `plot` extra (no matplotlib) the recipes train, evaluate and predict: the pictures are skipped with
one line on stderr saying how to get them, and nothing else changes (#13 item 4)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import needs_shared

PLOT_EXTRA = "pip install 'lstmzoo[plot]'"


@pytest.fixture(scope="module")
def without_matplotlib(tmp_path_factory):
    """A folder for PYTHONPATH in which a sitecustomize puts None in sys.modules for matplotlib, so that in a
    subprocess ``import matplotlib`` fails as on a plain ``pip install lstmzoo``."""
    shim = tmp_path_factory.mktemp("no-matplotlib")
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    check = subprocess.run([sys.executable, "-c", "import matplotlib"], env=_environment(shim), capture_output=True,
                           text=True)
    assert check.returncode != 0 and "ModuleNotFoundError" in check.stderr
    return shim


def _environment(shim):
    env = dict(os.environ)      # read now: the mirror fixture sets LSTMZOO_MIRROR for the module
    env["PYTHONPATH"] = os.pathsep.join([str(shim), *filter(None, [env.get("PYTHONPATH")])])
    return env


def lstmzoo(shim, *args):
    """``python -m lstmzoo ARGS`` with ``shim`` first on PYTHONPATH; asserts exit 0 and no traceback."""
    result = subprocess.run([sys.executable, "-m", "lstmzoo", *map(str, args)], env=_environment(shim),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, (result.stdout, result.stderr)
    return result


def notes(stderr, name):
    return [line for line in stderr.splitlines() if name in line and PLOT_EXTRA in line]


def test_forecasting_trains_and_predicts_without_matplotlib(without_matplotlib, tmp_path):
    out = tmp_path / "run"
    trained = lstmzoo(without_matplotlib, "train", "airline-passengers", "--out", out, "--epochs", 2,
                      "--set", "hidden_size=4")
    assert "test metrics of the best model:" in trained.stdout and "rmse" in trained.stdout
    assert len(notes(trained.stderr, "learning-curve.png")) == 1
    assert (out / "weights-best.safetensors").is_file() and not (out / "learning-curve.png").exists()

    predicted = lstmzoo(without_matplotlib, "predict", "airline-passengers", "--checkpoint", out, "--horizon", 3,
                        "--json")
    result = json.loads(predicted.stdout)
    assert len(result["forecast"]) == 3 and result["plot"] is None
    assert len(notes(predicted.stderr, "forecast.png")) == 1 and not (out / "forecast.png").exists()
    printed = lstmzoo(without_matplotlib, "predict", "airline-passengers", "--checkpoint", out, "--horizon", 3)
    assert "forecast after 144 past values:" in printed.stdout and "plot:" not in printed.stdout


@needs_shared
def test_classification_trains_and_evaluates_without_matplotlib(without_matplotlib, mirror, tmp_path):
    out = tmp_path / "run"
    trained = lstmzoo(without_matplotlib, "train", "pendigits", "--out", out, "--epochs", 1, "--set", "hidden_size=8",
                      "--set", "points=16", "--set", "batch_size=128")
    assert "accuracy" in trained.stdout and "macro_f1" in trained.stdout
    assert len(notes(trained.stderr, "confusion-matrix.png")) == 1
    assert not (out / "confusion-matrix.png").exists()
    evaluated = lstmzoo(without_matplotlib, "evaluate", "pendigits", "--checkpoint", out, "--json")
    assert set(json.loads(evaluated.stdout)) >= {"accuracy", "macro_f1"}
    assert len(notes(evaluated.stderr, "confusion-matrix.png")) == 1


def hide(monkeypatch, package):
    """Make ``import package`` (and of any of its modules, even those imported already) fail in this process."""
    for name in [name for name in sys.modules if name == package or name.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


def test_every_picture_is_skipped_with_one_line(monkeypatch, capsys, tmp_path):
    """The video strip and the confusion matrix (matplotlib) and the animation (Pillow): each is skipped with
    one line when its library is missing, and the GIF still comes when only matplotlib is."""
    from lstmzoo.zoo.moving_mnist import MovingMNIST

    from lstmzoo.tasks.reports import draw_confusion_matrix
    hide(monkeypatch, "matplotlib")
    frames = np.random.default_rng(0).random((10, 64, 64))
    strip, animation = MovingMNIST.draw(frames, None, frames, tmp_path, "title")
    assert strip is None and animation == tmp_path / "prediction.gif" and animation.read_bytes()[:6] == b"GIF89a"
    assert draw_confusion_matrix(tmp_path / "confusion-matrix.png", np.eye(3, dtype=int), "abc", "t") is None
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if PLOT_EXTRA in line] == lines and len(lines) == 2
    assert "prediction.png" in lines[0] and "confusion-matrix.png" in lines[1]
    hide(monkeypatch, "PIL")
    assert MovingMNIST.draw(frames, None, frames, tmp_path / "again", "title") == (None, None)
    assert len(capsys.readouterr().err.splitlines()) == 2 and not (tmp_path / "again").exists()
