"""One-step-ahead forecasting of a univariate series: the base of the time-series recipes.

A subclass names its CSV (``datasets[0]``: one series, read by ``lstmzoo.tasks.readers.read_series``; or
overrides ``load_series``), its season, its test split and its preprocessing (``transform``, ``difference``), and
picks hyperparameter defaults with ``forecasting_hyperparameters(...)``; ``target_ratio`` states its target
(test rmse <= that x the better naive forecast). Everything else is here:

- preprocessing: an optional transform (``"log"``: multiplicative seasonality becomes additive; ``"sqrt"``:
  steadies the variance of counts and compresses peaks beyond the training range), optional differencing at a lag
  (usually the season: removes trend and seasonality), then standardisation with the mean and standard
  deviation of the training part only;
- samples: the previous ``window`` preprocessed values are the input sequence ``[window / step, batch, step]``
  (``step`` consecutive values per LSTM step, 1 by default), the next value is the target (with
  ``predict_change``, its change from the last input: the model corrects a persistence forecast, which keeps
  forecasts sane at levels the training part never reached); the model is ``SequenceModel`` (LSTM -> last hidden
  state -> Linear), trained with Adam at a constant or cosine-decayed rate;
- splits, chronological: test = the last ``test_size`` values, validation (early stopping) = the last
  ``val_size`` values before the test part, training = the rest;
- metrics on the original scale of the test split: rmse, mae, and the naive forecasts' rmse (persistence:
  the previous value; seasonal naive: the value one season earlier, and ``seasonal_naive_<lag>_rmse`` for each
  lag in ``more_seasons``), which are what a forecast must beat. The season of the naive forecast is
  independent of the differencing lag: a series whose cycle is not a whole number of steps (sunspots) sets
  ``season`` for the baseline and ``difference = 0``. With a transform, forecasts (and the autoregression's)
  are brought back by Duan's smearing: the inverse transform averaged over the training residuals, the mean
  on the original scale rather than the median (``smearing``).
"""

import dataclasses
import re

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter, Recipe


def forecasting_hyperparameters(*, window, hidden_size, epochs, lr, batch_size, val_size, patience,
                                num_layers=1, dropout=0.0, clip_norm=1.0, schedule="constant", step=1,
                                smearing=True):
    """The hyperparameters every forecasting recipe has, with that recipe's defaults."""
    return {
        "window": Hyperparameter(window, "past values the LSTM reads for each forecast"),
        "step": Hyperparameter(step, "values the LSTM reads at each of its steps: window / step steps of `step` "
                                     "consecutive values (12 reads a monthly window a year at a time)"),
        "hidden_size": Hyperparameter(hidden_size, "LSTM hidden units"),
        "num_layers": Hyperparameter(num_layers, "stacked LSTM layers"),
        "dropout": Hyperparameter(dropout, "dropout between LSTM layers and before the output layer"),
        "epochs": Hyperparameter(epochs, "maximum passes over the training windows"),
        "lr": Hyperparameter(lr, "Adam learning rate"),
        "schedule": Hyperparameter(schedule, "learning rate over the epochs: constant, or half a cosine from lr "
                                             "down to 0 at the last epoch", choices=("constant", "cosine")),
        "batch_size": Hyperparameter(batch_size, "windows per training step"),
        "val_size": Hyperparameter(val_size, "values before the test split held out for early stopping"),
        "patience": Hyperparameter(patience, "epochs without a better validation loss before stopping (0 = never)"),
        "clip_norm": Hyperparameter(clip_norm, "global gradient-norm clipping (0 = off)"),
        "smearing": Hyperparameter(smearing, "with a transform (log, sqrt): undo it by averaging over the "
                                             "training residuals (Duan 1983), so a forecast is the mean on the "
                                             "original scale rather than the median"),
    }


@dataclasses.dataclass
class Series:
    """A series split for training, with the preprocessing fitted on its training part."""
    labels: list            # one label (date) per value
    values: np.ndarray      # the original values, float64
    val_start: int          # index of the first validation value
    test_start: int         # index of the first test value
    mean: float             # of the training part's preprocessed values
    std: float


class TimeSeriesRecipe(Recipe):
    application = "time-series"
    season = 12             # values per season (naive seasonal forecast, default horizon)
    more_seasons = ()       # further lags whose seasonal naive rmse is reported (seasonal_naive_<lag>_rmse)
    target_ratio = None     # the target: test rmse <= target_ratio x the better of persistence / seasonal naive
    test_size = 0.33        # values held out at the end: a count, or a fraction of the series when below 1
    transform = None        # None, "log" (values > 0) or "sqrt" (values >= 0)
    difference = 0          # lag of the differencing (0: none)
    predict_change = False  # the model's output is the change from the last input (persistence plus a correction)
    predict_input = ("a .csv file of past values, one per line (a header line and a date column before the value "
                     "are allowed); default: the recipe's own series")

    # ---------------------------------------------------------------------------------------- data
    def load_series(self, hp):
        """(labels, values) of the whole series; by default read from the CSV ``datasets[0]``. A recipe on
        generated or otherwise-stored data overrides this."""
        from lstmzoo.data import fetch
        return read_one_series(fetch(self.datasets[0]))

    def load_data(self, hp):
        labels, values = self.load_series(hp)
        test_size = round(len(values) * self.test_size) if self.test_size < 1 else self.test_size
        test_start = len(values) - test_size
        val_start = test_start - hp["val_size"]
        if hp["window"] % hp["step"]:
            raise UserError(f"window={hp['window']} is not a multiple of step={hp['step']}")
        first_target = hp["window"] + self.difference
        if val_start - first_target < hp["batch_size"]:
            raise UserError(f"window={hp['window']} and val_size={hp['val_size']} leave fewer than "
                            f"batch_size={hp['batch_size']} training windows in the {len(values)} values")
        # Statistics of the training part only, so nothing about validation or test leaks into training.
        transformed = self._difference(self._transform(values[:val_start]))
        return Series(labels, values, val_start, test_start, float(transformed.mean()), float(transformed.std()))

    def _transform(self, values):
        values = np.asarray(values, dtype=np.float64)
        if self.transform is None:
            return values
        function, domain, bad = _TRANSFORMS[self.transform]
        if np.any(bad(values)):
            raise UserError(f"recipe {self.name!r} takes the {function.__name__} of the series, so every value "
                            f"must be {domain}")
        return function(values)

    def _difference(self, z):
        return z[self.difference:] - z[:-self.difference] if self.difference else z

    def _standardised(self, data, values):
        """The preprocessed series aligned with ``values``: NaN for the first ``difference`` entries."""
        u = self._difference(self._transform(values))
        return np.concatenate([np.full(self.difference, np.nan), (u - data.mean) / data.std])

    def _windows(self, data, values, targets, hp):
        """Inputs ``[window / step, len(targets), step]`` (float32): the ``window`` values before each target
        index, ``step`` consecutive ones per LSTM step, oldest first; and the expected standardised outputs."""
        window, step = hp["window"], hp["step"]
        s, targets = self._standardised(data, values), np.asarray(targets)
        steps = targets[None, :] + np.arange(-window, 0)[:, None]
        expected = s[targets] - s[targets - 1] if self.predict_change else s[targets]
        inputs = s[steps].reshape(window // step, step, len(targets)).transpose(0, 2, 1)
        return np.ascontiguousarray(inputs, dtype=np.float32), expected.astype(np.float32)

    def _restore(self, data, values, targets, predicted, residuals=None):
        """Forecasts on the original scale from standardised predictions for ``values[targets]``; with
        ``residuals`` (of the transformed scale), the inverse transform is averaged over them (smearing)."""
        z = predicted.astype(np.float64)
        if self.predict_change:
            z = z + self._standardised(data, values)[np.asarray(targets) - 1]
        z = z * data.std + data.mean
        if self.difference:
            z = z + self._transform(values)[np.asarray(targets) - self.difference]
        return z if self.transform is None else _smeared(self.transform, z, residuals)

    def _residuals(self, model, data, hp):
        """The model's one-step errors on the training part, in the transformed scale (the smearing sample);
        None when ``smearing`` is off or the recipe has no transform."""
        if self.transform is None or not hp["smearing"]:
            return None
        targets = np.arange(hp["window"] + self.difference, data.val_start)
        predicted, expected, _ = self._forecast(model, data, data.values, targets, hp)
        return (expected.astype(np.float64) - predicted) * data.std

    def _forecast(self, model, data, values, targets, hp, residuals=None):
        """One-step-ahead forecasts of ``values[targets]`` from the true values before each: the standardised
        prediction, the expected standardised value and the forecast on the original scale."""
        from lstmzoo.array import device_module, to_numpy
        inputs, expected = self._windows(data, values, targets, hp)
        predicted = to_numpy(model(device_module(hp["device"]).asarray(inputs)))[:, 0].astype(np.float64)
        return predicted, expected, self._restore(data, values, targets, predicted, residuals)

    # ------------------------------------------------------------------------------------ training
    def build_model(self, hp):
        from lstmzoo.tasks.models import SequenceModel
        return SequenceModel(hp["step"], hp["hidden_size"], 1, num_layers=hp["num_layers"], dropout=hp["dropout"],
                             device=hp["device"])

    def make_scheduler(self, optimizer, hp):
        if hp.get("schedule") == "cosine":
            from lstmzoo.schedules import CosineLR
            return CosineLR(optimizer, hp["epochs"])
        return None

    def make_batches(self, data, hp, rng):
        from lstmzoo.array import device_module
        from lstmzoo.batching import minibatch_indices
        xp = device_module(hp["device"])
        targets = np.arange(hp["window"] + self.difference, data.val_start)
        inputs, outputs = self._windows(data, data.values, targets, hp)
        return [(xp.asarray(inputs[:, batch]), xp.asarray(outputs[batch, None]))
                for batch in minibatch_indices(len(targets), hp["batch_size"], rng)]

    def train_step(self, model, batch, hp):
        from lstmzoo.nn import MSELoss
        inputs, outputs = batch
        loss = MSELoss()
        value = loss(model(inputs), outputs)
        model.backward(loss.backward())
        return value, outputs.shape[0]

    def validate(self, model, data, hp):
        from lstmzoo.metrics import rmse
        targets = np.arange(data.val_start, data.test_start)
        predicted, expected, forecast = self._forecast(model, data, data.values, targets, hp)
        return {"val_loss": float(np.mean((predicted - expected) ** 2)),
                "val_rmse": rmse(data.values[targets], forecast)}

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, model, data, hp, out_dir=None):
        from lstmzoo.metrics import mae, rmse
        values, targets = data.values, np.arange(data.test_start, len(data.values))
        actual = values[targets]
        forecast = self._forecast(model, data, values, targets, hp, self._residuals(model, data, hp))[2]
        return {"rmse": rmse(actual, forecast), "mae": mae(actual, forecast), **self.baseline(data, hp)}

    def baseline(self, data, hp):
        """The test rmse of the naive forecasts (persistence, seasonal naive at ``season`` and ``more_seasons``)
        and of a linear autoregression (``ar_rmse``)."""
        from lstmzoo.metrics import rmse
        values, targets = data.values, np.arange(data.test_start, len(data.values))
        actual = values[targets]
        return {"persistence_rmse": rmse(actual, values[targets - 1]),
                "seasonal_naive_rmse": rmse(actual, values[targets - self.season]),
                **{f"seasonal_naive_{lag}_rmse": rmse(actual, values[targets - lag]) for lag in self.more_seasons},
                "ar_rmse": rmse(actual, self._autoregression(data, hp["window"], targets, hp["smearing"]))}

    def _autoregression(self, data, lags, targets, smearing=False):
        """One-step forecasts of ``values[targets]`` by least squares on the previous ``lags`` values (in the
        recipe's transformed scale), fitted on the training part only: the linear model the LSTM must beat.
        ``smearing`` undoes the transform as the LSTM's forecasts do, over the fit's residuals."""
        z = self._transform(data.values)
        lagged = np.arange(-lags, 0)

        def design(ts):
            return np.c_[z[ts[:, None] + lagged], np.ones(len(ts))]

        fit = np.arange(lags, data.val_start)
        weights = np.linalg.lstsq(design(fit), z[fit], rcond=None)[0]
        forecast = design(np.asarray(targets)) @ weights
        if self.transform is None:
            return forecast
        return _smeared(self.transform, forecast, z[fit] - design(fit) @ weights if smearing else None)

    def target(self, metrics):
        """``(text, met)`` for ``target_ratio``: rmse against the better of persistence and seasonal naive."""
        if self.target_ratio is None:
            return None
        bound = self.target_ratio * min(metrics["persistence_rmse"], metrics["seasonal_naive_rmse"])
        return (f"rmse <= {self.target_ratio:g} x better naive = {bound:.4g}", metrics["rmse"] <= bound)

    def predict(self, model, hp, out_dir, *, input=None, horizon=None, plot=None):
        """Forecast ``horizon`` values (default: one season) after the history in the CSV ``input`` (default:
        the recipe's own series), feeding each forecast back as input for the next; plot to ``plot``
        (default ``out_dir/forecast.png``; not drawn without matplotlib, and then ``plot`` is None)."""
        from pathlib import Path
        data = self.load_data(hp)
        if input is None:
            labels, history = data.labels, data.values
        else:
            labels, history = read_one_series(input)
        horizon = self.season if horizon is None else horizon
        if horizon < 1:
            raise UserError(f"horizon must be at least 1, got {horizon}")
        needed = hp["window"] + self.difference
        if len(history) < needed:
            raise UserError(f"recipe {self.name!r} needs at least {needed} past values to forecast, got {len(history)}")
        values = np.asarray(history, dtype=np.float64)
        residuals = self._residuals(model, data, hp)
        for _ in range(horizon):
            step = self._forecast(model, data, np.append(values, np.nan), [len(values)], hp, residuals)[2]
            values = np.append(values, step)
        forecast = values[len(history):]
        future = _following_labels(labels, horizon)
        plot = Path(plot) if plot is not None else Path(out_dir) / "forecast.png"
        drawn = _plot_forecast(plot, labels, history, future, forecast, self.name)
        return {"forecast": [{"label": label, "value": float(value)} for label, value in zip(future, forecast)],
                "history_length": len(history), "plot": str(drawn) if drawn else None}

    def format_prediction(self, result):
        rows = [f"{row['label']:>12}  {row['value']:.2f}" for row in result["forecast"]]
        return "\n".join([f"forecast after {result['history_length']} past values:", *rows,
                          *([f"plot: {result['plot']}"] if result["plot"] else [])])


_TRANSFORMS = {"log": (np.log, "positive", lambda v: v <= 0), "sqrt": (np.sqrt, "non-negative", lambda v: v < 0)}
_INVERSES = {"log": np.exp, "sqrt": lambda z: np.maximum(z, 0) ** 2}


def _smeared(transform, z, residuals=None):
    """``z`` (forecasts in the transformed scale) back on the original scale: the inverse transform, or with
    ``residuals`` Duan's (1983) smearing estimate of the mean, E[inverse(z + e)] averaged over the residuals e."""
    inverse = _INVERSES[transform]
    if residuals is None:
        return inverse(z)
    return np.array([inverse(row + residuals).mean() for row in z])


def read_one_series(path):
    """(labels, values) of the one series in the CSV at ``path`` (one value per line, or time and value; a header
    line allowed), read by ``lstmzoo.tasks.readers.read_series``: the labels are its times as text (ISO dates,
    or the positions 1, 2, ... without a time column). UserError (one sentence) for anything else."""
    from lstmzoo.tasks.readers import read_series
    series = read_series(path)
    if len(series) > 1:
        raise UserError(f"{path} holds {len(series)} series; a time-series recipe forecasts one")
    return series.timestamps.astype(str).tolist(), series.values


def _following_labels(labels, count):
    """Labels of the next ``count`` steps: dates continue at the series' own unit ("1960-12" -> "1961-01")."""
    if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", labels[-1]):
        return [f"t+{step}" for step in range(1, count + 1)]
    last = np.datetime64(labels[-1])
    return [str(last + step) for step in range(1, count + 1)]


def _plot_forecast(path, labels, history, future, forecast, title):
    """The history and the forecast after it, as a PNG at ``path`` (``plots.draw_figure``: atomic, skipped
    without matplotlib); returns ``path``, or None when it was not drawn."""
    from lstmzoo.plots import draw_figure

    def draw(figure):
        ax = figure.subplots()
        past = np.arange(len(history))
        ahead = np.arange(len(history), len(history) + len(forecast))
        ax.plot(past, history, label="history")
        ax.plot(np.r_[past[-1], ahead], np.r_[history[-1], forecast], marker="o", markersize=3, label="forecast")
        ticks = np.linspace(0, len(history) + len(forecast) - 1, 8).astype(int)
        names = list(labels) + list(future)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=30, ha="right")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()

    return draw_figure(path, draw, figsize=(9, 3.5))
