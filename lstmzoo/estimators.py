"""scikit-learn estimators over the tasks: ``LSTMClassifier`` and ``LSTMRegressor`` (sequence classification and
regression), and ``LSTMForecaster`` (forecasting, described in its own docstring).

They are the ``sequence-classification`` and ``sequence-regression`` tasks of ``lstmzoo.tasks.sequences``
with the arrays handed over in memory instead of read from a file: the same settled sizes, preprocessing
(channels standardised on the training part, class weights, standardised targets), model, batching and early
stopping. Every case given to ``fit`` trains or validates (``val_fraction`` of them, stratified by class, pick
the best epoch and stop training early); nothing is held out for testing, which is the caller's business
(``cross_val_score``, ``train_test_split``). Fitted on the cases of a ``--data`` file, in the file's order,
with the settings and ``random_state`` of ``lstmzoo train TASK --data FILE --test-data TEST --seed S``, an
estimator trains exactly the model that command does.

X is an array ``[N, T, C]`` (N cases of T steps of C values), ``[N, T]`` (one value per step), or a list of N
arrays ``[T_i, C]`` or ``[T_i]`` of different lengths, which reach the kernels with their lengths: padding
never enters the maths. Every case of an array is T steps long; give a list for cases of different lengths.
``n_features_in_`` is C, the values per time step.

``random_state`` is the task's ``seed`` (weight initialisation, dropout, shuffling): an int is used as it is
(``random_state=3`` trains what ``--seed 3`` does); None draws one from NumPy's global generator and a
``numpy.random.RandomState`` from itself, as scikit-learn's ``check_random_state`` does.

``save(folder)`` writes ``weights.safetensors`` (PyTorch's parameter names) and ``estimator.json``
(parameters, settled hyperparameters, fitted preprocessing, the classes); ``load(folder)`` reads them back.
No pickle.
"""

import secrets
import tempfile
from pathlib import Path

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d
except ModuleNotFoundError:
    raise ImportError("lstmzoo.estimators needs scikit-learn: pip install 'lstmzoo[sklearn]'") from None

from lstmzoo.checkpoint import (
    CheckpointError,
    load_weights_and_metadata,
    read_config,
    read_json,
    save_weights,
    write_json,
)
from lstmzoo.errors import UserError
from lstmzoo.tasks.forecasting import ForecastingTask
from lstmzoo.tasks.readers import Frequency, SequenceSet, SeriesSet
from lstmzoo.tasks.sequences import SequenceClassificationTask, SequenceRegressionTask

__all__ = ["LSTMClassifier", "LSTMForecaster", "LSTMRegressor"]

ESTIMATOR_FILE = "estimator.json"
WEIGHTS_FILE = "weights.safetensors"
SERIES_FILE = "series.safetensors"      # LSTMForecaster: the series it was fitted on, which predict() continues
SAVE_ID = "lstmzoo.estimator.save_id"    # in both files: a folder whose files come from two saves is refused
FORMAT = "lstmzoo-estimator-1"

# The constructor's arguments that are the task's hyperparameters of the same names (the rest: random_state,
# verbose).
TASK_PARAMETERS = ("hidden_size", "num_layers", "bidirectional", "dropout", "epochs", "batch_size", "lr",
                   "patience", "clip_norm", "val_fraction", "device")


def as_sequences(X):
    """``(X float64 [N, T_max, C] zero past each length, lengths int64 [N])`` from an array ``[N, T, C]``
    or ``[N, T]`` or a list of ``[T_i, C]`` or ``[T_i]`` arrays; ValueError (TypeError for a sparse matrix)
    saying what is wrong."""
    if hasattr(X, "toarray"):        # a SciPy sparse matrix or array
        raise TypeError("X is a sparse matrix; the LSTM estimators take a dense array [N, T, C] or [N, T], "
                        "or a list of [T_i, C] arrays")
    if not isinstance(X, (list, tuple)):
        X = np.asarray(X)
    ragged = isinstance(X, (list, tuple)) or (X.dtype == object and X.ndim == 1)
    if ragged:
        cases = [_numbers(case, f"X[{i}]") for i, case in enumerate(X)]
        cases = [case[:, None] if case.ndim == 1 else case for case in cases]
        for i, case in enumerate(cases):
            if case.ndim != 2:
                raise ValueError(f"X[{i}] is shaped {list(case.shape)}; each case must be [T_i, C] or [T_i]")
        if len({case.shape[1] for case in cases}) > 1:
            first = next(i for i, case in enumerate(cases) if case.shape[1] != cases[0].shape[1])
            raise ValueError(f"X[{first}] has {cases[first].shape[1]} values per time step, X[0] has "
                             f"{cases[0].shape[1]}; every case needs the same")
        lengths = np.array([len(case) for case in cases], dtype=np.int64)
        channels = cases[0].shape[1] if cases else 0
        padded = np.zeros((len(cases), lengths.max(initial=0), channels))
        for case, length, row in zip(cases, lengths, padded):
            row[:length] = case
    else:
        padded = _numbers(X, "X")
        if padded.ndim == 2:
            padded = padded[:, :, None]
        if padded.ndim == 1:
            raise ValueError("X is a 1D array; Reshape your data: [1, T] for one sequence of T values, [N, 1] "
                             "for N sequences of one value")
        if padded.ndim != 3:
            raise ValueError(f"X is shaped {list(padded.shape)}; expected a 3D array [N, T, C], a 2D array "
                             f"[N, T] (one value per step) or a list of [T_i, C] arrays")
        lengths = np.full(len(padded), padded.shape[1], dtype=np.int64)
    if len(padded) == 0:
        raise ValueError("X holds 0 sequences; at least 1 is needed")
    if padded.shape[2] == 0:
        raise ValueError("X has 0 values per time step (C = 0); at least 1 is needed")
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise ValueError(f"X[{empty[0]}] is an empty sequence; each case needs at least one step")
    return padded, lengths


def _numbers(values, name):
    array = np.asarray(values)
    if array.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"Input {name} contains NaN or infinity; fill or drop the missing values first")
    return array


def _plain(value):
    """A NumPy scalar (a grid search's np.int64) as the Python number the task's hyperparameters take."""
    return value.item() if isinstance(value, np.generic) else value


def _seed(random_state):
    """The task's ``seed`` for ``random_state`` (see the module docstring)."""
    seed = _plain(random_state)
    if not isinstance(seed, int):
        seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
    return seed


def _saved_params(estimator, hp):
    """``get_params()`` as JSON values; a RandomState (not JSON) as the seed it gave."""
    params = {name: _plain(value) for name, value in estimator.get_params().items()}
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = hp["seed"]
    return params


def _save(folder, state, tensors):
    """Write ``estimator.json`` (``state``) and the safetensors files ``tensors`` (file name -> arrays) into
    ``folder``, each atomically, all marked with one save id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state, "save_id": secrets.token_hex(16)}
    for name, arrays in tensors.items():
        save_weights(folder / name, arrays, metadata={SAVE_ID: state["save_id"]})
    write_json(folder / ESTIMATOR_FILE, state)


def _load(folder, cls, names):
    """``(state, {file name: arrays})`` that ``_save`` wrote into ``folder`` for an estimator of class ``cls``;
    CheckpointError (one sentence) when the folder holds none, another kind, or files of two different saves."""
    folder = Path(folder)
    state = read_json(folder / ESTIMATOR_FILE)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{folder / ESTIMATOR_FILE} is not an estimator saved by lstmzoo")
    if state.get("estimator") != cls.__name__:
        raise CheckpointError(f"{folder} holds an {state.get('estimator')}, not an {cls.__name__}")
    tensors = {}
    for name in names:
        tensors[name], metadata = load_weights_and_metadata(folder / name)
        if metadata.get(SAVE_ID) != state["save_id"]:
            raise CheckpointError(f"{folder / name} and {folder / ESTIMATOR_FILE} come from different saves; save "
                                  f"the estimator again")
    return state, tensors


class _SequenceEstimator(BaseEstimator):
    """What the classifier and the regressor share; ``task_class`` is the task they run."""
    task_class = None

    def __init__(self, hidden_size=0, num_layers=1, bidirectional=True, dropout=0.2, epochs=100, batch_size=0,
                 lr=0.002, patience=15, clip_norm=1.0, val_fraction=0.1, device="cpu", random_state=None,
                 verbose=False):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.clip_norm = clip_norm
        self.val_fraction = val_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Train on the cases ``X`` with targets ``y`` (``val_fraction`` of them for early stopping); returns
        self. ValueError for data or a hyperparameter the task refuses."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, lengths = as_sequences(X)
        check_consistent_length(X, y)
        targets = self._targets(y)
        if len(targets) < 2:
            raise ValueError("fit got 1 sample; it needs at least 2 (one trains, one validates)")
        task = self.task_class()
        hp = task.resolve({**{name: _plain(getattr(self, name)) for name in TASK_PARAMETERS},
                           "seed": _seed(self.random_state)})
        names = [f"x{c}" for c in range(X.shape[2])]
        cases = SequenceSet(Path("<array X>"), X, lengths, targets, names, task.kind)
        hp = task.settle(hp, cases)
        data = task.prepare(cases, hp, hold_out_test=False)
        with tempfile.TemporaryDirectory(prefix="lstmzoo-estimator-") as folder:
            trained = task.train(hp, Path(folder) / "run", progress=bool(self.verbose), data=data,
                                 learning_curve=False)
        self.model_, self.hp_, self.preprocessing_ = trained.model, hp, data.fitted
        self.n_features_in_ = X.shape[2]
        self.n_iter_, self.best_epoch_ = trained.result.epochs_run, trained.result.best_epoch
        return self

    def _split(self, X):
        """The task's preprocessed ``Split`` of the cases ``X``, checked against what fit saw."""
        check_is_fitted(self)
        X, lengths = as_sequences(X)
        if X.shape[2] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[2]} values per time step, but {type(self).__name__} was fitted "
                             f"with {self.n_features_in_}")
        return self.task_class()._prepared(self.preprocessing_, X, lengths, None)

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path):
        """Write the fitted estimator into the folder ``path`` (made if missing): ``weights.safetensors`` and
        ``estimator.json``, each atomically. ValueError when its classes are not JSON values."""
        check_is_fitted(self)
        state = {"estimator": type(self).__name__, "params": _saved_params(self, self.hp_),
                 "hyperparameters": self.hp_, "preprocessing": self.preprocessing_,
                 "n_features_in": self.n_features_in_, "n_iter": self.n_iter_, "best_epoch": self.best_epoch_,
                 **self._saved_targets()}
        _save(path, state, {WEIGHTS_FILE: self.model_.parameters()})

    @classmethod
    def load(cls, path):
        """The estimator ``save`` wrote into the folder ``path``; CheckpointError (a ValueError, one sentence)
        when the folder holds none, another kind of estimator, or files of two different saves."""
        state, tensors = _load(path, cls, [WEIGHTS_FILE])
        task = cls.task_class()
        estimator = cls(**state["params"])
        estimator.hp_ = task.resolve(state["hyperparameters"])
        estimator.model_ = task.build_model(estimator.hp_)
        estimator.model_.load_parameters(tensors[WEIGHTS_FILE])
        estimator.model_.eval()
        estimator.preprocessing_ = state["preprocessing"]
        estimator.n_features_in_, estimator.n_iter_ = state["n_features_in"], state["n_iter"]
        estimator.best_epoch_ = state["best_epoch"]
        estimator._restore_targets(state)
        return estimator

    def _saved_targets(self):
        return {}

    def _restore_targets(self, state):
        pass


class LSTMClassifier(ClassifierMixin, _SequenceEstimator):
    """A bidirectional LSTM classifier of sequences (the ``sequence-classification`` task) with scikit-learn's
    conventions. y holds labels of any type (``classes_`` keeps them, sorted; ``predict`` returns them).

    Parameters (the task's hyperparameters, ``lstmzoo info sequence-classification``): ``hidden_size`` (0: 32
    below 500 cases, 64 below 5,000, else 128, raised to the power of two at or above the values per step and the
    classes, that raise at most 256), ``num_layers``, ``bidirectional``, ``dropout``, ``epochs``, ``batch_size``
    (0: a 20th of the cases, 8 to 64, at most 65,536 time steps a batch), ``lr``, ``patience`` (0: never stop early),
    ``clip_norm``, ``val_fraction``, ``device`` ("cpu" or "cuda"); ``random_state`` (see the module
    docstring); ``verbose`` shows the training's progress on stderr.

    Fitted attributes: ``classes_``, ``n_features_in_`` (values per time step), ``n_iter_`` (epochs run),
    ``best_epoch_`` (whose weights the model holds), ``model_``, ``hp_`` (the settled hyperparameters) and
    ``preprocessing_`` (what the task fitted).
    """
    task_class = SequenceClassificationTask

    def _targets(self, y):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs at least two")
        # The task's class k is classes_[order[k]]: the classes in the order of their text, which is how the
        # command line, reading labels from a file as text, orders them (so both split and train alike).
        rank = np.empty(len(self.classes_), dtype=np.int64)
        rank[self._text_order()] = np.arange(len(self.classes_))
        return rank[encoded]

    def _text_order(self):
        return np.argsort(self.classes_.astype(str), kind="stable")

    def predict_proba(self, X):
        """``[N, n_classes]`` class probabilities, columns in the order of ``classes_``."""
        split = self._split(X)
        in_task_order = self.task_class().probabilities(self.model_, split, self.hp_)
        probabilities = np.empty_like(in_task_order)
        probabilities[:, self._text_order()] = in_task_order
        return probabilities

    def predict(self, X):
        """The most probable label of each case."""
        probabilities = self.predict_proba(X)
        return self.classes_[probabilities.argmax(axis=1)]

    def _saved_targets(self):
        values = self.classes_.tolist()
        if not all(isinstance(value, (str, int, float, bool)) for value in values):
            kinds = sorted({type(value).__name__ for value in values})
            raise ValueError(f"the classes are {', '.join(kinds)} values, which JSON cannot hold; fit with "
                             f"labels that are strings, integers, floats or booleans to save the classifier")
        return {"classes": values, "classes_dtype": self.classes_.dtype.str}

    def _restore_targets(self, state):
        self.classes_ = np.array(state["classes"], dtype=np.dtype(state["classes_dtype"]))


class LSTMRegressor(RegressorMixin, _SequenceEstimator):
    """A bidirectional LSTM regressor of sequences (the ``sequence-regression`` task): one number per case,
    with scikit-learn's conventions. Parameters and fitted attributes as ``LSTMClassifier``'s (no
    ``classes_``); the target is standardised on the training part and predictions are in its own units."""
    task_class = SequenceRegressionTask

    def _targets(self, y):
        return column_or_1d(check_array(y, ensure_2d=False, dtype=np.float64, input_name="y"), warn=True)

    def predict(self, X):
        """The predicted target of each case, float64 ``[N]``."""
        split = self._split(X)
        return self.task_class().predictions(self.model_, split, self.hp_, self.preprocessing_)


# The LSTMForecaster's arguments that are the forecasting task's hyperparameters of the same names; None stands for
# the task's default (``lstmzoo info forecasting``), whatever it is in this version.
FORECAST_PARAMETERS = ("horizon", "season", "window", "hidden_size", "num_layers", "dropout", "epochs",
                       "windows_per_epoch", "batch_size", "lr", "patience", "clip_norm", "val_fraction", "device")


class LSTMForecaster(BaseEstimator):
    """One global LSTM forecasting one or many series (the ``forecasting`` task) with scikit-learn's conventions:
    ``fit(y)`` then ``predict()``.

    ``fit(y)``: ``y`` is one series (a 1-D array of its values in time order, equally spaced) or many (a list of
    1-D arrays, of any lengths; a 2-D array is its rows); they train ONE model, each series scaled on its own.
    The last ``val_fraction`` (10 %) of every series' values, at least ``horizon``, validate (early stopping, on
    forecasts from rolling origins through them) and the rest train; nothing is held out for testing. Missing values (NaN) are refused: fill them first. ``predict()`` forecasts the next
    ``horizon`` values of each fitted series: an array ``[horizon]`` after fitting one series, ``[n_series,
    horizon]`` after a list. ``predict(y)`` forecasts the next values of the histories ``y`` (the same shapes);
    when ``y`` holds as many series as ``fit`` had, series ``k`` continues fitted series ``k`` (its preprocessing
    as chosen in ``fit``), otherwise they are new series.

    It runs the task's own code on the series written as a file: fitted with ``random_state=S`` and the same
    settings, it trains exactly the model ``lstmzoo train forecasting --data Y.csv --test-data NEXT.csv --seed
    S`` does (Y.csv the series in long format, NEXT.csv the values that follow them), and ``predict()`` gives
    what ``lstmzoo predict forecasting`` gives for Y.csv. The time steps are 1, 2, 3, ...: a series given as
    an array has no calendar, so ``season`` is not inferred; set it (12 for monthly data with a yearly cycle,
    7 for daily data with a weekly one, ...), else it is 1 and ``horizon`` defaults to 1.

    Parameters: the task's hyperparameters of the same names (``lstmzoo info forecasting``), None standing for
    the task's default: ``horizon`` (steps ahead), ``season``, ``window`` (past values read per forecast),
    ``hidden_size``, ``num_layers``, ``dropout``, ``epochs``, ``windows_per_epoch``, ``batch_size``, ``lr``,
    ``patience``, ``clip_norm``, ``val_fraction`` (each series' validation part: this share of its values, at
    least ``horizon``; 0: ``horizon`` values), ``device``; ``random_state`` as the other estimators'; ``verbose`` shows the
    training's progress on stderr.

    Fitted attributes: ``horizon_``, ``season_``, ``n_series_``, ``single_series_`` (fitted on one series),
    ``series_`` (the fitted series), ``n_iter_`` (epochs run), ``best_epoch_``, ``model_``, ``hp_`` (the settled hyperparameters) and ``preprocessing_`` (what the task chose per series).

    Not a scikit-learn regressor, and ``parametrize_with_checks`` does not apply: those checks call ``fit(X, y)``
    with a table X of independent rows and score ``predict(X)`` row by row, while a forecaster learns from the
    order of one or more series' values and predicts their future, with no X at all (as sktime's and Darts'
    forecasters, which have their own interfaces, ``fit(y)`` / ``predict(fh)``). ``get_params``/``set_params``
    and ``clone`` work, so it can be tuned in a loop of your own (a time-ordered split: fit on the start of each
    series, score on what follows).
    """

    def __init__(self, horizon=None, season=None, window=None, hidden_size=None, num_layers=None, dropout=None,
                 epochs=None, windows_per_epoch=None, batch_size=None, lr=None, patience=None, clip_norm=None,
                 val_fraction=None, device=None, random_state=None, verbose=False):
        self.horizon = horizon
        self.season = season
        self.window = window
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.epochs = epochs
        self.windows_per_epoch = windows_per_epoch
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.clip_norm = clip_norm
        self.val_fraction = val_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, y, X=None):
        """Train on the series ``y`` (see the class docstring); returns self. ``X`` must be None (no exogenous
        values). ValueError for series or a hyperparameter the task refuses."""
        if X is not None:
            raise ValueError("LSTMForecaster takes no X: fit(y) on the series themselves")
        series, self.single_series_ = _as_series(y, "y")
        task = ForecastingTask()
        settings = {name: _plain(getattr(self, name)) for name in FORECAST_PARAMETERS}
        hp = task.resolve({**{k: v for k, v in settings.items() if v is not None}, "seed": _seed(self.random_state)})
        with tempfile.TemporaryDirectory(prefix="lstmzoo-forecaster-") as folder:
            folder = Path(folder)
            data = _write_long_csv(folder / "y.csv", series)
            following = {"data": str(data), "test_data": str(folder / "next.csv")}
            hp = _as_value_error(lambda: task.settle({**hp, **following}, check_test_data=False),
                                 folder)
            # The values that follow each series, which the task scores as its test part: fit does not score, so
            # any finite values do (the last one held).
            _write_long_csv(folder / "next.csv", [np.full(hp["horizon"], s[-1]) for s in series])
            trained = _as_value_error(lambda: task.train(hp, folder / "run", progress=bool(self.verbose),
                                                         learning_curve=False), folder)
            self.preprocessing_ = read_config(folder / "run").get("fitted")
        self.model_ = trained.model
        self.hp_ = {**hp, "data": "", "test_data": ""}      # its temporary files are gone
        self.series_ = series
        self.horizon_, self.season_, self.n_series_ = hp["horizon"], hp["season"], len(series)
        self.n_iter_, self.best_epoch_ = trained.result.epochs_run, trained.result.best_epoch
        return self

    # ---------------------------------------------------------------------------------------- predict
    def predict(self, y=None):
        """The next ``horizon_`` values of each fitted series (``y`` None), or of the histories ``y``: ``[horizon]``
        for one series, ``[n_series, horizon]`` for a list."""
        check_is_fitted(self)
        if y is None:
            series, one = self.series_, self.single_series_
        else:
            series, one = _as_series(y, "y")
        # Histories as many as the fitted series continue them (their names, so their recorded preprocessing).
        names = [str(k) if len(series) == self.n_series_ else f"new {k}" for k in range(len(series))]
        forecast = ForecastingTask().forecast(self.model_, self.hp_, _series_set(series, names, self.hp_["season"]),
                                              self.preprocessing_ or {})
        return forecast[0] if one else forecast

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path):
        """Write the fitted forecaster into the folder ``path`` (made if missing): ``weights.safetensors``,
        ``series.safetensors`` (the fitted series, which ``predict()`` continues) and ``estimator.json``, each
        atomically."""
        check_is_fitted(self)
        state = {"estimator": type(self).__name__, "params": _saved_params(self, self.hp_),
                 "hyperparameters": self.hp_, "preprocessing": self.preprocessing_, "one_series": self.single_series_,
                 "n_iter": self.n_iter_, "best_epoch": self.best_epoch_}
        lengths = [len(s) for s in self.series_]
        series = {"values": np.concatenate(self.series_), "starts": np.r_[0, np.cumsum(lengths)].astype(np.int64)}
        _save(path, state, {WEIGHTS_FILE: self.model_.parameters(), SERIES_FILE: series})

    @classmethod
    def load(cls, path):
        """The forecaster ``save`` wrote into the folder ``path``; CheckpointError (a ValueError, one sentence)
        when the folder holds none, another kind of estimator, or files of two different saves."""
        state, tensors = _load(path, cls, [WEIGHTS_FILE, SERIES_FILE])
        task = ForecastingTask()
        estimator = cls(**state["params"])
        estimator.hp_ = task.resolve(state["hyperparameters"])
        estimator.model_ = task.build_model(estimator.hp_)
        estimator.model_.load_parameters(tensors[WEIGHTS_FILE])
        estimator.model_.eval()
        values, starts = tensors[SERIES_FILE]["values"], tensors[SERIES_FILE]["starts"]
        estimator.series_ = np.split(values, starts[1:-1])
        estimator.preprocessing_, estimator.single_series_ = state["preprocessing"], state["one_series"]
        estimator.horizon_, estimator.season_ = estimator.hp_["horizon"], estimator.hp_["season"]
        estimator.n_series_ = len(estimator.series_)
        estimator.n_iter_, estimator.best_epoch_ = state["n_iter"], state["best_epoch"]
        return estimator


def _as_series(y, name):
    """``(list of float64 1-D arrays, whether y was one series)``; ValueError saying what is wrong."""
    if hasattr(y, "toarray"):
        raise TypeError(f"{name} is a sparse matrix; give a 1-D array of values or a list of them")
    ragged = isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype == object)
    if not ragged:
        array = np.asarray(y)
        if array.ndim == 1:
            return [_numbers(array, name)], True
        if array.ndim != 2:
            raise ValueError(f"{name} is shaped {list(array.shape)}; give one series as a 1-D array, or many as a "
                             f"list of 1-D arrays (or a 2-D array, a series per row)")
    series = [_numbers(s, f"{name}[{k}]") for k, s in enumerate(y)]
    for k, s in enumerate(series):
        if s.ndim != 1:
            raise ValueError(f"{name}[{k}] is shaped {list(s.shape)}; each series must be a 1-D array of values")
        if len(s) == 0:
            raise ValueError(f"{name}[{k}] is an empty series")
    if not series:
        raise ValueError(f"{name} holds no series")
    return series, False


def _write_long_csv(path, series, names=None):
    """The series as the forecasting task's long CSV (``unique_id, ds, y``; ids ``0, 1, ...`` unless ``names``;
    time steps 1, 2, ...; values exactly, in 17 digits). Returns ``path``."""
    names = [str(k) for k in range(len(series))] if names is None else names
    with open(path, "w") as handle:
        handle.write("unique_id,ds,y\n")
        for name, values in zip(names, series):
            steps = np.arange(1, len(values) + 1)
            handle.write("".join(f"{name},{t},{v!r}\n" for t, v in zip(steps.tolist(), values.tolist())))
    return path


def _series_set(series, names, season):
    """The series as the ``SeriesSet`` the task reads from ``_write_long_csv``'s file of them (ids ``names``, time
    steps 1, 2, ...), without the file."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    steps = np.concatenate([np.arange(1, n + 1) for n in lengths])
    return SeriesSet(Path("y"), np.array(names), np.r_[0, np.cumsum(lengths)], steps, np.concatenate(series),
                     Frequency("integer", 1, "integer", 1), season)


def _as_value_error(action, folder):
    """``action()``, a task's UserError about the temporary files told as a ValueError about ``y``."""
    try:
        return action()
    except UserError as error:
        message = str(error)
        for file in sorted(Path(folder).glob("*.csv"), key=lambda p: -len(str(p))):
            message = message.replace(f"{file}: ", "").replace(str(file), "y")
        raise ValueError(message) from None
