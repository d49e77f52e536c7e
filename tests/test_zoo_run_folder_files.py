"""Every file a recipe writes into a run folder goes through lstmzoo.checkpoint's atomic helpers: a symbolic link
planted at its name (pointing outside the folder) is replaced, and the file it pointed to is untouched (#13
item 9: matplotlib's savefig and PIL's save follow links)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run

ZOO = Path(__file__).resolve().parents[1] / "zoo"
PNG, GIF = b"\x89PNG", b"GIF89a"
# A file written directly: savefig, PIL's or NumPy's save, open(..., "w"), Path.write_text / write_bytes.
WRITES = re.compile(r"\.savefig\(|\.write_(text|bytes)\(|\bopen\([^)]*['\"][wax]b?['\"]|\.save\((?!buffer)|np\.save\(")


def plant(folder, name, tmp_path):
    """A link ``folder/name`` to a file outside ``folder``; returns that file."""
    outside = tmp_path / f"outside-{name}"
    outside.write_bytes(b"someone else's file")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).symlink_to(outside)
    return outside


def replaced(path, outside, magic):
    assert not path.is_symlink() and path.read_bytes().startswith(magic)
    assert outside.read_bytes() == b"someone else's file"


def test_confusion_matrix_replaces_a_planted_link(tmp_path):
    from lstmzoo.tasks.reports import CONFUSION_MATRIX, draw_confusion_matrix
    run_dir = tmp_path / "run"
    outside = plant(run_dir, CONFUSION_MATRIX, tmp_path)
    assert draw_confusion_matrix(run_dir / CONFUSION_MATRIX, np.eye(3, dtype=int), "abc", "t") == \
        run_dir / CONFUSION_MATRIX
    replaced(run_dir / CONFUSION_MATRIX, outside, PNG)


def test_video_strip_and_animation_replace_planted_links(tmp_path):
    from lstmzoo.zoo.moving_mnist import ANIMATION, STRIP, MovingMNIST
    run_dir = tmp_path / "run"
    outside = {name: plant(run_dir, name, tmp_path) for name in (STRIP, ANIMATION)}
    frames = np.random.default_rng(0).random((10, 64, 64))
    assert MovingMNIST.draw(frames, frames, frames, run_dir, "t") == (run_dir / STRIP, run_dir / ANIMATION)
    replaced(run_dir / STRIP, outside[STRIP], PNG)
    replaced(run_dir / ANIMATION, outside[ANIMATION], GIF)


def test_predict_replaces_a_planted_forecast_link(tmp_path):
    """Through the CLI: `predict` draws forecast.png into the run folder by default."""
    out = tmp_path / "run"
    run("train", "airline-passengers", "--out", out, "--epochs", 1, "--set", "hidden_size=4")
    outside = plant(out, "forecast.png", tmp_path)
    result = json.loads(run("predict", "airline-passengers", "--checkpoint", out, "--horizon", 2, "--json").stdout)
    assert result["plot"] == str(out / "forecast.png")
    replaced(out / "forecast.png", outside, PNG)


def test_no_recipe_writes_a_file_by_itself():
    """The recipes' sources open nothing for writing and call no savefig or image save of their own: the only
    writers are zoo/plots.py's (into memory, then lstmzoo.checkpoint) and lstmzoo.checkpoint's helpers."""
    offenders = [f"{path.name}:{number}: {line.strip()}" for path in sorted(ZOO.glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if WRITES.search(line)]
    assert offenders == []


@pytest.mark.parametrize("line", ['figure.savefig(path, dpi=100)', 'images[0].save(path, save_all=True)',
                                  'with open(path, "w") as handle:', 'path.write_text(text)'])
def test_the_source_check_sees_direct_writes(line):
    assert WRITES.search(line)
