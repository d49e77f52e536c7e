"""What an MPI launcher tells a process through its environment, read without importing NumPy or mpi4py, and the
thread counts each rank starts with.

``mpiexec -n 2 lstmzoo train ...`` on one machine starts two processes, each of which would otherwise start one
OpenBLAS thread and one Numba thread per core: four busy threads on two cores, which made two ranks slower than one
(benchmarks/RESULTS.md, "OpenBLAS's threads decide it"). ``share_cores_between_ranks`` (called when ``lstmzoo`` is
imported, before NumPy loads OpenBLAS) gives each rank its share of the machine's cores instead, for every thread
pool whose variable the user has not set.
"""

import os

# The variables an MPI launcher sets to the number of ranks: MPICH/Intel MPI (PMI), Open MPI, MVAPICH, Slurm's srun
# (the step's tasks; SLURM_NTASKS alone is also set inside a batch script that was not started by srun).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
# ... and to the number of ranks on this machine: MPICH's Hydra, Open MPI, MVAPICH.
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
# The thread pools a rank's work runs on: OpenBLAS (NumPy's and SciPy's), OpenMP, MKL, Numba.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _count(names, environ):
    for name in names:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def launched_size(environ=os.environ):
    """The number of ranks the launcher started, from its environment variables; 1 without a launcher."""
    size = _count(SIZE_VARIABLES, environ)
    return size if size is not None and size > 1 else 1


def threads_per_rank(environ=os.environ, cores=None):
    """Each rank's share of this machine's cores (at least 1): the cores this process may run on, divided by the
    ranks on this machine (the launcher's local count; all ranks when it gives none, which errs towards fewer
    threads). None when the process is not one of several ranks."""
    size = launched_size(environ)
    if size == 1:
        return None
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = _count(LOCAL_SIZE_VARIABLES, environ) or size
    return max(1, cores // local)


def share_cores_between_ranks(environ=os.environ, cores=None):
    """Under an MPI launcher with several ranks, set each thread pool's variable the user left unset to
    ``threads_per_rank``; returns the count set, or None (not under MPI). Must run before NumPy and Numba are
    imported to reach OpenBLAS and Numba."""
    threads = threads_per_rank(environ, cores)
    if threads is not None:
        for name in THREAD_VARIABLES:
            environ.setdefault(name, str(threads))
    return threads


def limit_threads(threads):
    """Run this process's work on at most ``threads`` threads (``--threads``): Numba's pool, which runs the kernels'
    time loops, and every BLAS and OpenMP pool NumPy and SciPy have loaded (OpenBLAS's input projections and
    Linear layers), through threadpoolctl. Without it each lstmzoo process starts a thread per core in each pool,
    so several trainings or sweep workers side by side on one machine oversubscribe its cores (three trainings
    with one Numba thread each ran at a load average of 5.6 on 2 cores until OpenBLAS was limited too).
    ``UserError`` above the size of Numba's pool (``NUMBA_NUM_THREADS``, by default the cores), which is fixed
    when Numba starts."""
    import numba
    import scipy.linalg  # noqa: F401  loads SciPy's OpenBLAS, which the kernels call, so that it is limited too
    from threadpoolctl import threadpool_limits

    from .errors import UserError
    ceiling = numba.config.NUMBA_NUM_THREADS
    if threads > ceiling:
        raise UserError(f"--threads {threads} is more than the {ceiling} threads Numba can run here "
                        f"(NUMBA_NUM_THREADS or the cores); give at most {ceiling}")
    numba.set_num_threads(threads)
    threadpool_limits(limits=threads)
