"""Forecasting a user's own series: ``lstmzoo train forecasting --data sales.csv``.

The file is a CSV in long format (``unique_id, ds, y``; many series) or one series (see
``lstmzoo.tasks.readers``). ONE global model learns from every series at once, each series scaled on its own:

- splits, per series and in time: the last ``horizon`` values are the test part (unless ``--test-data`` gives
  the values that follow each series), ``val_fraction`` (10 %) of the values before them, at least ``horizon``,
  the validation part (early stopping, on forecasts from rolling origins through it), and everything before that
  the training part;
- preprocessing, chosen per series from its training part alone (see ``choose_preprocessing``): a square
  root or log transform when the spread grows with the level (counts, multiplicative series), and a
  seasonal base (built on the value one season earlier) instead of the last value when the seasonal strength
  is high; each series' season is inferred from its own timestamps (a file may mix monthly and daily series) unless
  ``season=`` sets another; ``config.json`` records every series' choice, which ``evaluate`` and ``predict``
  reproduce (``predict`` chooses by the same rule for a series the run was not trained on); it records the
  frequencies of the training series too (``fitted["frequencies"]``): ``predict`` refuses a dated history at
  another frequency (a daily history for a monthly run), and writes each series' ``ds`` at its own frequency;
- scaling: each series' preprocessed values (the transformed values, or with a seasonal base their changes
  from one season earlier) are centred and scaled by the mean and standard deviation of its own training part
  (at ``predict``, of the history given), so series of any level train together;
- samples: a forecast origin ``o`` in a series' training part; the input is the up to ``window`` values before
  ``o`` (fewer near the series' start: the LSTM receives each window's length, so there is no padding inside
  the maths), two channels per step: the scaled preprocessed value and the change from the previous step; the
  target the next ``horizon`` values as changes from the base (the last value; or with a seasonal base the
  value one season earlier plus the last change over a season, the forecast of seasonal and step differencing
  together, the classic airline model without its moving-average terms: the model corrects the naive or this
  seasonal forecast, which keeps forecasts sane at levels the training part never reached), those past the
  training part left out of the loss; every epoch draws ``windows_per_epoch`` windows, each from a series drawn
  uniformly (every series weighs the same, as in the metrics) at one of its origins, so an epoch costs the
  same on 1 series or 10,000; and each series' squared errors, in the training loss and the validation loss,
  weigh by 1 over the in-sample error of its base forecast (``_series_weights``; 1 for a single series), so
  that a series whose changes are large next to its spread does not outweigh the others;
- the model: LSTM -> last hidden state -> Linear to ``horizon`` values (``SequenceModel``), Adam, MSE on the
  scaled targets, early stopping on the validation loss.

Metrics on the test part, on the original scale: ``mase`` (each series' MAE over the in-sample MAE of its
seasonal naive forecast, then the mean over series, as in M4), ``smape`` (M4's, in percent, mean over series),
``rmse`` and ``mae`` over all forecast values; and the same four for the naive forecast (the last value, held)
and the seasonal naive forecast (the value one season earlier), as ``naive_mase``, ``seasonal_naive_rmse``, ...
With ``rolling_test`` (what ``ForecastingRecipe``, the base of the zoo's series recipes, sets) the same metrics
score a one-step-ahead forecast of every value from ``val_end`` to each series' end, each from the true values
before it, all origins in one batched pass. ``forecast`` gives ``predict``'s numbers as arrays (the estimator's
``LSTMForecaster.predict``).
"""

import dataclasses
import functools
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter

from .base import Task
from .readers import MISSING_FILLS, infer_frequency, read_series
from .reports import EVAL_BATCH

DEFAULT_MAX_WINDOW = 200
SEASONAL_STRENGTH = 0.64    # seasonal base above this strength (Wang, Smith & Hyndman 2006; R forecast's nsdiffs)
TRANSFORMS = ("none", "sqrt", "log")    # Box-Cox lambda 1, 0.5, 0
SPREAD_T = 3.0              # the spread-on-level slope decides a transform when its t statistic is above this
VALIDATION_WINDOWS = 4096   # forecasts the validation loss makes at most (one per series beyond)
VAL_FRACTION = 0.1          # each series' validation part: this share of its values, at least horizon values
INPUT_CHANNELS = 2          # the scaled value and its change from the previous step


@dataclasses.dataclass
class ForecastData:
    """The series of ``--data`` with each one's split points and scaling, and the test values."""
    series: object              # readers.SeriesSet of the training file
    train_end: np.ndarray       # int64 [S]: index (within each series) of its first validation value
    val_end: np.ndarray         # int64 [S]: of its first test value (the series' length with --test-data)
    mean: np.ndarray            # float64 [S], of each series' transformed training part
    scale: np.ndarray           # float64 [S]
    test_values: np.ndarray     # float64 [S, horizon]: the values that follow val_end
    season: np.ndarray          # int64 [S]: each series' season (seasonal naive forecast, mase)
    transform: np.ndarray       # str [S]: the series is modelled as its values, their sqrt or their log
    lag: np.ndarray             # int64 [S]: the base of its forecasts: 1 the last value, the season one earlier
    z: np.ndarray               # float64 [n]: series.values, each series transformed
    weight: np.ndarray = None   # float64 [S]: each series' weight in the losses (``_series_weights``; mean 1;
                                # None: 1 for every series, as for one series or a recipe's own)

    def __post_init__(self):
        if self.weight is None:
            self.weight = np.ones(len(self.train_end))

    @property
    def fitted(self):
        """The preprocessing chosen for each series, as config.json records it."""
        return {"preprocessing": {str(name): {"transform": str(transform), "lag": int(lag)}
                                  for name, transform, lag in zip(self.series.ids, self.transform, self.lag)},
                "seasons_per_series": _seasons_inferred(self.series),
                # The steps between the training series' timestamps (one per distinct step; a file may mix
                # monthly and daily series): predict refuses a dated history at another frequency.
                "frequencies": [_frequency_record(f) for f in _series_frequencies(self.series)[0]]}


class ForecastingTask(Task):
    name = "forecasting"
    application = "time-series"
    format = 2   # 2: two input channels (scaled values and their step changes) and per-series preprocessing
    summary = "forecast your own series: a CSV of unique_id, ds, y (or one series) -> the next values"
    formats = ("a .csv (or .tsv) in long format, columns unique_id, ds, y (other names: id_column=, time_column=, "
               "target_column=), or one series (ds, y; date, value; or one numeric column); ds holds ISO 8601 dates "
               "or integer steps; --test-data holds the values that follow each series")
    preprocessing = ("per series, chosen on its training part: sqrt or log when the spread grows with the level, "
                     "a seasonal "
                     "base when strongly seasonal; then centred and scaled by its own training part; the last "
                     "horizon values of every series are the test part, val_fraction (10 %, at least horizon "
                     "values) of the values before them the validation part")
    predict_refusals: ClassVar[dict] = {
        "horizon": "the forecasting task forecasts the horizon its run was trained for (config.json's horizon); "
                   "train with --set horizon=H for another"}
    predict_input = ("a CSV of past values in the training file's layout, dated at the frequency the run was "
                     "trained on (or without dates); writes unique_id, ds, y_hat for the "
                     "next horizon steps of each series")
    monitor = "val_loss"
    mode = "min"
    # The evaluation protocol. False: the ``horizon`` values after each series' validation part, forecast from
    # its end. True (rolling origin): the test part is every value from ``val_end`` to the series' end, each
    # forecast one step ahead from the true values before it (as the zoo's series recipes score), and the
    # validation part is scored the same way; every origin is one row of one batched forecast.
    rolling_test = False
    hyperparameters: ClassVar[dict] = {
        "data": Hyperparameter("", "the training CSV (set by --data)"),
        "test_data": Hyperparameter("", "a CSV of the values that follow each training series, scored as the test "
                                        "(set by --test-data; default: the last horizon values of each series)"),
        "id_column": Hyperparameter("unique_id", "the column naming each series"),
        "time_column": Hyperparameter("ds", "the column of times (ISO 8601 dates or integer steps)"),
        "target_column": Hyperparameter("y", "the column of values to forecast"),
        "missing": Hyperparameter("refuse", "what to do with a missing value", choices=("refuse", *MISSING_FILLS)),
        "horizon": Hyperparameter(0, "steps to forecast (0 = one season of the inferred frequency)", low=0,
                                  high=10_000),
        "season": Hyperparameter(0, "steps per season (0 = inferred from the times: monthly 12, daily 7, ...)",
                                 low=0, high=10_000),
        "window": Hyperparameter(0, "past values the LSTM reads for a forecast (0 = two seasons of the longest "
                                    "season of any series, or two horizons, whichever is longer, at most "
                                    f"{DEFAULT_MAX_WINDOW})", low=0, high=100_000),
        "hidden_size": Hyperparameter(64, "LSTM hidden units"),
        "num_layers": Hyperparameter(1, "stacked LSTM layers"),
        "dropout": Hyperparameter(0.1, "dropout between LSTM layers and before the output layer"),
        "epochs": Hyperparameter(100, "maximum epochs of windows_per_epoch windows each"),
        "windows_per_epoch": Hyperparameter(1024, "forecast windows drawn from all series per epoch", low=1,
                                            high=10_000_000),
        "batch_size": Hyperparameter(64, "windows per training step"),
        "lr": Hyperparameter(0.001, "Adam learning rate"),
        "patience": Hyperparameter(30, "epochs without a better validation loss before stopping (0 = never)"),
        "clip_norm": Hyperparameter(1.0, "global gradient-norm clipping (0 = off)"),
        "val_fraction": Hyperparameter(VAL_FRACTION, "each series' validation part (early stopping): this share of "
                                                     "its values before the test part, at least horizon values "
                                                     "(0 = horizon values)", low=0.0, high=0.5),
    }

    # ------------------------------------------------------------------------------------------ settling
    def settle(self, hp, check_test_data=True):
        """``hp`` with the data-dependent defaults made concrete (horizon, season, window), after reading the
        files once: a bad file is refused here, before a run folder is made (``--test-data`` too, unless
        ``check_test_data`` is False: ``LSTMForecaster`` writes its file of the following values after settling)."""
        if not hp["data"]:
            raise UserError("the forecasting task trains on your file: give it with --data PATH")
        series = self._read(hp, hp["data"])
        season = hp["season"] or series.season
        horizon = hp["horizon"] or season
        longest = int(_seasons(series).max())     # a long file may hold series of longer seasons than its own
        window = hp["window"] or min(max(2 * season, 2 * longest, 2 * horizon), DEFAULT_MAX_WINDOW)
        held_out = horizon if hp["test_data"] else 2 * horizon
        short = np.flatnonzero(series.lengths < held_out + max(season, 1) + 1)
        if len(short):
            k = short[0]
            raise UserError(f"{series.path}: series {str(series.ids[k])!r} has {series.lengths[k]} values; forecasting "
                            f"{horizon} steps needs at least {held_out + max(season, 1) + 1} (the held-out "
                            f"{'validation' if hp['test_data'] else 'validation and test'} parts of {horizon} "
                            f"values each plus a season and one to learn from); set a shorter horizon=...")
        if hp["test_data"] and check_test_data:
            self._following_values(hp, series, horizon)
        return {**hp, "season": season, "horizon": horizon, "window": window}

    def _read(self, hp, path, following=False):
        return _read_series(str(path), *_identity(path), hp["id_column"], hp["time_column"], hp["target_column"],
                            hp["season"] or None, None if hp["missing"] == "refuse" else hp["missing"], following)

    # ---------------------------------------------------------------------------------------------- data
    def load_data(self, hp):
        """The splits and scaling of ``hp["data"]``; ``hp`` must be ``settle``d (``Recipe.train`` does it)."""
        series = self._read(hp, hp["data"])
        horizon, lengths = hp["horizon"], series.lengths
        if hp["test_data"]:
            val_end = lengths.copy()
            test_values = self._following_values(hp, series, horizon)
        else:
            val_end = lengths - horizon
            test_values = _gather(series.values, series.starts[:-1] + val_end, horizon)
        train_end = val_end - _validation_sizes(val_end, horizon, _seasons(series), hp["val_fraction"])
        data = _prepared(series, train_end, val_end, test_values, _seasons(series))
        data.weight = _series_weights(data, horizon)
        return data

    def _following_values(self, hp, series, horizon):
        """``[S, horizon]``: for each training series, its first ``horizon`` values in ``--test-data``."""
        test = self._read(hp, hp["test_data"], following=True)     # a horizon of 1: one value per series
        # Two files of one series each belong together, whatever their names (a single series is named after
        # its file, and train.csv and test.csv differ).
        where = {series.ids[0]: 0} if len(series) == len(test) == 1 else {name: k for k, name in enumerate(test.ids)}
        missing = [name for name in series.ids if name not in where]
        if missing:
            raise UserError(f"{test.path} has no values for series {str(missing[0])!r} of {series.path} (it must hold "
                            f"the {horizon} values that follow every series)")
        order = np.array([where[name] for name in series.ids])
        _check_following_frequencies(series, test, order)
        short = np.flatnonzero(test.lengths[order] < horizon)
        if len(short):
            raise UserError(f"{test.path} has {test.lengths[order[short[0]]]} values for series "
                            f"{str(series.ids[short[0]])!r}, fewer than the horizon {horizon}")
        return _gather(test.values, test.starts[:-1][order], horizon)

    def restore(self, run_dir, weights=None, device=None):
        """``Task.restore``; a run from before ``val_fraction`` (its config.json lacks it) held out ``horizon``
        values per series for validation, so its training part, and with it the preprocessing and scaling that
        ``load_data`` fits, is rebuilt as it was (``val_fraction`` 0)."""
        from lstmzoo.checkpoint import read_config
        model, hp = super().restore(run_dir, weights=weights, device=device)
        if "val_fraction" in hp and "val_fraction" not in read_config(run_dir, self.name,
                                                                      of_recipe=True)["hyperparameters"]:
            hp["val_fraction"] = 0.0
        return model, hp

    # ------------------------------------------------------------------------------------------ training
    def build_model(self, hp):
        from .models import SequenceModel
        return SequenceModel(INPUT_CHANNELS, hp["hidden_size"], hp["horizon"], num_layers=hp["num_layers"],
                             dropout=hp["dropout"], device=hp["device"])

    def make_batches(self, data, hp, rng):
        from lstmzoo.batching import minibatch_indices
        series, origins = _training_origins(data)
        # Every series weighs the same (as in the metrics, means over series): a series drawn uniformly, then
        # one of its origins.
        counts = np.bincount(series, minlength=len(data.series))
        eligible = np.flatnonzero(counts)
        chosen = eligible[rng.integers(len(eligible), size=hp["windows_per_epoch"])]
        drawn = (np.cumsum(counts) - counts)[chosen] + (rng.random(len(chosen)) * counts[chosen]).astype(np.int64)
        return [self._windows(data, series[drawn[batch]], origins[drawn[batch]], hp, with_targets=True)
                for batch in minibatch_indices(len(drawn), hp["batch_size"], rng)]

    def train_step(self, model, batch, hp):
        """MSE over the targets inside the training part (a window near its end has fewer). The items it
        returns are those targets, not the windows: data-parallel training weights each rank's gradient by them,
        so that two ranks average over the same targets as one process."""
        inputs, lengths, targets, weight = batch
        # ``weight``: each target's series weight (``_series_weights``), 0 past the training part.
        diff = (model(inputs, lengths=lengths) - targets) * (weight > 0)
        count = max(int((weight > 0).sum()), 1)
        model.backward(weight * diff * diff.dtype.type(2.0 / count))
        return float((weight * diff * diff).sum()) / count, count

    def validate(self, model, data, hp):
        """``val_loss``: the scaled squared error of every forecast step inside the validation part from every
        origin that reaches it (``horizon - 1`` values before the part's start up to its last value; each
        origin reads the true values before it), a mean per series weighted by its weight (``_series_weights``,
        as the training loss) and then a mean over series, so that a long series' validation part does not
        outweigh a short one's; at most ``VALIDATION_WINDOWS`` origins, evenly spread, down to one per series.
        Rolling origins over a validation part of ``val_fraction`` of each series (rather than the ``horizon``
        values from its start alone) make early stopping follow many values instead of a few. ``val_mase``: the
        forecast from the validation part's start. With ``rolling_test``: every forecast step inside the
        validation part from every origin up to its end (``val_loss``), and the one-step forecasts of its values
        on the original scale (``val_rmse``)."""
        if self.rolling_test:
            return self._rolling_validation(model, data, hp)
        horizon, count = hp["horizon"], len(data.series)
        first = np.maximum(data.train_end - horizon + 1, _first_input(data.lag) + 1)
        available = np.maximum(data.val_end - first, 0)
        used = np.minimum(available, max(1, VALIDATION_WINDOWS // count))
        series = np.repeat(np.arange(count), used)
        rank = np.arange(used.sum()) - np.repeat(np.cumsum(used) - used, used)
        origins = first[series] + rank * available[series] // np.maximum(used[series], 1)
        # and one origin per series at its validation part's start, for val_mase
        series, origins = np.r_[series, np.arange(count)], np.r_[origins, data.train_end]
        predicted = self._scaled_forecast(model, data, series, origins, hp)
        steps = origins[:, None] + np.arange(horizon)[None, :]
        inside = (steps >= data.train_end[series, None]) & (steps < data.val_end[series, None])
        last = np.arange(len(series)) >= len(series) - count
        inside[last] = False
        starts = data.series.starts[series]
        future = data.z[np.minimum(starts[:, None] + steps, len(data.z) - 1)]
        expected = (future - _base(data, series, origins, horizon)) / data.scale[series, None]
        squared = np.where(inside, (predicted - expected) ** 2, 0.0).sum(axis=1)
        per_series = np.bincount(series, squared, count) / np.maximum(np.bincount(series, inside.sum(axis=1), count), 1)
        actual = _gather(data.series.values, data.series.starts[series[last]] + origins[last], horizon)
        forecast = self._unscaled(data, series[last], origins[last], predicted[last])
        return {"val_loss": float(np.mean(per_series * data.weight)),
                "val_mase": float(np.mean([_series_mase(data, k, data.train_end[k], actual[i], forecast[i], hp)
                                           for i, k in enumerate(series[last])]))}

    def _rolling_validation(self, model, data, hp):
        from lstmzoo.metrics import rmse
        horizon = hp["horizon"]
        first = np.maximum(data.train_end - horizon + 1, _first_input(data.lag) + 1)
        series, origins = _origins_between(first, data.val_end)
        predicted = self._scaled_forecast(model, data, series, origins, hp)
        steps = origins[:, None] + np.arange(horizon)[None, :]
        inside = (steps >= data.train_end[series, None]) & (steps < data.val_end[series, None])
        starts = data.series.starts[series]
        future = data.z[np.minimum(starts[:, None] + steps, len(data.z) - 1)]
        expected = (future - _base(data, series, origins, horizon)) / data.scale[series, None]
        one_step = origins >= data.train_end[series]
        forecast = self._unscaled(data, series[one_step], origins[one_step], predicted[one_step])[:, 0]
        return {"val_loss": float(np.mean(((predicted - expected) ** 2)[inside])),
                "val_rmse": rmse(data.series.values[starts[one_step] + origins[one_step]], forecast)}

    # ------------------------------------------------------------------------------------------- windows
    def _windows(self, data, series, origins, hp, with_targets=False):
        """The LSTM's inputs ``[window, B, 2]`` (each window's values left-aligned, scaled by its series, and
        their changes from the step before), their lengths, and with ``with_targets`` the scaled changes from
        the base ``[B, horizon]`` to predict."""
        from lstmzoo.array import device_module
        xp = device_module(hp["device"])
        window, horizon = hp["window"], hp["horizon"]
        lag = data.lag[series, None]
        lengths = np.minimum(origins - _first_input(data.lag[series]), window)
        starts = data.series.starts[series]
        steps = np.arange(window)
        index = starts[:, None] + origins[:, None] - lengths[:, None] + steps[None, :]
        valid = steps[None, :] < lengths[:, None]
        index = np.where(valid, index, starts[:, None] + lag)
        values = data.z[index]
        scale = data.scale[series, None]
        # The preprocessed value: the (transformed) value itself, or with a seasonal base its change from one
        # season earlier; then the change from the step before, 0 at a series' first value.
        preprocessed = values - np.where(lag > 1, data.z[index - np.where(lag > 1, lag, 0)], 0.0)
        scaled = np.where(valid, (preprocessed - data.mean[series, None]) / scale, 0.0)
        has_before = valid & (index > starts[:, None])
        change = np.where(has_before, (values - data.z[np.maximum(index - 1, 0)]) / scale, 0.0)
        inputs = xp.asarray(np.ascontiguousarray(np.stack([scaled.T, change.T], axis=2), dtype=np.float32))
        if not with_targets:
            return inputs, lengths
        future = _gather(data.z, starts + origins, horizon)
        targets = (future - _base(data, series, origins, horizon)) / scale
        # Only the values before the validation part are targets (the rest count 0 in the loss).
        inside = origins[:, None] + np.arange(horizon)[None, :] < data.train_end[series, None]
        weight = np.where(inside, data.weight[series, None], 0.0)
        return (inputs, lengths, xp.asarray(np.where(inside, targets, 0.0).astype(np.float32)),
                xp.asarray(weight.astype(np.float32)))

    def _scaled_forecast(self, model, data, series, origins, hp):
        """The model's scaled changes ``[len(series), horizon]`` from the given origins, in batches."""
        from lstmzoo.array import to_numpy
        out = np.empty((len(series), hp["horizon"]))
        for start in range(0, len(series), EVAL_BATCH):
            part = slice(start, start + EVAL_BATCH)
            inputs, lengths = self._windows(data, series[part], origins[part], hp)
            out[part] = to_numpy(model(inputs, lengths=lengths))
        return out

    def _unscaled(self, data, series, origins, predicted):
        """Forecasts on the series' own scale from the model's scaled changes from the base."""
        z = _base(data, series, origins, predicted.shape[1]) + predicted * data.scale[series, None]
        with np.errstate(over="ignore"):
            return _inverse(z, data.transform[series, None])

    # ---------------------------------------------------------------------------------------- evaluation
    def evaluate(self, model, data, hp, out_dir=None):
        if self.rolling_test:
            series, origins = self.test_origins(data)
            forecast = self.one_step_forecasts(model, data, series, origins, hp)
            return {**_rolling_metrics(data, series, origins, forecast, ""), **self.baseline(data, hp)}
        series = np.arange(len(data.series))
        forecast = self._unscaled(data, series, data.val_end,
                                  self._scaled_forecast(model, data, series, data.val_end, hp))
        metrics = _forecast_metrics(data, forecast, hp, "")
        metrics.update(self.baseline(data, hp))
        return metrics

    def baseline(self, data, hp):
        """The naive forecast (the last value, held) and the seasonal naive forecast (the value one season
        earlier), scored like the model."""
        if self.rolling_test:
            series, origins = self.test_origins(data)
            values, at = data.series.values, data.series.starts[series] + origins
            return {**_rolling_metrics(data, series, origins, values[at - 1], "naive_"),
                    **_rolling_metrics(data, series, origins, values[at - data.season[series]], "seasonal_naive_")}
        series = np.arange(len(data.series))
        starts, origins, horizon, season = data.series.starts[:-1], data.val_end, hp["horizon"], data.season
        naive = np.repeat(_last_values(data, series, origins)[:, None], horizon, axis=1)
        # The same point of the season, one season back (each series' own season).
        back = season[:, None] - np.arange(horizon)[None, :] % season[:, None]
        seasonal = data.series.values[(starts + origins)[:, None] - back]
        return {**_forecast_metrics(data, naive, hp, "naive_"),
                **_forecast_metrics(data, seasonal, hp, "seasonal_naive_")}

    def test_origins(self, data):
        """``(series, origins)`` of every value of the rolling test part (``val_end`` to each series' end)."""
        return _origins_between(data.val_end, data.series.lengths)

    def one_step_forecasts(self, model, data, series, origins, hp):
        """float64 ``[len(origins)]``: the forecast of value ``origins[i]`` of series ``series[i]`` from the true
        values before it (one batched pass over all origins)."""
        return self._unscaled(data, series, origins, self._scaled_forecast(model, data, series, origins, hp))[:, 0]

    def target(self, metrics):
        return ("mase below the seasonal naive forecast's", metrics["mase"] < metrics["seasonal_naive_mase"])

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, model, hp, out_dir, *, input=None, output=None, plot=None):
        """The next ``horizon`` values of every series in ``input`` (default: the training file), as rows
        ``unique_id, ds, y_hat``; written to ``output`` as CSV when given; a plot of a few series."""
        history = self.read_input(lambda: self._read(hp, input or hp["data"]))
        fitted = self.recorded_preprocessing(out_dir)
        _check_frequencies(history, fitted.get("frequencies"), out_dir)
        forecast = self.forecast(model, hp, history, fitted)
        future = _future_timestamps(history, hp["horizon"])
        rows = {"unique_id": np.repeat(history.ids, hp["horizon"]), "ds": future.reshape(-1).astype(str),
                "y_hat": forecast.reshape(-1)}
        plot = Path(plot) if plot is not None else Path(out_dir) / "forecast.png"
        drawn = _plot_forecasts(plot, history, future, forecast)
        return self.prediction(rows, output, plot=None if drawn is None else str(drawn))

    def forecast(self, model, hp, history, fitted):
        """float64 ``[S, horizon]``: the next ``horizon`` values after each series of ``history`` (a
        ``readers.SeriesSet``), with the preprocessing ``fitted`` as config.json records it (``data.fitted``),
        each series scaled by its own history: what ``predict`` writes, without reading or writing a file."""
        lengths = history.lengths
        seasons = _seasons(history, per_series=fitted.get("seasons_per_series", True))
        data = _prepared(history, lengths, lengths, np.empty((len(history), 0)), seasons,
                         fitted.get("preprocessing", {}))
        series = np.arange(len(history))
        return self._unscaled(data, series, lengths, self._scaled_forecast(model, data, series, lengths, hp))



def _identity(path):
    """(size, modification time) of a file, so a cached read is used only while the file is unchanged; (-1, -1)
    for a path that is not a file (the reader then says what is wrong with it)."""
    try:
        status = Path(path).stat()
    except OSError:
        return -1, -1
    return status.st_size, status.st_mtime_ns


@functools.lru_cache(maxsize=2)
def _read_series(path, size, mtime, id_column, time_column, target_column, season, missing, following=False):
    """``read_series``, remembered for the file as it is: settling, training and evaluating read it once."""
    return read_series(path, id_column=id_column, time_column=time_column, target_column=target_column,
                       season=season, missing=missing, following=following)


def _gather(values, firsts, count):
    """``[len(firsts), count]``: ``values[first:first + count]`` for each first index."""
    return values[np.asarray(firsts)[:, None] + np.arange(count)[None, :]]


def _scaling(values, starts, ends):
    """Mean and scale of each series' ``values[start:start + end]``; a constant part gets scale 1 (or its
    level), so a flat series trains without dividing by zero."""
    counts = np.maximum(np.asarray(ends), 1)
    segment = np.repeat(np.arange(len(starts)), counts)
    index = np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    part = values[index]
    mean = np.bincount(segment, part) / counts
    std = np.sqrt(np.bincount(segment, (part - mean[segment]) ** 2) / counts)
    floor = np.maximum(np.abs(mean) * 1e-3, 1e-8)
    return mean, np.where(std > floor, std, np.where(np.abs(mean) > 0, np.abs(mean), 1.0))


def _training_origins(data):
    """(series, origin) of every forecast window inside the training parts: an origin needs its base (``lag``
    values before it) and at least one target value before the series' validation part (the targets from
    there on are left out of the loss)."""
    last = data.train_end - 1               # the last origin with a target before validation starts
    first = _first_input(data.lag) + 1      # the first origin with an input before it (and its base)
    counts = np.maximum(last - first + 1, 0)
    series = np.repeat(np.arange(len(counts)), counts)
    origins = np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    if len(series) == 0:
        raise UserError(f"{data.series.path}: no series is long enough to learn from after holding out its "
                        f"validation and test parts; set a shorter horizon=...")
    return series, origins


def _series_weights(data, horizon, chunk=1 << 16):
    """float64 ``[S]``: each series' weight in the training and validation losses: 1 over the mean squared
    scaled target of its training windows (the in-sample error of the base forecast the model corrects, as
    MASE scales by the in-sample naive error), divided by the mean over the series (1 for a single series).
    Without it a series whose scaled changes are large (a trending or erratic one) outweighs one whose changes
    are small next to its spread (sunspots' months against airline's): its squared errors would dominate the
    gradient and the validation loss that early stopping follows. A weight is at most 100 times the median
    one (a flat training part, whose base is exact, would otherwise take all the weight)."""
    series, origins = _training_origins(data)
    total = np.zeros(len(data.series))
    count = np.zeros(len(data.series))
    for start in range(0, len(series), chunk):
        s, o = series[start:start + chunk], origins[start:start + chunk]
        future = _gather(data.z, data.series.starts[s] + o, horizon)
        error = (future - _base(data, s, o, horizon)) / data.scale[s, None]
        inside = o[:, None] + np.arange(horizon)[None, :] < data.train_end[s, None]
        total += np.bincount(s, np.where(inside, error * error, 0.0).sum(axis=1), len(total))
        count += np.bincount(s, inside.sum(axis=1), len(count))
    used = count > 0
    mse = np.full(len(total), np.nan)
    mse[used] = total[used] / count[used]
    typical = np.median(mse[used]) if used.any() else 1.0
    mse = np.where(used, np.maximum(mse, 1e-2 * typical), typical)
    if not typical > 0:     # every training part is flat: weigh them the same
        return np.ones(len(total))
    weight = 1.0 / mse
    return weight / weight.mean()


def _validation_sizes(val_end, horizon, seasons, fraction):
    """int64 ``[S]``: each series' validation part: ``fraction`` of its ``val_end`` values before the test part,
    at least ``horizon``, at most what leaves ``horizon`` plus a season and one values to learn from (never
    below ``horizon``: ``settle`` has refused series too short for that)."""
    held = np.maximum(horizon, np.round(fraction * np.asarray(val_end)).astype(np.int64))
    return np.minimum(held, np.maximum(horizon, val_end - horizon - np.maximum(seasons, 1) - 1))


def _last_values(data, series, origins):
    return data.series.values[data.series.starts[series] + origins - 1]


def _base(data, series, origins, horizon):
    """``[len(series), horizon]``: the forecast the model corrects, on the transformed scale: the last value
    before each origin (``lag`` 1), or the value one season (``lag``) before each forecast step (the last
    season repeated past it) plus the last change over a season, once per season ahead (the forecast of
    seasonal and step differencing together, as in the classic airline model)."""
    lag = data.lag[series, None]
    steps = np.arange(horizon)[None, :]
    ends = (data.series.starts[series] + origins)[:, None]
    seasonal = np.where(lag > 1, data.z[ends - 1] - data.z[np.maximum(ends - 1 - lag, 0)], 0.0)
    return data.z[ends - (lag - steps % lag)] + np.where(lag > 1, steps // lag + 1, 0) * seasonal


def _first_input(lag):
    """The first index of a series whose preprocessed value exists: 0, or ``lag`` with a seasonal base."""
    return np.where(lag > 1, lag, 0)


# ============================================================================================ preprocessing
def choose_preprocessing(values, season):
    """``(transform, lag)`` for a series from its training part ``values`` (float64) and season, by two rules
    that look at nothing else:

    - the transform (``"none"``, ``"sqrt"``, ``"log"``) from how the spread grows with the level: over
      consecutive blocks of one season (at least 2 values; at least 4 blocks with a positive mean and spread),
      the slope b of the log of each block's standard deviation on the log of its mean gives the Box-Cox
      lambda 1 - b (Guerrero's idea: the power that makes the spread constant), rounded to the nearest of 1
      (none), 0.5 (sqrt) and 0 (log), when b is above ``SPREAD_T`` times its standard error (a level that
      barely moves says nothing: none); log needs every value positive and sqrt every value at least 0 (else
      the next weaker one);
    - lag ``season`` (the seasonal naive forecast as the base) when the seasonal strength of the (transformed)
      values is above ``SEASONAL_STRENGTH``: 1 - var(remainder) / var(detrended) after a centred moving-average
      trend and the mean of each season position (Wang, Smith & Hyndman 2006), with at least 3 seasons of
      values; otherwise lag 1 (the last value as the base)."""
    values = np.asarray(values, dtype=np.float64)
    transform = _transform_for(values, season)
    z = _forward(values, transform)
    lag = season if season > 1 and _seasonal_strength(z, season) > SEASONAL_STRENGTH else 1
    return transform, int(lag)


def _transform_for(values, season):
    block = max(season, 2)
    count = len(values) // block
    if count < 4 or not (values >= 0).all():
        return "none"
    blocks = values[len(values) - count * block:].reshape(count, block)
    level, spread = blocks.mean(axis=1), blocks.std(axis=1)
    used = (level > 0) & (spread > 0)
    level, spread = np.log(level[used]), np.log(spread[used])
    if len(level) < 4 or np.ptp(level) == 0:
        return "none"
    # The slope of log(spread) on log(level) and its t statistic.
    centred = level - level.mean()
    slope = centred @ spread / (centred @ centred)
    residual = spread - spread.mean() - slope * centred
    error = np.sqrt(residual @ residual / (len(level) - 2) / (centred @ centred))
    if not slope > SPREAD_T * error or slope < 0.25:
        return "none"
    return "log" if slope > 0.75 and (values > 0).all() else "sqrt"


def _forward(values, transform):
    """The transformed values (a log series' values at or below 0, possible past its training part, are
    floored at a tiny positive value; a sqrt series' below 0 at 0)."""
    if transform == "log":
        return np.log(np.maximum(values, np.finfo(np.float64).tiny))
    if transform == "sqrt":
        return np.sqrt(np.maximum(values, 0.0))
    return values


def _inverse(z, transform):
    """Values on the series' own scale from transformed ones (``transform`` broadcast against ``z``)."""
    with np.errstate(over="ignore"):
        return np.where(transform == "log", np.exp(np.minimum(z, 700.0)),
                        np.where(transform == "sqrt", np.square(np.maximum(z, 0.0)), z))


def _seasonal_strength(z, season):
    if len(z) < 3 * season:
        return 0.0
    weights = np.r_[0.5, np.ones(season - 1), 0.5] / season if season % 2 == 0 else np.ones(season) / season
    trend = np.convolve(z, weights, mode="valid")
    half = (len(weights) - 1) // 2
    detrended = z[half:half + len(trend)] - trend
    position = (np.arange(len(detrended)) + half) % season
    profile = np.bincount(position, detrended, season) / np.bincount(position, None, season)
    remainder = detrended - (profile - profile.mean())[position]
    spread = detrended.var()
    return float(max(0.0, 1 - remainder.var() / spread)) if spread > 0 else 0.0


def _seasons_inferred(series):
    """Whether the training file's seasons are inferred per series: ``season=`` left at 0 (or set to the file's
    inferred season), not set to another season for every series."""
    return bool(series.season == series.frequency.season)


def _seasons(series, per_series=None):
    """int64 ``[S]``: each series' season: with ``per_series`` (default: ``_seasons_inferred``) each series'
    own frequency decides (a long file may mix monthly and daily series: its median step is one frequency, the
    file's ``season``); otherwise ``season=`` applies to every series."""
    count = len(series)
    per_series = _seasons_inferred(series) if per_series is None else per_series
    if not per_series:
        return np.full(count, series.season, dtype=np.int64)
    frequencies, which = _series_frequencies(series)
    seasons = np.array([f.season for f in frequencies], dtype=np.int64)
    return np.where(which >= 0, seasons[np.maximum(which, 0)], series.season).astype(np.int64)


@functools.lru_cache(maxsize=4)     # a SeriesSet hashes by identity: settle, load_data and fitted share one pass
def _series_frequencies(series):
    """``(frequencies, which)``: the distinct ``Frequency`` of the series (a list) and the index into it of each
    series' own (int64 ``[S]``; -1 for a series of one value, which has the file's). A series' frequency is
    inferred from its median step, with the other series of the same median step; one series, or integer time
    steps, have the file's frequency."""
    count = len(series)
    if count == 1 or series.timestamps.dtype.kind != "M":
        return [series.frequency], np.zeros(count, dtype=np.int64)
    lengths = series.lengths
    steps = np.diff(series.timestamps).astype(np.int64)
    inside = np.ones(len(steps), dtype=bool)
    inside[series.starts[1:-1] - 1] = False
    counts = lengths - 1
    segment = np.repeat(np.arange(count), counts)
    ordered = steps[inside][np.lexsort((steps[inside], segment))]
    valid = counts > 0                         # a series of one value keeps the file's season
    median = np.full(count, -1, dtype=np.int64)  # each series' lower median step
    median[valid] = ordered[(np.cumsum(counts) - counts + (counts - 1) // 2)[valid]]
    frequencies, which = [], np.full(count, -1, dtype=np.int64)
    for step in np.unique(median[valid]):
        members = np.flatnonzero(median == step)
        index = np.concatenate([np.arange(series.starts[k], series.starts[k + 1]) for k in members])
        starts = np.r_[0, np.cumsum(lengths[members])]
        which[members] = len(frequencies)
        frequencies.append(infer_frequency(series.timestamps[index], starts, series.path))
    return frequencies, which


def _frequency_record(frequency):
    """A ``Frequency`` as config.json records it (``fitted["frequencies"]``)."""
    return {"name": frequency.name, "season": int(frequency.season), "unit": frequency.unit,
            "amount": int(frequency.amount), "month_end": bool(frequency.month_end)}


def _same_step(a, b):
    """Whether two frequencies step alike: as many calendar months (on the first or the last of a month alike),
    the same time (daily in days or in seconds alike), or the same integer step."""
    if "integer" in (a.unit, b.unit) or "months" in (a.unit, b.unit):
        return a.unit == b.unit and a.amount == b.amount
    return bool(np.timedelta64(a.amount, a.unit) == np.timedelta64(b.amount, b.unit))


def _dated(frequency):
    return frequency.unit != "integer"


def _check_frequencies(history, recorded, run_dir):
    """UserError when a dated series of ``history`` steps at none of the ``recorded`` frequencies (config.json's
    ``fitted["frequencies"]``) of the run in ``run_dir``'s training series, e.g. a daily history for a monthly
    run. Nothing is compared for a history without dates (integer steps, or one column of values), for a run
    trained without dates, or for a run from before the record (no ``recorded``)."""
    if not isinstance(recorded, list) or history.timestamps.dtype.kind != "M":
        return
    from .readers import Frequency
    trained = [Frequency(**entry) for entry in recorded if isinstance(entry, dict)]
    trained = [f for f in trained if _dated(f)]
    if not trained:
        return
    frequencies, which = _series_frequencies(history)
    for index, frequency in enumerate(frequencies):
        if any(_same_step(frequency, f) for f in trained):
            continue
        names = " or ".join(dict.fromkeys(f.name for f in trained))
        given = (f"{history.path} is a {frequency.name} series" if len(history) == 1 else
                 f"{history.path}: series {str(history.ids[np.argmax(which == index)])!r} is {frequency.name}")
        raise UserError(f"{given}, but the run in {run_dir} was trained on {names} series; give a history at the "
                        f"run's frequency ({names}), or train a run on {frequency.name} data")


def _check_following_frequencies(series, test, order):
    """UserError when a series' following values (``test``'s series ``order[k]`` for ``series``' series ``k``)
    step at another frequency than the series itself (both dated)."""
    if series.timestamps.dtype.kind != "M" or test.timestamps.dtype.kind != "M" or test.frequency is None:
        return
    own, own_which = _series_frequencies(series)
    then, then_which = _series_frequencies(test)
    then_which = then_which[order]
    for k in np.flatnonzero((own_which >= 0) & (then_which >= 0)):
        a, b = own[own_which[k]], then[then_which[k]]
        if not _same_step(a, b):
            raise UserError(f"{test.path}: series {str(series.ids[k])!r} is {b.name}, but {series.path} holds it "
                            f"{a.name}; give the values that follow each series at its own frequency")


def _future_timestamps(history, horizon):
    """``[S, horizon]``: the next ``horizon`` timestamps after each series' last one, each series at its own
    frequency (``_series_frequencies``: a file may mix monthly and daily series)."""
    frequencies, which = _series_frequencies(history)
    if len(frequencies) == 1:
        return history.future_timestamps(horizon)
    last = history.timestamps[history.starts[1:] - 1]
    future = history.frequency.after(last, horizon)
    for index, frequency in enumerate(frequencies):
        members = np.flatnonzero(which == index)
        future[members] = frequency.after(last[members], horizon)
    return future


def _prepared(series, train_end, val_end, test_values, seasons, recorded=None):
    """``ForecastData`` with each series' preprocessing: ``recorded`` (id -> {"transform", "lag"}, what
    config.json holds) where it names the series and still applies (log needs positive values, sqrt values
    at least 0, a lag of L more than 2 L values),
    else chosen by ``choose_preprocessing`` on its training part; then the scaling of its transformed
    training part."""
    recorded = recorded or {}
    starts = series.starts[:-1]
    transform = np.full(len(series), "none", dtype=object)
    lag = np.ones(len(series), dtype=np.int64)
    for k, name in enumerate(series.ids):
        part = series.values[starts[k]:starts[k] + train_end[k]]
        entry = recorded.get(str(name))
        if entry is not None and entry.get("transform") in TRANSFORMS and train_end[k] > 2 * entry["lag"] \
                and {"log": (part > 0).all(), "sqrt": (part >= 0).all()}.get(entry["transform"], True):
            transform[k], lag[k] = entry["transform"], int(entry["lag"])
        else:
            transform[k], lag[k] = choose_preprocessing(part, int(seasons[k]))
    transform = transform.astype(str)
    z = series.values.copy()
    for name in ("sqrt", "log"):
        chosen = np.repeat(transform == name, series.lengths)
        z[chosen] = _forward(z[chosen], name)
    # The preprocessed values whose mean and scale are fitted: z, or its change from one season earlier.
    seasonal = np.flatnonzero(lag > 1)
    preprocessed = z.copy()
    for k in seasonal:
        part = slice(starts[k] + lag[k], starts[k + 1] if k + 1 < len(starts) else len(z))
        preprocessed[part] = z[part] - z[starts[k]:part.stop - lag[k]]
    first = _first_input(lag)
    mean, scale = _scaling(preprocessed, starts + first, train_end - first)
    return ForecastData(series, train_end, val_end, mean, scale, test_values, seasons, transform, lag, z)


def _origins_between(first, end):
    """``(series, origins)``: every origin ``first[k] <= o < end[k]`` of every series ``k``, in order."""
    counts = np.maximum(np.asarray(end) - np.asarray(first), 0)
    series = np.repeat(np.arange(len(counts)), counts)
    return series, np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _rolling_metrics(data, series, origins, forecast, prefix):
    """The metrics of one-step forecasts of the values at ``origins``: ``rmse`` and ``mae`` over all of them,
    ``mase`` (each series' MAE over the in-sample MAE of its seasonal naive forecast on the values before its
    test part, as M4) and ``smape`` as means over the series."""
    from lstmzoo.metrics import mae, mase, rmse, smape
    actual = data.series.values[data.series.starts[series] + origins]
    members = [np.flatnonzero(series == k) for k in np.unique(series)]
    scaled = []
    for part in members:
        k = series[part[0]]
        history = data.series.values[data.series.starts[k]:data.series.starts[k] + data.val_end[k]]
        season = int(data.season[k]) if len(history) > data.season[k] else 1
        scaled.append(mase(actual[part], forecast[part], history, season))
    return {f"{prefix}mase": float(np.mean(scaled)),
            f"{prefix}smape": float(np.mean([smape(actual[part], forecast[part]) for part in members])),
            f"{prefix}rmse": rmse(actual, forecast), f"{prefix}mae": mae(actual, forecast)}


def _series_mase(data, k, origin, actual, forecast, hp):
    from lstmzoo.metrics import mase
    history = data.series.values[data.series.starts[k]:data.series.starts[k] + origin]
    season = int(data.season[k]) if len(history) > data.season[k] else 1
    return mase(actual, forecast, history, season)


def _forecast_metrics(data, forecast, hp, prefix):
    from lstmzoo.metrics import mae, rmse, smape
    actual = data.test_values
    series = range(len(data.series))
    return {f"{prefix}mase": float(np.mean([_series_mase(data, k, data.val_end[k], actual[k], forecast[k], hp)
                                            for k in series])),
            f"{prefix}smape": float(np.mean([smape(actual[k], forecast[k]) for k in series])),
            f"{prefix}rmse": rmse(actual, forecast), f"{prefix}mae": mae(actual, forecast)}


def _plot_forecasts(path, history, future, forecast, count=4):
    """The last stretch of history and the forecast of the first ``count`` series, one panel each."""
    from lstmzoo.plots import draw_figure
    shown = min(count, len(history))

    def draw(figure):
        axes = figure.subplots(shown, 1, squeeze=False)[:, 0]
        for k, ax in enumerate(axes):
            name, times, values = history.series(k)
            tail = slice(max(0, len(values) - 4 * forecast.shape[1]), None)
            draw_forecast_panel(ax, times[tail], values[tail], future[k], forecast[k])
            ax.set_title(str(name), fontsize=9)
        axes[0].legend()

    return draw_figure(path, draw, figsize=(8, 2.2 * shown + 0.5))


def draw_forecast_panel(ax, times, values, future, forecast):
    """One matplotlib panel of a forecast plot: the ``values`` at ``times`` (history) and the ``forecast`` at
    ``future``, joined at the last value; the task's and the series recipes' plots draw with it."""
    ax.plot(times, values, label="history")
    ax.plot(np.r_[times[-1:], future], np.r_[values[-1:], forecast], marker="o", markersize=3, label="forecast")
    ax.grid(alpha=0.3)
