"""``--threads N``: the kernels' Numba pool and NumPy's and SciPy's BLAS limited to N threads (lstmzoo.launcher
.limit_threads), so that several runs side by side do not oversubscribe the cores. Each check runs in a fresh
process: the limits are process-wide and would leak into other tests."""

import json
import os
import subprocess
import sys

import pytest

REPORT = """
import json, sys
import numba, threadpoolctl
from lstmzoo.launcher import limit_threads
import scipy.linalg
def counts():
    return [numba.get_num_threads(),
            sorted({pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"})]
before = counts()
limit_threads(int(sys.argv[1]))
print(json.dumps({"before": before, "after": counts()}))
"""


def _environment(threads=2):
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env["NUMBA_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def test_limit_threads_limits_numba_and_every_blas():
    done = subprocess.run([sys.executable, "-c", REPORT, "1"], env=_environment(2), capture_output=True, text=True,
                          check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"][0] == 2 and report["before"][1] == [2]     # the check below can fail
    assert report["after"] == [1, [1]]


def test_more_threads_than_numba_has_is_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lstmzoo", "train", "airline-passengers", "--threads", "3",
                           "--out", str(tmp_path / "run")], env=_environment(2), capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: --threads 3 is more than the 2 threads Numba can run here (NUMBA_NUM_THREADS or the cores); "
        "give at most 2"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "generate", "sweep"])
def test_the_commands_that_compute_take_threads(command):
    from click.testing import CliRunner

    from lstmzoo.cli import main
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--threads" in result.output


def test_a_training_on_one_thread_trains(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "lstmzoo", "train", "airline-passengers", "--threads", "1",
                           "--epochs", "3", "--out", str(run)], env=_environment(2), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"]
