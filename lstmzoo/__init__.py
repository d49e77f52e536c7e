"""lstmzoo: fused LSTM/GRU/RNN kernels, a small training framework and a model zoo."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# Under mpiexec with several ranks on one machine, each rank gets its share of the cores for OpenBLAS and Numba
# (unless the user set their variables): before anything imports NumPy. See lstmzoo.launcher.
from .launcher import share_cores_between_ranks as _share_cores_between_ranks

_share_cores_between_ranks()

# In the source tree the subpackages lstmzoo.kernels and lstmzoo.zoo are the folders kernels/ and zoo/ beside
# this one (setup.cfg's package_dir maps them when installing). Python started in the clone's root imports
# this folder rather than the installed package, so look for them beside it too; an installed copy has them
# inside and is left alone.
_source_root = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "kernels").is_dir() and (_source_root / "kernels" / "__init__.py").is_file():
    __path__.append(str(_source_root))
