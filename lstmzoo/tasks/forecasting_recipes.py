"""A base for recipes that forecast one series of their own: the zoo's (airline passengers, sunspots, Melbourne
temperatures) and a plugin's. It is the ``forecasting`` task (``lstmzoo.tasks.forecasting``: its preprocessing,
windows, model, training and metrics) with the recipe's dataset, loader and defaults, scored by the task's
rolling-origin protocol: a one-step-ahead forecast of every value of a long test part, each from the true values
before it.

A subclass names its CSV (``datasets[0]``: one series, read by ``lstmzoo.tasks.readers.read_series``; or overrides
``load_series``), its ``season`` (the seasonal naive baseline and mase; ``more_seasons``: further lags whose
seasonal naive rmse is reported), ``test_size`` (a count of values at the end, or a fraction below 1), the task's
preprocessing (``transform``: ``"none"``, ``"sqrt"`` or ``"log"``; ``lag``: the base of each forecast, 1 the last
value, the season the value a season earlier plus the last change over a season; None leaves the choice to the
task's rule, ``choose_preprocessing``, on the training part), ``target_ratio`` (its target: test rmse <= that x
the better naive forecast) and its defaults with ``forecasting_hyperparameters(...)``. Splits, in time: test =
the last ``test_size`` values, validation (early stopping, on its own one-step forecasts) = the ``val_size``
values before, training = the rest.

Metrics on the original scale of the test part: ``rmse``, ``mae``, ``mase``, ``smape``, and the baselines the
model must beat: ``persistence_rmse`` (the previous value), ``seasonal_naive_rmse`` (the value one season
earlier; ``seasonal_naive_<lag>_rmse`` for each of ``more_seasons``) and ``ar_rmse``, a linear autoregression on
the previous ``window`` values in the transformed scale, fitted by least squares on the training part.
"""

import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter, Recipe

from .forecasting import (
    ForecastData,
    ForecastingTask,
    _base,
    _first_input,
    _forward,
    _inverse,
    _origins_between,
    _prepared,
    choose_preprocessing,
    draw_forecast_panel,
)
from .readers import Frequency, SeriesSet


def forecasting_hyperparameters(*, window, hidden_size, epochs, lr, batch_size, val_size, patience, horizon=1,
                                num_layers=1, dropout=0.0, clip_norm=1.0, windows_per_epoch=1024, smearing=True):
    """The hyperparameters of a recipe of ``ForecastingRecipe``, with that recipe's defaults."""
    return {
        "window": Hyperparameter(window, "past values the LSTM reads for each forecast"),
        "horizon": Hyperparameter(horizon, "steps the model learns to forecast from each origin (the test scores "
                                           "the first: more steps are a steadier target to learn)", low=1,
                                  high=10_000),
        "hidden_size": Hyperparameter(hidden_size, "LSTM hidden units"),
        "num_layers": Hyperparameter(num_layers, "stacked LSTM layers"),
        "dropout": Hyperparameter(dropout, "dropout between LSTM layers and before the output layer"),
        "epochs": Hyperparameter(epochs, "maximum epochs of windows_per_epoch windows each"),
        "windows_per_epoch": Hyperparameter(windows_per_epoch, "training windows drawn per epoch", low=1,
                                            high=10_000_000),
        "lr": Hyperparameter(lr, "Adam learning rate"),
        "batch_size": Hyperparameter(batch_size, "windows per training step"),
        "val_size": Hyperparameter(val_size, "values before the test part held out for early stopping"),
        "patience": Hyperparameter(patience, "epochs without a better validation loss before stopping (0 = never)"),
        "clip_norm": Hyperparameter(clip_norm, "global gradient-norm clipping (0 = off)"),
        "smearing": Hyperparameter(smearing, "with a transform (log, sqrt): undo it by averaging over the "
                                             "training residuals (Duan 1983), so a forecast is the mean on the "
                                             "original scale rather than the median"),
    }


class ForecastingRecipe(ForecastingTask):
    """The base of a recipe that forecasts one series of its own (see the module docstring)."""
    task = False
    DATA_ROLES = ()
    rolling_test = True
    application = "time-series"
    season = 12             # values per season (seasonal naive forecast, mase)
    more_seasons = ()       # further lags whose seasonal naive rmse is reported (seasonal_naive_<lag>_rmse)
    target_ratio = None     # the target: test rmse <= target_ratio x the better of persistence / seasonal naive
    test_size = 0.33        # values held out at the end: a count, or a fraction of the series when below 1
    transform = None        # "none", "sqrt", "log"; None: the task's rule chooses on the training part
    lag = None              # the base of a forecast: 1 the last value, `season` the seasonal one; None: the rule
    predict_input = ("a .csv file of past values, one per line (a header line and a date column before the value "
                     "are allowed); default: the recipe's own series")
    hyperparameters: ClassVar[dict] = {}

    # A recipe's runs have one form (``Recipe``'s): a run from before the recipe ran on the task is refused by its
    # weights, which do not fit the model, in one sentence too.
    check_run_format = Recipe.check_run_format

    # ---------------------------------------------------------------------------------------- data
    def settle(self, hp):
        return hp

    def load_series(self, hp):
        """(labels, values) of the whole series; by default read from the CSV ``datasets[0]``. A recipe on
        generated or otherwise-stored data overrides this."""
        from lstmzoo.data import fetch
        return read_one_series(fetch(self.datasets[0]))

    def load_data(self, hp):
        _, values = self.load_series(hp)
        values = np.asarray(values, dtype=np.float64)
        test_size = round(len(values) * self.test_size) if self.test_size < 1 else self.test_size
        val_end = len(values) - test_size
        train_end = val_end - hp["val_size"]
        series = _one_series(self.name, values, self.season)
        part = values[:max(train_end, 0)]
        chosen = choose_preprocessing(part, self.season) if None in (self.transform, self.lag) else (None, None)
        transform = self.transform or chosen[0]
        lag = self.lag or chosen[1]
        if transform in ("log", "sqrt") and not (values > 0 if transform == "log" else values >= 0).all():
            raise UserError(f"recipe {self.name!r} takes the {transform} of the series, so every value must be "
                            f"{'positive' if transform == 'log' else 'non-negative'}")
        training = train_end - 1 - _first_input(np.array(lag))
        if training < hp["batch_size"]:
            raise UserError(f"window={hp['window']} and val_size={hp['val_size']} leave fewer than "
                            f"batch_size={hp['batch_size']} training windows in the {len(values)} values")
        return _prepared(series, np.array([train_end]), np.array([val_end]),
                         values[None, val_end:val_end + hp["horizon"]], np.array([self.season]),
                         {self.name: {"transform": transform, "lag": int(lag)}})

    # ---------------------------------------------------------------------------------- evaluation
    def one_step_forecasts(self, model, data, series, origins, hp, residuals=None):
        """The task's one-step forecasts, with ``smearing`` the inverse transform averaged over ``residuals``
        (default: the model's one-step errors on the training part, in the transformed scale)."""
        z = _base(data, series, origins, 1)[:, 0] \
            + self._scaled_forecast(model, data, series, origins, hp)[:, 0] * data.scale[series]
        if residuals is None:
            residuals = self.residuals(model, data, hp)
        return _smeared(z, str(data.transform[0]), residuals)

    def residuals(self, model, data, hp):
        """The model's one-step errors on the training part in the transformed scale (the smearing sample); None
        when ``smearing`` is off or the series is not transformed."""
        if not hp["smearing"] or data.transform[0] == "none":
            return None
        series, origins = _origins_between(_first_input(data.lag) + 1, data.train_end)
        z = _base(data, series, origins, 1)[:, 0] \
            + self._scaled_forecast(model, data, series, origins, hp)[:, 0] * data.scale[series]
        return data.z[data.series.starts[series] + origins] - z

    def baseline(self, data, hp):
        """The test rmse of the naive forecasts (persistence, seasonal naive at ``season`` and ``more_seasons``)
        and of a linear autoregression on the previous ``window`` values (``ar_rmse``)."""
        from lstmzoo.metrics import rmse
        _, origins = self.test_origins(data)
        values = data.series.values
        actual = values[origins]
        return {"persistence_rmse": rmse(actual, values[origins - 1]),
                "seasonal_naive_rmse": rmse(actual, values[origins - self.season]),
                **{f"seasonal_naive_{lag}_rmse": rmse(actual, values[origins - lag]) for lag in self.more_seasons},
                "ar_rmse": rmse(actual, _autoregression(data, hp["window"], origins, hp["smearing"]))}

    def target(self, metrics):
        """``(text, met)`` for ``target_ratio``: rmse against the better of persistence and seasonal naive."""
        if self.target_ratio is None:
            return Recipe.target(self, metrics) if self.anchor is not None else None
        bound = self.target_ratio * min(metrics["persistence_rmse"], metrics["seasonal_naive_rmse"])
        return (f"rmse <= {self.target_ratio:g} x better naive = {bound:.4g}", metrics["rmse"] <= bound)

    # ------------------------------------------------------------------------------------- predict
    def predict(self, model, hp, out_dir, *, input=None, horizon=None, plot=None):
        """Forecast ``horizon`` values (default: one season) after the history in the CSV
        ``input`` (default: the recipe's own series), one step at a time, each forecast fed back as the last
        value of the next one's history; the preprocessing and scaling are the training part's. Plot to
        ``plot`` (default ``out_dir/forecast.png``; not drawn without matplotlib, and then ``plot`` is None)."""
        labels, history = self.load_series(hp) if input is None else read_one_series(input)
        horizon = self.season if horizon is None else horizon
        if horizon < 1:
            raise UserError(f"horizon must be at least 1, got {horizon}")
        data = self.load_data(hp)
        needed = hp["window"] + int(_first_input(data.lag)[0])
        if len(history) < needed:
            raise UserError(f"recipe {self.name!r} needs at least {needed} past values to forecast, got {len(history)}")
        values = np.asarray(history, dtype=np.float64)
        residuals = self.residuals(model, data, hp)
        for _ in range(horizon):
            end = np.array([len(values)])
            step = self.one_step_forecasts(model, _continued(data, values), np.array([0]), end, hp, residuals)
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


def _one_series(name, values, season):
    """A ``SeriesSet`` of the one series ``values`` at the integer steps 1, 2, ..."""
    return SeriesSet(Path(name), np.array([name]), np.array([0, len(values)]), np.arange(1, len(values) + 1),
                     values, Frequency("integer", 1, "integer", 1), season)


def _continued(data, values):
    """``data`` (one series) with ``values`` as its series: the training part's preprocessing and scaling applied
    to another history."""
    series = _one_series(str(data.series.ids[0]), values, int(data.season[0]))
    end = np.array([len(values)])
    return ForecastData(series, end, end, data.mean, data.scale, np.empty((1, 0)), data.season, data.transform,
                        data.lag, _forward(values, str(data.transform[0])))


def _smeared(z, transform, residuals=None):
    """``z`` (forecasts in the transformed scale) back on the original scale: the inverse transform, or with
    ``residuals`` Duan's (1983) smearing estimate of the mean, E[inverse(z + e)] averaged over the residuals e."""
    if residuals is None or transform == "none":
        return _inverse(z, transform)
    residuals = np.asarray(residuals)
    chunks = np.array_split(np.asarray(z), max(1, np.size(z) * residuals.size // (1 << 20)))  # ~8 MB at a time
    return np.concatenate([_inverse(part[:, None] + residuals, transform).mean(axis=1) for part in chunks])


def _autoregression(data, lags, origins, smearing=False):
    """One-step forecasts of the values at ``origins`` by least squares on the previous ``lags`` transformed
    values, fitted on the training part only: the linear model the LSTM must beat. ``smearing`` undoes the
    transform as the LSTM's forecasts do, over the fit's residuals."""
    z = data.z
    lagged = np.arange(-lags, 0)

    def design(ts):
        return np.c_[z[ts[:, None] + lagged], np.ones(len(ts))]

    fit = np.arange(lags, data.train_end[0])
    weights = np.linalg.lstsq(design(fit), z[fit], rcond=None)[0]
    return _smeared(design(np.asarray(origins)) @ weights, str(data.transform[0]),
                    z[fit] - design(fit) @ weights if smearing else None)


def read_one_series(path):
    """(labels, values) of the one series in the CSV at ``path`` (one value per line, or time and value; a header
    line allowed), read by ``lstmzoo.tasks.readers.read_series``: the labels are its times as text (ISO dates,
    or the positions 1, 2, ... without a time column). UserError (one sentence) for anything else."""
    from .readers import read_series
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
        draw_forecast_panel(ax, np.arange(len(history)), history,
                            np.arange(len(history), len(history) + len(forecast)), forecast)
        ticks = np.linspace(0, len(history) + len(forecast) - 1, 8).astype(int)
        names = list(labels) + list(future)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=30, ha="right")
        ax.set_title(title)
        ax.legend()

    return draw_figure(path, draw, figsize=(9, 3.5))
