"""The tests that need the dataset copies run against any mirror a user names with LSTMZOO_MIRROR (issue #13,
item 5): a folder of copies brings them back; a folder without them skips them, saying where it looked."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import SHARED, needs_shared

TESTS = Path(__file__).resolve().parent
NEEDS_COPIES = "tests/test_zoo_pendigits.py::test_fixed_version_and_knn_baseline"


def pytest_with_mirror(mirror):
    env = {**os.environ, "LSTMZOO_MIRROR": str(mirror), "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", NEEDS_COPIES],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600)


@needs_shared
def test_a_mirror_folder_brings_the_dataset_tests_back(tmp_path):
    mirror = tmp_path / "my-mirror"
    shutil.copytree(SHARED / "pendigits", mirror / "pendigits")
    done = pytest_with_mirror(mirror)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_a_mirror_without_the_copies_skips_and_says_where_it_looked(tmp_path):
    done = pytest_with_mirror(tmp_path / "empty-mirror")
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout + done.stderr
    assert str(tmp_path / "empty-mirror") in done.stdout and "set LSTMZOO_MIRROR" in done.stdout
