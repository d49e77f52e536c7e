import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Numba must see this before it is first imported: the CUDA kernels' tests then run on the CPU simulator.
# On a machine with a GPU, run the suite with NUMBA_ENABLE_CUDASIM=0 to test the real device.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# The CPU kernels' recycled arrays (kernels/memory.py) come filled with NaN: a kernel that reads what it did not write
# fails the tests rather than reading a previous call's values (or a fresh page's zeros) by chance.
os.environ.setdefault("LSTMZOO_POISON_MEMORY", "1")


# ------------------------------------------------------------------------ recipe plugins (registry, CLI tests)
EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "lstmzoo-example-plugin"


def _on_path(directory):
    """Put ``directory`` on sys.path so its modules and *.dist-info entry points are found; undo afterwards."""
    from lstmzoo.registry import registry
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    registry.cache_clear()
    yield directory
    sys.path.remove(str(directory))
    plugins = ("lstmzoo_example_plugin", "broken_plugin", "misbehaving")
    for name in [m for m in sys.modules if m.startswith(plugins)]:
        del sys.modules[name]
    registry.cache_clear()


@pytest.fixture(scope="session")
def example_plugin_dir(tmp_path_factory):
    """The example plugin pip-installed (as a user would, through its pyproject) into a private folder."""
    target = tmp_path_factory.mktemp("example-plugin")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--root-user-action", "ignore", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(EXAMPLE_PLUGIN)], check=True)
    return target


@pytest.fixture
def example_plugin(example_plugin_dir):
    """The example plugin visible to this process: its recipe ``sine-wave`` is registered."""
    yield from _on_path(example_plugin_dir)


@pytest.fixture
def broken_plugins(tmp_path):
    """Two installed-looking distributions that break: one fails to import, one breaks the recipe contract."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [lstmzoo.recipes]
        needs-librosa = broken_plugin.audio:Recipe
        cooking = broken_plugin.contract:Cooking
        """))
    package = tmp_path / "broken_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "audio.py").write_text("raise ImportError('No module named librosa')\n")
    (package / "contract.py").write_text(textwrap.dedent("""\
        from lstmzoo.recipe import Recipe

        class Cooking(Recipe):
            name = "cooking"
            application = "cooking"
            summary = "not a sequence task"
        """))
    yield from _on_path(tmp_path)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The real download path for a whole module: LSTMZOO_MIRROR at the dataset copies (../shared/datasets, or
    the user's own LSTMZOO_MIRROR, a folder or an http(s) URL) and a fresh cache, so pooch copies each file from
    the mirror and checks its sha256. Skips where there are no copies."""
    from helpers import ABSENT, MIRROR_URL, SHARED
    if not SHARED.is_dir() and not MIRROR_URL:
        pytest.skip(ABSENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LSTMZOO_MIRROR", MIRROR_URL or str(SHARED))
        patch.setenv("LSTMZOO_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
