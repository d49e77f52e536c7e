"""Python started in the clone's root imports the clone's lstmzoo/ folder (a newcomer stands there after
``pip install .``): its subpackages kernels/ and zoo/, which live beside it, must still import, and the CLI must
still find the recipes."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Drop the editable install's finders so the interpreter sees only what a plain `pip install .` user sees from
# the clone's root: the folder lstmzoo/ on sys.path[0] (the installed dist's metadata, with the recipes' entry
# points, stays on the path).
WITHOUT_EDITABLE = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
                    "if 'editable' not in str(getattr(f, '__module__', '') or type(f).__module__)]; ")


def python(code):
    return subprocess.run([sys.executable, "-c", WITHOUT_EDITABLE + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_readme_example_imports_from_the_clone_root():
    done = python("import lstmzoo, lstmzoo.kernels, lstmzoo.zoo.airline; from lstmzoo import kernels; "
                  "from lstmzoo.nn import LSTM; print(lstmzoo.__file__); print(kernels.__file__)")
    assert done.returncode == 0, done.stderr
    package, kernels = (Path(line) for line in done.stdout.split())
    assert package.parent == ROOT / "lstmzoo" and kernels.parent == ROOT / "kernels"


def test_the_cli_finds_every_recipe_from_the_clone_root():
    done = python("import sys; sys.argv = ['lstmzoo', 'list']; import runpy; "
                  "runpy.run_module('lstmzoo', run_name='__main__')")
    assert "skipped plugin" not in done.stderr, done.stderr
    assert "airline-passengers" in done.stdout and "tinyshakespeare" in done.stdout
