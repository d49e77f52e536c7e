"""Each MPI rank's share of the cores (lstmzoo.launcher): read from the launcher's variables, set before NumPy and
Numba start their thread pools, never over a value the user set."""

import os
import subprocess
import sys

import pytest

from lstmzoo import launcher

THREADS = launcher.THREAD_VARIABLES


@pytest.mark.parametrize(("environ", "cores", "threads"), [
    ({}, 8, None),                                                   # no launcher
    ({"PMI_SIZE": "1"}, 8, None),                                    # one rank: a plain run
    ({"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"}, 2, 1),               # MPICH, 2 ranks on a 2-core machine
    ({"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"}, 16, 8),
    ({"OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, 16, 8),   # Open MPI, 4 machines
    ({"SLURM_STEP_NUM_TASKS": "4"}, 16, 4),                          # no local count: all ranks on this machine
    ({"PMI_SIZE": "4", "MPI_LOCALNRANKS": "4"}, 2, 1),               # more ranks than cores: at least 1
])
def test_threads_per_rank(environ, cores, threads):
    assert launcher.threads_per_rank(environ, cores) == threads


def test_unset_thread_variables_get_the_share_and_set_ones_stay():
    environ = {"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2", "NUMBA_NUM_THREADS": "3"}
    assert launcher.share_cores_between_ranks(environ, cores=8) == 4
    assert {name: environ[name] for name in THREADS} == {
        "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "NUMBA_NUM_THREADS": "3"}


def test_a_plain_run_changes_nothing():
    environ = {"PATH": "/bin"}
    assert launcher.share_cores_between_ranks(environ, cores=8) is None
    assert environ == {"PATH": "/bin"}


def test_importing_lstmzoo_sets_the_share_before_numpy_and_numba_start():
    """In a process a launcher started as one of 2 ranks on this machine: Numba's thread count and NumPy's
    OpenBLAS come up at the rank's share (the launcher's variables faked: no MPI is started)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    environ = {k: v for k, v in os.environ.items()
               if k not in THREADS and k not in launcher.SIZE_VARIABLES + launcher.LOCAL_SIZE_VARIABLES}
    environ.update({"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"})
    code = ("import lstmzoo, os, numba, numpy; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], numba.config.NUMBA_NUM_THREADS)")
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    expected = max(1, cores // 2)
    assert out.stdout.split() == [str(expected), str(expected)]
