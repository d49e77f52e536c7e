"""benchmarks/tasks.py, which writes zoo/TASK-RESULTS.md: its conversions of the shared datasets into user files,
a whole row (quick settings, tiny synthetic files) through ``main`` with ``--estimators``, the merging of seeds,
and the rendering of the real results file."""

import copy
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tasks():
    spec = importlib.util.spec_from_file_location("tasks_benchmark", ROOT / "benchmarks" / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_sequences(n=40, seed=0):
    """(X [n, 12, 3] float32 zero past each length, y str, lengths): three classes told apart by the mean."""
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b", "c"])[np.arange(n) % 3]
    lengths = rng.integers(4, 13, size=n)
    X = rng.normal(size=(n, 12, 3)).astype(np.float32) + (np.arange(n) % 3)[:, None, None].astype(np.float32)
    X[np.arange(12)[None, :] >= lengths[:, None]] = 0
    return X, y, lengths


# ------------------------------------------------------------------------------------------------ conversion
def test_the_long_csv_reads_back_as_the_arrays(tasks, tmp_path):
    from lstmzoo.tasks.readers import read_sequences
    X, y, lengths = tiny_sequences(n=7)
    tasks._long_csv(tmp_path / "cases.csv", X, y, lengths)
    cases = read_sequences(tmp_path / "cases.csv", task="classification")
    np.testing.assert_array_equal(cases.lengths, lengths)
    np.testing.assert_array_equal(cases.y, y)
    assert cases.X.shape == (7, lengths.max(), 3)
    np.testing.assert_allclose(cases.X, X[:, :lengths.max()], rtol=1e-5, atol=1e-6)     # "%.6g"


def _idx(path, magic, shape, values):
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    path.write_bytes(gzip.compress(header + values.astype(np.uint8).tobytes(), compresslevel=1))


def test_mnist_rows_are_the_first_4000_and_the_last_2000(tasks, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "mnist").mkdir(parents=True)
    images = (np.arange(10000)[:, None, None] + np.arange(28)[None, :, None]) % 256 * np.ones((1, 1, 28))
    labels = np.arange(10000) % 10
    _idx(shared / "mnist" / "t10k-images-idx3-ubyte.gz", 2051, (10000, 28, 28), images)
    _idx(shared / "mnist" / "t10k-labels-idx1-ubyte.gz", 2049, (10000,), labels)
    monkeypatch.setattr(tasks, "SHARED", shared)
    files = tasks.converted("mnist-rows", tasks.convert_mnist_rows, tmp_path / "work")
    with np.load(files["data"]) as train, np.load(files["test"]) as test:
        assert train["X"].shape == (4000, 28, 28) and test["X"].shape == (2000, 28, 28)
        np.testing.assert_array_equal(train["X"], images[:4000].astype(np.float32) / 255)
        np.testing.assert_array_equal(test["X"], images[8000:].astype(np.float32) / 255)
        np.testing.assert_array_equal(train["y"], labels[:4000].astype(str))
        np.testing.assert_array_equal(test["y"], labels[8000:].astype(str))

    def not_again(work):
        raise AssertionError("converted again although its files are there")
    assert tasks.converted("mnist-rows", not_again, tmp_path / "work") == files


def test_a_series_is_split_where_the_zoo_splits_it(tasks, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "airline-passengers").mkdir(parents=True)
    months = [f"{1949 + k // 12}-{k % 12 + 1:02d}" for k in range(144)]
    values = 100 + np.arange(144) + 20 * np.sin(np.arange(144) * np.pi / 6)
    (shared / "airline-passengers" / "airline-passengers.csv").write_text(
        '"Month","Passengers"\n' + "".join(f'"{m}",{float(v)!r}\n' for m, v in zip(months, values)))
    monkeypatch.setattr(tasks, "SHARED", shared)
    files = tasks.convert_series(tmp_path / "work", "airline")
    train = files["data"].read_text().splitlines()
    test = files["test"].read_text().splitlines()
    assert train[0] == test[0] == "ds,y"
    assert len(train) == 1 + 96 and len(test) == 1 + 48          # the zoo's test part: the last 48 months
    assert files["data"].name == files["test"].name == "airline.csv"   # one series: its id is the file's name
    written = [float(line.split(",")[1]) for line in train[1:] + test[1:]]
    np.testing.assert_array_equal(written, values)
    assert files["series"]["airline"][2] == 96


# ------------------------------------------------------------------------------------- a row, through main
@pytest.fixture
def tiny_row(tasks, tmp_path, monkeypatch):
    """A row "tiny": a sequence-classification .npz with lengths, converted into the work folder."""
    def convert(work):
        folder = work / "data" / "tiny"
        folder.mkdir(parents=True, exist_ok=True)
        X, y, lengths = tiny_sequences(n=48)
        np.savez(folder / "train.npz", X=X[:36], y=y[:36], lengths=lengths[:36])
        np.savez(folder / "test.npz", X=X[36:], y=y[36:], lengths=lengths[36:])
        return {"data": folder / "train.npz", "test": folder / "test.npz"}
    monkeypatch.setitem(tasks.ROWS, "tiny", ("sequence-classification", convert, None, "tiny synthetic .npz"))
    monkeypatch.setattr(tasks, "ESTIMATOR_ROWS", ("tiny",))
    return tmp_path / "work", tmp_path / "TASK-RESULTS.md"


def test_a_row_with_the_estimators_through_main(tasks, tiny_row):
    """One quick seed: the command line's run in the main table, the estimator's beside it in its own table,
    trained bit for bit alike; another seed added to both; the file rebuilt unchanged from its own record."""
    pytest.importorskip("sklearn", reason="the sklearn extra is not installed (pip install 'lstmzoo[sklearn]')")
    work, results = tiny_row
    tasks.main(["--rows", "tiny", "--seeds", "3", "--quick", "--estimators", "--work", str(work),
                "--results", str(results)])
    records = tasks.read_records(results)
    assert set(records) == {"tiny", "estimators tiny"}
    run = records["estimators tiny"]["runs"][0]
    assert run["seed"] == 3 and run["cli"]["accuracy"] == run["estimator"]["accuracy"]
    assert run["estimator"]["weights"]["differing"] == [] and run["estimator"]["weights"]["tensors"] > 0
    assert run["estimator"]["hyperparameters_differing"] == []
    assert run["settled"] == records["tiny"]["runs"][0]["settled"] == {"hidden_size": 8, "batch_size": 8, "epochs": 1}
    assert run["estimator"]["predictions"] == {"cases": 12, "rows": 12, "labels_differing": 0,
                                               "probabilities_differing": 0}
    text = results.read_text()
    assert "## The estimators against the command line" in text
    line = next(line for line in text.splitlines() if line.startswith("| tiny | 3 |"))
    assert "the same" in line and "yes, all" in line and "identical on all 12 test cases" in line
    assert "LSTMClassifier(random_state=3, epochs=1, hidden_size=8)" in line
    assert any(line.startswith("| tiny | tiny synthetic .npz | accuracy ") for line in text.splitlines())

    # Another seed (as a later call would bring) is added to both records, the first seed kept.
    later = []
    for record in records.values():
        record = copy.deepcopy(record)
        for entry in record["runs"]:
            entry["seed"] = 4
        record["command"] = record["command"].replace("--seed 3", "--seed 4")
        later.append(record)
    tasks.write(results, later)
    records = tasks.read_records(results)
    assert [r["seed"] for r in records["tiny"]["runs"]] == [3, 4]
    assert [r["seed"] for r in records["estimators tiny"]["runs"]] == [3, 4]
    assert "--seed 3" in records["estimators tiny"]["command"]
    assert "| tiny | 3 4 |" in results.read_text()
    before = results.read_text()
    tasks.write(results, [])
    assert results.read_text() == before


def test_merge_adds_seeds_and_dates_the_record_by_the_runs_it_keeps(tasks):
    def record(date, seeds, dated=True):
        runs = [{"seed": seed, "accuracy": 0.5 + seed, **({"date": date} if dated else {})} for seed in seeds]
        return {"row": "tiny", "quick": False, "settings": [], "runs": runs, "date": date,
                "command": f"lstmzoo train x --data D --seed {seeds[0]} --set epochs=3"}
    old = record("2026-12-02", [0, 1], dated=False)      # runs from before runs were dated
    added = tasks.merge(old, record("2026-12-03", [2]))
    assert [run["seed"] for run in added["runs"]] == [0, 1, 2]
    assert added["date"] == "2026-12-02 / 2026-12-03"
    assert added["command"] == "lstmzoo train x --data D --seed 0 --set epochs=3"
    assert tasks.merge(added, record("2026-12-04", [0, 1]))["date"] == "2026-12-03 / 2026-12-04"
    assert tasks.merge(added, record("2026-12-04", [0, 1, 2]))["date"] == "2026-12-04"
    assert tasks.merge(old, {**record("2026-12-04", [5]), "quick": True})["runs"][0]["seed"] == 5   # not merged


def test_estimators_refuse_a_row_they_cannot_compare(tasks, tiny_row, capsys):
    work, results = tiny_row
    with pytest.raises(SystemExit):
        tasks.main(["--rows", "airline", "--estimators", "--work", str(work), "--results", str(results)])
    assert "--estimators compares sequence-classification rows of .npz files; not airline" in capsys.readouterr().err
    assert not results.exists()


# ---------------------------------------------------------------------------------------- the real results
def test_the_results_file_is_its_record_rendered(tasks):
    """zoo/TASK-RESULTS.md is what its own record renders to with zoo/RESULTS.md as it is now: every table line
    is the script's, and every quote of the zoo's figures is current."""
    records = tasks.read_records(tasks.RESULTS)
    assert records
    rendered = tasks.render(records)
    written = json.loads(rendered[rendered.rfind(tasks.RECORD_START) + len(tasks.RECORD_START):
                                  rendered.rindex(tasks.RECORD_END)])
    assert {tasks.key(record): record for record in written} == records
    assert rendered == tasks.RESULTS.read_text(), (
        "zoo/TASK-RESULTS.md is not what its record renders to (zoo/RESULTS.md changed since?): rebuild it with "
        "cd benchmarks && python -c 'import tasks; tasks.write(tasks.RESULTS, [])'")
