"""Are the tasks' defaults strong? Train each task with NO --set on data converted from ../shared/datasets and
compare with the tuned zoo recipe on the same test set; write zoo/TASK-RESULTS.md.

    LSTMZOO_MIRROR=../shared/datasets python benchmarks/tasks.py                     # every row, seed 0
    python benchmarks/tasks.py --rows airline sunspots --seeds 0 1 2
    python benchmarks/tasks.py --quick --rows airline pendigits-npz                  # smoke test (tiny runs)
    python benchmarks/tasks.py --rows rt-polarity-csv --set epochs=10                # a trial, NOT for the table

What it does, per row: converts a shared dataset into the files a user would have (single-series CSVs, a long
CSV, .npz, a text,label CSV, a folder per class) in a work folder (``--work``, default /tmp/lstmzoo-tasks),
keeping the zoo recipe's own train/test split by writing a ``--data`` and a ``--test-data`` file, so the
task's test set is the zoo recipe's; then for each seed runs, one at a time, with ``NUMBA_NUM_THREADS=1``:

    lstmzoo train TASK --data TRAIN --test-data TEST --out RUN --seed S
    lstmzoo evaluate TASK --checkpoint RUN --json

Forecasting rows are scored like the zoo's time-series recipes, one step ahead at every month (day) of the zoo's
test part (rolling origins): the model is trained on the series up to the zoo's test start (``--data``; the task
holds out the last 10 % of each series, at least ``horizon`` values, for early stopping) and ``lstmzoo predict
forecasting --checkpoint RUN --input ORIGINS.csv`` forecasts from every origin t of the test part at once,
ORIGINS.csv holding one series per origin (the true history up to t, as its own ``unique_id``, which the run never
saw: ``predict`` scales it and chooses its preprocessing by the task's rule on that history); the first forecast
value of each is the one-step forecast of value t. rmse, mae and mase (MAE over the in-sample MAE of the seasonal
naive forecast on the training part, the task's season) are computed here, with the naive (previous value) and
seasonal naive forecasts scored on the same points. The task's own protocol (``--test-data`` = the zoo's test part:
the first ``horizon`` values after the training part, forecast at once from its end) is recorded beside it.

``--estimators`` (sequence-classification rows of .npz files) also trains each seed's run through the library:
in a separate Python process, ``lstmzoo.estimators.LSTMClassifier(random_state=S)`` (every other parameter its
default, which is the task's; ``--set`` / ``--quick`` settings passed as the parameters of the same names) fitted
on the training file's ``X`` and ``y`` as ``np.load`` gives them (a list of ``[T_i, C]`` arrays cut at ``lengths``
where the file has them) and scored on the test file's, beside the command line's run of the same seed: the test
accuracy of both, whether the weights are bit for bit the run's ``weights-best.safetensors``, and whether
``predict`` / ``predict_proba`` give what ``lstmzoo predict`` writes for the test file. Its own table ("The
estimators against the command line"); the command line's runs go into the main table as usual.

The results (JSON record at the end of the file) merge with the rows already there (the runs of a row run again
with the same settings are added by seed, so seeds may run in separate calls); the table is rebuilt.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmzoo import bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "zoo" / "TASK-RESULTS.md"
ZOO_RESULTS = ROOT / "zoo" / "RESULTS.md"
SHARED = ROOT.parent / "shared" / "datasets"
RECORD_START, RECORD_END = "<!-- task-results", "-->"

SERIES = {  # row name -> (zoo recipe, module.class, file in ../shared/datasets)
    "airline": ("airline-passengers", "airline.AirlinePassengers", "airline-passengers/airline-passengers.csv"),
    "sunspots": ("monthly-sunspots", "sunspots.MonthlySunspots", "monthly-sunspots/monthly-sunspots.csv"),
    "temperatures": ("daily-min-temperatures", "temperatures.DailyMinTemperatures",
                     "daily-min-temperatures/daily-min-temperatures.csv"),
}


# ================================================================================================ conversion
def _recipe_class(path):
    import importlib
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"lstmzoo.zoo.{module}"), name)


def zoo_series(row):
    """(dates, values, test_start) of a zoo time series, split as the zoo recipe splits it."""
    from lstmzoo.tasks import read_one_series
    _, cls, file = SERIES[row]
    labels, values = read_one_series(SHARED / file)
    size = _recipe_class(cls).test_size
    test_size = round(len(values) * size) if size < 1 else size
    return np.array(labels), values, len(values) - test_size


def _write_csv(path, header, columns):
    lines = [",".join(header)]
    lines += [",".join(map(str, row)) for row in zip(*columns)]
    path.write_text("\n".join(lines) + "\n")


def _fmt(values):
    return [repr(float(v)) for v in values]


def convert_series(work, row):
    """A single-series ``ds,y`` CSV of the training part and one of the test part."""
    dates, values, cut = zoo_series(row)
    # A single series' unique_id is its file's name: the test file must have the same name as the training file.
    folder = work / "data" / row
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    _write_csv(folder / "train" / f"{row}.csv", ["ds", "y"], [dates[:cut], _fmt(values[:cut])])
    _write_csv(folder / "test" / f"{row}.csv", ["ds", "y"], [dates[cut:], _fmt(values[cut:])])
    return {"data": folder / "train" / f"{row}.csv", "test": folder / "test" / f"{row}.csv",
            "series": {row: (dates, values, cut)}}


def convert_long_series(work):
    """The three series in one long CSV ``unique_id,ds,y`` (training parts) and one of their test parts."""
    folder = work / "data" / "series-long"
    folder.mkdir(parents=True, exist_ok=True)
    train, test, series = [[], [], []], [[], [], []], {}
    for row in SERIES:
        dates, values, cut = zoo_series(row)
        series[row] = (dates, values, cut)
        for part, chosen in ((train, slice(None, cut)), (test, slice(cut, None))):
            part[0] += [row] * len(values[chosen])
            part[1] += list(dates[chosen])
            part[2] += _fmt(values[chosen])
    _write_csv(folder / "train.csv", ["unique_id", "ds", "y"], train)
    _write_csv(folder / "test.csv", ["unique_id", "ds", "y"], test)
    return {"data": folder / "train.csv", "test": folder / "test.csv", "series": series}


def _pendigits_arrays():
    """(X_train, y_train, X_test, y_test): the zoo's pendigits features (48 points resampled at equal
    arc-length, x, y, dx, dy, pen-lifted flag: [N, 48, 5]) of the writer-independent split (.tra / .tes)."""
    from lstmzoo.zoo.pendigits import PenDigits, point_features, resample
    recipe = PenDigits()
    points = recipe.hyperparameters["points"].default
    out = []
    for index in (0, 1):
        digits = recipe.load_digits(index)
        out.append(np.stack([point_features(resample(d.strokes, points)) for d in digits]).astype(np.float32))
        out.append(np.array([str(d.label) for d in digits]))
    return out


def convert_pendigits_npz(work):
    folder = work / "data" / "pendigits-npz"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = _pendigits_arrays()
    np.savez(folder / "train.npz", X=x_train, y=y_train.astype("U1"))
    np.savez(folder / "test.npz", X=x_test, y=y_test.astype("U1"))
    return {"data": folder / "train.npz", "test": folder / "test.npz"}


def _long_csv(path, X, y, lengths=None):
    """One row per time step: id, f0..f{C-1}, label."""
    n, t, c = X.shape
    lengths = np.full(n, t) if lengths is None else lengths
    keep = np.arange(t)[None, :] < lengths[:, None]
    ids = np.broadcast_to(np.arange(n)[:, None], (n, t))[keep]
    labels = np.broadcast_to(y[:, None], (n, t))[keep]
    values = X[keep]
    lines = ["id," + ",".join(f"f{k}" for k in range(c)) + ",label"]
    body = np.char.add(np.char.add(ids.astype(str), ","), np.array([",".join(f"{v:.6g}" for v in r) for r in values]))
    lines += list(np.char.add(np.char.add(body, ","), labels.astype(str)))
    path.write_text("\n".join(lines) + "\n")


def convert_pendigits_csv(work):
    folder = work / "data" / "pendigits-csv"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = _pendigits_arrays()
    _long_csv(folder / "train.csv", x_train, y_train)
    _long_csv(folder / "test.csv", x_test, y_test)
    return {"data": folder / "train.csv", "test": folder / "test.csv"}


def convert_spoken_digits(work):
    """MFCCs (13, deltas, delta-deltas, per-utterance normalised: the zoo's ``mfcc_features``, librosa) of the
    FSDD recordings; official split: index 0-4 test, 5-49 training."""
    from lstmzoo.zoo.spoken_digits import SAMPLE_RATE, SpokenDigits, mfcc_features
    folder = work / "data" / "spoken-digits"
    folder.mkdir(parents=True, exist_ok=True)
    recordings = SpokenDigits().load_recordings()
    for name, chosen in (("train", [r for r in recordings if r.index >= 5]),
                         ("test", [r for r in recordings if r.index < 5])):
        features = [mfcc_features(r.audio, SAMPLE_RATE, 13) for r in chosen]
        lengths = np.array([len(f) for f in features])
        X = np.zeros((len(features), lengths.max(), features[0].shape[1]), dtype=np.float32)
        for k, f in enumerate(features):
            X[k, :len(f)] = f
        np.savez(folder / f"{name}.npz", X=X, y=np.array([str(r.digit) for r in chosen]), lengths=lengths)
    return {"data": folder / "train.npz", "test": folder / "test.npz"}


def _rt_polarity_split():
    """(texts, labels 'pos'/'neg', rest indices, test indices): the zoo's fixed 10 % test split."""
    from lstmzoo.zoo.rt_polarity import RtPolarity, test_split
    sentences, labels = RtPolarity().load_sentences()
    rest, test = test_split(len(sentences))
    return list(sentences), np.where(np.asarray(labels) == 1, "pos", "neg"), rest, test


def convert_rt_polarity_csv(work):
    import csv
    folder = work / "data" / "rt-polarity-csv"
    folder.mkdir(parents=True, exist_ok=True)
    texts, labels, rest, test = _rt_polarity_split()
    for name, chosen in (("train", rest), ("test", test)):
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows((texts[i], labels[i]) for i in chosen)
    return {"data": folder / "train.csv", "test": folder / "test.csv"}


def convert_rt_polarity_folders(work):
    folder = work / "data" / "rt-polarity-folders"
    texts, labels, rest, test = _rt_polarity_split()
    for name, chosen in (("train", rest), ("test", test)):
        for label in ("neg", "pos"):
            (folder / name / label).mkdir(parents=True, exist_ok=True)
        for i in chosen:
            (folder / name / labels[i] / f"{i:05d}.txt").write_text(texts[i] + "\n", encoding="utf-8")
    return {"data": folder / "train", "test": folder / "test"}


def convert_mnist_rows(work):
    """Extra public data: MNIST's t10k digits read row by row (28 steps of 28 pixels, 0-1), the first 4,000 to
    train, the last 2,000 to test (the shared copy has only the t10k part; 4,000 keeps a run within minutes on
    one core)."""
    import gzip
    folder = work / "data" / "mnist-rows"
    folder.mkdir(parents=True, exist_ok=True)
    images = np.frombuffer(gzip.decompress((SHARED / "mnist/t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8,
                           offset=16).reshape(-1, 28, 28).astype(np.float32) / 255
    labels = np.frombuffer(gzip.decompress((SHARED / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8,
                           offset=8).astype(str)
    np.savez(folder / "train.npz", X=images[:4000], y=labels[:4000])
    np.savez(folder / "test.npz", X=images[8000:], y=labels[8000:])
    return {"data": folder / "train.npz", "test": folder / "test.npz"}


ROWS = {  # name -> (task, converter, zoo recipe or None, what the user file is)
    "airline": ("forecasting", lambda w: convert_series(w, "airline"), "airline-passengers",
                "airline-passengers as a single-series CSV (ds,y); train 1949-01..1956-12, test the zoo's last 48 months"),
    "sunspots": ("forecasting", lambda w: convert_series(w, "sunspots"), "monthly-sunspots",
                 "monthly-sunspots as a single-series CSV; test the zoo's last 33 % (931 months)"),
    "temperatures": ("forecasting", lambda w: convert_series(w, "temperatures"), "daily-min-temperatures",
                     "daily-min-temperatures as a single-series CSV; test the zoo's 1990 (365 days)"),
    "series-long": ("forecasting", convert_long_series, None,
                    "the three series together as one long CSV (unique_id,ds,y), one global model; same test parts"),
    "pendigits-npz": ("sequence-classification", convert_pendigits_npz, "pendigits",
                      ("pendigits as .npz X [N, 48, 5] (the zoo's resampled x, y, dx, dy, pen-lifted), writer-"
                      "independent: 7,494 training digits (30 writers), 3,498 test (14 other writers)")),
    "pendigits-csv": ("sequence-classification", convert_pendigits_csv, "pendigits",
                      "the same digits as a long CSV (id, f0..f4, label; one row per point)"),
    "spoken-digits": ("sequence-classification", convert_spoken_digits, "spoken-digits",
                      ("FSDD: MFCCs extracted here with librosa (13 + deltas + delta-deltas, 10 ms frames, "
                      "per-utterance normalised) as .npz with lengths; official split (index 0-4 test, 300)")),
    "rt-polarity-csv": ("text-classification", convert_rt_polarity_csv, "rt-polarity",
                        "rt-polarity as a text,label CSV; the zoo's fixed 10 % test split (1,066 sentences)"),
    "rt-polarity-folders": ("text-classification", convert_rt_polarity_folders, "rt-polarity",
                            "rt-polarity as a folder per class (train/pos/*.txt ...); the same split"),
    "mnist-rows": ("sequence-classification", convert_mnist_rows, None,
                   ("extra public data: MNIST t10k digits as sequences of 28 rows of 28 pixels (.npz), the first 4,000 "
                   "train, the last 2,000 test")),
}
ESTIMATOR_ROWS = ("pendigits-npz", "spoken-digits", "mnist-rows")   # --estimators: classification, .npz files
QUICK = {"forecasting": ["epochs=2", "windows_per_epoch=64"],
         "sequence-classification": ["epochs=1", "hidden_size=8"],
         "text-classification": ["epochs=1", "hidden_size=8", "embedding_dim=8"]}


# ================================================================================================ running
def _env():
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    env.setdefault("LSTMZOO_MIRROR", str(SHARED))
    return env


def _lstmzoo(*args, capture=True):
    exe = shutil.which("lstmzoo") or str(Path(sys.executable).with_name("lstmzoo"))
    done = subprocess.run([exe, *map(str, args)], env=_env(), capture_output=capture, text=True, cwd=ROOT,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"lstmzoo {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _display(path, work):
    return str(path).replace(str(work), "$WORK")


def rolling_one_step(run, task_hp_season, series, folder, work):
    """One-step forecasts at every point of each series' test part: ``lstmzoo predict`` on a file with one
    series per origin (its true history up to there). Returns per series the forecasts and scores."""
    ids, ds, ys, origins = [], [], [], []
    for name, (dates, values, cut) in series.items():
        for t in range(cut, len(values)):
            key = f"{name}@{t}"
            ids.append(np.full(t, key))
            ds.append(dates[:t])
            ys.append(values[:t])
            origins.append((key, name, t))
    path = folder / "origins.csv"
    ids, ds, ys = np.concatenate(ids), np.concatenate(ds), np.concatenate(ys)
    rows = np.char.add(np.char.add(np.char.add(np.char.add(ids, ","), ds), ","), ys.astype(str))
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    out = folder / "forecasts.csv"
    _lstmzoo("predict", "forecasting", "--checkpoint", run, "--input", path, "--output", out,
             "--plot", folder / "forecast.png")
    first = {}
    for line in out.read_text().splitlines()[1:]:
        key, _, value = line.rsplit(",", 2)
        first.setdefault(key.strip('"'), float(value))
    scores = {}
    for name, (dates, values, cut) in series.items():
        targets = np.arange(cut, len(values))
        forecast = np.array([first[f"{name}@{t}"] for t in targets])
        actual = values[targets]
        season = task_hp_season[name]
        history = values[:cut]
        scale = np.mean(np.abs(history[season:] - history[:-season]))
        naive, seasonal = values[targets - 1], values[targets - season]

        def score(f, actual=actual, scale=scale):
            return {"rmse": float(np.sqrt(np.mean((f - actual) ** 2))), "mae": float(np.mean(np.abs(f - actual))),
                    "mase": float(np.mean(np.abs(f - actual)) / scale)}

        scores[name] = {**score(forecast), **{f"naive_{k}": v for k, v in score(naive).items()},
                        **{f"seasonal_naive_{k}": v for k, v in score(seasonal).items()}, "season": season,
                        "points": len(targets)}
    path.unlink()
    return scores


def converted(name, convert, work):
    """``convert(work)``, or the files it wrote before (listed in ``work/data/NAME.json``; the conversions are
    deterministic, and the MFCC extraction takes minutes)."""
    manifest = work / "data" / f"{name}.json"
    if manifest.is_file():
        files = {k: Path(v) for k, v in json.loads(manifest.read_text()).items()}
        if all(path.exists() for path in files.values()):
            return files
    files = convert(work)
    manifest.write_text(json.dumps({k: str(v) for k, v in files.items()}))
    return files


def run_row(name, seeds, work, quick=False, settings=(), log=print):
    task, convert, zoo, what = ROWS[name]
    files = converted(name, convert, work) if task != "forecasting" else convert(work)
    runs = []
    for seed in seeds:
        run = work / "runs" / f"{name}-seed{seed}"
        if run.exists():
            shutil.rmtree(run)
        sets = [*(QUICK[task] if quick else []), *settings]
        args = ["train", task, "--data", files["data"], "--test-data", files["test"], "--out", run, "--seed", seed,
                *[a for s in sets for a in ("--set", s)]]
        code = checkout()
        started = time.perf_counter()
        _lstmzoo(*args)
        seconds = time.perf_counter() - started
        metrics = json.loads(_lstmzoo("evaluate", task, "--checkpoint", run, "--json").strip().splitlines()[-1])
        config = json.loads((run / "config.json").read_text())
        hp = config.get("hyperparameters", config.get("hp", {}))
        now = datetime.datetime.now(datetime.UTC)
        entry = {"seed": seed, "seconds": round(seconds, 1), "load": round(os.getloadavg()[0], 1), "code": code,
                 "date": datetime.date.today().isoformat(), "started": now.strftime("%H:%M"),
                 "task_metrics": metrics,
                 "settled": {k: hp.get(k) for k in ("horizon", "season", "window", "hidden_size", "batch_size",
                                                   "epochs") if k in hp}}
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        epochs = [h for h in history if "epoch" in h]
        if epochs:
            entry["epochs_run"] = max(h["epoch"] for h in epochs)
        if task == "forecasting":
            # The preprocessing the task chose for each training series (config.json's fitted record).
            entry["preprocessing"] = (config.get("fitted") or {}).get("preprocessing")
            seasons = {}
            for series_name in files["series"]:
                seasons[series_name] = _series_season(hp, series_name)
            entry["rolling"] = rolling_one_step(run, seasons, files["series"], run, work)
        runs.append(entry)
        log(f"{name} seed {seed}: {seconds:.0f} s, {json.dumps(_headline(task, entry))}")
    command = (f"lstmzoo train {task} --data {_display(files['data'], work)} --test-data "
               f"{_display(files['test'], work)} --seed {seeds[0]}"
               + "".join(f" --set {s}" for s in [*(QUICK[task] if quick else []), *settings]))
    return {"row": name, "task": task, "zoo": zoo, "what": what, "runs": runs, "command": command,
            "quick": quick, "settings": list(settings), "date": datetime.date.today().isoformat(),
            "cpu": bench.cpu_model()}


# ================================================================================================ the estimators
def npz_cases(path):
    """(X, y) of a sequence .npz as a user hands them to an estimator: ``X`` as the file has it, or, when the
    file has ``lengths``, a list of ``[T_i, C]`` arrays cut at them (padding is not data)."""
    with np.load(path, allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
        lengths = archive["lengths"] if "lengths" in archive.files else None
    if lengths is not None:
        X = [case[:length] for case, length in zip(X, lengths)]
    return X, y


def estimator_parameters(settings):
    """The ``LSTMClassifier`` parameters of ``--set name=value`` settings, parsed as the task parses them."""
    from lstmzoo.estimators import TASK_PARAMETERS
    from lstmzoo.tasks.sequences import SequenceClassificationTask
    declared = SequenceClassificationTask.all_hyperparameters()
    parameters = {}
    for setting in settings:
        name, _, text = setting.partition("=")
        if name not in TASK_PARAMETERS:
            raise SystemExit(f"--set {setting}: {name!r} is not an LSTMClassifier parameter "
                             f"({', '.join(TASK_PARAMETERS)})")
        parameters[name] = declared[name].parse(name, text)
    return parameters


def fit_estimator(spec):
    """The child process of ``--estimators``: fit ``LSTMClassifier(random_state=seed, **settings)`` on
    ``spec["data"]``'s arrays, score it on ``spec["test"]``'s, and compare with the command line's run
    ``spec["run"]`` (its weights) and its ``lstmzoo predict`` output ``spec["predictions"]``. Returns a JSON dict."""
    import csv

    from lstmzoo.checkpoint import load_weights, read_config
    from lstmzoo.estimators import LSTMClassifier
    from lstmzoo.tasks.reports import _number
    X, y = npz_cases(spec["data"])
    X_test, y_test = npz_cases(spec["test"])
    estimator = LSTMClassifier(random_state=spec["seed"], **estimator_parameters(spec["settings"]))
    started = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - started
    accuracy = float(estimator.score(X_test, y_test))
    labels, probabilities = estimator.predict(X_test), estimator.predict_proba(X_test)

    run = Path(spec["run"])
    trained = load_weights(run / "weights-best.safetensors")
    mine = estimator.model_.parameters()
    differing = sorted(name for name in trained.keys() | mine.keys()
                       if name not in trained or name not in mine or trained[name].shape != mine[name].shape
                       or not np.array_equal(trained[name], mine[name]))
    largest = max((float(np.max(np.abs(trained[n].astype(np.float64) - mine[n]))) for n in differing
                   if n in trained and n in mine and trained[n].shape == mine[n].shape), default=0.0)
    config = read_config(run)
    hp = config.get("hyperparameters", config.get("hp", {}))
    settled = sorted(k for k in estimator.hp_.keys() & hp.keys()
                     if k not in ("data", "test_data") and estimator.hp_[k] != hp[k])

    with open(spec["predictions"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [f"p_{c}" for c in estimator.classes_]
    text = [[_number(v) for v in case] for case in probabilities]
    label_mismatch = sum(row["label"] != str(label) for row, label in zip(rows, labels))
    proba_mismatch = sum([row[c] for c in columns] != case for row, case in zip(rows, text))
    return {"accuracy": accuracy, "seconds": round(seconds, 1), "epochs_run": int(estimator.n_iter_),
            "best_epoch": int(estimator.best_epoch_),
            "settled": {k: estimator.hp_[k] for k in ("hidden_size", "batch_size", "epochs")},
            "weights": {"tensors": len(trained), "differing": differing, "largest_difference": largest},
            "hyperparameters_differing": settled,
            "predictions": {"cases": len(y_test), "rows": len(rows), "labels_differing": label_mismatch,
                            "probabilities_differing": proba_mismatch}}


def compare_estimator(record, work, settings=(), quick=False, log=print):
    """For every run of ``record`` (``run_row``'s, whose run folders are still in ``work``): the same training
    through ``LSTMClassifier`` in a child process, and its figures beside the run's."""
    name, task = record["row"], record["task"]
    files = converted(name, ROWS[name][1], work)
    sets = [*(QUICK[task] if quick else []), *settings]
    runs = []
    for entry in record["runs"]:
        seed = entry["seed"]
        run = work / "runs" / f"{name}-seed{seed}"
        predictions = run / "estimator-check-predictions.csv"
        _lstmzoo("predict", task, "--checkpoint", run, "--input", files["test"], "--output", predictions)
        spec = {"data": str(files["data"]), "test": str(files["test"]), "seed": seed, "settings": sets,
                "run": str(run), "predictions": str(predictions)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fit-estimator", json.dumps(spec)],
                              env=_env(), capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode:
            raise RuntimeError(f"the estimator of {name} seed {seed} failed ({done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        cli = entry["task_metrics"]
        # "settled": the estimator's sizes, where the main table's runs keep theirs (tests read them there).
        runs.append({"seed": seed, "code": checkout(), "load": round(os.getloadavg()[0], 1),
                     "date": datetime.date.today().isoformat(), "settled": child["settled"],
                     "process_seconds": round(time.perf_counter() - started, 1),
                     "cli": {"accuracy": cli["accuracy"], "macro_f1": cli.get("macro_f1"),
                             "seconds": entry["seconds"], "epochs_run": entry.get("epochs_run"),
                             "code": entry.get("code")},
                     "estimator": child})
        log(f"{name} seed {seed} estimator: accuracy {child['accuracy']} (command line {cli['accuracy']}), "
            f"weights differing: {child['weights']['differing'] or 'none'}, predictions differing: "
            f"{child['predictions']['labels_differing']} labels, {child['predictions']['probabilities_differing']} "
            f"probability rows")
    return {"kind": "estimators", "row": name, "task": task, "what": record["what"], "runs": runs,
            "command": record["command"], "quick": quick, "settings": list(settings), "date": record["date"],
            "cpu": record["cpu"]}


SEASONS = {"airline": 12, "sunspots": 12, "temperatures": 7}


def _series_season(hp, name):
    """The season of the mase scale and the seasonal naive forecast: what the task infers from the series' own
    single-series file (monthly 12, daily 7), also in the long-CSV row, whose one file-wide season (7: most steps
    are daily) is not each series'."""
    return SEASONS[name]


def _headline(task, entry):
    if task == "forecasting":
        return {name: {k: round(v, 4) for k, v in s.items() if k in ("rmse", "mase", "naive_rmse",
                                                                   "seasonal_naive_rmse")}
                for name, s in entry["rolling"].items()}
    return {k: v for k, v in entry["task_metrics"].items()}


def checkout():
    """The commit the run's code is at, and "+ uncommitted changes" when lstmzoo/, kernels/ or zoo/ differ from it
    (other people edit the same checkout)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "lstmzoo", "kernels", "zoo/*.py")
    return head + (" + uncommitted changes" if dirty else "")


def zoo_figures():
    """{recipe: (metric, [values over seeds], date)} from zoo/RESULTS.md's record (as the checkout holds it now: the
    zoo's rows are re-run by others, so the comparison is with the figures of that date)."""
    text = ZOO_RESULTS.read_text()
    start = text.rfind("<!-- zoo-results")
    records = json.loads(text[start + len("<!-- zoo-results"):text.index("-->", start)])
    return {r["recipe"]: (r["metric"], [run["metrics"][r["metric"]] for run in r["runs"]], r["date"])
            for r in records}


def _spread(values, digits):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f} (one seed)"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}, {len(values)} seeds)"


def _series_lines(record, zoo):
    """One table line per series of a forecasting record."""
    lines = []
    names = list(record["runs"][0]["rolling"])
    for series_name in names:
        recipe = SERIES[series_name][0]
        scores = [run["rolling"][series_name] for run in record["runs"]]
        rmse = [s["rmse"] for s in scores]
        mase = [s["mase"] for s in scores]
        _, zoo_values, zoo_date = zoo[recipe]
        zoo_med = statistics.median(zoo_values)
        ratio = statistics.median(rmse) / zoo_med
        verdict = f"{ratio:.3f} x zoo: " + ("yes" if ratio <= 1.05 else "**no**")
        s = scores[0]
        baselines = (f"naive rmse {s['naive_rmse']:.4g} (mase {s['naive_mase']:.3g}), seasonal naive (m={s['season']}) "
                     f"rmse {s['seasonal_naive_rmse']:.4g} (mase {s['seasonal_naive_mase']:.3g})")
        own = [run["task_metrics"] for run in record["runs"]]
        own_text = (f"its own protocol ({record['runs'][0]['settled'].get('horizon')} steps from the cut): rmse "
                    f"{statistics.median([m['rmse'] for m in own]):.4g}, seasonal naive {own[0]['seasonal_naive_rmse']:.4g}"
                    if len(names) == 1 else
                    f"its own protocol (all series, {record['runs'][0]['settled'].get('horizon')} steps from the cut): "
                    f"rmse {statistics.median([m['rmse'] for m in own]):.4g}, mase "
                    f"{statistics.median([m['mase'] for m in own]):.3g} (seasonal naive mase {own[0]['seasonal_naive_mase']:.3g})")
        chosen = (record["runs"][0].get("preprocessing") or {}).get(series_name)
        chosen_text = "" if chosen is None else (
            f"; preprocessing chosen: {chosen.get('transform', 'none')} transform, "
            + (f"seasonal base (lag {chosen['lag']})" if chosen["lag"] > 1 else "the last value as base"))
        lines.append([f"{record['row']}" + (f": {series_name}" if len(names) > 1 else ""), record["what"],
                      f"rmse {_spread(rmse, 3)}; mase {_spread(mase, 3)}; {own_text}{chosen_text}",
                      f"`{recipe}` rmse {_spread(zoo_values, 3)} ({zoo_date})", verdict, baselines])
    return lines


def _class_line(record, zoo):
    runs = record["runs"]
    acc = [100 * run["task_metrics"]["accuracy"] for run in runs]
    m = runs[0]["task_metrics"]
    baselines = ", ".join(f"{k.replace('_accuracy', '')} {100 * v:.2f} %" for k, v in m.items()
                          if k.endswith("_accuracy"))
    if record["zoo"]:
        _, zoo_values, zoo_date = zoo[record["zoo"]]
        zoo_pct = [100 * v for v in zoo_values]
        gap = statistics.median(acc) - statistics.median(zoo_pct)
        zoo_text = f"`{record['zoo']}` {_spread(zoo_pct, 2)} % ({zoo_date})"
        verdict = f"{gap:+.2f} points: " + ("yes" if gap >= -1.0 else "**no**")
    else:
        zoo_text, verdict = "no zoo recipe", "n/a"
    return [record["row"], record["what"], f"accuracy {_spread(acc, 2)} %", zoo_text, verdict, baselines]


def _days(date):
    """A record's date as shown: each day once (records merged before merge kept the runs' dates repeated them)."""
    return " / ".join(sorted(set(date.split(" / "))))


def _record_lines(record, zoo):
    """The table lines of a record (one per series of a forecasting record)."""
    seconds = statistics.median([run["seconds"] for run in record["runs"]])
    seeds = " ".join(str(run["seed"]) for run in record["runs"])
    loads = [run["load"] for run in record["runs"] if "load" in run]
    tail = [f"{seconds:.0f}" + (f" (load {max(loads):.1f})" if loads else ""), f"`{record['command']}`" + (" (QUICK smoke test, not a result)" if record["quick"]
                                                           else "")
            + f"; the whole row: `python benchmarks/tasks.py --rows {record['row']} --seeds {seeds}"
            + "".join(f" --set {x}" for x in record["settings"]) + "`",
            f"{_days(record['date'])}, {record['cpu']}"
            + "".join(f"; seed {run['seed']}: code {run['code']}" for run in record["runs"] if "code" in run)]
    body = _series_lines(record, zoo) if record["task"] == "forecasting" else [_class_line(record, zoo)]
    if record["settings"]:
        body = [[cells[0] + "".join(f" `--set {x}`" for x in record["settings"]), *cells[1:]] for cells in body]
    return ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells + tail) + " |"
            for cells in body]


ESTIMATOR_COLUMNS = ["row", "seeds", "command line: test accuracy", "estimator: test accuracy",
                     "weights bit for bit the run's", "predictions (labels, probabilities as printed)",
                     "train s: command line / estimator fit (median)", "reproduce", "date, CPU"]


def _estimator_lines(record):
    """The table line of an ``--estimators`` record."""
    runs = record["runs"]
    seeds = [run["seed"] for run in runs]

    def each(values):
        return " / ".join(values) + (f" (seeds {' / '.join(map(str, seeds))})" if len(seeds) > 1 else "")

    cli = each([f"{100 * run['cli']['accuracy']:.2f} %" for run in runs])
    mine = each([f"{100 * run['estimator']['accuracy']:.2f} %" for run in runs])
    same_accuracy = all(run["cli"]["accuracy"] == run["estimator"]["accuracy"] for run in runs)
    mine += "; " + ("the same" if same_accuracy else "**differs**")
    tensors = runs[0]["estimator"]["weights"]["tensors"]
    apart = [run for run in runs if run["estimator"]["weights"]["differing"]]
    weights = (f"yes, all {tensors} tensors, {len(runs)} of {len(runs)} seeds" if not apart else
               "**no**: " + "; ".join(f"seed {run['seed']}: {', '.join(run['estimator']['weights']['differing'])} "
                                      f"(largest difference {run['estimator']['weights']['largest_difference']:.3g})"
                                      for run in apart))
    settled = [run for run in runs if run["estimator"]["hyperparameters_differing"]]
    if settled:
        weights += "; settled hyperparameters differ: " + "; ".join(
            f"seed {run['seed']}: {', '.join(run['estimator']['hyperparameters_differing'])}" for run in settled)
    cases = runs[0]["estimator"]["predictions"]["cases"]
    off = [run for run in runs if run["estimator"]["predictions"]["labels_differing"]
           or run["estimator"]["predictions"]["probabilities_differing"]
           or run["estimator"]["predictions"]["rows"] != run["estimator"]["predictions"]["cases"]]
    predictions = (f"identical on all {cases:,} test cases, {len(runs)} of {len(runs)} seeds" if not off else
                   "**no**: " + "; ".join(f"seed {run['seed']}: {run['estimator']['predictions']['labels_differing']} "
                                          f"labels, {run['estimator']['predictions']['probabilities_differing']} "
                                          f"probability rows differ" for run in off))
    seconds = (f"{statistics.median([run['cli']['seconds'] for run in runs]):.0f} / "
               f"{statistics.median([run['estimator']['seconds'] for run in runs]):.0f}")
    loads = [run["load"] for run in runs if "load" in run]
    seconds += f" (load {max(loads):.1f})" if loads else ""
    first = seeds[0]
    parameters = "".join(f", {s}" for s in [*(QUICK[record["task"]] if record["quick"] else []),
                                             *record["settings"]])
    reproduce = (f"`{record['command']}`" + (" (QUICK smoke test, not a result)" if record["quick"] else "")
                 + f" beside `LSTMClassifier(random_state={first}{parameters}).fit(X, y).score(X_test, y_test)`, "
                 f"X, y = the training .npz's X, y (cut at lengths) and X_test, y_test the test .npz's; the whole "
                 f"row: `python benchmarks/tasks.py --rows {record['row']} --seeds {' '.join(map(str, seeds))}"
                 + "".join(f" --set {x}" for x in record["settings"]) + (" --quick" if record["quick"] else "")
                 + " --estimators`")
    date = (f"{_days(record['date'])}, {record['cpu']}"
            + "".join(f"; seed {run['seed']}: code {run['code']}" for run in runs if "code" in run))
    cells = [record["row"] + "".join(f" `--set {x}`" for x in record["settings"]), " ".join(map(str, seeds)),
             cli, mine, weights, predictions, seconds, reproduce, date]
    return ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"]


def render(records):
    estimators = sorted((k for k in records if records[k].get("kind") == "estimators"),
                        key=lambda k: (list(ROWS).index(records[k]["row"]), k))
    zoo = zoo_figures()
    columns = ["row", "the user's file", "task defaults (median (range) over seeds)", "tuned zoo recipe (RESULTS.md)",
               "within 1 point / 5 % rmse", "non-LSTM baselines (same test set)", "train s (median)", "reproduce",
               "date, CPU"]
    lines = ["# Task defaults against the tuned zoo recipes", "",
             ("Written by `python benchmarks/tasks.py` (do not edit by hand). Each row: a shared dataset converted to "
             "the files a user would have, then `lstmzoo train TASK --data TRAIN --test-data TEST --seed S` with "
             "**no --set** (the task's defaults), one training at a time with `NUMBA_NUM_THREADS=1`, on a machine "
             "shared with other work; scored by `lstmzoo evaluate TASK --checkpoint RUN --json`. The test set is the "
             "zoo recipe's own (the zoo's train/test split written as --data / --test-data); the task takes its "
             "validation part out of --data. `$WORK` is the work folder (`--work`, default /tmp/lstmzoo-tasks) "
             "that `python benchmarks/tasks.py --rows ROW` fills. Train seconds: the wall time of `lstmzoo train` "
             "(start-up, reading, Numba compilation or cache load, training, the final evaluation); where shown, "
             "(load L) is the machine's highest 1-minute load average at the end of the row's trainings (2 cores: "
             "above 2, other work slowed them). Other people change the same checkout while these rows run: a run "
             "records the commit it ran on (\"code\", with \"+ uncommitted changes\" when lstmzoo/, kernels/ or "
             "zoo/ differed from it); runs recorded before that field existed ran on the checkout of their time, "
             "which `git log zoo/TASK-RESULTS.md` dates."), "",
             ("**Forecasting protocol.** The zoo's time-series recipes score one-step-ahead forecasts at every point "
             "of a long test part (airline: the last 48 months; sunspots: the last 931 months; temperatures: 1990), "
             "each from the true history before it. The task forecasts `horizon` values (default one season: 12 "
             "monthly, 7 daily) from the end of each series, so its own `evaluate` scores only the first `horizon` "
             "test values, several steps ahead. For a fair comparison the task is trained on the series up to "
             "the zoo's test start (its defaults hold out the last 10 % of that, at least `horizon` values, for early "
             "stopping), then "
             "`lstmzoo predict forecasting --checkpoint RUN --input ORIGINS.csv` is given one series per origin t of "
             "the zoo's test part (the true history up to t, its own `unique_id`, which the run never saw: predict "
             "scales each by its own history and chooses its preprocessing (log, seasonal base) by the task's rule on "
             "that history, as for any user input), and the first forecast value of each is the one-step forecast of "
             "value t: the same points, the same information and the same rmse as the zoo's. mase = that MAE over "
             "the in-sample MAE of the seasonal naive forecast on the training part (the task's season m). The "
             "naive (previous value) and seasonal naive (m back) forecasts are scored on the same points. The "
             "task's own protocol figure is shown beside it (not comparable with the zoo's)."), "",
             "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    trials = sorted((k for k in records if records[k]["settings"] and k not in estimators),
                    key=lambda k: (list(ROWS).index(records[k]["row"]), k))
    missing = [name for name in ROWS if name not in records]
    lines += [line for name in ROWS if name in records for line in _record_lines(records[name], zoo)]
    if missing:
        lines += ["", "Not measured (no time left in this session): " + ", ".join(missing) + "."]
    if estimators:
        lines += ["", "## The estimators against the command line", "",
                  ("Written by `python benchmarks/tasks.py --rows ROW --seeds S ... --estimators` (do not edit by "
                  "hand). For each seed, the command line's run of the table above (the same run, the same files), "
                  "then in a separate Python process (`NUMBA_NUM_THREADS=1`) `lstmzoo.estimators.LSTMClassifier("
                  "random_state=S)`, every other parameter its default (the task's defaults), fitted on the training "
                  ".npz's `X` and `y` as `np.load` gives them (a list of `[T_i, C]` arrays cut at `lengths` where "
                  "the file has them) and scored with `.score` on the test .npz's. Weights: the fitted `model_`'s "
                  "parameters against the run's `weights-best.safetensors`, every tensor compared bit for bit. "
                  "Predictions: `.predict` and `.predict_proba` (printed as the command line prints them, 6 "
                  "significant digits) against `lstmzoo predict sequence-classification --checkpoint RUN --input "
                  "TEST --output FILE`. Train s: `lstmzoo train`'s wall time (start-up, reading, Numba compilation or "
                  "cache load, training, the final evaluation with its majority and 1-NN baselines) and the "
                  "estimator's `fit` call alone (not its process's start-up or the reading of the .npz files)."), "",
                  "| " + " | ".join(ESTIMATOR_COLUMNS) + " |", "|" + " --- |" * len(ESTIMATOR_COLUMNS)]
        lines += [line for name in estimators for line in _estimator_lines(records[name])]
    if trials:
        lines += ["", ("**Trials of other settings** (`--set`: NOT the defaults; the evidence for the proposed "
                  "defaults, on the same files and test sets):"), "", "| " + " | ".join(columns) + " |",
                  "|" + " --- |" * len(columns)]
        lines += [line for name in trials for line in _record_lines(records[name], zoo)]
    ordered = ([records[n] for n in ROWS if n in records] + [records[k] for k in sorted(trials)]
               + [records[k] for k in estimators])
    lines += ["", RECORD_START, json.dumps(ordered, indent=1), RECORD_END, ""]
    return "\n".join(lines)


def read_records(path):
    path = Path(path)
    if not path.is_file():
        return {}
    text = path.read_text()
    start = text.rfind(RECORD_START)
    if start < 0:
        return {}
    return {key(r): r for r in json.loads(text[start + len(RECORD_START):text.index(RECORD_END, start)])}


def key(record):
    """A record's place in the file: its row, and for a trial its --set values; an ``--estimators`` record's
    begins with "estimators"."""
    return " ".join([*(["estimators"] if record.get("kind") == "estimators" else []), record["row"],
                     *(f"--set {s}" for s in record["settings"])])


def merge(old, new):
    """``new``'s runs added to ``old``'s (a seed run again replaces its old run) when both ran the same settings
    (quick or not, the same --set); otherwise ``new`` alone."""
    if old is None or (old["quick"], old["settings"]) != (new["quick"], new["settings"]):
        return new
    seeds = {run["seed"] for run in new["runs"]}
    runs = sorted([run for run in _dated(old) if run["seed"] not in seeds] + _dated(new), key=lambda r: r["seed"])
    first = runs[0]["seed"]
    command = new["command"].rsplit(" --seed ", 1)
    tail = command[1].split(" ", 1)
    command = f"{command[0]} --seed {first}" + (f" {tail[1]}" if len(tail) > 1 else "")
    # The record's date: those of the runs it keeps (a run from before runs were dated: its old record's dates).
    dates = sorted({day for run in runs for day in run.get("date", old["date"]).split(" / ")})
    return {**new, "runs": runs, "command": command, "date": " / ".join(dates)}


def _dated(record):
    """The runs of ``record``, each with its date: a run recorded before runs had one gets its record's date when
    the record has a single one."""
    single = " / " not in record["date"]
    return [{**run, "date": record["date"]} if "date" not in run and single else run for run in record["runs"]]


def write(path, new):
    """Merge the ``new`` records into the file at ``path`` (runs of the same row and settings are added by seed)
    and rebuild it."""
    records = read_records(path)
    records.update({key(r): merge(records.get(key(r)), r) for r in new})
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(render(records))
    tmp.replace(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS), metavar="NAME",
                        help=f"rows to run (default: all): {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test; marked in the table)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="override a task default: a trial, written to the trials table below the defaults' "
                             "table, never into it")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lstmzoo-tasks")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--estimators", action="store_true",
                        help="also train each seed through lstmzoo.estimators.LSTMClassifier and compare it with "
                             "the command line's run (sequence-classification rows of .npz files)")
    parser.add_argument("--fit-estimator", metavar="SPEC", help=argparse.SUPPRESS)   # --estimators' child
    args = parser.parse_args(argv)
    if args.fit_estimator:
        print(json.dumps(fit_estimator(json.loads(args.fit_estimator))), flush=True)
        return
    if args.estimators:
        wrong = [name for name in args.rows if name not in ESTIMATOR_ROWS]
        if wrong:
            parser.error(f"--estimators compares sequence-classification rows of .npz files; not {', '.join(wrong)}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.quick and args.results == RESULTS:      # a smoke test never lands in the real table
        args.results = args.work / "TASK-RESULTS-quick.md"
    for name in args.rows:
        record = run_row(name, args.seeds, args.work, quick=args.quick, settings=args.settings,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
        if args.settings:
            print(json.dumps(record), flush=True)
        write(args.results, [record])
        print(f"wrote {args.results} ({name})", file=sys.stderr, flush=True)
        if args.estimators:
            compared = compare_estimator(record, args.work, settings=args.settings, quick=args.quick,
                                         log=lambda line: print(line, file=sys.stderr, flush=True))
            write(args.results, [compared])
            print(f"wrote {args.results} ({name}, the estimators)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
