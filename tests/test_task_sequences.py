"""The sequence-classification and sequence-regression tasks on small files the tests write: the model learns
what the majority class, 1-NN and the mean miss; stratified fixed splits, fitted preprocessing recorded for
predict, class weights, and the user's mistakes."""

import json

import numpy as np
import pytest
from test_task_readers import write_sequences

from lstmzoo.errors import UserError
from lstmzoo.tasks.sequences import SequenceClassificationTask, SequenceRegressionTask

QUICK = {"epochs": 15}


def sequences(n=300, seed=0, classes=3, regression=False, counts=None):
    """Variable-length 2-channel sequences: channel 0 a sine whose frequency is the class (or the target) at a
    random phase, channel 1 noise; zero past each length."""
    rng = np.random.default_rng(seed)
    steps = 40
    lengths = rng.integers(15, steps + 1, n)
    y = rng.integers(0, classes, n) if counts is None else np.repeat(np.arange(len(counts)), counts)
    frequency = rng.uniform(0.5, 3, n) if regression else 1 + y
    t = np.arange(steps)[None, :]
    X = np.zeros((n, steps, 2))
    X[:, :, 0] = np.sin(2 * np.pi * frequency[:, None] * t / 20 + rng.uniform(0, 6, (n, 1)))
    X[:, :, 1] = 0.3 * rng.standard_normal((n, steps))
    X[t >= lengths[:, None]] = 0
    return X, (frequency if regression else np.array([f"class {k}" for k in y])), lengths


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequences")
    X, y, lengths = sequences()
    np.savez(folder / "train.npz", X=X, y=y, lengths=lengths)
    task = SequenceClassificationTask()
    hp = task.settle(task.resolve({"data": str(folder / "train.npz"), **QUICK}))
    return task, hp, task.train(hp, folder / "run", progress=False), folder


def test_settles_sizes_from_the_data(classified):
    _, hp, _, _ = classified
    assert (hp["input_size"], hp["output_size"], hp["hidden_size"], hp["batch_size"]) == (2, 3, 32, 15)


def test_classifier_learns_what_the_baselines_miss(classified):
    task, hp, trained, folder = classified
    metrics = task.evaluate(trained.model, trained.data, hp, out_dir=folder / "run")
    # Measured: accuracy 0.98 against 1-NN 0.67 and the majority class 0.36.
    assert metrics["accuracy"] > metrics["knn1_accuracy"] + 0.15 and metrics["macro_f1"] > 0.85
    assert task.target(metrics)[1]
    table = (folder / "run" / "per-class.csv").read_text().splitlines()
    assert table[0] == "class,support,precision,recall,f1" and table[1].startswith("class 0,")
    matrix = [line.split(",") for line in (folder / "run" / "confusion-matrix.csv").read_text().splitlines()]
    assert matrix[0] == ["true \\ predicted", "class 0", "class 1", "class 2"] and matrix[1][0] == "class 0"
    counts = np.array([row[1:] for row in matrix[1:]], dtype=np.int64)    # without the plot extra too
    assert counts.sum() == len(trained.data.test) and np.trace(counts) == round(metrics["accuracy"] * counts.sum())
    assert counts.sum(axis=1).tolist() == [int(row.split(",")[1]) for row in table[1:]]   # the per-class support


def test_splits_are_stratified_fixed_and_disjoint(classified):
    task, hp, trained, _ = classified
    data = trained.data
    assert len(data.train) + len(data.val) + len(data.test) == 300
    assert abs(len(data.test) - 60) <= 2 and abs(len(data.val) - 24) <= 2
    counts = np.bincount(data.test.y, minlength=3)
    assert counts.min() >= 17          # each class's fifth, give or take rounding
    again = task.load_data({**hp, "seed": 7})            # the training seed does not move the held-out parts
    np.testing.assert_array_equal(again.test.X, data.test.X)


def test_predict_needs_only_the_run_folder(classified, tmp_path):
    task, hp, trained, folder = classified
    X, y, lengths = sequences(n=20, seed=5)
    np.savez(tmp_path / "new.npz", X=X, y=y, lengths=lengths)
    config = json.loads((folder / "run" / "config.json").read_text())
    assert config["fitted"]["classes"] == ["class 0", "class 1", "class 2"]
    assert len(config["fitted"]["feature_mean"]) == 2 and config["data_files"]["data"]["sha256"]
    result = task.predict(trained.model, hp, folder / "run", input=str(tmp_path / "new.npz"),
                          output=tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,label,p_class 0,p_class 1,p_class 2" and len(lines) == 21
    probabilities = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert np.mean(result["rows"]["label"] == y) > 0.8


def test_imbalanced_classes_get_weights(tmp_path):
    X, y, lengths = sequences(n=120, counts=[90, 30])
    np.savez(tmp_path / "imbalanced.npz", X=X, y=y, lengths=lengths)
    task = SequenceClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "imbalanced.npz")}))
    weights = task.load_data(hp).fitted["class_weight"]
    np.testing.assert_allclose(weights, [72 / (2 * 54), 72 / (2 * 18)], rtol=0.05)


def test_regression_learns_what_the_mean_misses(tmp_path):
    X, y, lengths = sequences(regression=True, seed=1)
    np.savez(tmp_path / "targets.npz", X=X, y=y, lengths=lengths)
    task = SequenceRegressionTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "targets.npz"), **QUICK}))
    trained = task.train(hp, tmp_path / "run", progress=False)
    metrics = task.evaluate(trained.model, trained.data, hp)
    # Measured: rmse 0.11 against the mean's 0.69, r2 0.97.
    assert metrics["rmse"] < 0.4 * metrics["mean_rmse"] and metrics["r2"] > 0.8


def test_user_mistakes_are_one_sentence(tmp_path):
    task = SequenceClassificationTask()
    with pytest.raises(UserError, match="--data"):
        task.settle(task.resolve())
    X, y, lengths = sequences(n=60)
    np.savez(tmp_path / "train.npz", X=X, y=y, lengths=lengths)
    np.savez(tmp_path / "test.npz", X=X[:5], y=np.array(["class 9"] * 5), lengths=lengths[:5])
    with pytest.raises(UserError, match="label 'class 9', which the training cases .* never have"):
        task.settle(task.resolve({"data": str(tmp_path / "train.npz"), "test_data": str(tmp_path / "test.npz")}))
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.npz")}))
    with pytest.raises(UserError, match="label 'class 9', which the training cases .* never have"):
        task.load_data({**hp, "test_data": str(tmp_path / "test.npz")})
    np.savez(tmp_path / "wide.npz", X=np.zeros((5, 40, 3)), y=y[:5], lengths=lengths[:5])
    with pytest.raises(UserError, match="has 3 values per time step"):
        task.load_data({**hp, "test_data": str(tmp_path / "wide.npz")})


def test_a_class_weighted_batch_counts_its_weights(tmp_path):
    """With class weights the batch's mean loss divides by its targets' summed weights, so that is what it counts
    for in the epoch's mean and when data-parallel ranks combine their parts of a batch."""
    X, y, lengths = sequences(n=120, counts=[90, 30])
    np.savez(tmp_path / "imbalanced.npz", X=X, y=y, lengths=lengths)
    task = SequenceClassificationTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "imbalanced.npz")}))
    data = task.load_data(hp)
    batch = task.make_batches(data, hp, np.random.default_rng(0))[0]
    weight = np.asarray(data.fitted["class_weight"])
    _, counted = task.train_step(task.build_model(hp), batch, hp)
    assert counted == pytest.approx(weight[batch[2]].sum()) and counted != len(batch[1])


UNLABELLED_TS_HEADERS = {"classLabel false": None,       # write_sequences' own for unlabelled cases
                         "labels declared, not given": "@problemName p\n@classLabel true a b\n"}


@pytest.mark.parametrize("form", [".npz", ".csv", *UNLABELLED_TS_HEADERS])
def test_predict_reads_cases_without_labels(classified, tmp_path, form):
    """An .npz of X alone, a long CSV without the label column, a .ts without labels (the model's values per step
    telling its lines' parts apart where the header does not): the same predictions as from the labelled file."""
    task, hp, trained, folder = classified
    X, y, lengths = sequences(n=20, seed=5)
    X = X[:, :lengths.max()]
    np.savez(tmp_path / "labelled.npz", X=X, y=y, lengths=lengths)
    suffix = form if form.startswith(".") else ".ts"
    path = write_sequences(tmp_path / f"new{suffix}", X, lengths, None, header=UNLABELLED_TS_HEADERS.get(form))
    expected = task.predict(trained.model, hp, folder / "run", input=str(tmp_path / "labelled.npz"))
    result = task.predict(trained.model, hp, folder / "run", input=str(path))
    assert result["text"] == expected["text"] and result["text"].startswith("id,label,p_class 0,")
    assert len(result["rows"]["id"]) == 20


def test_regression_predicts_cases_without_labels_by_the_training_csv_column_names(tmp_path):
    X, y, lengths = sequences(n=60, regression=True, seed=2)
    write_sequences(tmp_path / "train.csv", X, lengths, y.astype(str))
    task = SequenceRegressionTask()
    hp = task.settle(task.resolve({"data": str(tmp_path / "train.csv"), "epochs": 1}))
    trained = task.train(hp, tmp_path / "run", progress=False)
    new = sequences(n=8, regression=True, seed=3)
    write_sequences(tmp_path / "labelled.csv", new[0], new[2], new[1].astype(str))
    # Without labels, the columns in another order and one more: the training file's feature names pick them.
    with open(tmp_path / "new.csv", "w") as handle:
        handle.write("f1,note,id,f0\n" + "".join(f"{float(new[0][i, t, 1])!r},x,c{i},{float(new[0][i, t, 0])!r}\n"
                                                  for i in range(8) for t in range(new[2][i])))
    expected = task.predict(trained.model, hp, tmp_path / "run", input=str(tmp_path / "labelled.csv"))
    result = task.predict(trained.model, hp, tmp_path / "run", input=str(tmp_path / "new.csv"))
    assert result["text"] == expected["text"] and result["text"].startswith("id,prediction\n")
    assert len(result["rows"]["id"]) == 8
    (tmp_path / "other.csv").write_text("id,f0,g\nc0,1,2\n")
    with pytest.raises(UserError, match="other.csv has no column 'f1' .*; the feature columns wanted are 'f0', 'f1'"):
        task.predict(trained.model, hp, tmp_path / "run", input=str(tmp_path / "other.csv"))
