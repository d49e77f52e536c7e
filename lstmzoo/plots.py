"""The pictures tasks and recipes leave in a run folder (confusion matrix, forecast, video strips, animations).

Every picture goes through ``draw_figure`` (a matplotlib figure, PNG) or ``write_animation`` (an animated GIF):
both are written with ``lstmzoo.checkpoint``'s atomic helpers (a temporary file, then a rename, which replaces a
symbolic link planted at the name instead of writing through it), and both are optional: without the ``plot``
extra (matplotlib, which brings Pillow) the picture is skipped with one line on stderr saying how to get it, and
the recipe's numbers are unaffected. matplotlib and Pillow are imported here only, when a picture is drawn.
"""

import io
import sys
from pathlib import Path

PLOT_EXTRA = "pip install 'lstmzoo[plot]'"


def _not_drawn(path, library):
    print(f"note: {library} is not installed, so {path} was not drawn ({PLOT_EXTRA}).", file=sys.stderr)


def draw_figure(path, draw, *, figsize, dpi=100):
    """Call ``draw(figure)`` on a new matplotlib ``Figure`` (off-screen Agg canvas, constrained layout,
    ``figsize`` inches at ``dpi``) and write it as a PNG at ``path``, atomically. Returns ``path``, or None
    when matplotlib is not installed (then nothing is drawn and one line on stderr says so)."""
    try:
        # The object API with the Agg canvas draws off-screen and leaves pyplot's global backend alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        _not_drawn(path, "matplotlib")
        return None
    from lstmzoo.checkpoint import save_figure
    path = Path(path)
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path, dpi=dpi)
    return path


def write_animation(path, frames, milliseconds=150):
    """``frames`` (``[T, H, W]`` in [0, 1]) as a looping animated GIF at ``path``, atomically. Returns ``path``,
    or None when Pillow is not installed (then one line on stderr says so)."""
    try:
        from PIL import Image
    except ImportError:
        _not_drawn(path, "Pillow")
        return None
    import numpy as np

    from lstmzoo.checkpoint import atomic_write_bytes
    path = Path(path)
    images = [Image.fromarray(np.round(np.asarray(frame) * 255).astype(np.uint8), mode="L") for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=milliseconds, loop=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
