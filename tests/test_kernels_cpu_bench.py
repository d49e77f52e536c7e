"""benchmarks/kernels_cpu.py's shape selection and its --cell option (lstmzoo.bench)."""

import importlib.util
from pathlib import Path

import pytest

from lstmzoo import bench


def test_full_table_has_input_equal_and_narrower_than_hidden():
    assert (100, 4, 256, 256) in bench.FULL_SHAPES and (100, 4, 64, 256) in bench.FULL_SHAPES
    assert len(bench.FULL_SHAPES) == len(bench.BATCHES) * len(bench.HIDDENS) * 2


def test_shapes_for_a_subset():
    assert bench.shapes_for([1, 4], [256], ["H", "H/4", "32"], steps=10) == [
        (10, 1, 256, 256), (10, 1, 64, 256), (10, 1, 32, 256),
        (10, 4, 256, 256), (10, 4, 64, 256), (10, 4, 32, 256)]


@pytest.mark.parametrize("cell", bench.CELLS)
def test_script_times_each_cell(cell, capsys):
    """One tiny row per cell through the script's command line (torch, if installed, is timed beside it)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels_cpu.py"
    spec = importlib.util.spec_from_file_location("kernels_cpu", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--cell", cell, "--batch", "2", "--hidden", "8", "--input", "4", "--steps", "3",
                 "--mode", "inference", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.startswith(cell.upper())
    assert "| 3 | 2 | 4 | 8 | inference |" in out


def test_script_rejects_an_unknown_input_width():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels_cpu.py"
    spec = importlib.util.spec_from_file_location("kernels_cpu", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit):
        script.main(["--input", "H/3"])
