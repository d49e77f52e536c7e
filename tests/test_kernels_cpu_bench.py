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


@pytest.mark.parametrize("flags, vector", [("fpu sse2 avx avx2 fma avx512f avx512bw", "AVX-512"),
                                           ("fpu sse2 avx avx2 fma", "AVX2"), ("fpu sse2 avx", "no AVX2")])
def test_cpu_model_names_the_widest_vectors(tmp_path, flags, vector):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n\n"
                       f"processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n")
    assert bench.cpu_model(cpuinfo).startswith(f"Some CPU 9000, {vector}, ")
    assert bench.cpu_model(cpuinfo).endswith(" logical CPUs")


def test_cpu_model_names_the_family_and_model_where_cpuinfo_has_them(tmp_path):
    """Two CPUs a virtual machine names alike ("AMD EPYC": a Zen 4 and a Zen 5) differ in their numbers."""
    cpuinfo = tmp_path / "cpuinfo"
    block = "processor\t: {}\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n" \
        "stepping\t: 0\nflags\t\t: fpu avx avx2 fma avx512f\n"
    cpuinfo.write_text(block.format(0) + "\n" + block.format(1).replace(": 26", ": 25"))
    assert bench.cpu_model(cpuinfo).startswith("AMD EPYC (family 26 model 2), AVX-512, ")
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: avx2\n")
    assert bench.cpu_model(cpuinfo).startswith("AMD EPYC, AVX2, ")


def test_cpu_model_without_cpuinfo_says_the_flags_are_unknown(tmp_path):
    assert ", vector flags unknown, " in bench.cpu_model(tmp_path / "missing")


def test_core_check_times_each_thread():
    alone, together = bench.core_check(threads=2, seconds=0.01)
    assert alone > 1 and len(together) == 2 and min(together) > 1  # GFLOP/s: any core does more than 1


@pytest.mark.parametrize("together, shared", [([100.0, 50.0], True), ([96.0, 99.0], False)])
def test_core_check_line_calls_a_slow_thread_a_shared_core(monkeypatch, together, shared):
    monkeypatch.setattr(bench, "core_check", lambda threads: (100.0, together))
    line = bench.core_check_line(2)
    assert ("sharing a core" in line) == shared and ("no sign of a shared core" in line) == (not shared)
    assert bench.core_check_line(1) == ""


def test_changing_inputs_script_times_every_input_of_both_kernels():
    """Run as a script (its own process: it pins NumPy's and Numba's threads to one before they load)."""
    import subprocess
    import sys
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "changing_inputs.py"
    out = subprocess.run([sys.executable, str(path), "--rows", "2", "--hidden", "16", "--columns", "2H",
                          "--repeats", "1", "--seconds", "0.001"], capture_output=True, text=True, check=True).stdout
    assert "| micro-kernel | 2 | 16 | 32 |" in out and "| OpenBLAS | 2 | 16 | 32 |" in out


def test_changing_inputs_pairs_differ_as_named():
    import numpy as np
    spec = importlib.util.spec_from_file_location(
        "changing_inputs", Path(__file__).resolve().parents[1] / "benchmarks" / "changing_inputs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # imported, it leaves the threads' environment alone
    pairs = script._inputs(2, 16, np.random.default_rng(0))
    assert pairs["same"].shape == (1, 2, 16) and all(pairs[k].shape == (2, 2, 16) for k in script.INPUTS[1:])
    assert (pairs["equal copies"][0] == pairs["equal copies"][1]).all()
    assert (pairs["one ulp apart"][0] != pairs["one ulp apart"][1]).all()


def test_after_idle_script_times_each_call_of_old_new_and_torch():
    """benchmarks/after_idle.py on a tiny shape (its own process; torch is its peer, so it needs torch)."""
    pytest.importorskip("torch")
    import subprocess
    import sys
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "after_idle.py"
    out = subprocess.run([sys.executable, str(path), "--shape", "2", "4", "16", "--steps", "3", "--rounds", "1",
                          "--calls", "21", "--idle", "0", "--variant", "units"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith(("| old", "| new", "| torch"))]
    assert len(rows) == 3 and all(len(row.strip("|").split("|")) == 14 for row in rows)


def test_unit_split_variants_force_their_splits(monkeypatch):
    """benchmarks/unit_split.py forces each variant by overriding kernels/cpu.py's thresholds: each must give its
    split (forward in inference and training, and the backward) whatever the plan would choose."""
    from lstmzoo.kernels import cpu
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "unit_split.py"
    spec = importlib.util.spec_from_file_location("unit_split", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    want = {"rows": ("packed", "packed"), "rows-2": ("packed", "packed"), "units": ("units", "packed"),
            "units-fused": ("units", "packed"), "units-bwd": ("units", "units"),
            "rows-units-bwd": ("packed", "units")}
    assert set(want) == set(script.VARIANTS)
    for B, H in ((4, 256), (2, 1024), (7, 192), (1, 128), (1, 256), (1, 1024)):
        for name, setting in script.VARIANTS.items():
            with monkeypatch.context() as m:
                for key, value in zip(script.SETTINGS, setting, strict=True):
                    if value is not None:
                        m.setattr(cpu, key, value)
                for training in (False, True):
                    step = cpu.plan(B, 2, kind=cpu.LSTM, hidden=H, training=training, inputs=H).blocks
                    assert step[0].step == want[name][0].replace("packed", "gemv" if B == 1 else "packed"), (
                        name, B, H, training)
                backward = cpu.plan(B, 2, kind=cpu.LSTM, hidden=H, backward=True).blocks
                assert backward[0].step == want[name][1].replace("packed", "gemv" if B == 1 else "packed"), (
                    name, B, H)


def test_train_step_script_times_each_part_of_every_head_setting():
    """benchmarks/train_step.py on a tiny model, without torch: one row per head setting (the kernels' GEMMs, NumPy
    on OpenBLAS's threads, on one), every part timed."""
    import subprocess
    import sys
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"
    out = subprocess.run([sys.executable, str(path), "--shapes", "3,2,4,8,5", "--steps", "1", "--repeats", "1",
                          "--no-torch"], capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 3 | 2 | 4 | 8 | 5 |")]
    assert [row[5].strip() for row in rows] == ["lstmzoo", "lstmzoo, head on NumPy, OpenBLAS all threads",
                                                 "lstmzoo, head on NumPy, OpenBLAS 1 thread"]
    for row in rows:
        parts = [float(cell) for cell in row[6:11]]
        assert all(p > 0 for p in parts) and parts[-1] >= max(parts[:-1])
        assert row[11].strip() == "-"


def test_one_row_script_times_both_steps(capsys, monkeypatch):
    """benchmarks/one_row.py on tiny shapes without torch: one row per (H, T), the plan's steps named, and the plan
    restored afterwards (the threads left as they are)."""
    from lstmzoo.kernels import cpu
    monkeypatch.setattr(cpu, "set_num_threads", lambda n: None)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "one_row.py"
    spec = importlib.util.spec_from_file_location("one_row", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    planned = cpu.plan
    script.main(["--hidden", "8", "16", "--steps", "3", "40", "--repeats", "1", "--no-torch", "--mode", "training",
                 "--force", "both"])
    assert cpu.plan is planned
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 3 |") or
            line.startswith("| 40 |")]
    assert [row.split("|")[1:5] for row in rows] == [
        [" 3 ", " 8 ", " 8 ", " gemv / gemv "], [" 40 ", " 8 ", " 8 ", " packed / gemv "],
        [" 3 ", " 16 ", " 16 ", " gemv / gemv "], [" 40 ", " 16 ", " 16 ", " packed / gemv "]]
    assert all(float(cell) > 0 for row in rows for cell in row.split("|")[5:8])
