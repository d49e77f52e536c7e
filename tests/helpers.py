"""What several test modules share: where the dataset copies are, and running the CLI in-process."""

import importlib.util
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

# The dataset copies: ../shared/datasets beside the checkout (CI always has it), or on a user's machine any
# mirror named by LSTMZOO_MIRROR (a folder laid out as <dataset>/<file>, like ../shared/datasets; an http(s)
# mirror serves the tests that download through the `mirror` fixture).
_MIRROR = os.environ.get("LSTMZOO_MIRROR", "").strip()
MIRROR_URL = _MIRROR if _MIRROR.startswith(("http://", "https://")) else None
SHARED = (Path(_MIRROR).expanduser().resolve() if _MIRROR and not MIRROR_URL
          else Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
ABSENT = (f"the dataset copies are absent here ({SHARED}): set LSTMZOO_MIRROR to a folder holding them "
          "(laid out as <dataset>/<file>, like ../shared/datasets, which CI always has)")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=ABSENT)
needs_librosa = pytest.mark.skipif(importlib.util.find_spec("librosa") is None,
                                   reason="librosa is not installed (pip install 'lstmzoo[audio]')")


def run(*args, code=0):
    """``lstmzoo ARGS`` through click's runner; asserts the exit code and returns the result."""
    from lstmzoo.cli import main
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def numeric_gradient(loss, array, eps=1e-6):
    """Central differences of the scalar ``loss()`` with respect to ``array``, perturbed in place (float64)."""
    import numpy as np
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def write_wav(path, samples, rate, channels=1):
    """A 16-bit PCM WAV of ``samples`` (floats in [-1, 1]) written with the standard library."""
    import wave

    import numpy as np
    pcm = np.clip(np.asarray(samples) * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def count_calls(monkeypatch, module, name):
    """A list that gathers the arguments of every call of ``module.name``, which still runs."""
    calls = []
    real = getattr(module, name)

    def counted(*args):
        calls.append(args)
        return real(*args)
    monkeypatch.setattr(module, name, counted)
    return calls
